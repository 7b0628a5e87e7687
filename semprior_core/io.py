"""File I/O that never leaves a half-written file and never fails silently.

Every writer goes through a temporary file in the destination folder, fsync and
``os.replace`` (atomic on POSIX), so a run killed mid-write keeps the previous version;
a write that fails (disk full, quota, permissions) is a :class:`WriteError` naming the file.
Image readers turn every decoding problem into :class:`DataError` naming the file.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


class DataError(ValueError):
    """Bad input data; the message names the file and the problem."""


class WriteError(OSError):
    """An output file could not be written (disk full, quota, permissions); ``filename`` names it."""

    def __str__(self) -> str:
        return f"{self.filename}: cannot write ({self.strerror})"


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn an OSError into a :class:`WriteError` naming ``path``: the file the user asked for, not a temporary."""
    try:
        yield
    except OSError as exc:
        raise WriteError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def atomic_write(path: str | Path, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path``, then atomically rename it.

    The file gets mode 0o666 less the umask, as other tools' files do (``mkstemp`` would make it 0o600).
    """
    path = Path(path)
    with _writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
        # The kernel applies the umask (and any default ACL) to the mode; O_EXCL never reuses a file.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
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
    with _writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def read_text(path: str | Path, what: str = "file") -> str:
    """Text of ``path`` as users save it: UTF-8 (BOM optional), UTF-16 with a BOM, else latin-1.

    Latin-1 maps every byte, so a file from an editor's "ANSI" setting keeps its names instead of failing.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} ({exc.strerror})") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: {what} starts with a UTF-16 mark but is not UTF-16 text ({exc.reason})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_json(path: str | Path, what: str = "file") -> Any:
    """The parsed JSON of ``path``; a missing or malformed file is a :class:`DataError` naming it."""
    path = Path(path)
    return _parse_json(path, read_text(path, what))


def _parse_json(path: Path, text: str, line: int | None = None) -> Any:
    """``text`` parsed; ``line`` is its line number inside a JSON-lines file."""
    where = "" if line is None else f" line {line} is"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = "" if line is not None else f" at line {exc.lineno}"
        raise DataError(f"{path}:{where} not valid JSON ({exc.msg}{at})") from None
    except (ValueError, RecursionError) as exc:  # integers past Python's digit limit, absurd nesting
        raise DataError(f"{path}:{where} not usable JSON ({type(exc).__name__}: {exc})") from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Records (JSON objects) of a JSON-lines file; a torn final line (a kill mid-append) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    # split("\n"), not splitlines(): JSON text may hold U+2028 or U+0085, which end no record.
    lines = [(n, ln) for n, ln in enumerate(read_text(path, "JSON-lines file").split("\n"), 1) if ln.strip()]
    out = []
    for k, (n, line) in enumerate(lines):
        try:
            record = _parse_json(path, line, n)
        except DataError:
            if k == len(lines) - 1:
                break
            raise
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {n} is a JSON {type(record).__name__}, expected an object")
        out.append(record)
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
    except Exception as exc:  # Pillow's decoders raise many types (ValueError, DecompressionBombError, ...)
        raise DataError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc
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
