"""Frozen vision-foundation-model backends: ``create_vfm(name, ...)`` returns a :class:`FrozenVFM`.

Importing the package registers the built-in backends (:mod:`.backends`); ``list_vfms()`` names them.
"""

from __future__ import annotations

from . import backends as _backends  # noqa: F401  (registers the built-in backends)
from . import contrast as _contrast  # noqa: F401  (registers the hand-made "contrast" prior)
from .checkpoints import CheckpointError, load_hf_state, load_hub_state, module_to_hf, module_to_hub
from .frozen import FrozenVFM, VFMOutput
from .registry import VFMRequest, create_vfm, list_vfms, register_vfm
from .vit import VisionTransformer, ViTConfig

__all__ = [
    "CheckpointError",
    "FrozenVFM",
    "VFMOutput",
    "VFMRequest",
    "ViTConfig",
    "VisionTransformer",
    "create_vfm",
    "list_vfms",
    "load_hf_state",
    "load_hub_state",
    "module_to_hf",
    "module_to_hub",
    "register_vfm",
]
