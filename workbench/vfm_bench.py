"""How fast can the frozen VFM encode the cache's images, and at what cost in feature fidelity?

Issue 19 asked for a cache build >= 2.5x faster than before, on the premise that onnxruntime runs the
ViT ~2.8x faster than PyTorch. That premise compared numbers measured at different times; this table
measures every engine in one process, interleaved, on the same preprocessed images, and gives each
engine's deviation from the float32 PyTorch features (relative RMS and max, per block, worst block),
next to the float16 storage step every cached feature is rounded to anyway.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

FP16_STEP = 2.0**-11  # relative rounding step of the float16 files the cache stores

Encode = Callable[[list[Tensor]], list[list[Tensor]]]


class _Blocks(nn.Module):
    """The encoder as a plain tensor -> tuple-of-blocks module, for ONNX export."""

    def __init__(self, encoder: nn.Module, layers: Sequence[int]) -> None:
        super().__init__()
        self.encoder, self.layers = encoder, list(layers)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.encoder(x, self.layers, pooled=False)[0])


def _torch_engine(encoder: nn.Module, layers: Sequence[int], *, pooled: bool, pool: ThreadPoolExecutor | None,
                  bf16: bool = False) -> Encode:
    """One batch on intra-op threads (no ``pool``), or one image per ``pool`` thread (each with one torch thread)."""

    def one(x: Tensor) -> list[Tensor]:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return [f.float() for f in encoder(x, layers, pooled=pooled)[0]]

    if pool is not None:
        return lambda xs: list(pool.map(one, xs))

    def batched(xs: list[Tensor]) -> list[list[Tensor]]:
        out = one(torch.cat(xs))
        return [[f[i : i + 1] for f in out] for i in range(len(xs))]
    return batched


def _onnx_engine(encoder: nn.Module, layers: Sequence[int], example: Tensor, tmp: Path, threads: int,
                 int8: bool = False) -> Encode:
    """The same blocks exported to ONNX (dynamic batch and size), run by onnxruntime on ``threads`` threads;
    ``int8``: with onnxruntime's dynamic quantisation (int8 weights, activations quantised per call)."""
    import onnxruntime as ort

    path = tmp / "vfm.onnx"
    if not path.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's shape-to-int warnings: the graph is checked below
            torch.onnx.export(_Blocks(encoder, layers), (example,), str(path), input_names=["x"], opset_version=17,
                              dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}}, dynamo=False)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(path), str(tmp / "vfm-int8.onnx"), weight_type=QuantType.QInt8)
        path = tmp / "vfm-int8.onnx"
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda xs: [[torch.from_numpy(f) for f in session.run(None, {"x": x.numpy()})] for x in xs]


def _deviation(got: list[list[Tensor]], ref: list[list[Tensor]]) -> tuple[float, float]:
    """Worst block's relative RMS and relative max deviation over all images."""
    rms = mx = 0.0
    for per_got, per_ref in zip(got, ref, strict=True):
        for g, r in zip(per_got, per_ref, strict=True):
            rms = max(rms, ((g - r).pow(2).mean().sqrt() / r.pow(2).mean().sqrt()).item())
            mx = max(mx, ((g - r).abs().max() / r.abs().max()).item())
    return rms, mx


def bench_vfm_engines(vfm_name: str = "dinov2_vits14", size: int = 256, images: int = 6, rounds: int = 2,
                      layers: tuple[int, ...] = (3, 6, 9), input_size: int = 448) -> list[dict]:
    """Images/s of encoding ``images`` synthetic ``size``² images at ``input_size`` per engine, each engine
    once per round in alternating order after a warm-up, plus its deviation from the float32 torch features.

    ``ratio_to_before`` is against the cache's path before issue 19: all blocks, one batch on intra-op threads.
    onnxruntime rows are left out when it is not installed (the ``deploy`` extra).
    """
    from semprior_core.data.synthetic import SyntheticConfig, render
    from semprior_core.vfm import create_vfm
    from semprior_core.vfm.preprocess import preprocess

    vfm = create_vfm(vfm_name, input_size=input_size)
    rng = np.random.default_rng(0)
    grey = [torch.from_numpy(render(rng, size, size, SyntheticConfig())[0].astype(np.float32) / 255)[None, None]
            for _ in range(images)]
    xs = [preprocess(g, vfm.input_size, vfm.patch_size) for g in grey]
    threads = torch.get_num_threads()
    enc, wanted = vfm.encoder, list(layers)
    with tempfile.TemporaryDirectory(prefix="semprior-bench-vfm-") as tmp, ThreadPoolExecutor(
            threads, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        try:
            wall, features = _interleaved(_engines(enc, wanted, pool, xs[0], Path(tmp), threads), xs, rounds)
        finally:
            torch.set_num_threads(threads)  # the worker initialisers changed the default for new threads
    ref = features["torch, blocks to the last needed, batch on intra-op threads"]
    before = wall["torch, all blocks, batch on intra-op threads (before)"]
    rows = []
    for name, (precision, seconds) in wall.items():
        rms, mx = _deviation(features[name], ref)
        rows.append({"engine": name, "precision": precision, "img_s": images * rounds / seconds,
                     "ratio_to_before": before[1] / seconds, "rel_rms_dev": rms, "rel_max_dev": mx,
                     "fp16_step": FP16_STEP})
    return rows


def _engines(enc: nn.Module, wanted: list[int], pool: ThreadPoolExecutor, example: Tensor, tmp: Path,
             threads: int) -> dict[str, tuple[str, Encode]]:
    engines: dict[str, tuple[str, Encode]] = {
        "torch, all blocks, batch on intra-op threads (before)": ("fp32", _torch_engine(enc, wanted, pooled=True,
                                                                                         pool=None)),
        "torch, blocks to the last needed, batch on intra-op threads": ("fp32", _torch_engine(
            enc, wanted, pooled=False, pool=None)),
        "torch, blocks to the last needed, image per worker thread (cache default)": ("fp32", _torch_engine(
            enc, wanted, pooled=False, pool=pool)),
        "torch autocast bfloat16, image per worker thread": ("bf16", _torch_engine(
            enc, wanted, pooled=False, pool=pool, bf16=True)),
    }
    try:
        engines["onnxruntime, blocks to the last needed, intra-op threads"] = (
            "fp32", _onnx_engine(enc, wanted, example, tmp, threads))
        engines["onnxruntime int8 (dynamic quantisation), intra-op threads"] = (
            "int8", _onnx_engine(enc, wanted, example, tmp, threads, int8=True))
    except ImportError:
        pass
    return engines


def _interleaved(engines: dict[str, tuple[str, Encode]], xs: list[Tensor], rounds: int
                 ) -> tuple[dict[str, tuple[str, float]], dict[str, list[list[Tensor]]]]:
    """Per engine (precision, seconds over ``rounds``) and its last features; round -1 warms up on one image."""
    wall = dict.fromkeys(engines, 0.0)
    features: dict[str, list[list[Tensor]]] = {}
    for r in range(-1, rounds):
        for name in list(engines) if r % 2 else list(engines)[::-1]:
            t0 = time.perf_counter()
            out = engines[name][1](xs if r >= 0 else xs[:1])
            if r >= 0:
                wall[name] += time.perf_counter() - t0
                features[name] = out
    return {n: (engines[n][0], wall[n]) for n in engines}, features
