"""Commands that score or apply a run: ``eval`` (its own split, or another dataset) and ``predict``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from semprior_core.store.run_dir import RunDir
from workbench.commands import Commands, console, metrics_table

commands = Commands()


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run directory; with --data also a folder of runs")
    p.add_argument("--data", help="another dataset folder to score the run on (cross-dataset generalisation; "
                                  "saved under RUN/eval_cross/); with Pd–Fa curves, size and contrast bins")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="without --data: the run's own split; with --data: test (its test split file) or all")
    p.add_argument("--which", help="network (student/teacher); default: the run's selection model")
    p.add_argument("--checkpoint", default="best", help="best (validation-selected), last, or a path")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")


@commands.command("eval", "IoU, nIoU, Pd, Fa of a run on a split, or on another dataset (--data)", args=_eval_args)
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
        console.print(metrics_table(title, [(res.model, res.metrics.as_row())]))
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
        console.print(metrics_table(title, [(res.model, res.metrics.as_row())]), highlight=False)
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


def _predict_args(p: argparse.ArgumentParser) -> None:
    from semprior_core.store.outputs import NAMING

    p.add_argument("--checkpoint", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True, help=f"output folder: {NAMING}; never an input file")
    p.add_argument("--which")
    p.add_argument("--device", default="auto")


@commands.command("predict", "write one 8-bit probability PNG per image", args=_predict_args)
def cmd_predict(args, extra) -> int:
    from semprior_core.evaluation.evaluate import predict_folder

    files = predict_folder(args.checkpoint, args.images, args.out, which=args.which, device=args.device)
    console.print(f"wrote {len(files)} probability maps to {args.out}")
    return 0
