from __future__ import annotations

import numpy as np
import pytest

from semprior_core.selection import point_hits, point_scores


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
