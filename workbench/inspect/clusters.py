"""Cluster reweighting of a semprior run: weight trajectories per cluster and image galleries per cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .handle import RunHandle, open_run
from .imaging import thumbnail
from .labels import LABEL_SPLIT


def cluster_weights(run: str | Path | RunHandle) -> list[dict[str, Any]]:
    """Long table, one row per (meta step, cluster): ``step``, ``cluster``, ``weight``, ``size``, ``mean_loss``
    (the teacher's mean segmentation loss on that cluster since the previous record), ``samples``.
    Empty for runs without cluster reweighting."""
    return open_run(run).run.clusters().table()


def cluster_summary(run: str | Path | RunHandle) -> list[dict[str, Any]]:
    """One row per cluster: ``cluster``, ``size``, ``first_weight``, ``last_weight`` (both None before the
    first meta step), ``members`` (image keys). Empty for runs without clusters."""
    ch = open_run(run).run.clusters()
    first = ch.records[0]["weights"] if len(ch) else None
    last = ch.records[-1]["weights"] if len(ch) else None
    return [
        {"cluster": c, "size": len(ch.members(c)), "first_weight": first[c] if first else None,
         "last_weight": last[c] if last else None, "members": ch.members(c)}
        for c in range(ch.k)
    ]


def cluster_gallery(run: str | Path | RunHandle, cluster: int, limit: int = 12, size: int = 96) -> list[dict[str, Any]]:
    """Up to ``limit`` training images of ``cluster``: ``key``, ``index`` (in the train split), ``image`` and
    its latest ``pseudo_mask`` as thumbnails whose long side is at most ``size`` pixels."""
    h = open_run(run)
    ch = h.run.clusters()
    if not 0 <= cluster < ch.k:
        raise ValueError(f"{h.name}: no cluster {cluster}; the run has {ch.k} clusters")
    labels = h.run.labels()
    latest = labels.update(-1) if len(labels) else None
    keys = h.keys(LABEL_SPLIT)
    out = []
    for key in ch.members(cluster)[:limit]:
        i = keys.index(key)
        item = {"key": key, "index": i, "image": thumbnail(h.bank(LABEL_SPLIT).image(i), size)}
        item["pseudo_mask"] = thumbnail(latest.label(key), size) if latest is not None and key in latest.keys else None
        out.append(item)
    return out
