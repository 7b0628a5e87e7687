"""Pure label-evolution rules for point-supervised IRSTD (LESPS, PAL) and their schedules."""

from __future__ import annotations

from semprior_core.labels.config import GuardConfig, LabelConfig, LespsConfig, PalConfig
from semprior_core.labels.guard import GuardResult, check_update, mask_stats
from semprior_core.labels.lesps import adaptive_threshold, iter_candidates, lesps_candidates, lesps_update
from semprior_core.labels.pal import pal_easy_init, pal_promote, pal_update
from semprior_core.labels.points_to_masks import as_points, point_mask
from semprior_core.labels.schedule import lesps_started, pal_lose_ratio, pal_phase, should_update

__all__ = [
    "GuardConfig",
    "GuardResult",
    "LabelConfig",
    "LespsConfig",
    "PalConfig",
    "adaptive_threshold",
    "as_points",
    "check_update",
    "iter_candidates",
    "lesps_candidates",
    "lesps_started",
    "lesps_update",
    "mask_stats",
    "pal_easy_init",
    "pal_lose_ratio",
    "pal_phase",
    "pal_promote",
    "pal_update",
    "point_mask",
    "should_update",
]
