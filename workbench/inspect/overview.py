"""What a run reports: its metrics table (every row names its split) and its training curves."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from semprior_core.store.runs import kept_record

from .handle import RunHandle, open_run

VAL_SPLIT = "val (carved from train)"
METRIC_COLUMNS = ("IoU", "nIoU", "Pd", "Fa")  # IoU, nIoU, Pd in %, Fa ×1e-6 (papers' units)
POINT_F1 = "point F1"  # in %, like IoU, nIoU and Pd
TRAINING_TERMS = ("loss", "teacher_seg", "student_seg", "distill", "gate_l1")
VAL_METRICS = ("iou", "point_f1")  # validation scores plotted by default: dense IoU and the point-only F1


def metrics_table(run: str | Path | RunHandle) -> list[dict[str, Any]]:
    """Rows of IoU/nIoU/Pd/Fa per split, model and checkpoint, and the point-only F1 (``point F1``, in %
    like IoU, nIoU and Pd) the point-supervised runs select on.

    Saved evaluations (``semprior eval``) come first; then, per network, the validation scores of the
    epoch ``best.pt`` holds (dense validation metrics are diagnostics unless the run selects on
    them).
    """
    h = open_run(run)
    rows = []
    for ev in h.run.evaluations():
        rows.append({"split": ev["split"], "model": ev["model"], "checkpoint": ev["checkpoint"], "epoch": ev["epoch"],
                     **{c: ev["row"][c] for c in METRIC_COLUMNS}, POINT_F1: None})
    best = kept_record(h.run.history(), h.run.info().get("selection", {}))
    if best is not None:
        scale = {"IoU": 100, "nIoU": 100, "Pd": 100, "Fa": 1e6}
        for m in h.run.info().get("eval_models", ["student"]):
            vals = {c: _scaled(best.get(f"val_{m}_{c.lower()}"), scale[c]) for c in METRIC_COLUMNS}
            rows.append({"split": VAL_SPLIT, "model": m, "checkpoint": "best", "epoch": best["epoch"], **vals,
                         POINT_F1: _scaled(best.get(f"val_{m}_point_f1"), 100)})
    return rows


def _scaled(v: float | None, factor: float) -> float | None:
    return None if v is None or not math.isfinite(v) else v * factor


def curves(run: str | Path | RunHandle, validation: tuple[str, ...] = VAL_METRICS,
           percent: bool = False) -> list[dict[str, Any]]:
    """One entry per logged series: ``name``, ``group`` ("training" losses, or "validation" scores named
    in ``validation`` (e.g. iou, niou, pd, point_f1) of each network on the split carved from training
    data), ``epoch`` and ``value`` lists, and ``unit`` ("loss"; "fraction", or "%" with ``percent=True``,
    the unit of :func:`metrics_table`, for scores). A classical run is tuned, not trained: no series."""
    h = open_run(run)
    if h.run.kind == "classical":
        return []
    hist = h.run.history()
    names = [k for k in TRAINING_TERMS if any(k in r for r in hist)]
    wanted = tuple(f"_{m}" for m in validation)
    names += sorted({k for r in hist for k in r if k.startswith("val_") and k.endswith(wanted)})
    out = []
    for name in names:
        score = name.startswith("val_")
        factor = 100.0 if score and percent else 1.0
        pts = [(r["epoch"], factor * float(r[name])) for r in hist if name in r and r[name] is not None]
        out.append({"name": name, "group": "validation" if score else "training",
                    "unit": ("%" if percent else "fraction") if score else "loss",
                    "epoch": [p[0] for p in pts], "value": [p[1] for p in pts]})
    return out
