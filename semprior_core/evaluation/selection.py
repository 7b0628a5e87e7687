"""Point-only validation scores, for selecting checkpoints without any dense mask.

A point-supervised run that picked its checkpoint by IoU against dense validation
masks would use extra supervision; these scores need only the validation points.
A point is *hit* when it lies inside a predicted component or a predicted
component's centroid is closer than ``distance`` pixels; a predicted component is
*true* when it is hit by some point and is no larger than ``max_area`` pixels — a
blob bigger than any small target (e.g. "everything is target") is a false alarm,
so degenerate predictions cannot score well. Scores are pooled over all images (micro).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .metrics import binarize, components


def point_hits(
    prob: np.ndarray, points: np.ndarray, threshold: float = 0.5, distance: float = 3.0, max_area: int = 400
) -> tuple[int, int, int]:
    """(points hit, predicted components, true predicted components) for one image."""
    labels, n, centroids, areas = components(binarize(prob, threshold))
    pts = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    if n == 0 or len(pts) == 0:
        return 0, n, 0
    inside = labels[pts[:, 0], pts[:, 1]]  # component id under each point (0 = none)
    d = np.linalg.norm(pts[:, None, :].astype(np.float64) - centroids[None, :, :], axis=2)
    near = d < distance
    near[np.arange(len(pts))[inside > 0], inside[inside > 0] - 1] = True
    return int(near.any(axis=1).sum()), n, int((near.any(axis=0) & (areas <= max_area)).sum())


def point_scores(
    probs: Sequence[np.ndarray], points: Sequence[np.ndarray], threshold: float = 0.5, distance: float = 3.0,
    max_area: int = 400,
) -> dict[str, float]:
    """Point recall, component precision and their F1 over a set of images; all NaN without any point."""
    hit = comps = comps_hit = total = 0
    for prob, pts in zip(probs, points, strict=True):
        h, c, ch = point_hits(prob, pts, threshold, distance, max_area)
        hit, comps, comps_hit, total = hit + h, comps + c, comps_hit + ch, total + len(pts)
    if total == 0:
        # Without a point nothing is known about these images: NaN, so no checkpoint or threshold is
        # chosen on them (NaN compares false with every score).
        return {"point_recall": math.nan, "point_precision": math.nan, "point_f1": math.nan}
    recall = hit / total
    precision = comps_hit / comps if comps else 0.0
    f1 = 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0
    return {"point_recall": recall, "point_precision": precision, "point_f1": f1}
