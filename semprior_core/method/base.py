"""The contract between the generic training loop (``engine``) and a training recipe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..config import RunConfig
from ..data.dataset import FeatureSource, ImageBank, Normalization
from ..store.run_dir import RunDir

if TYPE_CHECKING:
    from ..networks import Networks
    from .supervision import Supervision


@dataclass
class Context:
    """Everything a method may use; built once by the engine."""

    cfg: RunConfig
    device: torch.device
    run_dir: RunDir
    train_bank: ImageBank
    val_bank: ImageBank
    norm: Normalization
    supervision: Supervision
    train_features: FeatureSource | None = None
    val_features: FeatureSource | None = None
    rank: int = 0
    world_size: int = 1


class Method:
    """A training recipe: its networks, a loss per batch, and work between epochs.

    ``eval_models`` names the networks scored on validation; the first one drives
    checkpoint selection and is the model ``semprior predict`` uses by default.
    """

    eval_models: tuple[str, ...] = ("student",)
    evolves_val_labels: bool = False  # whether validation pseudo-masks evolve too (semprior's val loss)

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def networks(self) -> Networks:
        """The method's networks by name (what checkpoints store) and how each is called."""
        raise NotImplementedError

    def train_features(self) -> FeatureSource | None:
        """Cached VFM features of training images, if this method uses them."""
        return self.ctx.train_features

    def val_features(self) -> FeatureSource | None:
        return self.ctx.val_features

    def parameters(self) -> list[nn.Parameter]:
        seen: dict[int, nn.Parameter] = {}
        for net in self.networks().values():
            for p in net.parameters():
                if p.requires_grad:
                    seen.setdefault(id(p), p)
        return list(seen.values())

    def train_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss to back-propagate and the scalar terms to log."""
        raise NotImplementedError

    def logits(self, which: str, batch: dict[str, Any]) -> torch.Tensor:
        """Logits of network ``which`` on a batch (:meth:`Networks.logits`)."""
        return self.networks().logits(which, batch)

    def label_models(self) -> tuple[str, ...]:
        """Networks whose whole-image predictions feed label updates."""
        return self.eval_models[:1]

    def combine_label_probs(self, probs: dict[str, list[np.ndarray]]) -> list[np.ndarray]:
        return probs[self.label_models()[0]]

    def after_step(self, step: int, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """Hook after each optimiser step (e.g. the bilevel update). Returns scalars to log."""
        return {}

    def on_validation(self, record: dict[str, Any]) -> None:
        """Hook after each validation with its metrics record."""

    def on_start(self) -> None:
        """Hook on rank 0 once a new run's directory is set up (write the method's own files); never on a
        resume, so that one refused before training leaves the run untouched."""

    def on_resume(self) -> None:
        """Hook after a resume restored the checkpoint (drop records newer than it)."""

    def state_dict(self) -> dict[str, Any]:
        """Extra state beyond network weights (e.g. cluster weights) for checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
