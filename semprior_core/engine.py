"""The generic training loop: epochs, validation-based selection, checkpoints, resume, devices.

``train(cfg, run_dir)`` builds data, supervision and the method named in the config,
then loops. Selection uses the validation split carved from training data only.
Each epoch ends with ``last.pt`` (atomic) — a killed run resumes from it with
``resume=True`` and, on CPU with a fixed seed, ends exactly as an uninterrupted one.
A resume may change only what :data:`~semprior_core.config.RESUME_MAY_CHANGE` lists (each resume is
recorded in ``run.json``), and is checked in full before the run directory changes.
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .config import (
    ConfigChange,
    ConfigError,
    RunConfig,
    check_resume,
    config_dict,
    config_from_dict,
    steps_per_epoch,
    supervision_name,
)
from .data.catalog import DataSplits, build_splits, folders_of, load_points
from .data.dataset import CropDataset, ImageBank, Normalization, collate, crop_placement, epoch_plan
from .evaluation.metrics import MetricAccumulator
from .evaluation.selection import point_scores
from .io import DataError, atomic_write_bytes, read_jsonl, read_text
from .method import create_method
from .method.base import Context, Method
from .method.supervision import Predict, Supervision
from .run_policy import selection_for
from .runtime import distributed as dist
from .runtime.device import autocast, epoch_seed, make_scaler, resolve_device, seed_everything
from .runtime.environment import environment
from .runtime.inference import to_device
from .store.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .store.run_dir import SPLITS, RunDir
from .store.run_identity import check_checkpoint_of, new_run_id, read_run_record


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, unusable run directory, ...)."""


@dataclass
class _Resume:
    """What a resume found valid: the checkpoint, run.json, the allowed config changes and the run's id."""

    checkpoint: dict[str, Any]
    record: dict[str, Any]
    changes: list[ConfigChange]
    run_id: str


def lr_factor(cfg: RunConfig, progress: float) -> float:
    """Pure learning-rate multiplier at ``progress`` epochs into the run (fractional within an epoch, so the
    schedule moves every step): linear warm-up, then the schedule."""
    t = cfg.train
    if progress < t.warmup_epochs:
        return (progress + 1) / (t.warmup_epochs + 1)
    if t.schedule == "cosine":
        span = max(1, t.epochs - t.warmup_epochs)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - t.warmup_epochs) / span)))
    if t.schedule == "step":
        return 0.1 ** sum(progress >= round(m * t.epochs) for m in t.step_milestones)
    return 1.0


def samples_per_epoch(cfg: RunConfig, n_active: int, world: int = 1) -> int:
    """Crops drawn in one epoch: ``train.steps`` spread over the epochs (whole batches on every rank),
    ``data.samples_per_epoch``, or one per active image."""
    if cfg.train.steps:
        return steps_per_epoch(cfg) * cfg.data.batch_size * world
    return cfg.data.samples_per_epoch or n_active


def make_optimizer(cfg: RunConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    # foreach: one fused update over all tensors; torch picks it only on CUDA, yet on the CPU it is ~25 % faster
    # for these networks' ~150 small tensors (measured on ACM: 13 → 10 ms per step)
    t = cfg.train
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay, foreach=True)
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=0.9, weight_decay=t.weight_decay, foreach=True)
    return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay, foreach=True)


def prepare_run_dir(run_dir: Path, resume: bool) -> int:
    """Fail before any training if the run directory is unusable, would be overwritten or is held by another
    training; returns the fd of the lock that holds it for this process (an OS lock, so a killed process
    releases it): two trainings into one folder would interleave ``metrics.jsonl`` and each other's
    checkpoints. The lock is on the folder itself, so taking it creates no file: a refused resume leaves the
    run byte-identical."""
    if run_dir.exists() and not resume and RunDir(run_dir).last.exists():
        raise TrainingError(f"{run_dir}: already holds a run (last.pt); use --resume or another --out")
    if resume and not RunDir(run_dir).last.exists():
        raise TrainingError(f"{run_dir}: nothing to resume (no last.pt)")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise TrainingError(f"{run_dir}: run directory is not writable ({exc.strerror})") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _probe_space(run_dir / ".write-probe")
    except BlockingIOError:
        os.close(fd)
        raise TrainingError(
            f"{run_dir}: another process is training into this run; wait for it to end or use another --out"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise TrainingError(f"{run_dir}: run directory is not writable ({exc.strerror})") from exc
    return fd


def _probe_space(probe: Path) -> None:
    """Write 1 MiB and remove it: catches a full disk, not only permissions, and leaves nothing behind."""
    try:
        probe.write_bytes(b"\0" * 1024 * 1024)
    finally:
        probe.unlink(missing_ok=True)  # a full disk leaves a partial probe


class Trainer:
    """Holds one run's state; ``fit()`` runs the remaining epochs, ``close()`` releases the run directory."""

    _lock: int | None = None

    def __init__(self, cfg: RunConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True):
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress
        self.files = RunDir(self.run_dir)  # every path of the run, and its writes
        self.rank, self.world = dist.rank(), dist.world_size()
        if self.rank == 0:
            self._lock = prepare_run_dir(self.run_dir, resume)  # held until close() or the end of the process
        try:
            # Everything is checked and built before the run directory changes: a resume refused for any
            # reason (config, checkpoint, run files, data) leaves the run byte-identical.
            resumed = self._check_resume() if resume else None
            self.run_id = resumed.run_id if resumed is not None else new_run_id()
            self._build()
            if resumed is not None:
                self._check_splits()
                self._restore(resumed)
            elif self.rank == 0:
                self._start_run()
        except BaseException:
            self.close()  # released now, not whenever the half-built trainer is collected
            raise

    def _build(self) -> None:
        cfg = self.cfg
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        seed_everything(cfg.train.seed)
        self.device = resolve_device(cfg.train.device)
        self.selection = selection_for(cfg)

        self.splits: DataSplits = build_splits(cfg.data)
        self.train_bank, self.val_bank = ImageBank(self.splits.train), ImageBank(self.splits.val)
        self.norm = Normalization.from_images([self.train_bank.image(i) for i in range(len(self.train_bank))])
        points = None
        if cfg.method.supervision != "full" or self.selection.metric == "point_f1":
            points = load_points(cfg.data, folders_of(cfg.data, self.splits))
        self.points = points
        self.supervision = Supervision(cfg, self.train_bank, points, self.files.labels if self.rank == 0 else None)
        self.val_supervision = Supervision(cfg, self.val_bank, points, None) if points is not None else None

        ctx = Context(
            cfg=cfg, device=self.device, run_dir=self.files, train_bank=self.train_bank, val_bank=self.val_bank,
            norm=self.norm, supervision=self.supervision, rank=self.rank, world_size=self.world,
        )
        from .vfm.cache import features_for  # lazy: importing the engine alone does not load the VFM stack

        ctx.train_features, ctx.val_features = features_for(cfg, [self.train_bank, self.val_bank])
        self.method: Method = create_method(cfg, ctx, val_supervision=self.val_supervision)
        dist.broadcast_state(self.method.networks())
        self.optimizer = make_optimizer(cfg, self.method.parameters())
        self.scaler = make_scaler(self.device, cfg.train.amp)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"score": -math.inf, "epoch": None}

    def close(self) -> None:
        """Release the run directory for another process."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __del__(self) -> None:
        self.close()

    # -- run directory -------------------------------------------------------------------
    def _write_config(self) -> None:
        self.files.write_config(config_dict(self.cfg))

    def _start_run(self) -> None:
        self.files.clear_records()
        self._write_run_files()
        self.supervision.record_initial()
        self.method.on_start()

    def _write_run_files(self) -> None:
        self._write_config()
        env = environment() | {"device": str(self.device), "seed": self.cfg.train.seed, "world_size": self.world}
        self.files.write_environment(env)
        self.files.write_splits({name: [r.key for r in self.splits.get(name)] for name in SPLITS})
        self.files.write_info(
            {
                "kind": "trained",
                "method": self.cfg.method.name,
                "selection": self.selection.__dict__,
                "normalization": self.norm.__dict__,
                "eval_models": list(self.method.eval_models),
                "supervision": supervision_name(self.cfg),
                "run_id": self.run_id,
                "resumes": [],
            },
        )

    def _save_epoch(self, record: dict[str, Any], improved: bool) -> None:
        """last.pt first: a resume starts from it and rebuilds the rest from it (metrics.jsonl, and best.pt by
        :meth:`_repair_best`), so a write failing at any point (a full disk) leaves a resumable run."""
        payload = self._payload()
        save_checkpoint(self.files.last, payload)
        if improved:
            save_checkpoint(self.files.best, payload)
        self.files.append_metrics(record)

    def _repair_best(self) -> None:
        """When the last finished epoch is the best, best.pt is last.pt: rewrite it if a failed write left it
        behind (or missing)."""
        if self.best.get("epoch") != self.epoch:
            return
        data = self.files.last.read_bytes()
        best = self.files.best
        if not best.is_file() or best.read_bytes() != data:
            atomic_write_bytes(best, data)

    def _payload(self) -> dict[str, Any]:
        return {
            "config": config_dict(self.cfg),
            "epoch": self.epoch,
            "networks": {k: v.state_dict() for k, v in self.method.networks().items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "method": self.method.state_dict(),
            "supervision": self.supervision.state_dict(),
            "val_supervision": self.val_supervision.state_dict() if self.val_supervision else {},
            "history": self.history,
            "best": self.best,
            "normalization": {"mean": self.norm.mean, "std": self.norm.std},
            "eval_models": list(self.method.eval_models),
            "run_id": self.run_id,
        }

    def _check_resume(self) -> _Resume:
        """The checkpoint to resume from and what the resume changes; an error if it is refused."""
        path = self.files.last
        ckpt = load_checkpoint(path)
        record = read_run_record(self.run_dir)
        if not isinstance(record.get("resumes", []), list):
            raise DataError(f"{self.files.info}: field 'resumes' must be a list, got {record['resumes']!r}")
        try:
            saved = config_from_dict(ckpt["config"])
        except ConfigError as exc:
            raise CheckpointError(f"{path}: its config is not valid for this semprior ({exc})") from None
        check_checkpoint_of(self.run_dir, path, ckpt.get("run_id"), saved)
        try:
            changes = check_resume(saved, self.cfg, ckpt["epoch"])
        except ConfigError as exc:
            raise ConfigError(
                f"{self.run_dir}: cannot resume with this config: {exc}. Resume with the run's own config "
                f"(--config {self.files.config}) or train a new run into another --out"
            ) from None
        # A run from before run ids gets one now; its older checkpoints are matched by their config.
        return _Resume(ckpt, record, changes, record.get("run_id") or new_run_id())

    def _check_splits(self) -> None:
        """A resume trains on the images the run recorded: a dataset changed on disk is refused, not trained on."""
        for name in SPLITS:
            path = self.files.split(name)
            recorded = [line for line in read_text(path, "split record").splitlines() if line]
            if recorded != [r.key for r in self.splits.get(name)]:
                raise DataError(f"{path}: the dataset's {name} split no longer matches the ids this run recorded")

    def _restore(self, resumed: _Resume) -> None:
        ckpt = resumed.checkpoint
        for name, net in self.method.networks().items():
            net.load_state_dict(ckpt["networks"][name])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt["scaler"]:  # empty when saved without AMP: resumed with AMP, the scale starts afresh
            self.scaler.load_state_dict(ckpt["scaler"])
        self.method.load_state_dict(ckpt["method"])
        self.supervision.load_state_dict(ckpt["supervision"])
        if self.val_supervision is not None:
            self.val_supervision.load_state_dict(ckpt["val_supervision"])
        self.history, self.best, self.epoch = ckpt["history"], ckpt["best"], ckpt["epoch"]
        if self.rank == 0:
            # The run directory must describe what the run now is (more epochs, another eval cadence, ...).
            self._write_config()
            self._record_resume(resumed)
            # Lines appended after the last complete checkpoint belong to lost work.
            self.files.write_metrics(self.history)
            self._repair_best()
            self.supervision.truncate_history(self.epoch)
            self.method.on_resume()

    def _record_resume(self, resumed: _Resume) -> None:
        """Append to run.json's ``resumes`` when, at which epoch and with which allowed changes the run went on."""
        entry = {
            "epoch": self.epoch,
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "changes": {c.key: [c.old, c.new] for c in resumed.changes},
        }
        # the selection as it now runs (a resume may switch it to keep="last"): readers find best.pt's epoch by it
        record = resumed.record | {"run_id": self.run_id, "selection": self.selection.__dict__,
                                   "resumes": [*resumed.record.get("resumes", []), entry]}
        self.files.write_info(record)

    # -- loop ----------------------------------------------------------------------------
    def fit(self) -> list[dict[str, Any]]:
        epochs = self.cfg.train.epochs
        while self.epoch < epochs:
            started = time.monotonic()
            record = self._train_epoch(self.epoch)
            record |= self.supervision.after_epoch(
                self.epoch, epochs, record["loss"], self._label_predictor(self.train_bank, self.method.train_features())
            )
            if self.val_supervision is not None and self.method.evolves_val_labels:
                val_logs = self.val_supervision.after_epoch(
                    self.epoch, epochs, record["loss"], self._label_predictor(self.val_bank, self.method.val_features())
                )
                record |= {f"val_{k}": v for k, v in val_logs.items()}
            if (self.epoch + 1) % self.cfg.train.eval_every == 0 or self.epoch + 1 == epochs:
                record |= self._validate()
                self.method.on_validation(record)
            # Wall seconds of the whole epoch (steps, label update, validation): protocols report run costs from it.
            record["epoch_s"] = time.monotonic() - started
            self.epoch += 1
            self.history.append(record)
            # keep="last": every epoch replaces best.pt, so it ends as the final one
            improved = self.selection.keep == "last" or record.get("select_score", -math.inf) > self.best["score"]
            if improved:
                score = record.get("select_score", self.best["score"])  # an epoch without validation keeps the last
                self.best = {"score": score, "epoch": record["epoch"], "metric": self.selection.metric}
            dist.assert_same_state(self.method.networks(), f"epoch {self.epoch}")
            if self.rank == 0:
                self._save_epoch(record, improved)
        return self.history

    def _loader(self) -> DataLoader:
        cfg = self.cfg.data
        active = self.supervision.active()
        if not active:
            raise TrainingError(
                "no training image is active (PAL found no easy image to start from); "
                "check the point labels or use labels.rule=lesps"
            )
        n = samples_per_epoch(self.cfg, len(active), self.world)
        plan = epoch_plan(active, n, np.random.default_rng(epoch_seed(self.cfg.train.seed, self.epoch)))
        ds = CropDataset(
            self.train_bank, self.supervision.target, self.norm, crop=cfg.crop, flips=cfg.flips,
            rot90=cfg.rot90, seed=self.cfg.train.seed, features=self.method.train_features(),
            feature_stride=self.method.networks().feature_stride, plan=plan,
            **crop_placement(cfg, self.supervision.crop_centres),
        )
        ds.set_epoch(self.epoch)
        # One seeded permutation per epoch, sharded over ranks: with several ranks each step covers
        # the same samples as a single process with world_size × the batch.
        gen = torch.Generator().manual_seed(epoch_seed(self.cfg.train.seed, self.epoch))
        return DataLoader(
            ds, batch_size=cfg.batch_size, sampler=dist.shard_sampler(len(ds), gen),
            num_workers=cfg.num_workers, collate_fn=collate, drop_last=len(ds) > cfg.batch_size,
            pin_memory=self.device.type == "cuda",
        )

    def _train_epoch(self, epoch: int) -> dict[str, Any]:
        torch.manual_seed(epoch_seed(self.cfg.train.seed, epoch) + 1)
        for net in self.method.networks().values():
            net.train()
        sums: dict[str, float] = {}
        n = 0
        loader = self._loader()
        steps = max(len(loader), 1)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{self.cfg.train.epochs}", leave=False,
                   disable=not self.progress or self.rank != 0)
        for batch in bar:
            for group in self.optimizer.param_groups:
                group["lr"] = self.cfg.train.lr * lr_factor(self.cfg, epoch + n / steps)
            batch = to_device(batch, self.device)
            with autocast(self.device, self.cfg.train.amp):
                loss, logs = self.method.train_step(batch)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"non-finite loss ({loss.item()}) at epoch {epoch + 1}; stopping with the last good "
                    f"checkpoint intact in {self.run_dir} (lower train.lr or check the data)"
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            dist.sync_gradients(self.method.parameters())
            if self.cfg.train.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.method.parameters(), self.cfg.train.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            dist.broadcast_state(self.method.networks(), buffers_only=True)
            logs = {"loss": float(loss.detach())} | logs | self.method.after_step(n, self.optimizer)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n += 1
            bar.set_postfix(loss=f"{logs['loss']:.4f}", best=f"{self.best['score']:.3f}")
        means = dist.average({k: v / max(n, 1) for k, v in sums.items()})
        total = (self.history[-1].get("total_steps", 0) if self.history else 0) + n
        return {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"], "steps": n, "total_steps": total} | means

    # -- prediction and validation ---------------------------------------------------------
    def predict(self, which: str, bank: ImageBank, indices: list[int] | None = None, features=None,
                windows=None) -> list[np.ndarray]:
        """Whole-image probabilities of network ``which`` for ``indices`` of ``bank`` (``windows``: as
        :func:`~semprior_core.runtime.inference.predict_probs`)."""
        return self.method.networks().predict(
            which, bank, self.norm, device=self.device, amp=self.cfg.train.amp, indices=indices, features=features,
            windows=windows,
        )

    def _label_predictor(self, bank: ImageBank, features) -> Predict:
        """(indices, windows) -> the probabilities the method's label update uses (one or several networks)."""

        def predict(indices: list[int], windows=None) -> list[np.ndarray]:
            probs = {w: self.predict(w, bank, indices, features, windows) for w in self.method.label_models()}
            return self.method.combine_label_probs(probs)

        return predict

    def _validate(self) -> dict[str, Any]:
        record: dict[str, Any] = {}
        for which in self.method.eval_models:
            probs = self.predict(which, self.val_bank, None, self.method.val_features())
            if self.val_bank.has_masks():
                acc = MetricAccumulator()
                for i, p in enumerate(probs):
                    acc.update(p, self.val_bank.mask(i))
                m = acc.compute()
                # Dense validation metrics are always logged; they select only when configured to.
                record |= {f"val_{which}_{k}": v for k, v in m.to_dict().items() if k != "n_images"}
            if self.points is not None:
                ps = point_scores(probs, [self.val_supervision.points_of(i) for i in range(len(self.val_bank))],
                                  max_area=self.cfg.labels.guard.max_area)
                record |= {f"val_{which}_{k}": v for k, v in ps.items()}
        lead = self.method.eval_models[0]
        record["select_score"] = record[f"val_{lead}_{self.selection.metric}"]
        return record


def train(cfg: RunConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    """Train the run described by ``cfg`` into ``run_dir``; returns the per-epoch history."""
    trainer = Trainer(cfg, run_dir, resume=resume, progress=progress)
    try:
        return trainer.fit()
    finally:
        trainer.close()


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    return read_jsonl(RunDir(run_dir).metrics)

