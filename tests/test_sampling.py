"""Point-centred crops, epoch plans and step budgets (issue: crops that see targets, budgets in steps)."""

from __future__ import annotations

import numpy as np
import pytest

from semprior_core.config import load_config
from semprior_core.config.tree import ConfigError
from semprior_core.data.dataset import CropDataset, epoch_plan
from semprior_core.data.transforms import apply_points, sample_geometry
from semprior_core.engine import lr_factor, samples_per_epoch, train
from semprior_core.method.supervision import Supervision
from tests.banks import train_bank
from tests.histories import assert_same_history

from .test_engine import _interrupt_after


def test_centred_crops_hold_the_point_and_follow_target_prob():
    point = np.array([[150, 40]])  # near the left edge of a 200x300 image: clamping must keep it inside
    centred, n = 0, 2000
    for k in range(n):
        g = sample_geometry(np.random.default_rng([7, k]), (200, 300), 64, centres=point, target_prob=0.8)
        inside = len(apply_points(point, g)) == 1
        if inside:
            centred += 1
        assert 0 <= g.top <= 200 - 64 and 0 <= g.left <= 300 - 64
    # uniform 64² crops of a 200x300 image hold a given pixel with probability ~ (64/200)(64/300) ≈ 7 %
    assert abs(centred / n - (0.8 + 0.2 * 0.07)) < 0.04


def test_jitter_bounds_the_offset_and_zero_prob_is_uniform():
    pt = np.array([[100, 100]])
    for k in range(300):
        rng = np.random.default_rng([1, k])
        g = sample_geometry(rng, (400, 400), 64, centres=pt, target_prob=1.0, jitter=0.5)
        # the point sits within ±0.5·32 px of the crop centre (rounding: one more pixel)
        assert abs(100 - (g.top + 32)) <= 17 and abs(100 - (g.left + 32)) <= 17
    # target_prob 0: the same windows as without centres (centres never consulted)
    for k in range(50):
        a = sample_geometry(np.random.default_rng([2, k]), (400, 400), 64, centres=pt, target_prob=0.0)
        b = sample_geometry(np.random.default_rng([2, k]), (400, 400), 64)
        assert a == b


def test_no_points_falls_back_to_uniform():
    g = sample_geometry(np.random.default_rng(0), (100, 100), 32, centres=np.empty((0, 2)), target_prob=1.0)
    assert 0 <= g.top <= 68 and 0 <= g.left <= 68


def test_epoch_plan_balances_images():
    plan = epoch_plan([3, 5, 9], 8, np.random.default_rng(0))
    assert len(plan) == 8 and set(plan) == {3, 5, 9}
    counts = sorted(plan.count(i) for i in (3, 5, 9))
    assert counts == [2, 3, 3]
    assert sorted(epoch_plan([3, 5, 9], 0, np.random.default_rng(0))) == [3, 5, 9]
    assert epoch_plan([], 5, np.random.default_rng(0)) == []


def test_crop_dataset_repeats_images_with_distinct_replayable_crops(tiny_synthetic):
    tb = train_bank(tiny_synthetic)
    bank, norm = tb.bank, tb.norm
    ds = CropDataset(bank, lambda i: bank.mask(i).astype(np.float32), norm, crop=32, seed=5, plan=[2, 2, 2])
    ds.set_epoch(1)
    items = [ds[j] for j in range(3)]
    assert [int(it["index"]) for it in items] == [2, 2, 2]
    assert len({ds.geometry(j) for j in range(3)}) > 1  # repeated image, different windows
    np.testing.assert_array_equal(items[1]["image"].numpy(), ds[1]["image"].numpy())  # replay


def test_point_supervision_centres_on_points_only_full_on_mask_components(tiny_synthetic):
    tb = train_bank(tiny_synthetic)
    cfg, bank = tb.cfg, tb.bank
    from semprior_core.data.catalog import folders_of, load_points

    points = load_points(cfg.data, folders_of(cfg.data, tb.splits))
    sup = Supervision(cfg, bank, points, None)
    for i in range(len(bank)):
        np.testing.assert_array_equal(sup.crop_centres(i), sup.points_of(i))
    # a point-supervised run never opens a dense mask to place crops
    bank._masks.clear()
    for i in range(len(bank)):
        sup.crop_centres(i)
    assert bank._masks == {}
    full = load_config(None, [f"data.datasets=[{{root: {tiny_synthetic}}}]", "method.supervision=full"])
    fsup = Supervision(full, bank, None, None)
    mask = np.zeros((20, 20))
    mask[2:5, 2:4] = 1  # centroid (3, 2.5)
    mask[10, 15] = 1
    bank._masks[0] = mask
    np.testing.assert_allclose(fsup.crop_centres(0), [[3.0, 2.5], [10.0, 15.0]])


def test_budget_fields():
    cfg = load_config(None, ["train.steps=100", "train.epochs=8", "data.batch_size=4"])
    assert samples_per_epoch(cfg, 50) == 13 * 4  # ceil(100/8) steps of 4 crops
    assert samples_per_epoch(cfg, 50, world=2) == 13 * 8
    assert samples_per_epoch(load_config(None, ["data.samples_per_epoch=40"]), 50) == 40
    assert samples_per_epoch(load_config(None, []), 50) == 50
    with pytest.raises(ConfigError, match="set one of them"):
        load_config(None, ["train.steps=100", "data.samples_per_epoch=40"])
    for bad in ("data.target_prob=1.5", "train.steps=-1", "data.samples_per_epoch=-3"):
        with pytest.raises(ConfigError):
            load_config(None, [bad])


def test_lr_follows_every_step():
    cfg = load_config(None, ["train.epochs=4", "train.schedule=cosine"])
    assert lr_factor(cfg, 0.0) == 1.0 and lr_factor(cfg, 2.0) == pytest.approx(0.5)
    assert lr_factor(cfg, 1.0) > lr_factor(cfg, 1.5) > lr_factor(cfg, 2.0)
    assert lr_factor(cfg, 4.0) == pytest.approx(0.0, abs=1e-12)


def test_train_steps_set_the_run_length_and_resume_replays(tiny_synthetic, tmp_path, monkeypatch):
    cfg = load_config(None, [
        f"data.datasets=[{{root: {tiny_synthetic}}}]", "data.crop=32", "data.batch_size=2",
        "data.val_fraction=0.25", "model.options={widths: [4, 8, 16]}", "train.epochs=3", "train.steps=10",
        "train.threads=1", "labels.start_epoch_frac=0.0", "labels.update_every=1",
    ])
    full = train(cfg, tmp_path / "a", progress=False)
    assert [r["steps"] for r in full] == [4, 4, 4] and full[-1]["total_steps"] == 12
    # killed at the first step of epoch 3, resumed: the same crops (point-centred, repeated images)
    with monkeypatch.context() as m:
        _interrupt_after(m, 8)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / "b", progress=False)
    resumed = train(cfg, tmp_path / "b", resume=True, progress=False)
    assert_same_history(resumed, full)
