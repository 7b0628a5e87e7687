"""From a :class:`DataConfig` to concrete train / val / test sample lists and their point labels.

The validation split is carved (seeded) from the training split; the test split is
only ever read for final reporting. Several datasets combine into one list of
samples (SIRST3-style), ids prefixed by each dataset's name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import SYNTHETIC_ROOT, DataConfig, DatasetSpec
from ..config.tree import ConfigError
from ..io import DataError
from ..store.paths import cache_dir
from .folder import DatasetFolder, FolderLayout
from .points import PointSet, points_from_masks


@dataclass(frozen=True)
class SampleRef:
    folder: DatasetFolder
    sid: str  # id inside its dataset folder

    @property
    def key(self) -> str:
        """Globally unique id: ``<dataset name>/<id>``."""
        return f"{self.folder.name}/{self.sid}"


@dataclass
class DataSplits:
    train: list[SampleRef]
    val: list[SampleRef]
    test: list[SampleRef]

    def get(self, name: str) -> list[SampleRef]:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; use train, val or test")
        return getattr(self, name)


def carve_validation(ids: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded split of ``ids`` into (train, val); val gets round(fraction·n) ids, at least one."""
    if len(ids) < 2:
        raise DataError(f"cannot carve a validation split from {len(ids)} training image(s)")
    n_val = min(len(ids) - 1, max(1, round(fraction * len(ids))))
    order = np.random.default_rng(seed).permutation(len(ids))
    val_idx = set(order[:n_val].tolist())
    train = [sid for i, sid in enumerate(ids) if i not in val_idx]
    val = [sid for i, sid in enumerate(ids) if i in val_idx]
    return train, val


def resolve_root(spec: DatasetSpec, cfg: DataConfig) -> Path:
    """The folder of ``spec``; the embedded synthetic default is generated on first use."""
    if spec.root != SYNTHETIC_ROOT:
        return Path(spec.root).expanduser()
    from .synthetic import SyntheticConfig, generate

    size = cfg.synthetic_size
    mixed = {} if size == 256 else {"height": size, "width": size, "size_range": None}
    options = dict(cfg.synthetic_options)
    fixed = {"n_train", "n_test", "seed", *mixed}
    clash = sorted(fixed & set(options))
    if clash:
        raise ConfigError(f"data.synthetic_options.{clash[0]}: set it with data.synthetic_* instead")
    try:
        syn = SyntheticConfig(n_train=cfg.synthetic_train, n_test=cfg.synthetic_test, seed=cfg.synthetic_seed,
                              **mixed, **options)
    except TypeError as exc:
        known = ", ".join(sorted(SyntheticConfig.__dataclass_fields__))
        raise ConfigError(f"data.synthetic_options: {exc} (known: {known})") from None
    except ValueError as exc:
        raise ConfigError(f"data.synthetic_options: {exc}") from None
    suffix = "" if size == 256 else f"-{size}px"
    if options:  # generated folders are cached by name: other options, other folder
        digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:10]
        suffix += f"-{digest}"
    root = cache_dir() / "datasets" / f"synthetic-s{syn.seed}-{syn.n_train}-{syn.n_test}{suffix}"
    if not FolderLayout(root).splits.is_dir():
        generate(root, syn, overwrite=True)
    return root


def build_splits(cfg: DataConfig) -> DataSplits:
    """Open every dataset, read its split files and carve validation from each training list."""
    train: list[SampleRef] = []
    val: list[SampleRef] = []
    test: list[SampleRef] = []
    names: set[str] = set()
    for spec in cfg.datasets:
        folder = DatasetFolder.open(resolve_root(spec, cfg), spec.name or ("synthetic" if spec.root == SYNTHETIC_ROOT else ""))
        if folder.name in names:
            raise DataError(f"{folder.root}: two datasets are named {folder.name!r}; set data.datasets[*].name")
        names.add(folder.name)
        tr_ids, va_ids = carve_validation(folder.split_ids(spec.train_split), cfg.val_fraction, cfg.val_seed)
        train += [SampleRef(folder, s) for s in tr_ids]
        val += [SampleRef(folder, s) for s in va_ids]
        if spec.test_split:
            test += [SampleRef(folder, s) for s in folder.split_ids(spec.test_split)]
    overlap = {r.key for r in train + val} & {r.key for r in test}
    if overlap:
        raise DataError(f"train and test splits share {len(overlap)} id(s), e.g. {sorted(overlap)[0]!r}")
    return DataSplits(train, val, test)


def points_file(folder: DatasetFolder, kind: str, seed: int) -> Path:
    """Where the derived points of a dataset live: its own points/ folder, or the user cache if read-only."""
    name = f"{kind}_seed{seed}.json" if kind == "coarse" else f"{kind}.json"
    local = folder.layout.points / name
    if local.exists():
        return local
    digest = hashlib.sha256(str(folder.root.resolve()).encode()).hexdigest()[:12]
    return cache_dir() / "points" / f"{folder.name}-{digest}" / name


def load_points(cfg: DataConfig, folders: list[DatasetFolder]) -> dict[str, PointSet]:
    """One :class:`PointSet` per dataset name; derived from masks once (centroid/coarse) and saved."""
    out: dict[str, PointSet] = {}
    for spec, folder in zip(cfg.datasets, folders):
        choice = spec.points or cfg.points
        if choice in ("centroid", "coarse"):
            path = points_file(folder, choice, cfg.points_seed)
            if not path.exists():
                make_points(folder, choice, cfg.points_seed).save(path)
            out[folder.name] = check_points(PointSet.load(path))
        else:
            out[folder.name] = check_points(PointSet.load(Path(choice).expanduser()), folder)
    return out


def check_points(ps: PointSet, folder: DatasetFolder | None = None) -> PointSet:
    """``ps`` after checking it can supervise: some point at all, and (for a user's file, given the dataset
    ``folder``) no id without an image, which would be a typo or another dataset's file.

    A file without any point would train on empty labels and score a perfect validation point-F1.
    """
    if ps.num_points() == 0:
        raise DataError(f"{ps.source}: no image has a point ({len(ps.points)} image(s) listed, all without "
                        "target); point supervision and point-F1 selection need at least one")
    if folder is None:
        return ps
    for sid in ps.points:
        if not folder.has_image(sid):
            raise DataError(f"{ps.source}: image {sid!r} has no image in {folder.root / 'images'}")
    return ps


def make_points(folder: DatasetFolder, kind: str, seed: int) -> PointSet:
    """Points for every image of ``folder`` that has a mask (the annotation step, done once)."""
    if not folder.has_masks():
        raise DataError(f"{folder.root}: no masks/ folder to derive {kind} points from; give a points file")
    ids = sorted(p.stem for p in folder.layout.masks.iterdir() if not p.name.startswith("."))
    items = ((sid, folder.load_mask(sid)) for sid in ids)
    return points_from_masks(items, kind, seed, source=str(folder.root))


def folders_of(cfg: DataConfig, splits: DataSplits) -> list[DatasetFolder]:
    """The dataset folders in config order (as opened by :func:`build_splits`)."""
    seen: dict[str, DatasetFolder] = {}
    for ref in splits.train + splits.val + splits.test:
        seen.setdefault(ref.folder.name, ref.folder)
    return list(seen.values())
