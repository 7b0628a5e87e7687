"""Overlapping tiles for frames too large to predict whole, merged by centre-crop stitching.

Each output pixel is taken from exactly one tile: the one in whose *owned* window it lies, the owned
windows meeting at the middle of each overlap. A pixel is therefore at least ``overlap // 2`` pixels from
the border of the tile that predicts it, unless that border is the image border (where whole-image
inference has no context either). Tile starts are multiples of the network's size divisor, so the
pooling grid of every tile coincides with the whole image's and a tile's last row/column is padded
exactly as the whole image is. For a network whose receptive field fits in ``overlap // 2`` pixels the
stitched map then equals the whole-image map up to float rounding; networks with global context
(channel attention over the whole map: ACM, ALCNet, DNANet) see less context in a tile, so their maps
agree only approximately. Stitching is preferred to weighted blending because every value — and every
target's peak score — is a real network output rather than an average of two different predictions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TileConfig:
    """Tile side and the minimum overlap between neighbouring tiles, in pixels."""

    tile: int = 512
    overlap: int = 64

    def __post_init__(self) -> None:
        if not isinstance(self.tile, int) or self.tile < 16:
            raise ValueError(f"tile must be an int >= 16, got {self.tile!r}")
        if not isinstance(self.overlap, int) or not 0 <= self.overlap <= self.tile // 2:
            raise ValueError(f"overlap must be an int in [0, tile/2] = [0, {self.tile // 2}], got {self.overlap!r}")


@dataclass(frozen=True)
class Span:
    """One tile along one axis: it reads [start, stop) and owns (writes) [own_start, own_stop)."""

    start: int
    stop: int
    own_start: int
    own_stop: int


def axis_spans(length: int, tile: int, overlap: int, divisor: int = 1) -> list[Span]:
    """Tiles covering ``[0, length)``: starts are multiples of ``divisor``, neighbours overlap >= ``overlap``.

    The fewest evenly spread tiles are used; the last one ends at ``length`` and may be up to
    ``divisor - 1`` pixels shorter than ``tile``.
    """
    if length < 1 or divisor < 1:
        raise ValueError(f"length and divisor must be >= 1, got {length} and {divisor}")
    if tile < 2 * divisor or tile - overlap < divisor:
        raise ValueError(f"tile {tile} with overlap {overlap} leaves no room for a stride of divisor {divisor}")
    if length <= tile:
        return [Span(0, length, 0, length)]
    last = math.ceil((length - tile) / divisor) * divisor  # start of the tile that ends at `length`
    n = math.ceil(last / (tile - overlap)) + 1
    while True:  # rounding starts down to the divisor may widen a gap; then one more tile is needed
        starts = [i * last // (n - 1) // divisor * divisor for i in range(n)]
        if max(b - a for a, b in zip(starts, starts[1:])) <= tile - overlap:
            break
        n += 1
    stops = [min(s + tile, length) for s in starts[:-1]] + [length]
    # ownership changes hands in the middle of each overlap
    cuts = [0] + [(starts[i + 1] + stops[i]) // 2 for i in range(n - 1)] + [length]
    return [Span(starts[i], stops[i], cuts[i], cuts[i + 1]) for i in range(n)]


def plan_tiles(shape: tuple[int, int], cfg: TileConfig, divisor: int = 1) -> list[tuple[Span, Span]]:
    """(row span, column span) of every tile of an HxW frame, in raster order."""
    rows = axis_spans(shape[0], cfg.tile, cfg.overlap, divisor)
    cols = axis_spans(shape[1], cfg.tile, cfg.overlap, divisor)
    return [(r, c) for r in rows for c in cols]


def iter_tiles(image: np.ndarray, cfg: TileConfig, divisor: int = 1) -> Iterator[tuple[Span, Span, np.ndarray]]:
    for r, c in plan_tiles(image.shape[:2], cfg, divisor):
        yield r, c, image[r.start : r.stop, c.start : c.stop]


def predict_tiled(
    predict: Callable[[np.ndarray], np.ndarray], image: np.ndarray, cfg: TileConfig, divisor: int = 1
) -> np.ndarray:
    """Stitch ``predict`` (HxW -> HxW float map) over the tiles of ``image`` into one HxW float32 map."""
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D (HxW), got shape {image.shape}")
    out = np.empty(image.shape, dtype=np.float32)
    for r, c, tile in iter_tiles(image, cfg, divisor):
        pred = np.asarray(predict(tile))
        if pred.shape != tile.shape:
            raise ValueError(f"predict returned shape {pred.shape} for a tile of shape {tile.shape}")
        out[r.own_start : r.own_stop, c.own_start : c.own_stop] = pred[
            r.own_start - r.start : r.own_stop - r.start, c.own_start - c.start : c.own_stop - c.start
        ]
    return out
