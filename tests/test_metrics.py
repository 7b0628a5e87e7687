from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from semprior_core.evaluation.metrics import (
    ImageStats,
    MetricAccumulator,
    Metrics,
    binarize,
    components,
    evaluate,
    image_stats,
    per_image_iou,
    summarize,
)

NUAA_MASKS = Path("/work/shared/data/NUAA-SIRST/masks")


def _mask(shape: tuple[int, int], *pixels_or_boxes: tuple[int, int, int, int]) -> np.ndarray:
    """Bool mask with the boxes (y0, x0, y1, x1), end-exclusive, set to True."""
    mask = np.zeros(shape, dtype=bool)
    for y0, x0, y1, x1 in pixels_or_boxes:
        mask[y0:y1, x0:x1] = True
    return mask


def _px(y: int, x: int) -> tuple[int, int, int, int]:
    return (y, x, y + 1, x + 1)


def test_perfect_prediction():
    gt = _mask((32, 32), (2, 2, 5, 5), (20, 20, 22, 23))
    stats = image_stats(gt.astype(np.float32), gt)
    assert stats == ImageStats(
        intersection=15, union=15, n_targets=2, n_detected=2, false_alarm_pixels=0, n_pixels=1024
    )
    m = summarize([stats])
    assert (m.iou, m.niou, m.pd, m.fa, m.n_images) == (1.0, 1.0, 1.0, 0.0, 1)


def test_empty_prediction():
    gt = _mask((16, 16), (4, 4, 6, 6))
    m = summarize([image_stats(np.zeros((16, 16), np.float32), gt)])
    assert (m.iou, m.niou, m.pd, m.fa) == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("dy", "dx", "detected"),
    [(0, 1, True), (2, 2, True), (3, 0, False), (0, 5, False)],  # 2*sqrt(2) < 3 is in; exactly 3 is out
)
def test_shifted_prediction(dy, dx, detected):
    gt = _mask((32, 32), (10, 10, 13, 13))
    pred = np.roll(gt, (dy, dx), axis=(0, 1))
    stats = image_stats(pred, gt)
    overlap = max(3 - dy, 0) * max(3 - dx, 0)
    assert stats.intersection == overlap
    assert stats.union == 18 - overlap
    assert stats.n_detected == int(detected)
    # a missed prediction is a false alarm with all of its 9 pixels
    assert stats.false_alarm_pixels == (0 if detected else 9)
    m = summarize([stats])
    assert m.fa == pytest.approx(0 if detected else 9 / 1024)


def test_spurious_blob_is_false_alarm():
    gt = _mask((64, 64), (1, 1, 3, 3))
    pred = gt | _mask((64, 64), (40, 40, 42, 43))  # 6-pixel blob far from the target
    m = summarize([image_stats(pred, gt)])
    assert m.pd == 1.0
    assert m.fa == pytest.approx(6 / 4096)
    assert m.iou == pytest.approx(4 / 10)
    assert m.as_row()["Fa"] == pytest.approx(6 / 4096 * 1e6)


def test_one_detection_between_two_targets_matches_once():
    gt = _mask((16, 16), _px(5, 5), _px(5, 9))
    pred = _mask((16, 16), _px(5, 7))  # 2 px from both targets
    stats = image_stats(pred, gt)
    assert (stats.n_targets, stats.n_detected, stats.false_alarm_pixels) == (2, 1, 0)
    both = image_stats(pred | _mask((16, 16), _px(6, 9)), gt)
    assert (both.n_detected, both.false_alarm_pixels) == (2, 0)


def test_matching_is_greedy_by_distance():
    # Targets A (5,5), B (5,8); P1 (5,7) is 2 px from A and 1 px from B, P2 (7,5) is 2 px from A only.
    # Nearest pairs first: P1-B, then P2-A, so both are detected. (Label-order matching would give
    # P1 to A and leave B missed, P2 a false alarm.)
    gt = _mask((16, 16), _px(5, 5), _px(5, 8))
    pred = _mask((16, 16), _px(5, 7), _px(7, 5))
    stats = image_stats(pred, gt)
    assert (stats.n_detected, stats.false_alarm_pixels) == (2, 0)


def test_dataset_iou_differs_from_niou():
    gt_a = _mask((8, 8), (0, 0, 2, 2))
    pred_a = gt_a.copy()  # I=4, U=4 -> IoU 1
    gt_b = _mask((8, 8), (2, 2, 6, 6))
    pred_b = _mask((8, 8), (2, 2, 4, 6))  # I=8, U=16 -> IoU 0.5
    stats = [image_stats(pred_a, gt_a), image_stats(pred_b, gt_b)]
    np.testing.assert_allclose(per_image_iou(stats), [1.0, 0.5])
    m = summarize(stats)
    assert m.iou == pytest.approx(12 / 20)
    assert m.niou == pytest.approx(0.75)
    assert m.as_row() == pytest.approx({"IoU": 60.0, "nIoU": 75.0, "Pd": 100.0, "Fa": 0.0})
    assert m.to_dict() == {"iou": m.iou, "niou": 0.75, "pd": 1.0, "fa": 0.0, "n_images": 2}


def test_image_without_target_or_prediction():
    empty = np.zeros((8, 8), dtype=np.uint8)
    stats = image_stats(empty.astype(np.float32), empty)
    assert stats == ImageStats(0, 0, 0, 0, 0, 64)
    alone = summarize([stats])
    assert (alone.iou, alone.niou, alone.fa) == (1.0, 1.0, 0.0)
    assert math.isnan(alone.pd)  # no target anywhere: Pd undefined
    # next to an image with IoU 0.5 it counts as a perfect image in nIoU only, and adds nothing to Pd
    gt = _mask((8, 8), (2, 2, 6, 6))
    half = image_stats(_mask((8, 8), (2, 2, 4, 6)), gt)  # centroids 1 px apart: detected
    np.testing.assert_array_equal(per_image_iou([stats, half]), [1.0, 0.5])
    m = summarize([stats, half])
    assert (m.iou, m.niou, m.pd) == (pytest.approx(0.5), pytest.approx(0.75), 1.0)
    assert m.fa == 0.0


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(5, 4\)"):
        image_stats(np.zeros((4, 5)), np.zeros((5, 4)))


def test_invalid_inputs():
    with pytest.raises(ValueError, match="2-D"):
        image_stats(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="pd_distance"):
        image_stats(np.zeros((4, 4)), np.zeros((4, 4)), pd_distance=0)
    with pytest.raises(ValueError, match="threshold"):
        MetricAccumulator(threshold=float("nan"))
    with pytest.raises(ValueError, match="empty"):
        summarize([])
    with pytest.raises(ValueError, match="exceeds union"):
        ImageStats(intersection=3, union=2, n_targets=0, n_detected=0, false_alarm_pixels=0, n_pixels=4)
    with pytest.raises(ValueError):
        evaluate([np.zeros((4, 4))], [])


def test_threshold_is_strict_at_half():
    prob = np.array([[0.49, 0.5, 0.5000001, 1.0]])
    np.testing.assert_array_equal(binarize(prob), [[False, False, True, True]])
    np.testing.assert_array_equal(binarize(prob, threshold=0.49), [[False, True, True, True]])
    flags = np.array([[True, False]])
    assert binarize(flags, threshold=0.9) is flags  # already binary: threshold does not apply
    gt = np.array([[0, 255, 0, 0]], dtype=np.uint8)  # 0/255 ground truth
    assert image_stats(np.array([[0.0, 0.5, 0.0, 0.0]]), gt).intersection == 0
    assert image_stats(np.array([[0.0, 0.51, 0.0, 0.0]]), gt).intersection == 1


def test_eight_connectivity():
    diag = _mask((6, 6), _px(1, 1), _px(2, 2), _px(3, 1))  # diagonal neighbours: one component
    labels, n, centroids, areas = components(diag)
    assert n == 1
    np.testing.assert_allclose(centroids, [[2.0, 4 / 3]])
    np.testing.assert_array_equal(areas, [3])
    assert set(np.unique(labels)) == {0, 1}
    # one target: a prediction at its centroid detects it, with no false alarm
    stats = image_stats(_mask((6, 6), _px(2, 1)), diag)
    assert (stats.n_targets, stats.n_detected, stats.false_alarm_pixels) == (1, 1, 0)


@pytest.mark.parametrize("density", [0.1, 0.002])  # dense fills the image; sparse has a small bounding box
def test_components_match_scipy_on_random_masks(density):
    rng = np.random.default_rng(0)
    mask = np.zeros((64, 80), dtype=bool)
    mask[5:40, 12:50] = rng.random((35, 38)) < density * 64 * 80 / (35 * 38)
    mask = ndimage.binary_dilation(mask) if density < 0.01 else mask
    labels, n, centroids, areas = components(mask.astype(np.uint8) * 255)
    ref_labels, ref_n = ndimage.label(mask, structure=np.ones((3, 3)))
    index = np.arange(1, ref_n + 1)
    assert n == ref_n > 1
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(centroids, ndimage.center_of_mass(mask, ref_labels, index))
    np.testing.assert_array_equal(areas, ndimage.sum(mask, ref_labels, index))
    empty = components(np.zeros((3, 3), bool))
    assert empty[1] == 0 and empty[2].shape == (0, 2) and empty[3].shape == (0,)


def test_accumulator_and_evaluate_agree_with_summarize():
    rng = np.random.default_rng(1)
    gts = [rng.random((32, 32)) > 0.95 for _ in range(4)]
    preds = [np.clip(g + rng.normal(0, 0.4, g.shape), 0, 1) for g in gts]
    expected = summarize([image_stats(p, g) for p, g in zip(preds, gts, strict=True)])
    acc = MetricAccumulator()
    for p, g in zip(preds, gts, strict=True):
        acc.update(p, g)
    assert len(acc.stats) == 4
    assert acc.compute() == expected
    assert evaluate(preds, gts) == expected
    assert isinstance(expected, Metrics) and expected.n_images == 4
    acc.reset()
    assert acc.stats == []
    with pytest.raises(ValueError):
        acc.compute()
    assert evaluate(preds, gts, threshold=0.99).iou != expected.iou


def test_accepts_torch_tensors():
    torch = pytest.importorskip("torch")
    gt = _mask((16, 16), (4, 4, 7, 7))
    logits = torch.full((16, 16), -5.0, requires_grad=True)
    prob = torch.sigmoid(logits + torch.from_numpy(gt.astype(np.float32)) * 10)  # 0.993 on target, 0.007 off
    assert image_stats(prob, torch.from_numpy(gt)) == image_stats(gt, gt)


def test_real_nuaa_masks_sanity():
    if not NUAA_MASKS.is_dir():
        pytest.skip("NUAA-SIRST masks not available")
    from PIL import Image

    masks = [np.asarray(Image.open(p)) for p in sorted(NUAA_MASKS.glob("*.png"))[:5]]
    assert len(masks) == 5
    same = evaluate([m > 0 for m in masks], masks)
    assert (same.iou, same.niou, same.pd, same.fa) == (1.0, 1.0, 1.0, 0.0)
    dilated = [ndimage.binary_dilation(m > 0, structure=np.ones((3, 3))) for m in masks]
    grown = evaluate(dilated, masks)
    assert grown.pd == 1.0
    assert grown.fa == 0.0  # every grown component still sits on its target
    assert 0.0 < grown.iou < 1.0
