"""The benchmark's building blocks (its timings themselves are reported, never asserted)."""

from __future__ import annotations

import pytest

from semprior_core.config import load_config
from semprior_core.models import create_backbone, list_backbones
from semprior_core.networks import build_teacher
from workbench.bench import bench_metrics, method_configs, semprior_cost_configs


@pytest.mark.parametrize("backbone", list_backbones())
def test_method_configs_build_a_teacher_on_the_last_three_stages(backbone):
    configs = method_configs(backbone, "contrast")
    assert list(configs) == ["supervised", "lesps", "semprior (contrast)"]
    cfg = load_config(None, configs["semprior (contrast)"])
    n = len(create_backbone(backbone).feature_info)
    assert cfg.scam.stages == list(range(n - 3, n))
    build_teacher(cfg)  # raises if a stage is out of range for this backbone


def test_semprior_cost_configs_add_one_factor_per_row():
    rows = [load_config(None, ov) for ov in semprior_cost_configs("acm", "contrast", meta_every=8).values()]
    assert [c.method.name for c in rows] == ["supervised", "semprior", "semprior", "semprior"]
    assert [c.scam.enabled for c in rows[1:]] == [False, True, True]
    assert [c.semprior.reweight for c in rows[1:]] == [False, False, True]
    assert rows[-1].semprior.meta_every == 8


def test_bench_metrics_scores_the_whole_test_split():
    row = bench_metrics("@synthetic")
    cfg = load_config(None, [])
    assert row["images"] == cfg.data.synthetic_test
    assert row["pixels_M"] > 0 and row["seconds"] > 0
    assert row["ms_per_image"] == pytest.approx(row["seconds"] / row["images"] * 1e3)


def test_tables_format_numbers_per_column_and_render_as_markdown():
    import torch

    from workbench.bench import Table, markdown

    table = Table("t", [{"name": "a", "x": 1.23456, "n": 3, "fa": 2.0}], formats={"fa": ".1f"})
    assert table.cells() == [["a", "1.235", "3", "2.0"]]
    lines = markdown([table], torch.device("cpu")).splitlines()
    assert lines[0].startswith("Measured by `semprior bench` on cpu (")
    head = markdown([table], torch.device("cpu"), "semprior bench --deploy", "0123456789abcdef").splitlines()[0]
    assert head.startswith("Measured by `semprior bench --deploy` on cpu (") and head.endswith("at commit 0123456789.")
    assert lines[2:] == ["### t", "", "| name | x | n | fa |", "|---|---|---|---|", "| a | 1.235 | 3 | 2.0 |", ""]


def test_latency_table_has_one_row_per_runtime_and_one_column_per_frame_size():
    pytest.importorskip("onnxruntime")
    from workbench.deploy_bench import latency_table

    rows = [{"runtime": r, "precision": "fp32", "device": "cpu", "size": s, "ms": ms}
            for r in ("torch", "onnxruntime") for s, ms in (("256x256", 1.0), ("640x512", 2.54))]
    table = latency_table("unet", rows, 3)
    assert table.columns() == ["runtime", "precision", "device", "256x256", "640x512"]
    assert table.cells() == [["torch", "fp32", "cpu", "1.0", "2.5"], ["onnxruntime", "fp32", "cpu", "1.0", "2.5"]]


def test_quantization_table_rounds_as_papers_report():
    pytest.importorskip("onnxruntime")
    from workbench.deploy_bench import quantization_table

    row = {"IoU": 32.084, "nIoU": 37.8, "Pd": 77.571, "Fa": 124.64}
    effect = {"split": "test", "n_images": 4, "threshold": 0.3, "threshold_metric": "point_f1",
              "fp32": row, "int8": row, "delta": {k: 0.0 for k in row}}
    table = quantization_table("runs/r", effect)
    assert table.title == "runs/r: int8 vs fp32 on the test split (4 images, threshold 0.30 chosen on validation by point_f1)"
    assert table.columns() == ["model", "IoU", "nIoU", "Pd", "Fa (×1e-6)"]
    assert table.cells()[0] == ["fp32", "32.08", "37.80", "77.57", "124.6"]
    assert table.cells()[2] == ["delta", "0.00", "0.00", "0.00", "0.0"]


def test_bench_out_names_the_command_line_that_wrote_it(tmp_path):
    from workbench.cli import main

    out = tmp_path / "b.md"
    argv = ["bench", "--backbones", "acm", "--size", "32", "--batch", "2", "--steps", "1", "--out", str(out)]
    assert main(argv) == 0
    head = out.read_text().splitlines()[0]
    assert head.startswith(f"Measured by `semprior bench --backbones acm --size 32 --batch 2 --steps 1 --out {out}` on")
    assert "| acm |" in out.read_text()


def test_crop_hits_count_crops_holding_a_target_per_placement(tiny_synthetic):
    from tests.banks import train_bank
    from workbench.crop_bench import crop_hits

    rows = crop_hits(tiny_synthetic, crop=32, epochs=4, overrides=["data.target_prob=1.0", "data.target_jitter=0.0"])
    assert [(r["split"], r["placement"]) for r in rows] == [("train", "uniform"), ("train", "like training"),
                                                            ("val", "uniform"), ("val", "like training")]
    by = {(r["split"], r["placement"]): r for r in rows}
    # centred on a point, unshifted: every crop of an image with a target holds it (an empty image has no point)
    bank = train_bank(tiny_synthetic).bank
    with_target = sum(bool(bank.mask(i).any()) for i in range(len(bank)))
    assert by["train", "like training"]["crops"] == 4 * len(bank)
    assert by["train", "like training"]["with_target_pct"] == pytest.approx(100 * with_target / len(bank))
    # anywhere in a 64-96 px image, 32² crops miss the small targets more often
    assert by["train", "uniform"]["with_target_pct"] < by["train", "like training"]["with_target_pct"]
    assert by["train", "like training"]["positive_px_pct"] > by["train", "uniform"]["positive_px_pct"] > 0
