"""Standard IRSTD metrics: IoU, nIoU, Pd and Fa (pure, vectorised NumPy).

Definitions (the protocol of DNANet, Li et al., "Dense Nested Attention Network for Infrared Small Target
Detection", IEEE TIP 2023, and BasicIRSTD; nIoU from Dai et al., "Asymmetric Contextual Modulation for
Infrared Small Target Detection", WACV 2021):

* **Binarisation.** A probability map is foreground where ``prob > threshold`` (strictly greater, default
  0.5). This equals ``logit > 0`` for a sigmoid output, the test BasicIRSTD applies. Boolean predictions are
  used as they are. Ground truth is foreground where it is non-zero (bool, 0/1 or 0/255 masks).
* **Targets.** 8-connected components (``scipy.ndimage.label`` with a 3x3 structure of ones). A component's
  centroid is the mean (y, x) coordinate of its pixels.
* **IoU** (dataset level): total intersection / total union, summed over all evaluated images.
  If the total union is empty (no target and no prediction anywhere) IoU is 1.
* **nIoU**: mean over images of the per-image IoU. An image whose union is empty (no target and no prediction)
  counts as IoU 1: nothing was there and nothing was predicted, which is a perfect answer.
* **Pd**: detected targets / ground-truth targets. A target is detected when a predicted component's centroid
  lies strictly closer than ``pd_distance`` (default 3 px, Euclidean) to the target's centroid. Matching is
  one-to-one and greedy by distance: all (target, prediction) pairs closer than ``pd_distance`` are taken in
  increasing distance (ties: lower target label, then lower prediction label) and a pair is kept when neither
  side is matched yet. (DNANet/BasicIRSTD instead give each target, in label order, the first unmatched
  prediction in label order that is close enough. Pd agrees whenever no prediction is within reach of two
  targets; Fa can still differ when a target has several predictions within reach, since which one is matched
  decides which area counts as false alarm.) Pd is NaN when the evaluated set holds no target at all.
* **Fa**: pixels of predicted components that matched no target / total pixels evaluated. ``Metrics.fa`` is
  this fraction; ``Metrics.as_row`` reports it x10^6, as papers do. (BasicIRSTD drops unmatched components
  whose *area* equals that of a matched one, because it compares areas by value; that quirk is not copied.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def _to_numpy(array: object) -> np.ndarray:
    """NumPy view of an array-like; torch tensors (any device) are detached and copied to host memory."""
    if hasattr(array, "detach"):  # duck-typed so this module does not import torch
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def binarize(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Foreground mask ``prob > threshold`` (strict, so exactly 0.5 is background); bool input is returned as is."""
    prob = _to_numpy(prob)
    if prob.dtype == bool:
        return prob
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    return prob > threshold


def components(mask: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """8-connected components of a binary mask.

    Returns ``(labels, n, centroids, areas)``: ``labels`` is an int32 HxW map (0 = background, components
    numbered 1..n in raster order of their first pixel), ``centroids`` an ``(n, 2)`` float64 array of mean
    (y, x) pixel coordinates and ``areas`` an ``(n,)`` int64 array of pixel counts.
    """
    mask = _to_numpy(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (HxW), got shape {mask.shape}")
    fg = mask != 0
    labels = np.zeros(fg.shape, dtype=np.int32)
    rows, cols = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))
    if rows.size == 0:
        return labels, 0, np.empty((0, 2), dtype=np.float64), np.empty(0, dtype=np.int64)
    # Labelling cost grows with the scanned area and small targets fill a tiny bounding box, so label only
    # that box; raster order inside it is the global raster order, so label numbers are unchanged.
    box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    labels[box], n = ndimage.label(fg[box], structure=_EIGHT_CONNECTED)
    # 1-D indices of foreground pixels and bincount: one pass, no per-component Python loop
    flat = np.flatnonzero(fg)
    ids = labels.ravel()[flat] - 1
    ys, xs = np.divmod(flat, fg.shape[1])
    areas = np.bincount(ids, minlength=n).astype(np.int64)
    centroids = np.stack(
        [np.bincount(ids, weights=ys, minlength=n), np.bincount(ids, weights=xs, minlength=n)], axis=1
    )
    return labels, int(n), centroids / areas[:, None], areas


def match_targets(
    gt_centroids: np.ndarray, pred_centroids: np.ndarray, max_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one greedy matching of targets to predicted components (the rule of the module docstring).

    Returns boolean arrays ``(matched_gt, matched_pred)`` of lengths ``n_targets`` and ``n_pred``: which
    targets were detected and which predicted components were matched (the rest are false alarms). Every
    metric that needs detected targets or false alarms uses this one function, so they all agree.
    """
    matched_gt = np.zeros(len(gt_centroids), dtype=bool)
    matched_pred = np.zeros(len(pred_centroids), dtype=bool)
    if len(gt_centroids) == 0 or len(pred_centroids) == 0:
        return matched_gt, matched_pred
    dist = np.linalg.norm(gt_centroids[:, None, :] - pred_centroids[None, :, :], axis=-1)
    # np.nonzero is row-major, so the stable sort breaks distance ties by (target, prediction) label
    gi, pi = np.nonzero(dist < max_distance)
    order = np.argsort(dist[gi, pi], kind="stable")
    # candidate pairs are few (targets are sparse), so this loop is short
    for g, p in zip(gi[order], pi[order], strict=True):
        if not (matched_gt[g] or matched_pred[p]):
            matched_gt[g] = matched_pred[p] = True
    return matched_gt, matched_pred


@dataclass(frozen=True)
class ImageStats:
    """Per-image counts; summing them (see ``summarize``) gives every dataset-level metric."""

    intersection: int
    union: int
    n_targets: int
    n_detected: int
    false_alarm_pixels: int
    n_pixels: int

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 0:
                raise ValueError(f"{field.name} must be >= 0, got {getattr(self, field.name)}")
        if self.n_pixels == 0:
            raise ValueError("n_pixels must be > 0 (an image has at least one pixel)")
        if self.intersection > self.union:
            raise ValueError(f"intersection ({self.intersection}) exceeds union ({self.union})")
        if self.n_detected > self.n_targets:
            raise ValueError(f"n_detected ({self.n_detected}) exceeds n_targets ({self.n_targets})")
        if max(self.union, self.false_alarm_pixels) > self.n_pixels:
            raise ValueError(f"pixel counts exceed n_pixels ({self.n_pixels}): {self}")

    @property
    def iou(self) -> float:
        """This image's IoU; 1.0 when the union is empty (no target, no prediction)."""
        return self.intersection / self.union if self.union else 1.0


def check_params(threshold: float, pd_distance: float) -> None:
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    if not pd_distance > 0:
        raise ValueError(f"pd_distance must be > 0, got {pd_distance}")


def image_stats(
    pred: np.ndarray, gt: np.ndarray, *, threshold: float = 0.5, pd_distance: float = 3.0
) -> ImageStats:
    """Counts for one image. ``pred``: HxW probabilities (or a bool mask); ``gt``: HxW bool, 0/1 or 0/255 mask."""
    pred, gt = _to_numpy(pred), _to_numpy(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred shape {pred.shape} does not match gt shape {gt.shape}")
    if pred.ndim != 2:
        raise ValueError(f"pred and gt must be 2-D (HxW), got shape {pred.shape}")
    check_params(threshold, pd_distance)
    pred_mask = binarize(pred, threshold)
    gt_mask = gt != 0
    _, n_targets, gt_centroids, _ = components(gt_mask)
    _, _, pred_centroids, pred_areas = components(pred_mask)
    _, matched = match_targets(gt_centroids, pred_centroids, pd_distance)
    return ImageStats(
        intersection=int(np.count_nonzero(pred_mask & gt_mask)),
        union=int(np.count_nonzero(pred_mask | gt_mask)),
        n_targets=n_targets,
        n_detected=int(np.count_nonzero(matched)),
        false_alarm_pixels=int(pred_areas[~matched].sum()),
        n_pixels=int(gt_mask.size),
    )


def per_image_iou(stats: Sequence[ImageStats]) -> np.ndarray:
    """Per-image IoU as a float64 array (1.0 where an image's union is empty)."""
    return np.array([s.iou for s in stats], dtype=np.float64)


@dataclass(frozen=True)
class Metrics:
    """Dataset-level metrics as fractions (``fa`` is a fraction of pixels, not x10^6)."""

    iou: float
    niou: float
    pd: float
    fa: float
    n_images: int

    def as_row(self) -> dict[str, float]:
        """Values in the units papers report: IoU, nIoU and Pd in %, Fa x10^6."""
        return {"IoU": 100 * self.iou, "nIoU": 100 * self.niou, "Pd": 100 * self.pd, "Fa": self.fa * 1e6}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def summarize(stats: Sequence[ImageStats]) -> Metrics:
    """Aggregate per-image counts into dataset-level metrics (definitions in the module docstring)."""
    if len(stats) == 0:
        raise ValueError("cannot summarize an empty sequence of ImageStats")
    totals = {f.name: sum(getattr(s, f.name) for s in stats) for f in dataclasses.fields(ImageStats)}
    return Metrics(
        iou=totals["intersection"] / totals["union"] if totals["union"] else 1.0,
        niou=float(per_image_iou(stats).mean()),
        pd=totals["n_detected"] / totals["n_targets"] if totals["n_targets"] else float("nan"),
        fa=totals["false_alarm_pixels"] / totals["n_pixels"],
        n_images=len(stats),
    )


class MetricAccumulator:
    """Collects ``ImageStats`` image by image (e.g. inside an evaluation loop); ``compute`` summarises them."""

    def __init__(self, *, threshold: float = 0.5, pd_distance: float = 3.0) -> None:
        check_params(threshold, pd_distance)  # fail at construction, not at the first image
        self.threshold = threshold
        self.pd_distance = pd_distance
        self.stats: list[ImageStats] = []

    def update(self, pred: np.ndarray, gt: np.ndarray) -> ImageStats:
        stats = image_stats(pred, gt, threshold=self.threshold, pd_distance=self.pd_distance)
        self.stats.append(stats)
        return stats

    def compute(self) -> Metrics:
        return summarize(self.stats)

    def reset(self) -> None:
        self.stats.clear()


def evaluate(preds: Iterable[np.ndarray], gts: Iterable[np.ndarray], **kw: float) -> Metrics:
    """Metrics over paired predictions and masks; ``kw`` (threshold, pd_distance) goes to ``image_stats``.

    The two iterables must have the same length (ValueError otherwise).
    """
    return summarize([image_stats(p, g, **kw) for p, g in zip(preds, gts, strict=True)])
