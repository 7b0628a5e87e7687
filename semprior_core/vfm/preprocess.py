"""Grey IR images -> normalised 3-channel VFM input whose sides are whole numbers of patches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vfm_input_hw(height: int, width: int, input_size: int, patch_size: int) -> tuple[int, int]:
    """Resized (H, W): the long side becomes ``input_size``, the short side the nearest multiple of
    ``patch_size`` to its proportional length (at least one patch), so the feature map covers the whole image.

    >>> vfm_input_hw(240, 320, 448, 14)
    (336, 448)
    """
    if min(height, width, input_size, patch_size) < 1 or input_size % patch_size:
        raise ValueError(
            f"need positive sizes and input_size ({input_size}) a multiple of patch_size ({patch_size})"
        )
    long, short = max(height, width), min(height, width)
    # round(short * input_size / (long * patch)) with halves up, in exact integer arithmetic
    patches = (2 * short * input_size + long * patch_size) // (2 * long * patch_size)
    short_out = max(1, patches) * patch_size
    return (input_size, short_out) if height >= width else (short_out, input_size)


def preprocess(images: Tensor, input_size: int, patch_size: int) -> Tensor:
    """(B, 1, H, W) floats in [0, 1] -> (B, 3, H', W') ImageNet-normalised, sized by :func:`vfm_input_hw`.

    Bilinear resize with half-pixel centres; antialiased when shrinking so small bright targets are
    averaged rather than skipped.
    """
    if images.ndim != 4 or images.shape[1] != 1 or not images.is_floating_point():
        raise ValueError(
            f"expected float images shaped (B, 1, H, W) in [0, 1], got {images.dtype} {tuple(images.shape)}"
        )
    height, width = images.shape[-2:]
    out_h, out_w = vfm_input_hw(height, width, input_size, patch_size)
    x = images
    if (out_h, out_w) != (height, width):
        shrink = out_h < height or out_w < width
        x = F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=shrink)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x.expand(-1, 3, -1, -1) - mean) / std
