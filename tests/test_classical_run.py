"""Classical baselines as runs: validation-only tuning, run directory, eval and predict like trained runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semprior_core.classical import ThresholdPolicy, segment, tune
from semprior_core.classical.run import (
    ClassicalConfig,
    ClassicalRun,
    classical_run_dir,
    load_classical_config,
    run_classical,
)
from semprior_core.config.tree import ConfigError
from semprior_core.data.catalog import build_splits
from semprior_core.data.folder import DatasetFolder
from semprior_core.evaluation.evaluate import evaluate_run, predict_folder
from semprior_core.evaluation.metrics import evaluate
from semprior_core.io import DataError, read_image, read_mask
from semprior_core.store.runs import Run, find_runs
from workbench.cli import main


def _config(root: Path, *extra: str, method: str = "tophat"):
    return load_classical_config(
        None, [f"classical.method={method}", f"data.datasets=[{{root: {json.dumps(str(root))}}}]",
               "data.val_fraction=0.25", *extra]
    )


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _square_dataset(root: Path, n_train: int = 8, n_test: int = 4) -> Path:
    """32x32 frames: flat grey 51 with one 3x3 square of 255 (the target) at a different place in each."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "splits" / "50_50").mkdir(parents=True)
    ids = [f"sq{i:02d}" for i in range(n_train + n_test)]
    for i, sid in enumerate(ids):
        y, x = 4 + (3 * i) % 22, 4 + (5 * i) % 22
        img = np.full((32, 32), 51, np.uint8)
        msk = np.zeros((32, 32), np.uint8)
        img[y : y + 3, x : x + 3] = 255
        msk[y : y + 3, x : x + 3] = 255
        Image.fromarray(img).save(root / "images" / f"{sid}.png")
        Image.fromarray(msk).save(root / "masks" / f"{sid}.png")
    (root / "splits" / "50_50" / "train.txt").write_text("\n".join(ids[:n_train]) + "\n")
    (root / "splits" / "50_50" / "test.txt").write_text("\n".join(ids[n_train:]) + "\n")
    return root


@pytest.fixture(scope="module")
def tophat_run(tiny_synthetic, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("classical") / "tophat"
    run_classical(_config(tiny_synthetic), out)
    return out


# ---------------------------------------------------------------- config


def test_search_grid_merges_overrides_and_fixed_params() -> None:
    cfg = ClassicalConfig(method="ipi", grid={"lam": [0.02, 0.05]}, params={"max_iter": 5})
    assert cfg.search_grid() == {"patch": [50], "stride": [10], "lam": [0.02, 0.05], "max_iter": [5]}
    assert ClassicalConfig(method="tophat").search_grid() == {"radius": [2, 3, 4, 5, 6, 8]}


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"method": "lcm"}, "unknown classical method 'lcm'"),
        ({"method": "tophat", "grid": {"size": [3]}}, "classical.grid: tophat has no parameter(s) ['size']"),
        ({"method": "ipi", "params": {"iters": 3}}, "classical.params: ipi has no parameter(s) ['iters']"),
        ({"method": "tophat", "grid": {"radius": [2]}, "params": {"radius": 3}},
         "both tuned (grid) and fixed"),
        ({"method": "tophat", "grid": {"radius": []}}, "entries ['radius'] must be non-empty lists"),
    ],
)
def test_config_errors_name_the_key(kwargs, needle) -> None:
    with pytest.raises(ConfigError) as err:
        ClassicalConfig(**kwargs)
    assert needle in str(err.value)


def test_config_from_a_training_yaml_plus_overrides(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: nuaa\ndata: {val_fraction: 0.2, val_seed: 3}\ntrain: {epochs: 7}\n"
                    "classical: {method: mpcm}\n")
    cfg = load_classical_config(path, ["classical.params={scales: [3, 5]}", "data.val_seed=4"])
    assert (cfg.name, cfg.data.val_fraction, cfg.data.val_seed) == ("nuaa", 0.2, 4)
    assert (cfg.classical.method, cfg.classical.params) == ("mpcm", {"scales": [3, 5]})
    with pytest.raises(ConfigError, match="train.epochs"):  # the training sections are still validated
        load_classical_config(path, ["train.epochs=0"])


# ---------------------------------------------------------------- a hand-computed run


def test_tuning_picks_the_hand_computed_setting(tmp_path) -> None:
    """A 3x3 square on a flat frame: a radius-1 disk (a plus) fits inside it, so the opening keeps the plus
    and the top-hat leaves only the 4 corners (IoU 4/9); a radius-2 disk does not fit, the opening is flat
    and the top-hat is exactly the square (IoU 1 from the first policy, fixed 0.05)."""
    root = _square_dataset(tmp_path / "squares")
    out = tmp_path / "run"
    run = run_classical(_config(root, "classical.grid={radius: [1, 2]}"), out)
    assert (run.params, run.policy) == ({"radius": 2}, ThresholdPolicy("fixed", 0.05))
    lines = (out / "tune.csv").read_text().splitlines()
    assert lines[0] == "radius,policy,value,iou,niou,pd,fa"
    assert len(lines) == 1 + 2 * 76  # two radii times the 19 fixed + 57 mean_std default policies
    assert lines[1].startswith("1,fixed,0.05,") and float(lines[1].split(",")[3]) == pytest.approx(4 / 9)
    res = evaluate_run(out, "test")
    assert (res.metrics.iou, res.metrics.pd, res.metrics.fa, res.metrics.n_images) == (1.0, 1.0, 0.0, 4)


# ---------------------------------------------------------------- the run directory


def test_run_directory_contents(tophat_run, tiny_synthetic) -> None:
    info = _json(tophat_run / "run.json")
    assert info["kind"] == "classical" and info["method"] == "tophat"
    assert info["selection"] == {"metric": "iou", "uses_dense_val_masks": True,
                                 "rule": "val IoU (dense validation masks)"}
    splits = build_splits(_config(tiny_synthetic).data)
    for name in ("train", "val", "test"):
        recorded = (tophat_run / "splits" / f"{name}.txt").read_text().split()
        assert recorded == [r.key for r in splits.get(name)]
    # the chosen setting is what tune() picks from the validation images alone
    val = splits.val
    images, masks = [r.folder.load_image(r.sid) for r in val], [r.folder.load_mask(r.sid) for r in val]
    direct = tune("tophat", images, masks)
    assert (info["params"], info["policy"]) == (direct.params, {"kind": direct.policy.kind,
                                                                "value": direct.policy.value})
    assert info["val"]["iou"] == direct.iou and info["val"]["n_images"] == len(val) == 3
    record = Run.open(tophat_run).history()
    assert len(record) == 1 and record[0]["select_score"] == direct.iou == record[0]["val_tophat_iou"]
    assert [r.info()["kind"] for r in find_runs(tophat_run.parent)] == ["classical"]
    assert classical_run_dir(tophat_run / "run.json") == tophat_run


def test_refuses_to_overwrite_a_finished_run(tophat_run, tiny_synthetic) -> None:
    before = (tophat_run / "run.json").read_bytes()
    with pytest.raises(FileExistsError, match="already holds a run"):
        run_classical(_config(tiny_synthetic, method="mpcm"), tophat_run)
    assert (tophat_run / "run.json").read_bytes() == before


# ---------------------------------------------------------------- eval and predict


def test_eval_matches_an_independent_computation(tophat_run, tiny_synthetic) -> None:
    run = ClassicalRun.open(tophat_run)
    res = evaluate_run(tophat_run, "test")
    folder = DatasetFolder.open(tiny_synthetic)
    ids = (tiny_synthetic / "splits" / "50_50" / "test.txt").read_text().split()
    expected = evaluate([segment(folder.load_image(s), "tophat", run.params, run.policy) for s in ids],
                        [folder.load_mask(s) for s in ids])
    assert res.metrics == expected and res.keys == [f"tiny/{s}" for s in ids]
    saved = _json(tophat_run / "eval" / "test_tophat_best.json")
    assert [saved[k] for k in ("split", "model", "checkpoint", "epoch")] == ["test", "tophat", "best", 0]
    assert saved["metrics"]["iou"] == expected.iou
    # scoring the validation split reproduces the IoU tuning selected with
    val_iou = _json(tophat_run / "run.json")["val"]["iou"]
    assert evaluate_run(tophat_run, "val", save=False).metrics.iou == val_iou


def test_eval_rejects_a_network_or_checkpoint_it_lacks(tophat_run) -> None:
    with pytest.raises(ValueError, match="no network 'student'"):
        evaluate_run(tophat_run, "test", which="student", save=False)
    with pytest.raises(ValueError, match="no checkpoint 'last'"):
        evaluate_run(tophat_run, "test", checkpoint="last", save=False)


def test_predict_writes_the_tuned_masks(tophat_run, tiny_synthetic, tmp_path) -> None:
    run = ClassicalRun.open(tophat_run)
    images = tiny_synthetic / "images"
    written = predict_folder(tophat_run / "run.json", images, tmp_path / "pred", progress=False)
    srcs = sorted(images.glob("*.png"))
    assert [p.name for p in written] == [p.name for p in srcs]
    for src, out in zip(srcs[:4], written[:4]):
        assert np.array_equal(read_mask(out), run.segment(read_image(src)))


def test_cli_eval_and_predict_take_a_classical_run(tophat_run, tiny_synthetic, tmp_path, capsys) -> None:
    capsys.readouterr()
    assert main(["eval", "--run", str(tophat_run), "--split", "test", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["split"], out["model"]) == ("test", "tophat")
    assert out["metrics"] == _json(tophat_run / "eval" / "test_tophat_best.json")["metrics"]
    assert main(["predict", "--checkpoint", str(tophat_run), "--images", str(tiny_synthetic / "images"),
                 "--out", str(tmp_path / "p")]) == 0
    assert len(list((tmp_path / "p").glob("*.png"))) == len(list((tiny_synthetic / "images").glob("*.png")))


# ---------------------------------------------------------------- the test split is never read


def test_tuning_reads_validation_files_only(tiny_synthetic, tmp_path, monkeypatch) -> None:
    read: list[str] = []
    for name in ("load_image", "load_mask"):
        original = getattr(DatasetFolder, name)

        def spy(self, sid, *args, _original=original, **kwargs):
            read.append(sid)
            return _original(self, sid, *args, **kwargs)

        monkeypatch.setattr(DatasetFolder, name, spy)
    run_classical(_config(tiny_synthetic), tmp_path / "run")
    val = [line.split("/", 1)[1] for line in (tmp_path / "run" / "splits" / "val.txt").read_text().split()]
    assert sorted(read) == sorted(val * 2)  # each validation image and mask once, nothing else


def test_corrupt_test_mask_changes_nothing_until_evaluation(tophat_run, tiny_synthetic, tmp_path) -> None:
    broken = tmp_path / "tiny"
    shutil.copytree(tiny_synthetic, broken)
    victim = broken / "masks" / f"{(broken / 'splits' / '50_50' / 'test.txt').read_text().split()[1]}.png"
    victim.write_bytes(b"\x89PNG garbage, not an image" * 8)
    out = tmp_path / "run"
    run_classical(_config(broken), out)
    clean, dirty = _json(tophat_run / "run.json"), _json(out / "run.json")
    for key in ("params", "policy", "val"):
        assert dirty[key] == clean[key]
    assert (out / "tune.csv").read_text() == (tophat_run / "tune.csv").read_text()
    with pytest.raises(DataError, match=str(victim)):
        evaluate_run(out, "test")
    assert not (out / "eval").exists()


def test_eval_notices_a_changed_test_split(tiny_synthetic, tmp_path) -> None:
    data = tmp_path / "tiny"
    shutil.copytree(tiny_synthetic, data)
    run_classical(_config(data), tmp_path / "run")
    split = data / "splits" / "50_50" / "test.txt"
    split.write_text("\n".join(split.read_text().split()[:-1]) + "\n")
    with pytest.raises(DataError, match="no longer matches the ids this run recorded"):
        evaluate_run(tmp_path / "run", "test")


def test_cli_classical_says_what_its_threshold_means(tmp_path, capsys) -> None:
    data = _square_dataset(tmp_path / "sq")
    out = tmp_path / "tophat"
    assert main(["classical", "--method", "tophat", "--data", str(data), "--out", str(out)]) == 0
    text = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "threshold: a pixel is a target where its score" in text
    assert f"semprior eval --run {out} --split test" in text, text


def test_threshold_policies_describe_themselves() -> None:
    assert ThresholdPolicy("fixed", 0.25).describe() == (
        "a pixel is a target where its score, min-max scaled per image to [0, 1], is > 0.25")
    assert "mean + 3 x its standard deviation" in ThresholdPolicy("mean_std", 3.0).describe()
