"""From probabilities to decisions: target lists, and the validation-chosen decision threshold.

A *target* is an 8-connected component of ``prob > threshold`` (the binarisation and connectivity of
:mod:`semprior_core.evaluation.metrics`, so a deployed detector counts targets exactly as evaluation does) with at
least ``min_area`` pixels. The threshold is chosen on the validation split only — by dense IoU when the
run selected checkpoints on dense validation masks, else by the point-only F1 of
:mod:`semprior_core.evaluation.selection` — never on the test split.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..io import DataError
from .metrics import binarize, components, evaluate
from .selection import point_scores

DEFAULT_GRID: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class PostprocessConfig:
    """Decision threshold (``prob > threshold``) and the smallest component kept as a target."""

    threshold: float = 0.5
    min_area: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and 0.0 <= self.threshold < 1.0):
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}")
        if not isinstance(self.min_area, int) or self.min_area < 1:
            raise ValueError(f"min_area must be an int >= 1, got {self.min_area!r}")


@dataclass(frozen=True)
class Target:
    """One detected target; pixel coordinates, bounding box half-open: rows [top, bottom), cols [left, right)."""

    id: int
    y: float
    x: float
    area: int
    top: int
    left: int
    bottom: int
    right: int
    peak: float

    def to_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


TARGET_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Target))


def extract_targets(prob: np.ndarray, cfg: PostprocessConfig = PostprocessConfig()) -> list[Target]:
    """Targets of an HxW probability map in raster order of their first pixel, numbered from 1."""
    prob = np.asarray(prob)
    if prob.ndim != 2:
        raise ValueError(f"prob must be 2-D (HxW), got shape {prob.shape}")
    labels, n, centroids, areas = components(binarize(prob, cfg.threshold))
    if n == 0:
        return []
    index = np.arange(1, n + 1)
    peaks = ndimage.maximum(prob, labels, index)
    boxes = ndimage.find_objects(labels, max_label=n)
    targets = []
    for k in np.flatnonzero(areas >= cfg.min_area):
        rows, cols = boxes[k]
        targets.append(Target(
            id=len(targets) + 1, y=float(centroids[k, 0]), x=float(centroids[k, 1]), area=int(areas[k]),
            top=rows.start, left=cols.start, bottom=rows.stop, right=cols.stop, peak=float(peaks[k]),
        ))
    return targets


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold, the validation score it reached and the score of every grid point."""

    threshold: float
    metric: str
    score: float
    scores: dict[float, float]
    split: str = "val"


def select_threshold(
    probs: Sequence[np.ndarray],
    *,
    masks: Sequence[np.ndarray] | None = None,
    points: Sequence[np.ndarray] | None = None,
    grid: Sequence[float] = DEFAULT_GRID,
    max_area: int = 400,
) -> ThresholdChoice:
    """Grid threshold maximising validation IoU (``masks``) or point F1 (``points``); give exactly one.

    Ties go to the threshold nearest 0.5 (the one training optimised for), then to the lower one, so a flat
    score curve keeps the usual decision rule. ``max_area`` is the point score's largest true component.
    """
    if (masks is None) == (points is None):
        raise ValueError("give exactly one of masks (dense validation) or points (point-only validation)")
    if len(probs) == 0:
        raise ValueError("no validation predictions to choose a threshold from")
    if len(grid) == 0 or any(not 0.0 <= t < 1.0 for t in grid):
        raise ValueError(f"grid must hold thresholds in [0, 1), got {list(grid)}")
    if masks is not None:
        metric = "iou"
        scores = {float(t): evaluate(probs, masks, threshold=float(t)).iou for t in grid}
    else:
        if not any(len(p) for p in points or ()):
            raise DataError("no validation image has a point: point-F1 cannot choose a threshold (give one)")
        metric = "point_f1"
        scores = {float(t): point_scores(probs, points, threshold=float(t), max_area=max_area)["point_f1"]
                  for t in grid}
    best = max(scores.values())
    threshold = min((t for t, s in scores.items() if s == best), key=lambda t: (abs(t - 0.5), t))
    return ThresholdChoice(threshold=threshold, metric=metric, score=best, scores=scores)
