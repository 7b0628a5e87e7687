"""The one interface every segmentation backbone implements.

A backbone is split into ``encode`` (image -> multi-scale encoder features) and
``decode`` (features -> logits). Anything that modulates features -- SCAM in the
teacher -- sits between the two calls from outside, sized by ``feature_info``,
so no backbone ever knows about the VFM (timm's ``features_only``/``feature_info``
idea).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class FeatureInfo:
    """Metadata of one encoder stage output: channel count and stride w.r.t. the input."""

    name: str
    channels: int
    stride: int


class SegBackbone(nn.Module):
    """Base class: single-channel image in, one-channel logit map of the same size out.

    Subclasses set ``feature_info`` (one entry per tensor ``encode`` returns, in the
    same order) and ``size_divisor`` (inputs must have H and W divisible by it) and
    implement ``encode`` and ``decode``.
    """

    feature_info: list[FeatureInfo]
    size_divisor: int = 32

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def decode(self, feats: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), (x.shape[-2], x.shape[-1]))
