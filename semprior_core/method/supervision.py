"""What supervises the training images and how it evolves: dense masks, fixed points,
or pseudo-masks grown by LESPS or PAL from a network's predictions.

The engine asks for ``target(i)`` when it builds a crop and calls ``after_epoch`` with
a prediction function; what each rule does is its entry in :data:`.label_rules.LABEL_RULES`,
built from the pure functions of :mod:`semprior_core.labels`. Dense masks of training
images are read here only when supervision is ``full``, or as logged diagnostics (IoU of
pseudo-masks vs GT).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ..config import RunConfig
from ..data.dataset import ImageBank
from ..data.points import PointSet
from ..data.transforms import Geometry, points_window
from ..evaluation.metrics import components
from ..labels import check_update, mask_stats
from ..runtime import distributed as dist
from ..store.label_history import truncate_after, write_update
from .label_rules import LABEL_RULES


class Predict(Protocol):
    """Image indices -> their whole-image probabilities; ``windows`` limits images to a part (0 elsewhere)."""

    def __call__(self, indices: list[int], windows: Mapping[int, Geometry] | None = None) -> list[np.ndarray]: ...


class Supervision:
    """The targets of one bank's images under a run's supervision, and their evolution by its label rule."""

    def __init__(self, cfg: RunConfig, bank: ImageBank, points: dict[str, PointSet] | None, history_dir: Path | None):
        self.cfg, self.bank, self.history_dir = cfg.labels, bank, history_dir
        self.full = cfg.method.supervision == "full"
        self.rule = "full" if self.full else cfg.labels.rule
        self._label_rule = None if self.full else LABEL_RULES[self.rule]
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
        for i in range(len(self.bank)):
            label, self.pool[i] = self._label_rule.init(self.bank, i, self.points[i], self.cfg)
            self.labels.append(label)

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
        return self._label_rule.target(self.labels[i], self.cfg)

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
        if self.full or nxt >= epochs:
            return {}
        update, self.started = self._label_rule.schedule(nxt, epochs, mean_loss, self.started, self.cfg)
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
        probs = dict(zip(pool, predict(pool, self._windows(pool))))
        for i, prob in probs.items():
            new = self._label_rule.evolve(self.labels[i], prob, self.points[i], self.cfg)
            res = check_update(self.labels[i], new, self.points[i], self.cfg.guard)
            events.update(res.events)
            self.labels[i] = res.label.astype(np.float32)
        promote = self._label_rule.promotion(nxt, epochs, self.cfg)
        if promote is not None:
            hard = np.flatnonzero(~self.pool).tolist()
            for i, prob in zip(hard, predict(hard) if hard else []):
                label = promote(prob, self.points[i])
                if label is not None:
                    self.labels[i], self.pool[i] = label, True
                    events["promoted"] += 1
        return events

    def _windows(self, indices: list[int]) -> dict[int, Geometry] | None:
        """The parts of images an update predicts when ``labels.predict_margin`` > 0 (else whole images)."""
        if not self.cfg.predict_margin:
            return None
        windows = {i: points_window(self.bank.shape(i), self.points[i], self.cfg.predict_margin) for i in indices}
        return {i: g for i, g in windows.items() if g is not None}

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
