"""Point labels: one click per target, derived from dense masks or made by a user.

``centroid`` follows LESPS's ``centroid_anno.m`` (component centroid rounded to a
pixel; if that pixel falls outside a non-convex component, the nearest component
pixel). ``coarse`` follows ``coarse_anno.m``: a component pixel drawn around the
centroid with a Gaussian offset whose σ is a quarter of the component's half extent
(Ying et al., "Mapping Degeneration Meets Label Evolution", CVPR 2023).

The points file (JSON) is what point-supervised training reads; coordinates are
0-based (y, x) pixels. Dense training masks are read only here, to *make* points.
:meth:`PointSet.load` checks every entry and names the file, image and entry of the
first problem: coordinates must be finite, non-negative numbers (no strings, bools or
nested lists), two per point, inside the image when its size is recorded. Fractional
coordinates (a sub-pixel click) go to the pixel whose centre is nearest, ties up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.metrics import components
from ..io import DataError, atomic_write_json, read_json

POINTS_FORMAT = "semprior-points"
POINTS_VERSION = 1
ENTRY_KEYS = {"size", "points_yx"}
# Larger than any image side; keeps the int64 arithmetic on coordinates exact.
MAX_COORD = 2**31 - 1


def nearest_pixel(coords: np.ndarray) -> np.ndarray:
    """0-based pixel indices whose centres are nearest to 0-based continuous ``coords`` (ties go up)."""
    return np.floor(np.asarray(coords, dtype=np.float64) + 0.5).astype(np.int64)


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
        """Read a points file, checking every entry (see the module docstring); :class:`DataError` otherwise."""
        path = Path(path)
        data = read_json(path, "points file")
        if not isinstance(data, dict) or data.get("format") != POINTS_FORMAT:
            raise DataError(f"{path}: not a semprior points file (missing format: {POINTS_FORMAT!r})")
        if data.get("version") != POINTS_VERSION:
            raise DataError(f"{path}: points format version {data.get('version')!r} (expected {POINTS_VERSION})")
        kind, seed, images = data.get("kind", ""), data.get("seed", 0), data.get("images", {})
        if not isinstance(kind, str) or not _is_int(seed):
            raise DataError(f"{path}: \"kind\" must be a string and \"seed\" an integer")
        if not isinstance(images, dict):
            raise DataError(f"{path}: \"images\" must map image ids to entries, got {type(images).__name__}")
        out = cls(kind=kind, seed=seed, source=str(path))
        for sid, entry in images.items():
            where = f"{path}: image {sid!r}"
            if not sid:
                raise DataError(f"{path}: an entry has an empty image id")
            size, pts = _read_entry(where, entry)
            if size is not None:
                out.sizes[sid] = size
            out.points[sid] = pts
        return out

    def check_against(self, sid: str, shape: tuple[int, int]) -> np.ndarray:
        """Points of ``sid`` after checking they lie inside an image of ``shape``."""
        pts = self[sid]
        outside = _outside(pts, shape)
        if outside is not None:
            raise DataError(f"points ({self.source or self.kind}): image {sid!r} has a point outside its "
                            f"{shape[1]}x{shape[0]} frame: (y={outside[0]}, x={outside[1]})")
        return pts


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _outside(pts: np.ndarray, shape: tuple[int, int]) -> tuple[int, int] | None:
    """The first point of ``pts`` outside an image of ``shape``, or None."""
    bad = (pts < 0).any(axis=1) | (pts[:, 0] >= shape[0]) | (pts[:, 1] >= shape[1])
    if not bad.any():
        return None
    y, x = pts[np.argmax(bad)]
    return int(y), int(x)


def _read_entry(where: str, entry: Any) -> tuple[tuple[int, int] | None, np.ndarray]:
    """((H, W) or None, int64 (N, 2) pixels) of one image's entry, checked."""
    if not isinstance(entry, dict):
        raise DataError(f"{where}: entry must be an object with \"points_yx\", got {type(entry).__name__}")
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown or "points_yx" not in entry:
        raise DataError(f"{where}: entry keys must be \"points_yx\" and optionally \"size\", got {sorted(entry)}")
    size = _read_size(where, entry.get("size", []))
    raw = entry["points_yx"]
    if not isinstance(raw, list):
        raise DataError(f"{where}: \"points_yx\" must be a list of [y, x] pairs, got {type(raw).__name__}")
    pts = nearest_pixel(np.array([_read_point(f"{where}: points_yx[{k}]", p) for k, p in enumerate(raw)],
                                 dtype=np.float64).reshape(-1, 2))
    if size is not None:
        outside = _outside(pts, size)
        if outside is not None:
            raise DataError(f"{where}: point (y={outside[0]}, x={outside[1]}) lies outside the {size[1]}x{size[0]} image")
    return size, pts


def _read_size(where: str, size: Any) -> tuple[int, int] | None:
    """The recorded (H, W), or None when the file leaves it empty (unknown)."""
    if size == []:
        return None
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and 0 < v <= MAX_COORD for v in size)):
        raise DataError(f"{where}: size must be [H, W] (two positive integers), got {size!r}")
    return size[0], size[1]


def _read_point(where: str, point: Any) -> tuple[float, float]:
    """One (y, x) pair: two finite, non-negative numbers; JSON bools and strings are refused, not cast."""
    if not isinstance(point, list) or len(point) != 2:
        raise DataError(f"{where}: a point must be a [y, x] pair, got {point!r}")
    for v in point:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise DataError(f"{where}: coordinates must be numbers, got {point!r}")
        if not 0 <= v <= MAX_COORD:  # also NaN and infinity; no float() that could overflow on huge ints
            raise DataError(f"{where}: coordinates must be finite and non-negative, got {point!r}")
    return float(point[0]), float(point[1])


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
