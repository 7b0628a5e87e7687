"""Registry of the classical detectors: name -> score function, default grid and threshold sweep."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from .ipi import ipi
from .mpcm import mpcm
from .threshold import ThresholdPolicy, default_policies
from .tophat import tophat

ScoreFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class ClassicalMethod:
    """A score function ``score(image, **params)`` with the grid and policies tuned by default."""

    name: str
    score: ScoreFn
    grid: Mapping[str, tuple[Any, ...]]
    policies: tuple[ThresholdPolicy, ...] = field(default_factory=default_policies)

    def __post_init__(self) -> None:
        empty = [k for k, v in self.grid.items() if len(v) == 0]
        if empty:
            raise ValueError(f"{self.name}: grid entries {empty} list no values")
        if not self.policies:
            raise ValueError(f"{self.name}: needs at least one threshold policy")


METHODS: Mapping[str, ClassicalMethod] = MappingProxyType(
    {
        m.name: m
        for m in (
            ClassicalMethod("tophat", tophat, {"radius": (2, 3, 4, 5, 6, 8)}),
            ClassicalMethod("mpcm", mpcm, {"scales": ((3,), (3, 5), (3, 5, 7), (3, 5, 7, 9))}),
            # each IPI setting costs ~1 s per image, so its grid stays at two settings: lam = 1/sqrt(2500)
            # (Gao et al.'s default for 50x50 patches) and twice that, a sparser target part
            ClassicalMethod("ipi", ipi, {"patch": (50,), "stride": (10,), "lam": (None, 0.04)}),
        )
    }
)


def get_method(name: str) -> ClassicalMethod:
    """The registered method ``name``; ValueError listing the known names otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown classical method {name!r}; known: {', '.join(METHODS)}") from None
