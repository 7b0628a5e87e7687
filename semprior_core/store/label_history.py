"""Label history on disk: one compressed ``.npz`` per label update, written atomically.

``<run>/labels/update_<epoch:05d>.npz`` holds the image keys, every pseudo-mask
(uint8, label·255 rounded) and a JSON summary (per-image area, components, guard
events and — diagnostic only, never fed back — IoU against the dense mask where one
exists). Update 0 is the initial labels. There is no index file to get out of step:
the files are the index, so resuming simply deletes updates newer than the checkpoint.

Reading checks each file as it is opened (a zip of ``keys``, ``summary`` and one ``l<i>`` array per key), so
a damaged update is a :class:`~semprior_core.io.DataError` naming the file, never a zipfile traceback.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io import DataError, atomic_write_bytes
from .fields import COUNT, Check, check_fields, is_number
from .run_dir import RunDir

_NAME = re.compile(r"update_(\d{5})\.npz$")


def update_path(folder: Path, epoch: int) -> Path:
    return folder / f"update_{epoch:05d}.npz"


def write_update(folder: Path, epoch: int, keys: list[str], labels: list[np.ndarray], summary: dict[str, Any]) -> Path:
    arrays = {f"l{i}": np.rint(np.clip(lab, 0, 1) * 255).astype(np.uint8) for i, lab in enumerate(labels)}
    buf = io.BytesIO()
    np.savez_compressed(buf, keys=np.array(keys), summary=np.array(json.dumps(summary)), **arrays)
    return atomic_write_bytes(update_path(folder, epoch), buf.getvalue())


def list_updates(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _NAME.match(p.name)))


def truncate_after(folder: Path, epoch: int) -> None:
    """Delete updates recorded after ``epoch`` (work lost with a killed run)."""
    for e in list_updates(folder):
        if e > epoch:
            update_path(folder, e).unlink(missing_ok=True)


# what np.load and the members' decoders raise on a damaged file
_DAMAGE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error,
           NotImplementedError, RuntimeError)  # an unknown compression method, an "encrypted" member


def _image_summary(v: Any) -> bool:
    iou = v.get("iou_vs_gt") if isinstance(v, dict) else None
    return isinstance(v, dict) and COUNT[0](v.get("area")) and (iou is None or is_number(iou))


SUMMARY_FIELDS: dict[str, Check] = {
    "images": (lambda v: isinstance(v, list) and all(_image_summary(i) for i in v),
               "a list of objects with a pixel count 'area' and an optional number 'iou_vs_gt'"),
    "events": (lambda v: isinstance(v, dict) and all(COUNT[0](n) for n in v.values()), "an object of counts"),
}


def read_update(path: Path) -> tuple[list[str], dict[str, Any]]:
    """(image keys, summary) of one update file, checked."""
    try:
        with np.load(path) as z:
            keys, summary = z["keys"], str(z["summary"])
    except _DAMAGE as exc:
        raise DataError(f"{path}: not a readable label update ({type(exc).__name__}: {exc})") from None
    if keys.ndim != 1 or keys.dtype.kind != "U":
        raise DataError(f"{path}: 'keys' must be a list of image keys, got {keys.dtype} of shape {keys.shape}")
    try:
        summary = json.loads(summary)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: 'summary' is not JSON ({exc})") from None
    check_fields(f"{path}: summary", summary, SUMMARY_FIELDS, required=False)
    images = summary.get("images")
    if images is not None and len(images) != len(keys):
        raise DataError(f"{path}: summary describes {len(images)} images, the file holds {len(keys)} keys")
    return [str(k) for k in keys], summary


@dataclass
class LabelUpdate:
    epoch: int
    keys: list[str]
    summary: dict[str, Any]
    _file: Path

    def label(self, key_or_index: str | int) -> np.ndarray:
        """Pseudo-mask (float32 in [0, 1]) of one image, by key or position."""
        i = self.keys.index(key_or_index) if isinstance(key_or_index, str) else key_or_index
        try:
            with np.load(self._file) as z:
                label = z[f"l{i}"]
        except _DAMAGE as exc:
            raise DataError(f"{self._file}: pseudo-mask of {self.keys[i]!r} unreadable ({type(exc).__name__}: {exc})") from None
        if label.ndim != 2 or label.dtype != np.uint8:
            raise DataError(f"{self._file}: pseudo-mask of {self.keys[i]!r} must be a 2-D uint8 image, "
                            f"got {label.dtype} of shape {label.shape}")
        return label.astype(np.float32) / 255.0


class LabelHistory:
    """Random access to a run's label updates by (update, image id)."""

    def __init__(self, run_dir: str | Path):
        self.folder = RunDir(run_dir).labels
        self.epochs = list_updates(self.folder)

    def __len__(self) -> int:
        return len(self.epochs)

    def update(self, n: int) -> LabelUpdate:
        """The n-th update (0 = initial labels; negative indices count from the end)."""
        epoch = self.epochs[n]
        path = update_path(self.folder, epoch)
        keys, summary = read_update(path)
        return LabelUpdate(epoch, keys, summary, path)

    def label(self, n: int, key: str) -> np.ndarray:
        return self.update(n).label(key)

    def table(self) -> list[dict[str, Any]]:
        """One row per update: epoch, mean IoU vs GT (diagnostic), mean area, growth, guard counts."""
        rows = []
        prev_area = None
        initial: list[int] = []
        for n in range(len(self)):
            s = self.update(n).summary
            images = s.get("images", [])
            if n == 0:
                initial = [im["area"] for im in images]
            ious = [im["iou_vs_gt"] for im in images if im.get("iou_vs_gt") is not None]
            area = float(np.mean([im["area"] for im in images])) if images else 0.0
            rows.append(
                {
                    "update": n,
                    "epoch": self.epochs[n],
                    "images": len(images),
                    "mean_iou_vs_gt": float(np.mean(ious)) if ious else None,
                    "mean_area": area,
                    "growth": None if prev_area in (None, 0) else area / prev_area,
                    # labels that never grew past their initial point masks
                    "bare_point": sum(im["area"] <= a0 for im, a0 in zip(images, initial)),
                    "grew_past_bound": s.get("events", {}).get("grew_past_bound", 0),
                    "erased_target": s.get("events", {}).get("erased_target", 0),
                    "pool": s.get("pool_size"),
                }
            )
            prev_area = area
        return rows
