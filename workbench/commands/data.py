"""Commands for datasets and their labels: ``points`` (derive, import, export), ``annotate``, ``data check``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from workbench.commands import Commands, add_server_args, console

commands = Commands()


def _points_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="dataset folder whose masks/ give the points")
    p.add_argument("--kind", default="centroid", choices=["centroid", "coarse"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out")


@commands.command("points", "derive point labels (centroid or coarse) from a dataset's masks; import, export",
                  args=_points_args, metavar="{import,export}")
def cmd_points(args, extra) -> int:
    from semprior_core.data.catalog import make_points
    from semprior_core.data.folder import DatasetFolder

    if args.data is None:
        console.print("[red]error:[/] semprior points: give --data DIR (derive from masks), or import / export")
        return 2
    folder = DatasetFolder.open(args.data)
    ps = make_points(folder, args.kind, args.seed)
    out = Path(args.out) if args.out else folder.layout.points / (f"{args.kind}_seed{args.seed}.json" if args.kind == "coarse" else f"{args.kind}.json")
    ps.save(out)
    console.print(f"{ps.num_points()} {args.kind} points for {len(ps.points)} images → {out}")
    return 0


def _points_import_args(p: argparse.ArgumentParser) -> None:
    from semprior_core.data.point_formats import FORMATS

    p.add_argument("src", help="folder of <id>.xml (nuaa-xml), or one file")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, help="points file to write (the format semprior train reads)")


@commands.command("points import", "convert NUAA-SIRST centroid XML, CSV or JSON points to a points file",
                  args=_points_import_args)
def cmd_points_import(args, extra) -> int:
    from semprior_core.data.point_formats import import_points

    ps = import_points(args.src, args.format)
    ps.save(args.out)
    negatives = sum(1 for p in ps.points.values() if not len(p))
    console.print(f"{ps.num_points()} points for {len(ps.points)} images ({negatives} with no target) → {args.out}")
    return 0


def _points_export_args(p: argparse.ArgumentParser) -> None:
    from semprior_core.data.point_formats import FORMATS

    p.add_argument("points", help="points file")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, help="folder for nuaa-xml (one <id>.xml per image), else a file")


@commands.command("points export", "write a points file as NUAA-SIRST centroid XML, CSV or JSON",
                  args=_points_export_args)
def cmd_points_export(args, extra) -> int:
    from semprior_core.data.point_formats import export_points
    from semprior_core.data.points import PointSet

    ps = PointSet.load(args.points)
    files = export_points(ps, args.out, args.format)
    console.print(f"{ps.num_points()} points for {len(ps.points)} images → {args.out} ({len(files)} file(s))")
    return 0


def _annotate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, help="image folder; as ROOT/images it trains as a dataset")
    p.add_argument("--points", help="points file, created or resumed (default ROOT/points/manual.json)")
    p.add_argument("--split", help="split file listing the annotated ids (default ROOT/splits/annotated.txt)")
    p.add_argument("--run", help="trained run directory (or model file): its detections become suggestions")
    p.add_argument("--order", default="name", choices=["name", "uncertainty"],
                   help="image order; uncertainty (needs --run): the model's least certain images first")
    p.add_argument("--threshold", type=float, help="suggestion threshold (default: the model's)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    add_server_args(p, "edits the labels")


@commands.command("annotate", "click point labels on a folder of images (Panel app on 127.0.0.1)",
                  args=_annotate_args)
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


commands.group("data", "dataset tools")


def _data_check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir")


@commands.command("data check", "validate a dataset folder and print counts per split", args=_data_check_args)
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
