"""Plain supervised training of one network (student backbone or SCAM teacher) on the current targets."""

from __future__ import annotations

from typing import Any

import torch

from ..losses import segmentation_loss
from ..networks import Networks, build_network
from .base import Context, Method


class SupervisedMethod(Method):
    """One network, one segmentation loss; the targets come from the run's supervision
    (dense masks, fixed points, or LESPS/PAL pseudo-masks)."""

    def __init__(self, ctx: Context):
        super().__init__(ctx)
        self.which = ctx.cfg.method.model
        self.net = build_network(ctx.cfg, self.which).to(ctx.device)
        self.nets = Networks({self.which: self.net})
        self.eval_models = (self.which,)
        self.loss_fn = segmentation_loss(ctx.cfg.train.loss)

    def networks(self) -> Networks:
        return self.nets

    def train_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        logits = self.logits(self.which, batch)
        loss = self.loss_fn(logits.float(), batch["target"]).mean()
        logs: dict[str, float] = {"seg": float(loss.detach())}
        if self.which == "teacher":
            penalty = self.net.gate_penalty()
            loss = loss + self.ctx.cfg.scam.gate_l1 * penalty
            logs["gate_l1"] = float(penalty.detach())
        return loss, logs
