"""The benchmark's building blocks (its timings themselves are reported, never asserted)."""

from __future__ import annotations

import pytest

from semprior_core.config import load_config
from semprior_core.models import create_backbone, list_backbones
from semprior_core.networks import build_teacher
from workbench.bench import bench_metrics, method_configs


@pytest.mark.parametrize("backbone", list_backbones())
def test_method_configs_build_a_teacher_on_the_last_three_stages(backbone):
    configs = method_configs(backbone, "contrast")
    assert list(configs) == ["supervised", "lesps", "semprior (contrast)"]
    cfg = load_config(None, configs["semprior (contrast)"])
    n = len(create_backbone(backbone).feature_info)
    assert cfg.scam.stages == list(range(n - 3, n))
    build_teacher(cfg)  # raises if a stage is out of range for this backbone


def test_bench_metrics_scores_the_whole_test_split():
    row = bench_metrics("@synthetic")
    cfg = load_config(None, [])
    assert row["images"] == cfg.data.synthetic_test
    assert row["pixels_M"] > 0 and row["seconds"] > 0
    assert row["ms_per_image"] == pytest.approx(row["seconds"] / row["images"] * 1e3)
