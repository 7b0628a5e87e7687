"""SCAM of a semprior teacher: per-layer modulation maps for one image, and its prediction with SCAM off.

Per modulated stage SCAM computes ``F' = F ⊙ (1 + g·γ) + g·β`` (see :mod:`semprior_core.scam`). The maps
shown are channel means of the *effective* terms g·γ (multiplicative, 0 = unchanged) and g·β (additive),
and the relative change |F' − F| / mean|F| of the features, all at the stage's resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .handle import RunHandle, open_run
from .imaging import outline_segments


def _crop(t, shape: tuple[int, int], stride: int) -> np.ndarray:
    """(H', W') map of a padded stage output, cropped to the cells covering the image."""
    h, w = -(-shape[0] // stride), -(-shape[1] // stride)
    return t.detach().float().cpu().numpy()[:h, :w]


def scam_maps(run: str | Path | RunHandle, image: int | str, split: str = "test") -> list[dict[str, Any]]:
    """Per SCAM layer of the teacher, for one image: ``stage``, ``stride``, ``vfm_layer`` (1-based VFM block),
    ``gamma`` and ``beta`` (channel means of g·γ and g·β), ``change`` (relative feature change) as (h, w)
    arrays, and ``gate`` (C,). Empty when the run has no SCAM teacher (no VFM, or a supervised run)."""
    h = open_run(run)
    if not h.has_scam():
        return []
    teacher = h.loaded().networks["teacher"]
    index = h.index(split, image)
    batch = h.batch(split, index)
    shape = h.bank(split).shape(index)
    info = teacher.backbone.feature_info
    out = []
    for layer in teacher.modulation_maps(batch["image"], batch["feats"]):
        stride = info[layer["stage"]].stride
        g = layer["gate"][None, :, None, None]
        gamma = (g * layer["gamma"]).expand_as(layer["before"]).mean(dim=1)[0]
        beta = (g * layer["beta"]).expand_as(layer["before"]).mean(dim=1)[0]
        before, after = layer["before"][0], layer["after"][0]
        change = (after - before).abs().mean(dim=0) / before.abs().mean().clamp_min(1e-8)
        out.append({
            "stage": layer["stage"], "stride": stride, "vfm_layer": h.cfg.vfm.layers[layer["vfm_index"]],
            "gamma": _crop(gamma, shape, stride), "beta": _crop(beta, shape, stride),
            "change": _crop(change, shape, stride), "gate": layer["gate"].detach().float().cpu().numpy(),
        })
    return out


def scam_toggle(run: str | Path | RunHandle, image: int | str, split: str = "test") -> dict[str, Any]:
    """The teacher's probability map with and without SCAM (and the student's, when there is one):
    ``key``, ``image``, ``points`` (N, 2) and ``gt_outline`` (:func:`~.imaging.outline_segments`, or None
    without a dense mask) to relate the maps to the targets, ``with_scam``, ``without_scam``,
    ``difference`` (with − without), ``student`` (or None). Raises ValueError for runs without a SCAM teacher."""
    h = open_run(run)
    if not h.has_scam():
        raise ValueError(f"{h.name}: the run has no SCAM teacher (supervised run, or no VFM)")
    index = h.index(split, image)
    on, off = h.predict("teacher", split, index, scam=True), h.predict("teacher", split, index, scam=False)
    bank = h.bank(split)
    return {
        "key": h.keys(split)[index], "image": bank.image(index), "points": h.points(split, index),
        "gt_outline": outline_segments(bank.mask(index)) if bank.has_mask(index) else None,
        "with_scam": on, "without_scam": off,
        "difference": on - off, "student": h.predict("student", split, index) if "student" in h.networks() else None,
    }
