"""Multiscale Patch-based Contrast Measure (MPCM).

Wei, Y., You, X., Li, H., "Multiscale patch-based contrast measure for small infrared target detection",
Pattern Recognition 58, 2016. At each scale L a 3x3 grid of LxL cells is centred on the pixel;
``d_i = mean(centre) - mean(cell i)`` for the 8 surrounding cells (numbered around the circle, so
``i`` and ``i + 4`` are opposite). A target is brighter than its surround on *both* sides of every
direction, so the contrast of a direction is ``d_i * d_{i+4}`` and the pixel's contrast is the minimum
over the 4 directions; the map is the maximum over scales. This implementation keeps bright targets only:
a side that is not darker than the centre contributes 0, so a step edge (bright on one side of the
centre only) scores 0 instead of firing, and dark blobs (both ``d`` negative) score 0 too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ._image import as_grey, extend

# (dy, dx) of the 8 surrounding cells in circular order: entry i and entry i + 4 are opposite
_DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def _check_scales(scales: Sequence[int]) -> tuple[int, ...]:
    scales = tuple(int(s) for s in scales)
    if not scales:
        raise ValueError("mpcm needs at least one scale")
    bad = [s for s in scales if s < 1 or s % 2 == 0]
    if bad:
        raise ValueError(
            f"mpcm scales must be odd cell sizes >= 1 (a cell is centred on its pixel), got {bad}"
        )
    return scales


def _contrast_at_scale(img: np.ndarray, size: int) -> np.ndarray:
    """Bright-target MPCM at one cell size: min over directions of the clipped opposite-pair products."""
    h, w = img.shape
    pad = size + size // 2  # the farthest cell reaches this far past the border
    means = ndimage.uniform_filter(extend(img, pad), size=size)

    def cell(dy: int, dx: int) -> np.ndarray:
        y0, x0 = pad + dy * size, pad + dx * size
        return means[y0 : y0 + h, x0 : x0 + w]

    centre = cell(0, 0)
    darker = [np.maximum(centre - cell(dy, dx), 0.0) for dy, dx in _DIRECTIONS]
    products = [darker[i] * darker[i + 4] for i in range(4)]
    return np.minimum.reduce(products)


def mpcm(image: np.ndarray, scales: Sequence[int] = (3, 5, 7, 9)) -> np.ndarray:
    """MPCM score map (float32 HxW, >= 0; 0 on flat background and on step edges).

    ``scales``: odd cell sizes in pixels. The image is extended by odd reflection (``_image.extend``)
    before the cell means, so a brightness ramp that reaches the border does not fire.
    """
    img = as_grey(image)
    per_scale = [_contrast_at_scale(img, s) for s in _check_scales(scales)]
    return np.maximum.reduce(per_scale).astype(np.float32, copy=False)
