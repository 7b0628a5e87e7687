"""Load a run's networks from a checkpoint and score them on a split, or predict a folder.

Evaluation rebuilds the run's splits from its saved config and checks them against
the run directory's ``splits/*.txt``, so a changed dataset is caught, not silently
scored. Results are written to ``<run>/eval/`` atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import load_checkpoint
from .config import RunConfig, config_from_dict
from .data.catalog import build_splits
from .data.dataset import ImageBank, Normalization
from .data.folder import IMAGE_SUFFIXES
from .device import resolve_device
from .inference import predict_probs
from .io import DataError, atomic_write_json, read_image, save_png
from .metrics import ImageStats, MetricAccumulator, Metrics
from .networks import build_network


@dataclass
class LoadedRun:
    cfg: RunConfig
    networks: dict[str, nn.Module]
    norm: Normalization
    eval_models: list[str]
    epoch: int
    path: Path

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
    return LoadedRun(cfg, nets, norm, list(ckpt["eval_models"]), int(ckpt["epoch"]), path)


def resolve_checkpoint(run_dir: str | Path, which: str = "best") -> Path:
    run_dir = Path(run_dir)
    path = run_dir / f"{which}.pt" if which in ("best", "last") else Path(which)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found (is {run_dir} a finished run?)")
    return path


def run_bank(run: LoadedRun, run_dir: Path, split: str) -> ImageBank:
    """The run's ``split`` as an image bank, checked against the ids the run recorded."""
    refs = build_splits(run.cfg.data).get(split)
    saved = run_dir / "splits" / f"{split}.txt"
    if saved.exists():
        recorded = [line for line in saved.read_text().splitlines() if line]
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


def network_forward(run: LoadedRun, which: str):
    net = run.networks[which]
    if which == "teacher":
        return lambda batch: net(batch["image"], batch.get("feats"))
    return lambda batch: net(batch["image"])


def predict_bank(run: LoadedRun, which: str, bank: ImageBank, device: torch.device) -> list[np.ndarray]:
    features = None
    if which == "teacher":
        from .engine import features_for

        features = features_for(run.cfg, [bank])[0]
    return predict_probs(
        network_forward(run, which), run.networks[which], bank, run.norm,
        divisor=max(getattr(n, "size_divisor", 1) for n in run.networks.values()), device=device,
        amp=run.cfg.train.amp, features=features,
    )


def evaluate_run(
    run_dir: str | Path, split: str = "test", which: str | None = None, checkpoint: str = "best",
    device: str = "auto", threshold: float = 0.5, save: bool = True,
) -> EvalResult:
    """IoU, nIoU, Pd, Fa of a run's network on ``split`` (dense masks are read here only)."""
    run_dir = Path(run_dir)
    dev = resolve_device(device)
    run = load_run(resolve_checkpoint(run_dir, checkpoint), dev)
    which = which or run.default_model()
    if which not in run.networks:
        raise ValueError(f"{run.path}: no network {which!r}; it holds {', '.join(run.networks)}")
    bank = run_bank(run, run_dir, split)
    probs = predict_bank(run, which, bank, dev)
    acc = MetricAccumulator(threshold=threshold)
    for i, p in enumerate(probs):
        acc.update(p, bank.mask(i))
    res = EvalResult(split, which, checkpoint, run.epoch, acc.compute(), list(acc.stats), bank.keys())
    if save:
        atomic_write_json(run_dir / "eval" / f"{split}_{which}_{checkpoint}.json", res.to_dict())
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
    """One 8-bit probability PNG per input image (same stem, same size) in ``out``."""
    from tqdm.auto import tqdm

    from .data.catalog import SampleRef
    from .data.folder import DatasetFolder

    dev = resolve_device(device)
    run = load_run(checkpoint, dev)
    which = which or run.default_model()
    files = list_images(images)
    folder = DatasetFolder(root=Path(images), name="input")
    written = []
    for path in tqdm(files, desc="predict", disable=not progress):
        bank = ImageBank([SampleRef(folder, path.stem)], images=[read_image(path)])
        prob = predict_bank(run, which, bank, dev)[0]
        written.append(save_png(Path(out) / f"{path.stem}.png", np.rint(prob * 255).astype(np.uint8)))
    return written
