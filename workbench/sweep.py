"""``semprior sweep``: a grid of (variant × seed) runs, each evaluated on the test split from its
validation-selected checkpoint, summarised as mean ± std over seeds (markdown and CSV).

Variants are the base config plus one ablation each. Short ablation names map to config
fields (``vfm=random_vit``, ``scam=off``, ``reweight=off``, ``distill=off``,
``collaborative=off``); any ``section.key=value`` works too. Runs that already finished
are skipped and killed ones resumed, so a sweep can be restarted at any time. With several
CUDA devices visible, runs go out as one process per GPU.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from semprior_core.config import RunConfig
from semprior_core.config.tree import apply_overrides
from semprior_core.io import atomic_write_text
from semprior_core.store.run_dir import RunDir
from semprior_core.store.runs import Run

SWITCHES = {
    "scam": "scam.enabled",
    "reweight": "semprior.reweight",
    "distill": "semprior.distill",
    "collaborative": "semprior.collaborative",
}
METRICS = ("IoU", "nIoU", "Pd", "Fa")


def ablation_overrides(spec: str) -> list[str]:
    """``scam=off`` → ``["scam.enabled=false"]``; ``vfm=random_vit`` → ``["vfm.name=random_vit"]``.

    ``vfm=none`` is refused rather than mapped: without a VFM the teacher is the bare backbone, the very
    network (and run) of ``scam=off`` (:func:`semprior_core.networks.build_teacher`), so a grid with both
    would train the same variant twice under two names.
    """
    key, sep, value = spec.partition("=")
    if not sep:
        raise ValueError(f"ablation {spec!r} must look like name=value")
    if key in SWITCHES:
        if value not in ("on", "off"):
            raise ValueError(f"ablation {spec!r}: {key} takes on or off")
        return [f"{SWITCHES[key]}={'true' if value == 'on' else 'false'}"]
    if key == "vfm":
        if value == "none":
            raise ValueError("ablation 'vfm=none' is the same network and run as 'scam=off' (the teacher is then "
                             "the bare backbone); use scam=off")
        return [f"vfm.name={value}"]
    if "." in key:
        return [spec]
    raise ValueError(f"unknown ablation {key!r}; use {', '.join([*SWITCHES, 'vfm'])} or section.key=value")


@dataclass(frozen=True)
class Job:
    variant: str
    seed: int
    overrides: tuple[str, ...]
    run_dir: Path
    test: bool = True  # evaluate on the test split once trained (False for tuning runs: validation only)


def plan(base: RunConfig, out: Path, seeds: list[int], ablations: list[str], name: str = "full",
         overrides: list[str] | tuple[str, ...] = ()) -> list[Job]:
    """Jobs of variant ``name`` (``base`` plus ``overrides``) and of each ablation of it, per seed, in
    ``out/<variant>/seed<k>``."""
    variants = [(name, list(overrides))] + [(a.replace("=", "-"), [*overrides, *ablation_overrides(a)]) for a in ablations]
    jobs = []
    for name, ov in variants:
        apply_overrides(base, ov)  # validate before anything runs
        for seed in seeds:
            jobs.append(Job(name, seed, (*ov, f"train.seed={seed}"), out / name / f"seed{seed}"))
    return jobs


def run_job(base: RunConfig, job: Job, progress: bool = True) -> None:
    """Train (or resume, or skip if finished) and evaluate every network on the test split (if ``job.test``)."""
    from semprior_core.engine import train
    from semprior_core.evaluation.evaluate import evaluate_run
    from semprior_core.store.checkpoint import load_checkpoint

    if kept(base, job):
        return
    cfg = apply_overrides(base, list(job.overrides))
    files = RunDir(job.run_dir)
    if not (files.last.exists() and load_checkpoint(files.last)["epoch"] >= cfg.train.epochs):
        train(cfg, job.run_dir, resume=files.last.exists(), progress=progress)

    if not job.test:
        return
    for which in Run.open(job.run_dir).info()["eval_models"]:
        evaluate_run(job.run_dir, "test", which)


def kept(base: RunConfig, job: Job) -> bool:
    """A finished run kept without its checkpoints (results/ in git): it stands on its records, and training
    it afresh would delete them."""
    files = RunDir(job.run_dir)
    return not files.last.exists() and kept_finished(files, apply_overrides(base, list(job.overrides)).train.epochs,
                                                     job.test)


def kept_finished(files: RunDir, epochs: int, test: bool) -> bool:
    """Whether a run folder without checkpoints records a finished run: its last epoch record reaches
    ``epochs`` and, if it is scored on test, every network it scores has its test evaluation."""
    if not files.metrics.is_file():
        return False
    run = Run.open(files.root)
    history = run.history()
    if not history or history[-1]["epoch"] < epochs:
        return False
    return not test or all(files.evaluation("test", m, "best").is_file() for m in run.info().get("eval_models", []))


def run_parallel_gpus(config_path: str | None, jobs: list[Job], n_gpus: int) -> None:
    """Train ``jobs`` as one ``semprior train`` process per GPU, pinned with CUDA_VISIBLE_DEVICES."""
    queue, running, free = list(jobs), {}, list(range(n_gpus))
    while queue or running:
        while queue and free:
            job, gpu = queue.pop(0), free.pop(0)
            cmd = [sys.executable, "-m", "workbench.cli", "train", "--out", str(job.run_dir), "--quiet",
                   *(["--config", config_path] if config_path else []), *[f"--{o}" for o in job.overrides]]
            if RunDir(job.run_dir).last.exists():
                cmd.append("--resume")
            running[gpu] = subprocess.Popen(cmd, env=os.environ | {"CUDA_VISIBLE_DEVICES": str(gpu)})
        time.sleep(2)
        for gpu, proc in list(running.items()):
            if proc.poll() is not None:
                del running[gpu]
                free.append(gpu)
                if proc.returncode:
                    raise RuntimeError(f"sweep job {' '.join(proc.args)} failed with exit code {proc.returncode}")


def summary_rows(run_dirs: list[Path]) -> list[dict]:
    """Mean ± std over seeds per group of runs that differ only in their seed (test split first)."""
    from workbench.inspect.compare import compare_runs

    return compare_runs(run_dirs)


def write_summary(rows: list[dict], out: Path) -> tuple[Path, Path]:
    """``summary.md`` and ``summary.csv``; every row names its split and checkpoint."""
    from workbench.inspect.compare import format_mean_std

    md = ["Each run's checkpoint was chosen on its validation split; mean ± std over seeds.", "",
          "| group | split | model | checkpoint | seeds | " + " | ".join(METRICS) + " |",
          "|---|---|---|---|---|" + "---|" * len(METRICS)]
    for r in rows:
        cells = [format_mean_std(r[f"{m}_mean"], r[f"{m}_std"]) for m in METRICS]
        md.append(f"| {r['group']} | {r['split']} | {r['model']} | {r['checkpoint']} | {r['n']} | " + " | ".join(cells) + " |")
    buf = io.StringIO()
    cols = ["group", "split", "model", "checkpoint", "n", *[f"{m}_{s}" for m in METRICS for s in ("mean", "std")]]
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return (atomic_write_text(out / "summary.md", "\n".join(md) + "\n"), atomic_write_text(out / "summary.csv", buf.getvalue()))
