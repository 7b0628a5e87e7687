"""What a run's config implies beyond its fields: which validation score selects ``best.pt``, whether the run
trains a teacher, and which networks read frozen VFM features.

Training, evaluation, export, inspection and the protocols all ask these questions; this module is the one
place that answers them, so that they cannot drift apart. Pure functions of a :class:`RunConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .config import RunConfig


@dataclass
class Selection:
    """Which validation score a run logs as ``select_score``, and which epoch ``best.pt`` holds: the one with the
    highest score (``keep="best"``) or the final one (``keep="last"``, no selection)."""

    metric: str
    uses_dense_val_masks: bool  # whether dense validation masks chose best.pt
    keep: Literal["best", "last"] = "best"


def selection_for(cfg: RunConfig) -> Selection:
    """``train.select``, with ``auto`` resolved: dense validation masks for full supervision, the point-only F1
    otherwise (a point-supervised run never selects on dense masks unless told to). ``last`` logs the score
    ``auto`` would select on but keeps the final epoch: point-F1 sees whether targets are found, not the
    masks' shape, and picked point-supervised checkpoints before their masks matured (docs/training.md)."""
    mode = cfg.train.select
    keep = "last" if mode == "last" else "best"
    if mode in ("auto", "last"):
        mode = "val_dense" if cfg.method.supervision == "full" else "val_points"
    dense = mode == "val_dense"
    return Selection(metric="iou" if dense else "point_f1", uses_dense_val_masks=dense and keep == "best", keep=keep)


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
