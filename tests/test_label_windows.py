"""Label updates that predict only the points' neighbourhood (``labels.predict_margin``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from semprior_core.config import load_config
from semprior_core.config.tree import ConfigError
from semprior_core.data.catalog import folders_of, load_points
from semprior_core.data.transforms import Geometry, fit_to_divisor, points_window
from semprior_core.method.supervision import Supervision
from semprior_core.runtime.inference import predict_probs
from tests.banks import train_bank
from tests.fixtures_runs import tiny_run  # noqa: F401


def test_points_window_is_the_grown_bounding_box_clipped_to_the_image():
    pts = np.array([[10, 50], [30, 70]])
    # rows 10-20 .. 30+20 -> [0, 51), columns 50-20 .. 70+20 -> [30, 91)
    assert points_window((100, 120), pts, 20) == Geometry(0, 30, 51, 61)
    assert points_window((100, 120), np.empty((0, 2)), 20) is None
    assert points_window((40, 40), np.array([[20, 20]]), 33) is None  # the box is the whole image


def test_fit_to_divisor_rounds_up_and_stays_inside_where_it_can():
    assert fit_to_divisor(Geometry(0, 30, 51, 61), (100, 120), 8) == Geometry(0, 30, 56, 64)
    # near the bottom-right corner the rounded window moves up and left instead of padding
    assert fit_to_divisor(Geometry(90, 100, 10, 20), (100, 120), 16) == Geometry(84, 88, 16, 32)
    # larger than the image once rounded: it pads past the bottom/right edge, as whole-image inference does
    assert fit_to_divisor(Geometry(0, 0, 20, 20), (20, 20), 16) == Geometry(0, 0, 32, 32)


def test_windowed_prediction_equals_the_whole_image_inside_and_is_zero_outside(tiny_synthetic):
    tb = train_bank(tiny_synthetic)
    bank, norm = tb.bank, tb.norm
    torch.manual_seed(0)
    net = nn.Conv2d(1, 1, 1)  # pixelwise: a window sees exactly what the whole image shows there
    forward = lambda batch: net(batch["image"])  # noqa: E731
    whole = predict_probs(forward, net, bank, norm, divisor=8, device=torch.device("cpu"), indices=[0, 1])
    win = predict_probs(forward, net, bank, norm, divisor=8, device=torch.device("cpu"), indices=[0, 1],
                        windows={0: Geometry(5, 7, 20, 30)})
    inside = np.zeros(bank.shape(0), dtype=bool)
    inside[5:29, 7:39] = True  # fitted to the divisor: 24 x 32
    np.testing.assert_allclose(win[0][inside], whole[0][inside], rtol=0, atol=1e-6)
    assert not win[0][~inside].any() and whole[0][~inside].min() > 0
    np.testing.assert_array_equal(win[1], whole[1])  # no window: the whole image


def _update_windows(root, margin):
    tb = train_bank(root, f"labels.predict_margin={margin}", "labels.rule=lesps")
    cfg, bank = tb.cfg, tb.bank
    sup = Supervision(cfg, bank, load_points(cfg.data, folders_of(cfg.data, tb.splits)), None)
    seen = {}

    def predict(indices, windows=None):
        seen["indices"], seen["windows"] = indices, windows
        return [np.zeros(bank.shape(i), dtype=np.float32) for i in indices]

    # LESPS starts once epoch > int(0.1 · 10): the update before epoch 2 of 10 is its first
    assert sup.after_epoch(1, 10, 1.0, predict)["label_update"] == 1
    return sup, bank, seen


def test_a_label_update_asks_for_the_points_windows_only_when_configured(tiny_synthetic):
    sup, bank, seen = _update_windows(tiny_synthetic, 40)
    assert seen["indices"] == sup.active()
    expected = {i: points_window(bank.shape(i), sup.points_of(i), 40) for i in seen["indices"]}
    assert seen["windows"] == {i: g for i, g in expected.items() if g is not None}
    assert seen["windows"], "a 96² image with a 40 px margin around its points leaves something out"
    _, _, whole = _update_windows(tiny_synthetic, 0)
    assert whole["windows"] is None


def test_a_margin_smaller_than_the_candidate_window_is_refused():
    with pytest.raises(ConfigError, match="predict_margin.*candidate window \\(33 px\\)"):
        load_config(None, ["labels.predict_margin=20"])
    assert load_config(None, ["labels.predict_margin=33"]).labels.predict_margin == 33


def test_bench_compares_whole_and_windowed_label_updates_per_network(tiny_run, tiny_full_run):  # noqa: F811
    from workbench.label_window_bench import bench_label_windows

    rows = bench_label_windows(tiny_run, margins=(33, 500), images=6, repeats=1)
    assert [(r["network"], r["margin"]) for r in rows] == [("student", 33), ("student", 500),
                                                           ("teacher", 33), ("teacher", 500)]
    for r in rows:
        assert r["images"] == 6 and 0 < r["window_area"] <= 1 and 0 <= r["label_iou_whole_vs_window"] <= 1
    covering = [r for r in rows if r["margin"] == 500]  # every window is the whole 64² image: nothing may change
    assert all(r["window_area"] == 1 and r["identical_images"] == 1 and r["label_iou_whole_vs_window"] == 1
               and r["iou_vs_gt_whole"] == r["iou_vs_gt_window"] for r in covering)
    assert any(r["window_area"] < 1 for r in rows if r["margin"] == 33)
    with pytest.raises(ValueError, match="labels never evolve"):
        bench_label_windows(tiny_full_run)
