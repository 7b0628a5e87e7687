"""Detection metrics beyond IoU, nIoU, Pd and Fa: Pd–Fa curves, size and contrast bins, false-alarm objects.

Pure NumPy, no file I/O. Targets, binarisation and the one-to-one target matching are those of
:mod:`semprior_core.evaluation.metrics` (``components`` and ``match_targets``), so at the same threshold every count here
equals what :func:`semprior_core.evaluation.metrics.image_stats` counts.

* **Pd–Fa curve** (the ROC plot of IRSTD papers, e.g. Dai et al., WACV 2021): Pd and Fa (false-alarm pixels /
  pixels, as ``Metrics.fa``) at each threshold of a grid, plus false-alarm *objects* (unmatched predicted
  components) per frame. A frame's counts per threshold are a :class:`CurveCounts`; counts add up over frames
  and seeds, and rates are taken from the sums. A boolean prediction (a classical detector's mask) ignores
  the threshold, so its "curve" is one operating point repeated.
* **Area under the Pd–Fa curve** up to a stated Fa: see :func:`auc_pd_fa`.
* **Pd per target-size bin** (component area in px: 1–9, 10–36, 37–100, > 100) and **per local-contrast bin**
  (:func:`target_contrast`: local signal-to-clutter ratio), see :func:`pd_by_bin`.
* **False-alarm objects per frame**, over all frames, frames with a target, and target-free frames (those
  whose mask is all zero) separately: :func:`false_alarms_per_frame`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .metrics import _to_numpy, binarize, check_params, components, match_targets

# 0.05 … 0.95 in steps of 0.05, then two high thresholds that reach the low-Fa end of the curve.
CURVE_THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20)) + (0.98, 0.99)
DEFAULT_MAX_FA = 1e-4  # area under the Pd–Fa curve up to Fa = 100 × 10⁻⁶
# (label, low, high): a value v falls in the bin when low <= v < high.
SIZE_BINS: tuple[tuple[str, float, float], ...] = (
    ("1–9 px", 1, 10), ("10–36 px", 10, 37), ("37–100 px", 37, 101), ("> 100 px", 101, math.inf))
CONTRAST_BINS: tuple[tuple[str, float, float], ...] = (
    ("SCR < 2", 0, 2), ("SCR 2–5", 2, 5), ("SCR 5–10", 5, 10), ("SCR ≥ 10", 10, math.inf))
_EIGHT = np.ones((3, 3), dtype=bool)


# -- matching one frame at one threshold --------------------------------------------------------------
@dataclass(frozen=True)
class Matched:
    """Targets and predicted components of one frame at one threshold, and which of them were matched."""

    gt_labels: np.ndarray
    gt_areas: np.ndarray
    detected: np.ndarray  # (n_targets,) bool, in target label order
    pred_labels: np.ndarray
    pred_centroids: np.ndarray
    pred_areas: np.ndarray
    matched_pred: np.ndarray  # (n_pred,) bool; False = a false-alarm object

    @property
    def false_alarm_areas(self) -> np.ndarray:
        return self.pred_areas[~self.matched_pred]


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _to_numpy(pred), _to_numpy(gt)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"pred and gt must be 2-D arrays of one shape, got {pred.shape} and {gt.shape}")
    return pred, gt != 0


def _gt_components(gt_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels, _, centroids, areas = components(gt_mask)
    return labels, centroids, areas


def _match_at(pred: np.ndarray, gt_parts: tuple, threshold: float, pd_distance: float) -> Matched:
    gt_labels, gt_centroids, gt_areas = gt_parts
    pred_labels, _, pred_centroids, pred_areas = components(binarize(pred, threshold))
    detected, matched_pred = match_targets(gt_centroids, pred_centroids, pd_distance)
    return Matched(gt_labels, gt_areas, detected, pred_labels, pred_centroids, pred_areas, matched_pred)


def match_frame(pred: np.ndarray, gt: np.ndarray, *, threshold: float = 0.5, pd_distance: float = 3.0) -> Matched:
    """Targets of ``gt`` and components of ``pred > threshold``, matched as :mod:`~semprior_core.evaluation.metrics` does."""
    check_params(threshold, pd_distance)
    pred, gt_mask = _check_pair(pred, gt)
    return _match_at(pred, _gt_components(gt_mask), threshold, pd_distance)


# -- curve counts -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CurveCounts:
    """Counts per threshold, summable over frames (and seeds): the raw material of a Pd–Fa curve."""

    thresholds: tuple[float, ...]
    n_frames: int
    n_targets: int
    n_pixels: int
    n_detected: tuple[int, ...]
    fa_pixels: tuple[int, ...]
    fa_objects: tuple[int, ...]

    def __post_init__(self) -> None:
        n = len(self.thresholds)
        if not all(len(v) == n for v in (self.n_detected, self.fa_pixels, self.fa_objects)):
            raise ValueError("n_detected, fa_pixels and fa_objects need one entry per threshold")
        if any(d > self.n_targets for d in self.n_detected):
            raise ValueError(f"n_detected {self.n_detected} exceeds n_targets {self.n_targets}")

    def __add__(self, other: CurveCounts) -> CurveCounts:
        if tuple(other.thresholds) != tuple(self.thresholds):
            raise ValueError("cannot add curve counts taken at different thresholds")
        return CurveCounts(
            self.thresholds, self.n_frames + other.n_frames, self.n_targets + other.n_targets,
            self.n_pixels + other.n_pixels,
            *(tuple(a + b for a, b in zip(x, y, strict=True)) for x, y in (
                (self.n_detected, other.n_detected), (self.fa_pixels, other.fa_pixels),
                (self.fa_objects, other.fa_objects))),
        )

    @classmethod
    def empty(cls, thresholds: Sequence[float] = CURVE_THRESHOLDS) -> CurveCounts:
        zeros = (0,) * len(thresholds)
        return cls(tuple(float(t) for t in thresholds), 0, 0, 0, zeros, zeros, zeros)

    def pd(self) -> np.ndarray:
        """Detected / targets per threshold (NaN when there is no target)."""
        if self.n_targets == 0:
            return np.full(len(self.thresholds), np.nan)
        return np.asarray(self.n_detected, dtype=np.float64) / self.n_targets

    def fa(self) -> np.ndarray:
        """False-alarm pixels / pixels per threshold (a fraction, as ``Metrics.fa``; NaN without frames)."""
        if self.n_pixels == 0:
            return np.full(len(self.thresholds), np.nan)
        return np.asarray(self.fa_pixels, dtype=np.float64) / self.n_pixels

    def fa_per_frame(self) -> np.ndarray:
        """False-alarm objects / frames per threshold (NaN without frames)."""
        if self.n_frames == 0:
            return np.full(len(self.thresholds), np.nan)
        return np.asarray(self.fa_objects, dtype=np.float64) / self.n_frames

    def to_dict(self) -> dict:
        return {"thresholds": list(self.thresholds), "n_frames": self.n_frames, "n_targets": self.n_targets,
                "n_pixels": self.n_pixels, "n_detected": list(self.n_detected), "fa_pixels": list(self.fa_pixels),
                "fa_objects": list(self.fa_objects)}

    @classmethod
    def from_dict(cls, d: dict) -> CurveCounts:
        return cls(tuple(float(t) for t in d["thresholds"]), int(d["n_frames"]), int(d["n_targets"]),
                   int(d["n_pixels"]), *(tuple(int(v) for v in d[k]) for k in ("n_detected", "fa_pixels", "fa_objects")))


def frame_curve(
    pred: np.ndarray, gt: np.ndarray, *, thresholds: Sequence[float] = CURVE_THRESHOLDS, pd_distance: float = 3.0
) -> CurveCounts:
    """One frame's counts at every threshold (targets labelled once; predictions binarised per threshold)."""
    for t in thresholds:
        check_params(t, pd_distance)
    pred, gt_mask = _check_pair(pred, gt)
    gt_parts = _gt_components(gt_mask)
    if pred.dtype == bool:  # a mask ignores the threshold: match it once, the same point at every threshold
        found = [_match_at(pred, gt_parts, 0.5, pd_distance)] * len(thresholds)
    else:
        found = [_match_at(pred, gt_parts, t, pd_distance) for t in thresholds]
    return CurveCounts(
        tuple(float(t) for t in thresholds), 1, len(gt_parts[2]), int(gt_mask.size),
        tuple(int(m.detected.sum()) for m in found), tuple(int(m.false_alarm_areas.sum()) for m in found),
        tuple(int((~m.matched_pred).sum()) for m in found),
    )


def sum_counts(counts: Sequence[CurveCounts], thresholds: Sequence[float] = CURVE_THRESHOLDS) -> CurveCounts:
    """Sum of ``counts`` (empty counts at ``thresholds`` when there are none)."""
    total = CurveCounts.empty(counts[0].thresholds if counts else thresholds)
    for c in counts:
        total = total + c
    return total


# -- reading a curve ----------------------------------------------------------------------------------
def auc_pd_fa(fa: Sequence[float], pd: Sequence[float], max_fa: float = DEFAULT_MAX_FA) -> float:
    """Normalised area under Pd(Fa) from Fa = 0 to ``max_fa``: ``(1 / max_fa) · ∫₀^max_fa Pd dFa``.

    ``fa`` (false-alarm pixel fraction, the unit of ``Metrics.fa``; ``max_fa`` in the same unit, default 1e-4
    = 100 × 10⁻⁶) and ``pd`` (fraction) are the curve's points in any order. The curve is anchored at
    (0, 0) (a threshold above every probability predicts nothing), the points are joined by straight lines
    in order of Fa (trapezoids), cut at ``max_fa`` by linear interpolation, and, when the lowest threshold's Fa
    stays below ``max_fa``, held at that point's Pd up to ``max_fa``. The result is in [0, 1]: 1 means every
    target found without a false-alarm pixel. NaN when Pd is undefined (no target).
    """
    fa, pd = np.asarray(fa, dtype=np.float64), np.asarray(pd, dtype=np.float64)
    if fa.shape != pd.shape or fa.ndim != 1:
        raise ValueError(f"fa and pd must be 1-D arrays of one length, got {fa.shape} and {pd.shape}")
    if not max_fa > 0:
        raise ValueError(f"max_fa must be > 0, got {max_fa}")
    if np.isnan(pd).any() or np.isnan(fa).any():
        return float("nan")
    order = np.lexsort((pd, fa))  # by Fa, equal Fa by Pd: a vertical rise adds no area
    x = np.concatenate([[0.0], fa[order]])
    y = np.concatenate([[0.0], pd[order]])
    keep = x <= max_fa
    xs, ys = list(x[keep]), list(y[keep])
    if keep.all():
        xs.append(max_fa)
        ys.append(ys[-1])
    else:  # the first point past max_fa: interpolate on the segment that crosses it
        j = int(np.argmax(~keep))
        frac = (max_fa - x[j - 1]) / (x[j] - x[j - 1])
        xs.append(max_fa)
        ys.append(y[j - 1] + frac * (y[j] - y[j - 1]))
    xs_a, ys_a = np.asarray(xs), np.asarray(ys)
    return float(np.sum(np.diff(xs_a) * (ys_a[1:] + ys_a[:-1]) / 2) / max_fa)


def value_at_pd(thresholds: Sequence[float], pd: Sequence[float], values: Sequence[float], target_pd: float) -> float:
    """``values`` (e.g. false-alarm objects per frame) where the curve first reaches Pd = ``target_pd``.

    Walking from the highest threshold down, from the anchor (Pd 0, value 0) of a threshold that predicts
    nothing, the first point with Pd ≥ ``target_pd`` is found and the value interpolated linearly in Pd
    between it and the point before. NaN when no threshold reaches ``target_pd`` (or Pd is undefined).
    So two detectors can be compared "at equal Pd".
    """
    t, p, v = (np.asarray(a, dtype=np.float64) for a in (thresholds, pd, values))
    if not (t.shape == p.shape == v.shape) or t.ndim != 1:
        raise ValueError("thresholds, pd and values must be 1-D arrays of one length")
    order = np.argsort(-t, kind="stable")
    p = np.concatenate([[0.0], p[order]])
    v = np.concatenate([[0.0], v[order]])
    if np.isnan(p).any():
        return float("nan")
    reached = np.flatnonzero(p >= target_pd)
    if reached.size == 0:
        return float("nan")
    j = int(reached[0])
    if j == 0:
        return float(v[0])
    frac = (target_pd - p[j - 1]) / (p[j] - p[j - 1])
    return float(v[j - 1] + frac * (v[j] - v[j - 1]))


# -- breakdowns ----------------------------------------------------------------------------------------
def target_contrast(image: np.ndarray, gt: np.ndarray, *, margin: int = 10, sigma_floor: float = 1 / 255) -> np.ndarray:
    """Local signal-to-clutter ratio of each target of ``gt`` (in target label order), as a float array.

    ``SCR = |μ_t − μ_b| / max(σ_b, sigma_floor)`` (the SCR of Gao et al., "Infrared Patch-Image Model for Small
    Target Detection in a Single Image", IEEE TIP 2013): ``μ_t`` is the mean of ``image`` over the target's
    pixels; ``μ_b`` and ``σ_b`` (population std) are taken over the local background: the target's bounding
    box grown by ``margin`` px on every side (clipped to the image), without any target pixel or its 8
    neighbours (a blurred target's rim is not clutter). ``sigma_floor`` (one grey level of an 8-bit image in
    [0, 1] units) keeps a flat background finite. NaN for a target with no background pixel in reach.
    """
    image, gt = _to_numpy(image).astype(np.float64), _to_numpy(gt) != 0
    if image.shape != gt.shape or image.ndim != 2:
        raise ValueError(f"image and gt must be 2-D arrays of one shape, got {image.shape} and {gt.shape}")
    if margin < 1:
        raise ValueError(f"margin must be >= 1, got {margin}")
    labels, n, _, _ = components(gt)
    background = ~ndimage.binary_dilation(gt, _EIGHT)
    out = np.full(n, np.nan)
    for k, box in enumerate(ndimage.find_objects(labels)):
        rows = slice(max(box[0].start - margin, 0), box[0].stop + margin)
        cols = slice(max(box[1].start - margin, 0), box[1].stop + margin)
        ring = image[rows, cols][background[rows, cols]]
        if ring.size:
            mu_t = image[labels == k + 1].mean()
            out[k] = abs(mu_t - ring.mean()) / max(ring.std(), sigma_floor)
    return out


@dataclass(frozen=True)
class BinCount:
    label: str
    low: float
    high: float
    n_targets: int
    n_detected: int

    @property
    def pd(self) -> float:
        return self.n_detected / self.n_targets if self.n_targets else float("nan")

    def to_dict(self) -> dict:
        return {"label": self.label, "low": self.low, "high": self.high if math.isfinite(self.high) else None,
                "n_targets": self.n_targets, "n_detected": self.n_detected}


def pd_by_bin(values: Sequence[float], detected: Sequence[bool], bins: Sequence[tuple[str, float, float]]) -> list[BinCount]:
    """Targets and detected targets per bin of ``values`` (a target falls in ``(label, low, high)`` when
    ``low <= value < high``; NaN values fall in none)."""
    v = np.asarray(values, dtype=np.float64)
    d = np.asarray(detected, dtype=bool)
    if v.shape != d.shape:
        raise ValueError(f"values and detected differ in length: {v.shape} vs {d.shape}")
    out = []
    for label, low, high in bins:
        inside = (v >= low) & (v < high)
        out.append(BinCount(label, float(low), float(high), int(inside.sum()), int((inside & d).sum())))
    return out


@dataclass(frozen=True)
class FalseAlarmRate:
    n_frames: int
    n_objects: int

    @property
    def per_frame(self) -> float:
        return self.n_objects / self.n_frames if self.n_frames else float("nan")

    def to_dict(self) -> dict:
        return {"n_frames": self.n_frames, "n_objects": self.n_objects, "per_frame": self.per_frame}


def false_alarms_per_frame(fa_objects: Sequence[int], n_targets: Sequence[int]) -> dict[str, FalseAlarmRate]:
    """False-alarm objects per frame over ``all`` frames, frames ``with_targets`` and ``target_free`` frames
    (a frame is target-free when its mask has no target)."""
    fa, nt = np.asarray(fa_objects, dtype=np.int64), np.asarray(n_targets, dtype=np.int64)
    if fa.shape != nt.shape:
        raise ValueError(f"fa_objects and n_targets differ in length: {fa.shape} vs {nt.shape}")
    free = nt == 0
    return {name: FalseAlarmRate(int(sel.sum()), int(fa[sel].sum()))
            for name, sel in (("all", np.ones_like(free)), ("with_targets", ~free), ("target_free", free))}


# -- everything about one frame ------------------------------------------------------------------------
@dataclass(frozen=True)
class FrameRecord:
    """One frame at the run's threshold (targets found, false-alarm objects) and its curve counts."""

    target_areas: tuple[int, ...]
    target_contrast: tuple[float, ...]
    detected: tuple[bool, ...]
    false_alarm_areas: tuple[int, ...]
    curve: CurveCounts

    @property
    def n_targets(self) -> int:
        return len(self.target_areas)

    def to_dict(self) -> dict:
        return {"target_areas": list(self.target_areas),
                "target_contrast": [None if math.isnan(c) else c for c in self.target_contrast],
                "detected": list(self.detected), "false_alarm_areas": list(self.false_alarm_areas)}


def frame_record(
    pred: np.ndarray, gt: np.ndarray, image: np.ndarray, *, threshold: float = 0.5,
    thresholds: Sequence[float] = CURVE_THRESHOLDS, pd_distance: float = 3.0, margin: int = 10,
) -> FrameRecord:
    """Everything the breakdowns need from one frame: at ``threshold``, each target's area, local contrast
    (:func:`target_contrast` with ``margin``) and whether it was detected, and each false-alarm object's area;
    and the frame's :class:`CurveCounts` over ``thresholds``."""
    m = match_frame(pred, gt, threshold=threshold, pd_distance=pd_distance)
    return FrameRecord(
        tuple(int(a) for a in m.gt_areas), tuple(float(c) for c in target_contrast(image, gt, margin=margin)),
        tuple(bool(d) for d in m.detected), tuple(int(a) for a in m.false_alarm_areas),
        frame_curve(pred, gt, thresholds=thresholds, pd_distance=pd_distance),
    )


@dataclass(frozen=True)
class FalseAlarm:
    """One false-alarm object: its area, centroid (y, x), box rows [top, bottom) and columns [left, right), peak."""

    area: int
    y: float
    x: float
    top: int
    left: int
    bottom: int
    right: int
    peak: float


def false_alarm_objects(
    pred: np.ndarray, gt: np.ndarray, *, threshold: float = 0.5, pd_distance: float = 3.0
) -> list[FalseAlarm]:
    """The predicted components matched to no target, largest first (ties: raster order of the component).

    ``peak`` is the highest value of ``pred`` inside the object (1.0 for a boolean mask).
    """
    m = match_frame(pred, gt, threshold=threshold, pd_distance=pd_distance)
    values = _to_numpy(pred).astype(np.float64)
    boxes = ndimage.find_objects(m.pred_labels)
    out = []
    for k in np.flatnonzero(~m.matched_pred):
        box = boxes[k]
        inside = m.pred_labels[box] == k + 1
        out.append(FalseAlarm(int(m.pred_areas[k]), float(m.pred_centroids[k, 0]), float(m.pred_centroids[k, 1]),
                              box[0].start, box[1].start, box[0].stop, box[1].stop, float(values[box][inside].max())))
    return sorted(out, key=lambda f: -f.area)  # stable: equal areas keep raster order
