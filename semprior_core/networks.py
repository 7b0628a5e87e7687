"""One factory for every network of a run: the student and the teacher come from the same
backbone builder, the teacher adding SCAM from outside through the feature interface.

Seeding: each network draws its initial weights from its own generator, seeded from ``train.seed`` and a
fixed name (``student``, ``teacher`` for the teacher's own backbone, ``scam.stage<s>`` per SCAM), inside a
forked RNG. So for one seed the student starts bit-identical in every method and ablation (with or without a
teacher, SCAM, VFM or reweighting), a SCAM's start does not depend on which other stages are modulated, and
building networks leaves the global RNG stream (data order, augmentation) as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .config import RunConfig
from .models import create_backbone

if TYPE_CHECKING:
    from .models.base import SegBackbone
    from .scam import Teacher


def derived_seed(seed: int, name: str) -> int:
    """Seed of network ``name`` in a run seeded ``seed``; the name is hashed with SHA-256 (Python's
    ``hash()`` is salted per process, so it would differ between runs)."""
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return int(np.random.SeedSequence([seed, key]).generate_state(1)[0])


@contextmanager
def seeded(seed: int, name: str) -> Iterator[None]:
    """Run the block with the CPU generator seeded by :func:`derived_seed`, then restore its state.

    Only the CPU generator is forked and seeded: networks are built on the CPU, and the CUDA streams stay
    untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(derived_seed(seed, name))
        yield


def build_backbone(cfg: RunConfig, name: str) -> SegBackbone:
    """A backbone initialised from its own generator (see the module docstring)."""
    with seeded(cfg.train.seed, name):
        net = create_backbone(cfg.model.backbone, **cfg.model.options)
    if cfg.model.output_prior > 0:
        net.init_output_prior(cfg.model.output_prior)
    return net


def build_student(cfg: RunConfig) -> SegBackbone:
    return build_backbone(cfg, "student")


def build_teacher(cfg: RunConfig, backbone: SegBackbone | None = None) -> Teacher:
    """Backbone + SCAM at ``cfg.scam.stages``, fed by the cached VFM layers ``cfg.scam.vfm_layers``.

    ``backbone``: build the teacher around this network, shared by reference (``semprior.share_backbone``,
    the seed code's design); by default the teacher gets a backbone of its own.

    With ``vfm.name == "none"`` or ``scam.enabled == False`` the teacher is the bare backbone behind the
    teacher interface. The two settings give one and the same run (no VFM features are read and the
    clusters fall back to image statistics in both), so only ``scam=off`` is an ablation
    (:func:`workbench.sweep.ablation_overrides` refuses ``vfm=none``).
    """
    from .scam import Teacher

    if backbone is None:
        backbone = build_backbone(cfg, "teacher")
    if cfg.vfm.name == "none" or not cfg.scam.enabled:
        return Teacher(backbone, cfg.scam, prior_channels=[], feature_index=[])
    missing = [layer for layer in cfg.scam.vfm_layers if layer not in cfg.vfm.layers]
    if missing:
        raise ValueError(f"scam.vfm_layers {missing} are not among the cached vfm.layers {cfg.vfm.layers}")
    # Building the VFM (once per process, cached) must not draw from the global stream either.
    with torch.random.fork_rng(devices=[]):
        channels = vfm_channels(cfg.vfm.name, cfg.vfm.weights, cfg.vfm.input_size, cfg.vfm.seed)
    index = [cfg.vfm.layers.index(layer) for layer in cfg.scam.vfm_layers]
    return Teacher(backbone, cfg.scam, prior_channels=[channels] * len(index), feature_index=index,
                   init_rng=lambda stage: seeded(cfg.train.seed, f"scam.stage{stage}"))


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
