"""The one interface the rest of semprior sees: a frozen encoder that maps grey images to patch features."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .preprocess import preprocess
from .vit import VisionTransformer


@dataclass(frozen=True)
class VFMOutput:
    features: list[Tensor]  # one (B, C, h, w) patch-feature map per requested layer, in request order
    pooled: Tensor | None  # (B, C) class token of the final normed output; None when not asked for


class FrozenVFM(nn.Module):
    """Wraps an encoder so it can never train: eval mode for good, no gradients, forward under no_grad.

    ``weights_id`` identifies the weights (the first 16 hex digits of the source file's sha256, or
    ``random-seed<N>``) so feature caches can key on it.
    """

    def __init__(
        self, encoder: VisionTransformer, *, name: str, weights_id: str, input_size: int = 448
    ) -> None:
        super().__init__()
        patch = encoder.cfg.patch_size
        if input_size < patch or input_size % patch:
            raise ValueError(
                f"{name}: input_size {input_size} must be a positive multiple of the patch size {patch}"
            )
        self.encoder = encoder
        self.name = name
        self.weights_id = weights_id
        self.input_size = input_size
        self.requires_grad_(False)
        super().train(False)

    @property
    def embed_dim(self) -> int:
        return self.encoder.cfg.embed_dim

    @property
    def patch_size(self) -> int:
        return self.encoder.cfg.patch_size

    @property
    def num_layers(self) -> int:
        return self.encoder.cfg.depth

    def train(self, mode: bool = True) -> FrozenVFM:
        return super().train(False)  # a frozen feature extractor has no training mode

    @torch.no_grad()
    def forward(self, images: Tensor, layers: Sequence[int], pooled: bool = True) -> VFMOutput:
        """images: (B, 1, H, W) floats in [0, 1]; layers: 1-based block indices (1..num_layers).
        ``pooled=False`` skips the blocks after the last requested layer (the feature cache needs no class token).

        Features are the residual-stream outputs of those blocks (before the final norm), patch tokens only,
        on a grid covering the whole image resized per :func:`semprior_core.vfm.preprocess.vfm_input_hw`.
        Images are cast to the weights' dtype; they must be on the weights' device.
        """
        x = preprocess(images, self.input_size, self.patch_size).to(self.encoder.cls_token.dtype)
        features, cls = self.encoder(x, layers, pooled=pooled)
        return VFMOutput(features=features, pooled=cls)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, weights_id={self.weights_id!r}, input_size={self.input_size}"
