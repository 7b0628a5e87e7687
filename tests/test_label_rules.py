"""The label-rule table: one entry per configurable rule, each built from the pure label functions."""

from __future__ import annotations

import math

import numpy as np

from semprior_core.labels import LabelConfig, PalConfig, lesps_started, should_update
from semprior_core.labels.config import RULES
from semprior_core.method.label_rules import LABEL_RULES


def test_every_configurable_rule_has_an_entry():
    assert set(LABEL_RULES) == set(RULES)


def test_fixed_labels_never_update():
    cfg = LabelConfig(rule="fixed")
    assert not any(LABEL_RULES["fixed"].schedule(e, 20, 0.0, True, cfg)[0] for e in range(20))


def test_lesps_updates_when_it_starts_then_on_its_cadence():
    cfg = LabelConfig(rule="lesps", start_epoch_frac=0.25, update_every=3)
    started, updates = False, []
    for epoch in range(1, 20):
        update, started = LABEL_RULES["lesps"].schedule(epoch, 20, math.nan, started, cfg)
        if update:
            updates.append(epoch)
    first = next(e for e in range(1, 20) if lesps_started(e, math.inf, cfg, epochs=20))
    assert updates[0] == first == 6
    assert updates[1:] == [e for e in range(first + 1, 20) if should_update(e, 20, cfg, True)]


def test_pal_trains_on_binarised_labels_and_promotes_only_while_enhancing():
    rule = LABEL_RULES["pal"]
    label = np.array([[0.2, 0.6]], dtype=np.float32)
    assert rule.target(label, LabelConfig(rule="pal")).tolist() == [[0.0, 1.0]]
    assert rule.target(label, LabelConfig(rule="pal", pal=PalConfig(binarize_labels=False))) is label
    cfg = LabelConfig(rule="pal")
    assert rule.promotion(2, 20, cfg) is None  # pre-start phase
    assert rule.promotion(10, 20, cfg) is not None
    assert rule.promotion(19, 20, cfg) is None  # refinement
