"""LESPS label evolution: grow soft point labels from the network's own predictions.

Ying et al., "Mapping Degeneration Meets Label Evolution: Learning Infrared Small Target Detection with
Single Point Supervision", CVPR 2023; rule read from ``XinyiYing/LESPS`` ``net.py`` ``update_gt``
(METHOD_NOTES §2). For every connected region of the current label (L > 0.5, 8-connected, raster order):

1. N = ``window``² square and T = ``core``² square at the region's int centroid, clipped to the image;
2. τ = Tb·p_max + k·(p_max − Tb·p_max)·n / (0.0015·H·W), p_max = max of p over N, n = region size;
3. M = 1[p·1_N > τ] minus the components of M that do not touch T;
4. L ← L(1 − M) + ½(L + p)M, region after region (overlapping windows blend twice).

Finally L ← max(L, 1[L_old = 1]). LESPS's code keeps a lone off-core component when M has only one
component; this implementation drops every component that misses T, as the paper describes. Regions whose
p_max is below ``cfg.min_peak`` are skipped (not in LESPS, whose rule is ``min_peak = 0``; see
:class:`LespsConfig`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from semprior_core.labels.config import LespsConfig, PalConfig
from semprior_core.labels.points_to_masks import as_points

# 8-connectivity, as skimage.measure.label and cv2.connectedComponents use by default.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Candidate:
    """Candidate pixels of one region: ``mask`` covers ``image[rows, cols]`` (the clipped window)."""

    rows: slice
    cols: slice
    mask: np.ndarray
    tau: float


def validate_maps(label: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``label`` and ``prob`` as float32 HxW arrays after checking that their shapes agree."""
    label = np.asarray(label, dtype=np.float32)
    prob = np.asarray(prob, dtype=np.float32)
    if label.ndim != 2 or label.shape != prob.shape:
        raise ValueError(f"label and prob must be HxW maps of one shape, got {label.shape} and {prob.shape}")
    return label, prob


def adaptive_threshold(
    p_max: float, region_size: int, image_shape: tuple[int, int], cfg: LespsConfig | PalConfig
) -> float:
    """LESPS's τ: rises from Tb·p_max towards p_max as the region grows towards size_ref·H·W pixels."""
    h, w = image_shape
    start = cfg.tb * p_max
    return start + cfg.k * (p_max - start) * region_size / (cfg.size_ref * h * w)


def _centres(label: np.ndarray, points: np.ndarray, center: str) -> list[tuple[int, int, int]]:
    """(y, x, n) for every window: region centroids (LESPS) or annotated points with their region's size."""
    regions, count = ndimage.label(label > 0.5, structure=EIGHT_CONNECTED)
    sizes = np.bincount(regions.ravel(), minlength=count + 1)
    if center == "point":
        # A point off every region (label < 0.5 there) has n = 0, so τ falls back to Tb·p_max.
        return [(int(y), int(x), int(sizes[regions[y, x]]) if regions[y, x] else 0) for y, x in points]
    ys, xs = np.indices(label.shape)
    sum_y = np.bincount(regions.ravel(), weights=ys.ravel(), minlength=count + 1)
    sum_x = np.bincount(regions.ravel(), weights=xs.ravel(), minlength=count + 1)
    return [(int(sum_y[r] / sizes[r]), int(sum_x[r] / sizes[r]), int(sizes[r])) for r in range(1, count + 1)]


def iter_candidates(
    label: np.ndarray,
    prob: np.ndarray,
    points: np.ndarray,
    cfg: LespsConfig | PalConfig,
) -> Iterator[Candidate]:
    """Yield the candidate mask of every region in raster order (steps 1-3 of the module docstring).

    Windows are centred as ``cfg.center`` says (PAL, which has no such field, uses region centroids).
    Regions and their sizes come from ``label`` as given, so the candidates do not depend on the order in
    which they are applied.
    """
    center = cfg.center if isinstance(cfg, LespsConfig) else "region"
    label, prob = validate_maps(label, prob)
    h, w = label.shape
    half, core_half = cfg.window // 2, cfg.core // 2
    for cy, cx, n in _centres(label, as_points(points, label.shape), center):
        rows = slice(max(cy - half, 0), min(cy + half + 1, h))
        cols = slice(max(cx - half, 0), min(cx + half + 1, w))
        crop = prob[rows, cols]
        p_max = float(crop.max())
        if p_max < cfg.min_peak:
            continue  # the network does not see this target yet: no evidence to grow its label from
        tau = adaptive_threshold(p_max, n, (h, w), cfg)
        parts, _ = ndimage.label(crop > tau, structure=EIGHT_CONNECTED)
        core = parts[
            max(cy - core_half, 0) - rows.start : min(cy + core_half + 1, h) - rows.start,
            max(cx - core_half, 0) - cols.start : min(cx + core_half + 1, w) - cols.start,
        ]
        touching = np.unique(core[core > 0])
        yield Candidate(rows, cols, np.isin(parts, touching), tau)


def lesps_candidates(label: np.ndarray, prob: np.ndarray, points: np.ndarray, cfg: LespsConfig) -> np.ndarray:
    """Union of all regions' candidate masks M as a bool HxW map (for visualisation and tests)."""
    label, prob = validate_maps(label, prob)
    union = np.zeros(label.shape, dtype=bool)
    for cand in iter_candidates(label, prob, points, cfg):
        union[cand.rows, cand.cols] |= cand.mask
    return union


def lesps_update(label: np.ndarray, prob: np.ndarray, points: np.ndarray, cfg: LespsConfig) -> np.ndarray:
    """One LESPS evolution step of a soft label; returns a new float32 label, inputs are not modified."""
    label, prob = validate_maps(label, prob)
    new = label.copy()
    for cand in iter_candidates(label, prob, points, cfg):
        window = new[cand.rows, cand.cols]
        target = prob[cand.rows, cand.cols]
        window[cand.mask] = (1.0 - cfg.blend) * window[cand.mask] + cfg.blend * target[cand.mask]
    # Pixels that were exactly 1 (the annotated points at init) can never decrease.
    np.maximum(new, (label == 1.0).astype(np.float32), out=new)
    if cfg.keep_points:
        pts = as_points(points, label.shape)
        new[pts[:, 0], pts[:, 1]] = 1.0
    return new
