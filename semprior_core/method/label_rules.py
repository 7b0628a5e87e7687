"""The label rules of point supervision, one table entry each: how an image's label starts, when labels are
updated, how one update evolves a label, what the network trains on, and which set-aside images an update
promotes.

Every entry composes the pure functions of :mod:`semprior_core.labels`; :class:`~.supervision.Supervision`
holds the labels and applies the entry that ``labels.rule`` names. A new rule is one entry here (and its name
in :data:`semprior_core.labels.config.RULES`, which validates configs without importing this package).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..labels import (
    LabelConfig,
    lesps_started,
    lesps_update,
    pal_easy_init,
    pal_lose_ratio,
    pal_phase,
    pal_promote,
    pal_update,
    point_mask,
    should_update,
)

if TYPE_CHECKING:
    from ..data.dataset import ImageBank

Promote = Callable[[np.ndarray, np.ndarray], "np.ndarray | None"]  # (prob, points) -> new label, or None


def _as_is(label: np.ndarray, cfg: LabelConfig) -> np.ndarray:
    return label


def _promotes_nothing(epoch: int, epochs: int, cfg: LabelConfig) -> Promote | None:
    return None


@dataclass(frozen=True)
class LabelRule:
    """One label rule.

    ``init(bank, i, points, cfg) -> (label, trains)``: image ``i``'s first label (float32) and whether it trains
    from the start. ``schedule(epoch, epochs, mean_loss, started, cfg) -> (update, started)``: whether labels are
    updated before ``epoch`` (0-based, see :mod:`semprior_core.labels.schedule`), given the mean training loss
    of the epoch just finished, and the rule's sticky ``started`` flag after this call. ``evolve(label, prob,
    points, cfg)``: one update of one training image's label from its whole-image prediction (None for a rule
    whose schedule never updates). ``target(label, cfg)``: what the network trains on. ``promotion(epoch, epochs,
    cfg)``: a test that gives a set-aside image its label and a place in training, or None when the update
    before ``epoch`` promotes nothing.
    """

    init: Callable[[ImageBank, int, np.ndarray, LabelConfig], tuple[np.ndarray, bool]]
    schedule: Callable[[int, int, float, bool, LabelConfig], tuple[bool, bool]]
    evolve: Callable[[np.ndarray, np.ndarray, np.ndarray, LabelConfig], np.ndarray] | None = None
    target: Callable[[np.ndarray, LabelConfig], np.ndarray] = _as_is
    promotion: Callable[[int, int, LabelConfig], Promote | None] = _promotes_nothing


def _configured_init(bank: ImageBank, i: int, points: np.ndarray, cfg: LabelConfig) -> tuple[np.ndarray, bool]:
    """``labels.init``: the points as (2·point_radius+1)² squares, or PAL's easy-sample masks; every image
    trains from the start."""
    if cfg.init == "pal_easy":
        mask, _, _ = pal_easy_init(bank.image(i), points, cfg.pal)
        return mask.astype(np.float32), True
    return point_mask(bank.shape(i), points, cfg.point_radius), True


def _pal_init(bank: ImageBank, i: int, points: np.ndarray, cfg: LabelConfig) -> tuple[np.ndarray, bool]:
    """PAL starts from its easy-sample masks and trains on the easy images only, until others are promoted."""
    mask, easy, _ = pal_easy_init(bank.image(i), points, cfg.pal)
    return mask.astype(np.float32), easy


def _never(epoch: int, epochs: int, mean_loss: float, started: bool, cfg: LabelConfig) -> tuple[bool, bool]:
    return False, started


def _lesps_schedule(epoch: int, epochs: int, mean_loss: float, started: bool, cfg: LabelConfig) -> tuple[bool, bool]:
    """LESPS updates the moment its start condition first holds, then every ``update_every`` epochs."""
    starts = not started and lesps_started(epoch, mean_loss if math.isfinite(mean_loss) else math.inf, cfg,
                                           epochs=epochs)
    started = started or starts
    return starts or should_update(epoch, epochs, cfg, started), started


def _pal_schedule(epoch: int, epochs: int, mean_loss: float, started: bool, cfg: LabelConfig) -> tuple[bool, bool]:
    """PAL's schedule is fixed by the epoch budget (its phases), whatever the loss."""
    return should_update(epoch, epochs, cfg, started), started


def _pal_target(label: np.ndarray, cfg: LabelConfig) -> np.ndarray:
    """PAL keeps soft labels but trains on them binarised at 0.5 (``pal.binarize_labels``)."""
    return (label > 0.5).astype(np.float32) if cfg.pal.binarize_labels else label


def _pal_promotion(epoch: int, epochs: int, cfg: LabelConfig) -> Promote | None:
    """In PAL's enhancement phase a set-aside image joins training when its prediction misses few enough of its
    points (a ratio that grows over the phase) with few enough false alarms; it then trains on that prediction."""
    if pal_phase(epoch, epochs, cfg.pal) != "enhance":
        return None
    lose = pal_lose_ratio(epoch, epochs, cfg.pal)

    def promote(prob: np.ndarray, points: np.ndarray) -> np.ndarray | None:
        accept, mask = pal_promote(prob, points, lose, cfg.pal.alarm_ratio)
        return mask.astype(np.float32) if accept else None

    return promote


LABEL_RULES: dict[str, LabelRule] = {
    "fixed": LabelRule(init=_configured_init, schedule=_never),
    "lesps": LabelRule(init=_configured_init, schedule=_lesps_schedule,
                       evolve=lambda label, prob, points, cfg: lesps_update(label, prob, points, cfg.lesps)),
    "pal": LabelRule(init=_pal_init, schedule=_pal_schedule,
                     evolve=lambda label, prob, points, cfg: pal_update(label, prob, points, cfg.pal),
                     target=_pal_target, promotion=_pal_promotion),
}
