"""Axial 2-D rotary position embedding as used by DINOv3 (Siméoni et al., "DINOv3", arXiv:2508.10104).

Eval-time behaviour only: DINOv3's training-time coordinate shift/jitter/rescale augmentations are not
implemented because a frozen backbone never trains.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class RopePositionEmbedding(nn.Module):
    """Produces the (sin, cos) tables for an ``h x w`` patch grid, each ``(h*w, head_dim)``, in float32.

    Patch centres are normalised separately per axis to [-1, 1] (DINOv3's ``normalize_coords="separate"``);
    head_dim/4 periods ``base ** (2i / (head_dim/2))`` are shared by both axes.
    """

    def __init__(self, head_dim: int, base: float = 100.0) -> None:
        super().__init__()
        if head_dim % 4 != 0:
            raise ValueError(f"RoPE needs head_dim divisible by 4, got {head_dim}")
        self.head_dim, self.base = head_dim, base
        # Persistent: DINOv3 checkpoints store the periods, and loading them keeps us bit-faithful.
        self.register_buffer("periods", torch.empty(head_dim // 4, dtype=torch.float32), persistent=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Computed on the CPU even when the module is built on the meta device (arange there is slow).
        exponents = (
            2 * torch.arange(self.head_dim // 4, dtype=torch.float32, device="cpu") / (self.head_dim // 2)
        )
        with torch.no_grad():
            self.periods.copy_(self.base**exponents)

    def forward(self, h: int, w: int) -> tuple[Tensor, Tensor]:
        dd = {"device": self.periods.device, "dtype": torch.float32}
        coords_h = (torch.arange(h, **dd) + 0.5) / h
        coords_w = (torch.arange(w, **dd) + 0.5) / w
        coords = torch.stack(torch.meshgrid(coords_h, coords_w, indexing="ij"), dim=-1).flatten(0, 1)
        coords = 2.0 * coords - 1.0  # (h*w, 2) in [-1, 1]
        angles = 2 * math.pi * coords.unsqueeze(-1) / self.periods.float()  # (h*w, 2, head_dim/4)
        angles = angles.flatten(-2, -1).tile(2)  # (h*w, head_dim): [y-angles, x-angles] twice
        return torch.sin(angles), torch.cos(angles)


def apply_rope(x: Tensor, sin: Tensor, cos: Tensor) -> Tensor:
    """Rotate the last ``sin.shape[0]`` tokens of ``x`` (B, heads, N, D); class/register tokens pass unchanged.

    Computed in the tables' dtype (float32) and cast back, as DINOv3 does.
    """
    prefix = x.shape[-2] - sin.shape[-2]
    if prefix < 0:
        raise ValueError(f"RoPE tables cover {sin.shape[-2]} tokens but x has only {x.shape[-2]}")
    head, tail = x[..., :prefix, :], x[..., prefix:, :].to(sin.dtype)
    t1, t2 = tail.chunk(2, dim=-1)
    rotated = tail * cos + torch.cat([-t2, t1], dim=-1) * sin
    return torch.cat([head, rotated.to(x.dtype)], dim=-2)
