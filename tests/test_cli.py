from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from workbench.cli import main

TINY = ["--data.crop=32", "--data.batch_size=4", "--data.val_fraction=0.25", "--model.options={widths: [4, 8, 16]}",
        "--train.threads=1", "--quiet"]


@pytest.fixture(scope="module")
def trained_run(tiny_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    rc = main(["train", "--data", str(tiny_synthetic), "--out", str(out), "--supervision", "lesps",
               "--train.epochs=3", "--labels.start_epoch_frac=0.0", "--labels.update_every=1", *TINY])
    assert rc == 0
    return out


def test_eval_json_on_test_split(trained_run, capsys):
    capsys.readouterr()
    assert main(["eval", "--run", str(trained_run), "--split", "test", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["split"] == "test" and out["checkpoint"] == "best"
    assert set(out["metrics"]) >= {"iou", "niou", "pd", "fa"}
    saved = json.loads((trained_run / "eval" / "test_student_best.json").read_text())
    assert len(saved["per_image"]) == 4  # the tiny dataset's 4 test images


def test_predict_writes_one_png_per_image(trained_run, tiny_synthetic, tmp_path):
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(trained_run / "best.pt"), "--images",
                 str(tiny_synthetic / "images"), "--out", str(out)]) == 0
    srcs = sorted((tiny_synthetic / "images").glob("*.png"))
    outs = sorted(out.glob("*.png"))
    assert [p.name for p in outs] == [p.name for p in srcs]
    for s, o in zip(srcs[:3], outs[:3]):
        a, b = Image.open(s), Image.open(o)
        assert a.size == b.size and b.mode == "L"


def test_labels_table(trained_run, capsys):
    assert main(["labels", "--run", str(trained_run)]) == 0
    text = capsys.readouterr().out
    assert "mean_iou_vs_gt" in text and "diagnostic" in text


def test_data_check_exit_codes(tiny_synthetic, tmp_path, capsys):
    assert main(["data", "check", str(tiny_synthetic)]) == 0
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_synthetic, broken)
    victim = sorted((broken / "masks").glob("*.png"))[0]
    Image.fromarray(np.full((7, 7), 3, np.uint8)).save(victim)
    assert main(["data", "check", str(broken)]) == 1
    assert victim.name in capsys.readouterr().out


def test_user_errors_exit_2_with_message(tiny_synthetic, tmp_path, capsys):
    assert main(["train", "--data", str(tiny_synthetic), "--out", str(tmp_path / "r"), "--train.epochz=3"]) == 2
    assert "unknown config key 'train.epochz'" in capsys.readouterr().out
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), *TINY]) == 2
    assert "dataset folder not found" in capsys.readouterr().out
    assert main(["eval", "--run", str(tmp_path / "nope")]) == 2


def test_points_command(tiny_synthetic, tmp_path):
    out = tmp_path / "p.json"
    assert main(["points", "--data", str(tiny_synthetic), "--kind", "coarse", "--seed", "2", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["kind"] == "coarse" and data["seed"] == 2 and len(data["images"]) == 16


def test_demo_end_to_end_writes_report(tmp_path, capsys):
    """The main job on its embedded default, shrunk: synthetic data, semprior teacher + student, report."""
    out = tmp_path / "demo"
    args = ["--data.synthetic_size=64", "--data.synthetic_train=10", "--data.synthetic_test=4", "--data.crop=64",
            "--data.batch_size=4", "--train.epochs=2", "--train.steps=4", "--train.eval_every=1",
            "--labels.start_epoch_frac=0.0", "--labels.update_every=1", "--vfm.input_size=112", "--train.threads=1",
            "--quiet"]
    rc = main(["demo", "--out", str(out), *args])
    assert rc == 0
    report = (out / "report.md").read_text()
    assert "| test | student |" in report and "| test | teacher |" in report
    assert "validation split carved from training" in report
    for fig in ("curves.png", "labels.png", "examples_test_student.png"):
        assert (out / "report" / fig).stat().st_size > 1000
    # A second demo into the same folder re-reports the finished run instead of failing or retraining.
    before = (out / "last.pt").read_bytes()
    capsys.readouterr()
    assert main(["demo", "--out", str(out), *args]) == 0
    assert "already holds a demo run" in capsys.readouterr().out
    assert (out / "last.pt").read_bytes() == before


def test_missing_optional_dependency_names_the_extra(tiny_full_run, monkeypatch, capsys):
    """Without the [app] extra, `semprior dashboard` says what to install instead of a traceback."""
    import sys

    for name in [m for m in sys.modules if m == "workbench.dashboard" or m.startswith("workbench.dashboard.")]:
        monkeypatch.delitem(sys.modules, name)  # an earlier test's import would skip `import panel`
    monkeypatch.setitem(sys.modules, "panel", None)  # makes `import panel` fail as if it were not installed
    assert main(["dashboard", "--run", str(tiny_full_run), "--port", "0"]) == 2
    out = capsys.readouterr().out
    assert "panel" in out and "pip install -e '.[app]'" in out
