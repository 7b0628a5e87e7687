from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from semprior_core.config import ConfigError, load_config
from semprior_core.engine import Trainer, TrainingError, lr_factor, read_history, train
from semprior_core.store.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from semprior_core.store.label_history import LabelHistory
from semprior_core.store.runs import Run, kept_record
from tests.histories import assert_same_history


def tiny_cfg(root, *extra):
    return load_config(None, [
        f"data.datasets=[{{root: {root}}}]", "data.crop=32", "data.batch_size=4", "data.val_fraction=0.25",
        "model.options={widths: [4, 8, 16]}", "train.epochs=4", "train.lr=0.01", "train.threads=1",
        *extra,
    ])


def test_lr_schedule_pure():
    cfg = load_config(None, ["train.epochs=10", "train.schedule=step", "train.step_milestones=[0.5]"])
    assert [lr_factor(cfg, e) for e in (0, 4, 5, 9)] == [1.0, 1.0, pytest.approx(0.1), pytest.approx(0.1)]
    cfg = load_config(None, ["train.epochs=10", "train.schedule=cosine", "train.warmup_epochs=1"])
    assert lr_factor(cfg, 0) == 0.5 and lr_factor(cfg, 1) == 1.0 and lr_factor(cfg, 9) < 0.05


def test_full_supervision_loss_falls_and_run_files(tiny_synthetic, tmp_path):
    # output_prior=0: the default head init starts BCE near ln 2, so "the loss falls" means learning
    cfg = tiny_cfg(tiny_synthetic, "method.supervision=full", "train.epochs=12", "train.loss=bce",
                   "train.schedule=constant", "train.lr=0.03", "model.output_prior=0")
    hist = train(cfg, tmp_path / "run", progress=False)
    assert hist[-1]["loss"] < 0.6 * hist[0]["loss"]
    run = tmp_path / "run"
    for name in ("config.yaml", "environment.json", "metrics.jsonl", "last.pt", "best.pt", "splits/val.txt"):
        assert (run / name).exists(), name
    assert len(read_history(run)) == 12
    info = json.loads((run / "run.json").read_text())
    assert info["selection"] == {"metric": "iou", "uses_dense_val_masks": True, "keep": "best"}
    best = load_checkpoint(run / "best.pt")
    scores = [r["select_score"] for r in hist]
    assert best["epoch"] == int(np.argmax(scores)) + 1  # selection by validation score


def test_point_supervision_selects_without_dense_masks(tiny_synthetic, tmp_path):
    cfg = tiny_cfg(tiny_synthetic, "labels.rule=fixed", "train.epochs=2")
    train(cfg, tmp_path / "run", progress=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["selection"] == {"metric": "point_f1", "uses_dense_val_masks": False, "keep": "best"}


@pytest.mark.parametrize(("select", "kept"), [("auto", 1), ("last", 3)])
def test_best_pt_holds_the_best_scoring_epoch_or_with_select_last_the_final_one(tiny_synthetic, tmp_path,
                                                                               monkeypatch, select, kept):
    scores = iter([0.9, 0.5, 0.1])  # falling validation scores: the best epoch is the first

    def validate(self):
        return {"select_score": next(scores)}

    monkeypatch.setattr(Trainer, "_validate", validate)
    cfg = tiny_cfg(tiny_synthetic, "labels.rule=fixed", "train.epochs=3", f"train.select={select}")
    train(cfg, tmp_path / "run", progress=False)
    assert load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == kept
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["selection"]["keep"] == ("last" if select == "last" else "best")


def test_a_run_resumed_with_select_last_ends_with_its_final_epoch_in_best_pt(tiny_synthetic, tmp_path, monkeypatch):
    scores = iter([0.9, 0.5, 0.1])
    monkeypatch.setattr(Trainer, "_validate", lambda self: {"select_score": next(scores)})
    base = ["labels.rule=fixed", "train.schedule=constant"]
    train(tiny_cfg(tiny_synthetic, *base, "train.epochs=2"), tmp_path / "run", progress=False)
    assert load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == 1
    train(tiny_cfg(tiny_synthetic, *base, "train.epochs=3", "train.select=last"), tmp_path / "run", resume=True,
          progress=False)
    assert load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == 3  # though epoch 1 scored highest
    run = Run.open(tmp_path / "run")  # readers find the kept epoch by run.json's selection, updated on resume
    assert kept_record(run.history(), run.info()["selection"])["epoch"] == 3


def _interrupt_after(monkeypatch, n_steps):
    from semprior_core.method.supervised import SupervisedMethod

    orig = SupervisedMethod.train_step
    calls = {"n": 0}

    def step(self, batch):
        calls["n"] += 1
        if calls["n"] > n_steps:
            raise KeyboardInterrupt
        return orig(self, batch)

    monkeypatch.setattr(SupervisedMethod, "train_step", step)


@pytest.mark.parametrize("rule", ["lesps", "pal"])
def test_resume_equals_uninterrupted(tiny_synthetic, tmp_path, monkeypatch, rule):
    extra = [f"labels.rule={rule}", "labels.start_epoch_frac=0.0", "labels.update_every=1",
             "labels.pal.pre_start=0.0", "labels.pal.update_every=1", "train.loss=focal"]
    cfg = tiny_cfg(tiny_synthetic, *extra)
    full = train(cfg, tmp_path / "a", progress=False)

    with monkeypatch.context() as m:
        _interrupt_after(m, full[0]["steps"] + full[1]["steps"])  # dies at the first step of epoch 3
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / "b", progress=False)
    assert len(read_history(tmp_path / "b")) == 2
    resumed = train(cfg, tmp_path / "b", resume=True, progress=False)

    assert_same_history(resumed, full)
    a, b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    for k, v in a["networks"]["student"].items():
        assert torch.equal(v, b["networks"]["student"][k]), k
    for la, lb in zip(a["supervision"]["labels"], b["supervision"]["labels"]):
        assert torch.equal(la, lb)
    ha, hb = LabelHistory(tmp_path / "a"), LabelHistory(tmp_path / "b")
    assert ha.epochs == hb.epochs and len(ha) >= 2


def test_existing_run_is_not_overwritten(tiny_synthetic, tmp_path):
    cfg = tiny_cfg(tiny_synthetic, "train.epochs=1")
    train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="already holds a run"):
        train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(cfg, tmp_path / "other", resume=True, progress=False)


def test_unwritable_run_dir_fails_before_training(tiny_synthetic, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TrainingError, match="not writable"):
        Trainer(tiny_cfg(tiny_synthetic), blocker / "run", progress=False)


def test_nan_loss_stops_with_last_good_checkpoint(tiny_synthetic, tmp_path, monkeypatch):
    from semprior_core.method.supervised import SupervisedMethod

    cfg = tiny_cfg(tiny_synthetic)
    orig = SupervisedMethod.train_step
    calls = {"n": 0}

    def step(self, batch):
        calls["n"] += 1
        loss, logs = orig(self, batch)
        return (loss * float("nan"), logs) if calls["n"] == 3 else (loss, logs)

    monkeypatch.setattr(SupervisedMethod, "train_step", step)
    with pytest.raises(TrainingError, match="non-finite loss .* at epoch 2"):
        train(cfg, tmp_path / "run", progress=False)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["networks"]["student"].values() if v.is_floating_point())


def test_checkpoint_checksum_and_compat(tmp_path, tiny_synthetic):
    p = save_checkpoint(tmp_path / "c.pt", {"x": torch.arange(4), "config": {"model": {"backbone": "unet"}}})
    assert load_checkpoint(p)["x"].tolist() == [0, 1, 2, 3]
    raw = bytearray(p.read_bytes())
    i = raw.find(bytes(torch.arange(4).numpy().tobytes()))
    if i < 0:  # payload is compressed in the blob: flip a byte in the middle instead
        i = len(raw) // 2
    raw[i] ^= 0xFF
    (tmp_path / "bad.pt").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")

    cfg = tiny_cfg(tiny_synthetic, "train.epochs=1")
    train(cfg, tmp_path / "run", progress=False)
    other = tiny_cfg(tiny_synthetic, "train.epochs=2", "model.backbone=alcnet", "model.options={}")
    with pytest.raises(ConfigError, match="model.backbone is 'unet' in the run but 'alcnet' now"):
        train(other, tmp_path / "run", resume=True, progress=False)


def test_nuaa_points_loss_falls(nuaa_root, tmp_path):
    """A handful of real NUAA-SIRST images: training from centroid points reduces the loss."""
    split = tmp_path / "few.txt"
    ids = (nuaa_root / "splits/50_50/train.txt").read_text().split()[:10]
    split.write_text("\n".join(ids))
    cfg = load_config(None, [
        f"data.datasets=[{{root: {nuaa_root}, train_split: {split}, test_split: ''}}]", "data.crop=64",
        "data.batch_size=4", "data.val_fraction=0.2", "train.epochs=5", "train.loss=bce", "train.lr=0.03",
        "train.schedule=constant", "train.threads=2", "labels.rule=fixed", "labels.point_radius=1",
        "model.options={widths: [4, 8, 16, 32]}",
    ])
    hist = train(cfg, tmp_path / "run", progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"]


def test_second_training_into_one_run_is_refused(tiny_synthetic, tmp_path):
    from semprior_core.engine import Trainer

    cfg = tiny_cfg(tiny_synthetic, "method.supervision=full", "train.epochs=1")
    first = Trainer(cfg, tmp_path / "run", progress=False)
    with pytest.raises(TrainingError, match="another process is training into this run"):
        Trainer(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    first.fit()
    first.close()  # what the end of train() or of the process does
    train(cfg, tmp_path / "run", resume=True, progress=False)  # the run is free again
