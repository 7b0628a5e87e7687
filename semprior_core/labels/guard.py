"""Label health: a collapse guard for label updates and summary statistics for label histories.

Self-training on pseudo-labels can run away (a region leaks into bright background) or erase a target;
neither LESPS nor PAL checks for it. Both checks here threshold labels at 0.5, as PAL binarises them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from semprior_core.labels.config import GuardConfig
from semprior_core.labels.lesps import EIGHT_CONNECTED
from semprior_core.labels.points_to_masks import as_points


@dataclass(frozen=True)
class GuardResult:
    """The label to keep and the events the update raised (empty when it was accepted as is)."""

    label: np.ndarray
    events: list[str]


def _region_sizes(binary: np.ndarray) -> np.ndarray:
    regions, count = ndimage.label(binary, structure=EIGHT_CONNECTED)
    return np.bincount(regions.ravel(), minlength=count + 1)[1:]


def check_update(old: np.ndarray, new: np.ndarray, points: np.ndarray, cfg: GuardConfig) -> GuardResult:
    """Check one image's label update.

    Events: ``"grew_past_bound"`` if a connected region of ``new > 0.5`` has more than ``cfg.max_area`` pixels;
    ``"erased_target"`` if an annotated point is below 0.5 in ``new`` (its region vanished). With
    ``cfg.freeze_on_violation`` any event makes the result keep ``old``.
    """
    old = np.asarray(old, dtype=np.float32)
    new = np.asarray(new, dtype=np.float32)
    if old.ndim != 2 or old.shape != new.shape:
        raise ValueError(f"old and new must be HxW labels of one shape, got {old.shape} and {new.shape}")
    pts = as_points(points, new.shape)
    events = []
    if (_region_sizes(new > 0.5) > cfg.max_area).any():
        events.append("grew_past_bound")
    if (new[pts[:, 0], pts[:, 1]] < 0.5).any():
        events.append("erased_target")
    keep = old if events and cfg.freeze_on_violation else new
    return GuardResult(label=keep, events=events)


def mask_stats(label: np.ndarray, gt: np.ndarray | None = None) -> dict[str, float | int | None]:
    """Area and 8-connected component count of ``label ≥ 0.5``, and IoU against a dense mask if given.

    ≥ 0.5 as LESPS reports its evolved labels: with ½ blending a pixel predicted at p = 1 reaches exactly 0.5
    after one update. The IoU is diagnostic only (point supervision never sees dense masks); it is None for an
    image whose mask and label are both empty, so target-free images do not count as perfect labels.
    """
    pred = np.asarray(label) >= 0.5
    iou = None
    if gt is not None:
        target = np.asarray(gt) > 0.5
        if target.shape != pred.shape:
            raise ValueError(f"gt shape {target.shape} differs from label shape {pred.shape}")
        union = int((pred | target).sum())
        iou = float((pred & target).sum() / union) if union else None
    return {"area": int(pred.sum()), "n_components": len(_region_sizes(pred)), "iou_vs_gt": iou}
