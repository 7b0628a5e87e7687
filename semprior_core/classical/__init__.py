"""Classical (training-free) IRSTD baselines as pure NumPy functions.

Score maps (float32 HxW, higher = more target-like) from ``tophat``, ``mpcm`` and ``ipi``; threshold
policies turn them into masks; ``tune`` picks parameters and policy on validation data only.
"""

from __future__ import annotations

from .ipi import ipi
from .mpcm import mpcm
from .registry import METHODS, ClassicalMethod, ScoreFn, get_method
from .threshold import ThresholdPolicy, apply_threshold, default_policies
from .tophat import tophat
from .tune import TuneResult, expand_grid, segment, tune, tune_on_split

__all__ = [
    "METHODS",
    "ClassicalMethod",
    "ScoreFn",
    "ThresholdPolicy",
    "TuneResult",
    "apply_threshold",
    "default_policies",
    "expand_grid",
    "get_method",
    "ipi",
    "mpcm",
    "segment",
    "tophat",
    "tune",
    "tune_on_split",
]
