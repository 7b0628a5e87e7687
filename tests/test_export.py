from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from semprior_core.data.dataset import ImageBank, Normalization
from semprior_core.evaluation.postprocess import PostprocessConfig, extract_targets, select_threshold
from semprior_core.export import (
    DeployModel,
    ExportConfig,
    ExportError,
    ExportMetadata,
    export_checkpoint,
    export_onnx,
    export_torchscript,
    load_network,
    read_metadata,
    read_onnx_metadata,
    read_torchscript,
    validation_threshold,
)
from semprior_core.models import create_backbone
from semprior_core.runtime.inference import predict_probs
from tests.fixtures_runs import tiny_run  # noqa: F401

ort = pytest.importorskip("onnxruntime")

# several sizes, none of the odd ones a multiple of the tiny U-Net's divisor (4) or of 32
SIZES = [(96, 96), (70, 45), (33, 97), (130, 201)]


@pytest.fixture(scope="module")
def run_dir(tiny_full_run):
    return tiny_full_run


@pytest.fixture(scope="module")
def onnx_export(run_dir):
    return export_checkpoint(run_dir / "best.pt", run_dir.parent / "student.onnx", ExportConfig(format="onnx"))


def frames(tiny_synthetic) -> list[np.ndarray]:
    """Real synthetic images cropped/tiled to each size in SIZES."""
    from semprior_core.io import read_image

    ims = [read_image(p) for p in sorted((tiny_synthetic / "images").glob("*.png"))[:4]]
    out = []
    for (h, w), im in zip(SIZES, ims):
        reps = (-(-h // im.shape[0]), -(-w // im.shape[1]))
        out.append(np.ascontiguousarray(np.tile(im, reps)[:h, :w]))
    return out


def clear_threshold(prob: np.ndarray, q: float = 0.99) -> float:
    """A threshold near the ``q`` quantile of ``prob``, in the widest gap between neighbouring pixel values
    there, so rounding differences between runtimes (~1e-7) cannot move a pixel across it. The tiny test
    model is barely trained; this keeps target-list comparisons from being vacuous. Saturated pixels (p = 1)
    are left out: a threshold must be below 1."""
    v = np.sort(prob.ravel())
    v = v[v < 1.0]
    k = int(q * (len(v) - 1))
    lo, hi = max(k - 200, 0), min(k + 200, len(v) - 1)
    i = lo + int(np.argmax(np.diff(v[lo : hi + 1])))
    return float((v[i] + v[i + 1]) / 2)


def reference_probs(run_dir, images: list[np.ndarray]) -> list[np.ndarray]:
    """What `semprior predict` computes: the run's student through semprior_core.runtime.inference."""
    from semprior_core.data.catalog import SampleRef
    from semprior_core.evaluation.evaluate import load_run, predict_bank

    run = load_run(run_dir / "best.pt", "cpu")
    refs = [SampleRef(None, f"im{i}") for i in range(len(images))]
    return predict_bank(run, "student", ImageBank(refs, images=images), torch.device("cpu"))


def ort_probs(path, images):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [sess.run(["prob"], {"image": im[None, None].astype(np.float32)})[0][0, 0] for im in images]


# -- threshold selection (pure) ------------------------------------------------------------------
def _scene():
    prob = np.full((10, 10), 0.05, np.float32)
    prob[2:4, 2:4] = 0.35  # the target, weakly detected
    prob[7, 7] = 0.15  # a faint false alarm
    mask = np.zeros((10, 10), bool)
    mask[2:4, 2:4] = True
    return prob, mask


def test_select_threshold_dense_iou_hand_computed():
    prob, mask = _scene()
    c = select_threshold([prob], masks=[mask], grid=[0.1, 0.2, 0.3, 0.4])
    # t=0.1: target + false alarm -> 4/5; t=0.2, 0.3: exactly the target; t=0.4: nothing -> 0
    assert c.scores == pytest.approx({0.1: 0.8, 0.2: 1.0, 0.3: 1.0, 0.4: 0.0})
    assert c.metric == "iou" and c.split == "val" and c.score == 1.0
    assert c.threshold == 0.3  # tie between 0.2 and 0.3 goes to the one nearer 0.5


def test_select_threshold_points_hand_computed():
    prob, _ = _scene()
    pts = [np.array([[2, 3]])]
    c = select_threshold([prob], points=pts, grid=[0.1, 0.2, 0.3, 0.4])
    # t=0.1: recall 1, precision 1/2 -> F1 2/3; t=0.2, 0.3: F1 1; t=0.4: no component -> 0
    assert c.scores == pytest.approx({0.1: 2 / 3, 0.2: 1.0, 0.3: 1.0, 0.4: 0.0})
    assert c.metric == "point_f1" and c.threshold == 0.3
    # a 4-pixel target larger than max_area counts as a false alarm: every score is 0, the tie goes to 0.4
    c = select_threshold([prob], points=pts, grid=[0.1, 0.2, 0.3, 0.4], max_area=3)
    assert set(c.scores.values()) == {0.0} and c.threshold == 0.4


def test_select_threshold_rejects_bad_input():
    prob, mask = _scene()
    with pytest.raises(ValueError, match="exactly one"):
        select_threshold([prob], masks=[mask], points=[np.zeros((0, 2))])
    with pytest.raises(ValueError, match="exactly one"):
        select_threshold([prob])
    with pytest.raises(ValueError, match="no validation"):
        select_threshold([], masks=[])
    with pytest.raises(ValueError, match="grid"):
        select_threshold([prob], masks=[mask], grid=[1.5])


def test_export_config_validation():
    with pytest.raises(ValueError, match="int8 export needs format onnx"):
        ExportConfig(format="torchscript", int8=True)
    with pytest.raises(ValueError, match="exclude each other"):
        ExportConfig(fp16=True, int8=True)
    with pytest.raises(ValueError, match="format"):
        ExportConfig(format="tflite")
    with pytest.raises(ValueError, match="threshold"):
        ExportConfig(threshold=1.0)
    assert ExportConfig(int8=True).precision == "int8" and ExportConfig().precision == "fp32"


def test_metadata_props_round_trip_and_unknown_key():
    meta = ExportMetadata(backbone="acm", size_divisor=16, norm_mean=0.25, norm_std=0.125, threshold=0.3,
                          threshold_metric="point_f1", threshold_split="val", threshold_score=0.75,
                          backbone_options={"widths": [4, 8]}, epoch=3, source="best.pt", precision="int8")
    props = meta.to_props()
    assert props["semprior.size_divisor"] == "16" and props["semprior.threshold"] == "0.3"
    assert ExportMetadata.from_props(props) == meta
    with pytest.raises(ValueError, match="unknown metadata fields"):
        ExportMetadata.from_props(props | {"semprior.colour": '"red"'})


# -- exported files ------------------------------------------------------------------------------
def test_threshold_is_chosen_on_validation_only(run_dir, monkeypatch):
    src = load_network(run_dir / "best.pt")
    val = set((run_dir / "splits" / "val.txt").read_text().split())
    test = set((run_dir / "splits" / "test.txt").read_text().split())
    read = []
    orig = ImageBank.mask
    monkeypatch.setattr(ImageBank, "mask", lambda self, i: read.append(self.refs[i].key) or orig(self, i))
    choice = validation_threshold(src)
    assert read and set(read) <= val and not set(read) & test
    # the same choice, recomputed from the evaluation code path on the validation images
    from semprior_core.data.catalog import build_splits

    bank = ImageBank(build_splits(src.cfg.data).val)
    probs = predict_probs(lambda b: src.net(b["image"]), src.net, bank, src.norm, divisor=src.divisor,
                          device=torch.device("cpu"))
    assert choice == select_threshold(probs, masks=[bank.mask(i) for i in range(len(bank))])
    assert choice.metric == "iou"  # this run selected on dense validation masks


def test_onnx_matches_pytorch_on_several_sizes(run_dir, onnx_export, tiny_synthetic):
    images = frames(tiny_synthetic)
    ref, got = reference_probs(run_dir, images), ort_probs(onnx_export.path, images)
    n_targets = 0
    for im, r, g in zip(images, ref, got):
        assert g.shape == im.shape
        assert np.abs(g - r).max() < 1e-4
        for threshold in (onnx_export.metadata.threshold, clear_threshold(r)):
            post = PostprocessConfig(threshold)
            tr, tg = extract_targets(r, post), extract_targets(g, post)
            assert [(t.area, t.top, t.left, t.bottom, t.right) for t in tr] == [
                (t.area, t.top, t.left, t.bottom, t.right) for t in tg]
            assert [v for t in tg for v in (t.y, t.x, t.peak)] == pytest.approx(
                [v for t in tr for v in (t.y, t.x, t.peak)], abs=1e-4)
            n_targets += len(tr)
    assert n_targets >= 10  # the comparison is not vacuous


def test_onnx_metadata_round_trip(run_dir, onnx_export):
    meta = read_metadata(onnx_export.path)
    assert meta == onnx_export.metadata
    from semprior_core.store.checkpoint import load_checkpoint

    ckpt = load_checkpoint(run_dir / "best.pt")
    assert (meta.backbone, meta.size_divisor, meta.precision, meta.network) == ("unet", 4, "fp32", "student")
    assert (meta.norm_mean, meta.norm_std) == (ckpt["normalization"]["mean"], ckpt["normalization"]["std"])
    assert meta.threshold == onnx_export.choice.threshold and meta.threshold_split == "val"
    assert meta.epoch == ckpt["epoch"] and meta.source == "best.pt" and meta.semprior_version
    # onnxruntime sees the same metadata
    sess = ort.InferenceSession(str(onnx_export.path), providers=["CPUExecutionProvider"])
    assert ExportMetadata.from_props(sess.get_modelmeta().custom_metadata_map) == meta
    shape = sess.get_inputs()[0].shape
    assert shape[1] == 1 and all(isinstance(s, str) for s in (shape[0], shape[2], shape[3]))  # dynamic B, H, W


def test_torchscript_parity_and_metadata(run_dir, tiny_synthetic, tmp_path):
    res = export_checkpoint(run_dir / "best.pt", tmp_path / "student.ts",
                            ExportConfig(format="torchscript", threshold=0.4))
    module, meta = read_torchscript(res.path)
    assert meta == res.metadata and meta.threshold == 0.4 and meta.threshold_metric == "given"
    images = frames(tiny_synthetic)
    with torch.no_grad():
        got = [module(torch.from_numpy(im)[None, None])[0, 0].numpy() for im in images]
    for r, g in zip(reference_probs(run_dir, images), got):
        assert g.shape == r.shape and np.abs(g - r).max() < 1e-5


def test_reduced_precision_onnx_stays_close(run_dir, onnx_export, tiny_synthetic, tmp_path):
    images = frames(tiny_synthetic)[:2]
    fp32 = ort_probs(onnx_export.path, images)
    for kw, tol in (({"fp16": True}, 5e-3), ({"int8": True}, 0.1)):
        res = export_checkpoint(run_dir / "best.pt", tmp_path / f"{next(iter(kw))}.onnx",
                                ExportConfig(threshold=onnx_export.metadata.threshold, **kw))
        assert read_metadata(res.path).precision == next(iter(kw))
        for a, b in zip(fp32, ort_probs(res.path, images)):
            assert b.dtype == np.float32 and np.abs(a - b).max() < tol


@pytest.mark.parametrize("backbone,options", [
    ("acm", {"channels": (4, 8, 16, 32), "blocks": (1, 1, 1)}),
    ("dnanet", {"nb_filter": (4, 8, 16, 32), "num_blocks": (1, 1, 1)}),
])
def test_other_backbones_export_with_dynamic_sizes(backbone, options, tmp_path):
    torch.manual_seed(0)
    net = create_backbone(backbone, **options).eval()
    model = DeployModel(net, Normalization(0.4, 0.2), net.size_divisor)
    meta = ExportMetadata(backbone=backbone, size_divisor=net.size_divisor, norm_mean=0.4, norm_std=0.2,
                          threshold=0.5, threshold_metric="default")
    path = export_onnx(model, tmp_path / "m.onnx", meta)
    rng = np.random.default_rng(0)
    images = [rng.random(s, dtype=np.float32) for s in [(64, 64), (37, 83)]]
    with torch.no_grad():
        ref = [model(torch.from_numpy(im)[None, None])[0, 0].numpy() for im in images]
    for r, g in zip(ref, ort_probs(path, images)):
        assert g.shape == r.shape and np.abs(g - r).max() < 1e-4


def test_alcnet_onnx_failure_is_explained_and_torchscript_works(tmp_path):
    net = create_backbone("alcnet").eval()
    model = DeployModel(net, Normalization(0.4, 0.2), net.size_divisor)
    meta = ExportMetadata(backbone="alcnet", size_divisor=net.size_divisor, norm_mean=0.4, norm_std=0.2,
                          threshold=0.5, threshold_metric="default")
    with pytest.raises(ExportError, match=r"m\.onnx: ONNX export of backbone 'alcnet' failed.*torchscript"):
        export_onnx(model, tmp_path / "m.onnx", meta)
    module, _ = read_torchscript(export_torchscript(model, tmp_path / "m.ts", meta))
    x = torch.rand(1, 1, 45, 70)
    with torch.no_grad():
        assert torch.allclose(module(x), model(x), atol=1e-6)


def test_bad_model_files_name_the_file(tmp_path, onnx_export):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01not a model at all" * 10)
    with pytest.raises(ExportError, match="junk.onnx"):
        read_metadata(junk)
    with pytest.raises(ExportError, match="missing.onnx: model file not found"):
        read_metadata(tmp_path / "missing.onnx")
    import onnx

    bare = onnx.load(str(onnx_export.path))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ExportError, match="bare.onnx: semprior metadata missing"):
        read_onnx_metadata(tmp_path / "bare.onnx")
    plain = torch.jit.trace(torch.nn.Conv2d(1, 1, 1), torch.zeros(1, 1, 4, 4))
    torch.jit.save(plain, str(tmp_path / "plain.ts"))
    with pytest.raises(ExportError, match="plain.ts: TorchScript module without semprior metadata"):
        read_metadata(tmp_path / "plain.ts")


def test_export_refuses_missing_network_and_unreadable_validation(run_dir, tmp_path):
    with pytest.raises(ExportError, match="no network 'teacher'"):
        export_checkpoint(run_dir / "best.pt", tmp_path / "t.onnx", ExportConfig(network="teacher"))
    # a checkpoint whose dataset moved: the threshold cannot be chosen, and the error says what to do
    from semprior_core.store.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(run_dir / "best.pt")
    ckpt["config"]["data"]["datasets"][0]["root"] = str(tmp_path / "gone")
    save_checkpoint(tmp_path / "moved.pt", ckpt)
    with pytest.raises(ExportError, match="moved.pt: the run's validation split is not readable.*by hand"):
        export_checkpoint(tmp_path / "moved.pt", tmp_path / "m.onnx")
    res = export_checkpoint(tmp_path / "moved.pt", tmp_path / "m.onnx", ExportConfig(threshold=0.35))
    assert dataclasses.asdict(res.metadata)["threshold"] == 0.35 and res.choice is None


def test_semprior_run_exports_its_student_without_the_vfm(tiny_run, tmp_path, monkeypatch):  # noqa: F811
    import semprior_core.networks as networks

    def no_vfm(*args, **kwargs):
        raise AssertionError("exporting the student must not build the VFM")

    monkeypatch.setattr(networks, "vfm_channels", no_vfm)
    res = export_checkpoint(tiny_run / "best.pt", tmp_path / "s.onnx")
    assert res.metadata.network == "student" and res.metadata.threshold_metric == "point_f1"  # point-supervised
    with pytest.raises(ExportError, match="teacher needs VFM features"):
        export_checkpoint(tiny_run / "best.pt", tmp_path / "t.onnx", ExportConfig(network="teacher"))
    sess = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["image"]  # the image only: no VFM features
