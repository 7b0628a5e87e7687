"""File I/O that never leaves a half-written file and never fails silently.

Every writer goes through a temporary file in the destination folder, fsync and
``os.replace`` (atomic on POSIX), so a run killed mid-write keeps the previous version.
Image readers turn every decoding problem into :class:`DataError` naming the file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError


class DataError(ValueError):
    """Bad input data; the message names the file and the problem."""


def atomic_write(path: str | Path, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path``, then atomically rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync; readers skip a torn last line (see :func:`read_jsonl`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_json(path: str | Path, what: str = "file") -> Any:
    """The parsed JSON of ``path``; a missing or malformed file is a :class:`DataError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; a torn final line (a kill mid-append) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1:
                break
            raise DataError(f"{path}: line {i + 1} is not valid JSON ({exc.msg})") from exc
    return out


def save_png(path: str | Path, array: np.ndarray) -> Path:
    """Write an 8-bit grey PNG atomically."""
    if array.dtype != np.uint8 or array.ndim != 2:
        raise ValueError(f"save_png expects a 2-D uint8 array, got {array.dtype} {array.shape}")
    buf = io.BytesIO()
    Image.fromarray(array, mode="L").save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    try:
        img = Image.open(path)
        img.load()  # decode now so truncation is reported here, not deep inside a DataLoader
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from exc
    return img


def read_image(path: str | Path) -> np.ndarray:
    """Grey image as float32 HxW in [0, 1].

    Handles 8/16-bit grey, palette, RGB and RGBA (alpha dropped). Colour becomes grey
    with the ITU-R 601 luma weights of Pillow's ``convert("L")`` (without its rounding),
    as LESPS and BasicIRSTD read images; NUAA-SIRST has tinted RGB files.
    """
    path = Path(path)
    img = _open(path)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return (arr / scale).astype(np.float32).clip(0, 1)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        hi = float(arr.max()) if arr.size else 1.0
        return (arr / hi if hi > 1 else arr).clip(0, 1)
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGBA" if "A" in img.mode or img.mode == "P" else "RGB")
        if img.mode == "RGBA":
            img = img.convert("RGB")
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if arr.ndim == 3:
        arr = arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.ascontiguousarray(arr, dtype=np.float32)


def read_mask(path: str | Path) -> np.ndarray:
    """Binary mask (bool HxW) from an 8-bit PNG whose values must be exactly {0, 255}."""
    path = Path(path)
    img = _open(path)
    if img.mode not in ("L", "1", "P"):
        raise DataError(f"{path}: mask must be single-channel (mode L), got mode {img.mode}")
    arr = np.asarray(img.convert("L"))
    values = np.unique(arr)
    bad = values[(values != 0) & (values != 255)]
    if bad.size:
        raise DataError(
            f"{path}: mask values must be 0 or 255, found {bad.size} other value(s) e.g. {int(bad[0])}"
        )
    return arr == 255
