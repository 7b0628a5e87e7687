from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from semprior_core.data.dataset import Normalization
from semprior_core.evaluation.postprocess import PostprocessConfig, Target, extract_targets
from semprior_core.export import (
    DeployModel,
    ExportConfig,
    ExportError,
    ExportMetadata,
    export_checkpoint,
    export_onnx,
)
from semprior_core.io import read_image
from semprior_core.models import create_backbone
from semprior_core.runtime.tiling import Span, TileConfig, axis_spans, plan_tiles, predict_tiled
from semprior_core.store.checkpoint import CheckpointError
from tests.test_export import clear_threshold
from workbench.infer import (
    InferConfig,
    TorchPredictor,
    infer_images,
    infer_video,
    load_predictor,
    predict_frame,
    video_frames,
)

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def run_dir(tiny_full_run):
    return tiny_full_run


@pytest.fixture(scope="module")
def onnx_path(run_dir):
    return export_checkpoint(run_dir / "best.pt", run_dir.parent / "student-infer.onnx").path


@pytest.fixture(scope="module")
def random_onnx(tmp_path_factory):
    """A randomly initialised tiny U-Net with a sharpened head, so that its maps vary strongly."""
    torch.manual_seed(0)
    net = create_backbone("unet", widths=[4, 8, 16]).eval()
    with torch.no_grad():
        net.head.weight *= 300  # random heads give near-constant maps (std ~1e-4); this one spans [0, 1]
    meta = ExportMetadata(backbone="unet", size_divisor=net.size_divisor, norm_mean=0.4, norm_std=0.2,
                          threshold=0.5, threshold_metric="default")
    path = tmp_path_factory.mktemp("random") / "unet.onnx"
    return export_onnx(DeployModel(net, Normalization(0.4, 0.2), net.size_divisor), path, meta)


def large_frame(shape=(600, 900), seed=0) -> np.ndarray:
    """Smooth noise background plus bright Gaussian blobs (small targets), values in [0, 1]."""
    rng = np.random.default_rng(seed)
    frame = ndimage.gaussian_filter(rng.random(shape), 3).astype(np.float32) * 0.4 + 0.2
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for y, x in rng.integers(10, np.array(shape) - 10, size=(25, 2)):
        frame += 0.5 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.5**2)).astype(np.float32)
    return np.clip(frame, 0, 1)


# -- post-processing -------------------------------------------------------------------------------
def test_extract_targets_hand_computed():
    prob = np.zeros((8, 10), np.float32)
    prob[1:3, 1:4] = [[0.6, 0.9, 0.6], [0.6, 0.7, 0.6]]  # 6 pixels, peak 0.9
    prob[5, 8] = 0.8  # a single pixel
    prob[6, 2] = 0.5  # exactly the threshold: background (strict >)
    targets = extract_targets(prob, PostprocessConfig(threshold=0.5))
    assert targets == [
        Target(id=1, y=1.5, x=2.0, area=6, top=1, left=1, bottom=3, right=4, peak=pytest.approx(0.9)),
        Target(id=2, y=5.0, x=8.0, area=1, top=5, left=8, bottom=6, right=9, peak=pytest.approx(0.8)),
    ]
    big = extract_targets(prob, PostprocessConfig(threshold=0.5, min_area=2))
    assert [(t.id, t.area) for t in big] == [(1, 6)]
    assert extract_targets(np.zeros((4, 4)), PostprocessConfig()) == []
    with pytest.raises(ValueError, match="min_area"):
        PostprocessConfig(min_area=0)


# -- tiling ----------------------------------------------------------------------------------------
def test_axis_spans_hand_computed():
    # the end-aligned start is 60; 3 tiles at starts [0, 28, 60] leave a gap of 32 > 40 - 10, so 4 tiles
    assert axis_spans(100, 40, 10, divisor=4) == [
        Span(0, 40, 0, 30), Span(20, 60, 30, 50), Span(40, 80, 50, 70), Span(60, 100, 70, 100)]
    assert axis_spans(30, 40, 10, divisor=4) == [Span(0, 30, 0, 30)]
    with pytest.raises(ValueError, match="overlap"):
        TileConfig(tile=64, overlap=40)


@pytest.mark.parametrize("seed", range(5))
def test_axis_spans_cover_align_and_keep_margins(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        divisor = int(rng.choice([1, 4, 8, 32]))
        tile = int(rng.integers(2 * divisor + 1, 300)) if divisor < 32 else int(rng.integers(96, 300))
        overlap = int(rng.integers(0, min(tile // 2, tile - divisor) + 1))
        length = int(rng.integers(1, 2000))
        spans = axis_spans(length, tile, overlap, divisor)
        assert spans[0].own_start == 0 and spans[-1].own_stop == spans[-1].stop == length
        for a, b in zip(spans, spans[1:]):
            assert a.own_stop == b.own_start  # owned windows partition [0, length)
            assert a.stop - b.start >= overlap  # neighbours overlap enough
            assert b.own_start - b.start >= overlap // 2 and a.stop - a.own_stop >= overlap // 2
        for s in spans:
            assert s.start % divisor == 0 and s.stop - s.start <= tile
            assert s.start <= s.own_start < s.own_stop <= s.stop


def test_stitching_is_exact_for_a_local_operator():
    image = large_frame((384, 480))  # multiples of the tile, so overlap 0 gives abutting tiles

    def blur(im):  # radius-3 operator: exact when every owned pixel has >= 3 pixels of context
        return ndimage.uniform_filter(im, 7, mode="nearest")

    stitched = predict_tiled(blur, image, TileConfig(tile=96, overlap=8), divisor=4)
    assert len(plan_tiles(image.shape, TileConfig(tile=96, overlap=8), 4)) == 5 * 6
    np.testing.assert_array_equal(stitched, blur(image))
    seams = predict_tiled(blur, image, TileConfig(tile=96, overlap=0), divisor=4)
    assert np.abs(seams - blur(image)).max() > 1e-3  # without overlap the seams show: the test can fail


# Documented tolerance: a network whose receptive field fits in overlap/2 (the tiny U-Net here: radius
# about 26 px < 32) gives stitched maps equal to whole-frame maps up to float rounding (< 1e-5).
TILED_TOLERANCE = 1e-5


def test_tiled_matches_whole_frame_on_large_frame(random_onnx):
    predictor = load_predictor(random_onnx)
    frame = large_frame()
    whole = predict_frame(predictor, frame, predictor.metadata.size_divisor)
    tiled = predict_frame(predictor, frame, predictor.metadata.size_divisor, TileConfig(tile=256, overlap=64))
    assert tiled.shape == whole.shape == frame.shape
    assert whole.std() > 0.01 and np.abs(tiled - whole).max() < TILED_TOLERANCE
    for threshold in (predictor.metadata.threshold, clear_threshold(whole, 0.995)):
        post = PostprocessConfig(threshold)
        targets = extract_targets(whole, post)
        assert extract_targets(tiled, post) == [pytest.approx(t) for t in targets]
    assert len(targets) >= 10  # not vacuous
    small = predict_frame(predictor, frame, predictor.metadata.size_divisor, TileConfig(tile=32, overlap=0))
    assert np.abs(small - whole).max() > 1e-3  # tiles with too little context do differ: the check can fail


def test_whole_frame_falls_back_to_tiles_when_out_of_memory():
    calls = []

    def predictor(im):
        calls.append(im.shape)
        if im.size > 100 * 100:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return im * 2

    image = large_frame((150, 230))
    out = predict_frame(predictor, image, 4)
    np.testing.assert_allclose(out, image * 2)
    # whole frame first, then tiles of half the longer side (115 px: still too large), then 57 px tiles
    assert calls[0] == image.shape and max(calls[1]) == 115 and max(calls[-1]) <= 57
    with pytest.raises(ValueError, match="boom"):
        predict_frame(lambda im: (_ for _ in ()).throw(ValueError("boom")), image, 4)


# -- predictors ------------------------------------------------------------------------------------
def test_checkpoint_torchscript_and_onnx_predictors_agree(run_dir, onnx_path, tmp_path):
    ts = export_checkpoint(run_dir / "best.pt", tmp_path / "s.ts", ExportConfig(format="torchscript")).path
    preds = [load_predictor(p) for p in (onnx_path, ts, run_dir / "best.pt")]
    assert [p.runtime for p in preds] == ["onnxruntime", "torch", "torch"]
    assert isinstance(preds[2], TorchPredictor) and preds[2].metadata.threshold_metric == "default"
    assert preds[0].metadata.threshold == preds[1].metadata.threshold
    frame = large_frame((123, 157), seed=1)
    ref = preds[0](frame)
    for p in preds[1:]:
        assert np.abs(p(frame) - ref).max() < 1e-4


def test_bad_model_files_name_the_file(tmp_path):
    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"garbage" * 20)
    with pytest.raises(ExportError, match="model.onnx"):
        load_predictor(junk)
    with pytest.raises(ExportError, match="nothing.pt: model file not found"):
        load_predictor(tmp_path / "nothing.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")  # a torch file, not a semprior checkpoint
    with pytest.raises(CheckpointError, match="other.pt: not a semprior checkpoint"):
        load_predictor(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="device"):
        load_predictor(junk, device="tpu")


# -- folders and videos ----------------------------------------------------------------------------
def test_infer_images_writes_maps_and_target_lists(onnx_path, tiny_synthetic, tmp_path):
    from PIL import Image

    src = tmp_path / "images"
    src.mkdir()
    names = []
    for p in sorted((tiny_synthetic / "images").glob("*.png"))[:2]:
        Image.open(p).save(src / p.name)
        names.append(p.stem)
    Image.fromarray(np.rint(large_frame((300, 520), seed=2) * 255).astype(np.uint8)).save(src / "big.png")
    names.append("big")
    predictor = load_predictor(onnx_path)
    # a threshold override that yields several targets from this barely trained model
    threshold = clear_threshold(predictor(read_image(src / "big.png")), 0.995)
    cfg = InferConfig(tile=128, overlap=32, threshold=threshold, progress=False)
    summary = infer_images(onnx_path, src, tmp_path / "out", cfg)

    post = PostprocessConfig(threshold)
    doc = json.loads((tmp_path / "out" / "targets.json").read_text())
    assert [f["name"] for f in doc["frames"]] == sorted(names) and doc["threshold"] == post.threshold
    rows = list(csv.DictReader((tmp_path / "out" / "targets.csv").open()))
    assert len(rows) == summary.n_targets == sum(len(f["targets"]) for f in doc["frames"]) > 0
    for frame in doc["frames"]:
        image = read_image(src / f"{frame['name']}.png")
        png = np.asarray(Image.open(tmp_path / "out" / f"{frame['name']}.png"))
        assert png.shape == image.shape == (frame["height"], frame["width"])
        prob = predict_frame(predictor, image, predictor.metadata.size_divisor, cfg.tiles())
        assert np.abs(png / 255.0 - prob).max() <= 0.5 / 255 + 1e-6
        expected = [t.to_dict() for t in extract_targets(prob, post)]
        assert frame["targets"] == [pytest.approx(t) for t in expected]
        csv_rows = [r for r in rows if r["frame"] == frame["name"]]
        assert [int(r["area"]) for r in csv_rows] == [t["area"] for t in expected]
        assert [float(r["peak"]) for r in csv_rows] == pytest.approx([t["peak"] for t in expected], rel=1e-5)


def test_infer_video_frame_by_frame(onnx_path, tmp_path):
    import cv2

    frames = [large_frame((96, 128), seed=s) for s in range(3)]
    u8 = [np.rint(f * 255).astype(np.uint8) for f in frames]
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 5, (128, 96), True)
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write FFV1 video")
    for f in u8:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    read, total = video_frames(path)
    read = list(read)
    assert total == 3 and [n for n, _ in read] == ["frame_000000", "frame_000001", "frame_000002"]
    for (_, got), f in zip(read, u8):
        np.testing.assert_allclose(got, f / 255.0, atol=1e-6)  # lossless codec, grey = luma of grey
    summary = infer_video(onnx_path, path, tmp_path / "out", InferConfig(progress=False))
    assert len(summary.frames) == 3 and summary.ms_per_frame() > 0
    assert sorted(p.name for p in (tmp_path / "out").glob("frame_*.png")) == [f"{n}.png" for n, _ in read]
    from semprior_core.io import DataError

    (tmp_path / "bad.avi").write_bytes(b"not a video")
    with pytest.raises(DataError, match="bad.avi: cannot open video"):
        video_frames(tmp_path / "bad.avi")


def test_quantization_effect_matches_evaluation(run_dir):
    from semprior_core.evaluation.evaluate import evaluate_run
    from workbench.deploy_bench import quantization_effect

    eff = quantization_effect(run_dir, split="test", calibration_frames=2)
    ref = evaluate_run(run_dir, "test", threshold=eff["threshold"], save=False, device="cpu")
    assert eff["n_images"] == 4 and eff["fp32"] == pytest.approx(ref.metrics.as_row(), abs=1e-6)
    assert eff["delta"] == pytest.approx({k: eff["int8"][k] - eff["fp32"][k] for k in eff["fp32"]}, nan_ok=True)
    # int8 moves probabilities of this barely trained model by a few tenths at most (0.26 measured); a broken
    # quantised graph gives ~1
    assert 0 < eff["max_abs_prob_diff"] < 0.5
