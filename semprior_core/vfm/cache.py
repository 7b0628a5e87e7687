"""Frozen VFM features of full, unaugmented images, computed once and stored fp16 on disk.

Training crops and flips these maps together with the image (:func:`semprior_core.data.transforms.apply_features`)
so the VFM never runs in the training loop. Layout::

    <root or cache_dir()/features>/<vfm>-<weights_id[:16]>-in<input_size>-L<layers>/
        meta.json              what the directory holds (full weights id, sizes, layers)
        <sha256>.pt            one image: {"layers", "shape", "features": [(C, h, w) fp16, ...]}

Files are named by a content hash of the image (float32 bytes + shape): a renamed file hits, a changed pixel
misses. The directory name carries everything that changes the features, so a cache from another VFM, other
weights or another input size is never reused.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..config import RunConfig, VFMConfig
from ..data.dataset import FeatureSource, ImageBank
from ..io import atomic_write, atomic_write_json
from ..run_policy import uses_vfm
from ..store.paths import cache_dir
from . import contrast as _contrast  # noqa: F401  (registers the hand-made "contrast" backend)
from .frozen import FrozenVFM
from .registry import create_vfm

FORMAT_VERSION = 1


def image_key(image: np.ndarray) -> str:
    """sha256 of the image as float32 (shape and bytes): the per-image file name."""
    arr = _as_image(image)
    digest = hashlib.sha256(f"float32{arr.shape}".encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()


def _as_image(image: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(image, dtype=np.float32)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"expected a grey image of shape HxW, got shape {arr.shape}")
    return arr


def key_dir_name(vfm: FrozenVFM, layers: Sequence[int]) -> str:
    wid = re.sub(r"[^A-Za-z0-9_.-]", "_", vfm.weights_id[:16])
    return f"{vfm.name}-{wid}-in{vfm.input_size}-L{'-'.join(str(i) for i in layers)}"


def _vfm_device(vfm: FrozenVFM) -> torch.device:
    ref = next(iter(vfm.parameters()), None)
    if ref is None:
        ref = next(iter(vfm.buffers()), None)
    return ref.device if ref is not None else torch.device("cpu")


class FeatureCache:
    """Features of ``layers`` (1-based VFM blocks, this order) per full image; in memory too when ``memory``.

    :meth:`build` on the CPU runs ``workers`` images at once (default: ``torch.get_num_threads()``), each
    on its own thread with one torch thread; ``workers=1``, or a VFM on another device, runs each batch
    through torch's intra-op threads instead (see :meth:`build`).
    """

    def __init__(
        self,
        vfm: FrozenVFM,
        layers: Sequence[int],
        root: str | Path | None = None,
        memory: bool = True,
        workers: int | None = None,
    ) -> None:
        self.vfm, self.layers = vfm, [int(i) for i in layers]
        if not self.layers:
            raise ValueError("FeatureCache: layers must be non-empty")
        if workers is not None and workers < 1:
            raise ValueError(f"FeatureCache: workers must be >= 1, got {workers}")
        self.workers = workers
        base = Path(root).expanduser() if root is not None else cache_dir() / "features"
        self.dir = base / key_dir_name(vfm, self.layers)
        self.memory = memory
        self._mem: dict[str, list[Tensor]] = {}
        self.hits = self.misses = 0
        self._meta_ok = False
        self._check_meta()

    def meta(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "vfm": self.vfm.name,
            "weights_id": self.vfm.weights_id,
            "input_size": self.vfm.input_size,
            "patch_size": self.vfm.patch_size,
            "embed_dim": self.vfm.embed_dim,
            "layers": self.layers,
            "dtype": "float16",
            "image_key": "sha256 of the float32 image bytes, prefixed by its shape",
        }

    def _check_meta(self) -> None:
        """Refuse a directory whose meta.json describes other features (a truncated weights id colliding)."""
        path = self.dir / "meta.json"
        if not path.exists():
            return
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return  # unreadable: rewritten with the next file
        if found != self.meta():
            raise ValueError(
                f"{self.dir}: meta.json describes other features ({found}) than this cache ({self.meta()}); "
                "remove the directory or use another cache root"
            )
        self._meta_ok = True

    def _write_meta(self) -> None:
        if not self._meta_ok:
            atomic_write_json(self.dir / "meta.json", self.meta())
            self._meta_ok = True

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.pt"

    def get(self, image: np.ndarray) -> list[Tensor]:
        """Features (C, h, w) fp16 on the CPU, one per layer; computed and stored on a miss."""
        image = _as_image(image)
        key = image_key(image)
        feats = self._lookup(key)
        if feats is not None:
            self.hits += 1
            return feats
        self.misses += 1
        return self._compute_and_store([key], [image])[0]

    def _lookup(self, key: str) -> list[Tensor] | None:
        if key in self._mem:
            return self._mem[key]
        path = self.path(key)
        if not path.exists():
            return None
        try:
            feats = self._read(path)
        except Exception as exc:  # any unreadable file is recomputed, never fatal
            warnings.warn(f"{path}: unreadable feature cache file ({exc!r}); recomputing", stacklevel=3)
            return None
        if self.memory:
            self._mem[key] = feats
        return feats

    def _read(self, path: Path) -> list[Tensor]:
        data = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(data, dict) or data.get("layers") != self.layers:
            raise ValueError(f"expected a dict for layers {self.layers}")
        feats = data.get("features")
        if (
            not isinstance(feats, list)
            or len(feats) != len(self.layers)
            or not all(isinstance(f, Tensor) and f.ndim == 3 and f.dtype == torch.float16 for f in feats)
        ):
            raise ValueError("expected one (C, h, w) float16 tensor per layer")
        return feats

    def _features(self, images: list[np.ndarray]) -> list[list[Tensor]]:
        """Run the VFM on images of one shape as a batch: per image, its (C, h, w) fp16 CPU features."""
        batch = torch.from_numpy(np.stack(images)[:, None]).to(_vfm_device(self.vfm))
        with torch.no_grad():
            out = self.vfm(batch, self.layers, pooled=False).features
        # clone: saving a view would write the whole batch's storage into every file
        return [[f[b].detach().to("cpu", torch.float16).contiguous().clone() for f in out] for b in range(batch.shape[0])]

    def _compute_and_store(
        self, keys: list[str], images: list[np.ndarray], pool: ThreadPoolExecutor | None = None
    ) -> list[list[Tensor]]:
        """Features of images of one shape, one image per ``pool`` thread or else as one batch; one file each."""
        if pool is None:
            computed = self._features(images)
        else:
            computed = [f[0] for f in pool.map(lambda im: self._features([im]), images)]
        self._write_meta()
        results = []
        for key, feats, image in zip(keys, computed, images, strict=True):
            if not all(torch.isfinite(f).all() for f in feats):
                raise FloatingPointError(
                    f"{self.vfm.name}: features overflow float16 (|x| > 65504) for image {key[:12]}"
                )
            payload = {"layers": self.layers, "shape": list(image.shape), "features": feats}
            atomic_write(self.path(key), lambda fh, p=payload: torch.save(p, fh))
            if self.memory:
                self._mem[key] = feats
            results.append(feats)
        return results

    def build(self, images: Iterable[np.ndarray], progress: bool = True, batch_size: int = 8) -> None:
        """Precompute every image's features, grouping images of equal size; present ones are skipped.

        On the CPU with more than one worker, the images of a group run side by side, one per worker
        thread with one torch thread each. Intra-op threads meet at every op and spin while they wait;
        when other processes share the cores, that spinning is paid for (ViT-S at 448 px on 2 shared
        cores: 2 intra-op threads took 1.2-1.4x the CPU time per image of 2 workers, and 1.2-1.3x the
        wall time; :func:`workbench.bench.bench_feature_cache`). A whole image per thread never waits. Its features
        equal the batched ones within float32 rounding, far below the stored float16 step
        (tests/test_cache.py), so caches written either way share one key.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        from tqdm.auto import tqdm

        total = len(images) if hasattr(images, "__len__") else None  # type: ignore[arg-type]
        bar = tqdm(total=total, desc=f"features {self.dir.name}", disable=not progress, unit="img")
        workers = self.workers or torch.get_num_threads()
        parallel = workers > 1 and _vfm_device(self.vfm).type == "cpu"
        threads = torch.get_num_threads()
        # set_num_threads in a worker also sets the default of threads started later: restored below
        pool = ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) if parallel else None
        try:
            # at least one image per worker in every group that is not a shape's last
            for keys, arrs in self._batches(images, max(batch_size, workers) if parallel else batch_size, bar):
                self.misses += len(keys)
                self._compute_and_store(keys, arrs, pool)
                bar.update(len(keys))
        finally:
            if pool is not None:
                pool.shutdown()
                torch.set_num_threads(threads)
            bar.close()

    def _batches(
        self, images: Iterable[np.ndarray], batch_size: int, bar
    ) -> Iterator[tuple[list[str], list[np.ndarray]]]:
        pending: dict[tuple[int, ...], list[tuple[str, np.ndarray]]] = {}
        seen: set[str] = set()
        for image in images:
            arr = _as_image(image)
            key = image_key(arr)
            if key in seen or self._lookup(key) is not None:
                self.hits += 1
                bar.update(1)
                continue
            seen.add(key)
            group = pending.setdefault(arr.shape, [])
            group.append((key, arr))
            if len(group) == batch_size:
                yield [k for k, _ in group], [a for _, a in group]
                group.clear()
        for group in pending.values():
            if group:
                yield [k for k, _ in group], [a for _, a in group]


def feature_source(cache: FeatureCache, bank: ImageBank) -> FeatureSource:
    """Index -> full-image features of ``bank.image(index)``, as the datasets expect."""
    return lambda index: cache.get(bank.image(index))


def features_for(cfg: RunConfig, banks: list[ImageBank]) -> list[FeatureSource | None]:
    """Cached VFM feature sources for ``banks``; Nones when the run reads no VFM features
    (:func:`~semprior_core.run_policy.uses_vfm`), so no VFM is built for it."""
    if not uses_vfm(cfg):
        return [None] * len(banks)
    cache = open_cache(cfg.vfm)
    return [feature_source(cache, bank) for bank in banks]


def open_cache(vfm_cfg: VFMConfig, device: str | torch.device | None = None) -> FeatureCache | None:
    """The cache of a run's VFM config (the VFM is built on ``device``, CPU by default); None for ``none``."""
    if vfm_cfg.name == "none":
        return None
    vfm = create_vfm(vfm_cfg.name, weights=vfm_cfg.weights, input_size=vfm_cfg.input_size, seed=vfm_cfg.seed)
    if device is not None:
        vfm = vfm.to(device)
    return FeatureCache(vfm, vfm_cfg.layers, root=vfm_cfg.cache_dir)


def warm_cache(cfg, device: str | torch.device | None = None, progress: bool = True) -> FeatureCache | None:
    """Build the feature cache of every image a run config reads (train, val, test); None without a VFM.

    Runs that share a cache can then train side by side without computing the same features twice.
    """
    from ..data.catalog import build_splits

    cache = open_cache(cfg.vfm, device=device)
    if cache is None:
        return None
    splits = build_splits(cfg.data)
    bank = ImageBank(splits.train + splits.val + splits.test)
    cache.build((bank.image(i) for i in range(len(bank))), progress=progress)
    return cache
