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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .config import RunConfig
from .models import create_backbone
from .run_policy import reads_vfm
from .runtime.inference import predict_probs
from .scam import Teacher

if TYPE_CHECKING:
    from .data.dataset import FeatureSource, ImageBank, Normalization
    from .data.transforms import Geometry
    from .models.base import SegBackbone

FEATURE_STRIDE = 8  # pixels per VFM feature cell once resampled to a crop or a whole image


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
    if backbone is None:
        backbone = build_backbone(cfg, "teacher")
    if not reads_vfm(cfg, "teacher"):
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


class Networks(Mapping[str, nn.Module]):
    """A run's networks by name (``student``, ``teacher``: the keys checkpoints store) and how to call each.

    The one place that knows a network's inputs: a :class:`~semprior_core.scam.Teacher` takes the image and
    the batch's VFM feature maps (``batch["feats"]``), a student the image alone. Whole images are padded to
    :attr:`size_divisor`, the largest divisor of any of the networks, so that all of them see the same padded
    input; VFM maps are resampled to :attr:`feature_stride` pixels per cell. Methods, the training loop,
    evaluation, export, inspection and attributions all call networks through it.
    """

    def __init__(self, networks: Mapping[str, nn.Module], feature_stride: int = FEATURE_STRIDE) -> None:
        self._nets = dict(networks)
        self.feature_stride = feature_stride

    def __getitem__(self, which: str) -> nn.Module:
        return self._nets[which]

    def __iter__(self) -> Iterator[str]:
        return iter(self._nets)

    def __len__(self) -> int:
        return len(self._nets)

    @property
    def size_divisor(self) -> int:
        """Whole images are padded to a multiple of this before inference."""
        return max(getattr(net, "size_divisor", 1) for net in self._nets.values())

    def takes_features(self, which: str) -> bool:
        """Whether network ``which`` is called with VFM feature maps (a teacher, even one whose SCAM is off)."""
        return isinstance(self[which], Teacher)

    def logits(self, which: str, batch: dict[str, Any], *, scam: bool = True) -> torch.Tensor:
        """Logits of network ``which`` on ``batch``; ``scam=False`` runs a teacher as its bare backbone."""
        net = self[which]
        if self.takes_features(which):
            return net(batch["image"], batch.get("feats"), scam=scam)
        return net(batch["image"])

    def predict(
        self, which: str, bank: ImageBank, norm: Normalization, *, device: torch.device, amp: bool = False,
        indices: list[int] | None = None, features: FeatureSource | None = None, scam: bool = True,
        windows: Mapping[int, Geometry] | None = None,
    ) -> list[np.ndarray]:
        """Whole-image probabilities of network ``which`` for ``indices`` of ``bank`` (default: all of them).

        ``features``: the bank's VFM feature source; only a network that :meth:`takes_features` gets them, so
        a student's pass does not resample maps it never reads. ``windows``: as :func:`predict_probs`.
        """
        return predict_probs(
            lambda batch: self.logits(which, batch, scam=scam), self[which], bank, norm, divisor=self.size_divisor,
            device=device, amp=amp, indices=indices, features=features if self.takes_features(which) else None,
            feature_stride=self.feature_stride, windows=windows,
        )
