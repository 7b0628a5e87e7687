"""ACM: Dai, Wu, Zhou, Barnard, "Asymmetric Contextual Modulation for Infrared Small Target
Detection", WACV 2021 -- the ASKCResUNet variant (authors' code: YimianDai/open-acm).

Layout (default ``channels=(8, 16, 32, 64)``, ``blocks=(3, 3, 3)``, ~0.40M parameters):

* stem: input BN (no affine: data normalisation), then conv3x3/2 -> conv3x3 -> conv3x3 to
  ``2*channels[0]`` and a 3x3/2 max-pool (stride 4 in total; ``tiny=True`` keeps stride 1);
* encoder: three stages of ResNet basic blocks, widths ``channels[1:]``, strides 1, 2, 2;
* decoder: transposed conv x2, AsymBiChaFuse with the skip, a stage of basic blocks, twice;
  then an FCN head and a bilinear upsampling to the input size.

AsymBiChaFuse modulates the low-level skip with a *global* (pooled, top-down) channel gate
computed from the deep feature, and the deep feature with a *local* (point-wise, bottom-up)
gate computed from the skip, so that small-target details in the shallow layer survive.
As in the authors' code the global gate has BatchNorm after pooling, so training (not eval)
needs batches of at least 2 images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import register_backbone
from .base import FeatureInfo, SegBackbone
from .blocks import (
    FCNHead,
    check_fpn_config,
    check_input,
    conv_bn_relu,
    pointwise_gate,
    residual_stage,
    resize_to,
)


@dataclass(frozen=True)
class ACMConfig:
    in_channels: int = 1
    channels: tuple[int, int, int, int] = (8, 16, 32, 64)
    blocks: tuple[int, int, int] = (3, 3, 3)
    fuse_reduction: int = 4
    tiny: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "blocks", tuple(self.blocks))
        check_fpn_config("ACM", self.in_channels, self.channels, self.blocks, self.fuse_reduction)


class AsymBiChaFuse(nn.Module):
    """Asymmetric bi-directional channel fusion of a deep feature ``xh`` and a skip ``xl``."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.topdown = pointwise_gate(channels, hidden, global_pool=True)
        self.bottomup = pointwise_gate(channels, hidden, global_pool=False)
        self.post = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )

    def forward(self, xh: torch.Tensor, xl: torch.Tensor) -> torch.Tensor:
        # the factor 2 keeps the expected magnitude: each sigmoid gate is ~0.5 at initialisation
        fused = 2 * xl * self.topdown(xh) + 2 * xh * self.bottomup(xl)
        return self.post(fused)


class ACM(SegBackbone):
    def __init__(self, config: ACMConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or ACMConfig()
        c, b = cfg.channels, cfg.blocks
        stem_stride = 1 if cfg.tiny else 4
        self.size_divisor = stem_stride * 4
        self.feature_info = [
            FeatureInfo("c1", c[1], stem_stride),
            FeatureInfo("c2", c[2], stem_stride * 2),
            FeatureInfo("c3", c[3], stem_stride * 4),
        ]

        stem: list[nn.Module] = [nn.BatchNorm2d(cfg.in_channels, affine=False)]
        if cfg.tiny:
            stem.append(conv_bn_relu(cfg.in_channels, 2 * c[0]))
        else:
            stem += [
                conv_bn_relu(cfg.in_channels, c[0], stride=2),
                conv_bn_relu(c[0], c[0]),
                conv_bn_relu(c[0], 2 * c[0]),
                nn.MaxPool2d(3, stride=2, padding=1),
            ]
        self.stem = nn.Sequential(*stem)
        self.layer1 = residual_stage(c[1], c[1], b[0], stride=1)
        self.layer2 = residual_stage(c[1], c[2], b[1], stride=2)
        self.layer3 = residual_stage(c[2], c[3], b[2], stride=2)

        self.deconv2 = nn.ConvTranspose2d(c[3], c[2], 4, stride=2, padding=1)
        self.fuse2 = AsymBiChaFuse(c[2], cfg.fuse_reduction)
        self.uplayer2 = residual_stage(c[2], c[2], b[1])
        self.deconv1 = nn.ConvTranspose2d(c[2], c[1], 4, stride=2, padding=1)
        self.fuse1 = AsymBiChaFuse(c[1], cfg.fuse_reduction)
        self.uplayer1 = residual_stage(c[1], c[1], b[0])
        self.head = FCNHead(c[1], 1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_input(x, self.config.in_channels, self.size_divisor)
        c1 = self.layer1(self.stem(x))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        return [c1, c2, c3]

    def decode(self, feats: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        c1, c2, c3 = feats
        y = self.uplayer2(self.fuse2(self.deconv2(c3), c2))
        y = self.uplayer1(self.fuse1(self.deconv1(y), c1))
        return resize_to(self.head(y), out_size)


@register_backbone("acm")
def acm(**kwargs) -> ACM:
    """ACM (ASKCResUNet); keyword arguments are ``ACMConfig`` fields."""
    return ACM(ACMConfig(**kwargs))
