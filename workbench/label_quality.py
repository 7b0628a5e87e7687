"""The pseudo-mask section of ``semprior report``: how good each point-supervised method's training labels
became, and how late, from the label updates its runs saved.

IoU against the dense training masks is a diagnostic the runs never train or select on. It separates the two
reasons a point-supervised student trails full supervision: labels that stay poor, or labels that become good
only near the end of the budget, leaving few steps to learn from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.inspect.compare import format_values

MATURE_FRACTION = 0.9  # "mature": the first update with 90 % of the run's gain in pseudo-mask IoU


@dataclass(frozen=True)
class Maturity:
    """One run's label trajectory: first and last IoU vs the dense masks (a diagnostic), last area, maturity."""

    initial_iou: float
    final_iou: float
    final_area: float  # mean pseudo-mask area in pixels at the last update
    mature_epoch: int | None  # None when the labels never improved on the points
    last_epoch: int


def maturity(rows: list[dict]) -> Maturity | None:
    """Summary of a :meth:`LabelHistory.table`; None when no update was scored against dense masks."""
    scored = [r for r in rows if r["mean_iou_vs_gt"] is not None]
    if not scored:
        return None
    first, last = scored[0], scored[-1]
    gain = last["mean_iou_vs_gt"] - first["mean_iou_vs_gt"]
    mature = None
    if gain > 0:
        bar = first["mean_iou_vs_gt"] + MATURE_FRACTION * gain
        mature = next(r["epoch"] for r in scored if r["mean_iou_vs_gt"] >= bar)
    return Maturity(first["mean_iou_vs_gt"], last["mean_iou_vs_gt"], last["mean_area"], mature, last["epoch"])


def section(entries) -> list[str]:
    """Markdown table: one row per point-supervised method (its student cells' runs), mean ± std over seeds."""
    lines = []
    for e in entries:
        if e.model != "student" or e.method == "full supervision" or e.runs[0].info().get("kind") == "classical":
            continue
        found = [m for m in (maturity(r.labels().table()) for r in e.runs) if m is not None]
        if not found:
            continue
        epochs = ", ".join("–" if m.mature_epoch is None else f"{m.mature_epoch}/{m.last_epoch}" for m in found)
        lines.append(f"| {e.method} | {len(found)} | {format_values([100 * m.initial_iou for m in found])} | "
                     f"{format_values([100 * m.final_iou for m in found])} | "
                     f"{format_values([m.final_area for m in found])} | {epochs} |")
    if not lines:
        return []
    return ["Training-split pseudo-masks of each point-supervised run: mean IoU against the dense masks "
            "(a diagnostic; never used for training or selection) at the first and last label update, and the "
            f"epoch of the first update with {MATURE_FRACTION:.0%} of the run's gain (of the last update's epoch).",
            "", "| method | seeds | IoU of the point labels | IoU at the last update | mean area (px) | "
                "mature at epoch |", "|---|---|---|---|---|---|", *lines]
