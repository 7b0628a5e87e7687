"""Point labels: one click per target, derived from dense masks or made by a user.

``centroid`` follows LESPS's ``centroid_anno.m`` (component centroid rounded to a
pixel; if that pixel falls outside a non-convex component, the nearest component
pixel). ``coarse`` follows ``coarse_anno.m``: a component pixel drawn around the
centroid with a Gaussian offset whose σ is a quarter of the component's half extent
(Ying et al., "Mapping Degeneration Meets Label Evolution", CVPR 2023).

The points file (JSON) is what point-supervised training reads; coordinates are
0-based (y, x) pixels. Dense training masks are read only here, to *make* points.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io import DataError, atomic_write_json, read_json
from ..metrics import components

POINTS_FORMAT = "semprior-points"
POINTS_VERSION = 1


def centroid_points(mask: np.ndarray) -> np.ndarray:
    """One (y, x) point per 8-connected component of ``mask``: its rounded centroid."""
    labels, n, centroids, _ = components(mask)
    pts = np.zeros((n, 2), dtype=np.int64)
    for i in range(n):
        pts[i] = _snap_to_component(labels == i + 1, centroids[i])
    return pts


def coarse_points(mask: np.ndarray, rng: np.random.Generator, max_tries: int = 100) -> np.ndarray:
    """One (y, x) point per component, offset from the centroid by N(0, (extent/4)²) per axis."""
    labels, n, centroids, _ = components(mask)
    pts = np.zeros((n, 2), dtype=np.int64)
    for i in range(n):
        comp = labels == i + 1
        ys, xs = np.nonzero(comp)
        sigma = np.array([ys.max() - ys.min() + 1, xs.max() - xs.min() + 1], dtype=np.float64) / 2 / 4
        for _ in range(max_tries):
            p = np.floor(centroids[i] + rng.normal(0.0, 1.0, 2) * sigma).astype(np.int64)
            p = np.clip(p, 0, np.array(mask.shape) - 1)
            if comp[p[0], p[1]]:
                pts[i] = p
                break
        else:
            pts[i] = _snap_to_component(comp, centroids[i])
    return pts


def _snap_to_component(comp: np.ndarray, centroid: np.ndarray) -> np.ndarray:
    p = np.clip(np.rint(centroid).astype(np.int64), 0, np.array(comp.shape) - 1)
    if comp[p[0], p[1]]:
        return p
    ys, xs = np.nonzero(comp)
    k = int(np.argmin((ys - centroid[0]) ** 2 + (xs - centroid[1]) ** 2))
    return np.array([ys[k], xs[k]], dtype=np.int64)


@dataclass
class PointSet:
    """Points per image id (each an int64 array (N, 2) of (y, x)), with provenance."""

    kind: str
    seed: int = 0
    source: str = ""
    points: dict[str, np.ndarray] = field(default_factory=dict)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # (H, W) per image, for validation

    def __getitem__(self, sid: str) -> np.ndarray:
        try:
            return self.points[sid]
        except KeyError:
            raise DataError(f"points file ({self.source or self.kind}): no entry for image {sid!r}") from None

    def __contains__(self, sid: str) -> bool:
        return sid in self.points

    def num_points(self) -> int:
        return int(sum(len(p) for p in self.points.values()))

    def to_json(self) -> dict:
        return {
            "format": POINTS_FORMAT,
            "version": POINTS_VERSION,
            "kind": self.kind,
            "seed": self.seed,
            "source": self.source,
            "images": {
                sid: {"size": list(self.sizes.get(sid, ())), "points_yx": pts.tolist()}
                for sid, pts in sorted(self.points.items())
            },
        }

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> PointSet:
        path = Path(path)
        data = read_json(path, "points file")
        if not isinstance(data, dict) or data.get("format") != POINTS_FORMAT:
            raise DataError(f"{path}: not a semprior points file (missing format: {POINTS_FORMAT!r})")
        if data.get("version") != POINTS_VERSION:
            raise DataError(f"{path}: points format version {data.get('version')} (expected {POINTS_VERSION})")
        out = cls(kind=str(data.get("kind", "")), seed=int(data.get("seed", 0)), source=str(path))
        for sid, entry in data.get("images", {}).items():
            pts = np.asarray(entry.get("points_yx", []), dtype=np.int64).reshape(-1, 2)
            size = tuple(int(v) for v in entry.get("size", ()))
            if size:
                if len(size) != 2:
                    raise DataError(f"{path}: image {sid!r}: size must be [H, W]")
                bad = (pts < 0).any(axis=1) | (pts[:, 0] >= size[0]) | (pts[:, 1] >= size[1])
                if bad.any():
                    y, x = pts[np.argmax(bad)]
                    raise DataError(f"{path}: image {sid!r}: point (y={y}, x={x}) lies outside the {size[1]}x{size[0]} image")
                out.sizes[sid] = size  # type: ignore[assignment]
            out.points[sid] = pts
        return out

    def check_against(self, sid: str, shape: tuple[int, int]) -> np.ndarray:
        """Points of ``sid`` after checking they lie inside an image of ``shape``."""
        pts = self[sid]
        if len(pts) and ((pts < 0).any() or (pts[:, 0] >= shape[0]).any() or (pts[:, 1] >= shape[1]).any()):
            raise DataError(f"points ({self.source or self.kind}): image {sid!r} has a point outside its {shape[1]}x{shape[0]} frame")
        return pts


def points_from_masks(
    items: Iterable[tuple[str, np.ndarray]], kind: str, seed: int = 0, source: str = ""
) -> PointSet:
    """Make a :class:`PointSet` from ``(id, dense mask)`` pairs; deterministic for a given seed."""
    if kind not in ("centroid", "coarse"):
        raise ValueError(f"unknown point kind {kind!r}; use 'centroid' or 'coarse'")
    out = PointSet(kind=kind, seed=seed, source=source)
    for sid, mask in items:
        if kind == "centroid":
            pts = centroid_points(mask)
        else:
            # One generator per image, keyed by its id, so points do not depend on image order.
            key = int.from_bytes(hashlib.sha256(sid.encode("utf-8")).digest()[:8], "little")
            pts = coarse_points(mask, np.random.default_rng([seed, key]))
        out.points[sid] = pts
        out.sizes[sid] = (int(mask.shape[0]), int(mask.shape[1]))
    return out
