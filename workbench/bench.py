"""``semprior bench``: parameters, MACs, training and inference speed, peak memory per backbone.

Speed goals are measured here, never asserted in timed tests. MACs come from torch's own
FLOP counter (``torch.utils.flop_counter``; MACs = FLOPs / 2). The measuring functions return
rows; :func:`bench_tables` yields them as :class:`Table` s, which :func:`print_table` and
:func:`markdown` show.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.table import Table as RichTable
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


@dataclass(frozen=True)
class Table:
    """One result table of ``semprior bench``: a title and its rows (column -> value, every row with the same
    columns in the same order). Numbers show with ``formats[column]`` where given, floats otherwise with
    ``float_format``."""

    title: str
    rows: list[dict[str, Any]]
    float_format: str = ".3f"
    formats: dict[str, str] = field(default_factory=dict)

    def columns(self) -> list[str]:
        return list(self.rows[0])

    def cells(self) -> list[list[str]]:
        """The rows as text, as the printed and the markdown tables show them."""

        def cell(column: str, value: Any) -> str:
            if column in self.formats:
                return format(value, self.formats[column])
            return format(value, self.float_format) if isinstance(value, float) else str(value)

        return [[cell(c, r[c]) for c in self.columns()] for r in self.rows]


@dataclass(frozen=True)
class BenchPlan:
    """What ``semprior bench`` measures. Always the backbones (default: all registered) at ``size``², batch
    ``batch``, ``steps`` timed steps; each other field adds its tables when set:

    ``teacher`` (a VFM): the SCAM teacher with cached vs live features. ``methods`` (a VFM): whole methods per
    backbone (``method_backbones``, default the backbones) and a semprior step's cost factor by factor.
    ``metrics_data`` (a dataset folder): the metrics on its test split. ``deploy``: the deployed student's latency
    (``checkpoint``'s, default an untrained first backbone) and, with ``run``, the int8 metric change on that
    run's test split. ``cache`` (a VFM): building its feature cache, old path vs new, and its encoder per engine
    (torch, onnxruntime, bfloat16, onnxruntime int8). ``dashboard`` (a folder of runs): the dashboard's first
    render with 20 of them. ``label_windows`` (a label-evolving run): a label update's predictions, whole images
    vs the points' windows grown by each of ``margins``. ``crops`` (dataset folders): how often 128² training and
    meta-validation crops hold a target, placed anywhere vs as training places them.
    """

    backbones: list[str] | None = None
    size: int = 256
    batch: int = 8
    steps: int = 5
    teacher: str | None = None
    methods: str | None = None
    method_backbones: list[str] | None = None
    metrics_data: str | None = None
    deploy: bool = False
    checkpoint: str | None = None
    run: str | None = None
    cache: str | None = None
    dashboard: str | None = None
    label_windows: str | None = None
    margins: Sequence[int] = (40, 64)
    crops: Sequence[str] = ()


def bench_tables(device: torch.device, plan: BenchPlan) -> Iterator[Table]:
    """The tables of ``plan`` measured on ``device``, each yielded as soon as it is measured."""
    torch.manual_seed(0)
    names = plan.backbones or list_backbones()
    yield Table(f"backbones at {plan.size}², batch {plan.batch}"
                + ("" if device.type == "cuda" else " (peak_MiB on CPU: the process's resident-set peak so far, "
                   "an upper bound for every row after the first)"),
                [bench_backbone(n, plan.size, plan.batch, plan.steps, device) for n in names])
    if plan.teacher:
        yield Table(f"SCAM teacher (unet): cached VFM features vs VFM every step ({plan.teacher})",
                    [bench_teacher_features(plan.teacher, plan.size, plan.batch, plan.steps)])
    if plan.methods:
        import tempfile

        rows = []
        for name in plan.method_backbones or names:
            rows += bench_methods(method_configs(name, plan.methods),
                                  Path(tempfile.mkdtemp(prefix="semprior-bench-")))
        yield Table("training images/s per method and backbone (one process, embedded synthetic data, "
                    "128² crops, batch 8, label updates and meta-steps included)", rows)
        first = (plan.method_backbones or names)[0]
        rows = bench_methods(semprior_cost_configs(first, plan.methods),
                             Path(tempfile.mkdtemp(prefix="semprior-bench-")), epochs=4)
        for prev, row in zip([None, *rows], rows):
            row["cost_vs_supervised"] = 1 / row.pop("ratio_to_supervised")
            row["adds"] = row["cost_vs_supervised"] - (prev["cost_vs_supervised"] if prev else 1.0)
        yield Table(f"cost of a semprior step, factor by factor ({first}, {plan.methods}, 128² crops, batch 8; "
                    "each row adds one factor to the row above; cost in supervised steps)", rows)
    if plan.metrics_data:
        yield Table(f"metric evaluation (IoU, nIoU, Pd, Fa) on the test split of {plan.metrics_data}",
                    [bench_metrics(plan.metrics_data)])
    if plan.cache:
        yield Table(f"VFM feature cache build ({plan.cache}, 448 px input, blocks 3/6/9): batched on intra-op "
                    "threads vs one image per worker thread, interleaved in one process",
                    bench_feature_cache(plan.cache))
        from workbench.vfm_bench import bench_vfm_engines

        yield Table(f"VFM encoder engines ({plan.cache}, 256² images at 448 px input, blocks 3/6/9, interleaved "
                    "in one process; deviations relative to the float32 torch features, worst block)",
                    bench_vfm_engines(plan.cache))
    if plan.dashboard:
        yield Table(f"dashboard first render, 20 runs copied from {plan.dashboard} (fresh process each)",
                    [bench_dashboard(plan.dashboard)])
    if plan.label_windows:
        from workbench.label_window_bench import bench_label_windows

        yield Table(f"label-update predictions of {plan.label_windows} (last.pt, its last labels, training "
                    "split): whole images vs the points' bounding box grown by a margin (labels.predict_margin); "
                    "labels after one update of the run's rule from each",
                    bench_label_windows(plan.label_windows, plan.margins))
    if plan.crops:
        from workbench.crop_bench import crop_hits

        yield Table("128² crops holding a target pixel (dense masks judge; 25 crops per image; 'like training': "
                    "centred on a point with data.target_prob, jittered by data.target_jitter)",
                    [row for data in plan.crops for row in crop_hits(data)], formats={"with_target_pct": ".1f",
                                                                              "positive_px_pct": ".3f"})
    if plan.deploy:
        from workbench.deploy_bench import deploy_tables

        yield from deploy_tables(checkpoint=plan.checkpoint, backbone=(plan.backbones or ["unet"])[0],
                                 repeats=plan.steps, run=plan.run)


def print_table(console, table: Table) -> None:
    """``table`` as a rich table on ``console``."""
    out = RichTable(title=table.title)
    for c in table.columns():
        out.add_column(c, justify="right")
    for cells in table.cells():
        out.add_row(*cells)
    console.print(out)


def markdown(tables: list[Table], device: torch.device, command: str = "semprior bench",
             commit: str | None = None) -> str:
    """The tables as the markdown of ``semprior bench --out``, headed by what measured them (the command line
    and commit, so that the file can be regenerated)."""
    at = f" at commit {commit[:10]}" if commit else ""
    md = [f"Measured by `{command}` on {device} ({torch.get_num_threads()} threads){at}.", ""]
    for t in tables:
        cols = t.columns()
        md += [f"### {t.title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        md += ["| " + " | ".join(cells) + " |" for cells in t.cells()] + [""]
    return "\n".join(md) + "\n"


def method_configs(backbone: str, vfm: str) -> dict[str, list[str]]:
    """Supervised, LESPS and semprior configs of one backbone; SCAM on its last three encoder stages."""
    n_stages = len(create_backbone(backbone).feature_info)
    options = "model.options={widths: [8, 16, 32, 64]}" if backbone == "unet" else "model.options={}"
    common = [f"model.backbone={backbone}", options, "data.crop=128", "train.threads=0"]
    return {
        "supervised": [*common, "labels.rule=fixed"],
        "lesps": [*common, "labels.rule=lesps", "labels.start_epoch_frac=0.0", "labels.update_every=1"],
        f"semprior ({vfm})": [*common, "method.name=semprior", f"vfm.name={vfm}",
                              f"scam.stages={list(range(max(0, n_stages - 3), n_stages))}"],
    }


def semprior_cost_configs(backbone: str, vfm: str, meta_every: int = 8) -> dict[str, list[str]]:
    """The semprior step built up factor by factor from supervised training of the same backbone: the second
    network (teacher, distillation, no VFM), then SCAM on cached VFM features, then the bilevel meta-step
    every ``meta_every`` steps (the CPU protocol's)."""
    configs = method_configs(backbone, vfm)
    sp = configs[f"semprior ({vfm})"]
    return {
        "supervised": configs["supervised"],
        "+ second network (teacher, distillation; SCAM and meta-step off)":
            [*sp, "scam.enabled=false", "semprior.reweight=false"],
        f"+ SCAM on cached {vfm} features": [*sp, "semprior.reweight=false"],
        f"+ meta-step every {meta_every} steps (the full semprior step)": [*sp, f"semprior.meta_every={meta_every}"],
    }


def bench_methods(configs: dict[str, list[str]], run_root: Path, epochs: int = 1) -> list[dict]:
    """Training images/s of whole methods on the embedded synthetic data, measured in one process.

    Each entry trains ``epochs`` timed epochs after one warm-up epoch (which also builds the VFM
    feature cache), so the cost of a method step — teacher, student and the amortised bilevel
    step, label updates included — is compared with plain supervised training of the same backbone.
    """
    from semprior_core.config import load_config
    from semprior_core.engine import Trainer

    rows = []
    for name, overrides in configs.items():
        cfg = load_config(None, [*overrides, f"train.epochs={epochs + 1}", "train.eval_every=1000"])
        trainer = Trainer(cfg, run_root / name, progress=False)
        trainer._train_epoch(0)  # warm-up: caches, allocator
        t0 = time.perf_counter()
        n = 0
        for e in range(1, epochs + 1):
            n += trainer._train_epoch(e)["steps"] * cfg.data.batch_size
        trainer.close()
        rows.append({"backbone": cfg.model.backbone, "method": name, "train_img_s": n / (time.perf_counter() - t0)})
    base = rows[0]["train_img_s"]
    for r in rows:
        r["ratio_to_supervised"] = r["train_img_s"] / base
    return rows


def bench_metrics(data_root: str, repeats: int = 3) -> dict:
    """Seconds to score a dataset's test split (IoU, nIoU, Pd, Fa) from ready probability maps.

    The predictions are the ground-truth masks shifted by one pixel, so components match and
    miss as they would for a real detector; the network's own time is not counted.
    """
    from semprior_core.config import DataConfig, DatasetSpec
    from semprior_core.data.catalog import build_splits
    from semprior_core.data.dataset import ImageBank
    from semprior_core.evaluation.metrics import evaluate

    splits = build_splits(DataConfig(datasets=[DatasetSpec(root=str(data_root))]))
    bank = ImageBank(splits.test)
    gts = [bank.mask(i) for i in range(len(bank))]
    preds = [np.roll(g, 1, axis=1).astype(np.float32) for g in gts]
    t = min(_timed_once(lambda: evaluate(preds, gts)) for _ in range(repeats))
    return {"images": len(gts), "pixels_M": sum(g.size for g in gts) / 1e6, "seconds": t,
            "ms_per_image": t / len(gts) * 1e3}


def _timed_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_feature_cache(vfm_name: str = "dinov2_vits14", size: int = 256, images: int = 8, rounds: int = 3,
                        layers: tuple[int, ...] = (3, 6, 9), input_size: int = 448) -> list[dict]:
    """Building the VFM feature cache: batched through torch's intra-op threads (the path before issue 19,
    ``workers=1``) vs one image per worker thread (the default), interleaved in one process.

    Each round builds ``images`` synthetic ``size``² images into a cold cache per path, the order of the
    paths alternating between rounds. ``max_abs_diff`` compares the stored float16 features of the two
    paths, ``max_abs_feature`` gives their scale.
    """
    import tempfile

    from semprior_core.data.synthetic import SyntheticConfig, render
    from semprior_core.vfm import create_vfm
    from semprior_core.vfm.cache import FeatureCache

    rng = np.random.default_rng(0)
    arrays = [render(rng, size, size, SyntheticConfig())[0].astype(np.float32) / 255 for _ in range(images)]
    vfm = create_vfm(vfm_name, input_size=input_size)
    threads = torch.get_num_threads()
    paths = {"batched, intra-op threads (old)": 1, "image per worker thread (new)": None}
    wall = dict.fromkeys(paths, 0.0)
    cpu = dict.fromkeys(paths, 0.0)
    with tempfile.TemporaryDirectory(prefix="semprior-bench-cache-") as tmp:
        caches = {}
        for r in range(-1, rounds):  # round -1 warms up on two images
            order = list(paths) if r % 2 else list(paths)[::-1]
            for name in order:
                cache = FeatureCache(vfm, layers, root=Path(tmp) / f"{r}-{paths[name]}", memory=False,
                                     workers=paths[name])
                t0, c0 = time.perf_counter(), time.process_time()
                cache.build(arrays if r >= 0 else arrays[:2], progress=False)
                if r >= 0:
                    wall[name] += time.perf_counter() - t0
                    cpu[name] += time.process_time() - c0
                caches[name] = cache
        old, new = (caches[n] for n in paths)
        diff = scale = 0.0
        for arr in arrays:  # read back from disk: what training will see
            for a, b in zip(old.get(arr), new.get(arr), strict=True):
                diff = max(diff, (a.float() - b.float()).abs().max().item())
                scale = max(scale, a.float().abs().max().item())
    n = images * rounds
    base = wall[next(iter(paths))]
    return [{"vfm": vfm_name, "path": name, "workers": workers or threads, "torch_threads": threads if workers else 1,
             "img_s": n / wall[name], "cpu_s_per_img": cpu[name] / n, "ratio_to_old": base / wall[name],
             "max_abs_diff": diff, "max_abs_feature": scale} for name, workers in paths.items()]


def bench_teacher_features(vfm_name: str, size: int, batch: int, steps: int, n_cache: int = 8) -> dict:
    """Teacher training images/s with cached VFM features vs running the frozen VFM every step,
    and the one-off cost of building the cache (seconds per 1,000 images)."""
    import tempfile

    from semprior_core.config import load_config
    from semprior_core.data.synthetic import SyntheticConfig, render
    from semprior_core.data.transforms import Geometry, apply_features
    from semprior_core.networks import build_teacher
    from semprior_core.vfm.cache import open_cache

    tmp = tempfile.mkdtemp(prefix="semprior-bench-cache-")  # a cold cache: the build cost is real
    cfg = load_config(None, [f"vfm.name={vfm_name}", "model.options={widths: [8, 16, 32, 64]}",
                             "scam.stages=[1, 2, 3]", f"vfm.cache_dir={tmp}"])
    rng = np.random.default_rng(0)
    images = [render(rng, size, size, SyntheticConfig())[0].astype(np.float32) / 255 for _ in range(batch)]
    cache = open_cache(cfg.vfm)
    t0 = time.perf_counter()
    cache.build(images[:n_cache], progress=False)
    build_per_1000 = (time.perf_counter() - t0) / min(n_cache, len(images)) * 1000
    feats = [cache.get(im) for im in images]
    teacher = build_teacher(cfg)
    opt = torch.optim.AdamW(teacher.parameters(), 1e-3)
    x = torch.from_numpy(np.stack(images))[:, None]
    g = Geometry(0, 0, size, size)

    def step(batch_feats):
        loss = teacher(x, batch_feats).sigmoid().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def cached():
        step([torch.stack([apply_features(f[i].float(), g, (size, size)) for f in feats]) for i in range(len(cfg.vfm.layers))])

    def live():
        out = cache.vfm(x, cfg.vfm.layers, pooled=False).features
        step([torch.stack([apply_features(o[b], g, (size, size)) for b in range(len(o))]) for o in out])

    t_cached, t_live = _timed(cached, steps), _timed(live, steps)
    return {"vfm": vfm_name, "cached_img_s": batch / t_cached, "live_vfm_img_s": batch / t_live,
            "speedup": t_live / t_cached, "cache_build_s_per_1000": build_per_1000}


def bench_dashboard(run_root: str | Path, runs: int = 20) -> dict:
    """Seconds to the dashboard's first render with ``runs`` runs, each in a fresh process (imports timed
    apart): building the app and the Bokeh document of its first tab, as the server does for a browser's
    first request (``first_render_s``), the same again for a second session (``second_render_s``), and the
    first HTTP response of a served dashboard (``served_s``). The runs are the first ``runs`` under
    ``run_root``, or, when there are fewer, copies of them (round robin, without ``last.pt``)."""
    import json
    import shutil
    import subprocess
    import sys
    import tempfile
    import textwrap

    from workbench.inspect import expand_runs

    found = [r.path for r in expand_runs([run_root])]
    if not found:
        raise ValueError(f"no run directory (a folder with config.yaml) in {run_root}")
    render = textwrap.dedent("""
        import json, sys, time
        t0 = time.perf_counter()
        from workbench.dashboard import build_app
        t1 = time.perf_counter()
        def render():
            t = time.perf_counter()
            build_app(json.loads(sys.argv[1])).get_root()
            return time.perf_counter() - t
        first = render()
        print(json.dumps({"import_s": t1 - t0, "first_render_s": first, "second_render_s": render()}))
    """)
    served = textwrap.dedent("""
        import json, sys, time, urllib.request
        from workbench.dashboard import serve
        server = serve(json.loads(sys.argv[1]))
        t = time.perf_counter()
        with urllib.request.urlopen(server.url, timeout=600) as resp:
            resp.read()
        print(json.dumps({"served_s": time.perf_counter() - t}))
        server.stop()
    """)
    with tempfile.TemporaryDirectory(prefix="semprior-bench-dashboard-") as tmp:
        dirs = found[:runs] if len(found) >= runs else [
            shutil.copytree(found[i % len(found)], Path(tmp) / f"run{i:02d}", ignore=shutil.ignore_patterns("last.pt"))
            for i in range(runs)]
        out = {"runs": runs}
        for code in (render, served):
            proc = subprocess.run([sys.executable, "-c", code, json.dumps([str(d) for d in dirs])],
                                  capture_output=True, text=True, check=True)
            out |= json.loads(proc.stdout.strip().splitlines()[-1])
    return out
