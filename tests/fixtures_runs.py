"""Tiny finished run directories (two trained, one classical) for the inspection, notebook and dashboard tests.

Import the fixtures into a test module (``from tests.fixtures_runs import tiny_run  # noqa: F401``). A
fixture imported into several modules is a separate fixture per module for pytest, so the runs are built
once per session under pytest's base temporary directory and reused (a ``.complete`` marker guards
against a half-written run).
"""

from __future__ import annotations

from pathlib import Path

import pytest

# Shared by both runs: 10 + 3 synthetic 64x64 images, a 3-stage U-Net of width 4..16, CPU, one thread.
_COMMON = [
    "data.crop=32", "data.batch_size=4", "data.val_fraction=0.2", "labels.start_epoch_frac=0.0",
    "labels.update_every=1", "model.options={widths: [4, 8, 16]}", "train.device=cpu", "train.threads=1",
]  # fmt: skip
# The semprior run: a random ViT stands in for the VFM (two cached layers feeding SCAMs at stages 0 and 1).
SEMPRIOR_OVERRIDES = [
    "method.name=semprior", "train.epochs=3", "vfm.name=random_vit", "vfm.input_size=56", "vfm.layers=[1, 2]",
    "scam.stages=[0, 1]", "scam.vfm_layers=[1, 2]", "scam.hidden=8", "semprior.meta_every=2",
]  # fmt: skip
SUPERVISED_OVERRIDES = ["method.name=supervised", "labels.rule=lesps", "train.epochs=2"]


def _dataset(base: Path) -> Path:
    from semprior_core.data.synthetic import SyntheticConfig, generate

    root = base / "data"
    if not (root / "splits").is_dir():
        generate(root, SyntheticConfig(n_train=10, n_test=3, seed=3, height=64, width=64, size_range=None,
                                       max_targets=2), overwrite=True)
    return root


def build_run(base: Path, name: str, overrides: list[str]) -> Path:
    """Train (and evaluate on the test split) a tiny run in ``base/name``, unless already built."""
    import shutil

    from semprior_core.config import load_config
    from semprior_core.engine import train
    from semprior_core.evaluation.evaluate import evaluate_run

    out = base / name
    if (out / ".complete").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    root = _dataset(base)
    cfg = load_config(None, [f"data.datasets=[{{root: '{root}'}}]", f"name={name}", *_COMMON, *overrides])
    train(cfg, out, progress=False)
    for which in ("student", "teacher") if cfg.method.name == "semprior" else ("student",):
        evaluate_run(out, "test", which, device="cpu")
    (out / ".complete").touch()
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A finished 3-epoch semprior run (teacher with SCAM on a random ViT, student, clusters, label updates,
    test-split evaluations); ~10 s to build."""
    return build_run(tmp_path_factory.getbasetemp() / "runs", "semprior", SEMPRIOR_OVERRIDES)


@pytest.fixture(scope="session")
def tiny_supervised_run(tmp_path_factory) -> Path:
    """A finished 2-epoch supervised LESPS run (the `semprior demo` recipe): no teacher, no clusters."""
    return build_run(tmp_path_factory.getbasetemp() / "runs", "supervised", SUPERVISED_OVERRIDES)


@pytest.fixture(scope="session")
def tiny_classical_run(tmp_path_factory) -> Path:
    """A white top-hat run tuned on the validation split of the same tiny dataset (no network, no epochs)."""
    from semprior_core.classical.run import load_classical_config, run_classical

    base = tmp_path_factory.getbasetemp() / "runs"
    out = base / "tophat"
    if not (out / "run.json").exists():
        cfg = load_classical_config(None, ["classical.method=tophat", f"data.datasets=[{{root: '{_dataset(base)}'}}]",
                                           "data.val_fraction=0.2"])
        run_classical(cfg, out)
    return out
