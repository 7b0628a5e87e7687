"""Load a run's networks from a checkpoint and score them on a split, or predict a folder.

Evaluation rebuilds the run's splits from its saved config and checks them against
the run directory's ``splits/*.txt``, so a changed dataset is caught, not silently
scored. Results are written to ``<run>/eval/`` atomically.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..classical.run import ClassicalRun, classical_run_dir
from ..config import DataConfig, RunConfig, config_from_dict
from ..data.catalog import build_splits
from ..data.dataset import ImageBank, Normalization
from ..data.folder import IMAGE_SUFFIXES
from ..io import DataError, atomic_write_json, read_image, read_text, save_png
from ..networks import Networks, build_network
from ..run_policy import reads_vfm
from ..runtime.device import resolve_device
from ..store.checkpoint import load_checkpoint
from ..store.outputs import plan_outputs
from ..store.run_dir import RunDir
from ..store.run_identity import check_checkpoint_of
from .metrics import ImageStats, MetricAccumulator, Metrics


@dataclass
class LoadedRun:
    cfg: RunConfig
    networks: Networks
    norm: Normalization
    eval_models: list[str]
    epoch: int
    path: Path
    run_id: str | None = None  # the run that wrote the checkpoint (None before run ids)

    def default_model(self) -> str:
        return self.eval_models[0]


def load_run(checkpoint: str | Path, device: torch.device | str = "cpu") -> LoadedRun:
    """Networks (eval mode) and normalisation stored in a checkpoint."""
    path = Path(checkpoint)
    ckpt = load_checkpoint(path)
    cfg = config_from_dict(ckpt["config"])
    device = resolve_device(device) if isinstance(device, str) else device
    nets = {}
    for name, state in ckpt["networks"].items():
        net = build_network(cfg, name)
        net.load_state_dict(state)
        nets[name] = net.to(device).eval()
    norm = Normalization(**ckpt["normalization"])
    return LoadedRun(cfg, Networks(nets), norm, list(ckpt["eval_models"]), int(ckpt["epoch"]), path, ckpt.get("run_id"))


def resolve_checkpoint(run_dir: str | Path, which: str = "best") -> Path:
    run_dir = Path(run_dir)
    path = run_dir / f"{which}.pt" if which in ("best", "last") else Path(which)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found (is {run_dir} a finished run?)")
    return path


def checkpoint_label(run_dir: Path, checkpoint: str) -> str:
    """Flat name of ``checkpoint`` in ``eval/`` file names: best, last, or the stem of a file in the run
    folder; a file elsewhere adds a hash of its location, so it never passes for the run's own best."""
    if checkpoint in ("best", "last"):
        return checkpoint
    path = Path(checkpoint).resolve()
    if path.parent == run_dir.resolve():
        return path.stem
    return f"{path.stem}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def run_bank(run: LoadedRun, run_dir: Path, split: str) -> ImageBank:
    """The run's ``split`` as an image bank, checked against the ids the run recorded."""
    return split_bank(run.cfg.data, run_dir, split)


def split_bank(data: DataConfig, run_dir: Path, split: str) -> ImageBank:
    """``split`` of ``data`` as an image bank, checked against the ids recorded in ``run_dir/splits``."""
    refs = build_splits(data).get(split)
    saved = RunDir(run_dir).split(split)
    if saved.exists():
        recorded = [line for line in read_text(saved, "split record").splitlines() if line]
        if recorded != [r.key for r in refs]:
            raise DataError(f"{saved}: the dataset's {split} split no longer matches the ids this run recorded")
    if not refs:
        raise DataError(f"{run_dir}: the {split} split is empty")
    return ImageBank(refs)


@dataclass
class EvalResult:
    split: str
    model: str
    checkpoint: str
    epoch: int
    metrics: Metrics
    per_image: list[ImageStats]
    keys: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split, "model": self.model, "checkpoint": self.checkpoint, "epoch": self.epoch,
            "metrics": self.metrics.to_dict(), "row": self.metrics.as_row(),
            "per_image": [dict(key=k, **s.__dict__) for k, s in zip(self.keys, self.per_image)],
        }


def predict_bank(run: LoadedRun, which: str, bank: ImageBank, device: torch.device) -> list[np.ndarray]:
    features = None
    if reads_vfm(run.cfg, which):
        from ..vfm.cache import features_for

        features = features_for(run.cfg, [bank])[0]
    return run.networks.predict(which, bank, run.norm, device=device, amp=run.cfg.train.amp, features=features)


def evaluate_run(
    run_dir: str | Path, split: str = "test", which: str | None = None, checkpoint: str = "best",
    device: str = "auto", threshold: float = 0.5, save: bool = True,
) -> EvalResult:
    """IoU, nIoU, Pd, Fa of a run's network on ``split`` (dense masks are read here only).

    A classical run (:mod:`semprior_core.classical.run`) is scored with its validation-tuned setting: its
    model is the method name, its only checkpoint ``best``, epoch 0; its masks are binary, so ``threshold``
    and ``device`` do not apply.
    """
    run_dir = Path(run_dir)
    if classical_run_dir(run_dir) is not None:
        classical = ClassicalRun.open(run_dir)
        which, epoch = classical.check_model(which, checkpoint), 0
        bank = split_bank(classical.cfg.data, run_dir, split)
        probs = [classical.segment(bank.image(i)) for i in range(len(bank))]
    else:
        dev = resolve_device(device)
        run = load_run(resolve_checkpoint(run_dir, checkpoint), dev)
        check_checkpoint_of(run_dir, run.path, run.run_id, run.cfg)
        which, epoch = which or run.default_model(), run.epoch
        if which not in run.networks:
            raise ValueError(f"{run.path}: no network {which!r}; it holds {', '.join(run.networks)}")
        bank = run_bank(run, run_dir, split)
        probs = predict_bank(run, which, bank, dev)
    acc = MetricAccumulator(threshold=threshold)
    for i, p in enumerate(probs):
        acc.update(p, bank.mask(i))
    label = checkpoint_label(run_dir, checkpoint)
    res = EvalResult(split, which, label, epoch, acc.compute(), list(acc.stats), bank.keys())
    if save:
        atomic_write_json(RunDir(run_dir).evaluation(split, which, label), res.to_dict())
    return res


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def predict_folder(checkpoint: str | Path, images: str | Path, out: str | Path, which: str | None = None,
                   device: str = "auto", progress: bool = True) -> list[Path]:
    """One 8-bit probability PNG per input image (same size) in ``out``, named as
    :data:`~semprior_core.store.outputs.NAMING` says; refused before anything is written if an output would be an
    input file.

    ``checkpoint`` may also be a classical run (its directory or its ``run.json``); its masks are 0/255.
    """
    from tqdm.auto import tqdm

    from ..data.catalog import SampleRef
    from ..data.folder import DatasetFolder

    files = list_images(images)
    targets = plan_outputs(files, out)
    if classical_run_dir(checkpoint) is not None:
        classical = ClassicalRun.open(checkpoint)
        classical.check_model(which)

        def predict(path: Path) -> np.ndarray:
            return classical.segment(read_image(path)).astype(np.float32)
    else:
        dev = resolve_device(device)
        run = load_run(checkpoint, dev)
        which = which or run.default_model()
        folder = DatasetFolder(root=Path(images), name="input")

        def predict(path: Path) -> np.ndarray:
            bank = ImageBank([SampleRef(folder, path.stem)], images=[read_image(path)])
            return predict_bank(run, which, bank, dev)[0]
    return [
        save_png(target, np.rint(predict(path) * 255).astype(np.uint8))
        for path, target in tqdm(list(zip(files, targets)), desc="predict", disable=not progress)
    ]
