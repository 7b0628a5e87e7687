"""Seeded synthetic infrared small-target (IRSTD) dataset generator.

Writes a dataset in the folder layout of the real NUAA-SIRST / NUDT-SIRST data (``images/``, ``masks/``,
``splits/50_50/{train,test}.txt``) so every loader and experiment can run without the real data, and so
tests have a dataset whose ground truth is exact.

Scene model, per image:

* background: sky with 1/f^beta fractal clouds (spectral synthesis, Peitgen & Saupe (eds.), *The Science of
  Fractal Images*, Springer 1988, ch. 2), a sky/ground horizon, or a full ground scene with a field patchwork;
* distractors that are *not* targets: large bright blobs, thin lines, building-like rectangles and structures
  entering the frame;
* optics blur, vignetting, then sensor noise (Gaussian + fixed-pattern column/row offsets);
* with ``empty_clutter`` > 0, target-free frames (``empty_fraction``) also get structured clutter, the hard
  negatives real detectors fire on: the thin sunlit rims of sharp-edged clouds and bright blobs a few times
  larger than the largest target. Off by default, so default datasets are unchanged.

Targets follow the SPIE small-target definition (at most ~80 px in a 256x256 frame; Chen et al., "A Local
Contrast Method for Small Infrared Target Detection", IEEE TGRS 2014): point-like, Gaussian, rotated ellipses
and irregular blobs, with contrasts from near the noise floor to bright. A target's mask is the
``support_threshold``-of-peak support of its own intensity profile (half maximum by default), one 8-connected
component per target, and targets never touch. NUDT-SIRST itself is largely synthesised the same way
(Li et al., "Dense Nested Attention Network for Infrared Small Target Detection", IEEE TIP 2023).

Every image has its own child of ``np.random.default_rng(seed)``, so image ``i`` depends only on the seed,
``i`` and the config, never on the other images.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import fft as sfft
from scipy import ndimage

from .folder import FolderLayout

__all__ = [
    "GENERATOR_VERSION",
    "SyntheticConfig",
    "SyntheticSample",
    "Target",
    "generate",
    "render",
    "render_sample",
]

GENERATOR_VERSION = "1.0.0"
# First README line: lets ``generate(..., overwrite=True)`` recognise a folder it wrote itself.
README_MARKER = "# Synthetic IRSTD dataset (semprior_core.data.synthetic)"
SPLIT_NAME = "50_50"
MIN_SIDE = 48
TARGET_KINDS = ("point", "gaussian", "ellipse", "irregular")
_KIND_PROBS = (0.15, 0.3, 0.3, 0.25)
_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity structuring element


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic dataset (all validated in ``__post_init__``).

    Image size: if ``sizes`` is non-empty each image's (height, width) is drawn uniformly from it; otherwise a
    ``base_size_fraction`` of images is ``height`` x ``width`` and the rest draw height and width independently
    from the inclusive ``size_range`` (``None``: all images are ``height`` x ``width``).
    """

    n_train: int = 48
    n_test: int = 24
    height: int = 256
    width: int = 256
    size_range: tuple[int, int] | None = (160, 320)
    base_size_fraction: float = 0.7
    sizes: tuple[tuple[int, int], ...] = ()
    seed: int = 0
    max_targets: int = 4
    empty_fraction: float = 0.08
    min_target_area: int = 1
    max_target_area: int = 80
    support_threshold: float = 0.5  # mask = profile >= this fraction of the target's peak
    min_separation: int = 3  # Chebyshev gap (px) kept free between target masks
    noise_std: float = 2.5  # sensor Gaussian noise in grey levels, scaled per image by U(0.5, 1.5)
    fixed_pattern_std: float = 1.5  # column offsets in grey levels (rows get half), scaled per image by U(0, 1.5)
    dim_fraction: float = 0.3  # targets with peak 3-6 noise sigmas
    bright_fraction: float = 0.25  # targets with peak 45-120 grey levels; the rest are 12-45
    clutter: float = 1.0  # scales the number of distractors and cloud contrast; 0 gives plain backgrounds
    empty_clutter: float = 0.0  # strength of the structured clutter of target-free frames; 0 = none

    def __post_init__(self) -> None:
        # Accept lists (YAML/JSON) but store tuples so the frozen config stays hashable.
        if self.size_range is not None:
            object.__setattr__(self, "size_range", tuple(int(v) for v in self.size_range))
        object.__setattr__(self, "sizes", tuple(tuple(int(v) for v in s) for s in self.sizes))
        for name in ("n_train", "n_test", "height", "width", "seed", "max_targets", "min_target_area",
                     "max_target_area", "min_separation"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an int, got {value!r}")
        if self.n_train < 0 or self.n_test < 0 or self.n_train + self.n_test == 0:
            raise ValueError(f"n_train and n_test must be >= 0 with a positive sum, got {self.n_train}, {self.n_test}")
        if self.n_train + self.n_test > 10_000:
            raise ValueError("at most 10000 images (ids are syn_0000..syn_9999)")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if min(self.height, self.width) < MIN_SIDE:
            raise ValueError(f"height and width must be >= {MIN_SIDE}, got {self.height}x{self.width}")
        if self.size_range is not None:
            if len(self.size_range) != 2 or not MIN_SIDE <= self.size_range[0] <= self.size_range[1]:
                raise ValueError(f"size_range must be (min, max) with {MIN_SIDE} <= min <= max, got {self.size_range}")
        for s in self.sizes:
            if len(s) != 2 or min(s) < MIN_SIDE:
                raise ValueError(f"sizes entries must be (height, width) with sides >= {MIN_SIDE}, got {s}")
        for name in ("base_size_fraction", "dim_fraction", "bright_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.dim_fraction + self.bright_fraction > 1.0:
            raise ValueError("dim_fraction + bright_fraction must be <= 1")
        if not 0.0 <= self.empty_fraction < 1.0:
            raise ValueError(f"empty_fraction must be in [0, 1), got {self.empty_fraction}")
        if not 1 <= self.max_targets <= 16:
            raise ValueError(f"max_targets must be in 1..16, got {self.max_targets}")
        if not 1 <= self.min_target_area <= self.max_target_area <= 400:
            raise ValueError("need 1 <= min_target_area <= max_target_area <= 400, got "
                             f"{self.min_target_area}..{self.max_target_area}")
        if not 0.05 <= self.support_threshold <= 0.95:
            raise ValueError(f"support_threshold must be in [0.05, 0.95], got {self.support_threshold}")
        if not 1 <= self.min_separation <= 32:
            raise ValueError(f"min_separation must be in 1..32 (targets must not touch), got {self.min_separation}")
        for name in ("noise_std", "fixed_pattern_std", "clutter", "empty_clutter"):
            if not 0.0 <= getattr(self, name) <= 50.0:
                raise ValueError(f"{name} must be in [0, 50], got {getattr(self, name)}")

    @property
    def n_images(self) -> int:
        return self.n_train + self.n_test


@dataclass(frozen=True)
class Target:
    """One placed target: kind, mask centroid (row, col; 0-based), mask area (px) and peak amplitude (grey)."""

    kind: str
    centroid: tuple[float, float]
    area: int
    amplitude: float


@dataclass(frozen=True)
class SyntheticSample:
    """One rendered image (uint8 HxW), its mask (bool HxW) and the targets in it."""

    image: np.ndarray
    mask: np.ndarray
    targets: tuple[Target, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------- background


@functools.lru_cache(maxsize=32)
def _log_radial_freq(ph: int, pw: int) -> np.ndarray:
    """log |f| on the rfft2 grid (DC set to f=1), cached because most images share a few sizes."""
    f = np.hypot(np.fft.fftfreq(ph)[:, None], np.fft.rfftfreq(pw)[None, :])
    f[0, 0] = 1.0
    return np.log(f).astype(np.float32)


def _fractal_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    """Zero-mean, unit-std field with power spectrum ~ 1/f^beta (spectral synthesis)."""
    h, w = shape
    # Synthesise on a larger canvas and crop: the FFT field is periodic, and cropping keeps opposite
    # image edges from matching.
    ph, pw = sfft.next_fast_len(h + h // 4, real=True), sfft.next_fast_len(w + w // 4, real=True)
    spec = sfft.rfft2(rng.standard_normal((ph, pw), dtype=np.float32))
    spec *= np.exp(_log_radial_freq(ph, pw) * np.float32(-beta / 2.0))
    spec[0, 0] = 0.0
    out = sfft.irfft2(spec, s=(ph, pw))[:h, :w].astype(np.float64)
    out -= out.mean()
    return out / (out.std() + 1e-12)


def _fractal_profile(rng: np.random.Generator, n: int, beta: float) -> np.ndarray:
    """1-D zero-mean, unit-std 1/f^beta profile (a horizon's skyline)."""
    m = n + n // 2
    spec = np.fft.rfft(rng.standard_normal(m))
    f = np.fft.rfftfreq(m)
    f[0] = 1.0
    spec *= f ** (-beta / 2.0)
    spec[0] = 0.0
    out = np.fft.irfft(spec, n=m)[:n]
    out -= out.mean()
    return out / (out.std() + 1e-12)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _sky(rng: np.random.Generator, h: int, w: int, clutter: float) -> np.ndarray:
    """Sky with a vertical haze gradient and fractal clouds of random coverage and softness."""
    yy = np.linspace(0.0, 1.0, h)[:, None]
    sky = rng.uniform(-0.1, 0.5) * yy  # usually warmer (brighter) towards the horizon
    n = _fractal_noise(rng, (h, w), rng.uniform(2.6, 3.6))
    # Soft threshold: ragged fractal cloud edges, smooth interiors that brighten towards the cores.
    cover = _sigmoid((n - rng.uniform(-0.6, 1.6)) / rng.uniform(0.15, 0.8))
    return sky + clutter * rng.uniform(0.2, 1.0) * cover * (1.0 + 0.2 * n)


def _ground_texture(rng: np.random.Generator, h: int, w: int, clutter: float) -> np.ndarray:
    """Terrain: rough fractal texture plus a blurred patchwork of fields (step edges between them)."""
    rough = _fractal_noise(rng, (h, w), rng.uniform(2.0, 2.8)) * rng.uniform(0.08, 0.22)
    fields = np.digitize(_fractal_noise(rng, (h, w), 2.8), np.sort(rng.normal(0.0, 0.7, size=int(rng.integers(1, 4)))))
    patch = ndimage.gaussian_filter(fields.astype(np.float64), 0.8) * rng.uniform(0.05, 0.2)
    return clutter * (rough + patch)


def _scene(rng: np.random.Generator, h: int, w: int, clutter: float) -> tuple[np.ndarray, np.ndarray, str]:
    """Return (background scaled to ~[0, 1], per-column horizon row (h where there is no ground), scene kind)."""
    kind = str(rng.choice(["sky", "horizon", "ground"], p=[0.4, 0.4, 0.2]))
    if kind == "sky":
        bg = _sky(rng, h, w, clutter)
        horizon = np.full(w, h, dtype=np.float64)
    elif kind == "horizon":
        horizon = h * rng.uniform(0.45, 0.85) + h * rng.uniform(0.01, 0.12) * _fractal_profile(rng, w, rng.uniform(2.4, 3.2))
        rows = np.arange(h, dtype=np.float64)[:, None]
        ground_w = _sigmoid((rows - horizon[None, :]) / rng.uniform(0.3, 1.5))
        # Ground is warmer than the sky more often than not, and fades with distance (towards the horizon).
        ground = (rng.uniform(-0.2, 0.6) + rng.uniform(0.0, 0.3) * (rows / h)
                  + _ground_texture(rng, h, w, clutter))
        bg = (1.0 - ground_w) * _sky(rng, h, w, 0.6 * clutter) + ground_w * ground
    else:
        rows = np.linspace(0.0, 1.0, h)[:, None]
        bg = rng.uniform(-0.3, 0.3) * rows + 2.0 * _ground_texture(rng, h, w, max(clutter, 0.2))
        horizon = np.zeros(w, dtype=np.float64)
    lo, hi = np.percentile(bg, [1.0, 99.0])
    return (bg - lo) / max(hi - lo, 1e-6), horizon, kind


# --------------------------------------------------------------------------- distractors


def _add_distractors(rng: np.random.Generator, bg: np.ndarray, horizon: np.ndarray, kind: str,
                     clutter: float) -> None:
    """Add bright structures that are not targets, in place. All are clearly larger or longer than a target."""
    h, w = bg.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)

    for _ in range(rng.poisson(0.8 * clutter)):  # big bright blobs (glints, hot spots): support >> 80 px
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        s_minor = rng.uniform(5.5, 12.0)
        s_major = s_minor * rng.uniform(1.0, 2.5)
        th = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
        v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
        bg += rng.uniform(0.3, 1.0) * np.exp(-0.5 * ((u / s_major) ** 2 + (v / s_minor) ** 2))

    for _ in range(rng.poisson(0.5 * clutter)):  # wires / contrails: straight lines across the frame
        th = rng.uniform(0, np.pi)
        d = (xx - rng.uniform(0, w)) * np.sin(th) - (yy - rng.uniform(0, h)) * np.cos(th)
        bg += rng.uniform(0.1, 0.5) * np.exp(-0.5 * (d / rng.uniform(0.4, 1.0)) ** 2)

    n_buildings = rng.poisson(2.0 * clutter) if kind != "sky" else 0
    for _ in range(n_buildings):  # warm buildings standing on the horizon (or anywhere on ground scenes)
        bw, bh = int(rng.integers(12, 50)), int(rng.integers(10, 40))
        x0 = int(rng.integers(-bw // 2, w - bw // 2))
        cols = slice(max(x0, 0), min(x0 + bw, w))
        if cols.start >= cols.stop:
            continue
        base = float(np.max(horizon[cols])) + 2 if kind == "horizon" else float(rng.uniform(bh, h + bh // 2))
        y0 = int(base) - bh
        rows = slice(max(y0, 0), min(y0 + bh, h))
        if rows.start >= rows.stop:
            continue
        level = rng.uniform(0.15, 0.7)
        bg[rows, cols] += level
        if rng.random() < 0.5:  # cold window rows: darker stripes so no small bright spot appears
            stripes = (np.arange(rows.start, rows.stop) - y0) % int(rng.integers(4, 8)) < 2
            bg[np.arange(rows.start, rows.stop)[stripes], cols] -= 0.5 * level

    if kind == "sky" and rng.random() < 0.3 * clutter:  # structure entering the frame (roof, mast, wing)
        bw, bh = int(rng.integers(w // 6, w // 2)), int(rng.integers(h // 10, h // 4))
        y0 = h - bh
        x0 = 0 if rng.random() < 0.5 else w - bw
        bg[y0:, x0:x0 + bw] += rng.uniform(0.3, 0.9)


def _add_structured_clutter(rng: np.random.Generator, bg: np.ndarray, cfg: SyntheticConfig) -> None:
    """Hard negatives for a target-free frame, in place: cloud edges and blobs larger than any target.

    Cloud edges: the gradient magnitude of a sharp-edged fractal cloud (its interior is not added), a thin
    bright rim that breaks into short bright segments, as sunlit cloud boundaries do. Blobs: Gaussians whose
    half-maximum support is 1.5-4x ``max_target_area``, so no blob is a target by the definition used here.
    """
    h, w = bg.shape
    s = cfg.empty_clutter
    # A smooth (steep-spectrum) field cut high: a few large clouds with sharp boundaries, faintly filled.
    body = _sigmoid((_fractal_noise(rng, (h, w), rng.uniform(3.8, 4.4)) - rng.uniform(0.3, 1.0)) / 0.05)
    rim = np.hypot(*np.gradient(ndimage.gaussian_filter(body, 1.0)))
    # Brightness varies along the rim, so it breaks into short bright segments.
    along = np.clip(0.5 + 0.6 * _fractal_noise(rng, (h, w), 2.2), 0.0, None)
    bg += s * (rng.uniform(0.6, 1.2) * along * rim / (rim.max() + 1e-12) + rng.uniform(0.05, 0.2) * body)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    for _ in range(1 + rng.poisson(1.5 * s)):
        area = cfg.max_target_area * rng.uniform(1.5, 4.0)
        aspect = rng.uniform(1.0, 2.0)
        prod = area / (2.0 * math.log(2.0) * math.pi)  # half-max support of a Gaussian: 2 ln2 pi s_u s_v
        s_u, s_v = math.sqrt(prod * aspect), math.sqrt(prod / aspect)
        cy, cx, th = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)
        v = -(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)
        bg += s * rng.uniform(0.4, 1.0) * np.exp(-0.5 * ((u / s_u) ** 2 + (v / s_v) ** 2))


# --------------------------------------------------------------------------- targets


def _target_profile(rng: np.random.Generator, kind: str, cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Draw one target's intensity profile (peak 1) on a small patch and its mask (single 8-connected support).

    The shape parameters come from an area drawn log-uniformly (small targets dominate, as in NUAA/NUDT,
    whose median component area is ~20 px); a few rescaling rounds bring the measured support area into
    [min_target_area, max_target_area].
    """
    tau = cfg.support_threshold
    a_min, a_max = cfg.min_target_area, cfg.max_target_area
    lo = max(a_min, 6) if a_max >= 6 else a_min
    area = math.exp(rng.uniform(math.log(lo), math.log(a_max)))
    scale_fix = 1.0
    dy, dx = rng.uniform(-0.5, 0.5, size=2)  # sub-pixel centre
    for _ in range(60):
        if kind == "point":
            s_u = s_v = rng.uniform(0.45, 0.75) * scale_fix
            power, theta = 1.0, 0.0
        else:
            power = 1.0 if kind != "ellipse" else float(rng.choice([1.0, 2.0]))  # 2: flatter, plane-like top
            aspect = rng.uniform(1.5, 4.0) if kind == "ellipse" else rng.uniform(1.0, 1.4)
            # Support of exp(-q^p / 2) >= tau, q = (u/s_u)^2 + (v/s_v)^2, is an ellipse of area pi*s_u*s_v*c.
            prod = area * scale_fix / (math.pi * (2.0 * math.log(1.0 / tau)) ** (1.0 / power))
            s_u, s_v = math.sqrt(prod * aspect), math.sqrt(prod / aspect)
            theta = rng.uniform(0, np.pi)
        half = int(math.ceil(4.0 * max(s_u, s_v))) + 3
        yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
        u = (xx - dx) * math.cos(theta) + (yy - dy) * math.sin(theta)
        v = -(xx - dx) * math.sin(theta) + (yy - dy) * math.cos(theta)
        prof = np.exp(-0.5 * ((u / s_u) ** 2 + (v / s_v) ** 2) ** power)
        if kind == "irregular":
            # Multiplicative smoothed noise roughens the outline while keeping one dominant lobe.
            bumps = ndimage.gaussian_filter(rng.standard_normal(prof.shape), max(0.8, 0.6 * s_v))
            prof *= np.exp(rng.uniform(0.4, 0.9) * bumps / (bumps.std() + 1e-12))
        prof /= prof.max()
        mask = prof >= tau
        n_area = int(mask.sum())
        _, n_comp = ndimage.label(mask, structure=_EIGHT)
        if n_comp == 1 and a_min <= n_area <= a_max:
            return prof, mask
        if n_area > a_max:
            scale_fix *= 0.85
        elif n_area < a_min:
            scale_fix *= 1.2
    raise RuntimeError(f"could not draw a {kind} target with area in [{a_min}, {a_max}]")


def _amplitude(rng: np.random.Generator, noise_sigma: float, cfg: SyntheticConfig) -> float:
    """Peak target contrast in grey levels: dim (near the noise floor), medium or bright."""
    r = rng.random()
    if r < cfg.dim_fraction:
        return max(noise_sigma, 1.0) * rng.uniform(3.0, 6.0)
    if r < cfg.dim_fraction + cfg.bright_fraction:
        return rng.uniform(45.0, 120.0)
    return rng.uniform(12.0, 45.0)


def _place_targets(rng: np.random.Generator, h: int, w: int, n_targets: int, noise_sigma: float,
                   cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray, tuple[Target, ...]]:
    """Place ``n_targets`` non-touching targets; return (intensity layer HxW, mask HxW, targets)."""
    kinds = [str(k) for k in rng.choice(TARGET_KINDS, size=n_targets, p=_KIND_PROBS)]
    if cfg.min_target_area > 3:  # point-like targets cannot reach the requested area
        kinds = ["gaussian" if k == "point" else k for k in kinds]
    shapes = [_target_profile(rng, k, cfg) for k in kinds]
    amps = [_amplitude(rng, noise_sigma, cfg) for _ in kinds]
    # Work on a padded canvas so patches may hang over the border without clipping arithmetic.
    pad = max((p.shape[0] // 2 for p, _ in shapes), default=0) + cfg.min_separation + 1
    layer = np.zeros((h + 2 * pad, w + 2 * pad))
    masks = np.zeros(layer.shape, dtype=bool)
    occupied = np.zeros(layer.shape, dtype=bool)
    placed: list[Target] = []
    order = sorted(range(n_targets), key=lambda i: -int(shapes[i][1].sum()))  # big ones first: hardest to fit
    for i in order:
        prof, mask = shapes[i]
        half = prof.shape[0] // 2
        ys, xs = np.nonzero(mask)
        s = cfg.min_separation
        keep_out = ndimage.binary_dilation(np.pad(mask, s), _EIGHT, iterations=s)
        for _ in range(500):
            # Mask pixels must land inside the image; the profile tail may be cut by the border.
            cy = int(rng.integers(-ys.min() + half, h - 1 - ys.max() + half + 1)) + pad
            cx = int(rng.integers(-xs.min() + half, w - 1 - xs.max() + half + 1)) + pad
            ko = (slice(cy - half - s, cy + half + s + 1), slice(cx - half - s, cx + half + s + 1))
            if not np.any(occupied[ko] & keep_out):
                break
        else:
            raise RuntimeError(f"could not place {n_targets} separated targets in a {h}x{w} image")
        win = (slice(cy - half, cy + half + 1), slice(cx - half, cx + half + 1))
        layer[win] += amps[i] * prof
        masks[win] |= mask
        occupied[ko] |= keep_out
        placed.append(Target(kinds[i], (float(ys.mean() + cy - half - pad), float(xs.mean() + cx - half - pad)),
                             int(mask.sum()), float(amps[i])))
    crop = (slice(pad, pad + h), slice(pad, pad + w))
    return layer[crop], masks[crop], tuple(placed)


# --------------------------------------------------------------------------- rendering


def _draw_target_count(rng: np.random.Generator, cfg: SyntheticConfig) -> int:
    """Non-empty count in 1..max_targets with P(k) ~ k^-1.5: mostly one or two targets, like NUAA/NUDT."""
    k = np.arange(1, cfg.max_targets + 1)
    p = k ** -1.5
    return int(rng.choice(k, p=p / p.sum()))


def render_sample(rng: np.random.Generator, height: int, width: int, cfg: SyntheticConfig, *,
                  n_targets: int | None = None) -> SyntheticSample:
    """Render one image, its mask and target list. ``n_targets=None`` draws it (empty with ``cfg.empty_fraction``)."""
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"height and width must be >= {MIN_SIDE}, got {height}x{width}")
    if n_targets is None:
        n_targets = 0 if rng.random() < cfg.empty_fraction else _draw_target_count(rng, cfg)
    if not 0 <= n_targets <= cfg.max_targets:
        raise ValueError(f"n_targets must be in 0..{cfg.max_targets}, got {n_targets}")

    bg, horizon, kind = _scene(rng, height, width, cfg.clutter)
    _add_distractors(rng, bg, horizon, kind, cfg.clutter)
    if n_targets == 0 and cfg.empty_clutter > 0:  # drawn only then, so other frames' random streams are unchanged
        _add_structured_clutter(rng, bg, cfg)
    bg = ndimage.gaussian_filter(bg, rng.uniform(0.5, 1.2))  # optics blur (also anti-aliases the rectangles)
    lo = rng.uniform(15.0, 100.0)
    # Background spans [lo, lo + span] up to its 99th percentile; the headroom keeps most clouds and
    # targets out of saturation (glints on top of clouds may still clip, as in real footage).
    grey = lo + rng.uniform(50.0, min(140.0, 200.0 - lo)) * bg
    yy, xx = np.ogrid[0:height, 0:width]
    r2 = ((yy - height / 2) / (height / 2)) ** 2 + ((xx - width / 2) / (width / 2)) ** 2
    grey *= 1.0 - rng.uniform(0.0, 0.3) * r2 / 2.0  # vignetting: cos^4-like fall-off towards the corners

    noise_sigma = cfg.noise_std * rng.uniform(0.5, 1.5)
    layer, mask, targets = _place_targets(rng, height, width, n_targets, noise_sigma, cfg)
    grey += layer
    fp = cfg.fixed_pattern_std * rng.uniform(0.0, 1.5)
    grey += rng.normal(0.0, fp, size=(1, width)) + rng.normal(0.0, 0.5 * fp, size=(height, 1))
    grey += rng.normal(0.0, noise_sigma, size=grey.shape)
    image = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return SyntheticSample(image=image, mask=mask, targets=targets)


def render(rng: np.random.Generator, height: int, width: int, cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic sample in memory: (image uint8 HxW, mask bool HxW)."""
    sample = render_sample(rng, height, width, cfg)
    return sample.image, sample.mask


# --------------------------------------------------------------------------- writing


def _image_size(rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[int, int]:
    if cfg.sizes:
        h, w = cfg.sizes[int(rng.integers(len(cfg.sizes)))]
        return h, w
    if cfg.size_range is None or rng.random() < cfg.base_size_fraction:
        return cfg.height, cfg.width
    lo, hi = cfg.size_range
    return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_bytes("".join(f"{s}\n" for s in lines).encode())


def _readme(cfg: SyntheticConfig, n_empty: int, n_components: int) -> str:
    fields = asdict(cfg)
    if not cfg.empty_clutter:  # an unset option leaves the README of default datasets byte-identical
        del fields["empty_clutter"]
    params = json.dumps(fields, indent=2, sort_keys=True)
    return (
        f"{README_MARKER}\n\n"
        "SYNTHETIC data: rendered by `semprior_core.data.synthetic.generate`, not real infrared imagery.\n"
        "Layout as NUAA-SIRST / NUDT-SIRST: `images/<id>.png` (8-bit grey), `masks/<id>.png` (8-bit, {0,255}),\n"
        f"`splits/{SPLIT_NAME}/train.txt` and `test.txt` (one id per line).\n\n"
        f"- generator version: {GENERATOR_VERSION}\n"
        f"- seed: {cfg.seed}\n"
        f"- images: {cfg.n_images} (train {cfg.n_train}, test {cfg.n_test}); without target: {n_empty}\n"
        f"- target components (8-connected): {n_components}\n\n"
        "Same generator version, parameters and library versions (NumPy, SciPy, Pillow) give byte-identical files.\n\n"
        f"Parameters:\n\n```json\n{params}\n```\n"
    )


def _check_destination(root: Path, overwrite: bool) -> None:
    if not root.exists():
        return
    if not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a folder")
    if not any(root.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{root} is not empty; pass overwrite=True to replace it")
    readme = root / "README.md"
    first = readme.read_text(errors="replace").splitlines()[:1] if readme.is_file() else []
    if first != [README_MARKER]:
        # Replacing means deleting: only do that to a folder this generator wrote.
        raise FileExistsError(f"{root} is not empty and was not written by this generator; refusing to delete it")


def generate(root: str | Path, cfg: SyntheticConfig, *, overwrite: bool = False) -> Path:
    """Write the synthetic dataset to ``root`` and return it.

    Files are written to a temporary sibling folder that is renamed to ``root`` at the end, so an interrupted
    run leaves no partial dataset. A non-empty ``root`` is refused unless ``overwrite`` is set, and even then
    only a folder written by this generator is replaced.
    """
    root = Path(root).resolve()
    _check_destination(root, overwrite)
    root.parent.mkdir(parents=True, exist_ok=True)

    master = np.random.default_rng(cfg.seed)
    image_rngs = master.spawn(cfg.n_images)  # spawning draws nothing from ``master``'s own stream
    ids = [f"syn_{i:04d}" for i in range(cfg.n_images)]
    order = master.permutation(cfg.n_images)
    train_idx, test_idx = order[:cfg.n_train], order[cfg.n_train:]
    empty: set[int] = set()
    for part in (train_idx, test_idx):  # exact, split-stratified count of target-free images
        n_empty = int(round(cfg.empty_fraction * len(part)))
        empty.update(int(i) for i in master.choice(part, size=n_empty, replace=False))

    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        layout = FolderLayout(tmp)
        layout.images.mkdir()
        layout.masks.mkdir()
        (layout.splits / SPLIT_NAME).mkdir(parents=True)
        n_components = 0
        for i, (name, rng) in enumerate(zip(ids, image_rngs, strict=True)):
            h, w = _image_size(rng, cfg)
            n_targets = 0 if i in empty else _draw_target_count(rng, cfg)
            sample = render_sample(rng, h, w, cfg, n_targets=n_targets)
            n_components += len(sample.targets)
            # Fast zlib level: sensor noise barely compresses anyway, and it halves the write time.
            Image.fromarray(sample.image).save(layout.images / f"{name}.png", compress_level=1)
            Image.fromarray(sample.mask.astype(np.uint8) * 255).save(layout.masks / f"{name}.png")
        _write_lines(layout.splits / SPLIT_NAME / "train.txt", sorted(ids[i] for i in train_idx))
        _write_lines(layout.splits / SPLIT_NAME / "test.txt", sorted(ids[i] for i in test_idx))
        (tmp / "README.md").write_bytes(_readme(cfg, len(empty), n_components).encode())
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        if root.exists():
            # Move the old folder aside first so ``root`` is never missing a complete dataset for long.
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
            root.rename(old / "d")
            tmp.rename(root)
            shutil.rmtree(old)
        else:
            tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
