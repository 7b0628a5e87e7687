"""Export a run's student as a self-contained ONNX or TorchScript file, and read such files back.

The exported graph takes the *raw* grey image in [0, 1], float32 ``(B, 1, H, W)`` with any B, H and W,
and returns probabilities of the same shape. Everything ``semprior predict`` does around the network is
folded in: padding to the size divisor at the bottom/right with the training mean (so it normalises to 0,
as :class:`~semprior_core.data.dataset.FullImageDataset` pads), the run's normalisation, the crop back
and the sigmoid. No VFM and no SCAM are exported: the student never needs them at inference.

Metadata (backbone, semprior version, size divisor, normalisation, precision and the decision threshold
chosen on the *validation* split, see :func:`semprior_core.evaluation.postprocess.select_threshold`) travels inside
the file: ONNX ``metadata_props`` (one ``semprior.<field>`` key per field, JSON values) or the TorchScript
extra file ``semprior.json``.

Reduced precision (ONNX only for int8):

* ``int8``: onnxruntime static QDQ quantization (per-channel int8 weights, uint8 activations) calibrated
  on a few validation images — convolutions need calibrated activation ranges, which dynamic
  quantization (weights only, ranges computed per call) does not give; ``quantization="dynamic"`` is
  offered when no validation images are at hand.
* ``fp16``: ONNX float16 conversion keeping float32 inputs/outputs (onnxruntime's converter). Every
  onnxruntime execution provider runs it, but the CPU provider has few fp16 kernels and computes slower
  than fp32 — fp16 pays off on CUDA only. TorchScript fp16 halves the network's weights (normalisation
  stays fp32); CPU PyTorch half convolutions are slow as well.

Limits: ONNX export uses PyTorch's TorchScript-based exporter (the dynamo exporter needs onnxscript); it
cannot express ALCNet's cyclic patch contrast, whose padding depends on the feature size — export ALCNet
as TorchScript. TorchScript is traced, and PyTorch deprecates TorchScript in favour of ``torch.export``.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import RunConfig, config_from_dict
from .data.dataset import ImageBank, Normalization
from .evaluation.postprocess import DEFAULT_GRID, ThresholdChoice, select_threshold
from .io import DataError, atomic_write_bytes
from .networks import Networks, build_network
from .run_policy import reads_vfm, selection_for
from .runtime.device import resolve_device
from .store.checkpoint import load_checkpoint

FORMAT_VERSION = 1
INPUT_NAME, OUTPUT_NAME = "image", "prob"
META_PREFIX = "semprior."
TORCHSCRIPT_META = "semprior.json"
FORMATS = ("onnx", "torchscript")
PRECISIONS = ("fp32", "fp16", "int8")


class ExportError(DataError):
    """A model cannot be exported, or a model file cannot be read; the message names the file."""


# -- the deployable module ------------------------------------------------------------------------
class DeployModel(nn.Module):
    """Raw grey image (B, 1, H, W) in [0, 1] -> probabilities (B, 1, H, W), any H and W."""

    def __init__(self, net: nn.Module, norm: Normalization, divisor: int) -> None:
        super().__init__()
        if divisor < 1:
            raise ValueError(f"divisor must be >= 1, got {divisor}")
        self.net, self.divisor, self.pad_value = net.eval(), int(divisor), float(norm.mean)
        # (x - mean) / std as a 1x1 convolution: the ONNX exporter then knows the channel count of the
        # network's input, which it needs for a BatchNorm on the raw input (ACM's stem).
        self.register_buffer("scale", torch.full((1, 1, 1, 1), 1.0 / norm.std))
        self.register_buffer("shift", torch.full((1,), -norm.mean / norm.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        d = self.divisor
        x = F.pad(x, [0, (d - w % d) % d, 0, (d - h % d) % d], value=self.pad_value)
        z = F.conv2d(x, self.scale, self.shift)
        # an fp16 network gets fp16 features; normalisation and sigmoid stay fp32
        logits = self.net(z.to(next((p.dtype for p in self.net.parameters()), z.dtype)))
        return torch.sigmoid(logits[:, :, :h, :w].float())


@dataclass
class NetworkSource:
    """One network of a checkpoint, with what inference needs around it."""

    cfg: RunConfig
    net: nn.Module
    norm: Normalization
    divisor: int
    network: str
    epoch: int | None
    path: Path | None

    def deploy_model(self) -> DeployModel:
        return DeployModel(self.net, self.norm, self.divisor)


def load_network(checkpoint: str | Path, network: str = "student") -> NetworkSource:
    """The ``network`` of a checkpoint, built without the VFM (the teacher only when it has no SCAM)."""
    path = Path(checkpoint)
    ckpt = load_checkpoint(path)
    cfg = config_from_dict(ckpt["config"])
    if network not in ckpt["networks"]:
        raise ExportError(f"{path}: no network {network!r}; it holds {', '.join(ckpt['networks'])}")
    if reads_vfm(cfg, network):
        raise ExportError(f"{path}: the teacher needs VFM features at inference; export the student")
    net = build_network(cfg, network)
    net.load_state_dict(ckpt["networks"][network])
    net.eval()
    return NetworkSource(cfg, net, Normalization(**ckpt["normalization"]), Networks({network: net}).size_divisor,
                         network, int(ckpt["epoch"]), path)


# -- configuration and metadata -------------------------------------------------------------------
@dataclass(frozen=True)
class ExportConfig:
    """What to export and how; ``threshold=None`` chooses it on the run's validation split."""

    format: str = "onnx"
    fp16: bool = False
    int8: bool = False
    quantization: str = "static"
    network: str = "student"
    threshold: float | None = None
    grid: tuple[float, ...] = DEFAULT_GRID
    calibration_images: int = 8
    opset: int = 17
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", tuple(float(t) for t in self.grid))
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.fp16 and self.int8:
            raise ValueError("fp16 and int8 exclude each other; choose one")
        if self.int8 and self.format != "onnx":
            raise ValueError("int8 export needs format onnx (onnxruntime quantization)")
        if self.quantization not in ("static", "dynamic"):
            raise ValueError(f"quantization must be static or dynamic, got {self.quantization!r}")
        if self.network not in ("student", "teacher"):
            raise ValueError(f"network must be student or teacher, got {self.network!r}")
        if self.threshold is not None and not (math.isfinite(self.threshold) and 0 <= self.threshold < 1):
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}")
        if not self.grid or any(not 0 <= t < 1 for t in self.grid):
            raise ValueError(f"grid must hold thresholds in [0, 1), got {list(self.grid)}")
        if self.calibration_images < 1:
            raise ValueError(f"calibration_images must be >= 1, got {self.calibration_images}")
        if self.opset < 13:
            raise ValueError(f"opset must be >= 13 (QDQ quantization), got {self.opset}")

    @property
    def precision(self) -> str:
        return "int8" if self.int8 else "fp16" if self.fp16 else "fp32"


@dataclass(frozen=True)
class ExportMetadata:
    """What a deployed file must carry to be used correctly without its run directory."""

    backbone: str
    size_divisor: int
    norm_mean: float
    norm_std: float
    threshold: float
    threshold_metric: str  # iou / point_f1 (chosen on threshold_split), given, or default
    precision: str = "fp32"
    network: str = "student"
    threshold_split: str | None = None
    threshold_score: float | None = None
    backbone_options: dict[str, Any] = field(default_factory=dict)
    semprior_version: str = ""
    source: str = ""
    epoch: int | None = None
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.size_divisor < 1 or not self.norm_std > 0:
            raise ValueError(f"size_divisor must be >= 1 and norm_std > 0, got {self.size_divisor}, {self.norm_std}")
        if not 0 <= self.threshold < 1:
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportMetadata:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown metadata fields {unknown}")
        return cls(**data)

    def to_props(self) -> dict[str, str]:
        return {META_PREFIX + k: json.dumps(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ExportMetadata:
        return cls.from_dict({k[len(META_PREFIX):]: json.loads(v) for k, v in props.items() if k.startswith(META_PREFIX)})


def semprior_version() -> str:
    import importlib.metadata as md

    try:
        return md.version("semprior")
    except md.PackageNotFoundError:
        return "unknown"


def metadata_for(src: NetworkSource, threshold: float, threshold_metric: str, precision: str = "fp32",
                 choice: ThresholdChoice | None = None) -> ExportMetadata:
    return ExportMetadata(
        backbone=src.cfg.model.backbone, backbone_options=dict(src.cfg.model.options), size_divisor=src.divisor,
        norm_mean=float(src.norm.mean), norm_std=float(src.norm.std), threshold=float(threshold),
        threshold_metric=threshold_metric, threshold_split=choice.split if choice else None,
        threshold_score=float(choice.score) if choice else None, precision=precision, network=src.network,
        semprior_version=semprior_version(), source=src.path.name if src.path else "", epoch=src.epoch,
    )


# -- validation split: threshold and calibration images ------------------------------------------
def validation_threshold(src: NetworkSource, grid: Sequence[float] = DEFAULT_GRID,
                         device: str = "cpu") -> ThresholdChoice:
    """The grid threshold scoring best on the run's validation split with the run's own validation score.

    Dense IoU when the run scores validation on dense masks (full supervision, or ``train.select=val_dense``),
    else the point-only F1 on the validation points, so a point-supervised export uses no dense mask either.
    """
    from .data.catalog import build_splits, folders_of, load_points

    splits = build_splits(src.cfg.data)
    bank = ImageBank(splits.val)
    dev = resolve_device(device)
    net = src.net.to(dev)
    probs = Networks({src.network: net}).predict(src.network, bank, src.norm, device=dev)
    if selection_for(src.cfg).metric == "iou":
        return select_threshold(probs, masks=[bank.mask(i) for i in range(len(bank))], grid=grid)
    points = load_points(src.cfg.data, folders_of(src.cfg.data, splits))
    pts = [points[ref.folder.name].check_against(ref.sid, bank.shape(i)) for i, ref in enumerate(bank.refs)]
    return select_threshold(probs, points=pts, grid=grid, max_area=src.cfg.labels.guard.max_area)


def calibration_images(cfg: RunConfig, n: int) -> list[np.ndarray]:
    """``n`` validation images spread evenly over the split (raw, [0, 1]), for int8 calibration."""
    from .data.catalog import build_splits

    bank = ImageBank(build_splits(cfg.data).val)
    idx = np.unique(np.linspace(0, len(bank) - 1, num=min(n, len(bank))).round().astype(int))
    return [bank.image(int(i)) for i in idx]


# -- writers --------------------------------------------------------------------------------------
def _example_input(divisor: int) -> torch.Tensor:
    # not a multiple of the divisor, so the traced graph includes (and the trace checks) the padding
    side = 4 * max(divisor, 16) + 3
    return torch.rand(1, 1, side, side + divisor)


def export_onnx(model: DeployModel, out: str | Path, meta: ExportMetadata, *, opset: int = 17,
                calibration: Sequence[np.ndarray] | None = None, quantization: str = "static") -> Path:
    """Write ``model`` as ONNX at ``meta.precision``; static int8 needs ``calibration`` images."""
    import onnx

    out = Path(out)
    model = copy.deepcopy(model).cpu().eval()  # the caller's model stays on its device
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        with warnings.catch_warnings():
            # tracing warns on every Python branch over shapes; the parity tests check other sizes
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    model, (_example_input(model.divisor),), str(fp32), dynamo=False, opset_version=opset,
                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                    dynamic_axes={n: {0: "batch", 2: "height", 3: "width"} for n in (INPUT_NAME, OUTPUT_NAME)},
                )
            except Exception as exc:  # the exporter raises many types; name the model and the way out
                raise ExportError(
                    f"{out}: ONNX export of backbone {meta.backbone!r} failed ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0]}); --format torchscript may work") from exc
        if meta.precision == "int8":
            proto = _quantize(fp32, Path(tmp), calibration, quantization)
        else:
            proto = onnx.load(str(fp32))
            if meta.precision == "fp16":
                require_onnxruntime()
                from onnxruntime.transformers.float16 import convert_float_to_float16

                proto = convert_float_to_float16(proto, keep_io_types=True)
                _sort_nodes(proto.graph)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, meta.to_props())
    onnx.checker.check_model(proto)
    return atomic_write_bytes(out, proto.SerializeToString())


def require_onnxruntime():
    """The onnxruntime module, or an error saying how to install it (the ``deploy`` extra)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ExportError("onnxruntime is not installed; `pip install semprior[deploy]` (or onnxruntime-gpu)") from exc
    return onnxruntime


def _sort_nodes(graph) -> None:
    """Topologically sort ``graph.node`` in place (the fp16 converter appends its input casts last)."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for n in pending:
            if set(n.input) <= ready:
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or a dangling input near node {rest[0].name!r}")
        pending = rest
    nodes = [copy.deepcopy(n) for n in ordered]
    del graph.node[:]
    graph.node.extend(nodes)


def _quantize(fp32: Path, tmp: Path, calibration: Sequence[np.ndarray] | None, mode: str):
    import logging

    import onnx

    require_onnxruntime()
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, images: Sequence[np.ndarray]) -> None:
            self._it = iter([{INPUT_NAME: np.asarray(im, np.float32)[None, None]} for im in images])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    pre, q = tmp / "pre.onnx", tmp / "int8.onnx"
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs advice at WARNING for every untyped tensor
    try:
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        if mode == "static":
            if not calibration:
                raise ValueError("static int8 quantization needs calibration images")
            quantize_static(str(pre), str(q), Reader(calibration), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        else:
            quantize_dynamic(str(pre), str(q), weight_type=QuantType.QUInt8)
    finally:
        root.setLevel(level)
    return onnx.load(str(q))


def export_torchscript(model: DeployModel, out: str | Path, meta: ExportMetadata) -> Path:
    """Write ``model`` traced as TorchScript (fp32, or fp16 weights when ``meta.precision == 'fp16'``)."""
    if meta.precision == "int8":
        raise ValueError("TorchScript export supports fp32 and fp16; int8 needs ONNX")
    model = copy.deepcopy(model).cpu().eval()
    if meta.precision == "fp16":
        model.net.half()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (_example_input(model.divisor),), check_trace=False)
    buf = io.BytesIO()
    # torch deprecates TorchScript in favour of torch.export, but it is still what C++/mobile runtimes load
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, buf, _extra_files={TORCHSCRIPT_META: json.dumps(meta.to_dict())})
    return atomic_write_bytes(out, buf.getvalue())


# -- the export command ---------------------------------------------------------------------------
@dataclass
class ExportResult:
    path: Path
    metadata: ExportMetadata
    choice: ThresholdChoice | None


def export_checkpoint(checkpoint: str | Path, out: str | Path, cfg: ExportConfig = ExportConfig()) -> ExportResult:
    """Export a checkpoint's network with its validation-chosen threshold (or ``cfg.threshold``)."""
    src = load_network(checkpoint, cfg.network)
    choice, calib = None, None
    try:
        if cfg.threshold is None:
            choice = validation_threshold(src, cfg.grid, cfg.device)
        if cfg.int8 and cfg.quantization == "static":
            calib = calibration_images(src.cfg, cfg.calibration_images)
    except DataError as exc:
        raise ExportError(f"{checkpoint}: the run's validation split is not readable ({exc}); give the threshold"
                          " by hand and, for int8, use dynamic quantization") from exc
    if choice is not None:
        meta = metadata_for(src, choice.threshold, choice.metric, cfg.precision, choice)
    else:
        meta = metadata_for(src, cfg.threshold, "given", cfg.precision)
    model = src.deploy_model()
    if cfg.format == "onnx":
        path = export_onnx(model, out, meta, opset=cfg.opset, calibration=calib, quantization=cfg.quantization)
    else:
        path = export_torchscript(model, out, meta)
    return ExportResult(path, meta, choice)


# -- reading a deployed file ----------------------------------------------------------------------
def model_kind(path: str | Path) -> str:
    """``onnx``, ``torchscript`` or ``checkpoint`` from the file's content (not its name)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: model file not found")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        # TorchScript archives carry the serialised code; torch.save archives (checkpoints) do not
        return "torchscript" if any("/code/" in n or n.endswith("/constants.pkl") for n in names) else "checkpoint"
    return "onnx"


def read_onnx_metadata(path: str | Path) -> ExportMetadata:
    import onnx

    path = Path(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf decode errors have no common base class
        raise ExportError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    return _parse(path, lambda: ExportMetadata.from_props({p.key: p.value for p in proto.metadata_props}))


def read_torchscript(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.jit.ScriptModule,
                                                                                    ExportMetadata]:
    path = Path(path)
    files = {TORCHSCRIPT_META: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device, _extra_files=files)
    except Exception as exc:
        raise ExportError(f"{path}: not a readable TorchScript module ({type(exc).__name__}: {exc})") from exc
    if not files[TORCHSCRIPT_META]:
        raise ExportError(f"{path}: TorchScript module without semprior metadata ({TORCHSCRIPT_META}); "
                          "export it with `semprior export`")
    return module.eval(), _parse(path, lambda: ExportMetadata.from_dict(json.loads(files[TORCHSCRIPT_META])))


def read_metadata(path: str | Path) -> ExportMetadata:
    """The semprior metadata of an exported ONNX or TorchScript file."""
    kind = model_kind(path)
    if kind == "onnx":
        return read_onnx_metadata(path)
    if kind == "torchscript":
        return read_torchscript(path)[1]
    raise ExportError(f"{path}: a training checkpoint, not an exported model (run `semprior export`)")


def _parse(path: Path, parse) -> ExportMetadata:
    try:
        return parse()
    except (ValueError, TypeError) as exc:
        raise ExportError(f"{path}: semprior metadata missing or invalid ({exc})") from exc
