"""Example test-split predictions of several runs side by side, on images picked without looking at results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from semprior_core.evaluation.metrics import components

from .handle import RunHandle, open_run
from .imaging import contour, window_around


def example_keys(run: str | Path | RunHandle, n: int = 4, seed: int = 0, split: str = "test") -> list[str]:
    """``n`` image keys of ``split`` drawn by a seeded permutation: not chosen for how any method does."""
    keys = open_run(run).keys(split)
    order = np.random.default_rng(seed).permutation(len(keys))
    return [keys[i] for i in order[:n]]


def target_window(mask: np.ndarray, size: int) -> tuple[slice, slice]:
    """A ``size``² window (clipped to the image) centred on the largest ground-truth target, else the centre."""
    h, w = mask.shape
    _, n, centroids, areas = components(mask > 0.5)
    centre = tuple(int(round(c)) for c in centroids[np.argmax(areas)]) if n else (h // 2, w // 2)
    return window_around(centre, (h, w), size)


def example_predictions(runs: dict[str, str | Path | RunHandle], keys: list[str], which: str = "student",
                        split: str = "test", window: int | None = 64) -> list[dict[str, Any]]:
    """Per image: the image, its ground-truth contour and each run's probability map from ``which``,
    cropped to a ``window``² around the largest target (small targets vanish in a whole frame; None: no crop).

    Runs missing ``which`` (a classical run, a supervised teacher) are skipped.
    """
    handles = {label: open_run(r) for label, r in runs.items()}
    handles = {label: h for label, h in handles.items() if which in h.networks()}
    if not handles:
        raise ValueError(f"no run has a checkpoint with a {which!r} network to predict with: "
                         + ", ".join(str(r) for r in runs.values()))
    first = next(iter(handles.values()))  # every run reads the same split, so one run's images serve all
    bank = first.bank(split)
    out = []
    for key in keys:
        i = first.index(split, key)
        mask = bank.mask(i)
        crop = target_window(mask, window) if window else (slice(None), slice(None))
        out.append({
            "key": key,
            "image": bank.image(i)[crop],
            "gt_contour": contour(mask[crop]),
            "predictions": {label: h.predict(which, split, h.index(split, key))[crop] for label, h in handles.items()},
        })
    return out
