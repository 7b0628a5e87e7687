"""Label evolution: the pseudo-mask of a training image at each label update, and label quality over updates.

Dense masks appear here only as diagnostics (the GT contour, IoU vs GT); point supervision never used them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .handle import RunHandle, open_run
from .imaging import outline_segments, window_around

LABEL_SPLIT = "train"  # label updates are recorded for training images
ZOOM = 24  # side (pixels) of the close-up around a target: small targets are a few pixels in a whole frame


def label_updates(run: str | Path | RunHandle) -> list[dict[str, int]]:
    """One entry per recorded update: ``update`` (0 = initial labels) and the ``epoch`` it was made before."""
    hist = open_run(run).run.labels()
    return [{"update": n, "epoch": e} for n, e in enumerate(hist.epochs)]


def update_caption(update: int, updates: int, epoch: int) -> str:
    """How every view names a label update, e.g. "update 2/6 · after 14 training epochs"; update 0 is the
    initial labels made from the points (the slider runs from 0 to ``updates - 1``)."""
    when = "initial point labels" if update == 0 else f"after {epoch} training epoch{'' if epoch == 1 else 's'}"
    return f"update {update}/{updates - 1} · {when}"


def label_change(run: str | Path | RunHandle) -> dict[str, float]:
    """Per training image key: Σ |last − first| of its pseudo-mask over pixels, from the first to the last
    update (soft labels change long before their area at 0.5 does). Empty without label history."""
    hist = open_run(run).run.labels()
    if not len(hist):
        return {}
    first, last = hist.update(0), hist.update(len(hist) - 1)
    return {k: float(np.abs(last.label(i) - first.label(i)).sum()) for i, k in enumerate(first.keys)}


def most_changed_image(run: str | Path | RunHandle) -> str | None:
    """Key of the training image whose pseudo-mask changed most (:func:`label_change`; the first such image on
    ties): the one to open a replay on. None without label history."""
    change = label_change(run)
    return max(change, key=change.get) if change else None


def label_frame(run: str | Path | RunHandle, image: int | str, update: int = -1,
                predictions: bool = True) -> dict[str, Any]:
    """What the label-evolution view shows for training image ``image`` (index or key) at ``update``.

    Keys: ``key``, ``index``, ``update`` (non-negative), ``updates`` (how many), ``epoch`` (training epochs
    before the update), ``caption`` (:func:`update_caption`), ``image`` (H, W), ``pseudo_mask`` (H, W) in
    [0, 1], ``points`` (N, 2) (y, x), ``gt_outline`` (:func:`~.imaging.outline_segments` of the dense mask)
    or None, ``zoom`` (row and column slices of a close-up around the first point, else the centre),
    ``iou_vs_gt`` and ``area`` from the update's summary, ``predictions`` {network: probability map} of the
    run's checkpoint (``checkpoint`` names it; empty before the first checkpoint or with ``predictions=False``).
    """
    h = open_run(run)
    hist = h.run.labels()
    if not len(hist):
        raise ValueError(f"{h.name}: no label history (full supervision, or training has not started)")
    if not -len(hist) <= update < len(hist):
        raise IndexError(f"{h.name}: update {update} out of range; the run has {len(hist)} updates")
    n = update % len(hist)
    upd = hist.update(n)
    index = h.index(LABEL_SPLIT, image)
    bank = h.bank(LABEL_SPLIT)
    key = bank.keys()[index]
    if upd.keys != bank.keys():
        raise ValueError(f"{h.name}: update {n} was recorded for other training images than the run's split")
    stats = upd.summary["images"][index]
    points = h.points(LABEL_SPLIT, index)
    shape = bank.shape(index)
    centre = (int(points[0][0]), int(points[0][1])) if len(points) else (shape[0] // 2, shape[1] // 2)
    preds = {}
    if predictions and h.loaded() is not None:
        preds = {w: h.predict(w, LABEL_SPLIT, index) for w in h.networks()}
    return {
        "key": key, "index": index, "update": n, "updates": len(hist), "epoch": upd.epoch,
        "caption": update_caption(n, len(hist), upd.epoch),
        "image": bank.image(index), "pseudo_mask": upd.label(index), "points": points,
        "gt_outline": outline_segments(bank.mask(index)) if bank.has_mask(index) else None,
        "zoom": window_around(centre, shape, ZOOM),
        "iou_vs_gt": stats.get("iou_vs_gt"), "area": stats.get("area"),
        "predictions": preds, "checkpoint": h.checkpoint_label(),
    }


def label_quality(run: str | Path | RunHandle) -> list[dict[str, Any]]:
    """One row per update: mean IoU vs GT (diagnostic), mean area, growth, guard events, pool size."""
    return open_run(run).run.labels().table()


def image_label_history(run: str | Path | RunHandle, image: int | str) -> list[dict[str, Any]]:
    """One row per update for one training image: ``update``, ``epoch``, ``area``, ``components``, ``iou_vs_gt``."""
    h = open_run(run)
    hist = h.run.labels()
    index = h.index(LABEL_SPLIT, image)
    rows = []
    for n in range(len(hist)):
        upd = hist.update(n)
        s = upd.summary["images"][index]
        rows.append({"update": n, "epoch": upd.epoch, "area": s.get("area"), "components": s.get("n_components"),
                     "iou_vs_gt": s.get("iou_vs_gt")})
    return rows


def label_images(run: str | Path | RunHandle) -> list[str]:
    """Keys of the training images whose labels evolve, in index order."""
    return open_run(run).keys(LABEL_SPLIT)

