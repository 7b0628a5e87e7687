"""Pd–Fa curves, their area, size and contrast bins, false-alarm objects: hand-counted small arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from semprior_core.evaluation import detection_curves as dc
from semprior_core.evaluation.metrics import image_stats


def _frame() -> tuple[np.ndarray, np.ndarray]:
    """8x8: target A (1 px at (1,1), predicted 0.9), target B (2x2 at rows/cols 5-6, predicted 0.4), false
    alarms F1 (1 px at (1,6), 0.6) and F2 (2 px at (6,1),(6,2), 0.3; 4 px from B's centroid: out of reach)."""
    gt = np.zeros((8, 8), dtype=np.uint8)
    gt[1, 1] = 255
    gt[5:7, 5:7] = 255
    pred = np.zeros((8, 8), dtype=np.float32)
    pred[1, 1] = 0.9
    pred[5:7, 5:7] = 0.4
    pred[1, 6] = 0.6
    pred[6, 1:3] = 0.3
    return pred, gt


def _free_frame() -> tuple[np.ndarray, np.ndarray]:
    """8x8 target-free frame with one 3-px false alarm at 0.7."""
    pred = np.zeros((8, 8), dtype=np.float32)
    pred[3, 2:5] = 0.7
    return pred, np.zeros((8, 8), dtype=np.uint8)


T3 = (0.2, 0.5, 0.8)


def test_frame_curve_counts_by_hand():
    c = dc.frame_curve(*_frame(), thresholds=T3)
    # t=0.2: A, B found; F1 (1 px) + F2 (2 px). t=0.5: A found, B lost; F1. t=0.8: A only.
    assert (c.n_frames, c.n_targets, c.n_pixels) == (1, 2, 64)
    assert c.n_detected == (2, 1, 1)
    assert c.fa_pixels == (3, 1, 0)
    assert c.fa_objects == (2, 1, 0)
    np.testing.assert_allclose(c.pd(), [1.0, 0.5, 0.5])
    np.testing.assert_allclose(c.fa(), [3 / 64, 1 / 64, 0.0])
    np.testing.assert_allclose(c.fa_per_frame(), [2.0, 1.0, 0.0])


def test_curve_counts_add_over_frames_and_agree_with_image_stats():
    total = dc.sum_counts([dc.frame_curve(*f, thresholds=T3) for f in (_frame(), _free_frame())])
    assert (total.n_frames, total.n_targets, total.n_pixels) == (2, 2, 128)
    assert total.n_detected == (2, 1, 1) and total.fa_pixels == (6, 4, 0) and total.fa_objects == (3, 2, 0)
    np.testing.assert_allclose(total.fa_per_frame(), [1.5, 1.0, 0.0])
    # at one threshold the curve is exactly what metrics.image_stats counts
    for k, t in enumerate(T3):
        stats = [image_stats(p, g, threshold=t) for p, g in (_frame(), _free_frame())]
        assert total.n_detected[k] == sum(s.n_detected for s in stats)
        assert total.fa_pixels[k] == sum(s.false_alarm_pixels for s in stats)


def test_curve_counts_round_trip_and_refuse_other_thresholds():
    c = dc.frame_curve(*_frame(), thresholds=T3)
    assert dc.CurveCounts.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="different thresholds"):
        c + dc.frame_curve(*_frame(), thresholds=(0.1, 0.5, 0.8))
    empty = dc.sum_counts([], thresholds=T3)
    assert empty.n_frames == 0 and np.isnan(empty.pd()).all() and np.isnan(empty.fa_per_frame()).all()


def test_one_to_one_matching_is_shared_with_metrics():
    """Two predictions within reach of one target: the closer one matches, the other is a false alarm."""
    gt = np.zeros((9, 9), dtype=bool)
    gt[4, 4] = True
    pred = np.zeros((9, 9), dtype=bool)
    pred[4, 3] = pred[4, 6] = True  # distances 1 and 2, both < 3
    c = dc.frame_curve(pred, gt, thresholds=(0.5,))
    assert c.n_detected == (1,) and c.fa_objects == (1,) and c.fa_pixels == (1,)
    assert image_stats(pred, gt).false_alarm_pixels == 1
    (fa,) = dc.false_alarm_objects(pred, gt)
    assert (fa.y, fa.x) == (4.0, 6.0)


def test_boolean_prediction_gives_one_operating_point():
    pred, gt = _frame()
    c = dc.frame_curve(pred > 0.5, gt, thresholds=T3)
    assert len(set(c.n_detected)) == 1 and len(set(c.fa_pixels)) == 1


def test_auc_by_hand():
    fa, pd = [6e-5, 0.0, 2e-5], [0.8, 0.5, 0.6]  # any order
    # anchored at (0, 0); 0→2e-5: mean Pd 0.55; 2e-5→6e-5: 0.7; then held at 0.8 to 1e-4
    assert dc.auc_pd_fa(fa, pd, max_fa=1e-4) == pytest.approx((2e-5 * 0.55 + 4e-5 * 0.7 + 4e-5 * 0.8) / 1e-4)
    assert dc.auc_pd_fa(fa, pd, max_fa=1e-4) == pytest.approx(0.71)
    # cut at 4e-5: Pd interpolated to 0.7 there
    assert dc.auc_pd_fa(fa, pd, max_fa=4e-5) == pytest.approx((2e-5 * 0.55 + 2e-5 * 0.65) / 4e-5)
    assert dc.auc_pd_fa([0.0], [1.0]) == pytest.approx(1.0)
    assert math.isnan(dc.auc_pd_fa([0.0, 1e-5], [float("nan")] * 2))
    with pytest.raises(ValueError):
        dc.auc_pd_fa([0.0], [1.0], max_fa=0)


def test_value_at_equal_pd_by_hand():
    t, pd, fa_obj = [0.3, 0.5, 0.7], [0.9, 0.8, 0.4], [3.0, 1.0, 0.5]
    # Pd 0.6 lies between t=0.7 (0.4, 0.5) and t=0.5 (0.8, 1.0): 0.5 + 0.5 * 0.5
    assert dc.value_at_pd(t, pd, fa_obj, 0.6) == pytest.approx(0.75)
    # below the highest threshold's Pd: from the anchor (0, 0)
    assert dc.value_at_pd(t, pd, fa_obj, 0.2) == pytest.approx(0.25)
    assert dc.value_at_pd(t, pd, fa_obj, 0.9) == pytest.approx(3.0)
    assert math.isnan(dc.value_at_pd(t, pd, fa_obj, 0.95))


def _contrast_image(ring_values: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """5x5: target = centre pixel (1.0); its 8 neighbours 0.5 (excluded); the 16 border pixels ``ring_values``."""
    image = np.full((5, 5), 0.5)
    border = [(r, c) for r in range(5) for c in range(5) if r in (0, 4) or c in (0, 4)]
    for (r, c), v in zip(border, ring_values, strict=True):
        image[r, c] = v
    image[2, 2] = 1.0
    gt = np.zeros((5, 5), dtype=bool)
    gt[2, 2] = True
    return image, gt


def test_target_contrast_by_hand():
    image, gt = _contrast_image([0.1] * 8 + [0.3] * 8)  # background mean 0.2, std 0.1
    np.testing.assert_allclose(dc.target_contrast(image, gt, margin=2), [8.0])
    flat, gt = _contrast_image([0.2] * 16)  # std 0: one grey level is the floor
    np.testing.assert_allclose(dc.target_contrast(flat, gt, margin=2), [0.8 * 255])
    assert np.isnan(dc.target_contrast(image, gt, margin=1)).all()  # only the excluded rim in reach


def test_target_contrast_in_target_label_order():
    image = np.zeros((6, 12))
    gt = np.zeros((6, 12), dtype=bool)
    gt[2, 2] = gt[2, 9] = True
    image[2, 2], image[2, 9] = 0.5, 1.0
    image[0, :6] = [0.02, 0.0] * 3  # noise only near the first target
    scr = dc.target_contrast(image, gt, margin=2)
    assert scr[1] == pytest.approx(255.0)  # flat background: 1.0 / (1/255)
    assert scr[0] < scr[1]


def test_pd_by_size_bin_by_hand():
    areas = [1, 9, 10, 36, 37, 100, 101, 5]
    detected = [True, False, True, True, False, True, True, True]
    bins = dc.pd_by_bin(areas, detected, dc.SIZE_BINS)
    assert [(b.label, b.n_targets, b.n_detected) for b in bins] == [
        ("1–9 px", 3, 2), ("10–36 px", 2, 2), ("37–100 px", 2, 1), ("> 100 px", 1, 1)]
    assert bins[0].pd == pytest.approx(2 / 3)


def test_pd_by_contrast_bin_skips_nan():
    bins = dc.pd_by_bin([1.9, 2.0, float("nan"), 12.0], [False, True, True, True], dc.CONTRAST_BINS)
    assert [(b.n_targets, b.n_detected) for b in bins] == [(1, 0), (1, 1), (0, 0), (1, 1)]
    assert math.isnan(bins[2].pd)


def test_false_alarms_per_frame_by_hand():
    rates = dc.false_alarms_per_frame([2, 0, 1, 3], [1, 0, 0, 2])
    assert rates["all"].to_dict() == {"n_frames": 4, "n_objects": 6, "per_frame": 1.5}
    assert rates["with_targets"].per_frame == pytest.approx(2.5)
    assert rates["target_free"].per_frame == pytest.approx(0.5)
    assert math.isnan(dc.false_alarms_per_frame([1], [1])["target_free"].per_frame)


def test_false_alarm_objects_largest_first():
    pred, gt = _frame()
    f2, f1 = dc.false_alarm_objects(pred, gt, threshold=0.2)
    assert (f2.area, f2.y, f2.x, f2.top, f2.left, f2.bottom, f2.right) == (2, 6.0, 1.5, 6, 1, 7, 3)
    assert f2.peak == pytest.approx(0.3)
    assert (f1.area, f1.y, f1.x, f1.peak) == (1, 1.0, 6.0, pytest.approx(0.6))
    assert dc.false_alarm_objects(pred, gt, threshold=0.8) == []


def test_frame_record_at_the_run_threshold():
    pred, gt = _frame()
    rec = dc.frame_record(pred, gt, pred, threshold=0.5, thresholds=T3)
    assert rec.target_areas == (1, 4) and rec.detected == (True, False) and rec.false_alarm_areas == (1,)
    assert len(rec.target_contrast) == 2 and rec.curve == dc.frame_curve(pred, gt, thresholds=T3)
    assert rec.to_dict()["detected"] == [True, False]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="one shape"):
        dc.frame_curve(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="finite"):
        dc.frame_curve(np.zeros((4, 4)), np.zeros((4, 4)), thresholds=(float("nan"),))
    with pytest.raises(ValueError, match="differ in length"):
        dc.pd_by_bin([1, 2], [True], dc.SIZE_BINS)
