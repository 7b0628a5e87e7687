"""Image clusters for the per-cluster loss weights: k-means on image descriptors, and a compact descriptor.

The descriptor is either the pooled VFM features (computed elsewhere) or :func:`image_statistics`, a small
hand-crafted global summary (the seed code used ~60 statistics, ``/work/shared/METHOD_NOTES.md`` §1). Clusters are
computed on training images only; the assignment is saved in the run directory as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage
from sklearn.cluster import KMeans

STAT_NAMES: tuple[str, ...] = (
    "mean", "std", "p01", "p25", "p50", "p75", "p99", "skew", "kurtosis", "entropy",
    "grad_mean", "grad_std", "grad_p99",
    "contrast_mean", "contrast_std", "contrast_p99",
    "tophat_mean", "tophat_max", "peak_snr", "noise_sigma",
    "spectral_slope", "high_freq_ratio",
)  # fmt: skip
_EPS = 1e-8


def cluster_images(features: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """(N,) cluster labels in [0, k) of (N, D) image descriptors: standardise, then k-means (10 restarts).

    Labels are renumbered in order of first appearance, so equal partitions give equal label arrays.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"cluster_images expects features of shape (N >= 1, D), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("cluster_images: features contain NaN or inf")
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"cluster_images: k must be in [1, N={n}], got {k}")
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    std = x.std(axis=0)
    x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)  # constant columns carry no information
    raw = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x)
    _, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))  # rank of each raw label by its first appearance
    return rank[inverse.ravel()].astype(np.int64)


def image_statistics(image: np.ndarray) -> np.ndarray:
    """Global descriptor of a grey image in [0, 1] (integer images are scaled by their dtype's max).

    Returns ``len(STAT_NAMES)`` finite numbers: intensity moments, percentiles and histogram entropy; gradient
    magnitude; local contrast (7×7 standard deviation); white top-hat 5×5 (small bright structures, the
    targets of IRSTD; its max, since a few-pixel target hardly moves a percentile); peak-to-median contrast in
    units of the image's std; noise σ (Immerkær, "Fast noise variance estimation", CVIU 1996); slope of the
    radially averaged log power spectrum and the share of power above half the Nyquist radius. Skew and
    kurtosis of a constant image are 0.
    """
    img = np.asarray(image)
    if np.issubdtype(img.dtype, np.integer):
        img = img / np.iinfo(img.dtype).max
    img = img.astype(np.float64)
    if img.ndim == 3:
        img = img.mean(axis=-1)
    if img.ndim != 2 or min(img.shape) < 8:
        raise ValueError(
            f"image_statistics expects a grey image of at least 8x8, got shape {np.shape(image)}"
        )
    flat = img.ravel()
    mean, std = flat.mean(), flat.std()
    z = (flat - mean) / std if std > _EPS else None  # skew and kurtosis are 0 for a constant image
    hist = np.histogram(np.clip(flat, 0, 1), bins=64, range=(0, 1))[0] / flat.size
    hist = hist[hist > 0]
    grad = np.hypot(*np.gradient(img))
    local_mean = ndimage.uniform_filter(img, 7)
    contrast = np.sqrt(np.maximum(ndimage.uniform_filter(img * img, 7) - local_mean**2, 0))
    tophat = ndimage.white_tophat(img, size=5)
    laplace = ndimage.convolve(img, np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], float))[1:-1, 1:-1]
    noise = np.sqrt(np.pi / 2) * np.abs(laplace).mean() / 6
    stats = [
        mean, std, *np.percentile(flat, [1, 25, 50, 75, 99]),
        0.0 if z is None else (z**3).mean(), 0.0 if z is None else (z**4).mean() - 3,
        -(hist * np.log2(hist)).sum(),
        grad.mean(), grad.std(), np.percentile(grad, 99),
        contrast.mean(), contrast.std(), np.percentile(contrast, 99),
        tophat.mean(), tophat.max(), (flat.max() - np.median(flat)) / (std + _EPS), noise,
        *_spectrum_stats(img),
    ]  # fmt: skip
    return np.asarray(stats, dtype=np.float64)


def _spectrum_stats(img: np.ndarray) -> tuple[float, float]:
    """Slope of log power vs log radius, and the power share above half the Nyquist radius."""
    power = np.abs(np.fft.fftshift(np.fft.fft2(img - img.mean()))) ** 2
    h, w = img.shape
    yy, xx = np.indices((h, w))
    radius = np.hypot(yy - h // 2, xx - w // 2).round().astype(int)
    r_max = min(h, w) // 2
    radial = np.bincount(radius.ravel(), power.ravel()) / np.maximum(np.bincount(radius.ravel()), 1)
    r = np.arange(1, r_max + 1)
    slope = np.polyfit(np.log(r), np.log(radial[r] + 1e-12), 1)[0]
    ring = (radius >= 1) & (radius <= r_max)
    high = power[ring & (radius > r_max / 2)].sum() / (power[ring].sum() + _EPS)
    return float(slope), float(high)


def stats_features(images: Iterable[np.ndarray]) -> np.ndarray:
    """(N, len(STAT_NAMES)) matrix of :func:`image_statistics` rows."""
    rows = [image_statistics(im) for im in images]
    if not rows:
        raise ValueError("stats_features needs at least one image")
    return np.stack(rows)


@dataclass
class ClusterAssignment:
    """Cluster label of every training image, saved as JSON in the run directory.

    ``ids`` (optional) are the sample keys in label order, so a resumed run can check the assignment still
    matches its training images.
    """

    labels: list[int]
    k: int
    method: str  # descriptor: "vfm" | "stats"
    sizes: list[int]
    seed: int = 0
    ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels = [int(v) for v in self.labels]
        self.sizes = [int(v) for v in self.sizes]
        self.ids = [str(v) for v in self.ids]
        if self.k < 1 or any(not 0 <= v < self.k for v in self.labels):
            raise ValueError(f"ClusterAssignment.labels must lie in [0, k={self.k})")
        if self.sizes != np.bincount(self.labels, minlength=self.k).tolist():
            raise ValueError("ClusterAssignment.sizes must be the per-cluster counts of labels")
        if self.ids and len(self.ids) != len(self.labels):
            raise ValueError(
                f"ClusterAssignment.ids has {len(self.ids)} entries for {len(self.labels)} labels"
            )

    @classmethod
    def from_labels(
        cls,
        labels: Sequence[int] | np.ndarray,
        k: int,
        method: str,
        *,
        seed: int = 0,
        ids: Sequence[str] = (),
    ) -> ClusterAssignment:
        sizes = np.bincount(np.asarray(labels, dtype=np.int64), minlength=k).tolist()
        return cls(list(labels), k, method, sizes, seed, list(ids))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ClusterAssignment:
        return cls(**json.loads(text))
