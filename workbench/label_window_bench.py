"""What predicting only the points' neighbourhood saves in a label update, and what it changes.

A label update predicts every training image with every network the method combines; on 2 CPU cores that is
most of a semprior epoch with an update (NUDT-SIRST: ~215 s against ~70 s without). The evolution rules read
probabilities only in candidate windows on label regions that grow from the points, so ``labels.predict_margin``
predicts the points' bounding box grown by a margin instead. This table measures, on a trained run's
checkpoint and its last recorded labels, per network: the time of whole-image vs windowed predictions of the
same images, and how the labels one update of the run's rule makes from each differ (IoU of the two updated
masks over all images, share of images whose masks are identical, IoU of each against the dense masks as a
diagnostic). It reads the training split only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from semprior_core.data.transforms import points_window
from semprior_core.labels import check_update
from semprior_core.method.label_rules import LABEL_RULES
from semprior_core.store.label_history import LabelHistory


def _iou(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    inter = sum(int((x & y).sum()) for x, y in zip(a, b))
    union = sum(int((x | y).sum()) for x, y in zip(a, b))
    return inter / union if union else 1.0


def bench_label_windows(run_dir: str | Path, margins: Sequence[int] = (40, 64), images: int = 100,
                        repeats: int = 2) -> list[dict]:
    """One row per (network, margin): whole vs windowed prediction of ``images`` training images of the run,
    each timed ``repeats`` times, interleaved, the fastest kept (other processes on the cores only add)."""
    from workbench.inspect.handle import RunHandle

    handle = RunHandle(run_dir, checkpoint="last")
    run, cfg = handle.loaded(), handle.cfg
    if run is None:
        raise ValueError(f"{run_dir}: no checkpoint (last.pt) to predict with")
    if cfg.method.supervision == "full" or cfg.labels.rule == "fixed":
        raise ValueError(f"{run_dir}: the run's labels never evolve (supervision {cfg.method.supervision}, "
                         f"rule {cfg.labels.rule}); pick a LESPS, PAL or semprior run")
    bank = handle.bank("train")
    latest = LabelHistory(run_dir).update(-1)
    order = [i for i in range(len(bank)) if len(handle.points("train", i))][:images]
    labels = [latest.label(bank.refs[i].key) for i in order]
    points = [handle.points("train", i) for i in order]
    rule = LABEL_RULES[cfg.labels.rule]

    def evolve(probs: list[np.ndarray]) -> list[np.ndarray]:
        return [check_update(lab, rule.evolve(lab, p, pts, cfg.labels), pts, cfg.labels.guard).label > 0.5
                for lab, p, pts in zip(labels, probs, points)]

    def predict(which: str, windows=None) -> tuple[list[np.ndarray], float]:
        features = handle.features("train") if run.networks.takes_features(which) else None
        start = time.perf_counter()
        probs = run.networks.predict(which, bank, run.norm, device=handle.device, indices=order, features=features,
                                     windows=windows)
        return probs, time.perf_counter() - start

    gt = [bank.mask(i) > 0.5 for i in order] if bank.has_masks() else None
    windows = {m: {i: g for i, pts in zip(order, points) if (g := points_window(bank.shape(i), pts, m))}
               for m in margins}
    rows = []
    for which in run.networks:
        times: dict[int | None, float] = {}
        probs: dict[int | None, list[np.ndarray]] = {}
        for _ in range(repeats):
            for margin in (None, *margins):
                probs[margin], seconds = predict(which, None if margin is None else windows[margin])
                times[margin] = min(seconds, times.get(margin, seconds))
        whole_s, from_whole = times[None], evolve(probs[None])
        for margin in margins:
            part_s, from_part = times[margin], evolve(probs[margin])
            area = np.mean([(g.height * g.width if (g := windows[margin].get(i)) else bank.image(i).size)
                            / bank.image(i).size for i in order])
            rows.append({
                "network": which, "margin": margin, "images": len(order), "window_area": float(area),
                "whole_s": whole_s, "window_s": part_s, "speedup": whole_s / part_s,
                "label_iou_whole_vs_window": _iou(from_whole, from_part),
                "identical_images": float(np.mean([np.array_equal(a, b) for a, b in zip(from_whole, from_part)])),
                "iou_vs_gt_whole": _iou(from_whole, gt) if gt else float("nan"),
                "iou_vs_gt_window": _iou(from_part, gt) if gt else float("nan"),
            })
    return rows
