"""Strict resume: only fields on the allow-list may change, every change is recorded, and a refused resume
leaves the run folder byte-identical."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from semprior_core.config import ConfigError, check_resume, load_config
from semprior_core.engine import TrainingError, train
from semprior_core.io import DataError
from semprior_core.store.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tests.fixtures_runs import tiny_run  # noqa: F401
from tests.histories import assert_same_history
from workbench.cli import main

TINY = ["data.crop=32", "data.batch_size=4", "data.val_fraction=0.25", "model.options={widths: [4, 8, 16]}",
        "train.lr=0.01", "train.threads=1"]  # fmt: skip
LESPS = ["labels.rule=lesps", "labels.start_epoch_frac=0.0", "labels.update_every=1"]
FULL = ["method.supervision=full"]


def tiny_cfg(root: Path, *extra: str):
    return load_config(None, [f"data.datasets=[{{root: '{root}'}}]", *TINY, *extra])


def snapshot(run: Path) -> dict[str, tuple]:
    """Every entry under ``run``: a file's hash, inode and mtime (a rewrite with equal bytes shows too), a
    folder's presence."""
    out: dict[str, tuple] = {}
    for p in sorted(run.rglob("*")):
        st = p.stat()
        key = str(p.relative_to(run))
        out[key] = ("dir",) if p.is_dir() else (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_ino, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def lesps_run(tiny_synthetic, tmp_path_factory) -> Path:
    """A finished 2-epoch LESPS run with a label history."""
    out = tmp_path_factory.mktemp("lesps") / "run"
    train(tiny_cfg(tiny_synthetic, *LESPS, "train.epochs=2"), out, progress=False)
    return out


@pytest.fixture(scope="module")
def full_run(tiny_synthetic, tmp_path_factory) -> Path:
    """A finished 1-epoch fully supervised run (no label history)."""
    out = tmp_path_factory.mktemp("full") / "run"
    train(tiny_cfg(tiny_synthetic, *FULL, "train.epochs=1"), out, progress=False)
    return out


# -- the config layer ----------------------------------------------------------------------------
@pytest.mark.parametrize("override, key", [
    ("method.supervision=full", "method.supervision"), ("labels.rule=pal", "labels.rule"),
    ("labels.lesps.tb=0.4", "labels.lesps.tb"), ("labels.guard.max_area=50", "labels.guard.max_area"),
    ("model.backbone=alcnet", "model.backbone"), ("model.options={widths: [8, 16]}", "model.options"),
    ("data.datasets=[{root: /elsewhere}]", "data.datasets[0].root"), ("data.points=coarse", "data.points"),
    ("data.crop=64", "data.crop"), ("data.batch_size=2", "data.batch_size"),
    ("data.synthetic_options={clutter: 2}", "data.synthetic_options"), ("vfm.name=random_vit", "vfm.name"),
    ("vfm.weights=/w.pt", "vfm.weights"), ("scam.hidden=8", "scam.hidden"), ("method.name=semprior", "method.name"),
    ("semprior.distill_weight=1.0", "semprior.distill_weight"), ("train.loss=bce", "train.loss"),
    ("train.lr=0.1", "train.lr"), ("train.seed=1", "train.seed"), ("name=other", "name"),
])  # fmt: skip
def test_resume_refuses_every_field_that_defines_the_run(override, key):
    old = load_config(None, ["train.schedule=constant"])
    new = load_config(None, ["train.schedule=constant", override])
    with pytest.raises(ConfigError, match=re.escape(key) + " is .* in the run but .* now") as err:
        check_resume(old, new, epochs_done=1)
    assert str(err.value).count(" in the run but ") == 1  # only the field that changed


def test_resume_allows_how_a_run_is_run_and_lists_the_changes():
    old = load_config(None, ["train.schedule=constant", "method.supervision=full"])
    new = load_config(None, ["train.schedule=constant", "method.supervision=full", "train.epochs=40",
                             "train.eval_every=2", "train.threads=3", "train.device=cpu", "data.num_workers=2"])
    changes = {c.key: (c.old, c.new) for c in check_resume(old, new, epochs_done=20)}
    assert changes == {"train.epochs": (20, 40), "train.eval_every": (1, 2), "train.threads": (0, 3),
                       "train.device": ("auto", "cpu"), "data.num_workers": (0, 2)}


@pytest.mark.parametrize("base, match", [
    (["train.schedule=cosine", "method.supervision=full"], r"train.epochs 20 -> 40 would rescale .*train.schedule=cosine"),
    (["train.schedule=step", "method.supervision=full"], r"train.schedule=step"),
    (["train.schedule=constant", "labels.rule=lesps"], r"train.epochs 20 -> 40 .*labels.rule=lesps"),
])  # fmt: skip
def test_more_epochs_are_refused_where_the_schedule_follows_the_budget(base, match):
    with pytest.raises(ConfigError, match=match):
        check_resume(load_config(None, base), load_config(None, [*base, "train.epochs=40"]), epochs_done=20)


def test_train_steps_may_change_only_with_the_steps_per_epoch():
    base = ["train.schedule=constant", "method.supervision=full", "train.epochs=10", "train.steps=100"]
    old = load_config(None, base)
    with pytest.raises(ConfigError, match=r"steps per epoch \(10 -> 5"):
        check_resume(old, load_config(None, [*base, "train.epochs=20"]), epochs_done=10)
    with pytest.raises(ConfigError, match=r"steps per epoch \(10 -> 20"):
        check_resume(old, load_config(None, [*base, "train.steps=200"]), epochs_done=10)
    longer = check_resume(old, load_config(None, [*base, "train.epochs=20", "train.steps=200"]), epochs_done=10)
    assert {c.key for c in longer} == {"train.epochs", "train.steps"}


def test_selection_may_change_on_resume_only_to_the_final_epoch():
    base = ["train.schedule=constant", "labels.rule=fixed"]
    old = load_config(None, base)
    changes = check_resume(old, load_config(None, [*base, "train.select=last"]), epochs_done=5)
    assert [(c.key, c.old, c.new) for c in changes] == [("train.select", "auto", "last")]
    # best.pt of the trained epochs was kept by "last": no score-based rule can take over from it
    with pytest.raises(ConfigError, match="train.select last -> val_points: .*only a change to 'last'"):
        check_resume(load_config(None, [*base, "train.select=last"]), load_config(None, [*base, "train.select=val_points"]),
                     epochs_done=5)


def test_fewer_epochs_than_trained_are_refused():
    base = ["train.schedule=constant", "method.supervision=full", "train.epochs=10"]
    with pytest.raises(ConfigError, match="train.epochs=3 is fewer than the 5 epochs already trained"):
        check_resume(load_config(None, base), load_config(None, [*base, "train.epochs=3"]), epochs_done=5)


# -- the engine ----------------------------------------------------------------------------------
def test_resuming_lesps_with_full_supervision_is_refused_naming_the_field(lesps_run, tiny_synthetic, capsys):
    before = snapshot(lesps_run)
    rc = main(["train", "--resume", "--out", str(lesps_run), "--data", str(tiny_synthetic), "--supervision", "full",
               "--quiet", *[f"--{o}" for o in TINY], "--labels.start_epoch_frac=0.0", "--labels.update_every=1",
               "--train.epochs=2"])
    err = capsys.readouterr().out
    assert rc == 2
    assert "method.supervision is 'points' in the run but 'full' now" in " ".join(err.split())
    assert snapshot(lesps_run) == before


def _damage_last(run: Path) -> None:
    data = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(data[: len(data) // 2])


def _damage_record(run: Path) -> None:
    (run / "run.json").write_text('{"kind": "trained", ')


def _drop_last(run: Path) -> None:
    (run / "last.pt").unlink()


def _foreign_last(run: Path) -> None:
    """last.pt of another run (same config, another run id) copied in."""
    ckpt = load_checkpoint(run / "last.pt")
    save_checkpoint(run / "last.pt", ckpt | {"run_id": "0" * 32})


@pytest.mark.parametrize("damage, error, match", [
    (_damage_last, CheckpointError, "last.pt: not a readable checkpoint"),
    (_damage_record, DataError, "run.json: not valid JSON"),
    (_drop_last, TrainingError, "nothing to resume"),
    (_foreign_last, DataError, "a checkpoint of another run"),
])  # fmt: skip
def test_resume_of_a_damaged_run_fails_and_changes_nothing(lesps_run, tiny_synthetic, tmp_path, damage, error, match):
    run = tmp_path / "run"
    shutil.copytree(lesps_run, run)
    damage(run)
    before = snapshot(run)
    with pytest.raises(error, match=match):
        train(tiny_cfg(tiny_synthetic, *LESPS, "train.epochs=2"), run, resume=True, progress=False)
    assert snapshot(run) == before


def test_refused_resume_of_a_full_run_writes_no_label_history(full_run, tiny_synthetic):
    before = snapshot(full_run)
    with pytest.raises(ConfigError, match="method.supervision is 'full' in the run but 'points' now"):
        train(tiny_cfg(tiny_synthetic, *LESPS, "train.epochs=1"), full_run, resume=True, progress=False)
    assert snapshot(full_run) == before and not (full_run / "labels").exists()


def test_resume_on_a_changed_dataset_is_refused(tiny_synthetic, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_synthetic, data)
    cfg = tiny_cfg(data, *FULL, "train.epochs=1")
    train(cfg, tmp_path / "run", progress=False)
    split = data / "splits" / "50_50" / "train.txt"
    split.write_text("\n".join(split.read_text().split()[:-1]) + "\n")  # one training image fewer
    before = snapshot(tmp_path / "run")
    with pytest.raises(DataError, match="split no longer matches the ids this run recorded"):
        train(cfg, tmp_path / "run", resume=True, progress=False)
    assert snapshot(tmp_path / "run") == before


def test_semprior_resume_failing_at_the_last_check_changes_nothing(tiny_run, tmp_path, monkeypatch):  # noqa: F811
    """The latest failure before training (restoring the method's state) comes after every network, label
    and cluster is built: none of them may have written yet."""
    from semprior_core.method.semprior import SempriorMethod

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = snapshot(run)

    def refuse(self, state):
        raise ValueError("the checkpoint's cluster assignment differs from this run's training images")

    with monkeypatch.context() as m:
        m.setattr(SempriorMethod, "load_state_dict", refuse)
        with pytest.raises(ValueError, match="cluster assignment differs"):
            train(load_config(run / "config.yaml"), run, resume=True, progress=False)
    assert snapshot(run) == before
    train(load_config(run / "config.yaml"), run, resume=True, progress=False)  # released: resumable at once


def test_longer_run_by_resume_equals_the_longer_run_and_is_recorded(tiny_synthetic, tmp_path):
    base = [*FULL, "train.schedule=constant", "train.loss=bce"]
    whole = train(tiny_cfg(tiny_synthetic, *base, "train.epochs=3"), tmp_path / "a", progress=False)
    train(tiny_cfg(tiny_synthetic, *base, "train.epochs=2"), tmp_path / "b", progress=False)
    resumed = train(tiny_cfg(tiny_synthetic, *base, "train.epochs=3"), tmp_path / "b", resume=True, progress=False)
    assert_same_history(resumed, whole)
    info = json.loads((tmp_path / "b" / "run.json").read_text())
    assert [(r["epoch"], r["changes"]) for r in info["resumes"]] == [(2, {"train.epochs": [2, 3]})]
    assert yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())["train"]["epochs"] == 3
    assert load_checkpoint(tmp_path / "b" / "last.pt")["run_id"] == info["run_id"]
