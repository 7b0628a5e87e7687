from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from semprior_core.config import load_config
from semprior_core.data.catalog import build_splits, carve_validation, load_points
from semprior_core.data.check import check_dataset
from semprior_core.data.dataset import CropDataset, ImageBank, Normalization
from semprior_core.data.folder import DatasetFolder, read_split_file
from semprior_core.data.points import PointSet, centroid_points, coarse_points, points_from_masks
from semprior_core.data.transforms import Geometry, apply_array, apply_features, apply_points, sample_geometry
from semprior_core.io import DataError, read_image, read_mask


def _dataset(root, n=4, size=(20, 24)):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "splits").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img = (rng.random(size) * 255).astype(np.uint8)
        m = np.zeros(size, np.uint8)
        m[5 + i, 6 : 8 + i] = 255
        Image.fromarray(img).save(root / "images" / f"im{i}.png")
        Image.fromarray(m).save(root / "masks" / f"im{i}.png")
    (root / "splits" / "train.txt").write_text("\r\n".join(f"im{i}" for i in range(n - 1)))
    (root / "splits" / "test.txt").write_text(f"im{n - 1}\n")
    return root


# -- readers and bad input -------------------------------------------------------------------
def test_read_image_modes(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(a).save(tmp_path / "l.png")
    Image.fromarray(np.stack([a] * 3 + [np.full_like(a, 255)], -1), mode="RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(a.astype(np.uint16) * 257).save(tmp_path / "16.png")
    ref = a / 255.0
    for name in ("l.png", "rgba.png", "16.png"):
        np.testing.assert_allclose(read_image(tmp_path / name), ref, atol=1e-6)


def test_bad_images_name_the_file(tmp_path):
    (tmp_path / "zero.png").write_bytes(b"")
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "trunc.png").write_bytes((tmp_path / "ok.png").read_bytes()[:40])
    with pytest.raises(DataError, match="zero.png: empty file"):
        read_image(tmp_path / "zero.png")
    with pytest.raises(DataError, match="trunc.png: cannot decode"):
        read_image(tmp_path / "trunc.png")
    with pytest.raises(DataError, match="missing.png: file not found"):
        read_image(tmp_path / "missing.png")


def test_mask_values_checked(tmp_path):
    m = np.zeros((4, 4), np.uint8)
    m[1, 1] = 128
    Image.fromarray(m).save(tmp_path / "m.png")
    with pytest.raises(DataError, match="m.png: mask values must be 0 or 255"):
        read_mask(tmp_path / "m.png")


def test_split_file_rules(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("a\r\nb\r\n\r\n")
    assert read_split_file(p) == ["a", "b"]
    p.write_text("a\nb\na\n")
    with pytest.raises(DataError, match="s.txt: line 3: duplicate id 'a'"):
        read_split_file(p)
    p.write_text("\n\n")
    with pytest.raises(DataError, match="lists no ids"):
        read_split_file(p)


def test_folder_errors(tmp_path):
    root = _dataset(tmp_path / "d")
    folder = DatasetFolder.open(root)
    (root / "splits" / "bad.txt").write_text("im0\nnope\n")
    with pytest.raises(DataError, match="id 'nope' has no image"):
        folder.split_ids("splits/bad.txt")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "masks" / "im1.png")
    with pytest.raises(DataError, match="im1.png: mask size 5x5 differs from its image 24x20"):
        folder.load_mask("im1", expect_shape=folder.load_image("im1").shape)


def test_check_dataset_reports_problems(tmp_path):
    root = _dataset(tmp_path / "d")
    assert check_dataset(root).ok
    (root / "images" / "im2.png").write_bytes(b"")
    rep = check_dataset(root)
    assert not rep.ok
    assert any("im2.png: empty file" in p for s in rep.splits for p in s.problems)


# -- points ----------------------------------------------------------------------------------
def test_centroid_points_snap_inside_ring():
    m = np.zeros((12, 12), bool)
    m[1:8, 1:8] = True
    m[2:7, 2:7] = False  # a ring: its centroid (4,4) lies outside it
    m[11, 11] = True  # a second, single-pixel component
    pts = centroid_points(m)
    assert len(pts) == 2
    assert all(m[y, x] for y, x in pts)
    assert [11, 11] in pts.tolist()


def test_coarse_points_deterministic_and_inside():
    m = np.zeros((40, 40), bool)
    m[10:20, 5:25] = True
    a = coarse_points(m, np.random.default_rng(1))
    b = coarse_points(m, np.random.default_rng(1))
    assert (a == b).all() and m[a[0, 0], a[0, 1]]
    spread = {tuple(coarse_points(m, np.random.default_rng(s))[0]) for s in range(20)}
    assert len(spread) > 5  # really sampled around the centroid


def test_points_file_round_trip_and_outside_point(tmp_path):
    m = np.zeros((10, 12), bool)
    m[3, 4] = True
    ps = points_from_masks([("a", m)], "centroid")
    ps.save(tmp_path / "p.json")
    back = PointSet.load(tmp_path / "p.json")
    assert back["a"].tolist() == [[3, 4]] and back.sizes["a"] == (10, 12)
    data = (tmp_path / "p.json").read_text().replace("[\n          3,\n          4\n        ]", "[\n 30,\n 4\n ]")
    (tmp_path / "q.json").write_text(data)
    with pytest.raises(DataError, match="q.json: image 'a': point \\(y=30, x=4\\) lies outside"):
        PointSet.load(tmp_path / "q.json")


def test_nuaa_centroids_match_xml(nuaa_root):
    """Our centroid rule agrees with NUAA-SIRST's own centroid annotations (1-based XML)."""
    import xml.etree.ElementTree as ET

    folder = DatasetFolder.open(nuaa_root)
    for sid in ["Misc_1", "Misc_10", "Misc_100"]:
        ours = sorted(map(tuple, centroid_points(folder.load_mask(sid)).tolist()))
        root = ET.parse(nuaa_root / "centroids" / f"{sid}.xml").getroot()
        theirs = sorted(
            (round(float(o.find("centroid/yc").text) - 1), round(float(o.find("centroid/xc").text) - 1))
            for o in root.iter("object")
        )
        assert len(ours) == len(theirs)
        assert all(abs(a[0] - b[0]) <= 1 and abs(a[1] - b[1]) <= 1 for a, b in zip(ours, theirs))


# -- transforms ------------------------------------------------------------------------------
def test_geometry_consistent_for_image_and_points():
    rng = np.random.default_rng(0)
    img = np.zeros((30, 40), np.float32)
    pts = np.array([[3, 5], [20, 33], [29, 0]])
    img[pts[:, 0], pts[:, 1]] = 1
    for _ in range(30):
        g = sample_geometry(rng, img.shape, 24)
        out = apply_array(img, g)
        moved = apply_points(pts, g)
        assert out.shape == (24, 24)
        assert sorted(map(tuple, np.argwhere(out == 1).tolist())) == sorted(map(tuple, moved.tolist()))


def test_small_image_is_padded_not_resized():
    img = np.ones((10, 12), np.float32)
    g = Geometry(-3, -2, 16, 16)
    out = apply_array(img, g)
    assert out.sum() == img.sum() and out[3:13, 2:14].all()


def test_feature_resampling_follows_image_geometry():
    """A feature map that equals the image (stride 1) must transform exactly like the image."""
    rng = np.random.default_rng(1)
    img = rng.random((32, 32)).astype(np.float32)
    for _ in range(10):
        g = sample_geometry(rng, img.shape, 16)
        g = Geometry(max(g.top, 0), max(g.left, 0), 16, 16, g.transpose, g.vflip, g.hflip)
        feat = apply_features(torch.from_numpy(img)[None], g, img.shape, stride=1)[0].numpy()
        np.testing.assert_allclose(feat, apply_array(img, g), atol=1e-5)


def test_feature_padding_is_zero():
    feat = torch.ones(2, 4, 4)
    out = apply_features(feat, Geometry(-16, 0, 32, 32), (32, 32), stride=8)
    assert out.shape == (2, 4, 4)
    assert (out[:, :2] == 0).all() and (out[:, 2:] == 1).all()


def test_feature_crop_is_bilinear_sampling_at_the_window_cell_centres():
    """The definition, by hand: ``grid_sample`` of the whole map at ``2·pixel/size − 1`` of each output cell's
    centre, border-clamped, cells outside the image zeroed, then the window's transpose and flips."""
    rng = np.random.default_rng(3)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(3, 30, 2))
        H, W = h * int(rng.integers(4, 15)), w * int(rng.integers(4, 15))
        feat = torch.randn(3, h, w)
        g = sample_geometry(rng, (H, W), int(rng.integers(8, 160)))
        stride = int(rng.choice([1, 8, 14]))
        oh, ow = -(-g.height // stride), -(-g.width // stride)
        ys = g.top + (torch.arange(oh) + 0.5) * g.height / oh
        xs = g.left + (torch.arange(ow) + 0.5) * g.width / ow
        gy, gx = torch.meshgrid(2 * ys / H - 1, 2 * xs / W - 1, indexing="ij")
        ref = torch.nn.functional.grid_sample(feat[None], torch.stack([gx, gy], -1)[None],
                                              padding_mode="border", align_corners=False)[0]
        ref = ref * (((ys >= 0) & (ys < H))[:, None] & ((xs >= 0) & (xs < W))[None, :])
        ref = ref.transpose(-1, -2) if g.transpose else ref  # the window's orientation, as for images
        ref = torch.flip(ref, [d for d, f in ((-2, g.vflip), (-1, g.hflip)) if f]) if g.vflip or g.hflip else ref
        out = apply_features(feat, g, (H, W), stride)
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)


# -- catalog and datasets ---------------------------------------------------------------------
def test_carve_validation_seeded_disjoint():
    ids = [f"i{i}" for i in range(50)]
    tr, va = carve_validation(ids, 0.1, 0)
    assert len(va) == 5 and not set(tr) & set(va) and set(tr) | set(va) == set(ids)
    assert carve_validation(ids, 0.1, 0) == (tr, va) and carve_validation(ids, 0.1, 1) != (tr, va)


def test_build_splits_combines_datasets(tmp_path):
    a, b = _dataset(tmp_path / "a"), _dataset(tmp_path / "b", n=5)
    cfg = load_config(None, [f"data.datasets=[{{root: {a}, train_split: splits/train.txt, test_split: splits/test.txt}},"
                             f" {{root: {b}, train_split: splits/train.txt, test_split: splits/test.txt}}]",
                             "data.val_fraction=0.3"])
    s = build_splits(cfg.data)
    assert len(s.train) + len(s.val) == 3 + 4 and len(s.test) == 2
    assert {r.key.split("/")[0] for r in s.test} == {"a", "b"}
    pts = load_points(cfg.data, [s.train[0].folder, s.test[-1].folder])
    assert set(pts) == {"a", "b"} and pts["a"]["im0"].tolist() == [[5, 6]]


def test_crop_dataset_replays_epoch(tiny_synthetic):
    cfg = load_config(None, [f"data.datasets=[{{root: {tiny_synthetic}}}]"])
    bank = ImageBank(build_splits(cfg.data).train)
    norm = Normalization.from_images([bank.image(i) for i in range(len(bank))])
    ds = CropDataset(bank, lambda i: bank.mask(i).astype(np.float32), norm, crop=32, seed=5)
    ds.set_epoch(2)
    a = ds[3]
    ds.set_epoch(3)
    b = ds[3]
    ds.set_epoch(2)
    assert torch.equal(a["image"], ds[3]["image"]) and not torch.equal(a["image"], b["image"])
    assert a["image"].shape == a["target"].shape == (1, 32, 32)
    # image and target went through the same geometry
    g = ds.geometry(3)
    np.testing.assert_array_equal(a["target"][0].numpy(), apply_array(bank.mask(3).astype(np.float32), g))
