"""DNANet: Li, Xiao, Wang, Wang, Lin, Li, An, Guo, "Dense Nested Attention Network for Infrared
Small Target Detection", IEEE TIP 2023 (authors' code: YeRen123455/Infrared-Small-Target-Detection,
``model/model_DNANet.py``).

A UNet++-style grid of nodes ``X[i][j]`` (row ``i`` = resolution 1/2**i, column ``j`` = nesting
depth), every node a stack of Res-CBAM blocks (residual block with channel + spatial attention):

* column 0 is the encoder: ``X[0][0]`` at full resolution, ``X[i][0] = blocks(maxpool(X[i-1][0]))``;
* ``X[i][j]`` (j >= 1) sees all earlier nodes of its row, the upsampled ``X[i+1][j-1]`` and the
  downsampled ``X[i-1][j]`` (the dense nested interactive module);
* feature pyramid fusion: the last node of every row is projected (1x1 conv) to ``nb_filter[0]``
  channels, upsampled to full resolution and concatenated with ``X[0][L-1]``; one more Res-CBAM
  node and a 1x1 conv give the logits.

Deep supervision (off by default) adds 1x1 heads on ``X[0][1..L-2]``; ``decode_all`` returns
their logits followed by the main logits, ``decode``/``forward`` return the main logits only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import register_backbone
from .base import FeatureInfo, SegBackbone
from .blocks import check_input, require_positive, residual_stage, resize_to


@dataclass(frozen=True)
class DNANetConfig:
    in_channels: int = 1
    nb_filter: tuple[int, ...] = (16, 32, 64, 128, 256)
    num_blocks: tuple[int, ...] = (2, 2, 2, 2)
    deep_supervision: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "nb_filter", tuple(self.nb_filter))
        object.__setattr__(self, "num_blocks", tuple(self.num_blocks))
        require_positive("in_channels", (self.in_channels,))
        require_positive("nb_filter", self.nb_filter)
        require_positive("num_blocks", self.num_blocks)
        if len(self.nb_filter) < 3:
            raise ValueError(f"DNANet needs at least 3 rows, got nb_filter={self.nb_filter}")
        if len(self.num_blocks) != len(self.nb_filter) - 1:
            raise ValueError(
                f"num_blocks needs one entry per row below the first ({len(self.nb_filter) - 1}), "
                f"got {self.num_blocks}"
            )


def _up(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    # align_corners=True as in the authors' nn.Upsample layers
    return resize_to(x, ref.shape[-2:], align_corners=True)


class DNANet(SegBackbone):
    def __init__(self, config: DNANetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DNANetConfig()
        f = cfg.nb_filter
        depth = len(f)
        self.size_divisor = 2 ** (depth - 1)
        self.feature_info = [FeatureInfo(f"x{i}_0", c, 2**i) for i, c in enumerate(f)]

        def node(in_ch: int, i: int) -> nn.Sequential:
            return residual_stage(in_ch, f[i], 1 if i == 0 else cfg.num_blocks[i - 1], attention=True)

        self.pool = nn.MaxPool2d(2)
        self.encoder = nn.ModuleList(
            [node(cfg.in_channels, 0)] + [node(f[i - 1], i) for i in range(1, depth)]
        )
        nested = {}
        for j in range(1, depth):
            for i in range(depth - j):
                in_ch = f[i] * j + f[i + 1] + (f[i - 1] if i > 0 else 0)
                nested[f"x{i}_{j}"] = node(in_ch, i)
        self.nested = nn.ModuleDict(nested)
        # pyramid projections of the last node of rows 1..depth-1
        self.pyramid = nn.ModuleList(nn.Conv2d(f[i], f[0], 1) for i in range(1, depth))
        self.fuse = node(f[0] * depth, 0)
        self.head = nn.Conv2d(f[0], 1, 1)
        n_aux = depth - 2 if cfg.deep_supervision else 0
        self.aux_heads = nn.ModuleList(nn.Conv2d(f[0], 1, 1) for _ in range(n_aux))

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        check_input(x, self.config.in_channels, self.size_divisor)
        feats = [self.encoder[0](x)]
        for stage in self.encoder[1:]:
            feats.append(stage(self.pool(feats[-1])))
        return feats

    def _grid(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """All nested nodes from the encoder column; returns (top row X[0][*], fused full-res map)."""
        depth = len(feats)
        grid = [[x] for x in feats]
        for j in range(1, depth):
            for i in range(depth - j):
                inputs = grid[i][:j] + [_up(grid[i + 1][j - 1], feats[i])]
                if i > 0:
                    inputs.append(_up(grid[i - 1][j], feats[i]))
                grid[i].append(self.nested[f"x{i}_{j}"](torch.cat(inputs, dim=1)))
        top = grid[0][-1]
        pyramid = [_up(self.pyramid[i - 1](grid[i][-1]), top) for i in range(depth - 1, 0, -1)]
        return grid[0], self.fuse(torch.cat(pyramid + [top], dim=1))

    def decode(self, feats: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        _, fused = self._grid(feats)
        return resize_to(self.head(fused), out_size)

    def decode_all(self, feats: list[torch.Tensor], out_size: tuple[int, int]) -> list[torch.Tensor]:
        """Deep-supervision logits on X[0][1..L-2] (if enabled), then the main logits."""
        top, fused = self._grid(feats)
        outs = [self.head(fused)]
        if self.config.deep_supervision:
            outs = [head(t) for head, t in zip(self.aux_heads, top[1:-1], strict=True)] + outs
        return [resize_to(o, out_size) for o in outs]


@register_backbone("dnanet")
def dnanet(**kwargs) -> DNANet:
    """DNANet; keyword arguments are ``DNANetConfig`` fields."""
    return DNANet(DNANetConfig(**kwargs))
