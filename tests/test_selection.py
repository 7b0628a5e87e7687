from __future__ import annotations

import numpy as np
import pytest

from semprior_core.evaluation.selection import point_hits, point_scores


def test_point_hits_by_hand():
    prob = np.zeros((20, 20), np.float32)
    prob[2:4, 2:4] = 0.9  # hit by the first point
    prob[15, 15] = 0.9  # false alarm
    pts = np.array([[2, 3], [10, 10]])  # the second point is missed
    assert point_hits(prob, pts) == (1, 2, 1)
    s = point_scores([prob], [pts])
    assert s["point_recall"] == 0.5 and s["point_precision"] == 0.5 and s["point_f1"] == pytest.approx(0.5)


def test_everything_positive_is_not_rewarded():
    prob = np.ones((30, 30), np.float32)
    pts = np.array([[5, 5], [20, 20]])
    s = point_scores([prob], [pts], max_area=100)
    assert s["point_recall"] == 1.0 and s["point_precision"] == 0.0 and s["point_f1"] == 0.0


def test_centroid_distance_counts_as_hit():
    prob = np.zeros((20, 20), np.float32)
    prob[10, 12] = 0.9
    assert point_hits(prob, np.array([[10, 10]]), distance=3.0) == (1, 1, 1)
    assert point_hits(prob, np.array([[10, 8]]), distance=3.0) == (0, 1, 0)


def test_no_annotated_point_scores_nan_and_cannot_select():
    """Images without any point used to score point-F1 = 1.0 (recall and precision of nothing), so a
    validation split without points picked its checkpoint; NaN compares false with every score."""
    import math

    from semprior_core.evaluation.postprocess import select_threshold
    from semprior_core.io import DataError

    empty = np.zeros((0, 2), np.int64)
    for prob in (np.zeros((20, 20), np.float32), np.ones((20, 20), np.float32)):
        s = point_scores([prob, prob], [empty, empty])
        assert all(math.isnan(v) for v in s.values())
        assert not s["point_f1"] > -math.inf  # the engine's "improved" test never picks it
    with pytest.raises(DataError, match="no validation image has a point"):
        select_threshold([np.zeros((20, 20), np.float32)], points=[empty])


def test_the_kept_record_is_the_best_scored_one_or_with_keep_last_the_final_one():
    from semprior_core.store.runs import kept_record

    history = [{"epoch": 1, "select_score": float("nan")}, {"epoch": 2, "select_score": 0.3},
               {"epoch": 3, "select_score": 0.2}, {"epoch": 4}]
    assert kept_record(history, {"metric": "point_f1"})["epoch"] == 2  # runs before `keep` kept the best
    assert kept_record(history, {"keep": "best"})["epoch"] == 2
    assert kept_record(history, {"keep": "last"})["epoch"] == 3  # the last *scored* record (epoch 4 has none)
    assert kept_record([{"epoch": 1, "select_score": float("nan")}], {"keep": "last"}) is None
