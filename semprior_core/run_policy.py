"""What a run's config implies beyond its fields: which validation score selects ``best.pt``, whether the run
trains a teacher, and which networks read frozen VFM features.

Training, evaluation, export, inspection and the protocols all ask these questions; this module is the one
place that answers them, so that they cannot drift apart. Pure functions of a :class:`RunConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import RunConfig


@dataclass
class Selection:
    """Which validation score picks ``best.pt`` and whether it used dense masks."""

    metric: str
    uses_dense_val_masks: bool


def selection_for(cfg: RunConfig) -> Selection:
    """``train.select``, with ``auto`` resolved: dense validation masks for full supervision, the point-only F1
    otherwise (a point-supervised run never selects on dense masks unless told to)."""
    mode = cfg.train.select
    if mode == "auto":
        mode = "val_dense" if cfg.method.supervision == "full" else "val_points"
    return Selection(metric="iou" if mode == "val_dense" else "point_f1", uses_dense_val_masks=mode == "val_dense")


def uses_teacher(cfg: RunConfig) -> bool:
    """Whether the run trains a teacher: the semprior method, or supervised training of ``method.model=teacher``."""
    return cfg.method.name == "semprior" or cfg.method.model == "teacher"


def reads_vfm(cfg: RunConfig, which: str) -> bool:
    """Whether network ``which`` of a run with ``cfg`` reads VFM features: the teacher, when there is a VFM
    and SCAM is on (otherwise it is the bare backbone behind the teacher interface); never the student."""
    return which == "teacher" and cfg.vfm.name != "none" and cfg.scam.enabled


def uses_vfm(cfg: RunConfig) -> bool:
    """Whether the run reads VFM features at all: it trains a teacher that reads them."""
    return uses_teacher(cfg) and reads_vfm(cfg, "teacher")
