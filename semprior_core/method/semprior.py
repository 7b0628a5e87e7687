"""The semantic-prior method: SCAM teacher + lightweight student, cluster reweighting, distillation,
collaborative label updates.

Per step (one training batch of pseudo-masks):
  teacher  loss = Σ_i w_{c_i} · seg(t_i, y_i) / B  (+ gate L1)
  student  loss = Σ_i w_{c_i} · [seg(s_i, y_i) + λ_kd · KD(s_i, t_i; T)] / B
where w are the per-cluster weights. Every ``meta_every`` steps the weights take one
hypergradient step: a look-ahead of the *teacher's* parameters on the training batch,
scored by the teacher's loss on a validation batch of the split carved from training
data (crops placed as training crops are, ``semprior.meta_val_crops``), supervised by the validation images'
own points and evolving pseudo-masks
(dense validation masks only with ``semprior.val_dense``, reported as extra supervision).
Label updates use the teacher's whole-image predictions (``semprior.combine=teacher``, the seed code's
rule) or combine them with the student's (``mean``, ``agreement``, ``weighted``); with
``semprior.collaborative=false`` the student's alone.
Inference uses the student alone: no VFM, no SCAM.

Networks. By default teacher and student are two CNNs of the same architecture, initialised apart
(:mod:`semprior_core.networks`). ``semprior.share_backbone=true`` is the seed code's design (METHOD_NOTES
§1): the teacher is the student's own CNN plus SCAM, so one set of CNN weights receives both losses (and the
look-ahead of the reweighting step covers it); the SCAMs are the teacher's only own parameters. Both
networks' state_dicts then hold the shared tensors: the optimiser sees them once (:meth:`Method.parameters`
dedups), checkpoints restore them from either entry, and :func:`semprior_core.evaluation.evaluate.load_run` rebuilds
the two networks separately with equal values, which predicts the same.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from ..data.dataset import CropDataset, collate, crop_placement
from ..io import append_jsonl, atomic_write_text, read_jsonl
from ..losses import DISTILL_NORM, distillation, segmentation_loss
from ..networks import Networks, build_student, build_teacher
from ..runtime import distributed as dist
from ..runtime.device import epoch_seed
from ..runtime.inference import to_device
from .base import Context, Method
from .clusters import ClusterAssignment, cluster_images, stats_features
from .hypergrad import ClusterReweighter, optimizer_step_sizes
from .supervision import Supervision


class SempriorMethod(Method):
    eval_models = ("student", "teacher")
    evolves_val_labels = True

    def __init__(self, ctx: Context, val_supervision: Supervision | None = None):
        super().__init__(ctx)
        cfg = ctx.cfg
        self.sp = cfg.semprior
        if cfg.method.supervision == "full":
            raise ValueError("method.name=semprior is point-supervised: set method.supervision=points")
        if val_supervision is None:
            raise ValueError("semprior needs validation point labels (val_supervision)")
        self.val_supervision = val_supervision
        self.student = build_student(cfg).to(ctx.device)
        self.teacher = build_teacher(cfg, backbone=self.student if self.sp.share_backbone else None).to(ctx.device)
        self.nets = Networks({"student": self.student, "teacher": self.teacher})
        self.seg = segmentation_loss(cfg.train.loss)
        # Distillation is reduced like the segmentation loss it is added to, so neither drowns the other.
        self.distill_norm = DISTILL_NORM[cfg.train.loss]
        self.steps = 0
        self._last_batch: dict[str, Any] | None = None
        self.assignment = self._cluster()
        self.cluster_of = torch.tensor(self.assignment.labels, dtype=torch.long, device=ctx.device)
        self.reweighter = ClusterReweighter.from_config(self.sp, self.assignment.sizes)
        self.reweighter.weights.to(ctx.device)
        self._cluster_loss = np.zeros(self.assignment.k)
        self._cluster_count = np.zeros(self.assignment.k)
        self.val_quality = {"teacher": 1.0, "student": 1.0}
        self.distill_from: int | None = 0 if self.sp.distill_start == "always" else None  # step distillation began

    def on_start(self) -> None:
        atomic_write_text(self.ctx.run_dir.cluster_assignment, self.assignment.to_json())

    # -- clusters ------------------------------------------------------------------------
    def _cluster(self) -> ClusterAssignment:
        bank = self.ctx.train_bank
        k = self.sp.clusters_for(len(bank))
        kind = self.sp.cluster_features
        if kind == "vfm" and self.ctx.train_features is not None:
            # Per-image embedding: the deepest cached VFM map, averaged over patches.
            feats = np.stack([self.ctx.train_features(i)[-1].float().mean(dim=(1, 2)).numpy() for i in range(len(bank))])
        else:
            kind = "stats"  # no VFM in this run (vfm=none or scam off): fall back to image statistics
            feats = stats_features(bank.image(i) for i in range(len(bank)))
        labels = cluster_images(feats, k, self.sp.cluster_seed)
        return ClusterAssignment.from_labels(labels, k, kind, seed=self.sp.cluster_seed, ids=bank.keys())

    # -- Method interface ----------------------------------------------------------------
    def networks(self) -> Networks:
        return self.nets

    def _weights(self, index: torch.Tensor) -> torch.Tensor:
        if not self.sp.reweight:
            return torch.ones(len(index), device=self.ctx.device)
        return self.reweighter.weights.per_sample(self.cluster_of[index]).detach()

    def train_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        self._last_batch = batch
        w = self._weights(batch["index"])
        target = batch["target"]
        t = self.logits("teacher", batch).float()
        s = self.logits("student", batch).float()
        t_seg = self.seg(t, target)
        s_seg = self.seg(s, target)
        kd = (
            distillation(s, t, target, self.sp.temperature, self.sp.distill_kind, norm=self.distill_norm)
            if self.sp.distill else torch.zeros_like(s_seg)
        )
        gate = self.teacher.gate_penalty()
        teacher_loss = (w * t_seg).mean() + self.ctx.cfg.scam.gate_l1 * gate
        kd_scale = self.distill_scale()
        student_loss = (w * (self.sp.student_seg_weight * s_seg + kd_scale * self.sp.distill_weight * kd)).mean()
        ids = self.cluster_of[batch["index"]].cpu().numpy()
        np.add.at(self._cluster_loss, ids, t_seg.detach().cpu().numpy())
        np.add.at(self._cluster_count, ids, 1)
        logs = {
            "teacher_seg": float(t_seg.detach().mean()), "student_seg": float(s_seg.detach().mean()),
            "distill": float(kd.detach().mean()), "gate_l1": float(gate.detach()), "mean_weight": float(w.mean()),
            "distill_scale": kd_scale,
        }
        return teacher_loss + student_loss, logs

    def distill_scale(self) -> float:
        """Factor on ``distill_weight`` at the current step: 0 before distillation starts, then a linear ramp."""
        if self.distill_from is None:
            return 0.0
        if self.sp.distill_ramp == 0:
            return 1.0
        return min(1.0, (self.steps - self.distill_from) / self.sp.distill_ramp)

    def after_step(self, step: int, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        self.steps += 1
        if not self.sp.reweight or self.steps % self.sp.meta_every or self._last_batch is None:
            return {}
        logs: dict[str, float] = {}
        if dist.rank() == 0:
            sizes = optimizer_step_sizes(self.teacher, optimizer, self.sp.inner_lr) if self.sp.lookahead == "optimizer" else None
            logs = self._meta_step(self._last_batch, sizes)
        # Weights are computed once and broadcast, so every rank trains with the same ones.
        dist.broadcast_tensor(self.reweighter.weights.alpha.data)
        self._record_weights(logs)
        return {"meta_val_before": logs.get("val_before", float("nan"))} if logs else {}

    def _meta_step(self, train_batch: dict[str, Any], step_sizes=None) -> dict[str, float]:
        val_batch = self._val_batch()
        ids = self.cluster_of[train_batch["index"]]

        def train_loss(forward):
            return self.seg(forward(train_batch["image"], train_batch.get("feats")).float(), train_batch["target"]), ids

        def val_loss(forward):
            return self.seg(forward(val_batch["image"], val_batch.get("feats")).float(), val_batch["target"]).mean()

        return self.reweighter.step(self.teacher, train_loss, val_loss, step_sizes)

    def _val_batch(self) -> dict[str, Any]:
        """A seeded random validation crop batch (replayed identically after a resume), its crops placed as
        ``semprior.meta_val_crops`` says."""
        cfg = self.ctx.cfg
        target = self.val_supervision.bank.mask if self.sp.val_dense else self.val_supervision.target
        centres = self.val_supervision.crop_centres if self.sp.meta_val_crops == "train" else None
        ds = CropDataset(
            self.ctx.val_bank, lambda i: np.asarray(target(i), dtype=np.float32), self.ctx.norm, crop=cfg.data.crop,
            flips=cfg.data.flips, rot90=cfg.data.rot90, seed=cfg.train.seed + 1,
            features=self.ctx.val_features, feature_stride=self.nets.feature_stride,
            **crop_placement(cfg.data, centres),
        )
        ds.set_epoch(self.steps)
        rng = np.random.default_rng(epoch_seed(cfg.train.seed, self.steps))
        n = min(cfg.data.batch_size, len(ds))
        idx = rng.choice(len(ds), size=n, replace=False)
        return to_device(collate([ds[int(i)] for i in idx]), self.ctx.device)

    def _record_weights(self, logs: dict[str, float]) -> None:
        if self.ctx.rank != 0:
            return
        counts = np.maximum(self._cluster_count, 1)
        record = {
            "step": self.steps,
            "weights": self.reweighter.weights.weights().detach().cpu().tolist(),
            "sizes": self.assignment.sizes,
            "mean_loss": (self._cluster_loss / counts).tolist(),
            "samples": self._cluster_count.astype(int).tolist(),
        } | {k: v for k, v in logs.items() if not k.startswith("weight_")}
        append_jsonl(self.ctx.run_dir.cluster_weights, record)
        self._cluster_loss[:] = 0
        self._cluster_count[:] = 0

    # -- labels --------------------------------------------------------------------------
    def label_models(self) -> tuple[str, ...]:
        if not self.sp.collaborative:
            return ("student",)
        # combine=teacher needs no student prediction: skip its whole-image pass.
        return ("teacher",) if self.sp.combine == "teacher" else ("teacher", "student")

    def combine_label_probs(self, probs: dict[str, list[np.ndarray]]) -> list[np.ndarray]:
        """The probabilities of :meth:`label_models` → one map per image (``semprior.combine``)."""
        if len(self.label_models()) == 1:
            return probs[self.label_models()[0]]
        t, s = probs["teacher"], probs["student"]
        if self.sp.combine == "agreement":
            return [np.sqrt(a * b) for a, b in zip(t, s)]  # high only where both agree
        if self.sp.combine == "weighted":
            qt, qs = self.val_quality["teacher"], self.val_quality["student"]
            wt = qt / (qt + qs) if qt + qs > 0 else 0.5
            return [wt * a + (1 - wt) * b for a, b in zip(t, s)]
        return [(a + b) / 2 for a, b in zip(t, s)]

    def on_validation(self, record: dict[str, Any]) -> None:
        """Remember each network's point-only validation quality (for ``combine=weighted``)."""
        for which in self.val_quality:
            key = f"val_{which}_point_f1"
            if key in record:
                self.val_quality[which] = float(record[key])
        teacher, student = record.get("val_teacher_point_f1"), record.get("val_student_point_f1")
        if self.distill_from is None and teacher is not None and student is not None and teacher > student:
            self.distill_from = self.steps

    # -- state ---------------------------------------------------------------------------
    def on_resume(self) -> None:
        """Drop weight records written after the checkpoint (work lost with the killed run)."""
        path = self.ctx.run_dir.cluster_weights
        rows = [r for r in read_jsonl(path) if r["step"] <= self.steps]
        atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))

    def state_dict(self) -> dict[str, Any]:
        return {
            "reweighter": self.reweighter.state_dict(),
            "steps": self.steps,
            "assignment": self.assignment.to_json(),
            "cluster_loss": torch.from_numpy(self._cluster_loss.copy()),
            "cluster_count": torch.from_numpy(self._cluster_count.copy()),
            "val_quality": dict(self.val_quality),
            "distill_from": self.distill_from,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = ClusterAssignment.from_json(state["assignment"])
        if saved.ids != self.assignment.ids or saved.labels != self.assignment.labels:
            raise ValueError("the checkpoint's cluster assignment differs from this run's training images")
        self.reweighter.load_state_dict(state["reweighter"])
        self.steps = int(state["steps"])
        self._cluster_loss = state["cluster_loss"].numpy().copy()
        self._cluster_count = state["cluster_count"].numpy().copy()
        self.val_quality = dict(state["val_quality"])
        self.distill_from = state.get("distill_from", 0)  # checkpoints from before distill_start distilled always

