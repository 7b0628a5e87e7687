"""``contrast``: a hand-made, training-free prior behind the :class:`FrozenVFM` interface.

The fair control suggested by VFM_FACTS.md: much of "where is a small target" is already local contrast,
so SCAM fed with these maps separates what the VFM adds beyond it. Per pixel of the *original* image, for
each target half-size r in ``RADII``:

* white top-hat ``x - opening(x)`` with a square of half-size r + 1 (Tom et al., "Morphology-based algorithm
  for point target detection in infrared backgrounds", SPIE 1993);
* centre-surround difference ``mean(inner) - mean(ring)``, inner box of half-size r, ring out to 3r (the
  local-contrast family of Chen et al., "A Local Contrast Method for Small Infrared Target Detection",
  IEEE TGRS 2014);
* the same difference over the ring's standard deviation (a local signal-to-clutter ratio), through
  ``asinh`` so that a lone bright pixel on a flat sky (ratio ~100) does not dwarf every other channel.

These maps are pooled onto the patch grid a ViT would use for the image (``vfm_input_hw`` / patch size:
stride 14 at input 448): top-hat, difference and ratio by max (a target smaller than a cell must not be
averaged away), the difference also by mean; plus the cell's mean intensity and standard deviation.
Scales are in original pixels because IR targets have a physical pixel size, and every filter is
translation equivariant and symmetric under flips and transposition, so cropping the cached full-image
maps matches the maps of the crop up to cell resampling (tested in tests/test_cache.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .frozen import FrozenVFM, VFMOutput
from .preprocess import vfm_input_hw
from .registry import VFMRequest, register_vfm

RADII = (1, 2, 4)
EPS = 1e-2  # floor of the ring standard deviation, in [0, 1] intensity units (about 2.5 grey levels)
WEIGHTS_ID = "contrast-v1"  # bump when the maps change, so old feature caches are not reused


@dataclass(frozen=True)
class ContrastConfig:
    """The fields :class:`FrozenVFM` reads from an encoder's ``cfg``."""

    patch_size: int = 14
    depth: int = 12  # accepted layer indices 1..depth, as the ViT-S it stands in for
    radii: tuple[int, ...] = RADII

    @property
    def embed_dim(self) -> int:
        return 4 * len(self.radii) + 2


def _pad(x: Tensor, half: int) -> Tensor:
    return F.pad(x, (half, half, half, half), mode="replicate")


def _box_mean(x: Tensor, half: int) -> Tensor:
    return F.avg_pool2d(_pad(x, half), 2 * half + 1, stride=1)


def _box_max(x: Tensor, half: int) -> Tensor:
    return F.max_pool2d(_pad(x, half), 2 * half + 1, stride=1)


def pixel_maps(x: Tensor, radii: Sequence[int] = RADII) -> tuple[Tensor, Tensor]:
    """(B, 1, H, W) image -> (max-pooled maps (B, 3R, H, W), mean-pooled maps (B, R, H, W))."""
    peak, mean = [], []
    # Centred on the image mean so that E[x²] - E[x]² does not cancel catastrophically in float32.
    xc = x - x.mean(dim=(-2, -1), keepdim=True)
    sq = xc * xc
    for r in radii:
        opened = _box_max(-_box_max(-x, r + 1), r + 1)  # erosion then dilation
        ni, no = (2 * r + 1) ** 2, (6 * r + 1) ** 2
        inner = _box_mean(xc, r)
        ring = (_box_mean(xc, 3 * r) * no - inner * ni) / (no - ni)
        ring_sq = (_box_mean(sq, 3 * r) * no - _box_mean(sq, r) * ni) / (no - ni)
        ring_std = (ring_sq - ring * ring).clamp_min(0).sqrt()
        diff = inner - ring
        peak += [x - opened, diff, torch.asinh(diff / (ring_std + EPS))]
        mean.append(diff)
    return torch.cat(peak, dim=1), torch.cat(mean, dim=1)


class ContrastEncoder(nn.Module):
    """Grey image in [0, 1] at its original size -> (B, embed_dim, *grid) contrast maps pooled onto ``grid``."""

    def __init__(self, cfg: ContrastConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def forward(self, images: Tensor, grid: tuple[int, int]) -> Tensor:
        peak, mean = pixel_maps(images, self.cfg.radii)
        cell_mean = F.adaptive_avg_pool2d(images, grid)
        cell_std = (F.adaptive_avg_pool2d(images * images, grid) - cell_mean**2).clamp_min(0).sqrt()
        return torch.cat(
            [F.adaptive_max_pool2d(peak, grid), F.adaptive_avg_pool2d(mean, grid), cell_mean, cell_std], dim=1
        )


class ContrastVFM(FrozenVFM):
    """Same interface as the ViT backends; every requested layer gets the same maps."""

    @torch.no_grad()
    def forward(self, images: Tensor, layers: Sequence[int], pooled: bool = True) -> VFMOutput:
        wanted = list(layers)
        if not wanted or any(not 1 <= i <= self.num_layers for i in wanted):
            raise ValueError(
                f"layers must be a non-empty list of indices in 1..{self.num_layers}, got {wanted}"
            )
        if images.ndim != 4 or images.shape[1] != 1 or not images.is_floating_point():
            raise ValueError(
                f"expected float images shaped (B, 1, H, W) in [0, 1], got {images.dtype} {tuple(images.shape)}"
            )
        h, w = vfm_input_hw(images.shape[-2], images.shape[-1], self.input_size, self.patch_size)
        maps = self.encoder(images, (h // self.patch_size, w // self.patch_size))
        return VFMOutput(features=[maps] * len(wanted), pooled=maps.mean(dim=(2, 3)) if pooled else None)


@register_vfm("contrast")
def _contrast(req: VFMRequest) -> FrozenVFM:
    if req.weights is not None:
        raise ValueError("contrast is hand-made and takes no weights file")
    cfg = ContrastConfig()
    return ContrastVFM(
        ContrastEncoder(cfg),
        name="contrast",
        weights_id=WEIGHTS_ID,
        input_size=req.input_size,
    )
