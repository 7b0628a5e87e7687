"""Readers of a run directory: what notebooks, the dashboard and reports build on.

A run directory (written by :mod:`semprior_core.engine`) holds ``config.yaml``,
``run.json`` (selection rule, normalisation, evaluated networks), ``metrics.jsonl``
(one record per epoch), ``splits/``, ``labels/update_*.npz`` (:class:`LabelHistory`),
``clusters/{assignment.json,weights.jsonl}`` (:class:`ClusterHistory`), ``eval/*.json``
and the checkpoints ``best.pt`` / ``last.pt``.

Every reader checks the fields its callers use and raises :class:`DataError` naming the
file and the field, so a damaged run is one clear error, not a traceback far away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import config_from_dict
from ..config.tree import load_yaml, naming_file
from ..io import DataError, read_json, read_jsonl, read_text
from .fields import COUNT, STRING, Check, check_fields, is_int, is_names, is_number, numbers, short
from .label_history import LabelHistory
from .run_dir import RunDir

__all__ = ["ClusterHistory", "LabelHistory", "Run", "kept_record", "find_runs"]


def _image_stats(v: Any) -> bool:
    return isinstance(v, dict) and isinstance(v.get("key"), str) and all(
        is_number(v.get(k)) for k in ("intersection", "union"))


INFO_FIELDS: dict[str, Check] = {
    "kind": (lambda v: v in ("trained", "classical"), "'trained' or 'classical'"),
    "method": STRING,
    "supervision": STRING,
    "eval_models": (is_names, "a non-empty list of network names"),
    "selection": (lambda v: isinstance(v, dict) and isinstance(v.get("metric"), str), 'an object with a "metric"'),
}
EVAL_FIELDS: dict[str, Check] = {
    "split": (lambda v: v in ("train", "val", "test"), "train, val or test"),
    "model": STRING,
    "checkpoint": STRING,
    "epoch": COUNT,
    "row": (lambda v: isinstance(v, dict) and all(is_number(v.get(m)) for m in ("IoU", "nIoU", "Pd", "Fa")),
            "an object with numbers IoU, nIoU, Pd and Fa"),
    "per_image": (lambda v: isinstance(v, list) and all(_image_stats(p) for p in v),
                  "a list of objects with key, intersection and union"),
}
ASSIGNMENT_FIELDS: dict[str, Check] = {
    "k": COUNT,
    "ids": (lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v), "a list of image keys"),
    "labels": (lambda v: isinstance(v, list) and all(is_int(c) for c in v), "a list of cluster numbers"),
}
ENV_FIELDS: dict[str, Check] = {"git_commit": (lambda v: v is None or isinstance(v, str), "a string or null")}
WEIGHTS_FIELDS: dict[str, Check] = {"step": COUNT} | {
    k: (numbers, "a list of numbers") for k in ("weights", "sizes", "mean_loss", "samples")}


def _check_record(where: str, record: dict[str, Any]) -> dict[str, Any]:
    """An epoch record: a non-negative integer ``epoch``; every logged value a number (or null)."""
    check_fields(where, record, {"epoch": COUNT})
    bad = next((k for k, v in record.items() if v is not None and not is_number(v)), None)
    if bad is not None:
        raise DataError(f"{where}: field {bad!r} must be a number, got {short(record[bad])}")
    return record


def scored_records(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The validation records with a finite ``select_score``, in order. NaN marks a validation that could not
    score (e.g. no validation point)."""
    return [r for r in history if is_number(r.get("select_score")) and math.isfinite(r["select_score"])]


def kept_record(history: list[dict[str, Any]], selection: dict[str, Any]) -> dict[str, Any] | None:
    """The validation record of the epoch ``best.pt`` holds, for a run's ``selection`` (run.json): the highest
    finite ``select_score`` or, with ``keep="last"``, the final scored record; None when none scored. Runs
    written before ``keep`` existed kept the best."""
    scored = scored_records(history)
    if not scored:
        return None
    return scored[-1] if selection.get("keep", "best") == "last" else max(scored, key=lambda r: r["select_score"])


class ClusterHistory:
    """Cluster assignment and the per-update weights, sizes and mean losses of a semprior run."""

    def __init__(self, run_dir: str | Path):
        files = RunDir(run_dir)
        path = files.cluster_assignment
        self.assignment: dict[str, Any] = (
            check_fields(str(path), read_json(path, "cluster assignment"), ASSIGNMENT_FIELDS) if path.exists() else {}
        )
        weights = files.cluster_weights
        self.records = [check_fields(f"{weights}: record {i}", r, WEIGHTS_FIELDS)
                        for i, r in enumerate(read_jsonl(weights), 1)]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def k(self) -> int:
        return int(self.assignment.get("k", 0))

    def table(self) -> list[dict[str, Any]]:
        """Long format: one row per (update, cluster) with step, weight, size and mean loss."""
        rows = []
        for rec in self.records:
            for c, w in enumerate(rec["weights"]):
                rows.append({"step": rec["step"], "cluster": c, "weight": w, "size": rec["sizes"][c],
                             "mean_loss": rec["mean_loss"][c], "samples": rec["samples"][c]})
        return rows

    def members(self, cluster: int) -> list[str]:
        """Image keys assigned to ``cluster``."""
        return [k for k, c in zip(self.assignment.get("ids", []), self.assignment.get("labels", [])) if c == cluster]


@dataclass
class Run:
    """A run directory, opened for reading."""

    path: Path

    @classmethod
    def open(cls, path: str | Path) -> Run:
        p = Path(path)
        if not RunDir(p).config.is_file():
            raise DataError(f"{p}: not a run directory (no config.yaml)")
        return cls(p)

    @property
    def files(self) -> RunDir:
        return RunDir(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def kind(self) -> str:
        """``trained`` or ``classical``."""
        return self.info().get("kind", "trained")

    def config_tree(self) -> dict[str, Any]:
        """``config.yaml`` as a plain mapping (ConfigError naming the file if unreadable)."""
        return load_yaml(self.files.config)

    def config(self):
        """The run's config: a :class:`RunConfig`, or a ``ClassicalRunConfig`` for classical runs."""
        if self.kind == "classical":
            from ..classical.run import load_classical_config

            return load_classical_config(self.files.config)
        with naming_file(self.files.config):
            return config_from_dict(self.config_tree())

    def info(self) -> dict[str, Any]:
        f = self.files.info
        return check_fields(str(f), read_json(f, "run file"), INFO_FIELDS, required=False) if f.exists() else {}

    def environment(self) -> dict[str, Any]:
        """``environment.json`` (versions, git commit) or {} when the run has none."""
        f = self.files.environment
        return check_fields(str(f), read_json(f, "environment file"), ENV_FIELDS, required=False) if f.is_file() else {}

    def history(self) -> list[dict[str, Any]]:
        f = self.files.metrics
        return [_check_record(f"{f}: record {i}", r) for i, r in enumerate(read_jsonl(f), 1)]

    def labels(self) -> LabelHistory:
        return LabelHistory(self.path)

    def clusters(self) -> ClusterHistory:
        return ClusterHistory(self.path)

    def evaluations(self) -> list[dict[str, Any]]:
        """Saved ``semprior eval`` results (each names its split, network and checkpoint)."""
        folder = self.files.eval_dir
        files = sorted(folder.glob("*.json")) if folder.is_dir() else []
        return [check_fields(str(p), read_json(p, "evaluation"), EVAL_FIELDS) for p in files]

    def split(self, name: str) -> list[str]:
        f = self.files.split(name)
        return [s for line in read_text(f, "split file").splitlines() if (s := line.strip())] if f.exists() else []


def find_runs(root: str | Path) -> list[Run]:
    """Every run directory at or below ``root`` (a folder holding ``config.yaml``)."""
    root = Path(root)
    return [Run(p.parent) for p in sorted(root.rglob(RunDir(root).config.name))]
