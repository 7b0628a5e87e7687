"""Infrared Patch-Image (IPI) model.

Gao, C., Meng, D., Yang, Y., Wang, Y., Zhou, X., Hauptmann, A. G., "Infrared Patch-Image Model for Small
Target Detection in a Single Image", IEEE TIP 22(12), 2013. Sliding patches of the image become the
columns of a patch-image; the slowly varying background makes it low-rank and a small target makes a
sparse part, recovered by robust PCA (here the inexact ALM of ``rpca.rpca_ialm``). The target image is
rebuilt from the sparse part with the median of all patch values that cover each pixel, as in the paper.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from ._image import as_grey
from .rpca import rpca_ialm


def patch_starts(size: int, patch: int, stride: int) -> np.ndarray:
    """Start offsets along one axis: every ``stride`` pixels, plus one flush with the far edge so the
    patches cover the whole axis."""
    starts = np.arange(0, size - patch + 1, stride)
    if starts[-1] != size - patch:
        starts = np.append(starts, size - patch)
    return starts


def patch_image(img: np.ndarray, patch: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The patch-image ``(patch*patch, n_patches)`` (one vectorised patch per column), and the row and
    column start offsets. It is the transposed view of a C-ordered copy: no second copy is made."""
    rows = patch_starts(img.shape[0], patch, stride)
    cols = patch_starts(img.shape[1], patch, stride)
    windows = sliding_window_view(img, (patch, patch))[rows][:, cols]  # (nr, nc, patch, patch)
    return windows.reshape(len(rows) * len(cols), patch * patch).T, rows, cols


def median_reconstruct(
    columns: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], patch: int
) -> np.ndarray:
    """Image whose pixels are the median of the patch-image entries that cover them (inverse of ``patch_image``)."""
    h, w = shape
    cover_r = np.zeros(h, dtype=np.int64)
    cover_c = np.zeros(w, dtype=np.int64)
    for r in rows:
        cover_r[r : r + patch] += 1
    for c in cols:
        cover_c[c : c + patch] += 1
    # each pixel has cover_r * cover_c values; stack them in NaN-padded slots, sort (NaN goes last) and
    # read the middle of each pixel's valid values: much faster than np.nanmedian
    stack = np.full((int(cover_r.max() * cover_c.max()), h, w), np.nan, dtype=columns.dtype)
    filled = np.zeros((h, w), dtype=np.int64)
    yy, xx = np.mgrid[0:patch, 0:patch]
    patches = columns.T.reshape(len(rows), len(cols), patch, patch)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ys, xs = yy + r, xx + c
            stack[filled[ys, xs], ys, xs] = patches[i, j]
            filled[ys, xs] += 1
    stack.sort(axis=0)
    lower = np.take_along_axis(stack, ((filled - 1) // 2)[None], axis=0)[0]
    upper = np.take_along_axis(stack, (filled // 2)[None], axis=0)[0]
    return (lower + upper) / 2


def ipi(
    image: np.ndarray,
    patch: int = 50,
    stride: int = 10,
    lam: float | None = None,
    max_iter: int = 20,
    tol: float = 1e-3,
) -> np.ndarray:
    """IPI target map (float32 HxW, >= 0): the sparse part, rebuilt as an image, negatives clipped to 0.

    ``patch`` is clamped to the image's shorter side so small images still work. ``lam`` defaults to
    ``1 / sqrt(max(m, n))`` of the patch-image (Gao et al.). ``max_iter`` and ``tol`` (on the relative
    residual ``||D - A - E||_F / ||D||_F``) cap the IALM: with the defaults a 256x256 image (a 2500 x 484
    patch-image) takes about 0.85 s of CPU time (one BLAS thread; 1-1.5 s wall on the shared 2-core
    machine) and reaches the tolerance at about the 20th iteration. The solve runs in float32, whose
    rounding in the Gram-matrix SVD stalls progress below a residual of ~1e-3 anyway.
    Negative sparse entries are dark anomalies, not the bright targets sought, hence the clipping.
    """
    img = as_grey(image)
    patch = min(patch, *img.shape)
    if patch < 2 or not 1 <= stride <= patch:  # a stride beyond the patch would leave pixels uncovered
        raise ValueError(f"ipi needs patch >= 2 and 1 <= stride <= patch, got patch={patch}, stride={stride}")
    d, rows, cols = patch_image(img, patch, stride)
    # a ~500-wide patch-image is too small for threaded BLAS to pay off; on a loaded CPU it is 10x slower
    with threadpool_limits(limits=1, user_api="blas"):
        sparse = rpca_ialm(d, lam, tol=tol, max_iter=max_iter).sparse
    target = median_reconstruct(sparse, rows, cols, img.shape, patch)
    return np.maximum(target, 0.0).astype(np.float32)
