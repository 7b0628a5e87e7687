"""Tests of the pure label-evolution rules (LESPS, PAL), their schedules and the collapse guard.

Most cases are small hand-made maps whose expected values are computed by hand in the comments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from semprior_core.labels import (
    GuardConfig,
    LabelConfig,
    LespsConfig,
    PalConfig,
    adaptive_threshold,
    as_points,
    check_update,
    iter_candidates,
    lesps_candidates,
    lesps_started,
    lesps_update,
    mask_stats,
    pal_easy_init,
    pal_lose_ratio,
    pal_phase,
    pal_promote,
    pal_update,
    point_mask,
    should_update,
)

NUAA = Path("/work/shared/data/NUAA-SIRST")


def _coords(mask: np.ndarray) -> set[tuple[int, int]]:
    return {(int(y), int(x)) for y, x in np.argwhere(mask)}


# --- config -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "kwargs"),
    [
        (LespsConfig, {"window": 32}),
        (LespsConfig, {"core": 35}),
        (LespsConfig, {"center": "peak"}),
        (LespsConfig, {"blend": 0.0}),
        (PalConfig, {"degen": 1.5}),
        (PalConfig, {"canny": (40, 20)}),
        (PalConfig, {"pre_start": 0.8, "enhance_end": 0.2}),
        (GuardConfig, {"max_area": 0}),
        (LabelConfig, {"rule": "crf"}),
        (LabelConfig, {"init": "box"}),
        (LabelConfig, {"start_epoch_frac": 1.0}),
        (LabelConfig, {"lesps": PalConfig()}),
    ],
)
def test_config_rejects_invalid_values(factory, kwargs):
    with pytest.raises(ValueError):
        factory(**kwargs)


def test_config_defaults_match_reference_constants():
    lesps, pal = LespsConfig(), PalConfig()
    assert (lesps.window, lesps.core, lesps.tb, lesps.k, lesps.size_ref) == (33, 3, 0.5, 0.5, 0.0015)
    assert (pal.degen, pal.easy_window, pal.canny, pal.max_contour_area) == (0.97, 20, (20, 40), 50.0)
    assert (pal.pre_start * 400, pal.enhance_end * 400) == (80, 320)


# --- points -------------------------------------------------------------------------------------------


def test_point_mask_squares_are_clipped_to_the_image():
    mask = point_mask((5, 6), np.array([[0, 0], [2, 5]]), radius=1)
    expected = np.zeros((5, 6), dtype=np.float32)
    expected[0:2, 0:2] = 1  # 3x3 square at the corner keeps 2x2
    expected[1:4, 4:6] = 1  # 3x3 square at the right edge keeps 3x2
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask, expected)
    assert point_mask((5, 6), np.array([[2, 3]])).sum() == 1


def test_points_outside_the_image_or_not_integer_are_rejected():
    with pytest.raises(ValueError):
        as_points(np.array([[5, 0]]), (5, 6))
    with pytest.raises(ValueError):
        as_points(np.array([[1.5, 2.0]]), (5, 6))
    assert as_points(np.zeros((0, 2), dtype=int), (5, 6)).shape == (0, 2)


# --- LESPS --------------------------------------------------------------------------------------------


def test_adaptive_threshold_hand_computed():
    # 100x100 image: size_ref·H·W = 0.0015·10000 = 15; n = 3, p_max = 0.8, Tb = k = 0.5:
    # tau = 0.5·0.8 + 0.5·(0.8 − 0.4)·3/15 = 0.40 + 0.04 = 0.44
    assert adaptive_threshold(0.8, 3, (100, 100), LespsConfig()) == pytest.approx(0.44)


def test_candidates_follow_tau():
    label = np.zeros((100, 100), dtype=np.float32)
    label[50, 49:52] = 1.0  # one region of n = 3, centroid (50, 50) -> tau = 0.44 (above)
    prob = np.zeros_like(label)
    prob[50, 50] = 0.8
    prob[50, 51] = 0.45  # > 0.44
    prob[49, 50] = 0.441  # > 0.44
    prob[51, 50] = 0.439  # < 0.44
    prob[50, 52] = 0.43  # < 0.44
    (cand,) = list(iter_candidates(label, prob, np.array([[50, 50]]), LespsConfig()))
    assert cand.tau == pytest.approx(0.44)
    assert _coords(lesps_candidates(label, prob, np.array([[50, 50]]), LespsConfig())) == {
        (50, 50),
        (50, 51),
        (49, 50),
    }


def test_candidate_not_touching_the_core_is_dropped():
    label = np.zeros((64, 64), dtype=np.float32)
    label[20, 20] = 1.0
    prob = np.zeros_like(label)
    prob[21, 21:23] = 0.9  # touches the 3x3 core at (20, 20) through (21, 21): kept
    prob[20, 30] = 0.9  # inside the 33x33 window but detached from the core: dropped
    cand = lesps_candidates(label, prob, np.array([[20, 20]]), LespsConfig())
    assert _coords(cand) == {(21, 21), (21, 22)}


def test_window_is_clipped_at_image_borders():
    label = np.zeros((64, 64), dtype=np.float32)
    label[0, 0] = 1.0
    prob = np.zeros_like(label)
    prob[0, 0] = 0.6
    prob[0, 1:6] = 0.5
    prob[17, 0] = 1.0  # just outside the clipped window rows 0..16: must not raise p_max
    (cand,) = list(iter_candidates(label, prob, np.array([[0, 0]]), LespsConfig()))
    assert (cand.rows, cand.cols) == (slice(0, 17), slice(0, 17))
    # tau = 0.3 + 0.5·0.3·1/(0.0015·4096) = 0.3244; with p_max = 1.0 it would be 0.54 and drop the 0.5 chain
    assert cand.tau == pytest.approx(0.3 + 0.15 / 6.144)
    assert _coords(cand.mask) == {(0, x) for x in range(6)}
    corner = np.zeros_like(label)
    corner[63, 63] = 1.0
    (cand,) = list(iter_candidates(corner, prob, np.zeros((0, 2), int), LespsConfig(min_peak=0.0)))
    assert (cand.rows, cand.cols) == (slice(47, 64), slice(47, 64))


def test_point_centre_uses_the_point_and_its_region_size():
    label = np.zeros((64, 64), dtype=np.float32)
    label[20, 20:37] = 1.0  # 17 px; centroid (20, 28); annotated point at its left end
    prob = np.full_like(label, 0.1)
    points = np.array([[20, 20]])
    (by_region,) = list(iter_candidates(label, prob, points, LespsConfig(min_peak=0.0)))
    (by_point,) = list(iter_candidates(label, prob, points, LespsConfig(center="point", min_peak=0.0)))
    assert by_region.cols == slice(12, 45)
    assert by_point.cols == slice(4, 37)
    assert by_point.tau == pytest.approx(adaptive_threshold(0.1, 17, (64, 64), LespsConfig()))


def test_min_peak_leaves_unseen_targets_alone():
    """A flat, low prediction (the network does not see the target) must not grow a soft halo."""
    label = np.zeros((64, 64), dtype=np.float32)
    label[30, 30] = 1.0
    flat = np.full_like(label, 0.05)
    flat[30, 30] = 0.08
    points = np.array([[30, 30]])
    np.testing.assert_array_equal(lesps_update(label, flat, points, LespsConfig(min_peak=0.5)), label)
    # upstream's rule (min_peak = 0, the default): tau = 0.043, so nearly the whole 33² window becomes soft
    halo = lesps_update(label, flat, points, LespsConfig())
    assert ((halo > 0) & (halo < 0.5)).sum() > 1000
    # a peaked prediction above min_peak is used as before
    peaked = flat.copy()
    peaked[29:32, 29:32] = 0.9
    assert (lesps_update(label, peaked, points, LespsConfig(min_peak=0.5)) > 0.4).sum() == 9
    with pytest.raises(ValueError, match="min_peak"):
        LespsConfig(min_peak=1.5)


def test_lesps_blends_inside_candidates_and_keeps_the_rest():
    label = np.zeros((64, 64), dtype=np.float32)
    label[30, 30] = 1.0
    label[31, 31] = 0.3  # soft, inside M
    label[30, 40] = 0.2  # soft, inside the window, outside M
    label[5, 5] = 0.4  # outside the window
    prob = np.zeros_like(label)
    prob[30, 30] = 0.9
    prob[31, 31] = 0.7
    prob[30, 40] = 0.1
    new = lesps_update(label, prob, np.array([[30, 30]]), LespsConfig())
    assert new[31, 31] == pytest.approx(0.5 * (0.3 + 0.7))
    assert new[30, 40] == pytest.approx(0.2)
    assert new[5, 5] == pytest.approx(0.4)
    assert new[30, 30] == 1.0
    assert new.dtype == np.float32


def test_lesps_applies_regions_in_sequence_pal_once():
    # Two point regions whose candidate masks share the bridge (30, 31..33): tau = 0.45 + 0.225/6.144 < 0.8.
    label = np.zeros((64, 64), dtype=np.float32)
    label[30, 30] = label[30, 34] = 1.0
    prob = np.zeros_like(label)
    prob[30, 30] = prob[30, 34] = 0.9
    prob[30, 31:34] = 0.8
    points = np.array([[30, 30], [30, 34]])
    lesps = lesps_update(label, prob, points, LespsConfig())
    pal = pal_update(label, prob, points, PalConfig())
    assert lesps[30, 32] == pytest.approx((0.4 + 0.8) / 2)  # blended by region 1, then again by region 2
    assert pal[30, 32] == pytest.approx(0.4)  # union applied once


def test_pixels_at_one_survive_and_keep_points_controls_point_pixels():
    label = np.zeros((100, 100), dtype=np.float32)
    label[50, 50:52] = 1.0  # region of two pixels at exactly 1
    label[60, 60] = 0.9  # a soft point label
    prob = np.zeros_like(label)
    prob[50, 50] = 0.9
    prob[50, 51] = 0.6  # in M; the blend (1 + 0.6)/2 = 0.8 is undone by max(L, 1[L_old = 1])
    prob[60, 60] = 0.6  # in M of the second region: 0.9 -> 0.75
    no_points = lesps_update(label, prob, np.zeros((0, 2), int), LespsConfig())
    assert no_points[50, 51] == 1.0
    assert no_points[60, 60] == pytest.approx(0.75)
    kept = lesps_update(label, prob, np.array([[60, 60]]), LespsConfig(keep_points=True))
    assert kept[60, 60] == 1.0
    released = lesps_update(label, prob, np.array([[60, 60]]), LespsConfig(keep_points=False))
    assert released[60, 60] == pytest.approx(0.75)


def test_lesps_without_signal_leaves_the_label_alone():
    label = point_mask((40, 40), np.array([[10, 10], [30, 25]]), radius=1)
    new = lesps_update(label, np.zeros_like(label), np.array([[10, 10], [30, 25]]), LespsConfig())
    np.testing.assert_array_equal(new, label)


# --- PAL ----------------------------------------------------------------------------------------------


def test_pal_degenerates_outside_candidates_and_keeps_points():
    label = np.zeros((64, 64), dtype=np.float32)
    label[30, 30] = 1.0
    label[31, 31] = 0.3
    label[10, 50] = 0.6  # its own region, but p = 0 there: M is empty around it
    label[30, 40] = 0.2
    prob = np.zeros_like(label)
    prob[30, 30] = 0.9
    prob[31, 31] = 0.7
    new = pal_update(label, prob, np.array([[30, 30]]), PalConfig())
    assert new[31, 31] == pytest.approx(0.5)
    assert new[10, 50] == pytest.approx(0.97 * 0.6)
    assert new[30, 40] == pytest.approx(0.97 * 0.2)
    assert new[30, 30] == 1.0
    forced = pal_update(np.full_like(label, 0.9), np.zeros_like(prob), np.array([[5, 5]]), PalConfig())
    assert forced[5, 5] == 1.0
    assert forced[6, 6] == pytest.approx(0.97 * 0.9)


def test_pal_easy_init_accepts_a_small_bright_blob():
    rng = np.random.default_rng(0)
    image = (0.2 + rng.normal(0.0, 0.005, (64, 64))).astype(np.float32)
    image[30:33, 40:43] = 0.8
    mask, is_easy, n_correct = pal_easy_init(image, np.array([[31, 41]]), PalConfig())
    assert is_easy and n_correct == 1
    blob = _coords(mask)
    assert {(y, x) for y in range(30, 33) for x in range(40, 43)} <= blob
    assert len(blob) <= 50 and all(28 <= y <= 34 and 38 <= x <= 44 for y, x in blob)


def test_pal_easy_init_rejects_flat_noise_and_large_blobs():
    rng = np.random.default_rng(1)
    noise = np.clip(0.3 + rng.normal(0.0, 0.01, (64, 64)), 0, 1).astype(np.float32)
    mask, is_easy, n_correct = pal_easy_init(noise, np.array([[31, 41]]), PalConfig())
    assert not is_easy and n_correct == 0
    assert _coords(mask) == {(31, 41)}  # a hard image keeps only its points
    big = np.full((64, 64), 0.2, dtype=np.float32)
    big[20:30, 20:30] = 0.8  # 100 px target: no closed contour of area <= 50 holds the point
    assert pal_easy_init(big, np.array([[25, 25]]), PalConfig())[1:] == (False, 0)


def test_pal_easy_ratio_counts_points():
    image = np.full((64, 64), 0.2, dtype=np.float32)
    image[30:33, 40:43] = 0.8
    points = np.array([[31, 41], [10, 10]])  # one easy point out of two: 0.5 < 0.8
    assert pal_easy_init(image, points, PalConfig())[1:] == (False, 1)
    assert pal_easy_init(image, points, PalConfig(easy_ratio=0.5))[1:] == (True, 1)
    empty, is_easy, n_correct = pal_easy_init(image, np.zeros((0, 2), int), PalConfig())
    assert is_easy and n_correct == 0 and empty.sum() == 0


def test_pal_promotion_by_lose_and_alarm_ratios():
    prob = np.zeros((40, 40), dtype=np.float32)
    prob[9:12, 9:12] = 0.9  # blob hitting point A
    prob[30:32, 5:7] = 0.8  # false alarm
    points = np.array([[10, 10], [25, 25]])  # point B is missed
    # P = 2, H = 1, B = 2: lose = 1/2, alarm = (2 - 1)/2 = 0.5
    accept, mask = pal_promote(prob, points, lose_ratio=0.5, alarm_ratio=5.0)
    assert accept
    assert _coords(mask) == {(y, x) for y in range(9, 12) for x in range(9, 12)} | {(25, 25)}
    assert not pal_promote(prob, points, lose_ratio=0.22, alarm_ratio=5.0)[0]
    assert not pal_promote(prob, points, lose_ratio=1.0, alarm_ratio=0.4)[0]
    assert pal_promote(prob, points, lose_ratio=1.0, alarm_ratio=0.5)[0]
    # PAL subtracts hit points, not hit blobs: one blob holding both points plus a false alarm gives
    # alarm = (2 - 2)/2 = 0, so even alarm_ratio = 0 accepts.
    both = prob.copy()
    both[10:26, 10:26] = 0.9
    assert pal_promote(both, points, lose_ratio=0.0, alarm_ratio=0.0)[0]
    accept, mask = pal_promote(prob, np.zeros((0, 2), int), 0.2, 5.0)
    assert accept and mask.sum() == 0


# --- schedule -----------------------------------------------------------------------------------------


def test_pal_lose_ratio_matches_pal_numbers():
    cfg = PalConfig()
    assert pal_lose_ratio(85, 400, cfg) == pytest.approx(0.22)
    assert pal_lose_ratio(320, 400, cfg) == pytest.approx(0.2 + 241 / 240 * 0.8)
    # 20 epochs: 0.2 + (5 - 4 + 1)/12·0.8
    assert pal_lose_ratio(5, 20, cfg) == pytest.approx(0.2 + 2 / 12 * 0.8)


@pytest.mark.parametrize(
    ("epochs", "pre_last", "enhance_last"),
    [(400, 80, 320), (20, 4, 16)],
)
def test_pal_phases_scale_with_the_budget(epochs, pre_last, enhance_last):
    cfg = PalConfig()
    assert pal_phase(0, epochs, cfg) == "pre"
    assert pal_phase(pre_last, epochs, cfg) == "pre"
    assert pal_phase(pre_last + 1, epochs, cfg) == "enhance"
    assert pal_phase(enhance_last, epochs, cfg) == "enhance"
    assert pal_phase(enhance_last + 1, epochs, cfg) == "refine"
    assert pal_phase(epochs - 1, epochs, cfg) == "refine"


def test_should_update_per_rule():
    pal = LabelConfig(rule="pal")
    updates = [e for e in range(400) if should_update(e, 400, pal, started=False)]
    assert updates == list(range(85, 400, 5))
    assert [e for e in range(20) if should_update(e, 20, pal, started=False)] == [5, 10, 15]
    lesps = LabelConfig(rule="lesps")
    assert [e for e in range(12) if should_update(e, 12, lesps, started=True)] == [0, 5, 10]
    assert not any(should_update(e, 12, lesps, started=False) for e in range(12))
    assert not any(should_update(e, 12, LabelConfig(rule="fixed"), started=True) for e in range(12))
    with pytest.raises(ValueError):
        should_update(12, 12, lesps, started=True)


def test_lesps_start_by_loss_or_epoch():
    by_loss = LabelConfig(start="loss", start_loss=10.0)
    assert lesps_started(3, 9.9, by_loss)
    assert not lesps_started(3, 10.0, by_loss)
    assert not lesps_started(0, float("inf"), by_loss)
    by_epoch = LabelConfig(start="epoch", start_epoch_frac=0.1)  # LESPS Tepoch = 40 of 400
    assert not lesps_started(40, 0.0, by_epoch, epochs=400)
    assert lesps_started(41, 99.0, by_epoch, epochs=400)
    with pytest.raises(ValueError):
        lesps_started(41, 0.0, by_epoch)


# --- guard and stats ----------------------------------------------------------------------------------


def test_guard_flags_growth_and_erasure():
    points = np.array([[10, 10], [40, 40]])
    old = point_mask((64, 64), points)
    grown = old.copy()
    grown[0:21, 0:21] = 0.8  # 441 px region > 400
    result = check_update(old, grown, points, GuardConfig(max_area=400))
    assert result.events == ["grew_past_bound"]
    assert result.label is old
    erased = old.copy()
    erased[40, 40] = 0.3
    result = check_update(old, erased, points, GuardConfig(freeze_on_violation=False))
    assert result.events == ["erased_target"]
    assert result.label is erased
    fine = old.copy()
    fine[9:12, 9:12] = 0.7
    result = check_update(old, fine, points, GuardConfig())
    assert result.events == [] and result.label is fine


def test_mask_stats_hand_computed():
    label = np.zeros((10, 10), dtype=np.float32)
    label[1:3, 1:3] = 0.9  # 4 px
    label[6, 6] = 0.6  # 1 px, separate component
    label[8, 8] = 0.5  # counted: >= 0.5, as LESPS reports evolved labels
    label[0, 9] = 0.49  # not counted
    gt = np.zeros((10, 10), dtype=np.uint8)
    gt[1:3, 1:4] = 255  # 6 px, overlaps 4
    stats = mask_stats(label, gt)
    assert stats == {"area": 6, "n_components": 3, "iou_vs_gt": pytest.approx(4 / 8)}
    assert mask_stats(label)["iou_vs_gt"] is None
    # a target-free image with an empty label has no IoU (not a perfect 1.0)
    assert mask_stats(np.zeros((4, 4)), np.zeros((4, 4)))["iou_vs_gt"] is None
    assert mask_stats(np.ones((4, 4)), np.zeros((4, 4)))["iou_vs_gt"] == 0.0


# --- determinism and real data ------------------------------------------------------------------------


def test_updates_are_deterministic_and_pure():
    rng = np.random.default_rng(3)
    prob = rng.random((48, 56)).astype(np.float32)
    points = np.array([[5, 7], [30, 40], [47, 55]])
    label = point_mask(prob.shape, points, radius=1)
    label_copy, prob_copy = label.copy(), prob.copy()
    for update, cfg in ((lesps_update, LespsConfig()), (pal_update, PalConfig())):
        first = update(label, prob, points, cfg)
        np.testing.assert_array_equal(first, update(label, prob, points, cfg))
        assert not np.array_equal(first, label)
    np.testing.assert_array_equal(label, label_copy)
    np.testing.assert_array_equal(prob, prob_copy)


def test_lesps_grows_points_towards_real_nuaa_masks():
    if not NUAA.is_dir():
        pytest.skip("NUAA-SIRST data not available")
    from PIL import Image

    for sid in ("Misc_1", "Misc_10", "Misc_100"):
        gt = np.array(Image.open(NUAA / "masks" / f"{sid}.png")) > 127
        regions, count = ndimage.label(gt, structure=np.ones((3, 3)))
        centres = ndimage.center_of_mass(gt, regions, range(1, count + 1))
        points = np.floor(np.array(centres)).astype(int)  # LESPS centroid_anno: floor of the centroid
        # Stand-in for a good network: the true mask, slightly blurred and rescaled to peak 1.
        prob = ndimage.gaussian_filter(gt.astype(np.float32), sigma=1.0)
        prob /= prob.max()
        label = point_mask(gt.shape, points)
        ious = [mask_stats(label, gt)["iou_vs_gt"]]
        for _ in range(4):
            label = lesps_update(label, prob, points, LespsConfig())
            ious.append(mask_stats(label, gt)["iou_vs_gt"])
        assert ious[0] < 0.2, sid
        assert ious[-1] > 0.75, (sid, ious)
        assert all(b >= a - 1e-9 for a, b in zip(ious, ious[1:], strict=False)), (sid, ious)
