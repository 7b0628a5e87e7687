"""Pure NumPy image helpers for the views: contours, overlays, thumbnails."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def contour(mask: np.ndarray) -> np.ndarray:
    """(M, 2) (y, x) pixels of ``mask > 0.5`` that touch the background (4-neighbourhood), row-major order."""
    m = np.asarray(mask) > 0.5
    inner = ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(2, 1), border_value=0)
    return np.argwhere(m & ~inner).astype(np.int64)


def outline_segments(mask: np.ndarray) -> np.ndarray:
    """(K, 4) pixel edges (y0, x0, y1, x1) between ``mask > 0.5`` and the background, in pixel-corner
    coordinates (pixel (r, c) spans [r, r + 1] × [c, c + 1]): an outline drawn there never covers a mask pixel."""
    m = np.pad(np.asarray(mask) > 0.5, 1)
    core = m[1:-1, 1:-1]
    edges = []
    for dy, dx, seg in ((-1, 0, (0, 0, 0, 1)), (1, 0, (1, 0, 1, 1)), (0, -1, (0, 0, 1, 0)), (0, 1, (0, 1, 1, 1))):
        rs, cs = np.nonzero(core & ~m[1 + dy : m.shape[0] - 1 + dy, 1 + dx : m.shape[1] - 1 + dx])
        edges.append(np.stack([rs + seg[0], cs + seg[1], rs + seg[2], cs + seg[3]], axis=1))
    return np.concatenate(edges).astype(np.int64)


def window_around(centre: tuple[int, int], shape: tuple[int, int], size: int) -> tuple[slice, slice]:
    """A ``size``² window (clipped to an image of ``shape``) centred on ``centre`` (y, x)."""
    (cy, cx), (h, w) = centre, shape
    y0 = min(max(cy - size // 2, 0), max(h - size, 0))
    x0 = min(max(cx - size // 2, 0), max(w - size, 0))
    return slice(y0, y0 + size), slice(x0, x0 + size)


def box_outline(box: tuple[int, int, int, int], shape: tuple[int, int]) -> np.ndarray:
    """(M, 2) (y, x) pixels of a rectangle one pixel outside ``box`` (top, left, bottom, right; rows
    [top, bottom), columns [left, right)), in row-major order and cut at the image border: it frames an
    object without covering it."""
    top, left, bottom, right = box
    if not (top < bottom and left < right):
        raise ValueError(f"empty box {tuple(box)}")
    h, w = shape
    # One pixel of margin holds the outline's rows and columns that fall just outside the image.
    frame = np.zeros((h + 2, w + 2), dtype=bool)

    def span(a: int, b: int, n: int) -> slice:  # clipped to the frame: a box may reach past the image
        return slice(min(max(a, 0), n + 2), min(max(b, 0), n + 2))

    frame[span(top, bottom + 2, h), span(left, right + 2, w)] = True
    frame[span(top + 1, bottom + 1, h), span(left + 1, right + 1, w)] = False
    return np.argwhere(frame[1:-1, 1:-1]).astype(np.int64)


def to_unit(image: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1] for display (a constant image becomes 0)."""
    a = np.asarray(image, dtype=np.float32)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def overlay(image: np.ndarray, mask: np.ndarray | None = None, outline: np.ndarray | None = None,
            points: np.ndarray | None = None, alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8: grey image, ``mask`` blended in orange, ``outline`` pixels (M, 2) in cyan,
    ``points`` (N, 2) as green 3x3 crosses."""
    grey = to_unit(image)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if mask is not None:
        m = np.clip(np.asarray(mask, dtype=np.float32), 0, 1)[..., None] * alpha
        rgb = rgb * (1 - m) + np.array([1.0, 0.55, 0.0]) * m
    h, w = grey.shape
    if outline is not None and len(outline):
        rgb[outline[:, 0], outline[:, 1]] = (0.0, 0.9, 1.0)
    if points is not None:
        for y, x in np.asarray(points, dtype=np.int64).reshape(-1, 2):
            for dy, dx in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)):
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    rgb[y + dy, x + dx] = (0.1, 1.0, 0.2)
    return np.rint(rgb * 255).astype(np.uint8)


def thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """Downscale so that the long side is at most ``size`` (block mean over an integer factor)."""
    a = np.asarray(image, dtype=np.float32)
    if size < 1:
        raise ValueError(f"thumbnail size must be >= 1, got {size}")
    f = int(np.ceil(max(a.shape[:2]) / size))
    if f <= 1:
        return a
    h, w = (a.shape[0] // f) * f, (a.shape[1] // f) * f
    return a[:h, :w].reshape(h // f, f, w // f, f, *a.shape[2:]).mean(axis=(1, 3))
