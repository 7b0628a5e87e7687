"""Constants of the semantic-prior method (teacher + student, cluster reweighting, distillation).

The reweighting is the one-step look-ahead hypergradient of learning-to-reweight (Ren et al., "Learning to
Reweight Examples for Robust Deep Learning", ICML 2018) applied to learnable per-cluster weights as in
Meta-Weight-Net (Shu et al., NeurIPS 2019); see :mod:`semprior_core.method.hypergrad`. What the seed code did
instead is in ``/work/shared/METHOD_NOTES.md`` §1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..config.check import ConfigError, check_fields


def auto_k(n: int) -> int:
    """Default number of image clusters for ``n`` training images: clamp(round(sqrt(n/2)), 2, 16), at most n.

    sqrt(n/2) is the usual rule of thumb for k-means; the clamp keeps every cluster populated enough for its
    weight to be estimated from a few meta steps (NUAA-SIRST's ~190 training images give 10, NUDT-SIRST 16).
    """
    if n < 1:
        raise ValueError(f"auto_k needs at least one image, got n={n}")
    return min(n, max(2, min(16, round(math.sqrt(n / 2)))))


@dataclass
class SempriorConfig:
    """Every constant of the semantic-prior method; validated on construction."""

    # cluster reweighting (bilevel, one-step look-ahead)
    reweight: bool = True
    n_clusters: int = 0  # 0 = auto_k(number of training images)
    cluster_features: Literal["vfm", "stats"] = "vfm"  # pooled VFM features or hand-crafted image statistics
    cluster_seed: int = 0
    meta_every: int = 5  # optimiser steps between meta steps
    meta_lr: float = 0.05  # Adam learning rate of the cluster logits
    inner_lr: float = 1e-3  # η of the look-ahead step θ' = θ − η∇θ (lookahead=sgd)
    # sgd: that fixed η; optimizer: the real optimiser's per-element next step (Adam: lr/(√v̂+ε)), so the
    # look-ahead asks what the teacher's actual step would do (hypergrad.optimizer_step_sizes)
    lookahead: Literal["sgd", "optimizer"] = "sgd"
    meta_order: Literal["second", "first"] = "second"  # exact hypergradient or its first-order approximation
    weight_min: float = 0.2
    weight_max: float = 5.0
    meta_grad_clip: float = 1.0  # max norm of the cluster-logit gradient; 0 = off
    # The validation crops that score the look-ahead: train = sampled as training crops are (centred on the
    # validation points with data.target_prob), so the outer loss sees the distribution the weights act on
    # (Ren et al. 2018 draw the clean set like the training set); uniform = anywhere in the image (protocols up
    # to v3), where most 128² crops hold no target and the outer loss is mostly background.
    meta_val_crops: Literal["train", "uniform"] = "train"
    # teacher -> student distillation
    distill: bool = True
    distill_weight: float = 0.5
    temperature: float = 4.0
    distill_kind: Literal["mse", "bce"] = "mse"
    # always: distil from the first step; teacher_ahead: only once a validation has scored the teacher above
    # the student (point-F1), then ramped linearly to distill_weight over distill_ramp steps, so that an
    # untrained teacher does not pull the student towards its own noise
    distill_start: Literal["always", "teacher_ahead"] = "always"
    distill_ramp: int = 0
    student_seg_weight: float = 1.0
    # networks
    share_backbone: bool = False  # the teacher is the student's own CNN plus SCAM (the seed code), not a second CNN
    # label evolution: which networks' whole-image predictions update the pseudo-masks
    collaborative: bool = True  # False: the student alone; True: as ``combine`` says
    # teacher: the teacher alone (the seed code). mean / agreement (geometric mean) / weighted (by validation
    # point F1) of teacher and student: where one network is still near zero they halve (mean) or zero
    # (agreement) the other's p, which can stall label evolution.
    combine: Literal["teacher", "mean", "agreement", "weighted"] = "teacher"
    val_dense: bool = False  # dense validation masks for the outer loss (labelled extra supervision)

    def __post_init__(self) -> None:
        check_fields(self, {
            "n_clusters": (self.n_clusters >= 0, "must be >= 0 (0 = auto)"),
            "meta_every": (self.meta_every >= 1, "must be >= 1"),
            "meta_lr": (self.meta_lr > 0, "must be > 0"),
            "inner_lr": (self.inner_lr > 0, "must be > 0"),
            "weight_min": (0 <= self.weight_min <= 1, "must be in [0, 1] so that mean-1 weights exist"),
            "weight_max": (1 <= self.weight_max, "must be >= 1 so that mean-1 weights exist"),
            "meta_grad_clip": (self.meta_grad_clip >= 0, "must be >= 0 (0 = off)"),
            "distill_weight": (self.distill_weight >= 0, "must be >= 0"),
            "temperature": (self.temperature > 0, "must be > 0"),
            "distill_ramp": (self.distill_ramp >= 0, "must be >= 0 steps"),
            "student_seg_weight": (self.student_seg_weight >= 0, "must be >= 0"),
        })

    def clusters_for(self, n: int) -> int:
        """Number of clusters for ``n`` training images: ``n_clusters`` or :func:`auto_k`."""
        k = self.n_clusters or auto_k(n)
        if k > n:
            raise ConfigError(f"semprior.n_clusters ({k}) exceeds the number of training images ({n})")
        return k

