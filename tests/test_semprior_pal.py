"""semprior on PAL's label pipeline (cpu-v4-tune's `pal-rule` candidate): PAL's easy-sample initialisation,
rule and edge loss, with both networks' predictions combined for the updates."""

from __future__ import annotations

import json

import numpy as np

from semprior_core.config import load_config
from semprior_core.engine import train
from semprior_core.store.label_history import LabelHistory
from tests.fixtures_runs import _COMMON, SEMPRIOR_OVERRIDES, _dataset


def test_semprior_evolves_labels_with_pals_rule(tmp_path):
    root = _dataset(tmp_path)
    cfg = load_config(None, [f"data.datasets=[{{root: '{root}'}}]", *_COMMON, *SEMPRIOR_OVERRIDES, "train.epochs=8",
                             "labels.rule=pal", "labels.init=pal_easy", "train.loss=pal_edge",
                             "labels.pal.update_every=1", "labels.pal.pre_start=0.0", "semprior.combine=weighted"])
    assert cfg.method.name == "semprior" and cfg.labels.rule == "pal"
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    updates = sum(1 for r in records if r.get("label_update"))
    history = LabelHistory(run)
    assert updates >= 2 and len(history) == updates + 1  # the initial labels and one file per update
    # PAL's easy-sample start trains on some images; its later phase promotes the set-aside ones
    pools = [r["pool"] for r in records if "pool" in r]
    assert pools[0] < pools[-1] == len(history.update(0).keys)
    first, last = history.update(0), history.update(-1)
    assert any(not np.array_equal(first.label(k), last.label(k)) for k in first.keys)  # the labels evolved
    # both networks' predictions fed the updates (combine=weighted keeps a validation quality for each)
    assert {"val_teacher_point_f1", "val_student_point_f1"} <= set().union(*records)
