"""The run policy: one answer per question about a run's config (selection, teacher, VFM)."""

from __future__ import annotations

import pytest

from semprior_core.config import load_config
from semprior_core.data.dataset import ImageBank
from semprior_core.run_policy import reads_vfm, selection_for, uses_teacher, uses_vfm
from semprior_core.vfm.cache import features_for


@pytest.mark.parametrize(("overrides", "teacher", "vfm"), [
    ([], False, False),
    (["vfm.name=contrast"], False, False),  # a VFM configured but no teacher to read it
    (["method.name=semprior"], True, False),
    (["method.name=semprior", "vfm.name=contrast"], True, True),
    (["method.name=semprior", "vfm.name=contrast", "scam.enabled=false"], True, False),
    (["method.model=teacher", "vfm.name=contrast"], True, True),
])
def test_teacher_and_vfm_follow_the_method_and_scam(overrides, teacher, vfm):
    cfg = load_config(None, overrides)
    assert (uses_teacher(cfg), uses_vfm(cfg)) == (teacher, vfm)
    assert not reads_vfm(cfg, "student")


@pytest.mark.parametrize(("overrides", "metric", "dense", "keep"), [
    (["method.supervision=full"], "iou", True, "best"),
    ([], "point_f1", False, "best"),
    (["train.select=val_dense"], "iou", True, "best"),
    (["method.supervision=full", "train.select=val_points"], "point_f1", False, "best"),
    # last logs what auto would select on, but no validation score (so no dense mask) chooses the checkpoint
    (["train.select=last"], "point_f1", False, "last"),
    (["method.supervision=full", "train.select=last"], "iou", False, "last"),
])
def test_selection_resolves_auto_by_supervision(overrides, metric, dense, keep):
    sel = selection_for(load_config(None, overrides))
    assert (sel.metric, sel.uses_dense_val_masks, sel.keep) == (metric, dense, keep)


def test_features_for_a_run_without_vfm_builds_nothing():
    cfg = load_config(None, ["vfm.name=contrast"])  # supervised student: reads no features
    assert features_for(cfg, [ImageBank([]), ImageBank([])]) == [None, None]
