"""Whole-image inference: pad to the network's size divisor, predict, crop back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.dataset import FeatureSource, FullImageDataset, ImageBank, Normalization, collate
from ..data.transforms import Geometry
from .device import autocast


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.to(device, non_blocking=True)
        elif k == "feats":
            out[k] = [f.to(device, non_blocking=True) for f in v]
        else:
            out[k] = v
    return out


@torch.no_grad()
def predict_probs(
    forward: Callable[[dict[str, Any]], torch.Tensor],
    net: nn.Module,
    bank: ImageBank,
    norm: Normalization,
    *,
    divisor: int,
    device: torch.device,
    amp: bool = False,
    indices: list[int] | None = None,
    features: FeatureSource | None = None,
    feature_stride: int = 8,
    windows: Mapping[int, Geometry] | None = None,
) -> list[np.ndarray]:
    """Probabilities (float32 HxW, the image's own size) of ``forward`` on whole images of ``bank``.

    ``windows``: image index -> the part of it to predict (fitted to ``divisor``); the rest of that image's
    map is 0. Images without a window are predicted whole.
    """
    was_training = net.training
    net.eval()
    ds = FullImageDataset(bank, norm, divisor, features=features, feature_stride=feature_stride)
    out = []
    try:
        for i in indices if indices is not None else range(len(bank)):
            batch = to_device(collate([ds.item(i, (windows or {}).get(i))]), device)
            with autocast(device, amp):
                logits = forward(batch)
            (h, w), g = batch["shape"][0], batch["window"][0]
            prob = np.zeros((h, w), dtype=np.float32)
            vh, vw = min(g.height, h - g.top), min(g.width, w - g.left)
            prob[g.top : g.top + vh, g.left : g.left + vw] = torch.sigmoid(logits.float())[0, 0, :vh, :vw].cpu().numpy()
            out.append(prob)
    finally:
        net.train(was_training)
    return out
