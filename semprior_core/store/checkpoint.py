"""Safe checkpoints: atomic, versioned, checksummed, loaded without executing pickled code.

On disk a checkpoint is a small torch file ``{format, version, sha256, blob}`` where
``blob`` is the uint8 bytes of the real payload (itself a ``torch.save`` of tensors,
dicts, lists and primitives). Loading verifies the checksum before decoding and uses
``weights_only=True`` for both layers, so a tampered or truncated file is refused.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_write_bytes

FORMAT = "semprior-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is unreadable, corrupt or incompatible; the message says which field."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    inner = io.BytesIO()
    torch.save(payload, inner)
    data = inner.getvalue()
    outer = io.BytesIO()
    torch.save(
        {
            "format": FORMAT,
            "version": VERSION,
            "sha256": hashlib.sha256(data).hexdigest(),
            "blob": torch.frombuffer(bytearray(data), dtype=torch.uint8),
        },
        outer,
    )
    return atomic_write_bytes(path, outer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        outer = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt zips / pickles
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(outer, dict) or outer.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a semprior checkpoint (field 'format' is {outer.get('format') if isinstance(outer, dict) else None!r})")
    if outer.get("version") != VERSION:
        raise CheckpointError(f"{path}: format version {outer.get('version')} differs from this semprior's {VERSION}")
    blob = outer.get("blob")
    if not isinstance(blob, torch.Tensor) or blob.dtype != torch.uint8 or blob.dim() != 1:
        raise CheckpointError(f"{path}: field 'blob' is not the payload's bytes (a 1-D uint8 tensor)")
    data = blob.numpy().tobytes()
    if hashlib.sha256(data).hexdigest() != outer.get("sha256"):
        raise CheckpointError(f"{path}: checksum mismatch (file corrupted or modified)")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: payload cannot be decoded safely ({exc})") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: payload is a {type(payload).__name__}, expected a dict of fields")
    return payload
