"""Tests of image clustering and the hand-crafted image descriptor (semprior_core.method.clusters)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import adjusted_rand_score

from semprior_core.method.clusters import (
    STAT_NAMES,
    ClusterAssignment,
    cluster_images,
    image_statistics,
    stats_features,
)
from semprior_core.method.config import SempriorConfig, auto_k


def _blobs(seed: int = 0, per: int = 20, dim: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = 10 * rng.standard_normal((4, dim))
    truth = np.repeat(np.arange(4), per)
    return centres[truth] + 0.3 * rng.standard_normal((len(truth), dim)), truth


def test_separated_blobs_are_recovered():
    x, truth = _blobs()
    perm = np.random.default_rng(1).permutation(len(x))
    labels = cluster_images(x[perm], 4, seed=0)
    assert adjusted_rand_score(truth[perm], labels) == 1.0
    # labels are numbered by first appearance
    _, first = np.unique(labels, return_index=True)
    assert list(first) == sorted(first) and labels[0] == 0


def test_features_are_standardised_first():
    """Blobs separated along a tiny-scale feature; a large-scale noise feature must not dominate."""
    rng = np.random.default_rng(2)
    truth = np.repeat([0, 1, 2], 15)
    signal = 1e-3 * truth[:, None] + 1e-5 * rng.standard_normal((len(truth), 4))
    noise = rng.standard_normal((len(truth), 1))
    labels = cluster_images(np.concatenate([signal, noise], axis=1), 3, seed=0)
    assert adjusted_rand_score(truth, labels) == 1.0


def test_deterministic_per_seed():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((60, 6))  # no cluster structure: k-means restarts matter
    assert np.array_equal(cluster_images(x, 5, seed=7), cluster_images(x, 5, seed=7))


def test_k_edge_cases():
    x, _ = _blobs(per=3)
    with pytest.raises(ValueError, match="k must be"):
        cluster_images(x, len(x) + 1)
    assert np.array_equal(cluster_images(x, 1), np.zeros(len(x), dtype=np.int64))
    assert sorted(set(cluster_images(x, len(x)).tolist())) == list(range(len(x)))
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cluster_images(x, 2)


def test_auto_k():
    assert [auto_k(n) for n in (1, 3, 8, 50, 192, 1000)] == [1, 2, 2, 5, 10, 16]
    assert SempriorConfig(n_clusters=0).clusters_for(192) == 10
    assert SempriorConfig(n_clusters=7).clusters_for(192) == 7
    with pytest.raises(ValueError, match="n_clusters"):
        SempriorConfig(n_clusters=7).clusters_for(5)


def test_cluster_assignment_json_round_trip(tmp_path):
    a = ClusterAssignment.from_labels(np.array([2, 0, 2, 1, 2]), 4, "stats", seed=3, ids=list("abcde"))
    assert a.sizes == [1, 1, 3, 0]
    path = tmp_path / "clusters.json"
    path.write_text(a.to_json())
    b = ClusterAssignment.from_json(path.read_text())
    assert b == a and json.loads(path.read_text())["labels"] == [2, 0, 2, 1, 2]


def test_cluster_assignment_validation():
    with pytest.raises(ValueError, match="sizes"):
        ClusterAssignment([0, 1, 1], 2, "vfm", [2, 1])
    with pytest.raises(ValueError, match="labels"):
        ClusterAssignment.from_labels([0, 3], 2, "vfm")
    with pytest.raises(ValueError, match="ids"):
        ClusterAssignment.from_labels([0, 1], 2, "vfm", ids=["a"])


def _stats(image: np.ndarray) -> dict[str, float]:
    values = image_statistics(image)
    assert values.shape == (len(STAT_NAMES),) and np.isfinite(values).all()
    return dict(zip(STAT_NAMES, values.tolist(), strict=True))


def test_statistics_of_a_constant_image():
    s = _stats(np.full((40, 50), 0.5, dtype=np.float32))
    for name in ("mean", "p01", "p50", "p99"):
        assert s[name] == pytest.approx(0.5)
    zero = [n for n in STAT_NAMES if n not in ("mean", "p01", "p25", "p50", "p75", "p99")]
    assert all(abs(s[n]) < 1e-6 for n in zero), {n: s[n] for n in zero if abs(s[n]) >= 1e-6}


def test_statistics_of_white_noise():
    rng = np.random.default_rng(0)
    s = _stats(0.5 + 0.1 * rng.standard_normal((128, 128)))
    assert s["mean"] == pytest.approx(0.5, abs=0.005)
    assert s["std"] == pytest.approx(0.1, rel=0.02)
    assert s["noise_sigma"] == pytest.approx(0.1, rel=0.05)  # Immerkær's estimator on white noise
    assert abs(s["skew"]) < 0.1 and abs(s["kurtosis"]) < 0.15
    assert s["p50"] == pytest.approx(0.5, abs=0.01)
    assert abs(s["spectral_slope"]) < 0.2  # a flat spectrum
    assert s["high_freq_ratio"] == pytest.approx(0.75, abs=0.05)  # ring area (64² − 32²)/64²


def test_statistics_separate_smooth_from_spiky():
    rng = np.random.default_rng(1)
    smooth = ndimage.gaussian_filter(rng.standard_normal((96, 96)), 4)
    smooth = 0.5 + 0.1 * smooth / smooth.std()
    spiky = smooth.copy()
    spiky[40:43, 60:63] += 0.4  # a small bright target
    a, b = _stats(smooth), _stats(spiky)
    assert a["spectral_slope"] < -2  # blurred noise: a steep spectrum
    assert a["high_freq_ratio"] < 0.05
    assert b["tophat_max"] > a["tophat_max"] + 0.2 and b["peak_snr"] > a["peak_snr"] + 1


def test_integer_images_are_scaled():
    s = _stats(np.full((16, 16), 255, dtype=np.uint8))
    assert s["mean"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="8x8"):
        image_statistics(np.zeros((4, 16)))


def test_stats_features_on_real_images(nuaa_root):
    from semprior_core.io import read_image

    paths = sorted((nuaa_root / "images").glob("*.png"))[:6]
    feats = stats_features(read_image(p) for p in paths)
    assert feats.shape == (6, len(STAT_NAMES)) and np.isfinite(feats).all()
    labels = cluster_images(feats, 2, seed=0)
    assert set(labels.tolist()) == {0, 1}
