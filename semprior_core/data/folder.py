"""Dataset folders in the community layout used by NUAA-SIRST and NUDT-SIRST.

```
<root>/images/<id>.png   <root>/masks/<id>.png   <root>/splits/**/<name>.txt  (one id per line)
```
Split files may have CRLF line endings and no final newline; duplicates and ids
without an image are errors that name the split file and the id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import DataError, read_image, read_mask, read_text

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


def read_split_file(path: str | Path) -> list[str]:
    """Ids of a split file (whitespace and ``\\r`` stripped, empty lines skipped).

    Any encoding :func:`~semprior_core.io.read_text` reads: UTF-8 with or without BOM, UTF-16 with BOM, latin-1.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: split file not found")
    ids: list[str] = []
    seen: set[str] = set()
    for lineno, line in enumerate(read_text(path, "split file").splitlines(), 1):
        sid = line.strip()
        if not sid:
            continue
        if not sid.isprintable():
            # No file name holds these; a UTF-16 file without its BOM reads as ids full of NULs.
            raise DataError(f"{path}: line {lineno}: id {sid!r} holds control characters "
                            "(save the split file as UTF-8 text)")
        if sid in seen:
            raise DataError(f"{path}: line {lineno}: duplicate id {sid!r}")
        seen.add(sid)
        ids.append(sid)
    if not ids:
        raise DataError(f"{path}: split file lists no ids")
    return ids


@dataclass(frozen=True)
class FolderLayout:
    """Where each kind of file lives in a dataset folder: the one place that names its sub-folders, for the
    readers, the checks, the synthetic writer and the tools that add points or splits."""

    root: Path

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def masks(self) -> Path:
        return self.root / "masks"

    @property
    def splits(self) -> Path:
        return self.root / "splits"

    @property
    def points(self) -> Path:
        """Point-label files made for this dataset (imported, annotated or simulated)."""
        return self.root / "points"


@dataclass(frozen=True)
class DatasetFolder:
    """One dataset on disk. ``name`` prefixes sample ids when several are combined."""

    root: Path
    name: str

    @classmethod
    def open(cls, root: str | Path, name: str = "") -> DatasetFolder:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: dataset folder not found")
        if not FolderLayout(root).images.is_dir():
            raise DataError(f"{root}: no images/ folder (expected images/<id>.png, masks/<id>.png)")
        return cls(root=root, name=name or root.name)

    @property
    def layout(self) -> FolderLayout:
        return FolderLayout(self.root)

    def image_path(self, sid: str) -> Path:
        return self._find(self.layout.images, sid)

    def mask_path(self, sid: str) -> Path:
        return self._find(self.layout.masks, sid)

    def has_masks(self) -> bool:
        return self.layout.masks.is_dir()

    def has_image(self, sid: str) -> bool:
        return self._find_or_none(self.layout.images, sid) is not None

    def mask_exists(self, sid: str) -> bool:
        return self._find_or_none(self.layout.masks, sid) is not None

    def split_ids(self, split_file: str) -> list[str]:
        """Ids of ``split_file`` (relative to the root), each checked to have an image."""
        path = self.root / split_file
        ids = read_split_file(path)
        for sid in ids:
            if not self.has_image(sid):
                raise DataError(f"{path}: id {sid!r} has no image in {self.layout.images}")
        return ids

    def load_image(self, sid: str) -> np.ndarray:
        return read_image(self.image_path(sid))

    def load_mask(self, sid: str, expect_shape: tuple[int, ...] | None = None) -> np.ndarray:
        path = self.mask_path(sid)
        mask = read_mask(path)
        if expect_shape is not None and mask.shape != tuple(expect_shape):
            raise DataError(
                f"{path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from its image "
                f"{expect_shape[1]}x{expect_shape[0]} (no silent resize)"
            )
        return mask

    def image_shape(self, sid: str) -> tuple[int, int]:
        from PIL import Image

        with Image.open(self.image_path(sid)) as im:
            return im.size[1], im.size[0]

    @staticmethod
    def _find_or_none(folder: Path, sid: str) -> Path | None:
        for suffix in IMAGE_SUFFIXES:
            p = folder / f"{sid}{suffix}"
            if p.exists():
                return p
        return None

    def _find(self, folder: Path, sid: str) -> Path:
        p = self._find_or_none(folder, sid)
        if p is None:
            raise DataError(f"{folder}: no file for id {sid!r} (looked for {', '.join(IMAGE_SUFFIXES)})")
        return p
