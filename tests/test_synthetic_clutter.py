"""Target-free synthetic frames with structured clutter (``SyntheticConfig.empty_clutter``)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from semprior_core.classical.tophat import tophat
from semprior_core.data.synthetic import SyntheticConfig, generate, render_sample
from semprior_core.evaluation.metrics import components

BASE = {"height": 96, "width": 96, "size_range": None}


def _frames(n_targets: int, **kw) -> list:
    cfg = SyntheticConfig(**BASE, **kw)
    return [render_sample(np.random.default_rng([5, i]), 96, 96, cfg, n_targets=n_targets) for i in range(8)]


def test_off_by_default_and_frames_with_targets_are_unchanged():
    assert SyntheticConfig().empty_clutter == 0.0
    for plain, cluttered in zip(_frames(2), _frames(2, empty_clutter=1.0), strict=True):
        np.testing.assert_array_equal(plain.image, cluttered.image)
        np.testing.assert_array_equal(plain.mask, cluttered.mask)
    # target-free frames change, and stay target-free
    changed = [not np.array_equal(a.image, b.image) for a, b in zip(_frames(0), _frames(0, empty_clutter=1.0))]
    assert all(changed)
    assert not any(s.mask.any() for s in _frames(0, empty_clutter=1.0))


def _detections(image: np.ndarray) -> tuple[int, int]:
    """(objects, largest area) of a white top-hat (radius 4) at a fixed 45-grey-level threshold."""
    _, n, _, areas = components(tophat(image.astype(np.float32) / 255.0, radius=4) > 45 / 255)
    return n, int(areas.max()) if n else 0


def test_clutter_makes_false_alarms_a_simple_detector_falls_for():
    plain = [_detections(s.image) for s in _frames(0, clutter=0.3)]
    cluttered = [_detections(s.image) for s in _frames(0, clutter=0.3, empty_clutter=1.0)]
    assert sum(n for n, _ in cluttered) >= 2 * sum(n for n, _ in plain) + 8
    # some clutter responses are larger than any target may be (blobs above max_target_area)
    assert max(a for _, a in cluttered) > SyntheticConfig().max_target_area


@pytest.mark.parametrize("value", [-0.1, 51.0])
def test_bad_strength_is_refused(value):
    with pytest.raises(ValueError, match="empty_clutter"):
        SyntheticConfig(empty_clutter=value)


def test_written_dataset_has_cluttered_target_free_frames(tmp_path):
    cfg = SyntheticConfig(n_train=4, n_test=4, seed=2, empty_fraction=0.5, empty_clutter=1.0, **BASE)
    root = generate(tmp_path / "d", cfg)
    masks = [np.asarray(Image.open(p)) for p in sorted((root / "masks").iterdir())]
    assert sum(1 for m in masks if not m.any()) == 4  # round(0.5 * 4) per split
    assert '"empty_clutter": 1.0' in (root / "README.md").read_text()
    plain = generate(tmp_path / "p", SyntheticConfig(n_train=2, n_test=1, **BASE))
    assert "empty_clutter" not in (plain / "README.md").read_text()  # default README as before the option
