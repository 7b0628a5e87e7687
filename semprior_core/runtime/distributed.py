"""Multi-process helpers for ``torchrun``: a no-op when torch.distributed is not initialised.

Gradients are averaged by an explicit all-reduce after ``backward`` rather than by
wrapping networks in DDP, so that the teacher's encode/SCAM/decode split and the
functional look-ahead of the bilevel step see plain modules. Shared state (cluster
weights, pseudo-masks) is computed on rank 0 and broadcast, so every rank agrees.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as tdist
from torch.utils.data import Sampler


def is_active() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def rank() -> int:
    return tdist.get_rank() if is_active() else 0


def world_size() -> int:
    return tdist.get_world_size() if is_active() else 1


def init_from_env(backend: str | None = None) -> bool:
    """Initialise from torchrun's environment variables; returns whether it did."""
    if is_active() or "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) < 2:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    tdist.init_process_group(backend=backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return True


class ShardSampler(Sampler[int]):
    """Every rank draws the same seeded permutation and takes every world_size-th index."""

    def __init__(self, n: int, seed: int, rank_: int, world: int):
        self.n, self.seed, self.rank, self.world = n, seed, rank_, world

    def __iter__(self) -> Iterator[int]:
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed)).tolist()
        perm += perm[: (-len(perm)) % self.world]  # pad so all ranks take the same number of steps
        return iter(perm[self.rank :: self.world])

    def __len__(self) -> int:
        return -(-self.n // self.world)


def shard_sampler(n: int, generator: torch.Generator) -> ShardSampler:
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    return ShardSampler(n, seed, rank(), world_size())


def sync_gradients(params: list[torch.nn.Parameter]) -> None:
    if not is_active():
        return
    for p in params:
        if p.grad is not None:
            tdist.all_reduce(p.grad, op=tdist.ReduceOp.SUM)
            p.grad /= world_size()


def broadcast_state(networks: dict[str, torch.nn.Module], buffers_only: bool = False) -> None:
    """Copy rank 0's buffers (BatchNorm statistics) — and parameters unless ``buffers_only`` — to
    every rank, as DDP's ``broadcast_buffers`` does, so checkpoints agree across ranks."""
    if not is_active():
        return
    for net in networks.values():
        tensors = list(net.buffers()) if buffers_only else [*net.parameters(), *net.buffers()]
        for t in tensors:
            tdist.broadcast(t.data, src=0)


def average(values: dict[str, float]) -> dict[str, float]:
    """Mean of scalar logs over ranks (same keys on every rank)."""
    if not is_active() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
    return {k: float(v) / world_size() for k, v in zip(keys, t.tolist())}


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not is_active():
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_tensor(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    if is_active():
        tdist.broadcast(t, src=src)
    return t


def assert_same_state(networks: dict[str, torch.nn.Module], where: str) -> None:
    """Raise if any rank's weights differ from rank 0's (a cheap checksum per network)."""
    if not is_active():
        return
    device = next(next(iter(networks.values())).parameters()).device  # nccl needs CUDA tensors
    sums = torch.tensor(
        [float(sum(p.detach().double().sum() for p in net.state_dict().values() if p.is_floating_point()))
         for net in networks.values()],
        dtype=torch.float64,
        device=device,
    )
    ref = sums.clone()
    tdist.broadcast(ref, src=0)
    if not torch.equal(ref, sums):
        raise RuntimeError(f"rank {rank()} weights diverged from rank 0 at {where}")
