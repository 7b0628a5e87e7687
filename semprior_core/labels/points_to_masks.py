"""Point annotations -> initial pseudo-masks.

Points are an int array (N, 2) of 0-based (y, x) pixel coordinates, as produced by LESPS's
``centroid_anno.m`` / ``coarse_anno.m`` after converting from MATLAB's 1-based indexing.
"""

from __future__ import annotations

import numpy as np


def as_points(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Return ``points`` as an int64 (N, 2) array of (y, x), checking that every point lies inside ``shape``."""
    pts = np.asarray(points)
    if pts.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2) of (y, x), got {pts.shape}")
    if not np.issubdtype(pts.dtype, np.integer):
        raise ValueError(f"points must be integer pixel coordinates, got dtype {pts.dtype}")
    pts = pts.astype(np.int64)
    h, w = shape
    outside = (pts[:, 0] < 0) | (pts[:, 0] >= h) | (pts[:, 1] < 0) | (pts[:, 1] >= w)
    if outside.any():
        raise ValueError(f"points {pts[outside].tolist()} lie outside the image of shape {(h, w)}")
    return pts


def point_mask(shape: tuple[int, int], points: np.ndarray, radius: int = 0) -> np.ndarray:
    """Float32 mask with a (2·radius+1)² square of ones at every point, clipped to the image.

    ``radius=0`` is the single-pixel label of LESPS and PAL.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    h, w = shape
    mask = np.zeros((h, w), dtype=np.float32)
    for y, x in as_points(points, shape):
        mask[max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1] = 1.0
    return mask
