"""The bad-input corpus: every case is either handled correctly or gets one clear error naming the
file and the problem (CLI exit status 2) — never a traceback from deep inside torch, never a silent skip."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from workbench.cli import main

TRAIN = ["--data.crop=32", "--data.batch_size=2", "--data.val_fraction=0.3", "--model.options={widths: [4, 8]}",
         "--train.epochs=1", "--train.threads=1", "--labels.rule=fixed", "--quiet"]


def _image(rng, h=24, w=28):
    return (rng.random((h, w)) * 200).astype(np.uint8)


def _mask(h=24, w=28, empty=False):
    m = np.zeros((h, w), np.uint8)
    if not empty:
        m[10:12, 12:14] = 255
    return m


@pytest.fixture
def corpus(tmp_path):
    """A valid small dataset in tests' tmp space; each test breaks one thing in its own copy."""
    rng = np.random.default_rng(0)
    root = tmp_path / "good"
    for sub in ("images", "masks", "splits"):
        (root / sub).mkdir(parents=True)
    for i in range(6):
        Image.fromarray(_image(rng)).save(root / "images" / f"a{i}.png")
        Image.fromarray(_mask(empty=(i == 5))).save(root / "masks" / f"a{i}.png")  # a5 has no target: valid
    (root / "splits" / "train.txt").write_text("a0\r\na1\r\na2\r\na3\r\na5")  # CRLF, no final newline: valid
    (root / "splits" / "test.txt").write_text("a4\n")
    return root


def _train(root, tmp_path, *extra):
    return main(["train", "--data", str(root), "--out", str(tmp_path / "run"), "--data.datasets=[{root: "
                 + str(root) + ", train_split: splits/train.txt, test_split: splits/test.txt}]", *TRAIN, *extra])


def _variant(corpus, tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(corpus, dst)
    return dst


def test_valid_corner_cases_train(corpus, tmp_path):
    """CRLF split file, an image without targets, 16-bit and RGBA images are all accepted."""
    rng = np.random.default_rng(1)
    Image.fromarray(_image(rng).astype(np.uint16) * 257).save(corpus / "images" / "a1.png")
    rgba = np.dstack([_image(rng)] * 3 + [np.full((24, 28), 255, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(corpus / "images" / "a2.png")
    assert _train(corpus, tmp_path) == 0


@pytest.mark.parametrize(
    "case, message",
    [
        ("truncated", "a1.png: cannot decode image"),
        ("zero_bytes", "a1.png: empty file"),
        ("mask_values", "a1.png: mask values must be 0 or 255"),
        ("mask_size", "a1.png: mask size 10x10 differs from its image 28x24"),
        ("unknown_id", "train.txt: id 'ghost' has no image"),
        ("duplicate_id", "train.txt: line 6: duplicate id 'a0'"),
        ("empty_split", "train.txt: split file lists no ids"),
        ("no_images", "train.txt: id 'a0' has no image"),
    ],
)
def test_bad_dataset_one_clear_error(corpus, tmp_path, capsys, case, message):
    root = _variant(corpus, tmp_path, case)
    if case == "truncated":
        data = (root / "images" / "a1.png").read_bytes()
        (root / "images" / "a1.png").write_bytes(data[: len(data) // 2])
    elif case == "zero_bytes":
        (root / "images" / "a1.png").write_bytes(b"")
    elif case == "mask_values":
        m = _mask()
        m[0, 0] = 7
        Image.fromarray(m).save(root / "masks" / "a1.png")
    elif case == "mask_size":
        Image.fromarray(_mask(10, 10)).save(root / "masks" / "a1.png")
    elif case == "unknown_id":
        (root / "splits" / "train.txt").write_text("a0\na1\nghost\n")
    elif case == "duplicate_id":
        (root / "splits" / "train.txt").write_text("a0\na1\na2\na3\na5\na0\n")
    elif case == "empty_split":
        (root / "splits" / "train.txt").write_text("\n\n")
    elif case == "no_images":
        for p in (root / "images").iterdir():
            p.unlink()
    capsys.readouterr()
    assert _train(root, tmp_path) == 2
    out = capsys.readouterr().out
    assert message in out.replace("\n", "")
    assert "Traceback" not in out


def test_point_outside_image(corpus, tmp_path, capsys):
    pts = {"format": "semprior-points", "version": 1, "kind": "user", "seed": 0,
           "images": {f"a{i}": {"size": [24, 28], "points_yx": [[11, 13]]} for i in range(6)}}
    pts["images"]["a2"]["points_yx"] = [[30, 5]]
    (tmp_path / "pts.json").write_text(json.dumps(pts))
    assert _train(corpus, tmp_path, f"--data.points={tmp_path / 'pts.json'}") == 2
    assert "pts.json: image 'a2': point (y=30, x=5) lies outside" in capsys.readouterr().out.replace("\n", "")


@pytest.mark.parametrize(
    "override, message",
    [
        ("--train.lr=.nan", "train.lr: must be a finite number"),
        ("--train.lerning_rate=0.1", "unknown config key 'train.lerning_rate'"),
        ("--vfm.name=dinov2_vitb14", "needs vfm.weights=PATH"),
    ],
)
def test_bad_config_one_clear_error(corpus, tmp_path, capsys, override, message):
    extra = [override] + (["--method", "semprior"] if "vfm" in override else [])
    assert _train(corpus, tmp_path, *extra) == 2
    assert message in capsys.readouterr().out.replace("\n", "")


def test_missing_vfm_weights_file(corpus, tmp_path, capsys):
    assert _train(corpus, tmp_path, "--method", "semprior", "--vfm.name=dinov2_vitb14",
                  f"--vfm.weights={tmp_path / 'nope.pth'}") == 2
    assert "nope.pth: weights file not found" in capsys.readouterr().out.replace("\n", "")
