"""How often sampled crops hold a target: a diagnostic of where training and meta-validation crops fall.

Targets are tiny (NUAA-SIRST: 0.10 % of the pixels of uniform 128² crops are positive), so where a crop is
placed decides whether a batch sees a target at all. Per split (train: the training crops; val: the crops that
score semprior's reweighting look-ahead, ``semprior.meta_val_crops``) this samples crops as each placement
does — anywhere in the image, or as training does (centred on a point with ``data.target_prob``, shifted by
up to ``data.target_jitter``) — and counts those holding a pixel of the dense mask. The masks only judge the
crops: the samplers themselves read the point labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semprior_core.config import load_config
from semprior_core.data.catalog import build_splits, folders_of, load_points
from semprior_core.data.dataset import CropDataset, ImageBank, Normalization, crop_placement
from semprior_core.method.supervision import Supervision

PLACEMENTS = ("uniform", "like training")


def crop_hits(data: str | Path, *, crop: int = 128, epochs: int = 25, overrides: list[str] | tuple = ()) -> list[dict]:
    """One row per (split, placement): ``epochs`` crops of every image of the split, the share holding a target
    pixel and the share of positive pixels over all crops."""
    cfg = load_config(None, [f"data.datasets=[{{root: '{Path(data)}'}}]", f"data.crop={crop}",
                             "method.supervision=points", *overrides])
    splits = build_splits(cfg.data)
    points = load_points(cfg.data, folders_of(cfg.data, splits))
    rows = []
    for split in ("train", "val"):
        bank = ImageBank(splits.get(split))
        centres = Supervision(cfg, bank, points, None).crop_centres
        for placement in PLACEMENTS:
            ds = CropDataset(bank, lambda i, bank=bank: bank.mask(i).astype(np.float32), Normalization(0.0, 1.0),
                             crop=crop, seed=cfg.train.seed,
                             **crop_placement(cfg.data, centres if placement == "like training" else None))
            held, positive, pixels = 0, 0.0, 0
            for epoch in range(epochs):
                ds.set_epoch(epoch)
                for j in range(len(ds)):
                    target = ds[j]["target"]
                    held += bool(target.max() > 0.5)
                    positive += float((target > 0.5).sum())
                    pixels += target.numel()
            rows.append({"dataset": Path(data).name, "split": split, "placement": placement, "crops": epochs * len(ds),
                         "with_target_pct": 100 * held / (epochs * len(ds)), "positive_px_pct": 100 * positive / pixels})
    return rows
