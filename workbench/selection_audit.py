"""The checkpoint-selection section of ``semprior report``: was the checkpoint a run kept a good one?

A point-supervised run can only select on its validation points (point-F1), which sees whether targets are
found, not the shape of their masks. Runs log the dense validation IoU at every validation as a diagnostic;
comparing it at the kept epoch and at the final epoch shows what the selection rule gained or cost. The
diagnostic never chooses a run's checkpoint: it informs the rule a protocol sets (``train.select``) and is
reported with that caveat.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from semprior_core.store.fields import is_number
from semprior_core.store.runs import Run, kept_record, scored_records
from workbench.inspect.compare import format_values


@dataclass(frozen=True)
class KeptVsFinal:
    """One network of one run: the validation IoU (dense masks) at the kept epoch and at the final one."""

    rule: str  # e.g. "best point_f1" or "last"
    kept_epoch: int
    kept_iou: float
    final_epoch: int
    final_iou: float

    @property
    def gain(self) -> float:
        """Final minus kept: what keeping the final epoch instead would have changed."""
        return self.final_iou - self.kept_iou


def kept_vs_final(history: list[dict], selection: dict, model: str) -> KeptVsFinal | None:
    """None when the run has no scored validation or did not log dense validation IoU for ``model``."""
    kept, scored = kept_record(history, selection), scored_records(history)
    key = f"val_{model}_iou"
    if kept is None or not all(_finite(r.get(key)) for r in (kept, scored[-1])):
        return None
    rule = "last" if selection.get("keep", "best") == "last" else f"best {selection.get('metric', '')}".strip()
    return KeptVsFinal(rule, int(kept["epoch"]), float(kept[key]), int(scored[-1]["epoch"]), float(scored[-1][key]))


def _finite(v) -> bool:
    return is_number(v) and math.isfinite(v)


def run_rows(run: Run, model: str) -> KeptVsFinal | None:
    return kept_vs_final(run.history(), run.info().get("selection", {}), model)


def section(entries) -> list[str]:
    """Markdown table: one row per trained cell, mean ± std over its seeds (validation split, ×100)."""
    lines = []
    for e in entries:
        if e.runs[0].info().get("kind") == "classical":
            continue
        found = [k for k in (run_rows(r, e.model) for r in e.runs) if k is not None]
        if not found:
            continue
        rules = ", ".join(sorted({k.rule for k in found}))
        lines.append(f"| {e.method} | {e.model} | {rules} | {', '.join(str(k.kept_epoch) for k in found)} | "
                     f"{format_values([100 * k.kept_iou for k in found])} | "
                     f"{format_values([100 * k.final_iou for k in found])} | "
                     f"{statistics.fmean(100 * k.gain for k in found):+.2f} |")
    if not lines:
        return []
    return ["Validation-split IoU against the dense masks (a diagnostic: point-supervised runs never select on "
            "it) at the epoch each run kept and at its final epoch, and their difference (final − kept, mean "
            "over seeds). A positive difference means the selection rule kept an epoch whose masks were worse "
            "than the final ones.", "",
            "| method | network | kept by | kept epochs | val IoU kept | val IoU final | final − kept |",
            "|---|---|---|---|---|---|---|", *lines]
