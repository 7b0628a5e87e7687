"""Commands for deployment: ``export`` a run's network, ``infer`` with the exported model on images or a video."""

from __future__ import annotations

import argparse

from workbench.commands import Commands, console

commands = Commands()


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="training checkpoint, e.g. runs/x/best.pt")
    p.add_argument("--format", default="onnx", choices=["onnx", "torchscript"])
    p.add_argument("--fp16", action="store_true", help="half precision (pays off on CUDA; slower on CPU)")
    p.add_argument("--int8", action="store_true", help="onnxruntime int8 quantization (ONNX only)")
    p.add_argument("--quantization", default="static", choices=["static", "dynamic"],
                   help="int8: static calibrates on validation images (better for convolutions)")
    p.add_argument("--threshold", type=float, help="decision threshold (default: chosen on the validation split)")
    p.add_argument("--which", default="student", choices=["student", "teacher"])
    p.add_argument("--device", default="cpu", help="device for the validation predictions")
    p.add_argument("--out", required=True, help="output file (.onnx / .ts)")


@commands.command("export", "export a run's student (ONNX or TorchScript) with its validated threshold",
                  args=_export_args)
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


def _infer_args(p: argparse.ArgumentParser) -> None:
    from semprior_core.store.outputs import NAMING

    p.add_argument("--model", required=True, help="exported ONNX or TorchScript file, or a training checkpoint")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of images")
    src.add_argument("--video", help="video file (read frame by frame with OpenCV)")
    p.add_argument("--out", required=True, help=f"output folder: targets.json, targets.csv and, for --images, "
                                               f"{NAMING}; never an input file")
    p.add_argument("--tile", type=int, help="tile side for frames larger than it (default: whole frames)")
    p.add_argument("--overlap", type=int, default=64, help="minimum overlap between tiles")
    p.add_argument("--threshold", type=float, help="override the model's validated threshold")
    p.add_argument("--min-area", type=int, default=1, dest="min_area", help="smallest target in pixels")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--quiet", action="store_true", help="no progress bar")


@commands.command("infer", "probability maps and target lists (JSON, CSV) for an image folder or a video",
                  args=_infer_args)
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
