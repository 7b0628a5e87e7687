"""A small U-Net (Ronneberger et al., "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015) with BatchNorm, sized for fast CPU experiments.

Encoder stage ``i`` (two conv-BN-ReLU, preceded by a 2x2 max-pool for ``i > 0``) has stride
``2**i``; the decoder upsamples bilinearly, concatenates the skip and applies two conv-BN-ReLU.
Bilinear upsampling instead of transposed convs keeps the default at ~0.48M parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import register_backbone
from .base import FeatureInfo, SegBackbone
from .blocks import check_input, conv_bn_relu, require_positive, resize_to


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 1
    widths: tuple[int, ...] = (16, 32, 64, 128)

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(self.widths))
        require_positive("in_channels", (self.in_channels,))
        require_positive("widths", self.widths)
        if len(self.widths) < 2:
            raise ValueError(f"a U-Net needs at least 2 stages, got widths={self.widths}")


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(in_ch, out_ch), conv_bn_relu(out_ch, out_ch))


class UNet(SegBackbone):
    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or UNetConfig()
        w = cfg.widths
        self.size_divisor = 2 ** (len(w) - 1)
        self.feature_info = [FeatureInfo(f"enc{i}", c, 2**i) for i, c in enumerate(w)]

        stages = [_double_conv(cfg.in_channels, w[0])]
        stages += [nn.Sequential(nn.MaxPool2d(2), _double_conv(w[i - 1], w[i])) for i in range(1, len(w))]
        self.encoder = nn.ModuleList(stages)
        # up[i] fuses the upsampled stage i+1 with the skip of stage i.
        self.up = nn.ModuleList(_double_conv(w[i] + w[i + 1], w[i]) for i in range(len(w) - 1))
        self.head = nn.Conv2d(w[0], 1, 1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_input(x, self.config.in_channels, self.size_divisor)
        feats = []
        for stage in self.encoder:
            x = stage(x)
            feats.append(x)
        return feats

    def decode(self, feats: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        y = feats[-1]
        for i in reversed(range(len(feats) - 1)):
            skip = feats[i]
            y = self.up[i](torch.cat([skip, resize_to(y, skip.shape[-2:])], dim=1))
        return resize_to(self.head(y), out_size)


@register_backbone("unet")
def unet(**kwargs) -> UNet:
    """Small U-Net; keyword arguments are ``UNetConfig`` fields."""
    return UNet(UNetConfig(**kwargs))
