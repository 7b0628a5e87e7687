"""Choose a classical detector's parameters and threshold policy on validation data only.

``tune`` sees nothing but the validation arrays it is given; ``tune_on_split`` loads exactly the listed
validation ids through caller-supplied loaders, so it cannot touch a test image. Selection maximises
dataset-level IoU (total intersection / total union, ``semprior_core.evaluation.metrics``) on those images.
Each parameter setting's score maps are computed once and every policy is swept over them.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..evaluation.metrics import image_stats, summarize
from .registry import ScoreFn, get_method
from .threshold import ThresholdPolicy, apply_threshold


@dataclass(frozen=True)
class TuneResult:
    """The chosen setting and the whole sweep.

    ``table`` has one row per (parameter setting, policy), in sweep order, with the parameters, ``policy``
    (kind), ``value`` and the validation ``iou``, ``niou``, ``pd`` (fractions) and ``fa`` (x10^-6).
    """

    method: str
    params: dict[str, Any]
    policy: ThresholdPolicy
    iou: float
    table: list[dict[str, Any]]


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of the grid's value lists, keys in the grid's order (``{}`` gives ``[{}]``)."""
    empty = [k for k, v in grid.items() if len(v) == 0]
    if empty:
        raise ValueError(f"grid entries {empty} list no values")
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def _resolve(
    method: str | ScoreFn,
    grid: Mapping[str, Sequence[Any]] | None,
    policies: Sequence[ThresholdPolicy] | None,
) -> tuple[str, ScoreFn, Mapping[str, Sequence[Any]], Sequence[ThresholdPolicy]]:
    if isinstance(method, str):
        spec = get_method(method)
        return (
            spec.name,
            spec.score,
            spec.grid if grid is None else grid,
            spec.policies if policies is None else policies,
        )
    if grid is None or policies is None:
        raise ValueError("a score function that is not a registered name needs an explicit grid and policies")
    return getattr(method, "__name__", "custom"), method, grid, policies


def _check_grid_keys(name: str, score: ScoreFn, grid: Mapping[str, Sequence[Any]]) -> None:
    accepted = list(inspect.signature(score).parameters)[1:]  # the first parameter is the image
    unknown = [k for k in grid if k not in accepted]
    if unknown:
        raise ValueError(f"{name}: unknown grid parameter(s) {unknown}; accepted: {accepted}")


def tune(
    method: str | ScoreFn,
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    grid: Mapping[str, Sequence[Any]] | None = None,
    policies: Sequence[ThresholdPolicy] | None = None,
) -> TuneResult:
    """Best (params, policy) by validation IoU over ``images``/``masks`` (validation data only).

    ``method`` is a name in ``METHODS`` (its default grid and policies fill in what is None) or a score
    function ``f(image, **params)`` with an explicit grid and policies. Ties keep the earliest row in
    sweep order (grid order, then policy order), so the result is deterministic.
    """
    name, score, grid, policies = _resolve(method, grid, policies)
    if len(images) == 0 or len(images) != len(masks):
        raise ValueError(
            f"need the same non-zero number of images and masks, got {len(images)} and {len(masks)}"
        )
    if not policies:
        raise ValueError("need at least one threshold policy")
    for i, (img, msk) in enumerate(zip(images, masks, strict=True)):
        if np.shape(img) != np.shape(msk):
            raise ValueError(
                f"validation pair {i}: image shape {np.shape(img)} != mask shape {np.shape(msk)}"
            )
    _check_grid_keys(name, score, grid)

    table: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any], ThresholdPolicy] | None = None
    for params in expand_grid(grid):
        scores = [score(img, **params) for img in images]
        for policy in policies:
            metrics = summarize(
                [image_stats(apply_threshold(s, policy), m) for s, m in zip(scores, masks, strict=True)]
            )
            table.append(
                {
                    **params,
                    "policy": policy.kind,
                    "value": policy.value,
                    "iou": metrics.iou,
                    "niou": metrics.niou,
                    "pd": metrics.pd,
                    "fa": metrics.fa * 1e6,
                }
            )
            if best is None or metrics.iou > best[0]:
                best = (metrics.iou, params, policy)
    assert best is not None  # the grid expands to at least one setting and policies is non-empty
    return TuneResult(method=name, params=dict(best[1]), policy=best[2], iou=best[0], table=table)


def tune_on_split(
    load_image: Callable[[str], np.ndarray],
    load_mask: Callable[[str], np.ndarray],
    val_ids: Sequence[str],
    method: str | ScoreFn,
    grid: Mapping[str, Sequence[Any]] | None = None,
    policies: Sequence[ThresholdPolicy] | None = None,
) -> TuneResult:
    """``tune`` on the images and masks of ``val_ids`` only, read through the given loaders."""
    images = [load_image(i) for i in val_ids]
    masks = [load_mask(i) for i in val_ids]
    return tune(method, images, masks, grid, policies)


def segment(
    image: np.ndarray, method: str | ScoreFn, params: Mapping[str, Any], policy: ThresholdPolicy
) -> np.ndarray:
    """Boolean mask of ``image`` with a tuned setting (e.g. ``TuneResult.params`` and ``.policy``)."""
    score = get_method(method).score if isinstance(method, str) else method
    return apply_threshold(score(image, **params), policy)
