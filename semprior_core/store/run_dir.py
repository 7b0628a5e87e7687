"""The layout of a run directory, in one place: every file a run holds is named here, and written through here.

::

    config.yaml        the run's config tree (what the run is)
    run.json           kind, method, selection rule, normalisation, networks scored, run id, resumes
    environment.json   versions, device, git commit
    metrics.jsonl      one record per finished epoch (classical runs: one record)
    last.pt, best.pt   the last and the validation-selected checkpoint
    splits/{train,val,test}.txt   the sample ids the run used
    labels/            pseudo-mask history (:mod:`semprior_core.store.label_history`)
    clusters/          assignment.json and weights.jsonl of the cluster reweighting
    eval/{split}_{model}_{checkpoint}.json    ``semprior eval`` results
    eval_cross/<dataset>/...                   cross-dataset evaluations

Readers with validation live in :mod:`semprior_core.store.runs` (``Run``); writers (the engine, methods, evaluation,
classical runs) take a :class:`RunDir` instead of joining paths themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io import append_jsonl, atomic_write_json, atomic_write_text

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class RunDir:
    """A run directory's paths and writes. ``RunDir(path)`` touches nothing on disk."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def __str__(self) -> str:
        return str(self.root)

    # -- paths -------------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def info(self) -> Path:
        return self.root / "run.json"

    @property
    def environment(self) -> Path:
        return self.root / "environment.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def last(self) -> Path:
        return self.root / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "best.pt"

    @property
    def labels(self) -> Path:
        return self.root / "labels"

    @property
    def clusters(self) -> Path:
        return self.root / "clusters"

    @property
    def cluster_assignment(self) -> Path:
        return self.clusters / "assignment.json"

    @property
    def cluster_weights(self) -> Path:
        return self.clusters / "weights.jsonl"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def eval_cross_dir(self) -> Path:
        return self.root / "eval_cross"

    def split(self, name: str) -> Path:
        return self.root / "splits" / f"{name}.txt"

    def evaluation(self, split: str, model: str, checkpoint: str) -> Path:
        return self.eval_dir / f"{split}_{model}_{checkpoint}.json"

    # -- writes (atomic, or append-only) -----------------------------------------------------------
    def write_config(self, tree: dict[str, Any]) -> Path:
        import yaml

        return atomic_write_text(self.config, yaml.safe_dump(tree, sort_keys=False))

    def write_info(self, record: dict[str, Any]) -> Path:
        return atomic_write_json(self.info, record)

    def write_environment(self, env: dict[str, Any]) -> Path:
        return atomic_write_json(self.environment, env)

    def write_splits(self, keys: dict[str, list[str]]) -> None:
        for name in SPLITS:
            atomic_write_text(self.split(name), "".join(f"{k}\n" for k in keys[name]))

    def clear_records(self) -> None:
        """Delete what an earlier attempt left without a checkpoint (epoch records, label and cluster histories,
        evaluations): a fresh start must not append to them, nor stand beside their scores."""
        import shutil

        self.metrics.unlink(missing_ok=True)
        for folder in (self.labels, self.clusters, self.eval_dir, self.eval_cross_dir):
            shutil.rmtree(folder, ignore_errors=True)

    def append_metrics(self, record: dict[str, Any]) -> None:
        append_jsonl(self.metrics, record)

    def write_metrics(self, records: list[dict[str, Any]]) -> Path:
        """Replace ``metrics.jsonl`` (a resume drops the records of lost work)."""
        return atomic_write_text(self.metrics, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
