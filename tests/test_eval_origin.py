"""``semprior eval --run A --checkpoint X`` scores X only if run A wrote it, and saves a flat ``eval/`` file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from semprior_core.config import load_config
from semprior_core.engine import train
from semprior_core.evaluation.evaluate import evaluate_run
from semprior_core.io import DataError
from semprior_core.store.checkpoint import load_checkpoint, save_checkpoint
from workbench.cli import main

TINY = ["data.crop=32", "data.batch_size=4", "data.val_fraction=0.25", "model.options={widths: [4, 8, 16]}",
        "train.threads=1", "train.device=cpu", "method.supervision=full", "train.epochs=1"]  # fmt: skip


def _run(root: Path, out: Path, *extra: str) -> Path:
    train(load_config(None, [f"data.datasets=[{{root: '{root}'}}]", *TINY, *extra]), out, progress=False)
    return out


@pytest.fixture(scope="module")
def runs(tiny_synthetic, tmp_path_factory) -> tuple[Path, Path]:
    """Two runs of one config, told apart only by their run ids."""
    base = tmp_path_factory.mktemp("origin")
    return _run(tiny_synthetic, base / "a"), _run(tiny_synthetic, base / "b")


def _eval_files(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run / "eval")) for p in (run / "eval").rglob("*")) if (run / "eval").exists() else []


def test_checkpoint_of_another_run_is_refused(runs, capsys):
    a, b = runs
    before = _eval_files(a)
    capsys.readouterr()
    assert main(["eval", "--run", str(a), "--checkpoint", str(b / "best.pt"), "--device", "cpu"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert f"{b / 'best.pt'}: a checkpoint of another run" in out and str(a) in out
    assert _eval_files(a) == before


def test_own_checkpoint_by_path_lands_flat_in_eval(runs):
    a, _ = runs
    res = evaluate_run(a, "test", checkpoint=str(a / "best.pt"), device="cpu")
    assert res.checkpoint == "best"
    shutil.copy2(a / "best.pt", a / "epoch1.pt")
    assert evaluate_run(a, "test", checkpoint=str(a / "epoch1.pt"), device="cpu").checkpoint == "epoch1"
    assert {"test_student_best.json", "test_student_epoch1.json"} <= set(_eval_files(a))
    assert all("/" not in name for name in _eval_files(a))


def test_copy_elsewhere_is_scored_but_never_as_the_runs_best(runs, tmp_path):
    a, _ = runs
    copy = tmp_path / "backup" / "best.pt"
    copy.parent.mkdir()
    shutil.copy2(a / "best.pt", copy)
    res = evaluate_run(a, "val", checkpoint=str(copy), device="cpu")
    assert res.checkpoint.startswith("best-") and res.checkpoint != "best"
    saved = json.loads((a / "eval" / f"val_student_{res.checkpoint}.json").read_text())
    assert saved["checkpoint"] == res.checkpoint


def test_checkpoints_from_before_run_ids_are_matched_by_config(runs, tiny_synthetic, tmp_path):
    a, _ = runs
    other = _run(tiny_synthetic, tmp_path / "c", "train.seed=1")
    for src, name in ((a / "best.pt", "own.pt"), (other / "best.pt", "other.pt")):
        ckpt = load_checkpoint(src)
        del ckpt["run_id"]
        save_checkpoint(tmp_path / name, ckpt)
    assert evaluate_run(a, "val", checkpoint=str(tmp_path / "own.pt"), device="cpu", save=False).epoch == 1
    with pytest.raises(DataError, match="not a checkpoint of .*: train.seed is 1 in the checkpoint but 0 in the run"):
        evaluate_run(a, "val", checkpoint=str(tmp_path / "other.pt"), device="cpu", save=False)
