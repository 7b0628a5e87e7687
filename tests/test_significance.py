from __future__ import annotations

import numpy as np
import pytest

from semprior_core.evaluation.significance import paired_bootstrap, pool_seeds


def test_clearly_better_method_is_significant():
    rng = np.random.default_rng(0)
    union = rng.integers(20, 40, 100).astype(float)
    inter_b = union * rng.uniform(0.3, 0.5, 100)
    inter_a = np.minimum(union, inter_b + 0.2 * union)
    r = paired_bootstrap(inter_a, union, inter_b, union, n_resamples=2000)
    assert r.diff == pytest.approx(inter_a.sum() / union.sum() - inter_b.sum() / union.sum())
    assert r.ci_low > 0 and r.p_bootstrap < 0.01 and r.p_wilcoxon < 0.01


def test_identical_methods_are_not_significant():
    inter = np.array([5.0, 3, 8, 1])
    union = np.array([10.0, 6, 9, 4])
    r = paired_bootstrap(inter, union, inter, union, n_resamples=500)
    assert r.diff == 0 and r.ci_low == 0 == r.ci_high and r.p_wilcoxon == 1.0 and r.p_bootstrap == 1.0


def test_noise_gives_wide_interval():
    rng = np.random.default_rng(1)
    union = np.full(30, 20.0)
    a, b = rng.uniform(0, 20, 30), rng.uniform(0, 20, 30)
    r = paired_bootstrap(a, union, b, union, n_resamples=2000)
    assert r.ci_low < r.diff < r.ci_high and r.ci_high - r.ci_low > 0.05


def test_pool_seeds_sums_per_image():
    inter, union = pool_seeds([(np.array([1, 2]), np.array([3, 4])), (np.array([1, 0]), np.array([2, 2]))])
    assert inter.tolist() == [2, 2] and union.tolist() == [5, 6]


def test_length_mismatch():
    with pytest.raises(ValueError, match="same, non-zero length"):
        paired_bootstrap(np.ones(3), np.ones(3), np.ones(2), np.ones(2))
