"""RunDir is the one definition of a run directory's layout: what the engine writes is what the readers find."""

from __future__ import annotations

import json

from semprior_core.store.run_dir import RunDir
from semprior_core.store.runs import Run
from tests.fixtures_runs import tiny_run  # noqa: F401


def test_a_trained_run_holds_exactly_the_files_its_run_dir_names(tiny_run):  # noqa: F811
    files = RunDir(tiny_run)
    for path in (files.config, files.info, files.environment, files.metrics, files.last, files.best,
                 *(files.split(s) for s in ("train", "val", "test"))):  # fmt: skip
        assert path.is_file(), path
    run = Run.open(tiny_run)
    assert run.files == files and run.split("train") == files.split("train").read_text().split()
    assert len(run.history()) == len(files.metrics.read_text().splitlines())


def test_writes_are_what_the_readers_parse(tmp_path):
    files = RunDir(tmp_path / "r")
    assert not (tmp_path / "r").exists()  # naming paths touches nothing
    files.write_config({"name": "x"})
    files.write_splits({"train": ["a", "b"], "val": ["c"], "test": []})
    files.write_metrics([{"epoch": 1, "select_score": 0.5}, {"epoch": 2, "select_score": float("nan")}])
    files.append_metrics({"epoch": 3, "select_score": 0.7})
    files.write_info({"kind": "trained", "eval_models": ["student"]})
    run = Run.open(files.root)
    assert run.split("train") == ["a", "b"] and run.split("test") == []
    assert [r["epoch"] for r in run.history()] == [1, 2, 3]
    assert run.info()["eval_models"] == ["student"] and json.loads(files.info.read_text())["kind"] == "trained"
    assert files.evaluation("test", "student", "best") == files.root / "eval" / "test_student_best.json"
