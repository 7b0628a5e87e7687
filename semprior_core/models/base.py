"""The one interface every segmentation backbone implements.

A backbone is split into ``encode`` (image -> multi-scale encoder features) and
``decode`` (features -> logits). Anything that modulates features -- SCAM in the
teacher -- sits between the two calls from outside, sized by ``feature_info``,
so no backbone ever knows about the VFM (timm's ``features_only``/``feature_info``
idea).
"""

from __future__ import annotations

import math
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

    def init_output_prior(self, prob: float) -> None:
        """Set the bias of the final 1-channel conv so that σ(logit) starts at ``prob``.

        Small targets cover ~0.1 % of pixels: starting near the background rate instead of
        0.5 avoids the huge early loss that pushes point-supervised training into collapse
        (the focal-loss prior of Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).
        Backbones expose their final layer as ``self.head``.
        """
        if not 0.0 < prob < 1.0:
            raise ValueError(f"output prior must be in (0, 1), got {prob}")
        convs = [m for m in self.head.modules() if isinstance(m, nn.Conv2d) and m.out_channels == 1 and m.bias is not None]
        if not convs:
            raise ValueError(f"{type(self).__name__}.head has no 1-channel conv with a bias")
        with torch.no_grad():
            convs[-1].bias.fill_(math.log(prob / (1 - prob)))
