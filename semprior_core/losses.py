"""Losses as per-sample vectors (B,), so callers can weight samples (cluster reweighting).

Inputs are logits and targets of shape (B, 1, H, W); targets may be soft (LESPS keeps
soft pseudo-masks). Reduce with ``.mean()`` for an unweighted batch loss.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def _per_sample(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(1)


def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return _per_sample(F.binary_cross_entropy_with_logits(logits, target, reduction="none"))


def soft_iou(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 − soft IoU of σ(logits) and target, per sample (the IRSTD 'SoftIoU' loss)."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    inter = (p * t).sum(1)
    union = p.sum(1) + t.sum(1) - inter
    return 1 - (inter + smooth) / (union + smooth)


def softiou_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return soft_iou(logits, target) + bce(logits, target)


def focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """LESPS's focal loss (CenterNet form): pixels with y = 1 are positives,
    −(1−p)² log p; the rest −(1−y)⁴ p² log(1−p); summed and divided by max(1, #positives),
    per sample (Ying et al., CVPR 2023, ``utils.py``)."""
    logp = F.logsigmoid(logits)
    log1mp = F.logsigmoid(-logits)
    p = logp.exp()
    pos = (target >= 1).to(logits.dtype)
    pos_loss = -((1 - p) ** 2) * logp * pos
    neg_loss = -((1 - target) ** 4) * p**2 * log1mp * (1 - pos)
    n_pos = pos.flatten(1).sum(1).clamp(min=1)
    return (pos_loss + neg_loss).flatten(1).sum(1) / n_pos


def edge_map(target: torch.Tensor) -> torch.Tensor:
    """Pixels within distance 1 of the boundary of the binarised target (inside or outside)."""
    b = (target > 0.5).to(target.dtype)
    dil = F.max_pool2d(b, 3, stride=1, padding=1)
    ero = -F.max_pool2d(-b, 3, stride=1, padding=1)
    return (dil - ero).clamp(0, 1)


def pal_edge(logits: torch.Tensor, target: torch.Tensor, edge_weight: float = 4.0, keep: float = 0.5) -> torch.Tensor:
    """PAL's edge-weighted BCE with online hard-example mining: BCE ×``edge_weight`` on edge
    pixels, then only the hardest ``keep`` fraction of each sample's pixels is averaged
    (Yu et al. 2025, ``loss/Edge_loss.py``; mining per sample here so samples can be weighted)."""
    w = 1 + (edge_weight - 1) * edge_map(target)
    loss = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * w).flatten(1)
    k = max(1, int(round(keep * loss.shape[1])))
    return loss.topk(k, dim=1).values.mean(1)


SEGMENTATION_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "bce": bce,
    "softiou_bce": softiou_bce,
    "focal": focal,
    "pal_edge": pal_edge,
}


def segmentation_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    try:
        return SEGMENTATION_LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; available: {', '.join(SEGMENTATION_LOSSES)}") from None


def distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 4.0, kind: str = "mse") -> torch.Tensor:
    """Per-sample distillation from temperature-softened teacher logits (teacher not differentiated).

    ``mse``: mean (σ(s/T) − σ(t/T))², as the paper's code; ``bce``: binary cross-entropy of
    σ(s/T) against σ(t/T), scaled by T² as in Hinton et al. (2015).
    """
    t = torch.sigmoid(teacher.detach() / temperature)
    if kind == "mse":
        return _per_sample((torch.sigmoid(student / temperature) - t) ** 2)
    if kind == "bce":
        return _per_sample(F.binary_cross_entropy_with_logits(student / temperature, t, reduction="none")) * temperature**2
    raise ValueError(f"unknown distillation kind {kind!r}; use 'mse' or 'bce'")
