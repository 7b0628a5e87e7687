"""``semprior reproduce PROTOCOL``: every (dataset × method × seed) run of a protocol file, then a report.

A protocol (``configs/protocols/<name>.yaml``) names a base config, seeds, global overrides,
datasets (one folder, or a list of folders for a SIRST3-style union), methods (override lists),
semprior ablations per dataset and classical baselines. Runs land in
``<out>/<dataset>/<method>/<variant>/seed<k>``; finished runs are skipped and killed ones
resumed, so the command can be re-run after any interruption.

``extends: <protocol>`` takes every key from another protocol file and replaces those given, so
that a tuning or ablation protocol cannot drift from the budget of the main one (``datasets`` may
then be a list of the parent's dataset names, ``methods`` too; ``overrides+`` appends to the parent's
overrides instead of replacing them, e.g. another student on the same budget, and ``methods+``
(``{method: overrides}``) to the named methods' overrides, e.g. a rule for the point-supervised ones only). A protocol with ``candidates``
(``{method: {name: overrides}}``) is a tuning protocol: each candidate is one variant, scored on
validation only, and the winners are written to its ``tuned`` file (:mod:`workbench.tuning`); a
protocol without candidates that names a ``tuned`` file appends each method's winning overrides.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from semprior_core.config import evolves_labels, load_config
from semprior_core.config.tree import ConfigError, apply_overrides
from semprior_core.io import DataError, read_jsonl, read_text
from semprior_core.store.run_dir import RunDir

from . import sweep

PROTOCOL_DIR = Path(__file__).resolve().parents[1] / "configs" / "protocols"
APPENDING = frozenset({"overrides+", "methods+"})  # keys that append to the extended protocol's


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
    out: str = ""  # default output folder; "" = runs/reproduce-<name>
    candidates: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    tuned: str = ""  # winners file: written by a tuning protocol, read by the others
    tuning_doc: str = "docs/tuning.md"  # a tuning protocol's report of every candidate's validation score


def _protocol_path(name_or_path: str | Path, relative_to: Path = PROTOCOL_DIR) -> Path:
    path = Path(name_or_path)
    if not path.suffix:
        path = relative_to / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(PROTOCOL_DIR.glob("*.yaml")))
        raise ConfigError(f"{path}: protocol not found (known: {known})")
    return path


def _protocol_dict(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The keys of protocol file ``path`` with its ``extends`` chain resolved."""
    if path.resolve() in seen:
        raise ConfigError(f"{path}: protocols extend each other in a loop")
    try:
        data = yaml.safe_load(read_text(path, "protocol"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a protocol is a mapping of keys")
    unknown = set(data) - set(Protocol.__dataclass_fields__) - {"name", "extends", *APPENDING}
    if unknown:
        raise ConfigError(f"{path}: unknown protocol key {sorted(unknown)[0]!r}")
    if "extends" not in data:
        for key in APPENDING.intersection(data):
            raise ConfigError(f"{path}: {key!r} appends to the {key[:-1]} of the protocol it extends; "
                              f"this one extends none (use {key[:-1]!r})")
        return data
    parent = _protocol_dict(_protocol_path(data.pop("extends"), path.parent), (*seen, path.resolve()))
    if "overrides+" in data:
        if "overrides" in data:
            raise ConfigError(f"{path}: give 'overrides' (replace the parent's) or 'overrides+' (append), not both")
        data["overrides"] = [*parent.get("overrides", []), *data.pop("overrides+")]
    if "methods+" in data:
        extra = data.pop("methods+")
        if not isinstance(extra, dict) or not all(isinstance(v, list) for v in extra.values()):
            raise ConfigError(f"{path}: 'methods+' maps method names to lists of overrides")
        if isinstance(data.get("methods"), dict):
            raise ConfigError(f"{path}: give 'methods' as a mapping (replace the parent's) or 'methods+' "
                              "(append), not both")
        missing = [m for m in extra if m not in parent.get("methods", {})]
        if missing:
            raise ConfigError(f"{path}: methods+ {missing[0]!r} is not in the protocol it extends")
        parent = parent | {"methods": {m: [*o, *extra.get(m, [])] for m, o in parent["methods"].items()}}
    for key in ("datasets", "methods"):  # a list names a subset of the parent's entries
        if isinstance(data.get(key), list):
            missing = [k for k in data[key] if k not in parent.get(key, {})]
            if missing:
                raise ConfigError(f"{path}: {key} {missing[0]!r} is not in the protocol it extends")
            data[key] = {k: parent[key][k] for k in data[key]}
    return parent | data


def load_protocol(name_or_path: str) -> Protocol:
    path = _protocol_path(name_or_path)
    data = _protocol_dict(path)
    missing = [k for k in ("base", "seeds", "datasets", "methods") if k not in data]
    if missing:
        raise ConfigError(f"{path}: protocol needs the key {missing[0]!r}")
    for method in data.get("candidates", {}):
        if method not in data["methods"]:
            raise ConfigError(f"{path}: candidates for {method!r}, which is not one of the methods")
    data.pop("name", None)
    datasets = {k: v if isinstance(v, list) else [v] for k, v in data.pop("datasets").items()}
    return Protocol(name=path.stem, datasets=datasets, **data)


def select(protocol: Protocol, seeds: list[int] | None = None, methods: list[str] | None = None,
           datasets: list[str] | None = None) -> Protocol:
    """The part of ``protocol`` with only the given seeds, methods and datasets (None keeps all), in the
    protocol's own order, so that a sitting can run the runs a claim needs first into the same folder."""
    if protocol.candidates:  # the winners are chosen among every candidate of a method at once
        raise ConfigError(f"protocol {protocol.name} is a tuning protocol; seeds, methods and datasets are "
                          "selected from a main or ablation protocol")

    def keep(kind: str, names, known):
        if names is None:
            return list(known)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"protocol {protocol.name}: {kind} {unknown[0]!r} is not one of {list(known)}")
        return [k for k in known if k in names]

    kept_methods = keep("method", methods, protocol.methods)
    kept_datasets = keep("dataset", datasets, protocol.datasets)
    return dataclasses.replace(
        protocol, seeds=keep("seed", seeds, protocol.seeds),
        methods={k: protocol.methods[k] for k in kept_methods},
        datasets={k: protocol.datasets[k] for k in kept_datasets},
        ablations={k: v for k, v in protocol.ablations.items() if k in kept_datasets})


def tuned_overrides(protocol: Protocol, root_dir: Path) -> dict[str, list[str]]:
    """Each method's winning overrides from the protocol's ``tuned`` file ({} for a tuning protocol)."""
    if not protocol.tuned or protocol.candidates:
        return {}
    path = root_dir / protocol.tuned
    if not path.is_file():
        raise ConfigError(f"protocol {protocol.name}: {path} does not exist; run its tuning protocol first "
                          f"(semprior reproduce {protocol.name}-tune) or remove the 'tuned' key")
    winners = yaml.safe_load(read_text(path, "tuned winners")) or {}
    untuned = [m for m, w in winners.items() if w is None and m in protocol.methods]
    if untuned:
        raise ConfigError(f"protocol {protocol.name}: {path} has no finished candidate for {untuned[0]!r} yet; "
                          "finish its tuning protocol first")
    return {m: list(w["overrides"]) for m, w in winners.items() if w is not None}


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
    """(job, base config) pairs for every run of the protocol: seed-major (an interrupted protocol has every
    method and dataset for its first seeds), the costliest runs first within a seed (no core idles at the end)."""
    pairs = []
    tuned = tuned_overrides(protocol, root_dir)
    for ds_name, specs in protocol.datasets.items():
        ds = dataset_override(specs, root_dir)
        if ds is None:
            continue
        for method, overrides in protocol.methods.items():
            base = load_config(root_dir / protocol.base, [*protocol.overrides, ds, *overrides, *tuned.get(method, []),
                                                          f"name={ds_name}-{method}"])
            if method in protocol.candidates:
                jobs = [dataclasses.replace(job, test=False) for name, extra in protocol.candidates[method].items()
                        for job in sweep.plan(base, out / ds_name / method, protocol.seeds, [], name, extra)]
            else:
                ablations = protocol.ablations.get(ds_name, []) if base.method.name == "semprior" else []
                jobs = sweep.plan(base, out / ds_name / method, protocol.seeds, ablations)
            pairs.extend((job, base) for job in jobs)
    return sorted(pairs, key=lambda pair: (protocol.seeds.index(pair[0].seed), -run_cost(pair[1])))


# Step cost relative to a supervised step of the same network (docs/benchmarks.md): a semprior step also
# runs the SCAM teacher and, every meta_every steps, a look-ahead.
SEMPRIOR_STEP_COST = 3.0
# Whole-image label updates on top of the steps: LESPS 19.9 and PAL 23.6 train minutes against 14.2 for
# full supervision at the same 1,500 steps (protocol v3, NUAA-SIRST, docs/results.md).
EVOLVING_LABELS_COST = 1.4


def run_cost(cfg) -> float:
    """Rough relative training cost of a run, for ordering only."""
    steps = cfg.train.steps or cfg.train.epochs
    cost = steps * (SEMPRIOR_STEP_COST if cfg.method.name == "semprior" else 1.0)
    return cost * (EVOLVING_LABELS_COST if evolves_labels(cfg) else 1.0)


def progress_rows(protocol: Protocol, out: Path, root_dir: Path) -> list[dict]:
    """Where each learned run of the protocol stands, in the order it trains: ``finished``, ``trained``
    (evaluation missing), ``epoch k/N`` or ``not started``; ``left`` is the share of its training still to do."""
    rows = []
    for job, base in plan(protocol, out, root_dir):
        epochs = apply_overrides(base, list(job.overrides)).train.epochs
        files = RunDir(job.run_dir)
        done = read_jsonl(files.metrics)[-1]["epoch"] if files.metrics.is_file() and files.metrics.stat().st_size else 0
        if done >= epochs:
            state = "finished" if sweep.kept_finished(files, epochs, job.test) else "trained"
        else:
            state = f"epoch {done}/{epochs}" if done else "not started"
        rows.append({"run": str(job.run_dir.relative_to(out)), "state": state,
                     "left": max(0, epochs - done) / epochs, "cost": run_cost(base)})
    return rows


def run_classical_baselines(protocol: Protocol, out: Path, root_dir: Path, console=None) -> list[Path]:
    """Tune each classical method on each dataset's validation split and score it on test."""
    from semprior_core.classical.run import load_classical_config, run_classical
    from semprior_core.evaluation.evaluate import evaluate_run

    dirs = []
    for ds_name, specs in protocol.datasets.items():
        ds = dataset_override(specs, root_dir)
        if ds is None:
            continue
        base = load_config(root_dir / protocol.base, [*protocol.overrides, ds])
        for method in protocol.classical:
            run_dir = out / ds_name / f"classical-{method}"
            if not RunDir(run_dir).info.exists():
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
    from semprior_core.config.tree import apply_overrides
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
    job = dataclasses.replace(job, overrides=(*job.overrides, f"train.threads={threads}"))
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
