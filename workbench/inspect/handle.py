"""An opened run directory with everything the views need, loaded lazily and kept: the checkpoint's
networks, the image banks of the recorded splits, point labels, VFM features and predictions.

Handles are shared per (run, checkpoint) by :func:`open_run`; a checkpoint rewritten on disk (a live run)
is reloaded on the next access, so views always show the newest weights.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semprior_core.config import RunConfig
from semprior_core.data.catalog import build_splits, folders_of, load_points
from semprior_core.data.dataset import FullImageDataset, ImageBank, collate
from semprior_core.evaluation.evaluate import LoadedRun, load_run
from semprior_core.io import DataError
from semprior_core.runtime.inference import to_device
from semprior_core.store.checkpoint import load_checkpoint
from semprior_core.store.runs import Run

SPLITS = ("train", "val", "test")


class RunHandle:
    """Lazy, cached access to one run for the inspection views (CPU unless told otherwise)."""

    def __init__(self, path: str | Path, checkpoint: str = "best", device: str = "cpu") -> None:
        if checkpoint not in ("best", "last"):
            raise ValueError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
        self.run = Run.open(path)
        self.checkpoint = checkpoint
        self.device = torch.device(device)
        self._loaded: tuple[float, LoadedRun] | None = None
        self._names: tuple[tuple[Path, float], list[str]] | None = None  # (checkpoint, mtime), network names
        self._banks: dict[str, ImageBank] = {}
        self._features: dict[str, Any] = {}
        self._predictions: dict[tuple, np.ndarray] = {}

    @property
    def path(self) -> Path:
        return self.run.path

    @property
    def name(self) -> str:
        return self.run.name

    @cached_property
    def cfg(self) -> RunConfig:
        return self.run.config()

    # -- checkpoint ------------------------------------------------------------------------------
    def checkpoint_path(self) -> Path | None:
        """The requested checkpoint, else ``last.pt`` (a run still before its first selection), else None."""
        for name in (self.checkpoint, "last"):
            p = self.path / f"{name}.pt"
            if p.is_file():
                return p
        return None

    def loaded(self) -> LoadedRun | None:
        """Networks of the checkpoint (eval mode), reloaded when the file changed; None before any."""
        path = self.checkpoint_path()
        if path is None:
            return None
        mtime = path.stat().st_mtime
        if self._loaded is None or self._loaded[0] != mtime or self._loaded[1].path != path:
            self._loaded = (mtime, load_run(path, self.device))
            self._predictions.clear()
        return self._loaded[1]

    def networks(self) -> list[str]:
        """Network names in the checkpoint, the selection model first ([] before any checkpoint). Read from
        the checkpoint's fields without building the networks (a VFM teacher takes seconds), so that views
        which only name them stay fast."""
        path = self.checkpoint_path()
        if path is None:
            return []
        stamp = (path, path.stat().st_mtime)
        if self._names is None or self._names[0] != stamp:
            ckpt = load_checkpoint(path)
            first = list(ckpt["eval_models"])
            self._names = (stamp, first + [n for n in ckpt["networks"] if n not in first])
        return self._names[1]

    def checkpoint_label(self) -> str:
        run = self.loaded()
        return "no checkpoint yet" if run is None else f"{run.path.stem}.pt (epoch {run.epoch})"

    def has_scam(self) -> bool:
        """Whether the run's teacher modulates features with SCAM (needs a VFM)."""
        run = self.loaded()
        return run is not None and "teacher" in run.networks and len(getattr(run.networks["teacher"], "scams", [])) > 0

    # -- data ------------------------------------------------------------------------------------
    def bank(self, split: str) -> ImageBank:
        """Images of ``split``, checked against the ids the run recorded."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        if split not in self._banks:
            refs = build_splits(self.cfg.data).get(split)
            recorded = self.run.split(split)
            if recorded and recorded != [r.key for r in refs]:
                raise DataError(f"{self.path}: the dataset's {split} split no longer matches the ids this run recorded")
            self._banks[split] = ImageBank(refs)
        return self._banks[split]

    def keys(self, split: str) -> list[str]:
        return self.bank(split).keys()

    def index(self, split: str, image: int | str) -> int:
        """Position of ``image`` (an index or a key) in ``split``."""
        keys = self.keys(split)
        if isinstance(image, str):
            if image not in keys:
                raise KeyError(f"{self.name}: no image {image!r} in the {split} split")
            return keys.index(image)
        if not -len(keys) <= image < len(keys):
            raise IndexError(f"{self.name}: image index {image} out of range for {len(keys)} {split} images")
        return image % len(keys)

    @cached_property
    def _point_sets(self) -> dict:
        splits = build_splits(self.cfg.data)
        return load_points(self.cfg.data, folders_of(self.cfg.data, splits))

    def points(self, split: str, index: int) -> np.ndarray:
        """Point labels (N, 2) of (y, x) of one image; empty when the dataset has none for it."""
        ref = self.bank(split).refs[index]
        try:
            return self._point_sets[ref.folder.name].check_against(ref.sid, self.bank(split).shape(index))
        except (KeyError, DataError):
            return np.zeros((0, 2), dtype=np.int64)

    def features(self, split: str):
        """VFM feature source of ``split`` for the teacher, or None without SCAM."""
        if not self.has_scam():
            return None
        if split not in self._features:
            from semprior_core.vfm.cache import features_for

            self._features[split] = features_for(self.cfg, [self.bank(split)])[0]
        return self._features[split]

    def batch(self, split: str, index: int) -> dict[str, Any]:
        """One whole image as the networks see it: normalised, padded, with VFM maps when the teacher uses them."""
        run = self._require()
        ds = FullImageDataset(self.bank(split), run.norm, run.networks.size_divisor, features=self.features(split),
                              feature_stride=run.networks.feature_stride)
        return to_device(collate([ds[index]]), self.device)

    # -- predictions -----------------------------------------------------------------------------
    def predict(self, which: str, split: str, index: int, scam: bool = True) -> np.ndarray:
        """Probability map (H, W) of network ``which``; ``scam=False`` runs the teacher without SCAM."""
        run = self._require()
        if which not in run.networks:
            raise ValueError(f"{self.name}: no network {which!r}; it holds {', '.join(run.networks)}")
        key = (which, split, index, scam)
        if key not in self._predictions:
            # A student's prediction must not build the VFM (features are opened lazily per split).
            features = self.features(split) if run.networks.takes_features(which) else None
            self._predictions[key] = run.networks.predict(
                which, self.bank(split), run.norm, device=self.device, indices=[index], features=features, scam=scam
            )[0]
        return self._predictions[key]

    def _require(self) -> LoadedRun:
        run = self.loaded()
        if run is None:
            raise DataError(f"{self.path}: no checkpoint yet (best.pt / last.pt)")
        return run


DEMO_RUN = Path("runs") / "demo"  # where `semprior demo` writes


def default_run_path() -> str:
    """The run notebooks open first: ``$SEMPRIOR_RUN``, else the demo run found from the working directory or
    one of its parents (Jupyter starts kernels in the notebook's folder), else ``runs/demo``. A found run is
    given relative to the working directory, so that an exported notebook holds no absolute path."""
    if os.environ.get("SEMPRIOR_RUN"):
        return os.environ["SEMPRIOR_RUN"]
    for base in (Path.cwd(), *Path.cwd().parents):
        if (base / DEMO_RUN / "config.yaml").is_file():
            return os.path.relpath(base / DEMO_RUN)
    return str(DEMO_RUN)


_HANDLES: dict[tuple[Path, str], RunHandle] = {}


def open_run(run: str | Path | RunHandle, checkpoint: str = "best") -> RunHandle:
    """The shared :class:`RunHandle` of a run directory (a handle passes through unchanged)."""
    if isinstance(run, RunHandle):
        return run
    key = (Path(run).resolve(), checkpoint)
    if key not in _HANDLES:
        _HANDLES[key] = RunHandle(key[0], checkpoint)
    return _HANDLES[key]
