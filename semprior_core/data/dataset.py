"""Torch datasets over a list of samples: random-crop training items and whole-image items.

The training target comes from a callable (dense mask, fixed point mask or the current
pseudo-mask of the label store), so the dataset never decides what supervision is.
Augmentation randomness is keyed by (seed, epoch, index): a resumed run replays the
same crops and flips as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from .catalog import SampleRef
from .transforms import (
    Geometry,
    apply_array,
    apply_features,
    fit_to_divisor,
    padded_geometry,
    sample_geometry,
)

if TYPE_CHECKING:
    from ..config import DataConfig

FeatureSource = Callable[[int], list[torch.Tensor]]  # index -> full-image VFM feature maps (C, h, w)


def crop_placement(data: DataConfig, centres: Callable[[int], np.ndarray] | None) -> dict:
    """:class:`CropDataset` keywords that place crops as training does: centred on one of ``centres(i)`` with
    probability ``data.target_prob``, shifted by up to ``data.target_jitter``; uniform when ``centres`` is None."""
    return {"centres": centres, "target_prob": data.target_prob if centres is not None else 0.0,
            "jitter": data.target_jitter}


@dataclass(frozen=True)
class Normalization:
    """Scalar mean/std computed from the training images (no hard-coded dataset constants)."""

    mean: float
    std: float

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return (image - self.mean) / self.std

    @classmethod
    def from_images(cls, images: Sequence[np.ndarray]) -> Normalization:
        total = sum(float(im.sum(dtype=np.float64)) for im in images)
        count = sum(im.size for im in images)
        mean = total / count
        var = sum(float(((im - mean) ** 2).sum(dtype=np.float64)) for im in images) / count
        return cls(mean=mean, std=max(var**0.5, 1e-6))


class ImageBank:
    """Full images (and dense masks, when asked) of a sample list, loaded once and kept in memory."""

    def __init__(self, refs: Sequence[SampleRef], images: Sequence[np.ndarray] | None = None):
        self.refs = list(refs)
        # Images may be given already decoded (inference on a user's folder, notebooks).
        self._images: dict[int, np.ndarray] = dict(enumerate(images)) if images is not None else {}
        self._masks: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.refs)

    def keys(self) -> list[str]:
        return [r.key for r in self.refs]

    def image(self, i: int) -> np.ndarray:
        if i not in self._images:
            self._images[i] = self.refs[i].folder.load_image(self.refs[i].sid)
        return self._images[i]

    def shape(self, i: int) -> tuple[int, int]:
        return self.image(i).shape  # type: ignore[return-value]

    def mask(self, i: int) -> np.ndarray:
        """Dense mask; only for full supervision, evaluation and logged diagnostics."""
        if i not in self._masks:
            ref = self.refs[i]
            self._masks[i] = ref.folder.load_mask(ref.sid, expect_shape=self.shape(i))
        return self._masks[i]

    def has_masks(self) -> bool:
        return all(self.has_mask(i) for i in range(len(self)))

    def has_mask(self, i: int) -> bool:
        ref = self.refs[i]
        return ref.folder.mask_exists(ref.sid)


def _item(image: np.ndarray, norm: Normalization, g: Geometry, index: int) -> dict:
    raw = apply_array(image, g)
    # Padding is filled with the mean so that it normalises to 0, as the network sees it.
    normed = apply_array(norm(image), g)
    return {
        "image": torch.from_numpy(normed[None].astype(np.float32)),
        "raw": torch.from_numpy(raw[None].astype(np.float32)),
        "index": index,
    }


class CropDataset(Dataset):
    """Random ``crop``² training windows with flips/rot90 applied jointly to every input.

    Item ``j`` of an epoch is a crop of image ``plan[j]`` (default: one item per image, ``plan[j] = j``), so an
    epoch may hold several crops of one image. With ``centres`` (image index -> (N, 2) label points), a crop is
    centred on one of them with probability ``target_prob`` (:func:`sample_geometry`).
    """

    def __init__(
        self,
        bank: ImageBank,
        target: Callable[[int], np.ndarray],
        norm: Normalization,
        *,
        crop: int,
        flips: bool = True,
        rot90: bool = True,
        seed: int = 0,
        features: FeatureSource | None = None,
        feature_stride: int = 8,
        plan: Sequence[int] | None = None,
        centres: Callable[[int], np.ndarray] | None = None,
        target_prob: float = 0.0,
        jitter: float = 0.75,
    ):
        self.bank, self.target, self.norm = bank, target, norm
        self.crop, self.flips, self.rot90, self.seed = crop, flips, rot90, seed
        self.features, self.feature_stride = features, feature_stride
        self.plan = list(range(len(bank))) if plan is None else [int(i) for i in plan]
        self.centres, self.target_prob, self.jitter = centres, target_prob, jitter
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.plan)

    def geometry(self, item: int) -> Geometry:
        index = self.plan[item]
        # Keyed by the item's position, not the image: repeated images get distinct crops, and a resumed
        # epoch replays the same ones.
        rng = np.random.default_rng([self.seed, self.epoch, item])
        centres = self.centres(index) if self.centres is not None and self.target_prob > 0 else None
        return sample_geometry(rng, self.bank.shape(index), self.crop, self.flips, self.rot90,
                               centres=centres, target_prob=self.target_prob, jitter=self.jitter)

    def __getitem__(self, item: int) -> dict:
        index = self.plan[item]
        g = self.geometry(item)
        image = self.bank.image(index)
        out = _item(image, self.norm, g, index)
        out["target"] = torch.from_numpy(apply_array(self.target(index).astype(np.float32), g)[None])
        if self.features is not None:
            out["feats"] = [
                apply_features(f.float(), g, image.shape, self.feature_stride) for f in self.features(index)
            ]
        return out


def epoch_plan(active: Sequence[int], samples: int, rng: np.random.Generator) -> list[int]:
    """Image indices of one epoch's ``samples`` crops: whole shuffled passes over ``active``, the last one cut.

    Every active image is seen ⌊samples/len(active)⌋ or one more times; ``samples = 0`` means one pass.
    """
    active = [int(i) for i in active]
    if not active:
        return []
    samples = samples or len(active)
    passes = -(-samples // len(active))
    return [active[k] for _ in range(passes) for k in rng.permutation(len(active))][:samples]


class FullImageDataset(Dataset):
    """Whole images padded to the network's size divisor (batch size 1: sizes differ), or windows of them."""

    def __init__(
        self,
        bank: ImageBank,
        norm: Normalization,
        divisor: int,
        *,
        features: FeatureSource | None = None,
        feature_stride: int = 8,
    ):
        self.bank, self.norm, self.divisor = bank, norm, divisor
        self.features, self.feature_stride = features, feature_stride

    def __len__(self) -> int:
        return len(self.bank)

    def __getitem__(self, index: int) -> dict:
        return self.item(index)

    def item(self, index: int, window: Geometry | None = None) -> dict:
        """Image ``index`` padded whole, or only ``window`` of it, fitted to the divisor (``item["window"]``)."""
        image = self.bank.image(index)
        g = padded_geometry(image.shape, self.divisor) if window is None else fit_to_divisor(
            window, image.shape, self.divisor)
        item = _item(image, self.norm, g, index)
        item["shape"] = image.shape
        item["window"] = g
        if self.features is not None:
            item["feats"] = [apply_features(f.float(), g, image.shape, self.feature_stride) for f in self.features(index)]
        return item


def collate(items: list[dict]) -> dict:
    """Stack tensors; lists of feature maps become lists of stacked tensors."""
    out: dict = {}
    for key in items[0]:
        vals = [it[key] for it in items]
        if key == "feats":
            out[key] = [torch.stack([v[i] for v in vals]) for i in range(len(vals[0]))]
        elif isinstance(vals[0], torch.Tensor):
            out[key] = torch.stack(vals)
        elif isinstance(vals[0], int):
            out[key] = torch.tensor(vals, dtype=torch.long)
        else:
            out[key] = vals
    return out
