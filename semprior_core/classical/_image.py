"""Input check shared by the score functions: one grey image, float32 HxW."""

from __future__ import annotations

import numpy as np


def as_grey(image: np.ndarray) -> np.ndarray:
    """``image`` as a float32 HxW array; a ValueError names the shape when it is not 2-D or is empty."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"expected a non-empty grey image of shape HxW, got shape {arr.shape}")
    return arr


def extend(img: np.ndarray, pad: int) -> np.ndarray:
    """``img`` padded by ``pad`` pixels with odd (point) reflection, ``2 f(edge) - f(edge - k)``.

    Odd reflection continues a linear trend across the border; an even mirror would fold a ramp that
    rises towards the border into a bright ridge, which top-hat and contrast filters then report as targets.
    """
    return np.pad(img, pad, mode="reflect", reflect_type="odd")
