"""``semprior report RUNS... --out docs/results.md``: results tables, significance and figures built
from run directories only (never a number the runs did not produce).

- One table per dataset: every method's test-split IoU, nIoU, Pd, Fa as mean ± std over seeds,
  each run's checkpoint chosen on its validation split; classical rows say they were tuned on
  dense validation masks.
- The ratio of each point-supervised method's IoU to full supervision's.
- Paired significance of the semprior student against every other method of the same dataset:
  a bootstrap over test images of the dataset-IoU difference (seeds pooled per image) and a
  Wilcoxon signed-rank test on per-image IoU (:mod:`semprior_core.evaluation.significance`).
- The project's targets (semprior vs LESPS, PAL, full supervision, and each ablation), met or not.
- Figures referenced from the markdown: validation curves, pseudo-mask quality over label updates,
  cluster-weight trajectories, example predictions on test images drawn by a seeded permutation.
- Generalisation (:mod:`workbench.generalisation`): every method trained on one dataset and scored on
  another (``semprior eval --run R --data OTHER``), false alarms per frame, Pd–Fa curves; what is missing.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from semprior_core.evaluation.significance import PairedResult, paired_bootstrap, pool_seeds  # noqa: E402
from semprior_core.io import atomic_write_text  # noqa: E402
from semprior_core.store.runs import Run  # noqa: E402
from workbench import label_quality, selection_audit  # noqa: E402
from workbench.inspect.compare import expand_runs, format_values  # noqa: E402

METRICS = ("IoU", "nIoU", "Pd", "Fa")
ABLATION_FIELDS = {"vfm": "vfm.name", "scam": "scam.enabled", "reweight": "semprior.reweight",
                   "distill": "semprior.distill", "collaborative": "semprior.collaborative"}


@dataclass
class Entry:
    """One (dataset, method, network) cell: its runs' test evaluations over seeds."""

    dataset: str
    method: str
    model: str
    note: str = ""
    runs: list[Run] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    run_seeds: list[int | None] = field(default_factory=list)  # read once per run (comparisons ask often)

    def add(self, run: Run, ev: dict) -> None:
        """One run's evaluation; its training seed (None for a classical method, which has none) is read here."""
        self.runs.append(run)
        self.evals.append(ev)
        self.run_seeds.append(None if run.info().get("kind") == "classical" else run.config().train.seed)

    def values(self, metric: str) -> list[float]:
        return [e["row"][metric] for e in self.evals]

    def per_image(self) -> tuple[np.ndarray, np.ndarray]:
        per_seed = [(np.array([p["intersection"] for p in e["per_image"]]), np.array([p["union"] for p in e["per_image"]]))
                    for e in self.evals]
        return pool_seeds(per_seed)

    def image_keys(self) -> list[str]:
        return [p["key"] for p in self.evals[0]["per_image"]]

    def seeds(self) -> list[int | None]:
        """Training seed of each run (None for a classical method, which has no training seed)."""
        return list(self.run_seeds)

    def with_seeds(self, keep: set[int]) -> Entry:
        """The cell restricted to the runs of the given training seeds."""
        kept = [i for i, s in enumerate(self.run_seeds) if s in keep]
        return Entry(self.dataset, self.method, self.model, self.note, [self.runs[i] for i in kept],
                     [self.evals[i] for i in kept], [self.run_seeds[i] for i in kept])


def describe(run: Run) -> tuple[str, str, str]:
    """(dataset, method label, note) of a run, from its config."""
    info = run.info()
    cfg = run.config()
    dataset = "+".join(d.name or Path(d.root).name for d in cfg.data.datasets)
    if info.get("kind") == "classical":
        fixed = ", ".join(f"{k}={v}" for k, v in sorted(cfg.classical.params.items()))
        return dataset, f"{cfg.classical.method} (classical{', ' + fixed if fixed else ''})", "tuned on dense validation masks"
    sup = info.get("supervision", cfg.method.supervision)
    selection = info.get("selection", {})
    kept = "final checkpoint (no selection)" if selection.get("keep") == "last" else (
        "selected on dense validation masks" if selection.get("uses_dense_val_masks") else "")
    if cfg.method.name != "semprior":
        return dataset, {"full": "full supervision", "fixed": "fixed points"}.get(sup, sup), kept
    ablations = []
    if cfg.vfm.name != "dinov2_vits14":
        ablations.append(f"vfm={cfg.vfm.name}")
    for short, key in list(ABLATION_FIELDS.items())[1:]:
        section, name = key.split(".")
        if not getattr(getattr(cfg, section), name):
            ablations.append(f"{short}=off")
    label = "semprior" + (f" [{', '.join(ablations)}]" if ablations else "")
    notes = [kept] + (["uses dense validation masks"] if cfg.semprior.val_dense else [])
    return dataset, label, "; ".join(n for n in notes if n)


def collect(paths: list[str | Path]) -> dict[str, list[Entry]]:
    """Entries per dataset from every run's saved test evaluations of its selected checkpoint."""
    cells: dict[tuple[str, str, str], Entry] = {}
    for run in expand_runs(paths):
        dataset, method, note = describe(run)
        for ev in run.evaluations():
            if ev["split"] != "test" or ev["checkpoint"] != "best":
                continue
            key = (dataset, method, ev["model"])
            cells.setdefault(key, Entry(dataset, method, ev["model"], note)).add(run, ev)
    out: dict[str, list[Entry]] = defaultdict(list)
    for e in cells.values():
        out[e.dataset].append(e)
    return dict(out)


def _order(e: Entry) -> tuple:
    rank = ["full supervision", "fixed points", "lesps", "pal"]
    return (e.method.startswith("semprior"), rank.index(e.method) if e.method in rank else 9, e.method, e.model)


def table(entries: list[Entry]) -> list[str]:
    lines = ["| method | network | seeds | epochs | chosen at | train min | IoU | nIoU | Pd | Fa ×10⁻⁶ | IoU / full | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    full = next((e for e in entries if e.method == "full supervision"), None)
    for e in sorted(entries, key=_order):
        cells = [format_values(e.values(m)) for m in METRICS]
        ratio = "–"
        if full is not None and e is not full:
            ratio = f"{statistics.fmean(e.values('IoU')) / max(statistics.fmean(full.values('IoU')), 1e-9):.2f}"
        lines.append(f"| {e.method} | {e.model} | {len(e.evals)} | {_epochs(e)} | {_chosen(e)} | {_train_minutes(e)} | " + " | ".join(cells)
                     + f" | {ratio} | {e.note} |")
    return lines


def _epochs(e: Entry) -> str:
    """Training budget of the cell's runs (– for classical methods)."""
    if e.runs[0].info().get("kind") == "classical":
        return "–"
    return ", ".join(sorted({str(r.config().train.epochs) for r in e.runs}))


def run_minutes(run: Run) -> float | None:
    """Measured wall minutes of a run's epochs, resumed parts included; None for runs that predate the timing."""
    seconds = [r.get("epoch_s") for r in run.history()]
    return sum(seconds) / 60 if seconds and None not in seconds else None


def _train_minutes(e: Entry) -> str:
    """Mean wall minutes per seed of the cell's training runs (– when classical or not timed)."""
    if e.runs[0].info().get("kind") == "classical":
        return "–"
    minutes = [run_minutes(r) for r in e.runs]
    return "–" if None in minutes else f"{statistics.fmean(minutes):.3g}"


def _chosen(e: Entry) -> str:
    """Epoch of each seed's validation-selected checkpoint: the last epoch means it was still improving."""
    epochs = [ev.get("epoch") for ev in e.evals]
    if e.runs[0].info().get("kind") == "classical" or any(ep is None for ep in epochs):
        return "–"
    return ", ".join(str(ep) for ep in epochs)


def _on_common_seeds(a: Entry, b: Entry) -> tuple[Entry, Entry] | None:
    """Two trained cells restricted to the training seeds both have (a cell with fewer seeds so far, e.g. an
    ablation of seed 0 only, then meets the same seeds, not a mix of them); None when they share none.
    Classical cells have no training seed and are kept whole."""
    sa, sb = set(a.seeds()), set(b.seeds())
    if None in sa | sb or sa == sb:
        return a, b
    if not sa & sb:
        return None
    return a.with_seeds(sa & sb), b.with_seeds(sa & sb)


def _paired(a: Entry, b: Entry, seed: int = 0) -> PairedResult | None:
    """Paired bootstrap of a − b over test images (seeds pooled per image) on the seeds both have; None when
    they differ in images or share no seed."""
    common = _on_common_seeds(a, b) if a.image_keys() == b.image_keys() else None
    if common is None:
        return None
    a, b = common
    ia, ua = a.per_image()
    ib, ub = b.per_image()
    return paired_bootstrap(ia, ua, ib, ub, n_resamples=5000, seed=seed)


def _ci(r: PairedResult) -> str:
    return f"[{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]"


def significance(entries: list[Entry], seed: int = 0) -> list[str]:
    target = next((e for e in entries if e.method == "semprior" and e.model == "student"), None)
    if target is None:
        return []
    lines = ["| semprior student vs | ΔIoU (points) | 95 % CI | p (bootstrap, one-sided) | p (Wilcoxon, per-image IoU) |",
             "|---|---|---|---|---|"]
    for other in sorted(entries, key=_order):
        r = None if other is target else _paired(target, other, seed)
        if r is not None:
            lines.append(f"| {other.method} ({other.model}) | {100 * r.diff:+.2f} | {_ci(r)} "
                         f"| {r.p_bootstrap:.4f} | {r.p_wilcoxon:.4f} |")
    return lines


def _mean(e: Entry, metric: str = "IoU") -> float:
    return statistics.fmean(e.values(metric))


def _std(e: Entry, metric: str = "IoU") -> float:
    return statistics.stdev(e.values(metric)) if len(e.evals) > 1 else 0.0


def targets(entries: list[Entry]) -> list[str]:
    """The project's targets checked against this dataset's numbers, met or not, each with the gap.

    Targets (same budget, same seeds): semprior student IoU ≥ LESPS + 5 points and > PAL, with a
    std over seeds no larger than LESPS's; ≥ 0.85 × full supervision; each ablation below the full method with a paired bootstrap CI
    excluding 0;
    and the learned floor: full supervision ≥ the white top-hat + 5 points (issue 19's protocol-v2 targets).
    """
    def cell(method: str, model: str = "student") -> Entry | None:
        return next((e for e in entries if e.method == method and e.model == model), None)

    sp = cell("semprior")
    if sp is None:
        return []
    rows = []

    def check(name: str, ok: bool, detail: str) -> None:
        rows.append(f"| {name} | {'met' if ok else '**not met**'} | {detail} |")

    lesps, pal = cell("lesps"), cell("pal")
    full = cell("full supervision")
    if lesps is not None:
        gap = _mean(sp) - _mean(lesps)
        check("IoU ≥ LESPS + 5", gap >= 5, f"semprior − LESPS = {gap:+.2f} IoU")
        if min(len(sp.evals), len(lesps.evals)) > 1:  # a spread needs two seeds
            check("std over seeds ≤ LESPS's", _std(sp) <= _std(lesps), f"{_std(sp):.2f} vs {_std(lesps):.2f}")
    if pal is not None:
        gap = _mean(sp) - _mean(pal)
        check("IoU > PAL", gap > 0, f"semprior − PAL = {gap:+.2f} IoU")
    if full is not None:
        ratio = _mean(sp) / max(_mean(full), 1e-9)
        check("IoU ≥ 0.85 × full supervision", ratio >= 0.85, f"ratio {ratio:.2f}")
        tophat = cell("tophat (classical)", "tophat")
        if tophat is not None:
            gap = _mean(full) - _mean(tophat)
            check("full supervision ≥ top-hat + 5 (the learned floor)", gap >= 5, f"full − top-hat = {gap:+.2f} IoU")
    for e in sorted(entries, key=_order):
        if e.method.startswith("semprior [") and e.model == "student":
            r, gap = _paired(sp, e), SeedGap.of(sp, e)
            spread = "" if r is None or r.ci_low <= 0 or gap.beyond_spread else (
                f"; but within the seed std ({gap.spread:.2f}): the prior verdict below does not count it")
            check(f"{e.method[len('semprior '):]} below the full method, paired CI excluding 0",
                  r is not None and r.ci_low > 0,
                  f"full − ablation = {gap.text()}"
                  + (f"; paired {100 * r.diff:+.2f}, 95 % CI {_ci(r)}" if r is not None else "; not on the same images")
                  + spread)
    if not rows:
        return []
    return ["| target (semprior student unless named) | status | measured |", "|---|---|---|", *rows]


@dataclass(frozen=True)
class SeedGap:
    """a − b of seed means on the seeds both cells have, against the larger of their seed stds (the bootstrap
    resamples images, not training seeds; the full method's std is over all its seeds: one seed of an ablation
    cannot shrink it)."""

    diff: float | None  # None when the cells share no seed
    seeds: str  # " of seed(s) …" when the common seeds are fewer than a's, else ""
    spread: float

    @classmethod
    def of(cls, a: Entry, b: Entry) -> SeedGap:
        spread = max(_std(a), _std(b))
        common = _on_common_seeds(a, b)
        if common is None:
            return cls(None, "", spread)
        ca, cb = common
        seeds = "" if len(ca.evals) == len(a.evals) else \
            f" of seed{'s' if len(ca.evals) > 1 else ''} {', '.join(str(s) for s in ca.seeds())}"
        return cls(_mean(ca) - _mean(cb), seeds, spread)

    @property
    def beyond_spread(self) -> bool:
        return self.diff is not None and self.diff > self.spread

    def text(self) -> str:
        return "– (no common seed)" if self.diff is None else f"{self.diff:+.2f} IoU over seed means{self.seeds}"


PRIOR_ABLATIONS = ("semprior [scam=off]", "semprior [vfm=random_vit]")


def prior_verdict(entries: list[Entry], dataset: str) -> list[str]:
    """Whether the VFM prior carries weight here, said plainly (issue 19). It does only when the full student
    beats both the student without SCAM and the one fed a random ViT, each with a paired CI over images
    excluding 0 *and* a gap of seed means larger than either cell's seed std, since the bootstrap resamples
    images, not training seeds."""
    sp = next((e for e in entries if e.method == "semprior" and e.model == "student"), None)
    pairs = [(e, _paired(sp, e)) for e in entries if sp is not None and e.model == "student" and e.method in PRIOR_ABLATIONS]
    pairs = [(e, r, SeedGap.of(sp, e)) for e, r in pairs if r is not None]
    if not pairs:
        return []

    def lower_without(r: PairedResult, gap: SeedGap) -> bool:
        return r.ci_low > 0 and gap.beyond_spread

    def effect(r: PairedResult, gap: SeedGap) -> str:
        if lower_without(r, gap):
            return "lower without it"
        if r.ci_low > 0:
            return "lower over images, but within the seed spread"
        return "higher without it" if r.ci_high < 0 else "no different"

    parts = "; ".join(f"{e.method[len('semprior '):]}: paired full − ablation = {100 * r.diff:+.2f} IoU, 95 % CI "
                      f"{_ci(r)}, {gap.text()} against a seed std of up to {gap.spread:.2f} ({effect(r, gap)})"
                      for e, r, gap in pairs)
    lower = {e.method: lower_without(r, gap) for e, r, gap in pairs}
    scam_off, random_vit = (lower.get(m) for m in PRIOR_ABLATIONS)
    not_bearing = f"**The semantic prior is not load-bearing on {dataset} at this budget**: "
    not_yet = f"**Whether the semantic prior is load-bearing on {dataset} is not established yet**: "
    scam_helps, features_help = ("SCAM helps (the student without it scores lower)",
                                 "the pretrained features beat a random ViT's")
    if scam_off and random_vit:
        head = f"The semantic prior is load-bearing on {dataset}: the student trained without it scores lower"
    elif scam_off and random_vit is None:
        head = not_yet + scam_helps + "; the random-ViT control is not run yet"
    elif random_vit and scam_off is None:
        head = not_yet + features_help + "; the scam=off control is not run yet"
    elif scam_off:
        head = not_bearing + scam_helps + (", but the student fed a randomly initialised ViT's features does not "
                                           "score reliably lower, so the gain is not shown to be the VFM's semantics")
    elif random_vit:
        head = not_bearing + features_help + ", but the student without SCAM does not score reliably lower"
    else:
        head = not_bearing + "the student trained without the VFM's features does not score reliably lower"
    return [f"{head} (test split, seeds pooled per image for the CI). {parts}."]


def examples(entries: list[Entry], out_dir: Path, rel_to: Path, n: int = 4) -> list[str]:
    """Test images drawn by a seeded permutation, with every method's first-seed student detections."""
    from workbench.inspect.figures import predictions_figure
    from workbench.inspect.handle import open_run
    from workbench.inspect.predictions import example_keys, example_predictions

    learned = [e for e in sorted(entries, key=_order) if e.model == "student" and e.runs[0].info().get("kind") != "classical"]
    runs = {e.method: e.runs[0].path for e in learned if open_run(e.runs[0].path).checkpoint_path() is not None}
    if not runs:  # results/ folders keep metrics and label histories, not checkpoints
        return ["No example predictions: none of these runs' checkpoints is in this checkout."] if learned else []
    keys = example_keys(next(iter(runs.values())), n)
    fig = predictions_figure(example_predictions(runs, keys))
    path = out_dir / "examples.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return ["Test images drawn by a seeded permutation (not chosen by result), cropped to 64 px around their "
            "largest target; first column: ground truth outlined in cyan; then each method's first-seed student, "
            "detections at p > 0.5 in orange.", "",
            f"![examples]({path.relative_to(rel_to)})"]


def figures(entries: list[Entry], out_dir: Path, rel_to: Path) -> list[str]:
    """One figure set per method (its first seed's run): curves, label quality, cluster weights."""
    from workbench.inspect.clusters import cluster_weights
    from workbench.inspect.figures import cluster_weights_figure, curves_figure, quality_figure
    from workbench.inspect.labels import label_quality
    from workbench.inspect.overview import curves

    lines = []
    seen: set[Path] = set()
    for e in sorted(entries, key=_order):
        run = e.runs[0]
        if run.path in seen or run.info().get("kind") == "classical":
            continue
        seen.add(run.path)
        slug = "".join(c if c.isalnum() else "-" for c in f"{e.dataset}-{e.method}").strip("-")
        figs = [("curves", curves_figure(curves(run.path)))]
        if len(run.labels()):
            figs.append(("labels", quality_figure(label_quality(run.path))))
        if len(run.clusters()):
            figs.append(("clusters", cluster_weights_figure(cluster_weights(run.path))))
        lines += [f"#### {e.method} ({run.path.parent.name}/{run.path.name})", ""]
        for kind, fig in figs:
            path = out_dir / f"{slug}-{kind}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=90, bbox_inches="tight")
            plt.close(fig)
            lines.append(f"![{kind}]({path.relative_to(rel_to)})")
        lines.append("")
    return lines


def machine() -> str:
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    import os

    return (f"commit `{commit}`, {platform.platform()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
            f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}")


def run_commits(data: dict[str, list[Entry]]) -> str:
    """The git commits the runs were trained at (from each run's environment.json), and how many record none."""
    commits, unrecorded = set(), set()
    for entries in data.values():
        for e in entries:
            for run in e.runs:
                commit = run.environment().get("git_commit")
                if commit:
                    commits.add(commit[:7])
                else:
                    unrecorded.add(run.path)
    named = ", ".join(f"`{c}`" for c in sorted(commits)) or "–"
    return named + (f" ({len(unrecorded)} run(s) record no commit)" if unrecorded else "")


def build_report(paths: list[str | Path], out: Path, command: str, with_figures: bool = True, note: str = "") -> Path:
    data = collect(paths)
    out = Path(out)
    lines = ["# Results", "", f"Produced by `{command}` ({machine()}); runs trained at commit {run_commits(data)}.", "",
             *([note, ""] if note else []),
             "Every number is on the **test split**, from the checkpoint each run kept: the epoch it chose on its "
             "**validation split** (carved from training data), or its final epoch where the run says "
             "`train.select=last` ('chosen at' and 'Kept checkpoints' say which); mean ± std over seeds. Nothing "
             "here was typed by hand.", ""]
    if not data:
        lines.append("No evaluated runs were found (run `semprior eval --run RUN --split test` first).")
    for dataset, entries in sorted(data.items()):
        lines += [f"## {dataset}", "", *table(entries), ""]
        goals = targets(entries)
        if goals:
            lines += ["### Targets", "", *goals, ""]
        verdict = prior_verdict(entries, dataset)
        if verdict:
            lines += ["### Is the semantic prior load-bearing?", "", *verdict, ""]
        sig = significance(entries)
        if sig:
            lines += ["### Paired significance (bootstrap over test images, seeds pooled per image)", "", *sig, ""]
        masks = label_quality.section(sorted(entries, key=_order))
        if masks:
            lines += ["### Pseudo-masks", "", *masks, ""]
        kept = selection_audit.section(sorted(entries, key=_order))
        if kept:
            lines += ["### Kept checkpoints", "", *kept, ""]
        if with_figures:
            fig_dir = out.parent / "figures" / dataset
            lines += ["### Example predictions", "", *examples(entries, fig_dir, out.parent), ""]
            lines += ["### Figures", "", *figures(entries, fig_dir, out.parent), ""]
    from workbench.generalisation import section  # imports this module: late, to avoid a cycle

    lines += section(paths, out.parent / "figures" / "generalisation", out.parent, with_figures)
    return atomic_write_text(out, "\n".join(lines) + "\n")


def entries_json(paths: list[str | Path]) -> str:
    """The collected cells as JSON (for tests and scripts)."""
    data = collect(paths)
    return json.dumps({d: [{"method": e.method, "model": e.model, "seeds": len(e.evals),
                            **{m: e.values(m) for m in METRICS}} for e in es] for d, es in data.items()},
                      indent=2, sort_keys=True)
