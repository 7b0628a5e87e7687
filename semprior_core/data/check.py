"""Validate a dataset folder: every split id has a readable image and a matching binary mask."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..io import DataError
from .folder import DatasetFolder, read_split_file


@dataclass
class SplitReport:
    split: str
    n_ids: int
    problems: list[str] = field(default_factory=list)


@dataclass
class DatasetReport:
    root: Path
    n_images: int
    n_masks: int
    splits: list[SplitReport]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems and all(not s.problems for s in self.splits)


def check_dataset(root: str | Path, max_problems: int = 50) -> DatasetReport:
    """Read every image and mask referenced by every ``splits/**/*.txt``; collect problems.

    Problems are messages that name the file; reading stops adding after ``max_problems``.
    """
    folder = DatasetFolder.open(root)
    images = sorted(p for p in folder.layout.images.iterdir() if not p.name.startswith("."))
    masks = sorted(p for p in folder.layout.masks.iterdir()) if folder.has_masks() else []
    problems: list[str] = []
    if not images:
        problems.append(f"{folder.root / 'images'}: no images")
    split_files = sorted(folder.layout.splits.rglob("*.txt")) if folder.layout.splits.is_dir() else []
    if not split_files:
        problems.append(f"{folder.root}: no split files under splits/")
    reports = []
    checked: dict[str, str | None] = {}
    for sf in split_files:
        rel = str(sf.relative_to(folder.layout.splits))
        try:
            ids = read_split_file(sf)
        except DataError as exc:
            reports.append(SplitReport(rel, 0, problems=[str(exc)]))
            continue
        rep = SplitReport(rel, len(ids))
        for sid in ids:
            if sid not in checked:
                checked[sid] = _check_sample(folder, sid)
            if checked[sid] and len(rep.problems) < max_problems:
                rep.problems.append(checked[sid])
        reports.append(rep)
    return DatasetReport(folder.root, len(images), len(masks), reports, problems)


def _check_sample(folder: DatasetFolder, sid: str) -> str | None:
    try:
        image = folder.load_image(sid)
        if folder.has_masks():
            folder.load_mask(sid, expect_shape=image.shape)
    except DataError as exc:
        return str(exc)
    return None
