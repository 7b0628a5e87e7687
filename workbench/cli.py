"""``semprior`` command line: thin subcommands that build configs and call the core.

Config overrides: any ``--section.key=value`` (or bare ``section.key=value``) argument,
value parsed as YAML, e.g. ``semprior train --config c.yaml --train.epochs=5 labels.rule=pal``.
Errors in user input print one line naming the file/key and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from semprior_core.io import read_json
from semprior_core.store.run_dir import RunDir

# Piped output (logs, CI) gets wide tables rather than wrapped columns.
console = Console(width=None if sys.stdout.isatty() else 160)
CONFIG_DIR = Path(__file__).parent / "configs"

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


def _metrics_table(title: str, rows: list[tuple[str, dict[str, float]]]) -> Table:
    table = Table(title=title)
    table.add_column("model")
    for col in ("IoU", "nIoU", "Pd", "Fa (×1e-6)"):
        table.add_column(col, justify="right")
    for name, row in rows:
        table.add_row(name, f"{row['IoU']:.2f}", f"{row['nIoU']:.2f}", f"{row['Pd']:.2f}", f"{row['Fa']:.1f}")
    return table


# -- subcommands -------------------------------------------------------------------------------
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
    from semprior_core.store.runs import Run, best_record

    run = Run.open(run_dir)
    best = best_record(run.history())
    if best is None:
        return "n/a (no validation could score)"
    return f"{run.info()['selection']['metric']}={best['select_score']:.4f} at epoch {best['epoch']}"


def cmd_eval(args, extra) -> int:
    from semprior_core.evaluation.evaluate import evaluate_run

    if args.data is not None:
        return _eval_on_data(args)
    if args.split == "all":
        raise SystemExit("semprior eval: --split all needs --data OTHER (a run's own data: train, val or test)")
    res = evaluate_run(args.run, split=args.split, which=args.which, checkpoint=args.checkpoint, device=args.device)
    if args.json:
        d = res.to_dict()
        d.pop("per_image")
        print(json.dumps(d, indent=2))
    else:
        from semprior_core.classical.run import classical_run_dir

        chosen = ("setting tuned on validation" if classical_run_dir(args.run) is not None
                  else f"{res.checkpoint}.pt (epoch {res.epoch}, chosen on validation)")
        title = f"{args.run}: {res.split} split, {chosen}"
        console.print(_metrics_table(title, [(res.model, res.metrics.as_row())]))
    return 0


def _eval_on_data(args) -> int:
    """``eval --run R --data OTHER``: R may also be a folder of runs (every finished run below it is scored)."""
    from semprior_core.classical.run import classical_run_dir
    from semprior_core.evaluation.cross_eval import evaluate_on
    from semprior_core.io import DataError
    from workbench.inspect.compare import expand_runs

    if args.split not in ("test", "all"):
        raise SystemExit(f"semprior eval: with --data the split is test or all, not {args.split!r}")
    run = Path(args.run)
    if not run.is_dir():
        raise DataError(f"{run}: run folder not found")
    runs = [run] if RunDir(run).config.is_file() else [r.path for r in expand_runs([run])]
    finished = [r for r in runs if RunDir(r).best.is_file() or classical_run_dir(r) is not None]
    if not finished:
        raise DataError(f"{run}: no finished run (best.pt or a classical run.json) at or below it")
    for r in sorted(set(runs) - set(finished)):
        console.print(f"[yellow]skipped[/] {r}: not finished (no best.pt)", highlight=False)
    for r in finished:
        try:
            res = evaluate_on(r, args.data, split=args.split, which=args.which, checkpoint=args.checkpoint,
                              device=args.device, progress=len(finished) == 1 and sys.stderr.isatty())
        except ValueError as exc:  # a network or checkpoint the run lacks: one line, not a traceback
            console.print(f"[red]error:[/] {exc}", highlight=False)
            return 2
        d = res.to_dict()
        if args.json:
            d.pop("per_image")
            print(json.dumps(d, indent=2))
            continue
        trained = "+".join(t["name"] for t in res.trained_on)
        ev = res.evaluated_on
        chosen = ("setting tuned on validation" if res.threshold is None
                  else f"{res.checkpoint}.pt (epoch {res.epoch}, chosen on validation), threshold {res.threshold}")
        title = (f"{r}: trained on {trained} → evaluated on {ev['name']} ({ev['split']} split, {ev['n_images']} "
                 f"images, {ev['n_target_free']} target-free){' [its own data]' if res.same_data else ''}; {chosen}")
        console.print(_metrics_table(title, [(res.model, res.metrics.as_row())]), highlight=False)
        fa, auc = d["false_alarms"], d["auc"]["value"]
        free = fa["target_free"]
        free_text = f"{free['per_frame']:.2f} on {free['n_frames']} target-free frames" if free["n_frames"] else \
            "no target-free frame"
        console.print(
            f"false-alarm objects per frame: {fa['all']['per_frame']:.2f} over all frames, {free_text}; "
            f"Pd–Fa area up to Fa {d['auc']['max_fa'] * 1e6:g}×10⁻⁶: {'–' if auc is None else f'{auc:.3f}'}; "
            f"saved in {r}/eval_cross/", highlight=False)
        bins = ", ".join(f"{b['label']} {b['n_detected']}/{b['n_targets']}" for b in d["bins"]["size"])
        console.print(f"Pd per target size (detected/targets): {bins}", highlight=False)
    return 0


def cmd_predict(args, extra) -> int:
    from semprior_core.evaluation.evaluate import predict_folder

    files = predict_folder(args.checkpoint, args.images, args.out, which=args.which, device=args.device)
    console.print(f"wrote {len(files)} probability maps to {args.out}")
    return 0


def cmd_export(args, extra) -> int:
    from semprior_core.export import ExportConfig, export_checkpoint

    try:
        cfg = ExportConfig(format=args.format, fp16=args.fp16, int8=args.int8, quantization=args.quantization,
                           network=args.which, threshold=args.threshold, device=args.device)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    res = export_checkpoint(args.checkpoint, args.out, cfg)
    m = res.metadata
    how = (f"chosen on the validation split ({m.threshold_metric} {m.threshold_score:.4f})" if res.choice
           else "given")
    console.print(f"exported {m.network} ({m.backbone}, {m.precision}, size divisor {m.size_divisor}) → {res.path}; "
                  f"threshold {m.threshold:.2f} {how}")
    return 0


def cmd_infer(args, extra) -> int:
    from workbench.infer import InferConfig, infer_images, infer_video

    try:
        cfg = InferConfig(device=args.device, tile=args.tile, overlap=args.overlap, threshold=args.threshold,
                          min_area=args.min_area, progress=not args.quiet)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    run = infer_video if args.video else infer_images
    s = run(args.model, args.video or args.images, args.out, cfg)
    console.print(f"{s.model}: {len(s.frames)} frames, {s.n_targets} targets at threshold {s.threshold:.2f}, "
                  f"{s.ms_per_frame():.1f} ms/frame → {s.json_path}, {s.csv_path}")
    return 0


def cmd_points(args, extra) -> int:
    from semprior_core.data.catalog import make_points
    from semprior_core.data.folder import DatasetFolder

    if args.data is None:
        console.print("[red]error:[/] semprior points: give --data DIR (derive from masks), or import / export")
        return 2
    folder = DatasetFolder.open(args.data)
    ps = make_points(folder, args.kind, args.seed)
    out = Path(args.out) if args.out else folder.root / "points" / (f"{args.kind}_seed{args.seed}.json" if args.kind == "coarse" else f"{args.kind}.json")
    ps.save(out)
    console.print(f"{ps.num_points()} {args.kind} points for {len(ps.points)} images → {out}")
    return 0


def cmd_points_import(args, extra) -> int:
    from semprior_core.data.point_formats import import_points

    ps = import_points(args.src, args.format)
    ps.save(args.out)
    negatives = sum(1 for p in ps.points.values() if not len(p))
    console.print(f"{ps.num_points()} points for {len(ps.points)} images ({negatives} with no target) → {args.out}")
    return 0


def cmd_points_export(args, extra) -> int:
    from semprior_core.data.point_formats import export_points
    from semprior_core.data.points import PointSet

    ps = PointSet.load(args.points)
    files = export_points(ps, args.out, args.format)
    console.print(f"{ps.num_points()} points for {len(ps.points)} images → {args.out} ({len(files)} file(s))")
    return 0


def cmd_annotate(args, extra) -> int:
    from workbench.annotate import AnnotationSession, suggest
    from workbench.annotate.app import default_paths, serve, train_command
    from workbench.infer import image_frames

    points, split = default_paths(args.images)
    points, split = Path(args.points or points), Path(args.split or split)
    try:
        suggestions = None
        if args.run:
            frames, total = image_frames(args.images)
            suggestions = suggest(args.run, frames, threshold=args.threshold, device=args.device, total=total,
                                  progress=True)
        session = AnnotationSession(args.images, points, split=split, suggestions=suggestions, order=args.order)
        server = serve(session, host=args.host, port=args.port, show=args.show, allow_remote=args.allow_remote)
    except (ValueError, OSError) as exc:  # bad folder or file, order without a model, port in use, remote host
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    p = session.progress()
    console.print(f"annotate: {server.url} (Ctrl-C to stop) · {p.done}/{p.total} images annotated · saving to "
                  f"{points} and {split}")
    console.print(f"train on them: {train_command(args.images, points, split)}", highlight=False, soft_wrap=True)
    server.wait()
    return 0


def cmd_data_check(args, extra) -> int:
    from semprior_core.data.check import check_dataset

    rep = check_dataset(args.dir)
    table = Table(title=f"{rep.root}: {rep.n_images} images, {rep.n_masks} masks")
    table.add_column("split file")
    table.add_column("ids", justify="right")
    table.add_column("problems", justify="right")
    for s in rep.splits:
        table.add_row(s.split, str(s.n_ids), str(len(s.problems)))
    console.print(table)
    for msg in rep.problems + [p for s in rep.splits for p in s.problems]:
        console.print(f"[red]problem:[/] {msg}")
    return 0 if rep.ok else 1


def cmd_labels(args, extra) -> int:
    from semprior_core.store.label_history import LabelHistory

    hist = LabelHistory(args.run)
    if not len(hist):
        raise SystemExit(f"semprior: {args.run}: no label history (labels/update_*.npz)")
    table = Table(title=f"{args.run}: pseudo-mask quality per update (IoU vs GT is a diagnostic, never used in training)")
    cols = ["update", "epoch", "images", "pool", "mean_iou_vs_gt", "mean_area", "growth", "bare_point",
            "grew_past_bound", "erased_target"]
    for c in cols:
        table.add_column(c, justify="right")
    for row in hist.table():
        table.add_row(*[_fmt(row[c]) for c in cols])
    console.print(table)
    return 0


def _fmt(v) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


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
    console.print(_metrics_table(f"{out}: test split, validation-selected checkpoint",
                                 [(r.model, r.metrics.as_row()) for r in results]))
    report = write_run_report(out, results, elapsed_s=time.monotonic() - start)
    console.print(f"report: {report}")
    return 0


def _eval_models(run_dir: Path) -> list[str]:
    from semprior_core.store.runs import Run

    return list(Run.open(run_dir).info()["eval_models"])


def cmd_sweep(args, extra) -> int:
    from workbench import sweep

    base = _config(args, extra)
    out = Path(args.out or f"runs/sweep-{base.name}")
    jobs = sweep.plan(base, out, args.seeds, [a for item in args.ablate for a in item.split(",") if a])
    n_gpus = _cuda_count()
    if n_gpus > 1:
        sweep.run_parallel_gpus(args.config, jobs, n_gpus)
    for i, job in enumerate(jobs, 1):
        console.print(f"[bold]{i}/{len(jobs)}[/] {job.variant} seed {job.seed} → {job.run_dir}")
        sweep.run_job(base, job, progress=not args.quiet)
    md, csv_path = sweep.write_summary(sweep.summary_rows([job.run_dir for job in jobs]), out)
    console.print(md.read_text())
    console.print(f"summary: {md} and {csv_path}")
    return 0


def cmd_reproduce(args, extra) -> int:
    from workbench import reproduce, sweep

    protocol = reproduce.load_protocol(args.protocol)
    out = Path(args.out or protocol.out or f"runs/reproduce-{protocol.name}")
    root_dir = Path(args.root).resolve()
    reproduce.run(protocol, out, root_dir, progress=not args.quiet, console=console, jobs=args.jobs,
                  gpus=_cuda_count())
    if protocol.candidates:  # a tuning protocol: validation scores and winners, no test numbers
        from workbench import tuning

        rows = tuning.candidates(protocol, out, root_dir)
        command = f"semprior reproduce {args.protocol}" + (f" --out {args.out}" if args.out else "")
        tuning.write_tuning(protocol, rows, root_dir, root_dir / "docs" / "tuning.md", command)
        console.print((root_dir / "docs" / "tuning.md").read_text(), highlight=False)
        return 0
    md, _ = sweep.write_summary(sweep.summary_rows([out]), out)
    console.print(md.read_text())
    console.print(f"next: semprior report {out} --out docs/results.md")
    return 0


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def cmd_cache(args, extra) -> int:
    from semprior_core.vfm.cache import warm_cache

    cfg = _config(args, extra)
    cache = warm_cache(cfg, device="cuda" if _cuda_count() else None, progress=not args.quiet)
    if cache is None:
        raise SystemExit("semprior: vfm.name is none: nothing to cache (use --vfm.name=dinov2_vits14)")
    console.print(f"{cache.hits + cache.misses} images cached in {cache.dir} ({cache.misses} computed, {cache.hits} already there)")
    return 0


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


def cmd_report(args, extra) -> int:
    from workbench.results import build_report

    command = f"semprior report {' '.join(args.runs)} --out {args.out}" + (" --no-figures" if args.no_figures else "")
    command += ' --note "…"' if args.note else ""
    out = build_report(args.runs, Path(args.out), command, with_figures=not args.no_figures, note=args.note)
    console.print(f"report: {out}")
    return 0


def cmd_dashboard(args, extra) -> int:
    from workbench.dashboard import serve

    try:
        server = serve(args.run or ["runs/demo"], host=args.host, port=args.port, show=args.show,
                       allow_remote=args.allow_remote)
    except (ValueError, OSError) as exc:  # no run, non-loopback host without --allow-remote, port in use
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    console.print(f"dashboard: {server.url} (Ctrl-C to stop)")
    server.wait()
    return 0


def cmd_bench(args, extra) -> int:
    from semprior_core.runtime.device import resolve_device
    from workbench.bench import bench_tables, markdown, print_table

    device = resolve_device("auto")
    tables = []
    for table in bench_tables(
        device, backbones=args.backbones, size=args.size, batch=args.batch, steps=args.steps, teacher=args.teacher,
        methods=args.methods, method_backbones=args.method_backbones, metrics_data=args.metrics_data,
        deploy=args.deploy, checkpoint=args.checkpoint, run=args.run,
    ):
        print_table(console, table)  # as each is measured: a full bench takes minutes
        tables.append(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(markdown(tables, device))
    return 0


# -- parser ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="semprior", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name: str, fn: Callable, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        return sp

    def config_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", help="YAML config file")
        sp.add_argument("--out", help="run directory (default runs/<name>)")
        sp.add_argument("--resume", action="store_true",
                        help="continue the run in --out from last.pt with its own config; only how it runs (device, "
                             "threads, eval cadence) may change, and its length only where nothing follows the "
                             "epoch budget (constant lr, full or fixed labels); run.json records each resume")
        sp.add_argument("--supervision", choices=sorted(SUPERVISION_ALIASES), help="shortcut for supervision settings")
        sp.add_argument("--method", choices=["supervised", "semprior"])
        sp.add_argument("--model", choices=["student", "teacher"], help="for --method supervised")
        sp.add_argument("--data", help="dataset folder (replaces data.datasets)")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")

    sp = add("train", cmd_train, "train a run from a YAML config plus overrides")
    config_args(sp)

    sp = add("demo", cmd_demo, "generate synthetic data, train, evaluate and write a report (no download, CPU)")
    config_args(sp)
    sp.set_defaults(out="runs/demo")

    sp = add("sweep", cmd_sweep, "seeds × ablations grid; test metrics as mean ± std over seeds")
    config_args(sp)
    sp.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    sp.add_argument("--ablate", action="append", default=[],
                    help="comma-separated ablations, e.g. vfm=random_vit,scam=off,reweight=off,distill=off,collaborative=off")

    sp = add("reproduce", cmd_reproduce, "run a whole protocol (configs/protocols/NAME.yaml): methods × seeds × datasets")
    sp.add_argument("protocol", help="cpu, smoke, gpu or a protocol YAML path")
    sp.add_argument("--out", help="default runs/reproduce-<protocol>")
    sp.add_argument("--root", default=".", help="folder the protocol's relative paths start from")
    sp.add_argument("--jobs", type=int, default=1,
                    help="runs trained side by side: one per GPU where there are enough, else sharing the CPU threads")
    sp.add_argument("--quiet", action="store_true")

    sp = add("cache", cmd_cache, "precompute frozen VFM features of every image of the configured datasets")
    config_args(sp)

    from semprior_core.classical import METHODS

    sp = add("classical", cmd_classical, "tune a classical baseline (tophat, mpcm, ipi) on validation and store it as a run")
    sp.add_argument("--method", choices=sorted(METHODS), help="default: classical.method of --config, else tophat")
    sp.add_argument("--data", help="dataset folder (replaces data.datasets)")
    sp.add_argument("--config", help="YAML with data.* and an optional classical section (a training config works)")
    sp.add_argument("--tune", default="val", choices=["val"],
                    help="tuning data: the validation split carved from training data (never test)")
    sp.add_argument("--out", help="run directory (default runs/<method>)")

    sp = add("eval", cmd_eval, "IoU, nIoU, Pd, Fa of a run on a split, or on another dataset (--data)")
    sp.add_argument("--run", required=True, help="run directory; with --data also a folder of runs")
    sp.add_argument("--data", help="another dataset folder to score the run on (cross-dataset generalisation; "
                                   "saved under RUN/eval_cross/); with Pd–Fa curves, size and contrast bins")
    sp.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                    help="without --data: the run's own split; with --data: test (its test split file) or all")
    sp.add_argument("--which", help="network (student/teacher); default: the run's selection model")
    sp.add_argument("--checkpoint", default="best", help="best (validation-selected), last, or a path")
    sp.add_argument("--device", default="auto")
    sp.add_argument("--json", action="store_true")

    from semprior_core.store.outputs import NAMING

    sp = add("predict", cmd_predict, "write one 8-bit probability PNG per image")
    sp.add_argument("--checkpoint", required=True)
    sp.add_argument("--images", required=True)
    sp.add_argument("--out", required=True, help=f"output folder: {NAMING}; never an input file")
    sp.add_argument("--which")
    sp.add_argument("--device", default="auto")

    sp = add("export", cmd_export, "export a run's student (ONNX or TorchScript) with its validated threshold")
    sp.add_argument("--checkpoint", required=True, help="training checkpoint, e.g. runs/x/best.pt")
    sp.add_argument("--format", default="onnx", choices=["onnx", "torchscript"])
    sp.add_argument("--fp16", action="store_true", help="half precision (pays off on CUDA; slower on CPU)")
    sp.add_argument("--int8", action="store_true", help="onnxruntime int8 quantization (ONNX only)")
    sp.add_argument("--quantization", default="static", choices=["static", "dynamic"],
                    help="int8: static calibrates on validation images (better for convolutions)")
    sp.add_argument("--threshold", type=float, help="decision threshold (default: chosen on the validation split)")
    sp.add_argument("--which", default="student", choices=["student", "teacher"])
    sp.add_argument("--device", default="cpu", help="device for the validation predictions")
    sp.add_argument("--out", required=True, help="output file (.onnx / .ts)")

    sp = add("infer", cmd_infer, "probability maps and target lists (JSON, CSV) for an image folder or a video")
    sp.add_argument("--model", required=True, help="exported ONNX or TorchScript file, or a training checkpoint")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of images")
    src.add_argument("--video", help="video file (read frame by frame with OpenCV)")
    sp.add_argument("--out", required=True, help=f"output folder: targets.json, targets.csv and, for --images, "
                                                f"{NAMING}; never an input file")
    sp.add_argument("--tile", type=int, help="tile side for frames larger than it (default: whole frames)")
    sp.add_argument("--overlap", type=int, default=64, help="minimum overlap between tiles")
    sp.add_argument("--threshold", type=float, help="override the model's validated threshold")
    sp.add_argument("--min-area", type=int, default=1, dest="min_area", help="smallest target in pixels")
    sp.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    sp.add_argument("--quiet", action="store_true", help="no progress bar")

    sp = add("points", cmd_points, "derive point labels (centroid or coarse) from a dataset's masks; import, export")
    sp.add_argument("--data", help="dataset folder whose masks/ give the points")
    sp.add_argument("--kind", default="centroid", choices=["centroid", "coarse"])
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out")
    from semprior_core.data.point_formats import FORMATS

    psub = sp.add_subparsers(dest="points_cmd", metavar="{import,export}")
    imp = psub.add_parser("import", help="convert NUAA-SIRST centroid XML, CSV or JSON points to a points file")
    imp.add_argument("src", help="folder of <id>.xml (nuaa-xml), or one file")
    imp.add_argument("--format", required=True, choices=FORMATS)
    imp.add_argument("--out", required=True, help="points file to write (the format semprior train reads)")
    imp.set_defaults(fn=cmd_points_import)
    exp = psub.add_parser("export", help="write a points file as NUAA-SIRST centroid XML, CSV or JSON")
    exp.add_argument("points", help="points file")
    exp.add_argument("--format", required=True, choices=FORMATS)
    exp.add_argument("--out", required=True, help="folder for nuaa-xml (one <id>.xml per image), else a file")
    exp.set_defaults(fn=cmd_points_export)

    sp = add("annotate", cmd_annotate, "click point labels on a folder of images (Panel app on 127.0.0.1)")
    sp.add_argument("--images", required=True, help="image folder; as ROOT/images it trains as a dataset")
    sp.add_argument("--points", help="points file, created or resumed (default ROOT/points/manual.json)")
    sp.add_argument("--split", help="split file listing the annotated ids (default ROOT/splits/annotated.txt)")
    sp.add_argument("--run", help="trained run directory (or model file): its detections become suggestions")
    sp.add_argument("--order", default="name", choices=["name", "uncertainty"],
                    help="image order; uncertainty (needs --run): the model's least certain images first")
    sp.add_argument("--threshold", type=float, help="suggestion threshold (default: the model's)")
    sp.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    sp.add_argument("--port", type=int, default=5006, help="0 = any free port")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--allow-remote", action="store_true",
                    help="allow a non-loopback --host: no authentication, anyone who reaches the port edits the labels")
    sp.add_argument("--show", action="store_true", help="open it in a browser")

    data = add("data", lambda a, e: data.print_help() or 2, "dataset tools")
    dsub = data.add_subparsers(dest="data_cmd")
    chk = dsub.add_parser("check", help="validate a dataset folder and print counts per split")
    chk.add_argument("dir")
    chk.set_defaults(fn=cmd_data_check)

    sp = add("labels", cmd_labels, "pseudo-mask quality per label update of a run")
    sp.add_argument("--run", required=True)

    sp = add("report", cmd_report, "tables (mean ± std over seeds), significance and figures from run directories")
    sp.add_argument("runs", nargs="+", help="run directories or folders of runs")
    sp.add_argument("--out", default="docs/results.md")
    sp.add_argument("--no-figures", action="store_true")
    sp.add_argument("--note", default="", help="a paragraph of context printed under the header")

    sp = add("dashboard", cmd_dashboard, "browse runs: metrics, label evolution, clusters, SCAM, attributions, comparison")
    sp.add_argument("--run", action="append", metavar="DIR",
                    help="run directory or a folder of runs; repeatable (default: runs/demo)")
    sp.add_argument("--port", type=int, default=5006, help="0 = any free port")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--allow-remote", action="store_true",
                    help="allow a non-loopback --host: no authentication, anyone who reaches the port sees the runs")
    sp.add_argument("--show", action="store_true", help="open it in a browser")

    sp = add("bench", cmd_bench, "parameters, MACs, speed and memory per backbone")
    sp.add_argument("--backbones", nargs="*", help="default: all registered")
    sp.add_argument("--size", type=int, default=256)
    sp.add_argument("--batch", type=int, default=8)
    sp.add_argument("--steps", type=int, default=5)
    sp.add_argument("--teacher", metavar="VFM", help="also time the SCAM teacher with cached vs live VFM features")
    sp.add_argument("--methods", metavar="VFM", help="also time whole methods (supervised, LESPS, semprior with VFM) per backbone")
    sp.add_argument("--method-backbones", nargs="*", help="with --methods: only these backbones (default: --backbones)")
    sp.add_argument("--metrics-data", metavar="DIR", help="also time the metrics on this dataset's test split (e.g. NUDT-SIRST)")
    sp.add_argument("--deploy", action="store_true",
                    help="also time the deployed student (PyTorch, TorchScript, onnxruntime fp32/fp16/int8) at 256², 640×512, 1920×1080")
    sp.add_argument("--checkpoint", help="with --deploy: time this checkpoint's student (default: an untrained backbone)")
    sp.add_argument("--run", help="with --deploy: also the IoU/Pd/Fa change int8 causes on this run's test split")
    sp.add_argument("--out", help="also write the tables as markdown to this file")
    return p


# Modules of the optional extras (pyproject.toml), so a missing one names what to install.
OPTIONAL_EXTRAS = {"panel": "app", "holoviews": "app", "plotly": "app", "bokeh": "app", "marimo": "app",
                   "pandas": "app", "ipywidgets": "app", "onnxruntime": "deploy"}


def main(argv: list[str] | None = None) -> int:
    from rich.markup import escape

    from semprior_core.config.tree import ConfigError
    from semprior_core.engine import TrainingError
    from semprior_core.io import DataError, WriteError
    from semprior_core.store.checkpoint import CheckpointError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.cmd not in ("train", "demo", "sweep", "cache", "classical"):
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    try:
        return int(args.fn(args, extra) or 0)
    except (ConfigError, DataError, CheckpointError, TrainingError, FileExistsError, WriteError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    except ImportError as exc:
        extra_name = OPTIONAL_EXTRAS.get((exc.name or "").split(".")[0])
        hint = f" (semprior {args.cmd} needs the [{extra_name}] extra: pip install -e '.[{extra_name}]')" if extra_name else ""
        console.print(f"[red]error:[/] {escape(str(exc) + hint)}", highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: the last complete checkpoint is intact; continue with --resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
