"""Per-image threshold policies that turn a score map into a binary mask."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

PolicyKind = Literal["fixed", "mean_std"]


@dataclass(frozen=True)
class ThresholdPolicy:
    """How to binarise one image's score map.

    * ``fixed``: the score is min-max normalised per image to [0, 1] and a pixel is foreground where the
      normalised score ``> value`` (``value`` in [0, 1)). Normalising makes one value usable across images
      whose scores differ in scale (contrast varies a lot between IR frames).
    * ``mean_std``: foreground where ``score > mean + value * std`` of that image (``value`` is ``k``,
      any finite number); the classical constant-false-alarm rule of IRSTD papers.

    Under either kind a constant score map gives an empty mask.
    """

    kind: PolicyKind
    value: float

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "mean_std"):
            raise ValueError(f"ThresholdPolicy.kind must be 'fixed' or 'mean_std', got {self.kind!r}")
        if not math.isfinite(self.value):
            raise ValueError(f"ThresholdPolicy.value must be finite, got {self.value}")
        if self.kind == "fixed" and not 0.0 <= self.value < 1.0:
            raise ValueError(
                f"a 'fixed' threshold applies to scores scaled to [0, 1]: need 0 <= value < 1, got {self.value}"
            )

    def label(self) -> str:
        """Short text for tables, e.g. ``mean_std=11.5``."""
        return f"{self.kind}={self.value:g}"

    def describe(self) -> str:
        """What the threshold means in words, e.g. for the CLI's summary line."""
        if self.kind == "fixed":
            return f"a pixel is a target where its score, min-max scaled per image to [0, 1], is > {self.value:g}"
        return f"a pixel is a target where its score is > the image's mean + {self.value:g} x its standard deviation"


def apply_threshold(score: np.ndarray, policy: ThresholdPolicy) -> np.ndarray:
    """Boolean HxW mask of the pixels ``policy`` keeps (definitions in :class:`ThresholdPolicy`)."""
    score = np.asarray(score, dtype=np.float64)  # float64 so mean/std of large maps do not drift
    if score.ndim != 2:
        raise ValueError(f"score map must be 2-D (HxW), got shape {score.shape}")
    lo, hi = float(score.min()), float(score.max())
    if hi <= lo:  # a constant map has no contrast; also keeps mean/std rounding from selecting it all
        return np.zeros(score.shape, dtype=bool)
    if policy.kind == "fixed":
        return (score - lo) / (hi - lo) > policy.value
    return score > score.mean() + policy.value * score.std()


def default_policies() -> tuple[ThresholdPolicy, ...]:
    """The sweep used when tuning: fixed 0.05..0.95 (step 0.05) and mean + k*std for k = 2..30 (step 0.5).

    Sparse score maps (most pixels ~0) put good ``k`` values high: MPCM's tuned ``k`` is often above 15.
    """
    fixed = [ThresholdPolicy("fixed", round(0.05 * i, 2)) for i in range(1, 20)]
    mean_std = [ThresholdPolicy("mean_std", 2.0 + 0.5 * i) for i in range(57)]
    return tuple(fixed + mean_std)
