"""SCAM (Semantic-Conditioned Affine Modulation) and the Teacher: a backbone whose encoder features are
modulated by frozen VFM features between ``encode`` and ``decode``.

SCAM is feature-wise linear modulation (Perez et al., "FiLM: Visual Reasoning with a General Conditioning
Layer", AAAI 2018); the spatial variant predicts per-pixel γ, β as in SPADE (Park et al., "Semantic Image
Synthesis with Spatially-Adaptive Normalization", CVPR 2019) but without normalising the modulated features.
``mode="global"`` is the seed code's per-channel FiLM from an attention-pooled embedding
(semantic-prior ``models/teacher.py``, see METHOD_NOTES §1).

Modulation: ``F' = F ⊙ (1 + g·γ) + g·β`` with a learnable per-channel gate ``g`` (tanh or sigmoid of a
parameter).

Initialisation (identity, with a gradient path to everything within one step). The last layer that
produces (γ, β) is zero-initialised, so γ = β = 0 and F' = F exactly, while the gate starts at g = 0.5
(not 0). Then, at step 0:

* the last layer gets gradient ``∂L/∂γ = g·F·∂L/∂F'`` ≠ 0 (g ≠ 0);
* the gate gets none (``∂L/∂g = (γF + β)·∂L/∂F' = 0``), nor do the layers before the last one (their
  signal passes through the zero weights);
* after one optimiser step the last layer is non-zero, so γ, β ≠ 0 and the gate and the earlier layers
  receive gradient too.

The alternative (gate 0 through tanh(0), random last layer) is also an identity, but then at step 0 only
the gate learns and the modulation itself gets nothing until the gate moves away from 0. Zero-initialising
the last layer instead lets the modulation learn from the very first step (the "zero convolution" of
Zhang et al., "Adding Conditional Control to Text-to-Image Diffusion Models", ICCV 2023), and it is the
only identity at init for the sigmoid gate, which can never be 0. With tanh the gate can be driven to
exactly 0 by the L1 penalty (:meth:`Teacher.gate_penalty`), switching a channel's modulation off.

The spatial head normalises per position over channels (a LayerNorm over C at every pixel), never over
space: γ, β at a location then depend only on the prior at that location, so modulating a crop of cached
full-image features equals cropping the modulation of the full image (up to resampling).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import SCAMConfig
from .models.base import SegBackbone

GATE_INIT = 0.5  # initial gate value g, for both gate kinds (see the module docstring)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map, independently at every position."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class AttentionPool(nn.Module):
    """One vector per image: softmax over positions of a 1×1-conv score, weighted sum of the features
    (the seed code's pooling, temperature 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(channels, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        weights = self.score(x).flatten(2).softmax(dim=-1)  # (B, 1, hw)
        return (x.flatten(2) * weights).sum(dim=-1)  # (B, C)


class SCAM(nn.Module):
    """Modulate a CNN feature map (B, C, H, W) by prior features (B, Cs, h, w); identity at init.

    ``mode="spatial"``: 1×1 conv → per-pixel channel LayerNorm → GELU → 1×1 conv to 2C, computed at the
    prior's resolution; only γ, β (2C channels) are resized bilinearly to H×W, never the wide prior.
    ``mode="global"``: attention pooling → Linear → LayerNorm → GELU → Linear to 2C, broadcast over H×W.
    """

    def __init__(
        self,
        channels: int,
        prior_channels: int,
        hidden: int,
        mode: Literal["spatial", "global"] = "spatial",
        gate: Literal["tanh", "sigmoid"] = "tanh",
    ) -> None:
        super().__init__()
        if min(channels, prior_channels, hidden) < 1:
            raise ValueError(
                f"SCAM channels, prior_channels and hidden must be positive, got {channels}, {prior_channels}, {hidden}"
            )
        if mode not in ("spatial", "global"):
            raise ValueError(f"scam.mode must be 'spatial' or 'global', got {mode!r}")
        if gate not in ("tanh", "sigmoid"):
            raise ValueError(f"scam.gate must be 'tanh' or 'sigmoid', got {gate!r}")
        self.channels, self.mode, self.gate_kind = channels, mode, gate
        if mode == "spatial":
            self.head = nn.Sequential(
                nn.Conv2d(prior_channels, hidden, 1),
                ChannelLayerNorm(hidden),
                nn.GELU(),
                nn.Conv2d(hidden, 2 * channels, 1),
            )
        else:
            self.pool = AttentionPool(prior_channels)
            self.head = nn.Sequential(
                nn.Linear(prior_channels, hidden),
                nn.LayerNorm(hidden),
                nn.GELU(),
                nn.Linear(hidden, 2 * channels),
            )
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        raw = math.atanh(GATE_INIT) if gate == "tanh" else math.log(GATE_INIT / (1 - GATE_INIT))
        self.gate_param = nn.Parameter(torch.full((channels,), raw))

    @property
    def out_layer(self) -> nn.Module:
        """The zero-initialised layer producing (γ, β)."""
        return self.head[-1]

    def gate(self) -> Tensor:
        """Per-channel gate g, shape (C,)."""
        return torch.tanh(self.gate_param) if self.gate_kind == "tanh" else torch.sigmoid(self.gate_param)

    def affine(self, prior: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """γ, β: (B, C, H, W) in spatial mode, (B, C, 1, 1) in global mode."""
        if self.mode == "spatial":
            gb = self.head(prior)
            if tuple(gb.shape[-2:]) != tuple(size):
                gb = F.interpolate(gb, size=size, mode="bilinear", align_corners=False)
        else:
            gb = self.head(self.pool(prior))[:, :, None, None]
        gamma, beta = gb.chunk(2, dim=1)
        return gamma, beta

    def forward(self, feat: Tensor, prior: Tensor, return_maps: bool = False) -> Tensor | tuple[Tensor, dict]:
        if feat.ndim != 4 or feat.shape[1] != self.channels:
            raise ValueError(f"SCAM expects features (B, {self.channels}, H, W), got {tuple(feat.shape)}")
        if prior.ndim != 4 or prior.shape[0] != feat.shape[0]:
            raise ValueError(f"SCAM expects prior (B={feat.shape[0]}, Cs, h, w), got {tuple(prior.shape)}")
        prior = prior.to(device=feat.device, dtype=feat.dtype)
        gamma, beta = self.affine(prior, (feat.shape[-2], feat.shape[-1]))
        g = self.gate().to(feat.dtype)[None, :, None, None]
        out = feat * (1 + g * gamma) + g * beta
        if not return_maps:
            return out
        return out, {"gamma": gamma, "beta": beta, "gate": g.flatten()}


class Teacher(nn.Module):
    """Backbone + SCAM at encoder stages ``cfg.stages``; stage ``cfg.stages[i]`` is fed ``feats[feature_index[i]]``.

    With no SCAMs (``prior_channels=[]`` or ``cfg.enabled`` false) or ``forward(..., scam=False)`` it computes
    exactly the bare backbone. The backbone is shared by reference, not copied. ``init_rng(stage)``, if given,
    is entered while the SCAM of ``stage`` is built (:func:`semprior_core.networks.build_teacher` seeds each
    SCAM on its own with it).
    """

    def __init__(
        self,
        backbone: SegBackbone,
        cfg: SCAMConfig,
        prior_channels: Sequence[int],
        feature_index: Sequence[int],
        init_rng: Callable[[int], AbstractContextManager] | None = None,
    ) -> None:
        super().__init__()
        prior_channels, feature_index = list(prior_channels), list(feature_index)
        if len(prior_channels) != len(feature_index):
            raise ValueError(
                f"feature_index ({feature_index}) must have one entry per prior_channels entry ({prior_channels})"
            )
        self.backbone = backbone
        self.size_divisor = backbone.size_divisor
        self.stages: list[int] = []
        self.feature_index: list[int] = []
        self.scams = nn.ModuleList()
        if not prior_channels or not cfg.enabled:
            return
        n = len(backbone.feature_info)
        if len(cfg.stages) != len(prior_channels):
            raise ValueError(
                f"scam.stages ({cfg.stages}) must have one entry per prior_channels entry ({prior_channels})"
            )
        bad = [s for s in cfg.stages if not 0 <= s < n]
        if bad:
            raise ValueError(
                f"scam.stages {bad} out of range: the backbone has {n} encoder stages (0..{n - 1})"
            )
        if len(set(cfg.stages)) != len(cfg.stages):
            raise ValueError(f"scam.stages must not repeat a stage, got {cfg.stages}")
        if any(i < 0 for i in feature_index):
            raise ValueError(f"feature_index entries must be >= 0, got {feature_index}")
        self.stages, self.feature_index = list(cfg.stages), feature_index
        for stage, cs in zip(self.stages, prior_channels, strict=True):
            ch = backbone.feature_info[stage].channels
            with init_rng(stage) if init_rng else nullcontext():
                self.scams.append(SCAM(ch, cs, cfg.hidden, mode=cfg.mode, gate=cfg.gate))

    def _check_feats(self, feats: Sequence[Tensor] | None) -> Sequence[Tensor]:
        if feats is None:
            raise ValueError("this teacher has SCAM modules: pass the VFM features (feats) or scam=False")
        need = max(self.feature_index) + 1
        if len(feats) < need:
            raise ValueError(
                f"feature_index {self.feature_index} needs at least {need} feature maps, got {len(feats)}"
            )
        return feats

    def forward(self, image: Tensor, feats: Sequence[Tensor] | None = None, *, scam: bool = True) -> Tensor:
        enc = self.backbone.encode(image)
        if scam and len(self.scams):
            feats = self._check_feats(feats)
            enc = list(enc)
            for stage, index, module in zip(self.stages, self.feature_index, self.scams, strict=True):
                enc[stage] = module(enc[stage], feats[index])
        return self.backbone.decode(enc, (image.shape[-2], image.shape[-1]))

    @torch.no_grad()
    def modulation_maps(self, image: Tensor, feats: Sequence[Tensor]) -> list[dict]:
        """Per modulated stage: gamma, beta, gate, feature before/after, stage index, VFM feature index.

        Runs without gradient in the module's current mode (call ``eval()`` first to keep BatchNorm
        statistics untouched).
        """
        if not len(self.scams):
            return []
        feats = self._check_feats(feats)
        enc = self.backbone.encode(image)
        out = []
        for stage, index, module in zip(self.stages, self.feature_index, self.scams, strict=True):
            after, maps = module(enc[stage], feats[index], return_maps=True)
            out.append({**maps, "before": enc[stage], "after": after, "stage": stage, "vfm_index": index})
        return out

    def gate_penalty(self) -> Tensor:
        """Mean |g| over all gate channels of all SCAMs (the seed code's gate L1); 0 without SCAMs."""
        if not len(self.scams):
            ref = next(self.backbone.parameters(), None)
            return torch.zeros((), device=ref.device if ref is not None else None)
        return torch.cat([m.gate().abs() for m in self.scams]).mean()
