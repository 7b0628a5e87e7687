"""Deployment benchmarks: latency per frame for each runtime, precision and frame size, and the change of
IoU / Pd / Fa that int8 quantization causes on a run's test split.

Latency is measured here and reported, never asserted in tests (shared CPUs make timings noisy). It
depends on the architecture only, so without a checkpoint an untrained backbone is timed; the int8
metric change needs a trained run.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semprior_core.data.dataset import Normalization
from semprior_core.export import (
    NetworkSource,
    calibration_images,
    export_onnx,
    export_torchscript,
    load_network,
    metadata_for,
    read_torchscript,
    validation_threshold,
)
from workbench.bench import Table
from workbench.infer import OnnxPredictor, TorchPredictor, predict_frame

SIZES: tuple[tuple[int, int], ...] = ((256, 256), (512, 640), (1080, 1920))


@dataclass(frozen=True)
class LatencyConfig:
    """Frame sizes (H, W), timed repeats after one warm-up, devices (cuda only where present) and CPU
    threads for both runtimes (0: leave PyTorch's setting and let onnxruntime choose)."""

    sizes: tuple[tuple[int, int], ...] = SIZES
    repeats: int = 3
    devices: tuple[str, ...] = ("cpu",)
    calibration_frames: int = 4
    threads: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(tuple(s) for s in self.sizes))
        if not self.sizes or any(len(s) != 2 or min(s) < 1 for s in self.sizes):
            raise ValueError(f"sizes must be (H, W) pairs of positive ints, got {self.sizes}")
        if self.repeats < 1 or self.calibration_frames < 1 or self.threads < 0:
            raise ValueError("repeats and calibration_frames must be >= 1, threads >= 0")
        bad = [d for d in self.devices if d not in ("cpu", "cuda")]
        if not self.devices or bad:
            raise ValueError(f"devices must be cpu and/or cuda, got {self.devices}")


def untrained_source(backbone: str) -> NetworkSource:
    """A randomly initialised student of ``backbone`` (latency does not depend on the weights)."""
    from semprior_core.config import load_config
    from semprior_core.networks import build_network

    cfg = load_config(None, [f"model.backbone={backbone}"])
    net = build_network(cfg, "student").eval()
    return NetworkSource(cfg, net, Normalization(0.5, 0.25), int(net.size_divisor), "student", None, None)


def _synthetic_frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((h, w), dtype=np.float32) * 0.2 + 0.3


def latency_variants(src: NetworkSource, workdir: Path, cfg: LatencyConfig,
                     calibration: list[np.ndarray]) -> list[tuple[str, str, str, Callable[[np.ndarray], np.ndarray]]]:
    """(runtime, precision, device, predictor) for every combination the runtimes support here."""
    import onnxruntime as ort

    meta = metadata_for(src, 0.5, "default")
    files = {p: workdir / f"model_{p}.onnx" for p in ("fp32", "fp16", "int8")}
    for p, path in files.items():
        export_onnx(src.deploy_model(), path, _with_precision(meta, p), calibration=calibration)
    ts = export_torchscript(src.deploy_model(), workdir / "model_fp32.ts", meta)
    out = []
    for device in cfg.devices:
        dev = torch.device(device)
        out.append(("torch", "fp32", device, TorchPredictor(workdir / "eager", src.deploy_model(), meta, dev)))
        out.append(("torchscript", "fp32", device, TorchPredictor(ts, read_torchscript(ts)[0], meta, dev)))
        if device == "cuda":
            ts16 = export_torchscript(src.deploy_model(), workdir / "model_fp16.ts", _with_precision(meta, "fp16"))
            out.append(("torchscript", "fp16", device, TorchPredictor(ts16, read_torchscript(ts16)[0], meta, dev)))
        if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            continue
        # QDQ int8 targets the CPU provider; the CUDA provider would run most of it in float
        for p in ("fp32", "fp16") + (("int8",) if device == "cpu" else ()):
            out.append(("onnxruntime", p, device, OnnxPredictor(files[p], device, threads=cfg.threads)))
    return out


def _with_precision(meta, precision: str):
    import dataclasses

    return dataclasses.replace(meta, precision=precision)


def time_frame(predict: Callable[[np.ndarray], np.ndarray], frame: np.ndarray, divisor: int, repeats: int) -> float:
    """Median milliseconds of whole-frame prediction after one warm-up call."""
    predict_frame(predict, frame, divisor)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict_frame(predict, frame, divisor)
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def latency_rows(src: NetworkSource, cfg: LatencyConfig = LatencyConfig()) -> list[dict[str, Any]]:
    calibration = [_synthetic_frame(256, 256, seed) for seed in range(cfg.calibration_frames)]
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for runtime, precision, device, predictor in latency_variants(src, Path(tmp), cfg, calibration):
            for h, w in cfg.sizes:
                ms = time_frame(predictor, _synthetic_frame(h, w), src.divisor, cfg.repeats)
                rows.append({"runtime": runtime, "precision": precision, "device": device, "size": f"{w}x{h}",
                             "ms": ms})
    return rows


def quantization_effect(run_dir: str | Path, split: str = "test", checkpoint: str = "best",
                        calibration_frames: int = 8, device: str = "cpu") -> dict[str, Any]:
    """IoU, nIoU, Pd, Fa of the fp32 and static-int8 ONNX students of a run on ``split``, at the
    threshold chosen on the validation split, and their difference (int8 - fp32)."""
    from semprior_core.evaluation.evaluate import resolve_checkpoint, split_bank
    from semprior_core.evaluation.metrics import MetricAccumulator

    run_dir = Path(run_dir)
    path = resolve_checkpoint(run_dir, checkpoint)
    src = load_network(path)
    choice = validation_threshold(src, device=device)
    meta = metadata_for(src, choice.threshold, choice.metric, choice=choice)
    bank = split_bank(src.cfg.data, run_dir, split)
    calibration = calibration_images(src.cfg, calibration_frames)
    rows, probs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "int8"):
            onnx_path = Path(tmp) / f"{precision}.onnx"
            export_onnx(src.deploy_model(), onnx_path, _with_precision(meta, precision), calibration=calibration)
            predictor = OnnxPredictor(onnx_path, device)
            acc = MetricAccumulator(threshold=choice.threshold)
            probs[precision] = [predictor(bank.image(i)) for i in range(len(bank))]
            for i, p in enumerate(probs[precision]):
                acc.update(p, bank.mask(i))
            rows[precision] = acc.compute().as_row()
    return {
        "split": split, "n_images": len(bank), "threshold": choice.threshold, "threshold_metric": choice.metric,
        "fp32": rows["fp32"], "int8": rows["int8"],
        "delta": {k: rows["int8"][k] - rows["fp32"][k] for k in rows["fp32"]},
        "max_abs_prob_diff": float(max(np.abs(a - b).max() for a, b in zip(probs["fp32"], probs["int8"]))),
    }


def deploy_tables(*, checkpoint: str | Path | None = None, backbone: str = "unet", repeats: int = 3,
                  run: str | Path | None = None) -> Iterator[Table]:
    """The latency table of ``checkpoint``'s student (default: an untrained ``backbone``) with ``repeats`` timed
    calls per frame and, with ``run``, the int8 metric change on that run's test split."""
    src = load_network(checkpoint) if checkpoint else untrained_source(backbone)
    devices = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    rows = latency_rows(src, LatencyConfig(repeats=repeats, devices=devices, threads=torch.get_num_threads()))
    yield latency_table(src.cfg.model.backbone, rows, repeats)
    if run:
        yield quantization_table(run, quantization_effect(run))


def latency_table(backbone: str, rows: list[dict[str, Any]], repeats: int) -> Table:
    """:func:`latency_rows` as one row per runtime, precision and device, one column per frame size."""
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    ms = {(r["runtime"], r["precision"], r["device"], r["size"]): r["ms"] for r in rows}
    keys = dict.fromkeys((r["runtime"], r["precision"], r["device"]) for r in rows)
    return Table(
        f"deployed {backbone} student: ms per frame (median of {repeats}, {torch.get_num_threads()} threads)",
        [dict(zip(("runtime", "precision", "device"), key)) | {s: ms[(*key, s)] for s in sizes} for key in keys],
        float_format=".1f",
    )


def quantization_table(run: str | Path, effect: dict[str, Any]) -> Table:
    """:func:`quantization_effect` of ``run``: IoU, nIoU, Pd and Fa of fp32, int8 and their difference."""
    rows = [{"model": name, "IoU": effect[name]["IoU"], "nIoU": effect[name]["nIoU"], "Pd": effect[name]["Pd"],
             "Fa (×1e-6)": effect[name]["Fa"]} for name in ("fp32", "int8", "delta")]
    return Table(
        f"{run}: int8 vs fp32 on the {effect['split']} split ({effect['n_images']} images, threshold "
        f"{effect['threshold']:.2f} chosen on validation by {effect['threshold_metric']})",
        rows, formats={"IoU": ".2f", "nIoU": ".2f", "Pd": ".2f", "Fa (×1e-6)": ".1f"},
    )
