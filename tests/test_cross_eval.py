"""``semprior eval --run R --data OTHER``: a run scored on another dataset with its own checkpoint and settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semprior_core.classical.run import load_classical_config, run_classical
from semprior_core.config import load_config
from semprior_core.data.catalog import SampleRef
from semprior_core.data.dataset import ImageBank
from semprior_core.data.folder import DatasetFolder
from semprior_core.data.synthetic import SyntheticConfig, generate
from semprior_core.engine import train
from semprior_core.evaluation.cross_eval import cross_evaluations, evaluate_on
from semprior_core.evaluation.evaluate import evaluate_run, load_run, predict_bank
from semprior_core.evaluation.metrics import evaluate
from semprior_core.io import DataError
from semprior_core.store.checkpoint import load_checkpoint
from semprior_core.store.run_dir import RunDir
from semprior_core.store.runs import Run
from workbench.cli import main
from workbench.inspect.false_alarms import false_alarm_patch, false_alarms

# Trained just enough (as conftest's tiny_full_run) to predict components, so false alarms exist to count.
TINY = ["data.crop=32", "data.batch_size=4", "data.val_fraction=0.25", "model.options={widths: [4, 8, 16]}",
        "train.epochs=6", "train.lr=0.03", "train.schedule=constant", "train.loss=bce", "data.target_prob=0.0",
        "train.threads=1", "train.device=cpu", "method.supervision=full"]  # fmt: skip


@pytest.fixture(scope="module")
def other(tmp_path_factory) -> Path:
    """Another synthetic dataset: 64 px, 6 test images of which 2 target-free with structured clutter."""
    root = tmp_path_factory.mktemp("other") / "OTHER"
    generate(root, SyntheticConfig(n_train=4, n_test=6, seed=7, height=64, width=64, size_range=None,
                                   empty_fraction=0.34, empty_clutter=1.0))
    return root


@pytest.fixture(scope="module")
def runs(tiny_synthetic, tmp_path_factory) -> tuple[Path, Path]:
    """A tiny trained run and a tuned top-hat, both on ``tiny_synthetic``, under one parent folder."""
    base = tmp_path_factory.mktemp("cross")
    trained = base / "student"
    train(load_config(None, [f"data.datasets=[{{root: '{tiny_synthetic}'}}]", *TINY]), trained, progress=False)
    classical = base / "tophat"
    run_classical(load_classical_config(None, ["classical.method=tophat", "classical.grid={radius: [3]}",
                                               f"data.datasets=[{{root: {json.dumps(str(tiny_synthetic))}}}]",
                                               "data.val_fraction=0.25"]), classical)
    return trained, classical


def _manual_metrics(run_dir: Path, data: Path, ids: list[str]):
    """The run's metrics on ``ids`` of ``data``, predicted here without cross_eval's code."""
    run = load_run(run_dir / "best.pt", "cpu")
    folder = DatasetFolder.open(data)
    bank = ImageBank([SampleRef(folder, s) for s in ids])
    probs = predict_bank(run, "student", bank, torch.device("cpu"))
    return evaluate(probs, [bank.mask(i) for i in range(len(bank))])


def test_cross_eval_uses_the_runs_checkpoint_and_says_what_was_trained_on(runs, other, tiny_synthetic):
    trained, _ = runs
    before = len(Run(trained).evaluations())
    res = evaluate_on(trained, other, device="cpu")
    assert [t["name"] for t in res.trained_on] == [tiny_synthetic.name]
    ev = res.evaluated_on
    assert (ev["name"], ev["split"], ev["n_images"], ev["n_target_free"], res.same_data) == ("OTHER", "test", 6, 2, False)
    assert res.threshold == 0.5 and res.checkpoint == "best"
    ckpt_norm = load_checkpoint(trained / "best.pt")["normalization"]
    assert res.normalization == pytest.approx(ckpt_norm)
    ids = [k.split("/", 1)[1] for k in res.keys]
    assert res.metrics == _manual_metrics(trained, other, ids)
    saved = json.loads((RunDir(trained).eval_cross_dir / "OTHER" / "test_student_best.json").read_text())
    assert saved["trained_on"] == res.trained_on and saved["evaluated_on"]["root"] == str(other.resolve())
    assert saved["false_alarms"]["target_free"]["n_frames"] == 2
    assert len(Run(trained).evaluations()) == before  # in-dataset tables never see another dataset
    assert [e["evaluated_on"]["name"] for e in cross_evaluations(trained)] == ["OTHER"]


def test_records_agree_with_the_four_numbers(runs, other):
    res = evaluate_on(runs[0], other, device="cpu", save=False)
    d = res.to_dict()
    curve = res.curve()
    k = curve.thresholds.index(0.5)
    n_targets = sum(s.n_targets for s in res.per_image)
    assert curve.n_targets == n_targets and curve.n_frames == 6
    assert curve.n_detected[k] == sum(s.n_detected for s in res.per_image)
    assert curve.fa_pixels[k] == sum(s.false_alarm_pixels for s in res.per_image)
    assert curve.fa_objects[k] == d["false_alarms"]["all"]["n_objects"]
    assert sum(b["n_targets"] for b in d["bins"]["size"]) == n_targets
    assert res.curve("target_free").n_frames == 2 and res.curve("target_free").n_targets == 0
    for rec, s in zip(d["per_image"], res.per_image, strict=True):
        assert sum(rec["detected"]) == s.n_detected and sum(rec["false_alarm_areas"]) == s.false_alarm_pixels


def test_own_data_test_split_equals_plain_eval_and_all_is_refused(runs, tiny_synthetic):
    trained, _ = runs
    res = evaluate_on(trained, tiny_synthetic, device="cpu", save=False)
    assert res.same_data
    assert res.metrics == evaluate_run(trained, "test", device="cpu", save=False).metrics
    with pytest.raises(DataError, match="training images"):
        evaluate_on(trained, tiny_synthetic, split="all", device="cpu", save=False)


def test_split_all_scores_every_image(runs, other):
    assert evaluate_on(runs[0], other, split="all", device="cpu", save=False).evaluated_on["n_images"] == 10


def test_classical_run_is_scored_with_its_tuned_setting(runs, other):
    _, classical = runs
    res = evaluate_on(classical, other)
    assert res.model == "tophat" and res.threshold is None and res.normalization is None
    assert (RunDir(classical).eval_cross_dir / "OTHER" / "test_tophat_best.json").is_file()
    curve = res.curve()
    assert len(set(curve.n_detected)) == 1  # binary masks: one operating point


def test_cli_eval_data_prints_both_datasets_and_handles_a_folder_of_runs(runs, other, tmp_path, capsys):
    trained, _ = runs
    parent = tmp_path / "runs"
    for r in runs:
        shutil.copytree(r, parent / r.name)
    capsys.readouterr()
    assert main(["eval", "--run", str(parent), "--data", str(other), "--device", "cpu"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.count("→ evaluated on OTHER (test split, 6 images, 2 target-free)") == 2
    assert "false-alarm objects per frame" in out and "Pd per target size" in out
    assert all((RunDir(parent / r.name).eval_cross_dir / "OTHER").is_dir() for r in runs)
    assert main(["eval", "--run", str(trained), "--data", str(other), "--device", "cpu", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["evaluated_on"]["name"] == "OTHER" and "per_image" not in d


@pytest.mark.parametrize("case", ["data", "run", "masks"])
def test_bad_input_is_one_error_naming_the_path(runs, other, tmp_path, capsys, case):
    trained, _ = runs
    data, run = other, trained
    if case == "data":
        data = tmp_path / "nope"
    elif case == "run":
        run = tmp_path / "no-run"
    else:
        data = tmp_path / "nomasks"
        shutil.copytree(other / "images", data / "images")
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--data", str(data), "--device", "cpu"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    expected = {"data": f"{data}: dataset folder not found", "run": f"{run}: run folder not found",
                "masks": f"{data}: no masks/ folder"}[case]
    assert expected in out


def test_split_all_needs_data(runs):
    with pytest.raises(SystemExit, match="--split all needs --data"):
        main(["eval", "--run", str(runs[0]), "--split", "all"])


def test_false_alarms_largest_first_and_counted_as_in_the_evaluation(runs, other):
    trained, _ = runs
    rows = false_alarms(trained, other)
    res = evaluate_on(trained, other, device="cpu", save=False).to_dict()
    assert len(rows) == res["false_alarms"]["all"]["n_objects"] > 1
    areas = [r["area"] for r in rows]
    assert areas == sorted(areas, reverse=True)
    keys = {p["key"] for p in res["per_image"]}
    assert all(r["frame"] in keys for r in rows)
    by_frame = {p["key"]: sorted(p["false_alarm_areas"], reverse=True) for p in res["per_image"]}
    for key, expected in by_frame.items():
        assert sorted((r["area"] for r in rows if r["frame"] == key), reverse=True) == expected
    assert false_alarms(trained, other, limit=1) == rows[:1]


def test_false_alarms_on_frames_without_masks(runs, other, tmp_path):
    trained, _ = runs
    data = tmp_path / "frames"
    shutil.copytree(other / "images", data / "images")
    with pytest.raises(DataError, match="no masks/ folder"):
        false_alarms(trained, data, split="all")
    rows = false_alarms(trained, data, split="all", assume_target_free=True)
    assert rows
    # with no target, every predicted component is a false alarm: all predicted pixels are counted
    run = load_run(trained / "best.pt", "cpu")
    folder = DatasetFolder.open(data)
    ids = sorted(p.stem for p in (data / "images").iterdir())
    probs = predict_bank(run, "student", ImageBank([SampleRef(folder, s) for s in ids]), torch.device("cpu"))
    assert sum(r["area"] for r in rows) == int(sum(np.count_nonzero(p > 0.5) for p in probs))


@pytest.mark.slow  # ~25 s of CPU: 66 real images tuned, 214 scored
def test_real_data_top_hat_tuned_on_nudt_scored_on_nuaa(nuaa_root, tmp_path):
    nudt = nuaa_root.parent / "NUDT-SIRST"
    if not nudt.is_dir():
        pytest.skip("shared NUDT-SIRST data not present")
    run_dir = tmp_path / "tophat"
    run_classical(load_classical_config(None, ["classical.method=tophat", "classical.grid={radius: [4]}",
                                               f"data.datasets=[{{root: {json.dumps(str(nudt))}}}]"]), run_dir)
    d = evaluate_on(run_dir, nuaa_root).to_dict()
    assert [t["name"] for t in d["trained_on"]] == ["NUDT-SIRST"] and d["evaluated_on"]["name"] == "NUAA-SIRST"
    assert d["evaluated_on"]["n_images"] == 214  # NUAA-SIRST's 50/50 test split (CRLF lines)
    n_targets = sum(p["n_targets"] for p in d["per_image"])
    assert sum(b["n_targets"] for b in d["bins"]["size"]) == n_targets > 200
    assert d["curves"]["all"]["n_detected"][0] == round(d["metrics"]["pd"] * n_targets)


def test_false_alarm_patch_is_centred_and_cut_at_the_border(tmp_path):
    image = np.arange(20 * 30, dtype=np.uint8).reshape(20, 30)
    (tmp_path / "images").mkdir()
    Image.fromarray(image).save(tmp_path / "images" / "f.png")
    row = {"frame": "d/f", "area": 4, "y": 10.5, "x": 15.5, "top": 10, "left": 15, "bottom": 12, "right": 17}
    patch, box = false_alarm_patch(tmp_path, row, size=8)
    # centre (10, 16) rounded: window rows 6..13, columns 12..19
    np.testing.assert_allclose(patch, image[6:14, 12:20] / 255.0, atol=1e-6)
    assert box == (4, 3, 6, 5)
    corner = {**row, "y": 1.0, "x": 28.0, "top": 1, "left": 28, "bottom": 2, "right": 29}
    patch, box = false_alarm_patch(tmp_path, corner, size=8)
    assert patch.shape == (8, 8) and box == (1, 6, 2, 7)  # window held inside: rows 0..7, columns 22..29
    assert false_alarm_patch(tmp_path, row, size=64)[0].shape == (20, 30)
