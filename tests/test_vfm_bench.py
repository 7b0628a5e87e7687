"""The VFM engine benchmark: every engine in one run, deviations measured against float32 torch features."""

import pytest
import torch

from workbench.vfm_bench import FP16_STEP, _deviation, bench_vfm_engines


def test_deviation_is_the_worst_blocks_relative_rms_and_max():
    ref = [[torch.tensor([3.0, 4.0]), torch.tensor([1.0, 1.0])]]
    got = [[torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])]]
    rms, mx = _deviation(got, ref)
    # block 2: error (0, 1) -> rms sqrt(0.5), reference rms 1; max |err| 1 over max |ref| 1
    assert rms == pytest.approx(0.5**0.5) and mx == pytest.approx(1.0)


def test_engines_agree_in_float32_and_reduced_precision_is_further_off():
    pytest.importorskip("onnxruntime")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rows = {r["engine"]: r for r in bench_vfm_engines("random_vit", size=48, images=2, rounds=1,
                                                          layers=(2, 4), input_size=56)}
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before
    assert len(rows) == 6 and rows["torch, all blocks, batch on intra-op threads (before)"]["ratio_to_before"] == 1.0
    fp32 = [r for r in rows.values() if r["precision"] == "fp32"]
    # the same blocks through onnxruntime or one thread per image: float32 rounding, far below the fp16 step
    assert all(r["rel_max_dev"] < FP16_STEP / 8 for r in fp32) and all(r["img_s"] > 0 for r in rows.values())
    (bf16,) = [r for r in rows.values() if r["precision"] == "bf16"]
    (int8,) = [r for r in rows.values() if r["precision"] == "int8"]
    assert bf16["rel_rms_dev"] > FP16_STEP and int8["rel_rms_dev"] > FP16_STEP
