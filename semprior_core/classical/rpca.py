"""Robust PCA by the inexact augmented Lagrange multiplier method (IALM).

Lin, Z., Chen, M., Ma, Y., "The Augmented Lagrange Multiplier Method for Exact Recovery of Corrupted
Low-Rank Matrices", arXiv:1009.5055, 2010 (Algorithm 5). Solves
``min ||A||_* + lam ||E||_1  s.t.  D = A + E`` by alternating singular value thresholding of ``A`` and
soft thresholding of ``E``, with a penalty ``mu`` that grows geometrically by ``rho``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg


@dataclass(frozen=True)
class RPCAResult:
    low_rank: np.ndarray
    sparse: np.ndarray
    n_iter: int
    converged: bool


def _gram_eig(x: np.ndarray, floor: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Singular values above ``floor`` (all when None) and right singular vectors of a tall ``x``.

    Uses ``eigh(x.T @ x)`` restricted to eigenvalues above ``floor**2``: far cheaper than a full SVD when
    the short side is a few hundred (the patch-image) and most singular values fall below the threshold.
    Squaring the condition number only blurs singular values far below the largest; thresholding
    discards those anyway.
    """
    gram = x.T @ x
    subset = None if floor is None else (float(floor) ** 2, np.inf)
    evals, vecs = linalg.eigh(gram, subset_by_value=subset, driver="evr", check_finite=False)
    return np.sqrt(np.clip(evals, 0.0, None)), vecs


def singular_value_threshold(x: np.ndarray, tau: float) -> np.ndarray:
    """``U diag(max(s - tau, 0)) V^T``: the proximal operator of ``tau * ||.||_*`` at ``x``."""
    if x.shape[0] < x.shape[1]:
        return singular_value_threshold(x.T, tau).T
    sig, v = _gram_eig(x, tau)
    if sig.size == 0:
        return np.zeros_like(x)
    # U_k diag(s - tau) V_k^T  ==  x V_k diag((s - tau) / s) V_k^T, without forming U
    return ((x @ v) * ((sig - tau) / sig).astype(x.dtype)) @ v.T


def soft_threshold(x: np.ndarray, tau: float) -> np.ndarray:
    """``sign(x) * max(|x| - tau, 0)``: the proximal operator of ``tau * ||.||_1``."""
    return x - np.clip(x, -tau, tau)


def rpca_ialm(
    d: np.ndarray, lam: float | None = None, *, tol: float = 1e-4, max_iter: int = 20, rho: float = 1.5
) -> RPCAResult:
    """Split ``d`` (m x n, float32 or float64; the result keeps that dtype) into low-rank + sparse parts.

    ``lam`` defaults to ``1 / sqrt(max(m, n))``. Stops when ``||d - A - E||_F / ||d||_F < tol`` or after
    ``max_iter`` iterations (``converged`` says which). Initialisation and the ``mu`` schedule follow
    Lin et al.: ``Y0 = d / max(||d||_2, ||d||_inf / lam)``, ``mu0 = 1.25 / ||d||_2``, capped at ``1e7 * mu0``.
    """
    d = np.asarray(d)
    if d.dtype not in (np.float32, np.float64):
        d = d.astype(np.float64)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"rpca_ialm expects a non-empty 2-D matrix, got shape {d.shape}")
    # Python floats, not NumPy scalars, so float32 input stays float32 (NEP 50 promotion)
    lam = 1.0 / float(np.sqrt(max(d.shape))) if lam is None else float(lam)
    if lam <= 0 or max_iter < 1 or tol <= 0 or rho <= 1:
        raise ValueError(
            f"need lam > 0, max_iter >= 1, tol > 0, rho > 1; got {lam}, {max_iter}, {tol}, {rho}"
        )
    norm_fro = float(np.linalg.norm(d))
    sparse = np.zeros_like(d)
    if norm_fro == 0:
        return RPCAResult(low_rank=np.zeros_like(d), sparse=sparse, n_iter=0, converged=True)
    norm_two = float(_gram_eig(d if d.shape[0] >= d.shape[1] else d.T, None)[0][-1])
    dual = d / max(norm_two, float(np.abs(d).max()) / lam)
    mu = 1.25 / norm_two
    mu_max = mu * 1e7
    for it in range(1, max_iter + 1):
        low_rank = singular_value_threshold(d - sparse + dual / mu, 1.0 / mu)
        sparse = soft_threshold(d - low_rank + dual / mu, lam / mu)
        residual = d - low_rank - sparse
        dual += mu * residual
        mu = min(mu * rho, mu_max)
        if np.linalg.norm(residual) / norm_fro < tol:
            return RPCAResult(low_rank=low_rank, sparse=sparse, n_iter=it, converged=True)
    return RPCAResult(low_rank=low_rank, sparse=sparse, n_iter=max_iter, converged=False)
