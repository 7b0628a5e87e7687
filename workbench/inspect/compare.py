"""Compare runs: group runs that differ only in their seed, report mean ± std of their metrics.

A group is the flattened config minus the keys in :data:`IGNORED_KEYS` (the seed, and settings that do
not change the experiment: run name, device, thread and worker counts, cache location). Groups are named by
the keys that tell them apart among runs of their kind (trained or classical), the datasets get a column of
their own. Metrics come from saved evaluations (``semprior eval``: test split, validation-selected
checkpoint); a run without any is represented by its best validation scores, labelled with the validation
split.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from semprior_core.config.tree import to_dict
from semprior_core.store.runs import Run, find_runs

from .overview import METRIC_COLUMNS, VAL_SPLIT, metrics_table

SEED_KEY = "train.seed"
IGNORED_KEYS = (SEED_KEY, "name", "train.device", "train.threads", "data.num_workers", "vfm.cache_dir")
DATA_KEY = "data.datasets"  # shown as the ``data`` column, not in group names
HEADLINE = {"trained": "method.name", "classical": "classical.method"}  # named when run kinds are mixed


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted keys -> JSON-encoded leaf values (lists and scalars are leaves)."""
    out: dict[str, str] = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True)
    return out


def _config(run: Run) -> dict[str, str]:
    return flatten(to_dict(run.config()))  # validated: a damaged config.yaml is an error naming it


def group_label(config: dict[str, str], differing: list[str]) -> str:
    """``key=value`` for the keys that tell groups apart, or "all runs" when there is one group."""
    return ", ".join(f"{k}={json.loads(config[k]) if k in config else '–'}" for k in differing) or "all runs"


def group_labels(configs: list[dict[str, str]], kinds: list[str]) -> list[str]:
    """One :func:`group_label` per group config: the keys that differ between groups of the same run kind
    (configs of trained and classical runs share almost no keys), led by the kind's headline key
    (:data:`HEADLINE`) when several kinds are compared."""
    several = len(set(kinds)) > 1
    labels = []
    for config, kind in zip(configs, kinds):
        peers = [c for c, k in zip(configs, kinds) if k == kind]
        keys = sorted({k for c in peers for k in c} - {DATA_KEY})
        differing = [k for k in keys if len({c.get(k) for c in peers}) > 1]
        if several and HEADLINE[kind] not in differing:
            differing.insert(0, HEADLINE[kind])
        labels.append(group_label(config, differing))
    return labels


def dataset_label(config: dict[str, str]) -> str:
    """The folder names of the config's datasets, joined with "+"."""
    return "+".join(Path(d["root"]).name for d in json.loads(config.get(DATA_KEY, "[]"))) or "–"


def dataset_warning(rows: list[dict[str, Any]]) -> str | None:
    """A warning when :func:`compare_runs` rows come from different datasets, else None."""
    names = sorted({r["data"] for r in rows})
    if len(names) < 2:
        return None
    return (f"These runs use different datasets ({', '.join(names)}): their scores are not comparable "
            "across the data column.")


def expand_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Every run at or below each path (a run directory, or a folder of runs), without duplicates."""
    seen: dict[Path, Run] = {}
    for p in paths:
        for run in find_runs(p):
            seen.setdefault(run.path.resolve(), run)
    return list(seen.values())


def compare_runs(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Rows of mean ± std over seeds: ``group`` (:func:`group_labels`), ``data`` (:func:`dataset_label`),
    ``split``, ``model``, ``checkpoint``, ``n`` (runs), ``seeds``, ``runs`` (names), and ``<metric>_mean`` /
    ``<metric>_std`` for IoU, nIoU, Pd (%) and Fa (×1e-6); std is the sample std (None for one run)."""
    runs = expand_runs(paths)
    configs = {r.path: _config(r) for r in runs}
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        key = tuple(sorted((k, v) for k, v in configs[r.path].items() if k not in IGNORED_KEYS))
        groups.setdefault(key, []).append(r)
    labels = group_labels([dict(k) for k in groups], [members[0].kind for members in groups.values()])
    rows = []
    for label, (key, members) in zip(labels, groups.items()):
        cells: dict[tuple[str, str, str], list[tuple[Run, dict]]] = {}
        for r in members:
            table = metrics_table(r.path)
            evaluated = [row for row in table if row["split"] != VAL_SPLIT]
            for row in evaluated or table:
                cells.setdefault((row["split"], row["model"], row["checkpoint"]), []).append((r, row))
        for (split, model, checkpoint), entries in sorted(cells.items()):
            row = {"group": label, "data": dataset_label(dict(key)), "split": split, "model": model,
                   "checkpoint": checkpoint, "n": len(entries),
                   "seeds": [json.loads(configs[r.path].get(SEED_KEY, "0")) for r, _ in entries],
                   "runs": [r.name for r, _ in entries]}
            for c in METRIC_COLUMNS:
                vals = [e[c] for _, e in entries if e[c] is not None]
                row[f"{c}_mean"] = statistics.fmean(vals) if vals else None
                row[f"{c}_std"] = statistics.stdev(vals) if len(vals) > 1 else None
            rows.append(row)
    return rows


def format_mean_std(mean: float | None, std: float | None, digits: int = 2) -> str:
    """"72.10 ± 1.30", "72.10" for a single run, "–" for none."""
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_values(values: list[float], digits: int = 2) -> str:
    """Mean ± sample std of ``values`` as :func:`format_mean_std` writes it ("–" for none)."""
    if not values:
        return "–"
    return format_mean_std(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, digits)
