"""Score a run on another dataset folder (cross-dataset generalisation), with its own checkpoint and settings.

``evaluate_on(run, data)`` predicts every image of ``data``'s test split (or all of its images) with the run's
validation-selected checkpoint, the normalisation stored in that checkpoint (computed on the run's training
images) and the run's threshold (0.5, what ``semprior eval`` and checkpoint selection use); a classical run
segments with its validation-tuned setting. Besides IoU, nIoU, Pd and Fa it records what
:mod:`semprior_core.evaluation.detection_curves` needs: Pd–Fa curve counts, each target's size, local contrast and
detection, each false-alarm object's area, and the same for target-free frames (all-zero masks are valid).

The record says which data the run was trained on and which it was evaluated on. It is written to
``<run>/eval_cross/<dataset>/<split>_<model>_<checkpoint>.json``, apart from ``eval/``, so in-dataset
tables never mix in another dataset's numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..classical.run import ClassicalRun, classical_run_dir
from ..config import SYNTHETIC_ROOT, DataConfig, DatasetSpec
from ..data.catalog import SampleRef, resolve_root
from ..data.dataset import ImageBank
from ..data.folder import DatasetFolder
from ..io import DataError, atomic_write_json, read_json
from ..store.run_dir import RunDir
from .detection_curves import (
    CONTRAST_BINS,
    CURVE_THRESHOLDS,
    DEFAULT_MAX_FA,
    SIZE_BINS,
    CurveCounts,
    FrameRecord,
    auc_pd_fa,
    false_alarms_per_frame,
    frame_record,
    pd_by_bin,
    sum_counts,
)
from .metrics import ImageStats, MetricAccumulator, Metrics

SPLITS = ("test", "all")
CHUNK = 32  # images predicted at a time


@dataclass
class CrossEvalResult:
    trained_on: list[dict[str, str]]  # [{"name", "root"}] of the run's training datasets
    evaluated_on: dict[str, Any]  # name, root, split, n_images, n_target_free
    same_data: bool  # evaluated on (part of) the data the run was trained on: an in-domain reference
    model: str
    checkpoint: str
    epoch: int
    threshold: float | None  # None for a classical run (its masks are binary)
    normalization: dict[str, float] | None
    metrics: Metrics
    per_image: list[ImageStats]
    keys: list[str]
    frames: list[FrameRecord] = field(repr=False)

    def curve(self, which: str = "all") -> CurveCounts:
        """Summed curve counts over ``all`` frames, ``with_targets`` or ``target_free`` frames."""
        return curve_of(self.frames, which)

    def to_dict(self) -> dict[str, Any]:
        curves = {w: self.curve(w).to_dict() for w in ("all", "with_targets", "target_free")}
        all_curve = self.curve()
        return {
            "kind": "cross_eval", "trained_on": self.trained_on, "evaluated_on": self.evaluated_on,
            "same_data": self.same_data, "split": self.evaluated_on["split"], "model": self.model,
            "checkpoint": self.checkpoint, "epoch": self.epoch, "threshold": self.threshold,
            "normalization": self.normalization, "metrics": self.metrics.to_dict(), "row": self.metrics.as_row(),
            "auc": {"max_fa": DEFAULT_MAX_FA, "value": _none_if_nan(auc_pd_fa(all_curve.fa(), all_curve.pd()))},
            "false_alarms": {k: v.to_dict() for k, v in false_alarms_per_frame(
                [len(f.false_alarm_areas) for f in self.frames], [f.n_targets for f in self.frames]).items()},
            "bins": breakdowns(self.frames),
            "curves": curves,
            "per_image": [dict(key=k, **s.__dict__, **f.to_dict())
                          for k, s, f in zip(self.keys, self.per_image, self.frames, strict=True)],
        }


def _none_if_nan(v: float) -> float | None:
    return None if np.isnan(v) else v


def curve_of(frames: Sequence[FrameRecord], which: str = "all") -> CurveCounts:
    pick = {"all": lambda f: True, "with_targets": lambda f: f.n_targets > 0,
            "target_free": lambda f: f.n_targets == 0}
    return sum_counts([f.curve for f in frames if pick[which](f)],
                      frames[0].curve.thresholds if frames else CURVE_THRESHOLDS)


def breakdowns(frames: Sequence[FrameRecord]) -> dict[str, list[dict]]:
    """Pd per target-size bin and per local-contrast bin, at the run's threshold."""
    detected = [d for f in frames for d in f.detected]
    return {
        "size": [b.to_dict() for b in pd_by_bin([a for f in frames for a in f.target_areas], detected, SIZE_BINS)],
        "contrast": [b.to_dict() for b in pd_by_bin([c for f in frames for c in f.target_contrast], detected,
                                                    CONTRAST_BINS)],
    }


# -- which data ----------------------------------------------------------------------------------------
def trained_on_datasets(specs: Sequence[DatasetSpec], data_cfg: DataConfig) -> list[dict[str, str]]:
    """Name and folder of each dataset a run was trained on (the synthetic default resolved to its folder)."""
    out = []
    for spec in specs:
        root = resolve_root(spec, data_cfg) if spec.root == SYNTHETIC_ROOT else Path(spec.root).expanduser()
        name = spec.name or ("synthetic" if spec.root == SYNTHETIC_ROOT else root.name)
        out.append({"name": name, "root": str(root)})
    return out


def open_target_folder(data: str | Path) -> DatasetFolder:
    """The dataset folder to evaluate on; a missing folder, images/ or masks/ is one error naming the path."""
    folder = DatasetFolder.open(data)
    if not folder.has_masks():
        raise DataError(f"{folder.root}: no masks/ folder; scoring needs a mask per image "
                        "(an all-zero mask marks a target-free frame)")
    return folder


def target_ids(folder: DatasetFolder, split: str, split_file: str) -> list[str]:
    """Ids of ``split``: the ids of ``split_file`` for ``test``, every image of ``images/`` for ``all``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "test":
        return folder.split_ids(split_file)
    from ..data.folder import IMAGE_SUFFIXES

    ids = sorted({p.stem for p in folder.layout.images.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")})
    if not ids:
        raise DataError(f"{folder.root / 'images'}: no images")
    return ids


def _same(a: str | Path, b: str | Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


# -- the run as a predictor ------------------------------------------------------------------------------
@dataclass
class Predictor:
    """A run's selected network (or classical setting) as ``predict(bank) -> probability maps``."""

    run_dir: Path
    model: str
    checkpoint: str  # the label of eval file names (best, last, ...)
    epoch: int
    threshold: float | None  # None: classical masks are binary
    normalization: dict[str, float] | None
    data: DataConfig  # what the run was trained on
    predict: Callable[[ImageBank], list[np.ndarray]] = field(repr=False)


def open_predictor(run_dir: str | Path, which: str | None = None, checkpoint: str = "best", device: str = "auto",
                   threshold: float = 0.5) -> Predictor:
    """The run's ``checkpoint`` (checked to be its own) with the normalisation it stores, or its classical setting."""
    from ..store.run_identity import check_checkpoint_of
    from .evaluate import checkpoint_label, load_run, predict_bank, resolve_checkpoint

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: run folder not found")
    label = checkpoint_label(run_dir, checkpoint)
    if classical_run_dir(run_dir) is not None:
        classical = ClassicalRun.open(run_dir)
        model = classical.check_model(which, checkpoint)
        return Predictor(run_dir, model, label, 0, None, None, classical.cfg.data,
                         lambda bank: [classical.segment(bank.image(j)) for j in range(len(bank))])
    from ..runtime.device import resolve_device

    dev = resolve_device(device)
    run = load_run(resolve_checkpoint(run_dir, checkpoint), dev)
    check_checkpoint_of(run_dir, run.path, run.run_id, run.cfg)
    model = which or run.default_model()
    if model not in run.networks:
        raise ValueError(f"{run.path}: no network {model!r}; it holds {', '.join(run.networks)}")
    return Predictor(run_dir, model, label, run.epoch, threshold, {"mean": run.norm.mean, "std": run.norm.std},
                     run.cfg.data, lambda bank: predict_bank(run, model, bank, dev))


def own_spec(pred: Predictor, folder: DatasetFolder) -> DatasetSpec | None:
    """The run's dataset spec of ``folder`` when the run was trained on it, else None."""
    trained_on = trained_on_datasets(pred.data.datasets, pred.data)
    return next((s for s, t in zip(pred.data.datasets, trained_on) if _same(t["root"], folder.root)), None)


def split_refs(pred: Predictor, folder: DatasetFolder, split: str) -> list[SampleRef]:
    """Samples of ``folder``'s ``split``; ``all`` on the data the run was trained on is refused."""
    own = own_spec(pred, folder)
    if own is not None and split == "all":
        raise DataError(f"{folder.root}: {pred.run_dir} was trained on this dataset; --split all would score its "
                        "training images (use --split test)")
    ids = target_ids(folder, split, own.test_split if own is not None else DatasetSpec().test_split)
    return [SampleRef(folder, sid) for sid in ids]


def chunks(refs: Sequence[SampleRef], progress: bool = False, desc: str = "") -> Iterator[ImageBank]:
    """Image banks of at most :data:`CHUNK` samples: each is dropped after use, so a whole dataset's images
    and probability maps never sit in memory at once."""
    starts = range(0, len(refs), CHUNK)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, unit="chunk")
    for start in starts:
        yield ImageBank(refs[start:start + CHUNK])


# -- the evaluation -------------------------------------------------------------------------------------
def evaluate_on(
    run_dir: str | Path, data: str | Path, split: str = "test", which: str | None = None, checkpoint: str = "best",
    device: str = "auto", threshold: float = 0.5, save: bool = True, thresholds: Sequence[float] = CURVE_THRESHOLDS,
    progress: bool = False,
) -> CrossEvalResult:
    """Score run ``run_dir`` on the dataset folder ``data`` (its ``split``: ``test`` or ``all``).

    ``split="all"`` on the data the run was trained on is refused: it would score training images.
    """
    pred = open_predictor(run_dir, which, checkpoint, device, threshold)
    folder = open_target_folder(data)
    refs = split_refs(pred, folder, split)
    acc = MetricAccumulator(threshold=threshold)
    frames: list[FrameRecord] = []
    for bank in chunks(refs, progress, f"eval on {folder.name}"):
        for j, p in enumerate(pred.predict(bank)):
            acc.update(p, bank.mask(j))
            frames.append(frame_record(p, bank.mask(j), bank.image(j), threshold=threshold, thresholds=thresholds))
    evaluated_on = {"name": folder.name, "root": str(folder.root), "split": split, "n_images": len(frames),
                    "n_target_free": sum(1 for f in frames if f.n_targets == 0)}
    res = CrossEvalResult(trained_on_datasets(pred.data.datasets, pred.data), evaluated_on,
                          own_spec(pred, folder) is not None, pred.model, pred.checkpoint, pred.epoch, pred.threshold,
                          pred.normalization, acc.compute(), list(acc.stats), [r.key for r in refs], frames)
    if save:
        atomic_write_json(cross_eval_path(pred.run_dir, folder.name, split, pred.model, pred.checkpoint), res.to_dict())
    return res


def cross_eval_path(run_dir: Path, dataset: str, split: str, model: str, label: str) -> Path:
    return RunDir(run_dir).eval_cross_dir / dataset / f"{split}_{model}_{label}.json"


CROSS_FIELDS = ("trained_on", "evaluated_on", "model", "checkpoint", "epoch", "row", "per_image", "curves", "bins",
                "false_alarms", "auc")


def cross_evaluations(run_dir: str | Path) -> list[dict[str, Any]]:
    """Saved cross-dataset evaluations of a run (each checked for the fields reports use)."""
    folder = RunDir(run_dir).eval_cross_dir
    out = []
    for path in sorted(folder.glob("*/*.json")) if folder.is_dir() else []:
        rec = read_json(path, "cross-dataset evaluation")
        if not isinstance(rec, dict):
            raise DataError(f"{path}: expected a JSON object")
        missing = [k for k in CROSS_FIELDS if k not in rec]
        if missing:
            raise DataError(f"{path}: field {missing[0]!r} is missing")
        out.append(rec | {"path": str(path)})
    return out
