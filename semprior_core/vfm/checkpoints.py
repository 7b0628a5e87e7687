"""Strict loaders (and writers) for ViT checkpoints in the official hub and the Hugging Face layouts.

Official hub (``torch.hub`` ``dinov2_vits14_pretrain.pth``, DINOv3 ``dinov3_*_pretrain_*.pth``): our
parameter names are the hub names, except DINOv3's ``storage_tokens`` (our ``register_tokens``) and its
``attn.qkv.bias_mask`` (DINOv3 zeroes the key bias through a stored mask; we fold it into ``attn.qkv.bias``).

Hugging Face ``Dinov2Model`` / ``Dinov2WithRegistersModel`` (``embeddings.*``, ``encoder.layer.{i}.*``,
``layernorm.*``, optionally under a prefix such as ``dinov2.``; separate query/key/value projections that we
concatenate into ``qkv``). Keys outside the backbone prefix (a task head) are ignored; inside it all must map.

Both layouts carry ``mask_token``, which DINOv2/DINOv3 use only for masked-image modelling during training;
it is checked for size and dropped. Everything else is strict: every model tensor filled exactly once, no
unknown key, exact shapes; errors name the file and the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from ..io import DataError
from .vit import VisionTransformer, ViTConfig

StateDict = dict[str, Tensor]


class CheckpointError(DataError):
    """A weights file does not match the expected layout; the message names the file and the key."""


def read_state_file(path: str | Path) -> StateDict:
    """A flat ``{name: tensor}`` dict from ``.safetensors`` or a torch pickle (CPU, ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as err:
            raise ImportError(
                f"reading {path} needs the 'safetensors' package: pip install safetensors"
            ) from err
        state = load_file(str(path), device="cpu")
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a flat mapping of parameter names to tensors")
    return dict(state)


def detect_format(state: Mapping[str, Tensor]) -> str:
    """'hub' or 'hf', from the patch-embedding key; ValueError when neither layout is recognisable."""
    if "patch_embed.proj.weight" in state:
        return "hub"
    if any(k.endswith(_HF_PATCH_KEY) for k in state):
        return "hf"
    raise CheckpointError(
        "neither hub ('patch_embed.proj.weight') nor Hugging Face ('...embeddings."
        "patch_embeddings.projection.weight') layout recognised"
    )


def load_hub_state(path: str | Path, cfg: ViTConfig) -> StateDict:
    """Read an official hub checkpoint and return it in our key space, checked strictly against ``cfg``."""
    return hub_to_module(read_state_file(path), cfg, source=str(path))


def load_hf_state(path: str | Path, cfg: ViTConfig) -> StateDict:
    """Read a Hugging Face checkpoint (.safetensors or .bin); returns our key space, checked strictly."""
    return hf_to_module(read_state_file(path), cfg, source=str(path))


def load_state_auto(path: str | Path, cfg: ViTConfig) -> StateDict:
    """Hub or Hugging Face, whichever layout the file has."""
    state = read_state_file(path)
    try:
        fmt = detect_format(state)
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    convert = hub_to_module if fmt == "hub" else hf_to_module
    return convert(state, cfg, source=str(path))


def hub_to_module(state: Mapping[str, Tensor], cfg: ViTConfig, *, source: str) -> StateDict:
    out: StateDict = {}
    masks: dict[str, Tensor] = {}
    for key, value in state.items():
        if key == "mask_token":
            _check_mask_token(value, cfg, source, key)
        elif key.endswith("attn.qkv.bias_mask"):
            masks[key.removesuffix("_mask")] = value
        else:
            _put(out, "register_tokens" if key == "storage_tokens" else key, value, source, key)
    for bias_key, mask in masks.items():
        if bias_key not in out:
            raise CheckpointError(f"{source}: '{bias_key}_mask' has no matching '{bias_key}'")
        if mask.shape != out[bias_key].shape or not bool(torch.isfinite(mask).all()):
            raise CheckpointError(f"{source}: '{bias_key}_mask' must be a finite tensor shaped like its bias")
        out[bias_key] = out[bias_key] * mask.to(out[bias_key].dtype)
    return check_state(out, cfg, source=source)


_HF_PATCH_KEY = "embeddings.patch_embeddings.projection.weight"
_HF_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r)
    for p, r in [
        (r"embeddings\.cls_token", "cls_token"),
        (r"embeddings\.register_tokens", "register_tokens"),
        (r"embeddings\.position_embeddings", "pos_embed"),
        (r"embeddings\.patch_embeddings\.projection\.(weight|bias)", r"patch_embed.proj.\1"),
        (r"encoder\.layer\.(\d+)\.norm([12])\.(weight|bias)", r"blocks.\1.norm\2.\3"),
        (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
        (r"encoder\.layer\.(\d+)\.layer_scale([12])\.lambda1", r"blocks.\1.ls\2.gamma"),
        (r"encoder\.layer\.(\d+)\.mlp\.fc([12])\.(weight|bias)", r"blocks.\1.mlp.fc\2.\3"),
        (r"layernorm\.(weight|bias)", r"norm.\1"),
    ]
]
_HF_QKV = re.compile(r"encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)")
# transformers >= 5 names these modules differently in memory; its save_pretrained writes the names above,
# but a raw ``torch.save(model.state_dict())`` keeps the new ones, so both are accepted.
_HF_V5_RENAMES = {
    ".attention.q_proj.": ".attention.attention.query.",
    ".attention.k_proj.": ".attention.attention.key.",
    ".attention.v_proj.": ".attention.attention.value.",
    ".attention.o_proj.": ".attention.output.dense.",
}
_QKV_ORDER = ("query", "key", "value")


def hf_to_module(state: Mapping[str, Tensor], cfg: ViTConfig, *, source: str) -> StateDict:
    anchors = [k for k in state if k.endswith(_HF_PATCH_KEY)]
    if len(anchors) != 1:
        raise CheckpointError(f"{source}: expected exactly one '*{_HF_PATCH_KEY}' key, found {anchors}")
    prefix = anchors[0].removesuffix(_HF_PATCH_KEY)
    out: StateDict = {}
    qkv_parts: dict[tuple[str, str], dict[str, Tensor]] = {}
    for full_key, value in state.items():
        if not full_key.startswith(prefix):
            continue  # a task head next to the backbone
        key = full_key.removeprefix(prefix)
        for new_name, legacy_name in _HF_V5_RENAMES.items():
            key = key.replace(new_name, legacy_name)
        if key == "embeddings.mask_token":
            _check_mask_token(value, cfg, source, full_key)
        elif m := _HF_QKV.fullmatch(key):
            parts = qkv_parts.setdefault((m.group(1), m.group(3)), {})
            if m.group(2) in parts:
                raise CheckpointError(f"{source}: key '{full_key}' given twice")
            parts[m.group(2)] = value
        else:
            _put(out, _hf_rename(key, source, full_key), value, source, full_key)
    for (layer, kind), parts in qkv_parts.items():
        missing = [p for p in _QKV_ORDER if p not in parts]
        if missing:
            names = ", ".join(
                f"'{prefix}encoder.layer.{layer}.attention.attention.{p}.{kind}'" for p in missing
            )
            raise CheckpointError(f"{source}: missing key {names}")
        _put(
            out,
            f"blocks.{layer}.attn.qkv.{kind}",
            torch.cat([parts[p] for p in _QKV_ORDER]),
            source,
            f"{prefix}encoder.layer.{layer}.attention.attention.*.{kind}",
        )
    return check_state(out, cfg, source=source)


def _hf_rename(key: str, source: str, full_key: str) -> str:
    for pattern, replacement in _HF_RULES:
        if m := pattern.fullmatch(key):
            return m.expand(replacement)
    raise CheckpointError(f"{source}: unexpected key '{full_key}'")


def _put(out: StateDict, key: str, value: Tensor, source: str, original: str) -> None:
    if key in out:
        raise CheckpointError(f"{source}: key '{original}' fills '{key}' a second time")
    out[key] = value


def _check_mask_token(value: Tensor, cfg: ViTConfig, source: str, key: str) -> None:
    if value.numel() != cfg.embed_dim:
        raise CheckpointError(
            f"{source}: key '{key}' has shape {tuple(value.shape)}, expected {cfg.embed_dim} values"
        )


def expected_shapes(cfg: ViTConfig) -> dict[str, torch.Size]:
    """Name -> shape of every tensor a model built from ``cfg`` needs (built on the meta device: free)."""
    with torch.device("meta"):
        return {k: v.shape for k, v in VisionTransformer(cfg).state_dict().items()}


def check_state(state: Mapping[str, Tensor], cfg: ViTConfig, *, source: str) -> StateDict:
    """Strict key/shape check against ``cfg``; floating tensors are returned as float32."""
    shapes = expected_shapes(cfg)
    missing = sorted(set(shapes) - set(state))
    unexpected = sorted(set(state) - set(shapes))
    if missing:
        raise CheckpointError(f"{source}: missing key '{missing[0]}'" + _more(missing))
    if unexpected:
        raise CheckpointError(f"{source}: unexpected key '{unexpected[0]}'" + _more(unexpected))
    for key, shape in shapes.items():
        if state[key].shape != shape:
            raise CheckpointError(
                f"{source}: key '{key}' has shape {tuple(state[key].shape)}, expected {tuple(shape)} "
                f"for {cfg}"
            )
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _more(keys: list[str]) -> str:
    return f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""


def build_vit(cfg: ViTConfig, state: Mapping[str, Tensor]) -> VisionTransformer:
    """A model holding ``state`` (already checked); built on the meta device so no random init is wasted."""
    with torch.device("meta"):
        model = VisionTransformer(cfg)
    model.load_state_dict(state, strict=True, assign=True)
    return model


def module_to_hub(model: VisionTransformer) -> StateDict:
    """Our state in the official hub layout (DINOv3 naming for RoPE models), with a zero ``mask_token``.

    RoPE models get an all-ones ``bias_mask``: our key bias is already masked, so this keeps it exact.
    """
    rope = model.cfg.pos == "rope"
    out: StateDict = {}
    for key, value in model.state_dict().items():
        out["storage_tokens" if rope and key == "register_tokens" else key] = value.detach().clone()
        if rope and key.endswith("attn.qkv.bias"):
            out[key + "_mask"] = torch.ones_like(value)
    out["mask_token"] = torch.zeros(1, model.cfg.embed_dim)
    return out


def module_to_hf(model: VisionTransformer, prefix: str = "") -> StateDict:
    """Our state in the Hugging Face ``Dinov2Model`` layout (learned position embedding only)."""
    if model.cfg.pos != "learned" or model.cfg.ffn != "mlp":
        raise ValueError("the Hugging Face Dinov2 layout holds only learned-position, MLP models")
    out: StateDict = {f"{prefix}embeddings.mask_token": torch.zeros(1, model.cfg.embed_dim)}
    inverse = [
        (r"cls_token", "embeddings.cls_token"),
        (r"register_tokens", "embeddings.register_tokens"),
        (r"pos_embed", "embeddings.position_embeddings"),
        (r"patch_embed\.proj\.(weight|bias)", r"embeddings.patch_embeddings.projection.\1"),
        (r"blocks\.(\d+)\.norm([12])\.(weight|bias)", r"encoder.layer.\1.norm\2.\3"),
        (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"encoder.layer.\1.attention.output.dense.\2"),
        (r"blocks\.(\d+)\.ls([12])\.gamma", r"encoder.layer.\1.layer_scale\2.lambda1"),
        (r"blocks\.(\d+)\.mlp\.fc([12])\.(weight|bias)", r"encoder.layer.\1.mlp.fc\2.\3"),
        (r"norm\.(weight|bias)", r"layernorm.\1"),
    ]
    for key, value in model.state_dict().items():
        value = value.detach().clone()
        if m := re.fullmatch(r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)", key):
            for part, chunk in zip(_QKV_ORDER, value.chunk(3), strict=True):
                out[f"{prefix}encoder.layer.{m.group(1)}.attention.attention.{part}.{m.group(2)}"] = (
                    chunk.clone()
                )
            continue
        for pattern, replacement in inverse:
            if m := re.fullmatch(pattern, key):
                out[prefix + m.expand(replacement)] = value
                break
        else:
            raise AssertionError(f"no Hugging Face name for {key}")
    return out
