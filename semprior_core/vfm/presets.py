"""Architectures of the published DINOv2 / DINOv3 backbones (numbers from their official hub definitions)."""

from __future__ import annotations

from .vit import ViTConfig

DINOV2_VITS14 = ViTConfig(embed_dim=384, depth=12, num_heads=6, patch_size=14, ffn_hidden=1536)
DINOV2_VITB14 = ViTConfig(embed_dim=768, depth=12, num_heads=12, patch_size=14, ffn_hidden=3072)
DINOV2_VITL14 = ViTConfig(embed_dim=1024, depth=24, num_heads=16, patch_size=14, ffn_hidden=4096)


def with_registers(cfg: ViTConfig, n: int = 4) -> ViTConfig:
    """The ``*_reg`` variant of a DINOv2 architecture (Darcet et al., ICLR 2024): 4 register tokens, and the
    position embedding resized with antialiasing (``interpolate_antialias=True`` in the official hub code)."""
    return ViTConfig(**{**cfg.__dict__, "num_register_tokens": n, "pos_antialias": True})


# DINOv3 (dinov3/hub/backbones.py): patch 16, RoPE base 100, 4 storage tokens, LayerNorm eps 1e-5. SwiGLU
# hidden width: int(6 * 384 * 2/3) = 1536, already a multiple of the default alignment 8.
_DINOV3 = {"patch_size": 16, "pos": "rope", "rope_base": 100.0, "num_register_tokens": 4, "norm_eps": 1e-5}
DINOV3_VITS16 = ViTConfig(embed_dim=384, depth=12, num_heads=6, ffn_hidden=1536, **_DINOV3)
DINOV3_VITS16PLUS = ViTConfig(embed_dim=384, depth=12, num_heads=6, ffn="swiglu", ffn_hidden=1536, **_DINOV3)
DINOV3_VITB16 = ViTConfig(embed_dim=768, depth=12, num_heads=12, ffn_hidden=3072, **_DINOV3)
