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


# -- points files: the loader `train` uses checks every entry ------------------------------------------------
def _points(images: dict) -> dict:
    return {"format": "semprior-points", "version": 1, "kind": "user", "seed": 0, "images": images}


def _good_points() -> dict:
    return _points({f"a{i}": {"size": [24, 28], "points_yx": [[11, 13]]} for i in range(5)}
                   | {"a5": {"size": [24, 28], "points_yx": []}})


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"size": [24, 28], "points_yx": [[float("nan"), 3]]}, "points_yx[0]: coordinates must be finite"),
        ({"size": [], "points_yx": [[2, float("inf")]]}, "points_yx[0]: coordinates must be finite"),
        ({"size": [24, 28], "points_yx": [[1, 2, 3]]}, "points_yx[0]: a point must be a [y, x] pair"),
        ({"size": [24, 28], "points_yx": [[1]]}, "points_yx[0]: a point must be a [y, x] pair"),
        ({"size": [24, 28], "points_yx": [1, 2]}, "points_yx[0]: a point must be a [y, x] pair"),
        ({"size": [24, 28], "points_yx": [["11", "13"]]}, "points_yx[0]: coordinates must be numbers"),
        ({"size": [24, 28], "points_yx": [[True, 13]]}, "points_yx[0]: coordinates must be numbers"),
        ({"size": [24, 28], "points_yx": [[[11], 13]]}, "points_yx[0]: coordinates must be numbers"),
        ({"size": [24, 28], "points_yx": [[5, 6], [-1, 13]]}, "points_yx[1]: coordinates must be finite and non-negative"),
        ({"size": [], "points_yx": [[-0.6, 13]]}, "points_yx[0]: coordinates must be finite and non-negative"),
        ({"size": [24, 28], "points_yx": [[23.6, 13]]}, "point (y=24, x=13) lies outside the 28x24 image"),
        ({"size": [24], "points_yx": []}, "size must be [H, W]"),
        ({"size": ["24", "28"], "points_yx": []}, "size must be [H, W]"),
        ({"size": [24, 28], "points_yx": "11,13"}, "\"points_yx\" must be a list"),
        ({"size": [24, 28], "points": [[11, 13]]}, "entry keys must be \"points_yx\""),
        ([[11, 13]], "entry must be an object"),
    ],
)
def test_points_file_bad_entry_one_clear_error(tmp_path, entry, message):
    from semprior_core.data.points import PointSet
    from semprior_core.io import DataError

    data = _good_points()
    data["images"]["a2"] = entry
    (tmp_path / "pts.json").write_text(json.dumps(data))
    with pytest.raises(DataError) as err:
        PointSet.load(tmp_path / "pts.json")
    assert "pts.json: image 'a2'" in str(err.value) and message in str(err.value)


def test_points_file_fractional_coordinates_round_to_the_nearest_pixel(tmp_path):
    from semprior_core.data.points import PointSet

    data = _good_points()
    data["images"]["a1"]["points_yx"] = [[10.5, 12.49], [0.2, 27.4]]  # sub-pixel clicks: legitimate
    (tmp_path / "pts.json").write_text(json.dumps(data))
    assert PointSet.load(tmp_path / "pts.json")["a1"].tolist() == [[11, 12], [0, 27]]  # not truncated to [10, 12]


@pytest.mark.parametrize(
    "images, message",
    [
        ({f"a{i}": {"size": [24, 28], "points_yx": []} for i in range(6)}, "pts.json: no image has a point"),
        (_good_points()["images"] | {"ghost": {"size": [], "points_yx": [[1, 1]]}},
         "pts.json: image 'ghost' has no image in"),
    ],
)
def test_train_refuses_points_that_cannot_supervise(corpus, tmp_path, capsys, images, message):
    """A points file without any point used to train and report validation point-F1 = 1.0."""
    (tmp_path / "pts.json").write_text(json.dumps(_points(images)))
    assert _train(corpus, tmp_path, f"--data.points={tmp_path / 'pts.json'}") == 2
    out = capsys.readouterr().out.replace("\n", "")
    assert message in out and "Traceback" not in out


def test_train_on_fractional_points(corpus, tmp_path):
    data = _good_points()
    for entry in data["images"].values():
        entry["points_yx"] = [[10.6, 12.5] for _ in entry["points_yx"]]
    (tmp_path / "pts.json").write_text(json.dumps(data))
    assert _train(corpus, tmp_path, f"--data.points={tmp_path / 'pts.json'}") == 0


# -- split lists in the encodings users save ---------------------------------------------------------------
@pytest.mark.parametrize(
    "encoding, text",
    [
        ("utf-8-sig", "a0\na1\na2\na3\na5\n"),  # Notepad's "UTF-8 with BOM"
        ("utf-16", "a0\r\na1\r\na2\r\na3\r\na5\r\n"),  # PowerShell's `>`: UTF-16 LE with BOM
        ("utf-16-be", "\ufeffa0\na1\na2\na3\na5"),
        ("utf-8", "a0  \n\n  a1\t\n\n\na2\na3\r\na5\n\n"),  # trailing spaces, blank lines, mixed line ends
    ],
)
def test_split_file_encodings_train(corpus, tmp_path, encoding, text):
    (corpus / "splits" / "train.txt").write_bytes(text.encode(encoding))
    assert _train(corpus, tmp_path) == 0


def test_split_file_latin1_names(corpus):
    from semprior_core.data.folder import DatasetFolder

    shutil.copy(corpus / "images" / "a0.png", corpus / "images" / "café.png")
    (corpus / "splits" / "names.txt").write_bytes("a1\ncafé\n".encode("latin-1"))
    assert DatasetFolder.open(corpus).split_ids("splits/names.txt") == ["a1", "café"]


def test_split_file_utf16_without_bom_one_clear_error(corpus, tmp_path, capsys):
    (corpus / "splits" / "train.txt").write_bytes("a0\na1\na2\n".encode("utf-16-le"))
    assert _train(corpus, tmp_path) == 2
    assert "train.txt: line 1: id 'a\\x000\\x00' holds control characters" in capsys.readouterr().out.replace("\n", "")


# -- config files -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, message",
    [
        ("train:\n  lr: 0.01\n".encode("utf-16"), None),  # UTF-16 with BOM works
        ("name: caf\xe9\n".encode("latin-1"), None),  # latin-1 works (name 'café')
        (b"train:\n  lr: fast\n", "c.yaml: train.lr: expected a number, got 'fast'"),
        (b"train: 5\n", "c.yaml: train: expected a mapping"),
        (b"name: 2024-13-01\n", "c.yaml: invalid YAML value"),
        (b"train:\n  epochs: 1e999\n", "c.yaml: train.epochs: expected an integer"),
        (b"1: a\nb: 2\n", "c.yaml: unknown config key"),
        (b"\xff\xfetrain", "c.yaml: config file starts with a UTF-16 mark but is not UTF-16 text"),
    ],
)
def test_config_file_works_or_names_itself(tmp_path, data, message):
    from semprior_core.config import load_config
    from semprior_core.config.tree import ConfigError

    (tmp_path / "c.yaml").write_bytes(data)
    if message is None:
        cfg = load_config(tmp_path / "c.yaml")
        assert cfg.train.lr == 0.01 or cfg.name == "café"
        return
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "c.yaml")
    assert message in str(err.value)


# -- checkpoints ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_truncated_checkpoint_one_clear_error(tmp_path, capsys, cut):
    import torch

    from semprior_core.store.checkpoint import save_checkpoint

    run = tmp_path / "run"
    save_checkpoint(run / "best.pt", {"epoch": 1, "w": torch.zeros(3)})
    data = (run / "best.pt").read_bytes()
    (run / "best.pt").write_bytes(data[: int(len(data) * cut)])
    assert main(["export", "--checkpoint", str(run / "best.pt"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "best.pt: not a readable checkpoint" in capsys.readouterr().out.replace("\n", "")


# -- run folders (report, eval, compare, the dashboard) ----------------------------------------------------------
RUN_DAMAGE = [
    ("run.json", b'{"kind": "trained", "eval_models": "student"}', "run.json: field 'eval_models' must be"),
    ("run.json", b'["trained"]', "run.json: expected a JSON object, got list"),
    ("run.json", b'{"kind": "trained", \xff}', "run.json: not valid JSON"),
    ("metrics.jsonl", b'{"epoch": 1, "loss": 0.5}\n[1, 2]\n{"epoch": 2}\n', "metrics.jsonl: line 2 is a JSON list"),
    ("metrics.jsonl", b'{"epoch": 1, "select_score": "high"}\n', "metrics.jsonl: record 1: field 'select_score' must be a number"),
    ("metrics.jsonl", b'{"loss": 0.5}\n', "metrics.jsonl: record 1: field 'epoch' is missing"),
    ("eval/test_student_best.json", b'{"split": "test"}', "test_student_best.json: field 'model' is missing"),
    ("eval/test_student_best.json",  # found by the property test: an integer no float holds
     b'{"split": "test", "model": "student", "checkpoint": "best", "epoch": 1, "per_image": [], "row": {"IoU": 1'
     + b"0" * 400 + b', "nIoU": 1, "Pd": 1, "Fa": 1}}', "test_student_best.json: field 'row' must be an object with numbers"),
    ("config.yaml", b"train: [1\n", "config.yaml: invalid YAML"),
]


def _write_run(root):
    """A minimal evaluated run directory: what report, compare and the dashboard overview read."""
    import yaml

    from semprior_core.config import config_dict, load_config

    root.mkdir(parents=True)
    cfg = load_config(None, [f"data.datasets=[{{root: {json.dumps(str(root / 'data'))}}}]"])
    (root / "config.yaml").write_text(yaml.safe_dump(config_dict(cfg)))
    (root / "run.json").write_text(json.dumps({"kind": "trained", "method": "supervised", "eval_models": ["student"],
                                               "selection": {"metric": "iou", "uses_dense_val_masks": True},
                                               "supervision": "full"}))
    (root / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "loss": 0.5, "select_score": 0.2,
                                                    "val_student_iou": 0.2}) + "\n")
    (root / "eval").mkdir()
    row = {"IoU": 20.0, "nIoU": 18.0, "Pd": 50.0, "Fa": 3.0}
    (root / "eval" / "test_student_best.json").write_text(json.dumps(
        {"split": "test", "model": "student", "checkpoint": "best", "epoch": 1, "row": row,
         "per_image": [{"key": "data/a4", "intersection": 2, "union": 10}]}))


# `report --no-figures` reads run.json, config.yaml and eval/*.json; the curves it skips read metrics.jsonl.
@pytest.mark.parametrize("name, data, message", [c for c in RUN_DAMAGE if c[0] != "metrics.jsonl"])
def test_damaged_run_folder_report_one_clear_error(tmp_path, capsys, name, data, message):
    run = tmp_path / "run"
    _write_run(run)
    assert main(["report", str(run), "--out", str(tmp_path / "r.md"), "--no-figures"]) == 0  # the intact run works
    (run / name).write_bytes(data)
    capsys.readouterr()
    assert main(["report", str(run), "--out", str(tmp_path / "r.md"), "--no-figures"]) == 2
    out = capsys.readouterr().out.replace("\n", "")
    assert message in out and "Traceback" not in out


@pytest.mark.parametrize("name, data, message", RUN_DAMAGE)
def test_damaged_run_folder_dashboard_loader_one_clear_error(tmp_path, name, data, message):
    from semprior_core.config.tree import ConfigError
    from semprior_core.io import DataError
    from workbench.inspect import compare_runs, metrics_table

    run = tmp_path / "run"
    _write_run(run)
    assert metrics_table(run) and compare_runs([run])
    (run / name).write_bytes(data)
    # The comparison tab reads every file; the overview tab all but config.yaml.
    for load in [lambda r: compare_runs([r])] + ([metrics_table] if name != "config.yaml" else []):
        with pytest.raises((DataError, ConfigError)) as err:
            load(run)
        assert message in str(err.value)


def test_damaged_run_json_eval_one_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    _write_run(run)
    (run / "run.json").write_bytes(b"\xff\xfe{")
    assert main(["eval", "--run", str(run)]) == 2
    assert "run.json: run file starts with a UTF-16 mark" in capsys.readouterr().out.replace("\n", "")
