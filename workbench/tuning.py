"""Equal tuning budgets, scored on validation only: the candidates of a tuning protocol, their scores, the winners.

Each point-supervised method gets the same number of candidate configurations (a protocol's
``candidates``), trained on one dataset and seed, and scored on the validation split carved from training
data (``select_score``: point-F1 for point supervision). Test metrics are never read here, so the winners
cannot have been chosen on the test split. The score is that of the checkpoint the protocol keeps: a run
that keeps its best epoch is ranked by its best score, a tie (point-F1 on a small validation split
saturates: NUAA-SIRST's has 21 images) going to the higher mean of its last ``LATE`` validation scores, the
steadier run; a run that keeps its final epoch (``train.select=last``) is ranked by that late mean (the
final model's score, averaged over validations at a learning rate near zero), a tie going to the best score.
Remaining ties go to the candidate listed first (a protocol lists each method's incumbent first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from semprior_core.config.tree import apply_overrides
from semprior_core.io import DataError, atomic_write_text
from semprior_core.run_policy import selection_for
from semprior_core.store.run_dir import RunDir
from semprior_core.store.runs import Run, kept_record, scored_records

from .reproduce import Protocol, plan

LATE = 5  # validations averaged: the score of a final checkpoint, the tie-break of a best one


@dataclass(frozen=True)
class Candidate:
    """One tuning run and where it stands."""

    method: str
    name: str
    overrides: tuple[str, ...]
    run_dir: Path
    status: str  # finished | partial | missing | damaged
    metric: str = ""  # the validation score, e.g. point_f1
    score: float | None = None  # its best validation value
    epoch: int | None = None  # the epoch it was reached at
    epochs: int = 0  # the epochs trained so far
    late_mean: float | None = None  # mean of the last LATE validation scores
    keep: str = "best"  # the checkpoint the protocol keeps (train.select): best or last

    def rank(self) -> tuple[float, float]:
        """What decides between candidates, highest first (see the module docstring)."""
        ranked = (self.late_mean, self.score) if self.keep == "last" else (self.score, self.late_mean)
        return tuple(-math.inf if v is None else v for v in ranked)


def _candidate(method: str, name: str, overrides: list[str], run_dir: Path, planned_epochs: int,
               keep: str) -> Candidate:
    base = Candidate(method, name, tuple(overrides), run_dir, "missing", keep=keep)
    if not RunDir(run_dir).config.is_file():
        return base
    try:
        run = Run.open(run_dir)
        history, info = run.history(), run.info()
    except (DataError, ValueError):
        return Candidate(method, name, tuple(overrides), run_dir, "damaged", keep=keep)
    best = kept_record(history, {"keep": "best"})
    epochs = int(history[-1]["epoch"]) if history else 0
    late = [float(r["select_score"]) for r in scored_records(history)][-LATE:]
    return Candidate(
        method, name, tuple(overrides), run_dir,
        "finished" if epochs >= planned_epochs else "partial",
        info.get("selection", {}).get("metric", ""),
        None if best is None else float(best["select_score"]),
        None if best is None else int(best["epoch"]),
        epochs,
        sum(late) / len(late) if late else None,
        keep,
    )  # fmt: skip


def candidates(protocol: Protocol, out: Path, root_dir: Path) -> list[Candidate]:
    """Every candidate of ``protocol`` (first dataset, first seed), in the protocol's order."""
    seed, dataset = protocol.seeds[0], next(iter(protocol.datasets))
    rows = []
    for job, base in plan(protocol, out, root_dir):
        method = job.run_dir.parts[-3]
        if job.seed != seed or job.run_dir.parts[-4] != dataset or method not in protocol.candidates:
            continue
        extra = protocol.candidates[method][job.variant]
        # the rule of the protocol as it stands, not the run.json of a run trained under an earlier one
        keep = selection_for(apply_overrides(base, list(job.overrides))).keep
        rows.append(_candidate(method, job.variant, extra, job.run_dir, base.train.epochs, keep))
    order = {(m, c): (i, j) for i, (m, cands) in enumerate(protocol.candidates.items()) for j, c in enumerate(cands)}
    return sorted(rows, key=lambda r: order[(r.method, r.name)])


def winners(rows: list[Candidate]) -> dict[str, Candidate]:
    """Per method, the finished candidate that ranks highest (:meth:`Candidate.rank`), ties to the first listed."""
    best: dict[str, Candidate] = {}
    for row in rows:
        if row.status != "finished" or row.score is None:
            continue
        if row.method not in best or row.rank() > best[row.method].rank():
            best[row.method] = row
    return best


def _rule(rows: list[Candidate]) -> str:
    """What decided, in words, for the rules the candidates' protocol keeps checkpoints by."""
    said = {
        "best": f"Runs that keep their best epoch rank by the best validation score; a tie goes to the higher mean "
                f"of the last {LATE} validation scores.",
        "last": f"Runs that keep their final epoch (`train.select=last`) rank by the mean of their last {LATE} "
                "validation scores (the final model's, damped over validations); a tie goes to the best score.",
    }
    return " ".join(said[k] for k in sorted({r.keep for r in rows})) + " Then the candidate listed first wins."


def tuning_markdown(protocol: Protocol, rows: list[Candidate], chosen: dict[str, Candidate], command: str) -> str:
    """``docs/tuning.md``: every configuration tried per method with its validation score."""
    lines = [
        f"# Tuning (protocol `{protocol.name}`)", "",
        f"Written by `{command}`. Each method had the same budget of {max(len(c) for c in protocol.candidates.values())} "
        f"configurations at most, trained on `{next(iter(protocol.datasets))}` with seed {protocol.seeds[0]} and the "
        "main protocol's step budget. Scores are on the validation split (carved from the training data); the "
        "test split was not read. **Bold**: the winner, which the main protocol uses. " + _rule(rows), "",
    ]  # fmt: skip
    for method in protocol.candidates:
        lines += [f"## {method}", "", f"| candidate | overrides | status | validation score | at epoch | mean of last {LATE} |",
                  "|---|---|---|---|---|---|"]
        for r in (r for r in rows if r.method == method):
            win = chosen.get(method) is r
            score = "–" if r.score is None else f"{r.metric} {r.score:.3f}"
            name = f"**{r.name}**" if win else r.name
            over = ", ".join(f"`{o}`" for o in r.overrides) or "(method default)"
            status = r.status if r.status != "partial" else f"partial ({r.epochs} epochs)"
            late = "–" if r.late_mean is None else f"{r.late_mean:.3f}"
            lines.append(f"| {name} | {over} | {status} | {score} | {'–' if r.epoch is None else r.epoch} | {late} |")
        if method not in chosen:
            lines += ["", "No candidate has finished yet: the main protocol cannot use a winner for this method."]
        lines.append("")
    return "\n".join(lines)


def write_tuning(protocol: Protocol, rows: list[Candidate], root_dir: Path, markdown_path: Path, command: str) -> dict:
    """Write the winners file the main protocol reads (``protocol.tuned``) and the markdown table."""
    chosen = winners(rows)
    # a method without a finished candidate is written as null, so the main protocol refuses to run it untuned
    tuned = {m: None if (r := chosen.get(m)) is None else {
        "candidate": r.name, "overrides": list(r.overrides), "metric": r.metric, "validation_score": r.rank()[0],
        "scored_by": "mean of the last validations" if r.keep == "last" else "best validation",
        "run": str(r.run_dir)} for m in protocol.candidates}  # fmt: skip
    header = f"# Written by `{command}` (workbench/tuning.py): each method's validation-selected candidate.\n"
    if protocol.tuned:
        atomic_write_text(root_dir / protocol.tuned, header + yaml.safe_dump(tuned, sort_keys=False))
    atomic_write_text(markdown_path, tuning_markdown(protocol, rows, chosen, command) + "\n")
    return tuned
