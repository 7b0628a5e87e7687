"""Readers of a run directory: what notebooks, the dashboard and reports build on.

A run directory (written by :mod:`semprior_core.engine`) holds ``config.yaml``,
``run.json`` (selection rule, normalisation, evaluated networks), ``metrics.jsonl``
(one record per epoch), ``splits/``, ``labels/update_*.npz`` (:class:`LabelHistory`),
``clusters/{assignment.json,weights.jsonl}`` (:class:`ClusterHistory`), ``eval/*.json``
and the checkpoints ``best.pt`` / ``last.pt``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import config_from_dict
from .io import DataError, read_jsonl
from .label_history import LabelHistory

__all__ = ["ClusterHistory", "LabelHistory", "Run", "find_runs"]


class ClusterHistory:
    """Cluster assignment and the per-update weights, sizes and mean losses of a semprior run."""

    def __init__(self, run_dir: str | Path):
        folder = Path(run_dir) / "clusters"
        self.assignment: dict[str, Any] = (
            json.loads((folder / "assignment.json").read_text()) if (folder / "assignment.json").exists() else {}
        )
        self.records = read_jsonl(folder / "weights.jsonl")

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
        if not (p / "config.yaml").is_file():
            raise DataError(f"{p}: not a run directory (no config.yaml)")
        return cls(p)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def kind(self) -> str:
        """``trained`` or ``classical``."""
        return self.info().get("kind", "trained")

    def config(self):
        """The run's config: a :class:`RunConfig`, or a ``ClassicalRunConfig`` for classical runs."""
        if self.kind == "classical":
            from .classical.run import load_classical_config

            return load_classical_config(self.path / "config.yaml")
        return config_from_dict(yaml.safe_load((self.path / "config.yaml").read_text()))

    def info(self) -> dict[str, Any]:
        f = self.path / "run.json"
        return json.loads(f.read_text()) if f.exists() else {}

    def history(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path / "metrics.jsonl")

    def labels(self) -> LabelHistory:
        return LabelHistory(self.path)

    def clusters(self) -> ClusterHistory:
        return ClusterHistory(self.path)

    def evaluations(self) -> list[dict[str, Any]]:
        """Saved ``semprior eval`` results (each names its split, network and checkpoint)."""
        folder = self.path / "eval"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []

    def split(self, name: str) -> list[str]:
        f = self.path / "splits" / f"{name}.txt"
        return [line for line in f.read_text().splitlines() if line] if f.exists() else []


def find_runs(root: str | Path) -> list[Run]:
    """Every run directory at or below ``root`` (a folder holding ``config.yaml``)."""
    root = Path(root)
    return [Run(p.parent) for p in sorted(root.rglob("config.yaml"))]
