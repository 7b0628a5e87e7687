"""One factory for every network of a run: the student and the teacher come from the same
backbone builder, the teacher adding SCAM from outside through the feature interface."""

from __future__ import annotations

from functools import lru_cache

from torch import nn

from .config import RunConfig
from .models import create_backbone


def build_backbone(cfg: RunConfig) -> nn.Module:
    net = create_backbone(cfg.model.backbone, **cfg.model.options)
    if cfg.model.output_prior > 0:
        net.init_output_prior(cfg.model.output_prior)
    return net


def build_student(cfg: RunConfig) -> nn.Module:
    return build_backbone(cfg)


def build_teacher(cfg: RunConfig) -> nn.Module:
    """Backbone + SCAM at ``cfg.scam.stages``, fed by the cached VFM layers ``cfg.scam.vfm_layers``.

    With ``vfm.name == "none"`` or ``scam.enabled == False`` the teacher is the bare backbone
    behind the teacher interface (the ablations ``vfm=none`` and ``scam=off``).
    """
    from .scam import Teacher

    backbone = build_backbone(cfg)
    if cfg.vfm.name == "none" or not cfg.scam.enabled:
        return Teacher(backbone, cfg.scam, prior_channels=[], feature_index=[])
    missing = [layer for layer in cfg.scam.vfm_layers if layer not in cfg.vfm.layers]
    if missing:
        raise ValueError(f"scam.vfm_layers {missing} are not among the cached vfm.layers {cfg.vfm.layers}")
    channels = vfm_channels(cfg.vfm.name, cfg.vfm.weights, cfg.vfm.input_size, cfg.vfm.seed)
    index = [cfg.vfm.layers.index(layer) for layer in cfg.scam.vfm_layers]
    return Teacher(backbone, cfg.scam, prior_channels=[channels] * len(index), feature_index=index)


@lru_cache(maxsize=8)
def vfm_channels(name: str, weights: str | None, input_size: int, seed: int) -> int:
    """Channels of the VFM's patch features (builds the frozen VFM once per process)."""
    from .vfm import create_vfm

    return create_vfm(name, weights=weights, input_size=input_size, seed=seed).embed_dim


def build_network(cfg: RunConfig, which: str) -> nn.Module:
    if which == "student":
        return build_student(cfg)
    if which == "teacher":
        return build_teacher(cfg)
    raise ValueError(f"unknown network {which!r}; use 'student' or 'teacher'")
