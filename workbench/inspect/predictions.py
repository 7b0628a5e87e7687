"""Example test-split predictions of several runs side by side, on images picked without looking at results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .handle import RunHandle, open_run
from .imaging import contour


def example_keys(run: str | Path | RunHandle, n: int = 4, seed: int = 0, split: str = "test") -> list[str]:
    """``n`` image keys of ``split`` drawn by a seeded permutation: not chosen for how any method does."""
    keys = open_run(run).keys(split)
    order = np.random.default_rng(seed).permutation(len(keys))
    return [keys[i] for i in order[:n]]


def example_predictions(runs: dict[str, str | Path | RunHandle], keys: list[str], which: str = "student",
                        split: str = "test") -> list[dict[str, Any]]:
    """Per image: the image, its ground-truth contour and each run's probability map from ``which``.

    Runs missing ``which`` (a classical run, a supervised teacher) are skipped.
    """
    handles = {label: open_run(r) for label, r in runs.items()}
    handles = {label: h for label, h in handles.items() if which in h.networks()}
    out = []
    for key in keys:
        first = next(iter(handles.values()))
        i = first.index(split, key)
        bank = first.bank(split)
        out.append({
            "key": key,
            "image": bank.image(i),
            "gt_contour": contour(bank.mask(i)),
            "predictions": {label: h.predict(which, split, h.index(split, key)) for label, h in handles.items()},
        })
    return out
