"""Display transforms for infrared frames: what the annotator shows, never what is saved.

Infrared frames are often dim, with a few hot pixels or a bright horizon spanning most of the range, so a
min-max view hides small targets. :func:`percentile_stretch` maps a low and a high percentile to black and
white; :func:`local_contrast` shows how far each pixel stands above its neighbourhood (in local standard
deviations), where a point target is a bright dot whatever the background.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

VIEWS = ("stretch", "local contrast")


def percentile_stretch(image: np.ndarray, low: float = 0.5, high: float = 99.8) -> np.ndarray:
    """``image`` linearly mapped so its ``low``/``high`` percentiles become 0/1, clipped; float32 HxW."""
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    img = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(img, [low, high])
    if hi <= lo:  # a flat frame (or flat up to the high percentile): fall back to its full range
        lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        return np.zeros_like(img)
    return np.clip((img - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def local_contrast(image: np.ndarray, sigma: float = 4.0, clip: float = 6.0) -> np.ndarray:
    """(pixel − local mean) / local std, Gaussian windows of ``sigma`` px, mapped from [-clip/2, clip] to [0, 1].

    The range is asymmetric because targets are brighter than their surroundings: dark deviations matter less.
    """
    if sigma <= 0 or clip <= 0:
        raise ValueError(f"sigma and clip must be positive, got sigma={sigma}, clip={clip}")
    img = np.asarray(image, dtype=np.float64)
    mean = ndimage.gaussian_filter(img, sigma, mode="reflect")
    var = ndimage.gaussian_filter(img * img, sigma, mode="reflect") - mean * mean
    # The floor keeps flat regions (std ~ 0) from amplifying quantisation noise into bright speckle.
    std = np.sqrt(np.maximum(var, 0.0)) + max(1e-3, 0.01 * float(img.std()))
    z = (img - mean) / std
    return np.clip((z + clip / 2) / (1.5 * clip), 0.0, 1.0).astype(np.float32)


def display(image: np.ndarray, view: str, low: float = 0.5, high: float = 99.8) -> np.ndarray:
    """The frame as shown for ``view`` (one of :data:`VIEWS`); float32 HxW in [0, 1]."""
    if view == "stretch":
        return percentile_stretch(image, low, high)
    if view == "local contrast":
        return local_contrast(image)
    raise ValueError(f"unknown view {view!r}; use one of {', '.join(VIEWS)}")
