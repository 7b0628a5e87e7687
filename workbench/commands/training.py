"""Commands that make runs: ``train``, ``demo``, the ``sweep`` and ``reproduce`` protocols, the VFM ``cache`` they
read, and the ``classical`` baselines; with the config plumbing (``--config`` plus overrides) they share."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from semprior_core.io import read_json
from semprior_core.store.run_dir import RunDir
from workbench.commands import Commands, console, metrics_table

commands = Commands()
CONFIG_DIR = Path(__file__).parents[1] / "configs"

SUPERVISION_ALIASES = {
    "full": ["method.supervision=full"],
    "points": ["method.supervision=points", "labels.rule=fixed"],
    "fixed": ["method.supervision=points", "labels.rule=fixed"],
    "lesps": ["method.supervision=points", "labels.rule=lesps"],
    "pal": ["method.supervision=points", "labels.rule=pal", "labels.init=pal_easy", "train.loss=pal_edge"],
}


def _split_overrides(extra: list[str]) -> list[str]:
    out = []
    for tok in extra:
        t = tok[2:] if tok.startswith("--") else tok
        if "=" not in t or "." not in t.split("=", 1)[0]:
            raise SystemExit(f"semprior: unrecognised argument {tok!r} (overrides look like --train.epochs=5)")
        out.append(t)
    return out


def _config(args: argparse.Namespace, extra: list[str], default: Path | None = None):
    from semprior_core.config import load_config

    overrides: list[str] = []
    if getattr(args, "supervision", None):
        overrides += SUPERVISION_ALIASES[args.supervision]
    if getattr(args, "method", None):
        overrides.append(f"method.name={args.method}")
    if getattr(args, "model", None):
        overrides.append(f"method.model={args.model}")
    if getattr(args, "data", None):
        overrides.append(f"data.datasets=[{{root: {json.dumps(str(args.data))}}}]")
    return load_config(args.config or default, overrides + _split_overrides(extra))


def config_args(p: argparse.ArgumentParser) -> None:
    """The options of a command that builds a training config (``_config``)."""
    p.add_argument("--config", help="YAML config file")
    p.add_argument("--out", help="run directory (default runs/<name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from last.pt with its own config; only how it runs (device, "
                        "threads, eval cadence) may change, and its length only where nothing follows the "
                        "epoch budget (constant lr, full or fixed labels); run.json records each resume")
    p.add_argument("--supervision", choices=sorted(SUPERVISION_ALIASES), help="shortcut for supervision settings")
    p.add_argument("--method", choices=["supervised", "semprior"])
    p.add_argument("--model", choices=["student", "teacher"], help="for --method supervised")
    p.add_argument("--data", help="dataset folder (replaces data.datasets)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@commands.command("train", "train a run from a YAML config plus overrides", args=config_args, overrides=True)
def cmd_train(args, extra) -> int:
    from semprior_core.engine import TrainingError, train
    from semprior_core.io import WriteError
    from semprior_core.runtime import distributed

    distributed.init_from_env()  # a no-op unless launched by torchrun with several processes
    cfg = _config(args, extra)
    out = Path(args.out or f"runs/{cfg.name}")
    console.print(f"[bold]training[/] {cfg.method.name} ({cfg.model.backbone}) → {out}")
    try:
        history = train(cfg, out, resume=args.resume, progress=not args.quiet)
    except WriteError as exc:  # disk full, quota, permissions: say what survives and how to go on
        raise TrainingError(f"{exc}; {_after_failed_write(out)}") from exc
    last = history[-1] if history else {}
    console.print(f"done: {len(history)} epochs; best validation {last and _best(out)}")
    return 0


def _after_failed_write(run_dir: Path) -> str:
    """The way on after a failed write: the engine's write order keeps every finished epoch resumable."""
    if RunDir(run_dir).last.exists():
        return f"every finished epoch is intact: fix the cause, then continue with --resume --out {run_dir}"
    return "no epoch had finished: fix the cause, then run the same command again"


def _best(run_dir: Path) -> str:
    """What selected best.pt, through the run reader (a NaN score, a validation that could not score, is skipped)."""
    from semprior_core.store.runs import Run, kept_record

    run = Run.open(run_dir)
    selection = run.info()["selection"]
    best = kept_record(run.history(), selection)
    if best is None:
        return "n/a (no validation could score)"
    last = " (the final epoch: train.select=last)" if selection.get("keep") == "last" else ""
    return f"{selection['metric']}={best['select_score']:.4f} at epoch {best['epoch']}{last}"


def _demo_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.set_defaults(out="runs/demo")


@commands.command("demo", "generate synthetic data, train, evaluate and write a report (no download, CPU)",
                  args=_demo_args, overrides=True)
def cmd_demo(args, extra) -> int:
    from semprior_core.engine import train
    from semprior_core.evaluation.evaluate import evaluate_run
    from workbench.report import write_run_report

    cfg = _config(args, extra, default=CONFIG_DIR / "demo.yaml")
    out = Path(args.out)
    console.print(f"[bold]semprior demo[/]: {cfg.method.name} on the embedded synthetic dataset → {out}")
    # A second `make demo` continues (or, when finished, re-reports) the run already there instead of failing.
    resume = args.resume or RunDir(out).last.exists()
    if resume and not args.resume:
        console.print(f"{out} already holds a demo run: continuing it (delete the folder to train afresh)")
    start = time.monotonic()
    train(cfg, out, resume=resume, progress=not args.quiet)
    results = [evaluate_run(out, "test", which) for which in _eval_models(out)]
    console.print(metrics_table(f"{out}: test split, validation-selected checkpoint",
                                [(r.model, r.metrics.as_row()) for r in results]))
    report = write_run_report(out, results, elapsed_s=time.monotonic() - start)
    console.print(f"report: {report}")
    return 0


def _eval_models(run_dir: Path) -> list[str]:
    from semprior_core.store.runs import Run

    return list(Run.open(run_dir).info()["eval_models"])


def _sweep_args(p: argparse.ArgumentParser) -> None:
    config_args(p)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--ablate", action="append", default=[],
                   help="comma-separated ablations, e.g. vfm=random_vit,scam=off,reweight=off,distill=off,collaborative=off")


@commands.command("sweep", "seeds × ablations grid; test metrics as mean ± std over seeds", args=_sweep_args,
                  overrides=True)
def cmd_sweep(args, extra) -> int:
    from workbench import sweep

    base = _config(args, extra)
    out = Path(args.out or f"runs/sweep-{base.name}")
    jobs = sweep.plan(base, out, args.seeds, [a for item in args.ablate for a in item.split(",") if a])
    n_gpus = _cuda_count()
    if n_gpus > 1:
        sweep.run_parallel_gpus(args.config, [j for j in jobs if not sweep.kept(base, j)], n_gpus)
    for i, job in enumerate(jobs, 1):
        console.print(f"[bold]{i}/{len(jobs)}[/] {job.variant} seed {job.seed} → {job.run_dir}")
        sweep.run_job(base, job, progress=not args.quiet)
    md, csv_path = sweep.write_summary(sweep.summary_rows([job.run_dir for job in jobs]), out)
    console.print(md.read_text())
    console.print(f"summary: {md} and {csv_path}")
    return 0


def _reproduce_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("protocol", help="cpu, smoke, gpu or a protocol YAML path")
    p.add_argument("--out", help="default runs/reproduce-<protocol>")
    p.add_argument("--root", default=".", help="folder the protocol's relative paths start from")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained side by side: one per GPU where there are enough, else sharing the CPU threads")
    p.add_argument("--seeds", type=int, nargs="+", help="only these of the protocol's seeds")
    p.add_argument("--methods", nargs="+", help="only these of the protocol's methods")
    p.add_argument("--datasets", nargs="+", help="only these of the protocol's datasets (its keys, e.g. nuaa)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--status", action="store_true",
                   help="only show where each run stands (finished, epoch k/N, not started) and what is left; train nothing")


def _print_status(rows: list[dict], out: Path) -> int:
    from rich.table import Table

    table = Table(title=f"{out}: learned runs in training order")
    for column in ("run", "state"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["run"], row["state"])
    console.print(table)
    finished = sum(r["state"] == "finished" for r in rows)
    left = sum(r["left"] * r["cost"] for r in rows) / max(sum(r["cost"] for r in rows), 1e-9)
    console.print(f"{finished} of {len(rows)} runs finished; ≈ {100 * left:.0f} % of the training cost is left "
                  "(relative step costs, label updates included)")
    return 0


@commands.command("reproduce", "run a whole protocol (configs/protocols/NAME.yaml): methods × seeds × datasets",
                  args=_reproduce_args)
def cmd_reproduce(args, extra) -> int:
    from workbench import reproduce, sweep

    protocol = reproduce.load_protocol(args.protocol)
    if args.seeds or args.methods or args.datasets:
        protocol = reproduce.select(protocol, args.seeds, args.methods, args.datasets)
    out = Path(args.out or protocol.out or f"runs/reproduce-{protocol.name}")
    root_dir = Path(args.root).resolve()
    if args.status:
        return _print_status(reproduce.progress_rows(protocol, out, root_dir), out)
    reproduce.run(protocol, out, root_dir, progress=not args.quiet, console=console, jobs=args.jobs,
                  gpus=_cuda_count())
    if protocol.candidates:  # a tuning protocol: validation scores and winners, no test numbers
        from workbench import tuning

        rows = tuning.candidates(protocol, out, root_dir)
        command = f"semprior reproduce {args.protocol}" + (f" --out {args.out}" if args.out else "")
        tuning.write_tuning(protocol, rows, root_dir, root_dir / protocol.tuning_doc, command)
        console.print((root_dir / protocol.tuning_doc).read_text(), highlight=False)
        return 0
    md, _ = sweep.write_summary(sweep.summary_rows([out]), out)
    console.print(md.read_text())
    console.print(f"next: semprior report {out} --out docs/results.md")
    return 0


@commands.command("cache", "precompute frozen VFM features of every image of the configured datasets",
                  args=config_args, overrides=True)
def cmd_cache(args, extra) -> int:
    from semprior_core.vfm.cache import warm_cache

    cfg = _config(args, extra)
    cache = warm_cache(cfg, device="cuda" if _cuda_count() else None, progress=not args.quiet)
    if cache is None:
        raise SystemExit("semprior: vfm.name is none: nothing to cache (use --vfm.name=dinov2_vits14)")
    console.print(f"{cache.hits + cache.misses} images cached in {cache.dir} ({cache.misses} computed, {cache.hits} already there)")
    return 0


def _classical_args(p: argparse.ArgumentParser) -> None:
    from semprior_core.classical import METHODS

    p.add_argument("--method", choices=sorted(METHODS), help="default: classical.method of --config, else tophat")
    p.add_argument("--data", help="dataset folder (replaces data.datasets)")
    p.add_argument("--config", help="YAML with data.* and an optional classical section (a training config works)")
    p.add_argument("--tune", default="val", choices=["val"],
                   help="tuning data: the validation split carved from training data (never test)")
    p.add_argument("--out", help="run directory (default runs/<method>)")


@commands.command("classical", "tune a classical baseline (tophat, mpcm, ipi) on validation and store it as a run",
                  args=_classical_args, overrides=True)
def cmd_classical(args, extra) -> int:
    from semprior_core.classical.run import load_classical_config, run_classical

    overrides = [f"classical.tune={args.tune}"]
    if args.method:
        overrides.append(f"classical.method={args.method}")
    if args.data:
        overrides.append(f"data.datasets=[{{root: {json.dumps(str(args.data))}}}]")
    cfg = load_classical_config(args.config, overrides + _split_overrides(extra))
    out = Path(args.out or f"runs/{cfg.classical.method}")
    console.print(f"[bold]classical[/] {cfg.classical.method}: tuning on the validation split → {out}")
    run = run_classical(cfg, out)
    info = read_json(RunDir(out).info, "run file")
    console.print(
        f"chosen by {info['selection']['rule']} on {info['val']['n_images']} images: {run.params}, "
        f"{run.policy.label()}; val IoU={info['val']['iou']:.4f} ({info['tune_seconds']:.0f} s)"
    )
    console.print(f"threshold: {run.policy.describe()}\nscore it on the test split: semprior eval --run {out} --split test")
    return 0
