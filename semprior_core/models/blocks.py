"""Layers shared by several IRSTD backbones.

* ``conv_bn_relu`` -- the ubiquitous conv -> BatchNorm -> ReLU unit.
* ``ResidualBlock`` / ``residual_stage`` -- ResNet basic block (He et al., CVPR 2016) with an
  optional CBAM attention on the residual branch, which turns it into DNANet's ``Res_CBAM``
  block (Li et al., IEEE TIP 2023).
* ``ChannelAttention`` / ``SpatialAttention`` / ``CBAM`` -- Woo et al., "CBAM: Convolutional
  Block Attention Module", ECCV 2018.
* ``pointwise_gate`` -- the 1x1-conv bottleneck gate that ACM's AsymBiChaFuse and ALCNet's
  bottom-up modulation are built from (Dai et al., WACV 2021 / TGRS 2021).
* ``FCNHead`` -- GluonCV's FCN head used by ACM and ALCNet.

Plus two validation helpers every backbone uses (``require_positive``, ``check_input``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def require_positive(name: str, values: Sequence[int]) -> None:
    """Raise ValueError unless ``values`` is a non-empty sequence of positive ints."""
    if len(values) == 0 or any(not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {values!r}")


def check_fpn_config(net: str, in_channels: int, channels: Sequence[int], blocks: Sequence[int],
                     fuse_reduction: int) -> None:
    """Shared shape rules of the ACM/ALCNet FPN family: a stem and three residual stages."""
    require_positive("in_channels", (in_channels,))
    require_positive("channels", channels)
    require_positive("blocks", blocks)
    require_positive("fuse_reduction", (fuse_reduction,))
    if len(channels) != 4 or len(blocks) != 3:
        raise ValueError(
            f"{net} needs 4 channel widths (stem + 3 stages) and 3 block counts, got channels={channels}, blocks={blocks}"
        )
    if channels[1] != 2 * channels[0]:
        # the stem outputs 2*channels[0] and feeds stage 1 without a projection
        raise ValueError(f"{net} needs channels[1] == 2*channels[0], got {channels}")


def check_input(x: torch.Tensor, in_channels: int, size_divisor: int) -> None:
    """Fail early, with the reason, on inputs a backbone cannot process."""
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"expected input of shape (B, {in_channels}, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % size_divisor or w % size_divisor:
        raise ValueError(f"input H and W must be divisible by {size_divisor}, got {h}x{w}")


def conv_bn_relu(in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv (no bias: BatchNorm supplies the shift) -> BatchNorm -> ReLU, 'same' padding."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def resize_to(
    x: torch.Tensor, size: tuple[int, int] | torch.Size, align_corners: bool = False
) -> torch.Tensor:
    """Bilinear resize to ``size`` (H, W); a no-op when the size already matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)


class ChannelAttention(nn.Module):
    """CBAM channel gate: shared MLP over average- and max-pooled descriptors, summed, sigmoid."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.mlp(F.adaptive_avg_pool2d(x, 1))
        mx = self.mlp(F.adaptive_max_pool2d(x, 1))
        return torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """CBAM spatial gate: conv over the channel-wise mean and max maps, sigmoid."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"SpatialAttention kernel_size must be odd, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Channel gate then spatial gate, each applied multiplicatively (sequential CBAM)."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channel(x) * x
        return self.spatial(x) * x


class ResidualBlock(nn.Module):
    """ResNet basic block; with ``attention=True`` CBAM gates the residual branch before the add.

    The shortcut is a strided 1x1 conv + BN whenever the shape changes, identity otherwise.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, attention: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
        )
        self.attention = CBAM(out_ch) if attention else nn.Identity()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.attention(self.body(x)) + self.shortcut(x))


def residual_stage(
    in_ch: int, out_ch: int, num_blocks: int, stride: int = 1, attention: bool = False
) -> nn.Sequential:
    """``num_blocks`` residual blocks; only the first one changes stride/width."""
    if num_blocks < 1:
        raise ValueError(f"a residual stage needs at least one block, got {num_blocks}")
    blocks = [ResidualBlock(in_ch, out_ch, stride, attention)]
    blocks += [ResidualBlock(out_ch, out_ch, 1, attention) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


def pointwise_gate(channels: int, hidden: int, global_pool: bool) -> nn.Sequential:
    """Sigmoid gate from a 1x1-conv bottleneck (conv-BN-ReLU-conv-BN).

    ``global_pool=True`` gives one weight per channel (SE-style, "global" context in ACM);
    ``False`` gives a weight per pixel and channel ("local" / point-wise context).
    """
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1)] if global_pool else []
    layers += [
        nn.Conv2d(channels, hidden, 1),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Conv2d(hidden, channels, 1),
        nn.BatchNorm2d(channels),
        nn.Sigmoid(),
    ]
    return nn.Sequential(*layers)


class FCNHead(nn.Module):
    """3x3 conv to in/4 channels -> BN -> ReLU -> dropout -> 1x1 conv to ``out_ch`` logits."""

    def __init__(self, in_ch: int, out_ch: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        hidden = max(in_ch // 4, 1)
        self.block = nn.Sequential(
            conv_bn_relu(in_ch, hidden, 3),
            nn.Dropout(dropout),
            nn.Conv2d(hidden, out_ch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)
