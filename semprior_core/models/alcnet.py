"""ALCNet: Dai, Wu, Zhou, Barnard, "Attentional Local Contrast Networks for Infrared Small
Target Detection", IEEE TGRS 2021 (authors' code: YimianDai/open-alcnet, ``MPCMResNetFPN`` with
``scale_mode='Multiple'``, ``pyramid_fuse='bottomuplocal'``, ``r=1``, 4 blocks per stage -- the
configuration of their released weights).

* stem: input BN (no affine), conv3x3 to ``2*channels[0]`` at full resolution;
* encoder: three stages of ResNet basic blocks, widths ``channels[1:]``, strides 1, 2, 2;
* decoder: the *multi-scale patch contrast* (MPCM, parameter-free, computed on the learned
  features with dilated cyclic shifts) of every stage, 1x1 conv-BN-ReLU projections of the
  two deeper ones to ``channels[1]``, and a top-down pyramid whose merges use *bottom-up local
  attentional modulation*: a point-wise gate computed from the shallower (finer) map
  re-weights the upsampled deeper map before the two are added; then an FCN head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

import torch
import torch.nn.functional as F
from torch import nn

from . import register_backbone
from .base import FeatureInfo, SegBackbone
from .blocks import (
    FCNHead,
    check_fpn_config,
    check_input,
    conv_bn_relu,
    pointwise_gate,
    require_positive,
    residual_stage,
    resize_to,
)

# (dy, dx) of one neighbour per direction; the opposite neighbour is (-dy, -dx)
_DIRECTIONS = ((1, 1), (1, 0), (1, -1), (0, 1))


def patch_contrast(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Dilated local contrast of every pixel against its 8 neighbours at distance ``shift``.

    For each of the 4 directions through the pixel (vertical, horizontal, two diagonals) the
    differences to the two opposite neighbours are multiplied; the map is the minimum over the
    directions. It is large only where the centre differs *in the same sense* from both
    neighbours in *every* direction -- a blob smaller than the shift -- and at most zero on
    flat areas, edges and lines (some direction runs along them). Neighbours wrap around
    cyclically, as the authors' cyclic shifts do, so no border handling is needed.
    """
    h, w = x.shape[-2:]
    # a shift of s equals one of s mod size; circular padding makes every neighbour a view
    sh, sw = shift % h, shift % w
    padded = F.pad(x, (sw, sw, sh, sh), mode="circular")

    def neighbour(dy: int, dx: int) -> torch.Tensor:
        top, left = sh + dy * sh, sw + dx * sw
        return padded[..., top : top + h, left : left + w]

    # a running minimum keeps one extra feature map alive instead of four
    return reduce(
        torch.minimum, ((neighbour(dy, dx) - x) * (neighbour(-dy, -dx) - x) for dy, dx in _DIRECTIONS)
    )


def multiscale_patch_contrast(x: torch.Tensor, shifts: Sequence[int]) -> torch.Tensor:
    """MPCM: element-wise maximum of ``patch_contrast`` over several dilations (target sizes)."""
    return reduce(torch.maximum, (patch_contrast(x, s) for s in shifts))


@dataclass(frozen=True)
class ALCNetConfig:
    in_channels: int = 1
    channels: tuple[int, int, int, int] = (8, 16, 32, 64)
    blocks: tuple[int, int, int] = (4, 4, 4)
    shifts: tuple[int, ...] = (13, 17)
    fuse_reduction: int = 1

    def __post_init__(self) -> None:
        for name in ("channels", "blocks", "shifts"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        check_fpn_config("ALCNet", self.in_channels, self.channels, self.blocks, self.fuse_reduction)
        require_positive("shifts", self.shifts)


class BottomUpLocalFuse(nn.Module):
    """``gate(low) * high + low``: the finer map decides, per pixel and channel, how much of the
    upsampled coarse map to let through (both inputs BatchNorm-ed first)."""

    def __init__(self, channels: int, reduction: int = 1) -> None:
        super().__init__()
        self.norm_high = nn.BatchNorm2d(channels)
        self.norm_low = nn.BatchNorm2d(channels)
        self.gate = pointwise_gate(channels, max(channels // reduction, 1), global_pool=False)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        high, low = self.norm_high(high), self.norm_low(low)
        return self.gate(low) * high + low


class ALCNet(SegBackbone):
    def __init__(self, config: ALCNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ALCNetConfig()
        c, b = cfg.channels, cfg.blocks
        self.size_divisor = 4
        self.feature_info = [
            FeatureInfo("c1", c[1], 1),
            FeatureInfo("c2", c[2], 2),
            FeatureInfo("c3", c[3], 4),
        ]

        self.stem = nn.Sequential(
            nn.BatchNorm2d(cfg.in_channels, affine=False), conv_bn_relu(cfg.in_channels, c[1])
        )
        self.layer1 = residual_stage(c[1], c[1], b[0], stride=1)
        self.layer2 = residual_stage(c[1], c[2], b[1], stride=2)
        self.layer3 = residual_stage(c[2], c[3], b[2], stride=2)

        self.reduce3 = conv_bn_relu(c[3], c[1], kernel_size=1)
        self.reduce2 = conv_bn_relu(c[2], c[1], kernel_size=1)
        self.fuse2 = BottomUpLocalFuse(c[1], cfg.fuse_reduction)
        self.fuse1 = BottomUpLocalFuse(c[1], cfg.fuse_reduction)
        self.head = FCNHead(c[1], 1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_input(x, self.config.in_channels, self.size_divisor)
        c1 = self.layer1(self.stem(x))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        return [c1, c2, c3]

    def decode(self, feats: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        c1, c2, c3 = feats
        shifts = self.config.shifts
        p3 = self.reduce3(multiscale_patch_contrast(c3, shifts))
        p2 = self.reduce2(multiscale_patch_contrast(c2, shifts))
        y = self.fuse2(resize_to(p3, p2.shape[-2:]), p2)
        y = self.fuse1(resize_to(y, c1.shape[-2:]), multiscale_patch_contrast(c1, shifts))
        return resize_to(self.head(y), out_size)


@register_backbone("alcnet")
def alcnet(**kwargs) -> ALCNet:
    """ALCNet (MPCM + bottom-up local modulation FPN); keyword arguments are ``ALCNetConfig`` fields."""
    return ALCNet(ALCNetConfig(**kwargs))
