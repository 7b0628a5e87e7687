"""``semprior reproduce PROTOCOL``: every (dataset × method × seed) run of a protocol file, then a report.

A protocol (``configs/protocols/<name>.yaml``) names a base config, seeds, global overrides,
datasets (one folder, or a list of folders for a SIRST3-style union), methods (override lists),
semprior ablations per dataset and classical baselines. Runs land in
``<out>/<dataset>/<method>/<variant>/seed<k>``; finished runs are skipped and killed ones
resumed, so the command can be re-run after any interruption.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from semprior_core.config import load_config
from semprior_core.configtree import ConfigError
from semprior_core.io import DataError

from . import sweep

PROTOCOL_DIR = Path(__file__).resolve().parents[1] / "configs" / "protocols"


@dataclass
class Protocol:
    name: str
    base: str
    seeds: list[int]
    datasets: dict[str, list[dict]]
    methods: dict[str, list[str]]
    overrides: list[str] = field(default_factory=list)
    ablations: dict[str, list[str]] = field(default_factory=dict)
    classical: list[str] = field(default_factory=list)


def load_protocol(name_or_path: str) -> Protocol:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROTOCOL_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(PROTOCOL_DIR.glob("*.yaml")))
        raise ConfigError(f"{path}: protocol not found (known: {known})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    unknown = set(data) - set(Protocol.__dataclass_fields__) - {"name"}
    if unknown:
        raise ConfigError(f"{path}: unknown protocol key {sorted(unknown)[0]!r}")
    datasets = {k: v if isinstance(v, list) else [v] for k, v in data.pop("datasets").items()}
    return Protocol(name=path.stem, datasets=datasets, **data)


def dataset_override(specs: list[dict], root_dir: Path) -> str | None:
    """``data.datasets=[...]`` for the folders that exist; None if none does."""
    present = []
    for spec in specs:
        root = (root_dir / spec["root"]).resolve()
        if root.is_dir():
            present.append(spec | {"root": str(root)})
    if not present:
        return None
    return "data.datasets=" + json.dumps(present)


def plan(protocol: Protocol, out: Path, root_dir: Path) -> list[tuple[sweep.Job, object]]:
    """(job, base config) pairs for every run of the protocol, all runs of one seed before the next."""
    pairs = []
    for ds_name, specs in protocol.datasets.items():
        ds = dataset_override(specs, root_dir)
        if ds is None:
            continue
        for method, overrides in protocol.methods.items():
            base = load_config(root_dir / protocol.base, [*protocol.overrides, ds, *overrides, f"name={ds_name}-{method}"])
            ablations = protocol.ablations.get(ds_name, []) if base.method.name == "semprior" else []
            for job in sweep.plan(base, out / ds_name / method, protocol.seeds, ablations):
                pairs.append((job, base))
    # Seed-major: an interrupted protocol has every method and dataset for its first seeds.
    return sorted(pairs, key=lambda pair: protocol.seeds.index(pair[0].seed))


def run_classical_baselines(protocol: Protocol, out: Path, root_dir: Path, console=None) -> list[Path]:
    """Tune each classical method on each dataset's validation split and score it on test."""
    from semprior_core.classical.run import load_classical_config, run_classical
    from semprior_core.evaluate import evaluate_run

    dirs = []
    for ds_name, specs in protocol.datasets.items():
        ds = dataset_override(specs, root_dir)
        if ds is None:
            continue
        base = load_config(root_dir / protocol.base, [*protocol.overrides, ds])
        for method in protocol.classical:
            run_dir = out / ds_name / f"classical-{method}"
            if not (run_dir / "run.json").exists():
                if console is not None:
                    console.print(f"[bold]classical[/] {method} on {ds_name} → {run_dir}")
                cfg = load_classical_config(None, [f"classical.method={method}", f"name={ds_name}-{method}",
                                                   "data.datasets=" + json.dumps([vars(d) for d in base.data.datasets]),
                                                   f"data.val_fraction={base.data.val_fraction}",
                                                   f"data.val_seed={base.data.val_seed}"])
                run_classical(cfg, run_dir)
            evaluate_run(run_dir, "test")
            dirs.append(run_dir)
    return dirs


def warm_caches(pairs: list[tuple[sweep.Job, object]], progress: bool = True, console=None) -> None:
    """Build each distinct VFM feature cache once, before runs that share it train side by side."""
    from semprior_core.configtree import apply_overrides
    from semprior_core.run_policy import uses_vfm
    from semprior_core.vfm.cache import warm_cache

    seen = set()
    for job, base in pairs:
        cfg = apply_overrides(base, list(job.overrides))
        key = (repr(cfg.vfm), repr(cfg.data.datasets))
        if key in seen or not uses_vfm(cfg):
            continue
        seen.add(key)
        if console is not None:
            console.print(f"[bold]features[/] {cfg.vfm.name} for {', '.join(d.name or d.root for d in cfg.data.datasets)}")
        warm_cache(cfg, progress=progress)


def _pin_gpu(queue) -> None:
    """Worker initialiser: one visible GPU per worker, set before the worker first touches CUDA."""
    import os

    os.environ["CUDA_VISIBLE_DEVICES"] = str(queue.get())


def _run_one(base, job: sweep.Job, threads: int) -> str:
    """One protocol run in a worker process, with its share of the CPU threads."""
    job = sweep.Job(job.variant, job.seed, (*job.overrides, f"train.threads={threads}"), job.run_dir)
    sweep.run_job(base, job, progress=False)
    return str(job.run_dir)


def run(protocol: Protocol, out: Path, root_dir: Path, progress: bool = True, console=None,
        jobs: int = 1, gpus: int = 0) -> list[sweep.Job]:
    """Every run of ``protocol``; with ``jobs`` > 1, that many runs at a time in worker processes
    (each pinned to its own GPU when ``gpus`` ≥ ``jobs``, else sharing the CPU threads)."""
    pairs = plan(protocol, out, root_dir)
    if not pairs:
        raise DataError(f"protocol {protocol.name}: none of its datasets is present under {root_dir}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    run_classical_baselines(protocol, out, root_dir, console)
    if jobs == 1:
        for i, (job, base) in enumerate(pairs, 1):
            if console is not None:
                console.print(f"[bold]{i}/{len(pairs)}[/] {job.run_dir}")
            sweep.run_job(base, job, progress=progress)
        return [job for job, _ in pairs]
    warm_caches(pairs, progress, console)
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")  # a forked child would inherit the parent's torch and CUDA state
    threads = max(1, (os.cpu_count() or jobs) // jobs)
    init = {}
    if gpus >= jobs:
        queue = ctx.Queue()
        for gpu in range(jobs):
            queue.put(gpu)
        init = {"initializer": _pin_gpu, "initargs": (queue,)}
    with ProcessPoolExecutor(jobs, mp_context=ctx, **init) as pool:
        futures = [pool.submit(_run_one, base, job, threads) for job, base in pairs]
        for i, fut in enumerate(as_completed(futures), 1):
            done = fut.result()  # re-raises a failed run's error here
            if console is not None:
                console.print(f"[bold]{i}/{len(pairs)}[/] done {done}")
    return [job for job, _ in pairs]
