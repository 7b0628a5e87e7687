"""Model-assisted annotation: a trained detector's targets as suggested points, and an uncertainty score
per image so the frames the model is least sure about can be labelled first.

The model is a run directory (its ``best.pt``, chosen on validation), a training checkpoint, or an
exported ONNX/TorchScript file (which carries its validated threshold; a checkpoint's is 0.5). A target is
a component of ``prob > threshold`` (:func:`semprior_core.evaluation.postprocess.extract_targets`); its suggested point
is the pixel nearest its centroid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from semprior_core.data.point_formats import nearest_pixel
from semprior_core.evaluation.metrics import components
from semprior_core.evaluation.postprocess import PostprocessConfig, extract_targets


@dataclass
class Suggestions:
    """Suggested (y, x) points and an uncertainty in [0, 1] per image id, from one model."""

    model: str
    threshold: float
    points: dict[str, np.ndarray] = field(default_factory=dict)
    uncertainty: dict[str, float] = field(default_factory=dict)


def suggested_points(prob: np.ndarray, threshold: float) -> np.ndarray:
    """int64 (N, 2) (y, x): the pixel nearest the centroid of each target of ``prob``."""
    targets = extract_targets(prob, PostprocessConfig(threshold))
    return nearest_pixel(np.array([(t.y, t.x) for t in targets], dtype=np.float64).reshape(-1, 2))


def uncertainty(prob: np.ndarray, threshold: float) -> float:
    """How close the model's most ambiguous candidate is to its decision threshold: 1 = exactly at it.

    Candidates are the components of ``prob > threshold / 2`` (blobs the model half-believes), each scored
    by its peak; a frame without any is scored by its highest probability. Pixel-wise entropy would not do:
    every confident blob has pixels near the threshold along its edge.
    """
    labels, n, _, _ = components(prob > threshold / 2)
    peaks = ndimage.maximum(prob, labels, np.arange(1, n + 1)) if n else [float(prob.max())]
    span = max(threshold, 1.0 - threshold)
    return float(max(1.0 - abs(float(p) - threshold) / span for p in peaks))


def model_path(run: str | Path) -> Path:
    """The model file of ``run``: a run directory's ``best.pt``, else ``run`` itself."""
    from semprior_core.evaluation.evaluate import resolve_checkpoint
    from semprior_core.io import DataError

    run = Path(run).expanduser()
    if run.is_dir():
        return resolve_checkpoint(run, "best")
    if not run.is_file():
        raise DataError(f"{run}: no run directory or model file")
    return run


def suggest(run: str | Path, frames: Iterable[tuple[str, np.ndarray]], *, threshold: float | None = None,
            device: str = "cpu", total: int | None = None, progress: bool = False) -> Suggestions:
    """Suggestions for every ``(id, grey image)`` of ``frames`` from the model of ``run``."""
    from tqdm.auto import tqdm

    from workbench.infer import load_predictor, predict_frame

    predictor = load_predictor(model_path(run), device)
    t = predictor.metadata.threshold if threshold is None else threshold
    PostprocessConfig(t)  # validates the threshold before any prediction
    out = Suggestions(model=predictor.describe(), threshold=t)
    for sid, image in tqdm(frames, total=total, desc="suggest", unit="image", disable=not progress):
        prob = predict_frame(predictor, image, predictor.metadata.size_divisor)
        out.points[sid] = suggested_points(prob, t)
        out.uncertainty[sid] = uncertainty(prob, t)
    return out
