"""The state of one annotation session, without any user interface: which image is shown, its points, its
pending model suggestions, undo, and the save to disk after every change.

The points file is an ordinary :class:`~semprior_core.data.points.PointSet` (what ``semprior points`` writes
and ``semprior train`` reads). *Annotated* needs no extra field: an image is annotated exactly when the file
has an entry for it. Clicking a target creates the entry; "no target" creates an empty one (a negative
image for training); removing the last clicked point removes the entry again, so an image never silently
becomes a confirmed negative. Reopening resumes at the first image without an entry.

Optionally a split file (one id per line, the annotated images) is kept in sync, so the folder trains as a
dataset (``train_split``) with no conversion step. Both files are written atomically after every change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from semprior_core.data.points import PointSet
from semprior_core.evaluation.evaluate import list_images
from semprior_core.io import DataError, atomic_write_text, read_image

from .suggest import Suggestions

MANUAL_KIND = "manual"
ORDERS = ("name", "uncertainty")


def natural_key(sid: str) -> list:
    """Sort key putting ``frame_2`` before ``frame_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", sid)]


def order_ids(ids: list[str], order: str, suggestions: Suggestions | None) -> list[str]:
    """``ids`` by name (natural order), or by the model's uncertainty, most uncertain first."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; use one of {', '.join(ORDERS)}")
    by_name = sorted(ids, key=natural_key)
    if order == "name":
        return by_name
    if suggestions is None:
        raise ValueError("ordering by uncertainty needs a model (--run)")
    return sorted(by_name, key=lambda sid: -suggestions.uncertainty.get(sid, 0.0))  # stable: ties keep name order


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    targets: int


@dataclass
class _Snapshot:
    points: np.ndarray | None  # None: the image had no entry (not annotated)
    pending: list[tuple[int, int]]


@dataclass
class _Image:
    path: Path
    shape: tuple[int, int]
    undo: list[_Snapshot] = field(default_factory=list)
    pending: list[tuple[int, int]] | None = None  # suggestions not yet accepted or rejected; None: not computed


class AnnotationSession:
    """Point labels of the images in ``images``, saved to ``points`` (and the annotated ids to ``split``)."""

    def __init__(self, images: str | Path, points: str | Path, *, split: str | Path | None = None,
                 suggestions: Suggestions | None = None, order: str = "name", match_radius: float = 3.0) -> None:
        self.images_dir = Path(images).expanduser()
        self.points_path = Path(points).expanduser()
        self.split_path = Path(split).expanduser() if split is not None else None
        self.suggestions = suggestions
        self.match_radius = match_radius  # a suggestion this close to a point is already labelled
        self._images: dict[str, _Image] = {}
        for path in list_images(self.images_dir):
            if path.stem in self._images:
                raise DataError(f"{path}: two images share the id {path.stem!r} ({self._images[path.stem].path.name})")
            self._images[path.stem] = _Image(path, _image_shape(path))
        self.labels = PointSet.load(self.points_path) if self.points_path.exists() else PointSet(kind=MANUAL_KIND)
        self._check_loaded()
        # Entries for images not in this folder stay in the file untouched; they are simply not shown. Once
        # edited here, labels derived from masks (kind centroid/coarse) are hand-made labels: kind manual.
        self.labels.kind, self.labels.source = MANUAL_KIND, str(self.images_dir)
        self.ids = order_ids(list(self._images), order, suggestions)
        self.index = self.first_unannotated()
        self._cache: tuple[str, np.ndarray] | None = None
        if self.split_path is not None:
            self._write_split()  # catch up if a previous session was killed between the two writes

    def _check_loaded(self) -> None:
        for sid in self.labels.points:
            if sid not in self._images:
                continue
            shape = self._images[sid].shape
            recorded = self.labels.sizes.get(sid)
            if recorded is not None and tuple(recorded) != shape:
                raise DataError(f"{self.points_path}: image {sid!r} is {recorded[1]}x{recorded[0]} in the points file "
                                f"but {shape[1]}x{shape[0]} in {self._images[sid].path} (another folder's points?)")
            self.labels.check_against(sid, shape)

    # -- queries -----------------------------------------------------------------------------------
    @property
    def current(self) -> str:
        return self.ids[self.index]

    def path(self, sid: str) -> Path:
        return self._images[sid].path

    def shape(self, sid: str) -> tuple[int, int]:
        return self._images[sid].shape

    def image(self, sid: str | None = None) -> np.ndarray:
        """Grey float32 image in [0, 1] (the last one read is kept)."""
        sid = sid or self.current
        if self._cache is None or self._cache[0] != sid:
            self._cache = (sid, read_image(self._images[sid].path))
        return self._cache[1]

    def is_done(self, sid: str | None = None) -> bool:
        return (sid or self.current) in self.labels.points

    def points(self, sid: str | None = None) -> np.ndarray:
        """int64 (N, 2) (y, x) points of ``sid`` (empty when not annotated)."""
        return self.labels.points.get(sid or self.current, np.zeros((0, 2), dtype=np.int64))

    def first_unannotated(self) -> int:
        """Index of the first image without an entry; 0 when every image is annotated."""
        return next((i for i, sid in enumerate(self.ids) if sid not in self.labels.points), 0)

    def progress(self) -> Progress:
        done = [sid for sid in self.ids if sid in self.labels.points]
        return Progress(len(done), len(self.ids), sum(len(self.labels.points[sid]) for sid in done))

    def pending(self, sid: str | None = None) -> list[tuple[int, int]]:
        """Suggestions of ``sid`` still to accept or reject, the current one first."""
        sid = sid or self.current
        img = self._images[sid]
        if img.pending is None:
            sug = self.suggestions.points.get(sid) if self.suggestions else None
            found = [] if sug is None else [(int(y), int(x)) for y, x in sug]
            img.pending = [p for p in found if not self._near_point(sid, p)]
        return img.pending

    def _near_point(self, sid: str, p: tuple[int, int]) -> bool:
        pts = self.points(sid)
        return bool(len(pts)) and float(np.min(np.hypot(pts[:, 0] - p[0], pts[:, 1] - p[1]))) <= self.match_radius

    # -- navigation --------------------------------------------------------------------------------
    def go(self, index: int) -> str:
        self.index = int(np.clip(index, 0, len(self.ids) - 1))
        return self.current

    def next(self) -> str:
        return self.go(self.index + 1)

    def previous(self) -> str:
        return self.go(self.index - 1)

    # -- edits (each one saved at once) --------------------------------------------------------------
    def click(self, y: int, x: int, radius: float = 1.0) -> str | None:
        """A click on pixel (y, x): removes the nearest point within ``radius`` px, else adds one there.

        Returns "removed", "added", or None for a click outside the image.
        """
        if self.remove_near(y, x, radius):
            return "removed"
        return "added" if self.add(y, x) else None

    def add(self, y: int, x: int) -> bool:
        h, w = self.shape(self.current)
        if not (0 <= y < h and 0 <= x < w):
            return False
        pts = np.vstack([self.points(), np.array([[y, x]], dtype=np.int64)])
        self._commit(pts, [p for p in self.pending() if np.hypot(p[0] - y, p[1] - x) > self.match_radius])
        return True

    def remove_near(self, y: float, x: float, radius: float) -> bool:
        pts = self.points()
        if not len(pts):
            return False
        d = np.hypot(pts[:, 0] - y, pts[:, 1] - x)
        k = int(np.argmin(d))
        if d[k] > radius:
            return False
        rest = np.delete(pts, k, axis=0)
        # Removing the last point leaves the image unannotated, not a confirmed negative.
        self._commit(rest if len(rest) else None, list(self.pending()))
        return True

    def mark_no_target(self) -> None:
        """Annotate the current image as having no target (its points, if any, are cleared: undo restores)."""
        self._commit(np.zeros((0, 2), dtype=np.int64), list(self.pending()))

    def accept_suggestion(self) -> bool:
        pending = self.pending()
        if not pending:
            return False
        (y, x), rest = pending[0], pending[1:]
        self._commit(np.vstack([self.points(), np.array([[y, x]], dtype=np.int64)]), rest)
        return True

    def reject_suggestion(self) -> bool:
        pending = self.pending()
        if not pending:
            return False
        # A rejection changes no label, but is undoable like any other decision.
        self._commit(self.labels.points.get(self.current), pending[1:], save=False)
        return True

    def undo(self) -> bool:
        """Undo the last change of the current image; False when there is none."""
        stack = self._images[self.current].undo
        if not stack:
            return False
        snap = stack.pop()
        self._set(snap.points, snap.pending)
        return True

    def _commit(self, points: np.ndarray | None, pending: list[tuple[int, int]], save: bool = True) -> None:
        sid = self.current
        before = self.labels.points.get(sid)
        self._images[sid].undo.append(_Snapshot(None if before is None else before.copy(), list(self.pending())))
        self._set(points, pending, save)

    def _set(self, points: np.ndarray | None, pending: list[tuple[int, int]], save: bool = True) -> None:
        sid = self.current
        if points is None:
            self.labels.points.pop(sid, None)
            self.labels.sizes.pop(sid, None)
        else:
            self.labels.points[sid] = np.asarray(points, dtype=np.int64).reshape(-1, 2)
            self.labels.sizes[sid] = self.shape(sid)
        self._images[sid].pending = list(pending)
        if save:
            self.save()

    def save(self) -> None:
        """Write the points file (and the split file), each atomically."""
        self.labels.save(self.points_path)
        if self.split_path is not None:
            self._write_split()

    def _write_split(self) -> None:
        done = sorted((sid for sid in self._images if sid in self.labels.points), key=natural_key)
        atomic_write_text(self.split_path, "".join(f"{sid}\n" for sid in done))


def _image_shape(path: Path) -> tuple[int, int]:
    """(H, W) from the image header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except OSError as exc:
        raise DataError(f"{path}: cannot read the image header ({exc})") from exc
