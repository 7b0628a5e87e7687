"""Paired significance of one method against another on the same test images.

Both methods are scored on the same images (and, across seeds, the same seeds), so the
comparison is paired: a bootstrap resamples *images* and recomputes the dataset-level IoU
of each method on the resample (Efron & Tibshirani, 1993), and a Wilcoxon signed-rank test
compares per-image IoU. Per-image statistics of several seeds are pooled by summing
intersections and unions per image, so an image counts once however many seeds there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedResult:
    iou_a: float
    iou_b: float
    diff: float  # IoU(a) − IoU(b), in the same units as the inputs (fractions)
    ci_low: float
    ci_high: float
    p_bootstrap: float  # one-sided: P(diff ≤ 0) under resampling
    p_wilcoxon: float  # two-sided, per-image IoU
    n_images: int


def pool_seeds(per_seed: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sum per-image (intersection, union) arrays over seeds (all over the same images, same order)."""
    inter = np.sum([np.asarray(i, dtype=np.float64) for i, _ in per_seed], axis=0)
    union = np.sum([np.asarray(u, dtype=np.float64) for _, u in per_seed], axis=0)
    return inter, union


def paired_bootstrap(
    inter_a: np.ndarray, union_a: np.ndarray, inter_b: np.ndarray, union_b: np.ndarray,
    n_resamples: int = 10_000, seed: int = 0, confidence: float = 0.95,
) -> PairedResult:
    """Bootstrap over images of the dataset-IoU difference a − b, plus a Wilcoxon test on per-image IoU."""
    arrays = [np.asarray(x, dtype=np.float64) for x in (inter_a, union_a, inter_b, union_b)]
    n = len(arrays[0])
    if n == 0 or any(len(x) != n for x in arrays):
        raise ValueError("paired_bootstrap needs four arrays of the same, non-zero length (one entry per image)")
    ia, ua, ib, ub = arrays
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    diffs = _iou(ia[idx].sum(1), ua[idx].sum(1)) - _iou(ib[idx].sum(1), ub[idx].sum(1))
    alpha = (1 - confidence) / 2
    per_a, per_b = _iou(ia, ua), _iou(ib, ub)
    if np.allclose(per_a, per_b):
        p_w = 1.0
    else:
        p_w = float(stats.wilcoxon(per_a, per_b, zero_method="zsplit").pvalue)
    return PairedResult(
        iou_a=float(_iou(ia.sum(), ua.sum())), iou_b=float(_iou(ib.sum(), ub.sum())),
        diff=float(_iou(ia.sum(), ua.sum()) - _iou(ib.sum(), ub.sum())),
        ci_low=float(np.quantile(diffs, alpha)), ci_high=float(np.quantile(diffs, 1 - alpha)),
        p_bootstrap=float((diffs <= 0).mean()), p_wilcoxon=p_w, n_images=n,
    )


def _iou(inter, union):
    inter, union = np.asarray(inter, dtype=np.float64), np.asarray(union, dtype=np.float64)
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 1.0)
