"""Shared fixtures: an isolated cache directory, the shared real datasets, a tiny synthetic dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Derived files (converted VFM weights, points, synthetic data) go to a repo-local cache that
# persists between test sessions, never to the user's home cache.
os.environ.setdefault("SEMPRIOR_CACHE", str(ROOT / ".cache" / "pytest"))

# Test tensors are tiny: one thread avoids OpenMP contention on small, shared CPUs.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def nuaa_root() -> Path:
    root = SHARED_DATA / "NUAA-SIRST"
    if not root.is_dir():
        pytest.skip("shared NUAA-SIRST data not present")
    return root


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """A 12+4-image synthetic dataset (seconds to make)."""
    from semprior_core.data.synthetic import SyntheticConfig, generate

    root = tmp_path_factory.mktemp("data") / "tiny"
    generate(root, SyntheticConfig(n_train=12, n_test=4, seed=3, height=96, width=96, size_range=(64, 96)))
    return root


@pytest.fixture(scope="session")
def tiny_full_run(tiny_synthetic, tmp_path_factory) -> Path:
    """A fully supervised tiny U-Net run (seconds), shared by the export and inference tests."""
    from semprior_core.config import load_config
    from semprior_core.engine import train

    cfg = load_config(None, [
        f"data.datasets=[{{root: {tiny_synthetic}}}]", "data.crop=32", "data.batch_size=4", "data.val_fraction=0.25",
        "model.options={widths: [4, 8, 16]}", "train.epochs=6", "train.lr=0.03", "train.threads=1",
        "train.schedule=constant", "train.loss=bce", "method.supervision=full",
        "data.target_prob=0.0",  # uniform crops: the barely trained model these tests were written for
    ])
    out = tmp_path_factory.mktemp("full") / "run"
    train(cfg, out, progress=False)
    return out
