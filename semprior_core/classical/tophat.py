"""White top-hat filter: the image minus its morphological opening.

The opening (erosion then dilation by a flat disk) removes bright structures that the disk cannot fit
inside, so ``image - opening`` keeps exactly those: small bright blobs, while smooth backgrounds
and structures wider than the disk are cancelled. Classical IRSTD baseline since
Tom, V. T. et al., "Morphology-based algorithm for point target detection in infrared backgrounds",
Proc. SPIE 1954, 1993.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._image import as_grey, extend


def disk(radius: int) -> np.ndarray:
    """Boolean (2r+1)x(2r+1) footprint of the pixels within Euclidean distance ``radius`` of the centre."""
    if radius < 1:
        raise ValueError(f"disk radius must be >= 1, got {radius}")
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return yy**2 + xx**2 <= radius**2


def tophat(image: np.ndarray, radius: int = 5) -> np.ndarray:
    """White top-hat score map (float32 HxW, >= 0) with a flat disk of ``radius`` pixels.

    The image is extended by odd reflection (``_image.extend``), so a linear ramp is removed up to the
    image edge; ``2 * radius`` of padding makes the opening inside the image independent of how
    ``scipy.ndimage`` itself treats the padded border.
    """
    img = as_grey(image)
    pad = 2 * radius
    opened = ndimage.grey_opening(extend(img, pad), footprint=disk(radius))[pad:-pad, pad:-pad]
    return img - opened
