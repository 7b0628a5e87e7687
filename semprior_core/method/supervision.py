"""What supervises the training images and how it evolves: dense masks, fixed points,
or pseudo-masks grown by LESPS or PAL from a network's predictions.

The engine asks for ``target(i)`` when it builds a crop and calls ``after_epoch`` with
a prediction function; the rules themselves are the pure functions of
:mod:`semprior_core.labels`. Dense masks of training images are read here only when
supervision is ``full``, or as logged diagnostics (IoU of pseudo-masks vs GT).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import distributed as dist
from ..config import RunConfig
from ..data.dataset import ImageBank
from ..data.points import PointSet
from ..label_history import truncate_after, write_update
from ..labels import (
    check_update,
    lesps_started,
    lesps_update,
    mask_stats,
    pal_easy_init,
    pal_lose_ratio,
    pal_phase,
    pal_promote,
    pal_update,
    point_mask,
    should_update,
)
from ..metrics import components

Predict = Callable[[list[int]], list[np.ndarray]]  # indices -> whole-image probabilities


class Supervision:
    def __init__(self, cfg: RunConfig, bank: ImageBank, points: dict[str, PointSet] | None, history_dir: Path | None):
        self.cfg, self.bank, self.history_dir = cfg.labels, bank, history_dir
        self.full = cfg.method.supervision == "full"
        self.rule = "full" if self.full else cfg.labels.rule
        self.points: list[np.ndarray] = []
        if points is not None:
            self.points = [
                points[ref.folder.name].check_against(ref.sid, bank.shape(i)) for i, ref in enumerate(bank.refs)
            ]
        self.labels: list[np.ndarray] = []
        self._mask_centroids: dict[int, np.ndarray] = {}
        self.pool = np.ones(len(bank), dtype=bool)
        self.started = False
        if not self.full:
            self._init_labels()

    def record_initial(self) -> None:
        """Write the initial labels as update 0; a new run only (a resumed one has them, and a refused
        resume must not write)."""
        self._record(0, Counter())

    # -- state ---------------------------------------------------------------------------
    def _init_labels(self) -> None:
        if self.cfg.init == "pal_easy" or self.rule == "pal":
            for i in range(len(self.bank)):
                mask, easy, _ = pal_easy_init(self.bank.image(i), self.points[i], self.cfg.pal)
                self.labels.append(mask.astype(np.float32))
                # Outside PAL's schedule every image trains from the start.
                self.pool[i] = easy or self.rule != "pal"
        else:
            self.labels = [
                point_mask(self.bank.shape(i), self.points[i], self.cfg.point_radius) for i in range(len(self.bank))
            ]

    def state_dict(self) -> dict[str, Any]:
        if self.full:
            return {}
        return {
            "labels": [torch.from_numpy(lab) for lab in self.labels],
            "pool": torch.from_numpy(self.pool.copy()),
            "started": self.started,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.full:
            return
        self.labels = [t.numpy().copy() for t in state["labels"]]
        self.pool = state["pool"].numpy().copy()
        self.started = bool(state["started"])

    def truncate_history(self, epoch: int) -> None:
        if self.history_dir is not None:
            truncate_after(self.history_dir, epoch)

    # -- what the engine reads -----------------------------------------------------------
    def target(self, i: int) -> np.ndarray:
        if self.full:
            return self.bank.mask(i).astype(np.float32)
        lab = self.labels[i]
        if self.rule == "pal" and self.cfg.pal.binarize_labels:
            return (lab > 0.5).astype(np.float32)
        return lab

    def points_of(self, i: int) -> np.ndarray:
        return self.points[i]

    def crop_centres(self, i: int) -> np.ndarray:
        """(N, 2) points that training crops are centred on: the annotated points under point supervision
        (never the dense masks), the centroids of the mask's components under full supervision."""
        if not self.full:
            return self.points[i]
        if i not in self._mask_centroids:
            self._mask_centroids[i] = components(self.bank.mask(i) > 0.5)[2]
        return self._mask_centroids[i]

    def active(self) -> list[int]:
        return np.flatnonzero(self.pool).tolist()

    # -- evolution -----------------------------------------------------------------------
    def after_epoch(self, epoch: int, epochs: int, mean_loss: float, predict: Predict) -> dict[str, Any]:
        """Evolve labels after training epoch ``epoch`` (0-based), i.e. before epoch ``epoch + 1``."""
        nxt = epoch + 1
        if self.full or self.rule == "fixed" or nxt >= epochs:
            return {}
        update = False
        if self.rule == "lesps":
            if not self.started and lesps_started(nxt, mean_loss if math.isfinite(mean_loss) else math.inf, self.cfg, epochs=epochs):
                self.started, update = True, True  # LESPS also updates the moment it starts
            update = update or should_update(nxt, epochs, self.cfg, self.started)
        else:
            update = should_update(nxt, epochs, self.cfg, self.started)
        if not update:
            return {}
        events: Counter = Counter()
        if dist.rank() == 0:
            events = self._update(nxt, epochs, predict)
        self.labels, self.pool, self.started = dist.broadcast_object((self.labels, self.pool, self.started))
        self._record(nxt, events)
        return {"label_update": 1, "pool": int(self.pool.sum())} | {f"guard_{k}": v for k, v in events.items()}

    def _update(self, nxt: int, epochs: int, predict: Predict) -> Counter:
        events: Counter = Counter()
        pool = self.active()
        probs = dict(zip(pool, predict(pool)))
        for i, prob in probs.items():
            rule = lesps_update if self.rule == "lesps" else pal_update
            sub = self.cfg.lesps if self.rule == "lesps" else self.cfg.pal
            new = rule(self.labels[i], prob, self.points[i], sub)
            res = check_update(self.labels[i], new, self.points[i], self.cfg.guard)
            events.update(res.events)
            self.labels[i] = res.label.astype(np.float32)
        if self.rule == "pal" and pal_phase(nxt, epochs, self.cfg.pal) == "enhance":
            hard = np.flatnonzero(~self.pool).tolist()
            lose = pal_lose_ratio(nxt, epochs, self.cfg.pal)
            for i, prob in zip(hard, predict(hard) if hard else []):
                accept, mask = pal_promote(prob, self.points[i], lose, self.cfg.pal.alarm_ratio)
                if accept:
                    self.labels[i], self.pool[i] = mask.astype(np.float32), True
                    events["promoted"] += 1
        return events

    def _record(self, epoch: int, events: Counter) -> None:
        if self.history_dir is None or self.full:
            return
        images = []
        for i in range(len(self.bank)):
            gt = self.bank.mask(i) if self.bank.has_mask(i) else None  # diagnostic only
            images.append(mask_stats(self.labels[i], gt) | {"n_points": len(self.points[i]), "in_pool": bool(self.pool[i])})
        summary = {"epoch": epoch, "rule": self.rule, "images": images, "events": dict(events),
                   "pool_size": int(self.pool.sum())}
        write_update(self.history_dir, epoch, self.bank.keys(), self.labels, summary)
