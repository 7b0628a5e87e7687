"""One factory for every network of a run: the student and the teacher come from the same
backbone builder, the teacher adding SCAM from outside through the feature interface."""

from __future__ import annotations

from torch import nn

from .config import RunConfig
from .models import create_backbone


def build_student(cfg: RunConfig) -> nn.Module:
    return create_backbone(cfg.model.backbone, **cfg.model.options)


def build_teacher(cfg: RunConfig) -> nn.Module:
    """Backbone + SCAM at ``cfg.scam.stages``, fed by the cached VFM layers ``cfg.scam.vfm_layers``.

    With ``vfm.name == "none"`` or ``scam.enabled == False`` the teacher is the bare backbone
    behind the teacher interface (the ablations ``vfm=none`` and ``scam=off``).
    """
    from .scam import Teacher
    from .vfm import vfm_channels

    backbone = create_backbone(cfg.model.backbone, **cfg.model.options)
    if cfg.vfm.name == "none" or not cfg.scam.enabled:
        return Teacher(backbone, cfg.scam, prior_channels=[], feature_index=[])
    missing = [layer for layer in cfg.scam.vfm_layers if layer not in cfg.vfm.layers]
    if missing:
        raise ValueError(f"scam.vfm_layers {missing} are not among the cached vfm.layers {cfg.vfm.layers}")
    channels = vfm_channels(cfg.vfm.name, cfg.vfm.weights)
    index = [cfg.vfm.layers.index(layer) for layer in cfg.scam.vfm_layers]
    return Teacher(backbone, cfg.scam, prior_channels=[channels] * len(index), feature_index=index)


def build_network(cfg: RunConfig, which: str) -> nn.Module:
    if which == "student":
        return build_student(cfg)
    if which == "teacher":
        return build_teacher(cfg)
    raise ValueError(f"unknown network {which!r}; use 'student' or 'teacher'")
