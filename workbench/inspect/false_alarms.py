"""A run's false alarms on a chosen dataset folder, largest first (data for a dashboard view or notebook).

A false alarm is a predicted component (probability > the run's threshold, or a classical run's mask) that
matches no target under the rule of :mod:`semprior_core.evaluation.metrics`; see
:func:`semprior_core.evaluation.detection_curves.false_alarm_objects`. The folder is a dataset folder
(``images/``, ``masks/``; all-zero masks are target-free frames). A folder of frames known to hold no target
may lack ``masks/`` when ``assume_target_free`` says so: every detection there is then a false alarm.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from semprior_core.data.folder import DatasetFolder
from semprior_core.evaluation.cross_eval import chunks, open_predictor, split_refs, trained_on_datasets
from semprior_core.evaluation.detection_curves import false_alarm_objects
from semprior_core.io import DataError

from .handle import RunHandle, open_run
from .imaging import box_outline

COLUMNS = ("frame", "area", "y", "x", "top", "left", "bottom", "right", "peak")


def false_alarms(
    run_dir: str | Path, folder: str | Path, *, split: str = "test", which: str | None = None,
    checkpoint: str = "best", device: str = "cpu", threshold: float = 0.5, limit: int | None = None,
    assume_target_free: bool = False,
) -> list[dict]:
    """One row per false-alarm object of the run on ``folder``'s ``split`` (``test`` or ``all``), largest first
    (equal areas: frame key, then the object's raster order). Row keys: :data:`COLUMNS` (``frame`` is the
    sample key ``<dataset>/<id>``; box rows ``[top, bottom)``, columns ``[left, right)``; ``peak`` the highest
    probability inside). ``limit`` keeps the first rows."""
    data = DatasetFolder.open(folder)
    if not data.has_masks() and not assume_target_free:
        raise DataError(f"{data.root}: no masks/ folder, so false alarms cannot be told from targets; "
                        "pass assume_target_free=True for frames known to hold no target")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    pred = open_predictor(run_dir, which, checkpoint, device, threshold)
    refs = split_refs(pred, data, split)
    rows = []
    for bank in chunks(refs):
        for j, prob in enumerate(pred.predict(bank)):
            mask = bank.mask(j) if data.has_masks() else np.zeros(bank.shape(j), dtype=bool)
            for fa in false_alarm_objects(prob, mask, threshold=threshold):
                rows.append({"frame": bank.keys()[j], **asdict(fa)})
    rows.sort(key=lambda r: -r["area"])  # stable: equal areas stay in frame order, then raster order
    return rows if limit is None else rows[:limit]


def false_alarm_patch(folder: str | Path, row: dict, size: int = 48) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The image around one row of :func:`false_alarms`: a ``size``² window centred on the object's centroid
    (cut at the image border, so it may be smaller) and the object's box ``(top, left, bottom, right)`` in the
    window's coordinates, for a gallery of false alarms."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    image = DatasetFolder.open(folder).load_image(row["frame"].split("/", 1)[1])
    h, w = image.shape
    top = min(max(int(round(row["y"])) - size // 2, 0), max(h - size, 0))
    left = min(max(int(round(row["x"])) - size // 2, 0), max(w - size, 0))
    patch = image[top:top + size, left:left + size]
    return patch, (row["top"] - top, row["left"] - left, row["bottom"] - top, row["right"] - left)


def false_alarm_folders(run: str | Path | RunHandle, extra: list[str | Path] = ()) -> dict[str, list[str]]:
    """Folders a run's false alarms can be listed on, each with its splits: the run's own training datasets
    with ``test`` only (``all`` would score its training images), then ``extra`` folders with ``test`` and
    ``all`` (a folder listed twice keeps its first entry)."""
    cfg = open_run(run).cfg
    out = {t["root"]: ["test"] for t in trained_on_datasets(cfg.data.datasets, cfg.data)}
    for folder in extra:
        out.setdefault(str(folder), ["test", "all"])
    return out


def false_alarm_table(rows: list[dict]) -> list[dict]:
    """Rows of :func:`false_alarms` as a view shows them: image, size, peak probability, centroid, box."""
    return [{"image": r["frame"], "size (px)": r["area"], "peak probability": r["peak"],
             "centroid (y, x)": f"({r['y']:.1f}, {r['x']:.1f})",
             "box rows, columns": f"[{r['top']}, {r['bottom']}), [{r['left']}, {r['right']})"} for r in rows]


def false_alarm_gallery(folder: str | Path, rows: list[dict], size: int = 48) -> list[dict]:
    """Close-ups of ``rows`` (:func:`false_alarms`): ``frame``, ``area``, ``peak``, the ``image`` window of
    :func:`false_alarm_patch` and the ``outline`` (M, 2) pixels of a box drawn just outside the object."""
    out = []
    for r in rows:
        patch, box = false_alarm_patch(folder, r, size)
        out.append({"frame": r["frame"], "area": r["area"], "peak": r["peak"], "image": patch,
                    "outline": box_outline(box, patch.shape)})
    return out
