"""PAL: easy-sample initialisation, label update with degeneration, and hard-sample promotion.

Yu et al., "From Easy to Hard: Progressive Active Learning Framework for Infrared Small Target Detection
with Single Point Supervision"; rules read from ``YuChuang1205/PAL`` ``utilts.py`` (METHOD_NOTES §3).
OpenCV is used wherever PAL uses it (blur, Canny, morphology, contours) so that pixel-level decisions match.
"""

from __future__ import annotations

import cv2
import numpy as np

from semprior_core.labels.config import PalConfig
from semprior_core.labels.lesps import iter_candidates, validate_maps
from semprior_core.labels.points_to_masks import as_points, point_mask

# PAL blends label and prediction with equal weight inside the candidate mask, as LESPS does.
_BLEND = 0.5
_KERNEL3 = np.ones((3, 3), dtype=np.uint8)


def _unique_points(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """PAL reads points as the set of 255-pixels of a point image: duplicates count once."""
    return np.unique(as_points(points, shape), axis=0)


def _filled_contours(binary: np.ndarray) -> tuple[np.ndarray, int]:
    """Label image (int32) of the filled external contours of a binary map, and their count.

    PAL fills ``cv2.RETR_EXTERNAL`` contours, so holes belong to their blob and blobs inside holes vanish.
    """
    contours, _ = cv2.findContours(binary.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    labels = np.zeros(binary.shape, dtype=np.int32)
    for i in range(len(contours)):
        cv2.drawContours(labels, contours, i, color=i + 1, thickness=cv2.FILLED)
    return labels, len(contours)


def _easy_contour(img8: np.ndarray, y: int, x: int, cfg: PalConfig) -> np.ndarray | None:
    """Filled small contour around point (y, x) from PAL's edge detector, or None if the point is not easy."""
    h, w = img8.shape
    half = cfg.easy_window // 2
    y0, y1 = max(y - half, 0), min(y - half + cfg.easy_window, h)
    x0, x1 = max(x - half, 0), min(x - half + cfg.easy_window, w)
    roi = np.ascontiguousarray(img8[y0:y1, x0:x1])
    # Saturating uint8 subtraction keeps only pixels brighter than their 3x3 Gaussian surround.
    high_pass = cv2.subtract(roi, cv2.GaussianBlur(roi, (3, 3), 0))
    edges = cv2.Canny(high_pass, cfg.canny[0], cfg.canny[1])
    edges = cv2.erode(cv2.dilate(edges, _KERNEL3), _KERNEL3)
    # PAL searches contours on a full-size canvas, which matters for windows that touch the image border.
    canvas = np.zeros((h, w), dtype=np.uint8)
    canvas[y0:y1, x0:x1] = edges
    contours, _ = cv2.findContours(canvas, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    for contour in contours:
        filled = np.zeros((h, w), dtype=np.uint8)
        cv2.fillPoly(filled, [contour], 255)
        if filled[y, x]:
            # Only the first contour holding the point is considered, as in PAL.
            return filled > 0 if cv2.contourArea(contour) <= cfg.max_contour_area else None
    return None


def pal_easy_init(image: np.ndarray, points: np.ndarray, cfg: PalConfig) -> tuple[np.ndarray, bool, int]:
    """PAL's easy-sample rule on a grey image in [0, 1]: returns (mask, is_easy, n_correct).

    A point is correct if it lies inside a small closed edge contour. An easy image's mask is the filled
    contours of its correct points plus all points; a hard image keeps only its points (PAL sets it aside
    for promotion). An image without points is easy with an empty mask.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2:
        raise ValueError(f"image must be a grey HxW map, got shape {image.shape}")
    img8 = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    pts = _unique_points(points, image.shape)
    mask = point_mask(image.shape, pts)
    if len(pts) == 0:
        return mask, True, 0
    contours = [_easy_contour(img8, int(y), int(x), cfg) for y, x in pts]
    n_correct = sum(c is not None for c in contours)
    is_easy = n_correct / len(pts) >= cfg.easy_ratio
    if is_easy:
        for filled in contours:
            if filled is not None:
                mask[filled] = 1.0
    return mask, is_easy, n_correct


def pal_update(label: np.ndarray, prob: np.ndarray, points: np.ndarray, cfg: PalConfig) -> np.ndarray:
    """PAL's label update: L ← degen·L(1 − M) + ½(L + p)M with M the union of all regions' candidates.

    Pixels at 1 before the update and the annotated points stay 1. Returns a new float32 label.
    """
    label, prob = validate_maps(label, prob)
    union = np.zeros(label.shape, dtype=bool)
    for cand in iter_candidates(label, prob, points, cfg):
        union[cand.rows, cand.cols] |= cand.mask
    new = np.where(union, (1.0 - _BLEND) * label + _BLEND * prob, cfg.degen * label).astype(np.float32)
    np.maximum(new, (label == 1.0).astype(np.float32), out=new)
    pts = as_points(points, label.shape)
    new[pts[:, 0], pts[:, 1]] = 1.0
    return new


def pal_promote(
    prob: np.ndarray, points: np.ndarray, lose_ratio: float, alarm_ratio: float, threshold: float = 0.5
) -> tuple[bool, np.ndarray]:
    """PAL's hard-sample promotion test on one unselected image: returns (accept, mask).

    The prediction is binarised at ``threshold`` and split into filled external contours. With P point
    blobs of which H are hit by a predicted blob and B predicted blobs, the image is accepted if
    (P − H)/P ≤ ``lose_ratio`` and (B − H)/P ≤ ``alarm_ratio`` (PAL subtracts hit points, not hit blobs).
    ``mask`` (float32) is the label the image gets if accepted: predicted blobs touching a point, plus the
    points. An image without points is accepted with an empty mask.
    """
    prob = np.asarray(prob, dtype=np.float32)
    if prob.ndim != 2:
        raise ValueError(f"prob must be an HxW map, got shape {prob.shape}")
    pts_mask = point_mask(prob.shape, _unique_points(points, prob.shape))
    point_blobs, n_points = _filled_contours(pts_mask > 0)
    if n_points == 0:
        return True, pts_mask
    pred_blobs, n_pred = _filled_contours(prob > threshold)
    overlap = (point_blobs > 0) & (pred_blobs > 0)
    n_hit = len(np.unique(point_blobs[overlap]))
    accept = (n_points - n_hit) / n_points <= lose_ratio and (n_pred - n_hit) / n_points <= alarm_ratio
    kept = np.isin(pred_blobs, np.unique(pred_blobs[overlap]))
    return accept, np.maximum(kept.astype(np.float32), pts_mask)
