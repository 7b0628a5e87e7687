"""A dataset's training images as the trainer holds them (config, image bank, normalisation, splits), for the
tests of sampling and label updates."""

from __future__ import annotations

from dataclasses import dataclass

from semprior_core.config import RunConfig, load_config
from semprior_core.data.catalog import DataSplits, build_splits
from semprior_core.data.dataset import ImageBank, Normalization


@dataclass
class TrainBank:
    cfg: RunConfig
    bank: ImageBank
    norm: Normalization
    splits: DataSplits


def train_bank(root, *overrides: str) -> TrainBank:
    """The training split of the dataset folder ``root`` under the default config plus ``overrides``."""
    cfg = load_config(None, [f"data.datasets=[{{root: {root}}}]", *overrides])
    splits = build_splits(cfg.data)
    bank = ImageBank(splits.train)
    return TrainBank(cfg, bank, Normalization.from_images([bank.image(i) for i in range(len(bank))]), splits)
