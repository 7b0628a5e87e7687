"""The generalisation section of ``semprior report``: tables, the equal-Pd check, figures, what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from semprior_core.config import load_config
from semprior_core.data.synthetic import SyntheticConfig, generate
from semprior_core.engine import train
from semprior_core.evaluation.cross_eval import evaluate_on
from semprior_core.evaluation.detection_curves import CurveCounts
from semprior_core.evaluation.evaluate import evaluate_run
from workbench.generalisation import equal_pd_check, paired_false_alarms, section
from workbench.report import detection_lines
from workbench.results import Entry, build_report

T = (0.3, 0.5, 0.7)
TINY = ["data.crop=32", "data.batch_size=4", "data.val_fraction=0.25", "model.options={widths: [4, 8, 16]}",
        "train.threads=1", "train.device=cpu", "method.supervision=full", "train.epochs=1"]  # fmt: skip


def _counts(n_frames: int, n_targets: int, detected, objects) -> dict:
    return CurveCounts(T, n_frames, n_targets, 100 * n_frames, tuple(detected), (0, 0, 0), tuple(objects)).to_dict()


def _entry(method: str, detected, objects, free_objects) -> Entry:
    ev = {"curves": {"all": _counts(10, 10, detected, objects), "target_free": _counts(4, 0, (0, 0, 0), free_objects)}}
    return Entry("A → B", method, "student", evals=[ev])


def test_equal_pd_check_by_hand():
    # semprior: Pd at 0.5 is 0.8, LESPS 0.6, so equal Pd = 0.6. semprior reaches it between t=0.7 (Pd 0.4,
    # 0.5 objects/frame) and t=0.5 (Pd 0.8, 1.0): 0.75; LESPS exactly at t=0.5: 2.0 objects/frame.
    sp = _entry("semprior", (9, 8, 4), (30, 10, 5), (8, 4, 2))  # target-free: (2, 1, 0.5) per frame -> 0.75
    lesps = _entry("lesps", (7, 6, 5), (40, 20, 10), (12, 8, 4))  # -> (3, 2, 1) per frame -> 2.0
    text = "\n".join(equal_pd_check([sp, lesps]))
    assert "equal Pd = 60.0 %" in text
    assert "| all frames | 0.75 | 2.00 | met (-1.25) |" in text
    assert "| target-free frames | 0.75 | 2.00 | met (-1.25) |" in text
    worse = _entry("semprior", (9, 8, 4), (90, 60, 50), (8, 4, 2))
    assert "**not met**" in "\n".join(equal_pd_check([worse, lesps]))
    assert "not measurable here (no LESPS" in equal_pd_check([sp])[0]


def test_paired_false_alarms_by_hand():
    # six images, semprior never fires, the other 1..6 times: six distinct negative differences, so the exact
    # two-sided Wilcoxon p is 2 / 2**6 (only the all-negative and all-positive sign patterns are as extreme)
    diff, p = paired_false_alarms([0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6])
    assert diff == pytest.approx(-3.5) and p == pytest.approx(2 / 64)
    assert paired_false_alarms([1, 2], [1, 2]) == (0.0, 1.0)


def test_section_renders_without_any_run(tmp_path):
    lines = section([tmp_path], tmp_path / "figs", tmp_path)
    text = "\n".join(lines)
    assert "No cross-dataset evaluations were found." in text
    assert "semprior reproduce cpu --jobs 2" in text and "--data ../shared/data/NUDT-SIRST" in text


def _run(data: Path, out: Path) -> Path:
    train(load_config(None, [f"data.datasets=[{{root: '{data}'}}]", *TINY]), out, progress=False)
    evaluate_run(out, "test", device="cpu")
    return out


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("gen")
    cfg = dict(n_train=8, n_test=4, height=64, width=64, size_range=None, empty_fraction=0.25, empty_clutter=1.0)
    return generate(base / "DA", SyntheticConfig(seed=1, **cfg)), generate(base / "DB", SyntheticConfig(seed=2, **cfg))


@pytest.fixture(scope="module")
def runs(two_datasets, tmp_path_factory) -> Path:
    """One tiny run per dataset, each evaluated on its own test split."""
    a, b = two_datasets
    root = tmp_path_factory.mktemp("genruns") / "runs"
    _run(a, root / "a" / "full")
    _run(b, root / "b" / "full")
    return root


def test_report_has_the_direction_that_exists_and_lists_the_missing_one(two_datasets, runs, tmp_path):
    a, b = two_datasets
    on_a, on_b = runs / "a" / "full", runs / "b" / "full"
    evaluate_on(on_a, b, device="cpu")
    out = build_report([runs], tmp_path / "docs" / "results.md", "semprior report runs")
    text = out.read_text()
    assert "## Generalisation: trained on one dataset, evaluated on another" in text
    assert "### Trained on DA, evaluated on DB (test split)" in text
    assert "| full supervision | student | 1 |" in text and "FA objects / target-free frame" in text
    assert "not measurable here (no semprior and LESPS student evaluation)" in text
    assert (tmp_path / "docs" / "figures" / "generalisation" / "DA-to-DB--test-split-pd-fa.png").is_file()
    assert "### Trained on DB" not in text
    assert f"- trained on DB, evaluated on DA: 1 run(s) not evaluated; `semprior eval --run {on_b} --data {a}" in text
    assert "trained on DA, evaluated on DB" not in text.split("### Missing")[1]


def test_missing_compares_runs_named_relatively(two_datasets, runs, monkeypatch):
    a, b = two_datasets
    evaluate_on(runs / "a" / "full", b, device="cpu")
    monkeypatch.chdir(runs.parent)  # as in `semprior report results/...`: relative run paths
    text = "\n".join(section(["runs"], runs.parent / "figs", runs.parent, with_figures=False))
    missing = text.split("### Missing")[1]
    assert "trained on DA, evaluated on DB" not in missing
    assert "- trained on DB, evaluated on DA: 1 run(s) not evaluated; `semprior eval --run runs/b/full" in missing


def test_run_report_states_false_alarms_on_target_free_frames(runs):
    run = runs / "b" / "full"
    lines = detection_lines(run, evaluate_run(run, "test", device="cpu", save=False), run / "report")
    text = "\n".join(lines)
    assert "False-alarm objects per frame at threshold 0.5" in text and "on its 1 target-free frames" in text
    assert "size: 1–9 px" in text and (run / "report" / "pd_fa_student.png").is_file()
