"""``semprior infer``: run a deployed detector on an image folder or a video, write maps and target lists.

A model is an exported ONNX file (run by onnxruntime), an exported TorchScript file or a training
checkpoint (both run by PyTorch); the kind is read from the file's content. Large frames are predicted
whole, or in overlapping tiles stitched seamlessly (:mod:`semprior_core.runtime.tiling`) when ``tile`` is set and
the frame exceeds it — and automatically when a whole frame runs out of memory.

Outputs in ``out``: one 8-bit probability PNG per image (named as :data:`semprior_core.store.outputs.NAMING` says) or
video frame (``frame_<index>.png``), and the targets of every frame (:func:`semprior_core.evaluation.postprocess.extract_targets`
at the model's validated threshold unless overridden) in ``targets.json`` and ``targets.csv``. All of them
are checked before anything is written: an output that would replace an input file is refused.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from semprior_core.evaluation.postprocess import TARGET_FIELDS, PostprocessConfig, Target, extract_targets
from semprior_core.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    ExportError,
    ExportMetadata,
    load_network,
    metadata_for,
    model_kind,
    read_torchscript,
    require_onnxruntime,
)
from semprior_core.io import DataError, atomic_write_json, atomic_write_text, read_image, save_png
from semprior_core.runtime.tiling import TileConfig, predict_tiled
from semprior_core.store.outputs import plan_outputs, refuse_inputs

DEVICES = ("cpu", "cuda", "auto")
TARGET_FILES = ("targets.json", "targets.csv")
FRAME_MAP = re.compile(r"frame_\d{6,}\.png")  # a video frame's map, as video_frames names them


# -- predictors -----------------------------------------------------------------------------------
class Predictor:
    """HxW float32 grey image in [0, 1] -> HxW float32 probabilities, plus the model's metadata."""

    runtime = ""

    def __init__(self, path: Path, metadata: ExportMetadata, device: str) -> None:
        self.path, self.metadata, self.device = path, metadata, device

    def __call__(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        m = self.metadata
        return f"{self.path.name}: {m.backbone} {m.network}, {m.precision}, {self.runtime} on {self.device}"


class OnnxPredictor(Predictor):
    runtime = "onnxruntime"

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0) -> None:
        ort = require_onnxruntime()
        providers = ["CPUExecutionProvider"]
        if device == "cuda" or (device == "auto" and "CUDAExecutionProvider" in ort.get_available_providers()):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ExportError(f"{path}: device cuda needs onnxruntime-gpu (this onnxruntime has "
                                  f"{', '.join(ort.get_available_providers())})")
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:  # onnxruntime's own exception types do not share a public base
            raise ExportError(f"{path}: onnxruntime cannot load this model ({type(exc).__name__}: {exc})") from exc
        props = self.session.get_modelmeta().custom_metadata_map
        try:
            meta = ExportMetadata.from_props(props)
        except (ValueError, TypeError) as exc:
            raise ExportError(f"{path}: semprior metadata missing or invalid ({exc})") from exc
        super().__init__(path, meta, "cuda" if providers[0].startswith("CUDA") else "cpu")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(image, dtype=np.float32)[None, None]
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0][0, 0]


class TorchPredictor(Predictor):
    runtime = "torch"

    def __init__(self, path: Path, module: torch.nn.Module, metadata: ExportMetadata, device: torch.device) -> None:
        super().__init__(path, metadata, str(device))
        self.module, self.torch_device = module.to(device).eval(), device

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(self.torch_device)
        return self.module(x)[0, 0].float().cpu().numpy()


def load_predictor(path: str | Path, device: str = "cpu") -> Predictor:
    """A predictor for an ONNX file, a TorchScript file or a training checkpoint (its student).

    A checkpoint carries no validated threshold: its metadata says ``default`` (0.5); export it to get one.
    """
    from semprior_core.runtime.device import resolve_device

    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    path = Path(path)
    kind = model_kind(path)
    if kind == "onnx":
        return OnnxPredictor(path, device)
    try:
        dev = resolve_device(device)
    except RuntimeError as exc:
        raise ExportError(f"{path}: {exc}") from exc
    if kind == "torchscript":
        module, meta = read_torchscript(path, dev)
        return TorchPredictor(path, module, meta, dev)
    src = load_network(path)
    return TorchPredictor(path, src.deploy_model(), metadata_for(src, 0.5, "default"), dev)


# -- one frame ------------------------------------------------------------------------------------
def _out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "failed to allocate" in text


def predict_frame(predictor: Callable[[np.ndarray], np.ndarray], image: np.ndarray, divisor: int,
                  tiles: TileConfig | None = None) -> np.ndarray:
    """Probabilities of one frame: tiled when ``tiles`` is set and the frame exceeds a tile, else whole.

    When a frame (or tile) does not fit in memory it is split into tiles (``tiles`` or the default) that
    are halved until they fit.
    """
    if tiles is not None and max(image.shape) > tiles.tile:
        return _tiled_until_fits(predictor, image, tiles.tile, tiles.overlap, divisor)
    try:
        return predictor(image)
    except Exception as exc:  # torch and onnxruntime report allocation failures as RuntimeError-like types
        if not _out_of_memory(exc):
            raise
    tiles = tiles or TileConfig()
    return _tiled_until_fits(predictor, image, min(tiles.tile, max(image.shape) // 2), tiles.overlap, divisor)


def _tiled_until_fits(predictor: Callable[[np.ndarray], np.ndarray], image: np.ndarray, tile: int, overlap: int,
                      divisor: int) -> np.ndarray:
    smallest = max(16, 4 * divisor)
    while True:
        try:
            return predict_tiled(predictor, image, TileConfig(tile, min(overlap, tile // 4)), divisor)
        except Exception as exc:
            if not _out_of_memory(exc) or tile // 2 < smallest:
                raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # release the failed allocation's cache before retrying smaller
        tile //= 2


# -- runs over folders and videos -----------------------------------------------------------------
@dataclass(frozen=True)
class InferConfig:
    """Device, tiling (``tile=None``: whole frames) and post-processing (``threshold=None``: the model's)."""

    device: str = "cpu"
    tile: int | None = None
    overlap: int = 64
    threshold: float | None = None
    min_area: int = 1
    write_probs: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        self.tiles()  # validates tile and overlap
        PostprocessConfig(0.5 if self.threshold is None else self.threshold, self.min_area)

    def tiles(self) -> TileConfig | None:
        return None if self.tile is None else TileConfig(self.tile, self.overlap)


@dataclass
class FrameTargets:
    name: str
    height: int
    width: int
    targets: list[Target]


@dataclass
class InferSummary:
    model: str
    threshold: float
    frames: list[FrameTargets] = field(default_factory=list)
    seconds: float = 0.0
    json_path: Path | None = None
    csv_path: Path | None = None

    @property
    def n_targets(self) -> int:
        return sum(len(f.targets) for f in self.frames)

    def ms_per_frame(self) -> float:
        return 1e3 * self.seconds / max(len(self.frames), 1)


def run_frames(predictor: Predictor, frames: Iterable[tuple[str, np.ndarray]], out: str | Path,
               cfg: InferConfig, total: int | None = None) -> InferSummary:
    """Predict every (name, image) frame, write ``<name>.png`` maps and the target lists into ``out``."""
    from tqdm.auto import tqdm

    out = Path(out)
    meta = predictor.metadata
    post = PostprocessConfig(meta.threshold if cfg.threshold is None else cfg.threshold, cfg.min_area)
    summary = InferSummary(model=predictor.describe(), threshold=post.threshold)
    for name, image in tqdm(frames, total=total, desc="infer", unit="frame", disable=not cfg.progress):
        t0 = time.perf_counter()
        prob = predict_frame(predictor, image, meta.size_divisor, cfg.tiles())
        summary.seconds += time.perf_counter() - t0
        if cfg.write_probs:
            save_png(out / f"{name}.png", np.rint(np.clip(prob, 0, 1) * 255).astype(np.uint8))
        summary.frames.append(FrameTargets(name, *image.shape, extract_targets(prob, post)))
    summary.json_path, summary.csv_path = write_targets(out, summary, post)
    return summary


def write_targets(out: Path, summary: InferSummary, post: PostprocessConfig) -> tuple[Path, Path]:
    """``targets.json`` (frames with their target lists) and ``targets.csv`` (one row per target)."""
    doc = {
        "model": summary.model, "threshold": post.threshold, "min_area": post.min_area,
        "frames": [{"name": f.name, "height": f.height, "width": f.width,
                    "targets": [t.to_dict() for t in f.targets]} for f in summary.frames],
    }
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["frame", *TARGET_FIELDS])
    for f in summary.frames:
        for t in f.targets:
            writer.writerow([f.name, *(_csv_value(getattr(t, k)) for k in TARGET_FIELDS)])
    json_name, csv_name = TARGET_FILES
    return atomic_write_json(out / json_name, doc), atomic_write_text(out / csv_name, buf.getvalue())


def _csv_value(v: float | int) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def image_frames(folder: str | Path) -> tuple[Iterator[tuple[str, np.ndarray]], int]:
    from semprior_core.evaluation.evaluate import list_images

    files = list_images(folder)
    return ((p.stem, read_image(p)) for p in files), len(files)


def video_frames(path: str | Path) -> tuple[Iterator[tuple[str, np.ndarray]], int | None]:
    """Frames of a video as grey float32 in [0, 1] (ITU-R 601 luma, as :func:`read_image` converts colour)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: cannot open video (unknown container or codec)")
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    luma = np.array([0.114, 0.587, 0.299], dtype=np.float32)  # OpenCV frames are BGR

    def frames() -> Iterator[tuple[str, np.ndarray]]:
        try:
            index = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                scale = np.float32(65535.0 if frame.dtype == np.uint16 else 255.0)
                grey = frame.astype(np.float32) @ luma if frame.ndim == 3 else frame.astype(np.float32)
                yield f"frame_{index:06d}", grey / scale
                index += 1
        finally:
            cap.release()

    return frames(), count if count > 0 else None


def infer_images(model: str | Path, images: str | Path, out: str | Path, cfg: InferConfig = InferConfig()) -> InferSummary:
    """Maps and targets of every image in ``images``; a frame's name is its map's name (see the module doc)."""
    from semprior_core.evaluation.evaluate import list_images

    files = list_images(images)
    names = [p.stem for p in plan_outputs(files, out, TARGET_FILES)]
    predictor = load_predictor(model, cfg.device)
    frames = ((name, read_image(path)) for path, name in zip(files, names))
    return run_frames(predictor, frames, out, cfg, len(files))


def infer_video(model: str | Path, video: str | Path, out: str | Path, cfg: InferConfig = InferConfig()) -> InferSummary:
    out, video = Path(out), Path(video)
    written = [*TARGET_FILES, *([video.name] if FRAME_MAP.fullmatch(video.name) else [])]
    refuse_inputs([video], [out / name for name in written])
    predictor = load_predictor(model, cfg.device)
    frames, total = video_frames(video)
    return run_frames(predictor, frames, out, cfg, total)
