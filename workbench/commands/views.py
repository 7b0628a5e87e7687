"""Commands that show runs and measurements: ``labels`` (pseudo-mask quality), ``report`` (tables and figures),
the ``dashboard`` app, and ``bench`` (size, speed and memory)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from workbench.commands import Commands, add_server_args, console

commands = Commands()


def _labels_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True)


@commands.command("labels", "pseudo-mask quality per label update of a run", args=_labels_args)
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


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run directories or folders of runs")
    p.add_argument("--out", default="docs/results.md")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--note", default="", help="a paragraph of context printed under the header")


@commands.command("report", "tables (mean ± std over seeds), significance and figures from run directories",
                  args=_report_args)
def cmd_report(args, extra) -> int:
    from workbench.results import build_report

    command = f"semprior report {' '.join(args.runs)} --out {args.out}" + (" --no-figures" if args.no_figures else "")
    command += ' --note "…"' if args.note else ""
    out = build_report(args.runs, Path(args.out), command, with_figures=not args.no_figures, note=args.note)
    console.print(f"report: {out}")
    return 0


def _dashboard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", action="append", metavar="DIR",
                   help="run directory or a folder of runs; repeatable (default: runs/demo)")
    p.add_argument("--data", action="append", metavar="DIR", default=[],
                   help="another dataset folder whose false alarms the dashboard can show (e.g. a cross-dataset test); repeatable")
    add_server_args(p, "sees the runs")


@commands.command("dashboard", "browse runs: metrics, label evolution, clusters, SCAM, attributions, comparison",
                  args=_dashboard_args)
def cmd_dashboard(args, extra) -> int:
    from semprior_core.data.folder import DatasetFolder
    from workbench.dashboard import serve

    for folder in args.data:  # a typo fails here with one line, not later as an empty selector
        DatasetFolder.open(folder)
    try:
        server = serve(args.run or ["runs/demo"], host=args.host, port=args.port, show=args.show,
                       allow_remote=args.allow_remote, data=args.data)
    except (ValueError, OSError) as exc:  # no run, a bad --data folder, non-loopback host without --allow-remote, port in use
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    console.print(f"dashboard: {server.url} (Ctrl-C to stop)")
    server.wait()
    return 0


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbones", nargs="*", help="default: all registered")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--teacher", metavar="VFM", help="also time the SCAM teacher with cached vs live VFM features")
    p.add_argument("--methods", metavar="VFM", help="also time whole methods (supervised, LESPS, semprior with VFM) per backbone")
    p.add_argument("--method-backbones", nargs="*", help="with --methods: only these backbones (default: --backbones)")
    p.add_argument("--metrics-data", metavar="DIR", help="also time the metrics on this dataset's test split (e.g. NUDT-SIRST)")
    p.add_argument("--deploy", action="store_true",
                   help="also time the deployed student (PyTorch, TorchScript, onnxruntime fp32/fp16/int8) at 256², 640×512, 1920×1080")
    p.add_argument("--checkpoint", help="with --deploy: time this checkpoint's student (default: an untrained backbone)")
    p.add_argument("--run", help="with --deploy: also the IoU/Pd/Fa change int8 causes on this run's test split")
    p.add_argument("--cache", metavar="VFM", help="also time building the VFM feature cache (old vs new path) and its encoder per engine")
    p.add_argument("--dashboard", metavar="RUNS", help="also time the dashboard's first render with 20 runs copied from RUNS")
    p.add_argument("--label-windows", metavar="RUN",
                   help="also time this label-evolving run's label-update predictions, whole images vs windows "
                        "around the points (labels.predict_margin), and how the updated labels differ")
    p.add_argument("--margins", type=int, nargs="+", default=[40, 64], help="with --label-windows: margins in px")
    p.add_argument("--crops", nargs="+", default=[], metavar="DIR",
                   help="also measure how often training and meta-validation crops hold a target in these datasets, "
                        "placed anywhere vs as training places them")
    p.add_argument("--out", help="also write the tables as markdown to this file")


@commands.command("bench", "parameters, MACs, speed and memory per backbone", args=_bench_args)
def cmd_bench(args, extra) -> int:
    import dataclasses

    from semprior_core.runtime.device import resolve_device
    from workbench.bench import BenchPlan, bench_tables, markdown, print_table

    device = resolve_device("auto")
    plan = BenchPlan(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BenchPlan)})  # same names
    tables = []
    for table in bench_tables(device, plan):
        print_table(console, table)  # as each is measured: a full bench takes minutes
        tables.append(table)
    if args.out:
        from semprior_core.io import atomic_write_text
        from semprior_core.runtime.environment import environment

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, markdown(tables, device, args.command_line, environment()["git_commit"]))
    return 0
