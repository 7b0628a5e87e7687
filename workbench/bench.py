"""``semprior bench``: parameters, MACs, training and inference speed, peak memory per backbone.

Speed goals are measured here, never asserted in timed tests. MACs come from torch's own
FLOP counter (``torch.utils.flop_counter``; MACs = FLOPs / 2).
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import torch
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from semprior_core.models import create_backbone, list_backbones


def macs(net: torch.nn.Module, size: int) -> float:
    x = torch.zeros(1, 1, size, size)
    with FlopCounterMode(display=False) as counter:
        net(x)
    return counter.get_total_flops() / 2


def _timed(fn, steps: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t0) / steps


def bench_backbone(name: str, size: int, batch: int, steps: int, device: torch.device) -> dict:
    net = create_backbone(name).to(device)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    x = torch.randn(batch, 1, size, size, device=device)
    y = (torch.rand(batch, 1, size, size, device=device) > 0.99).float()

    def train_step():
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    net.train()
    t_train = _timed(train_step, steps)
    net.eval()
    x1 = x[:1]
    with torch.no_grad():
        t_inf = _timed(lambda: net(x1), steps)
    return {
        "backbone": name,
        "params_M": sum(p.numel() for p in net.parameters()) / 1e6,
        "GMACs": macs(net.cpu(), size) / 1e9,
        "train_img_s": batch / t_train,
        "infer_ms": t_inf * 1e3,
        # CPU: the process's peak resident set so far (an upper bound for this backbone)
        "peak_MiB": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_bench(args, console) -> list[dict]:
    from semprior_core.device import resolve_device

    device = resolve_device("auto")
    torch.manual_seed(0)
    rows = [bench_backbone(n, args.size, args.batch, args.steps, device) for n in (args.backbones or list_backbones())]
    cols = ["backbone", "params_M", "GMACs", "train_img_s", "infer_ms", "peak_MiB"]
    table = Table(title=f"backbones at {args.size}², batch {args.batch}, {device} ({torch.get_num_threads()} threads)")
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(*[f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols])
    console.print(table)
    if args.out:
        md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        md += ["| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |" for r in rows]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(md) + "\n")
    return rows
