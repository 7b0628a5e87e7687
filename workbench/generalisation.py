"""The generalisation section of ``semprior report``: methods trained on one dataset, scored on another.

Built only from saved cross-dataset evaluations (``semprior eval --run R --data OTHER``, written to
``R/eval_cross/``) of each run's validation-selected checkpoint. Per direction (trained on A → evaluated on
B): the in-dataset table layout (mean ± std over seeds), false-alarm objects per frame (all frames and
target-free frames), the area under the Pd–Fa curve, Pd per target-size and local-contrast bin (targets
pooled over seeds), paired tests of the semprior student against every other method, whether the semprior
student has fewer false-alarm objects per frame than LESPS at equal Pd, and the Pd–Fa curves as a figure.
Directions and runs still without a cross-dataset evaluation are listed, with the command that makes them.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from semprior_core.evaluation.cross_eval import cross_evaluations  # noqa: E402
from semprior_core.evaluation.detection_curves import DEFAULT_MAX_FA, CurveCounts, sum_counts, value_at_pd  # noqa: E402
from workbench.inspect.compare import expand_runs, format_values  # noqa: E402
from workbench.results import Entry, _order, collect, describe, significance, table  # noqa: E402

RUN_THRESHOLD = 0.5  # the threshold ``semprior eval`` scores at; "equal Pd" is read off the curves from there


def collect_cross(paths: list[str | Path]) -> dict[tuple[str, str], list[Entry]]:
    """Cells per (trained on, evaluated on) from every run's saved cross-dataset evaluations of ``best``
    (evaluations on the run's own data are in-domain references and left out)."""
    cells: dict[tuple[str, str, str, str], Entry] = {}
    for run in expand_runs(paths):
        _, method, note = describe(run)
        for ev in cross_evaluations(run.path):
            if ev["checkpoint"] != "best" or ev.get("same_data"):
                continue
            trained = "+".join(t["name"] for t in ev["trained_on"])
            evaluated = f"{ev['evaluated_on']['name']} ({ev['evaluated_on']['split']} split)"
            key = (trained, evaluated, method, ev["model"])
            cells.setdefault(key, Entry(f"{trained} → {evaluated}", method, ev["model"], note)).add(run, ev)
    out: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for (trained, evaluated, _, _), e in cells.items():
        out[(trained, evaluated)].append(e)
    return dict(out)


def pooled_curve(e: Entry, which: str = "all") -> CurveCounts:
    """The cell's curve counts summed over seeds (rates are then taken over all seeds' frames)."""
    return sum_counts([CurveCounts.from_dict(ev["curves"][which]) for ev in e.evals])


def _mean_std(values: list[float | None], digits: int = 2) -> str:
    return format_values([v for v in values if v is not None and np.isfinite(v)], digits)


def _pooled_bins(e: Entry, kind: str) -> list[str]:
    cells = []
    for k in range(len(e.evals[0]["bins"][kind])):
        n = sum(ev["bins"][kind][k]["n_targets"] for ev in e.evals)
        d = sum(ev["bins"][kind][k]["n_detected"] for ev in e.evals)
        cells.append(f"{100 * d / n:.1f} ({n})" if n else "– (0)")
    return cells


def false_alarm_table(entries: list[Entry]) -> list[str]:
    """False alarms, Pd–Fa area and Pd per size / contrast bin of each cell."""
    first = entries[0].evals[0]["bins"]
    size_labels = [b["label"] for b in first["size"]]
    contrast_labels = [b["label"] for b in first["contrast"]]
    head = ["method", "network", "seeds", "FA objects / frame", "FA objects / target-free frame",
            f"Pd–Fa area (Fa ≤ {DEFAULT_MAX_FA * 1e6:g}×10⁻⁶)", *(f"Pd {s}" for s in size_labels),
            *(f"Pd {c}" for c in contrast_labels)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in sorted(entries, key=_order):
        free = [ev["false_alarms"]["target_free"] for ev in e.evals]
        n_free = free[0]["n_frames"]
        cells = [e.method, e.model, str(len(e.evals)),
                 _mean_std([ev["false_alarms"]["all"]["per_frame"] for ev in e.evals]),
                 (_mean_std([f["per_frame"] for f in free]) + f" ({n_free} frames)") if n_free else "– (none)",
                 _mean_std([ev["auc"]["value"] for ev in e.evals], 3),
                 *_pooled_bins(e, "size"), *_pooled_bins(e, "contrast")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cell(entries: list[Entry], method: str) -> Entry | None:
    return next((e for e in entries if e.method == method and e.model == "student"), None)


def equal_pd_check(entries: list[Entry]) -> list[str]:
    """Semprior student vs LESPS: false-alarm objects per frame at the same Pd, on all and on target-free frames.

    The common Pd is the lower of the two students' Pd at the run threshold (seeds pooled), which both
    curves reach; each curve is read there by :func:`~semprior_core.evaluation.detection_curves.value_at_pd`.
    """
    sp, lesps = _cell(entries, "semprior"), _cell(entries, "lesps")
    if sp is None or lesps is None:
        missing = " and ".join(m for m, c in (("semprior", sp), ("LESPS", lesps)) if c is None)
        return [f"Fewer false alarms than LESPS at equal Pd: not measurable here (no {missing} student evaluation)."]
    rows = []
    curves = {name: (pooled_curve(e), pooled_curve(e, "target_free")) for name, e in (("sp", sp), ("lesps", lesps))}

    def at_run_threshold(c: CurveCounts) -> float:
        return float(c.pd()[int(np.argmin(np.abs(np.asarray(c.thresholds) - RUN_THRESHOLD)))])

    pd_star = min(at_run_threshold(all_c) for all_c, _ in curves.values())
    if not np.isfinite(pd_star) or pd_star <= 0:
        return ["Fewer false alarms than LESPS at equal Pd: not measurable (a student detects no target at "
                f"threshold {RUN_THRESHOLD})."]
    read = {}
    for name, (all_c, free_c) in curves.items():
        t = all_c.thresholds
        read[name] = (value_at_pd(t, all_c.pd(), all_c.fa_per_frame(), pd_star),
                      value_at_pd(t, all_c.pd(), free_c.fa_per_frame(), pd_star) if free_c.n_frames else float("nan"))
    for k, frames in enumerate(("all frames", "target-free frames")):
        a, b = read["sp"][k], read["lesps"][k]
        if not (np.isfinite(a) and np.isfinite(b)):
            rows.append(f"| {frames} | – | – | not measurable |")
            continue
        rows.append(f"| {frames} | {a:.2f} | {b:.2f} | {'met' if a < b else '**not met**'} ({a - b:+.2f}) |")
    return [f"False-alarm objects per frame at equal Pd = {100 * pd_star:.1f} % (the lower of the two students' "
            f"Pd at threshold {RUN_THRESHOLD}; curves pooled over seeds, read by linear interpolation in Pd):", "",
            "| frames | semprior student | LESPS student | fewer than LESPS |", "|---|---|---|---|", *rows]


def fa_objects_per_image(e: Entry) -> np.ndarray:
    """False-alarm objects of each test image at the run threshold, averaged over the cell's seeds."""
    return np.mean([[len(p["false_alarm_areas"]) for p in ev["per_image"]] for ev in e.evals], axis=0)


def paired_false_alarms(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(mean a − mean b, two-sided Wilcoxon signed-rank p) of paired per-image false-alarm counts."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("paired counts need two arrays of one, non-zero length")
    p = 1.0 if np.allclose(a, b) else float(stats.wilcoxon(a, b, zero_method="zsplit").pvalue)
    return float(a.mean() - b.mean()), p


def false_alarm_significance(entries: list[Entry]) -> list[str]:
    """The semprior student's false-alarm objects per image against every other cell's (same images)."""
    target = _cell(entries, "semprior")
    if target is None:
        return []
    lines = ["| semprior student vs | Δ FA objects / frame | p (Wilcoxon, per-image FA objects, two-sided) |",
             "|---|---|---|"]
    a = fa_objects_per_image(target)
    for other in sorted(entries, key=_order):
        if other is target or other.image_keys() != target.image_keys():
            continue
        diff, p = paired_false_alarms(a, fa_objects_per_image(other))
        lines.append(f"| {other.method} ({other.model}) | {diff:+.2f} | {p:.4f} |")
    return lines


def pd_fa_figure(curves: dict[str, CurveCounts], title: str, path: Path) -> Path:
    """Pd vs Fa (×10⁻⁶) and Pd vs false-alarm objects per frame, one line per labelled curve."""
    fig, (ax_fa, ax_obj) = plt.subplots(1, 2, figsize=(10, 4))
    for label, c in curves.items():
        style = "o" if len(set(c.n_detected)) == 1 and len(set(c.fa_pixels)) == 1 else "-"  # classical: one point
        ax_fa.plot(c.fa() * 1e6, 100 * c.pd(), style, label=label, markersize=4)
        ax_obj.plot(c.fa_per_frame(), 100 * c.pd(), style, label=label, markersize=4)
    ax_fa.set_xlim(0, 2 * DEFAULT_MAX_FA * 1e6)
    ax_fa.set_xlabel("Fa (false-alarm pixels, ×10⁻⁶)")
    ax_obj.set_xscale("symlog", linthresh=0.1)
    ax_obj.set_xlim(left=0)
    ax_obj.set_xlabel("false-alarm objects per frame")
    for ax in (ax_fa, ax_obj):
        ax.set_ylabel("Pd (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    ax_obj.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def curves_figure(entries: list[Entry], title: str, path: Path) -> Path:
    """The Pd–Fa figure of a direction: one line per cell, seeds pooled."""
    return pd_fa_figure({f"{e.method} ({e.model})": pooled_curve(e) for e in sorted(entries, key=_order)}, title, path)


def missing(paths: list[str | Path], cross: dict[tuple[str, str], list[Entry]]) -> list[str]:
    """Runs of the in-dataset tables without a cross-dataset evaluation on each other dataset, and the command."""
    in_domain = collect(paths)
    roots: dict[str, str] = {}
    for entries in in_domain.values():
        for e in entries:
            for run in e.runs:
                for spec in run.config().data.datasets:
                    roots.setdefault(spec.name or Path(spec.root).name, spec.root)
    single = sorted(d for d in in_domain if "+" not in d)
    done = {(run.path.resolve(), trained, evaluated.split(" (")[0])
            for (trained, evaluated), es in cross.items() for e in es for run in e.runs}
    lines = []
    for a in single:
        for b in single:
            if a == b:
                continue
            evaluated = {p for p, t, ev in done if t == a and ev == b}  # resolved: runs may be named relatively
            lacking = sorted({run.path for e in in_domain[a] for run in e.runs
                              if (e.model == "student" or run.info().get("kind") == "classical")
                              and run.path.resolve() not in evaluated}, key=str)
            if lacking:
                parent = os.path.commonpath([str(p) for p in lacking]) if len(lacking) > 1 else str(lacking[0])
                lines.append(f"- trained on {a}, evaluated on {b}: {len(lacking)} run(s) not evaluated; "
                             f"`semprior eval --run {parent} --data {roots.get(b, b)} --split test`")
    if not in_domain:
        lines.append("- no evaluated runs at all: train the CPU protocol (`semprior reproduce cpu --jobs 2`), then "
                     "`semprior eval --run runs/reproduce-cpu/nuaa --data ../shared/data/NUDT-SIRST` and "
                     "`semprior eval --run runs/reproduce-cpu/nudt --data ../shared/data/NUAA-SIRST`")
    return lines


def section(paths: list[str | Path], fig_dir: Path, rel_to: Path, with_figures: bool = True) -> list[str]:
    """Markdown lines of the generalisation section (it renders whatever cross evaluations exist)."""
    cross = collect_cross(paths)
    lines = ["## Generalisation: trained on one dataset, evaluated on another", "",
             "Each run's validation-selected checkpoint, with its own normalisation and threshold (0.5; classical "
             "runs: their validation-tuned setting), scored on another dataset's test split (`semprior eval --run R "
             "--data OTHER`). Mean ± std over seeds; Pd per bin pools the targets of all seeds (count in brackets); "
             "local contrast is the signal-to-clutter ratio of `semprior_core.evaluation.detection_curves.target_contrast`.", ""]
    if not cross:
        lines += ["No cross-dataset evaluations were found.", ""]
    for (trained, evaluated), entries in sorted(cross.items()):
        lines += [f"### Trained on {trained}, evaluated on {evaluated}", "", *table(entries), "",
                  *false_alarm_table(entries), "", *equal_pd_check(entries), ""]
        sig = significance(entries)
        if sig:
            lines += ["Paired significance of IoU (bootstrap over test images, seeds pooled per image):", "", *sig, ""]
        fa_sig = false_alarm_significance(entries)
        if fa_sig:
            lines += ["Paired test of false-alarm objects per image (at threshold 0.5, mean over seeds):", "",
                      *fa_sig, ""]
        if with_figures:
            slug = "".join(c if c.isalnum() else "-" for c in f"{trained}-to-{evaluated}").strip("-")
            fig = curves_figure(entries, f"trained on {trained} → evaluated on {evaluated}", fig_dir / f"{slug}-pd-fa.png")
            lines += [f"![Pd–Fa curves]({fig.relative_to(rel_to)})", ""]
    gaps = missing(paths, cross)
    if gaps:
        lines += ["### Missing", "", *gaps, ""]
    return lines
