"""The report's kept-checkpoint diagnostic: dense validation IoU at the kept epoch against the final one."""

from __future__ import annotations

import math

import pytest

from workbench.selection_audit import kept_vs_final

HISTORY = [
    {"epoch": 1, "select_score": 0.5, "val_student_iou": 0.20},
    {"epoch": 2},  # no validation this epoch
    {"epoch": 3, "select_score": 0.9, "val_student_iou": 0.40},  # the best point-F1
    {"epoch": 4, "select_score": 0.8, "val_student_iou": 0.55},  # the final validation
]


def test_the_best_rule_is_compared_with_the_final_epoch():
    k = kept_vs_final(HISTORY, {"metric": "point_f1", "keep": "best"}, "student")
    assert (k.rule, k.kept_epoch, k.final_epoch) == ("best point_f1", 3, 4)
    assert k.kept_iou == 0.40 and k.final_iou == 0.55 and k.gain == pytest.approx(0.15)


def test_a_run_keeping_its_final_epoch_gains_nothing_from_it():
    k = kept_vs_final(HISTORY, {"metric": "point_f1", "keep": "last"}, "student")
    assert (k.rule, k.kept_epoch, k.final_epoch, k.gain) == ("last", 4, 4, 0.0)


def test_runs_without_dense_validation_iou_are_left_out():
    assert kept_vs_final(HISTORY, {"metric": "point_f1"}, "teacher") is None  # no val_teacher_iou logged
    nan_final = [*HISTORY[:3], {"epoch": 4, "select_score": 0.8, "val_student_iou": math.nan}]
    assert kept_vs_final(nan_final, {"metric": "point_f1"}, "student") is None
    assert kept_vs_final([{"epoch": 1}], {"metric": "point_f1"}, "student") is None
