"""Tests for the seeded synthetic IRSTD dataset generator."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from semprior_core.data import synthetic
from semprior_core.data.synthetic import GENERATOR_VERSION, SyntheticConfig, generate, render, render_sample

EIGHT = np.ones((3, 3), dtype=bool)
SMALL = SyntheticConfig(n_train=5, n_test=3, seed=11, size_range=(120, 200))


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _read_split(root: Path, name: str) -> list[str]:
    raw = (root / "splits" / "50_50" / f"{name}.txt").read_bytes()
    assert raw.endswith(b"\n") and b"\r" not in raw and b"\n\n" not in raw
    return raw.decode().splitlines()


def _load(root: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    img, msk = Image.open(root / "images" / f"{name}.png"), Image.open(root / "masks" / f"{name}.png")
    assert img.mode == "L" and msk.mode == "L"
    return np.asarray(img), np.asarray(msk)


@pytest.fixture(scope="module")
def default_ds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """The default 72-image dataset, generated once, with its CPU time (wall time suffers on a shared machine)."""
    root = tmp_path_factory.mktemp("syn") / "default"
    t0 = time.process_time()
    generate(root, SyntheticConfig())
    return root, time.process_time() - t0


# ------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_train": 0, "n_test": 0},
        {"n_train": -1},
        {"n_train": 2.5},
        {"height": 20},
        {"size_range": (300, 200)},
        {"sizes": ((256, 16),)},
        {"empty_fraction": 1.0},
        {"max_targets": 0},
        {"min_target_area": 0},
        {"min_target_area": 90, "max_target_area": 80},
        {"support_threshold": 1.0},
        {"min_separation": 0},
        {"dim_fraction": 0.8, "bright_fraction": 0.5},
        {"noise_std": -1.0},
        {"seed": -3},
    ],
)
def test_config_rejects_invalid(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SyntheticConfig(**kwargs)


def test_config_normalises_lists_to_tuples() -> None:
    cfg = SyntheticConfig(size_range=[100, 150], sizes=[[100, 130], [96, 200]])
    assert cfg.size_range == (100, 150)
    assert cfg.sizes == ((100, 130), (96, 200))
    assert cfg.n_images == 72
    hash(cfg)  # frozen and hashable


# ------------------------------------------------------------------ render


def test_render_shapes_and_types() -> None:
    image, mask = render(np.random.default_rng(0), 77, 131, SyntheticConfig())
    assert image.shape == mask.shape == (77, 131)
    assert image.dtype == np.uint8 and mask.dtype == bool
    assert image.std() > 1.0  # a textured scene, not a constant


def test_render_is_deterministic_in_rng() -> None:
    cfg = SyntheticConfig()
    a = render_sample(np.random.default_rng(5), 100, 120, cfg, n_targets=3)
    b = render_sample(np.random.default_rng(5), 100, 120, cfg, n_targets=3)
    c = render_sample(np.random.default_rng(6), 100, 120, cfg, n_targets=3)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("seed", range(6))
def test_targets_are_separate_components_matching_the_target_list(seed: int) -> None:
    cfg = SyntheticConfig(max_targets=8, min_separation=3)
    s = render_sample(np.random.default_rng(seed), 128, 112, cfg, n_targets=8)
    lab, n = ndimage.label(s.mask, structure=EIGHT)
    assert n == len(s.targets) == 8
    by_centroid = sorted((t.centroid, t.area) for t in s.targets)
    measured = sorted((ndimage.center_of_mass(lab == k), int((lab == k).sum())) for k in range(1, n + 1))
    for (c_t, a_t), (c_m, a_m) in zip(by_centroid, measured, strict=True):
        assert a_t == a_m and 1 <= a_t <= 80
        assert np.allclose(c_t, c_m, atol=1e-9)
    # Chebyshev gap between any two supports is more than min_separation pixels.
    for k in range(1, n + 1):
        grown = ndimage.binary_dilation(lab == k, EIGHT, iterations=cfg.min_separation)
        assert set(np.unique(lab[grown])) <= {0, k}


def test_empty_sample_and_area_bounds() -> None:
    cfg = SyntheticConfig(min_target_area=20, max_target_area=30, max_targets=4)
    assert not render_sample(np.random.default_rng(1), 96, 96, cfg, n_targets=0).mask.any()
    for seed in range(4):
        s = render_sample(np.random.default_rng(seed), 160, 160, cfg, n_targets=4)
        assert all(20 <= t.area <= 30 for t in s.targets)
        assert {t.kind for t in s.targets} <= {"gaussian", "ellipse", "irregular"}  # points cannot reach 20 px
    with pytest.raises(ValueError):
        render_sample(np.random.default_rng(0), 96, 96, cfg, n_targets=5)


def test_target_kinds_and_contrasts_vary() -> None:
    cfg = SyntheticConfig(noise_std=2.0)
    targets = [t for seed in range(30)
               for t in render_sample(np.random.default_rng(seed), 128, 128, cfg, n_targets=3).targets]
    assert {t.kind for t in targets} == set(synthetic.TARGET_KINDS)
    amps = np.array([t.amplitude for t in targets])
    assert amps.min() < 10.0 and amps.max() > 60.0  # dim (near the noise floor) and bright ones
    assert min(t.area for t in targets) <= 3 and max(t.area for t in targets) >= 40


# ------------------------------------------------------------------ generate: determinism and safety


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", SMALL)
    b = generate(tmp_path / "b", SMALL)
    c = generate(tmp_path / "c", SyntheticConfig(n_train=5, n_test=3, seed=12, size_range=(120, 200)))
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert len(ha) == 8 + 8 + 2 + 1
    assert ha == hb
    images = [k for k in ha if k.startswith("images/")]
    assert all(ha[k] != hc[k] for k in images)


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate(foreign, SMALL)
    with pytest.raises(FileExistsError, match="not written by this generator"):
        generate(foreign, SMALL, overwrite=True)
    assert (foreign / "keep.txt").read_text() == "precious"

    root = generate(tmp_path / "ds", SMALL)
    before = _hashes(root)
    with pytest.raises(FileExistsError):
        generate(root, SMALL)
    assert _hashes(root) == before
    other = SyntheticConfig(n_train=5, n_test=3, seed=99, size_range=(120, 200))
    generate(root, other, overwrite=True)
    assert _hashes(root) != before and "seed: 99" in (root / "README.md").read_text()

    empty = tmp_path / "empty"
    empty.mkdir()
    generate(empty, SMALL)  # an existing empty folder is fine
    assert _hashes(empty) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "empty", "foreign"]  # no temp folders left


def test_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = synthetic.render_sample

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "render_sample", failing)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "ds", SMALL)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ generate: the default dataset


def test_default_generation_is_fast(default_ds: tuple[Path, float]) -> None:
    assert default_ds[1] < 10.0


def test_layout_splits_and_readme(default_ds: tuple[Path, float]) -> None:
    root = default_ds[0]
    train, test = _read_split(root, "train"), _read_split(root, "test")
    ids = [f"syn_{i:04d}" for i in range(72)]
    assert len(train) == 48 and len(test) == 24
    assert not set(train) & set(test) and sorted(train + test) == ids
    assert sorted(p.stem for p in (root / "images").iterdir()) == ids
    assert sorted(p.stem for p in (root / "masks").iterdir()) == ids
    readme = (root / "README.md").read_text()
    assert readme.startswith(synthetic.README_MARKER)
    assert "SYNTHETIC" in readme and GENERATOR_VERSION in readme and "seed: 0" in readme
    assert '"max_target_area": 80' in readme


def test_masks_binary_sizes_and_components(default_ds: tuple[Path, float]) -> None:
    root = default_ds[0]
    sizes, n_empty, areas = [], 0, []
    for name in (p.stem for p in sorted((root / "images").iterdir())):
        image, mask = _load(root, name)
        assert image.shape == mask.shape
        assert set(np.unique(mask)) <= {0, 255}
        sizes.append(image.shape)
        lab, n = ndimage.label(mask > 0, structure=EIGHT)
        assert n <= 4
        n_empty += n == 0
        areas += np.bincount(lab.ravel())[1:].tolist()
    # Exact, split-stratified empty count: round(0.08 * 48) + round(0.08 * 24).
    assert n_empty == 4 + 2
    assert 1 <= min(areas) and max(areas) <= 80 and len(areas) > 72
    n_base = sum(s == (256, 256) for s in sizes)
    assert 0.5 * 72 < n_base < 0.9 * 72
    others = [s for s in sizes if s != (256, 256)]
    assert all(160 <= v <= 320 for s in others for v in s)
    assert any(s[0] != s[1] for s in others) and any(s[0] % 32 or s[1] % 32 for s in others)


def test_targets_locally_brighter_but_not_globally_brightest(default_ds: tuple[Path, float]) -> None:
    """Learnable (brighter than the ring around them) but not by a global threshold (clutter is brighter)."""
    root = default_ds[0]
    local_wins, below_clutter, images_with_brighter_clutter = [], [], 0
    for name in (p.stem for p in sorted((root / "images").iterdir())):
        image, mask = _load(root, name)
        image, mask = image.astype(np.float64), mask > 0
        if not mask.any():
            continue
        clutter_max = image[~ndimage.binary_dilation(mask, EIGHT, iterations=6)].max()
        lab, n = ndimage.label(mask, structure=EIGHT)
        peaks = ndimage.maximum(image, lab, range(1, n + 1))
        for k in range(1, n + 1):
            comp = lab == k
            ring = ndimage.binary_dilation(comp, EIGHT, iterations=4) & ~ndimage.binary_dilation(comp, EIGHT) & ~mask
            local_wins.append(image[comp].mean() > image[ring].mean())
        below_clutter += [p < clutter_max for p in peaks]
        images_with_brighter_clutter += bool(np.any(np.asarray(peaks) < clutter_max))
    assert np.mean(local_wins) >= 0.9
    assert 0.1 <= np.mean(below_clutter) <= 0.97
    assert images_with_brighter_clutter >= 5
