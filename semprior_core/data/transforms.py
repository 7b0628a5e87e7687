"""ONE geometric transform applied jointly to image, masks, points and VFM feature maps.

A :class:`Geometry` is a crop window in image pixel coordinates (it may extend past
the image: zero padding) followed by an optional transpose, vertical and horizontal
flip — together the 8 symmetries of the square. Feature maps cover the whole image
at a coarser grid, so they are resampled over the same window in normalised
coordinates (bilinear ``grid_sample``, align_corners=False convention) and then
get the identical transpose/flips; training therefore never needs the VFM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Geometry:
    top: int
    left: int
    height: int
    width: int
    transpose: bool = False
    vflip: bool = False
    hflip: bool = False

    @property
    def out_shape(self) -> tuple[int, int]:
        return (self.width, self.height) if self.transpose else (self.height, self.width)


def sample_geometry(
    rng: np.random.Generator,
    image_hw: tuple[int, int],
    crop: int,
    flips: bool = True,
    rot90: bool = True,
    centres: np.ndarray | None = None,
    target_prob: float = 0.0,
    jitter: float = 0.75,
) -> Geometry:
    """A random ``crop``×``crop`` window; an image smaller than the crop lands at a random offset in it.

    With probability ``target_prob`` (and when ``centres`` holds at least one (y, x) row) the window is
    centred on one of ``centres``, drawn uniformly, shifted by a uniform offset of up to ``jitter``·crop/2
    per axis, then clamped to the image like a uniform window, so the centre stays inside the crop.
    Otherwise the window is uniform. Point-centred crops matter because targets are tiny: 57 % of
    uniform 128² crops of NUAA-SIRST hold no target pixel (0.10 % of their pixels are positive).
    """
    h, w = image_hw
    lo_y, hi_y = min(0, h - crop), max(0, h - crop)
    lo_x, hi_x = min(0, w - crop), max(0, w - crop)
    pts = np.empty((0, 2)) if centres is None else np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    # The draws happen in a fixed order whatever the branch, so a crop depends only on its rng key.
    centred = bool(rng.random() < target_prob) and len(pts) > 0
    pick = int(rng.integers(len(pts))) if len(pts) else 0
    shift = rng.uniform(-1.0, 1.0, size=2) * jitter * crop / 2
    if centred:
        cy, cx = pts[pick]
        top = int(np.clip(round(cy - crop / 2 + shift[0]), lo_y, hi_y))
        left = int(np.clip(round(cx - crop / 2 + shift[1]), lo_x, hi_x))
    else:
        top = int(rng.integers(lo_y, hi_y + 1))
        left = int(rng.integers(lo_x, hi_x + 1))
    t = bool(rot90 and rng.random() < 0.5)
    v = bool(flips and rng.random() < 0.5)
    f = bool(flips and rng.random() < 0.5)
    return Geometry(top, left, crop, crop, transpose=t, vflip=v, hflip=f)


def padded_geometry(image_hw: tuple[int, int], divisor: int) -> Geometry:
    """Whole image, zero-padded at the bottom/right to a multiple of ``divisor`` (inference)."""
    return fit_to_divisor(Geometry(0, 0, *image_hw), image_hw, divisor)


def points_window(image_hw: tuple[int, int], points: np.ndarray, margin: int) -> Geometry | None:
    """The (y, x) points' bounding box grown by ``margin`` pixels per side and clipped to the image; None when
    there are no points or the box is the whole image."""
    pts = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    if not len(pts):
        return None
    h, w = image_hw
    top, left = max(int(pts[:, 0].min()) - margin, 0), max(int(pts[:, 1].min()) - margin, 0)
    bottom, right = min(int(pts[:, 0].max()) + margin + 1, h), min(int(pts[:, 1].max()) + margin + 1, w)
    if (top, left, bottom, right) == (0, 0, h, w):
        return None
    return Geometry(top, left, bottom - top, right - left)


def fit_to_divisor(g: Geometry, image_hw: tuple[int, int], divisor: int) -> Geometry:
    """``g`` (inside the image) with height and width rounded up to a multiple of ``divisor``; it moves up or
    left to stay inside the image where it can, and pads past the bottom/right edge where it cannot, as
    :func:`padded_geometry` pads a whole image."""
    h, w = image_hw
    gh, gw = math.ceil(g.height / divisor) * divisor, math.ceil(g.width / divisor) * divisor
    top = max(min(g.top, h - gh), 0)
    left = max(min(g.left, w - gw), 0)
    return Geometry(top, left, gh, gw)


def _orient(arr, g: Geometry, flip):
    """Apply transpose then flips on the last two axes (numpy or torch, through ``flip``)."""
    if g.transpose:
        arr = arr.swapaxes(-1, -2) if isinstance(arr, np.ndarray) else arr.transpose(-1, -2)
    if g.vflip:
        arr = flip(arr, -2)
    if g.hflip:
        arr = flip(arr, -1)
    return arr


def apply_array(arr: np.ndarray, g: Geometry, fill: float = 0.0) -> np.ndarray:
    """Crop (with padding) and orient an array of shape (..., H, W)."""
    h, w = arr.shape[-2:]
    out = np.full(arr.shape[:-2] + (g.height, g.width), fill, dtype=arr.dtype)
    y0, x0 = max(g.top, 0), max(g.left, 0)
    y1, x1 = min(g.top + g.height, h), min(g.left + g.width, w)
    if y1 > y0 and x1 > x0:
        out[..., y0 - g.top : y1 - g.top, x0 - g.left : x1 - g.left] = arr[..., y0:y1, x0:x1]
    return np.ascontiguousarray(_orient(out, g, lambda a, ax: np.flip(a, ax)))


def apply_points(points: np.ndarray, g: Geometry) -> np.ndarray:
    """Map (N, 2) (y, x) points into the transformed frame; points outside the window are dropped."""
    pts = np.asarray(points, dtype=np.int64).reshape(-1, 2) - np.array([g.top, g.left])
    keep = (pts[:, 0] >= 0) & (pts[:, 0] < g.height) & (pts[:, 1] >= 0) & (pts[:, 1] < g.width)
    pts = pts[keep]
    h, w = g.height, g.width
    if g.transpose:
        pts = pts[:, ::-1]
        h, w = w, h
    if g.vflip:
        pts = np.stack([h - 1 - pts[:, 0], pts[:, 1]], axis=1)
    if g.hflip:
        pts = np.stack([pts[:, 0], w - 1 - pts[:, 1]], axis=1)
    return np.ascontiguousarray(pts.reshape(-1, 2))


def feature_shape(g: Geometry, stride: int) -> tuple[int, int]:
    return max(1, math.ceil(g.height / stride)), max(1, math.ceil(g.width / stride))


def apply_features(feat: torch.Tensor, g: Geometry, image_hw: tuple[int, int], stride: int = 8) -> torch.Tensor:
    """Resample a (C, h, w) or (B, C, h, w) feature map covering the image onto the window's grid.

    The output has one cell per ``stride``×``stride`` block of the window, sampled
    bilinearly at the block centres; cells whose centre is outside the image are zero.
    """
    squeeze = feat.dim() == 3
    x = feat.unsqueeze(0) if squeeze else feat
    oh, ow = feature_shape(g, stride)
    H, W = image_hw
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    ys = g.top + (torch.arange(oh, dtype=dtype, device=x.device) + 0.5) * g.height / oh
    xs = g.left + (torch.arange(ow, dtype=dtype, device=x.device) + 0.5) * g.width / ow
    gy, gx = torch.meshgrid(2 * ys / H - 1, 2 * xs / W - 1, indexing="ij")
    grid = torch.stack([gx, gy], dim=-1).unsqueeze(0).expand(x.shape[0], -1, -1, -1)
    # "border" keeps in-image cells near the edge from blending with zeros; cells whose
    # centre lies outside the image (padding) are zeroed explicitly.
    out = F.grid_sample(x.to(dtype), grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = ((ys >= 0) & (ys < H)).to(dtype)[:, None] * ((xs >= 0) & (xs < W)).to(dtype)[None, :]
    out = out * inside
    out = _orient(out, g, lambda a, ax: torch.flip(a, (ax,))).to(feat.dtype)
    return out.squeeze(0) if squeeze else out
