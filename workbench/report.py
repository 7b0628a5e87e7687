"""Markdown report of one run: metrics table (with the split named), curves, example figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from semprior_core.evaluation.evaluate import EvalResult, load_run, predict_bank, resolve_checkpoint, run_bank  # noqa: E402
from semprior_core.io import atomic_write_text  # noqa: E402
from semprior_core.store.label_history import LabelHistory  # noqa: E402
from semprior_core.store.runs import Run  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def curves_figure(run_dir: Path, out: Path) -> Path:
    from workbench.inspect.figures import curves_figure as figure
    from workbench.inspect.overview import curves

    return _save(figure(curves(run_dir)), out)


def examples_figure(run_dir: Path, result: EvalResult, out: Path, n: int = 4) -> Path:
    run = load_run(resolve_checkpoint(run_dir, result.checkpoint))
    bank = run_bank(run, run_dir, result.split)
    order = np.argsort([-s.n_targets for s in result.per_image])[:n]
    probs = predict_bank(run, result.model, bank, torch.device("cpu"))
    fig, axes = plt.subplots(len(order), 3, figsize=(7.5, 2.5 * len(order)), squeeze=False)
    for row, i in enumerate(order):
        for ax, img, title in zip(axes[row], (bank.image(i), bank.mask(i), probs[i]),
                                  ("image", "ground truth", f"{result.model} probability")):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{title}\n{bank.keys()[i]}" if title == "image" else title, fontsize=8)
            ax.axis("off")
    return _save(fig, out)


def labels_figure(run_dir: Path, out: Path, n: int = 4) -> Path | None:
    hist = LabelHistory(run_dir)
    if len(hist) < 1:
        return None
    first, last = hist.update(0), hist.update(-1)
    fig, axes = plt.subplots(n, 2, figsize=(5, 2.5 * n), squeeze=False)
    for row in range(min(n, len(first.keys))):
        for ax, upd in zip(axes[row], (first, last)):
            ax.imshow(upd.label(row), cmap="magma", vmin=0, vmax=1)
            ax.set_title(f"{first.keys[row]} · epoch {upd.epoch}", fontsize=8)
            ax.axis("off")
    return _save(fig, out)


def label_growth_sentence(table: list[dict]) -> str:
    """In words: how the pseudo-masks' mean IoU vs the dense masks moved from the first to the last update."""
    rows = [t for t in table if t["mean_iou_vs_gt"] is not None]
    if not rows:
        return "No dense masks to compare the pseudo-masks with."
    first, last = rows[0], rows[-1]
    change = last["mean_iou_vs_gt"] - first["mean_iou_vs_gt"]
    verb = "grew" if change > 0.005 else "shrank" if change < -0.005 else "did not change"
    return (
        f"The pseudo-masks {verb}: mean IoU vs the dense masks {first['mean_iou_vs_gt']:.3f} at epoch "
        f"{first['epoch']} (the point labels) → {last['mean_iou_vs_gt']:.3f} at epoch {last['epoch']} "
        f"({change:+.3f}, {len(rows)} label updates counted; images without a target are left out), mean area "
        f"{first['mean_area']:.1f} → {last['mean_area']:.1f} px, {last['bare_point']} of {last['images']} images "
        "still bare points. Dense masks are a diagnostic here, never used in training."
    )


def detection_lines(run_dir: Path, result: EvalResult, fig_dir: Path) -> list[str]:
    """False alarms and the Pd–Fa curve of ``result``'s network on the run's own test split, in words and a figure
    (needs the test split of a single-dataset run; other runs get no such section)."""
    from semprior_core.evaluation.cross_eval import evaluate_on, trained_on_datasets
    from semprior_core.store.runs import Run
    from workbench.generalisation import pd_fa_figure

    cfg = Run.open(run_dir).config()
    if result.split != "test" or len(cfg.data.datasets) != 1:
        return []
    (data,) = trained_on_datasets(cfg.data.datasets, cfg.data)
    res = evaluate_on(run_dir, data["root"], "test", result.model, result.checkpoint, device="cpu")
    d = res.to_dict()
    fa, auc = d["false_alarms"], d["auc"]["value"]
    free = (f"{fa['target_free']['per_frame']:.2f} on its {fa['target_free']['n_frames']} target-free frames"
            if fa["target_free"]["n_frames"] else "no target-free frame in it")
    sizes = ", ".join(f"{b['label']} {b['n_detected']}/{b['n_targets']}" for b in d["bins"]["size"])
    contrast = ", ".join(f"{b['label']} {b['n_detected']}/{b['n_targets']}" for b in d["bins"]["contrast"])
    fig = pd_fa_figure({result.model: res.curve()}, f"{run_dir.name}: {result.model}, test split",
                       fig_dir / f"pd_fa_{result.model}.png")
    return [
        f"## False alarms and Pd–Fa curve (test split, {result.model})", "",
        f"False-alarm objects per frame at threshold {res.threshold or 'of the tuned setting'}: "
        f"{fa['all']['per_frame']:.2f} over {fa['all']['n_frames']} frames, {free}. Area under the Pd–Fa curve up "
        f"to Fa {d['auc']['max_fa'] * 1e6:g}×10⁻⁶: {'–' if auc is None else f'{auc:.3f}'}. Detected/targets per "
        f"size: {sizes}; per local contrast: {contrast}.", "",
        f"![Pd–Fa]({fig.relative_to(run_dir)})",
    ]


def write_run_report(run_dir: str | Path, results: list[EvalResult], elapsed_s: float | None = None) -> Path:
    run_dir = Path(run_dir)
    fig_dir = run_dir / "report"
    info = Run.open(run_dir).info()
    sel = info["selection"]
    lines = [
        f"# Run report: {run_dir.name}",
        "",
        f"Supervision: **{info['supervision']}**. " + (
            f"Checkpoint: the **final epoch** (`train.select=last`; the validation split logs `{sel['metric']}`)."
            if sel.get("keep") == "last" else
            f"Checkpoint chosen on the **validation split carved from training data** by `{sel['metric']}`"
            + (" (uses dense validation masks)." if sel["uses_dense_val_masks"] else " (points only).")),
        "",
        *([f"Training and evaluation took {elapsed_s / 60:.1f} min of wall time.", ""] if elapsed_s else []),
        "| split | model | checkpoint | IoU | nIoU | Pd | Fa ×10⁻⁶ |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        row = r.metrics.as_row()
        lines.append(f"| {r.split} | {r.model} | {r.checkpoint} (epoch {r.epoch}) | {row['IoU']:.2f} | {row['nIoU']:.2f} "
                     f"| {row['Pd']:.2f} | {row['Fa']:.1f} |")
    lines += ["", "## Curves", "", f"![curves]({curves_figure(run_dir, fig_dir / 'curves.png').relative_to(run_dir)})"]
    lab = labels_figure(run_dir, fig_dir / "labels.png")
    if lab:
        lines += ["", "## Pseudo-masks: first vs last update", "", label_growth_sentence(LabelHistory(run_dir).table()),
                  "", f"![labels]({lab.relative_to(run_dir)})"]
    for r in results:
        ex = examples_figure(run_dir, r, fig_dir / f"examples_{r.split}_{r.model}.png")
        lines += ["", f"## Examples ({r.split} split, {r.model})", "", f"![examples]({ex.relative_to(run_dir)})"]
    if results:  # the selection network only: the teacher would need VFM features of every test image
        lines += ["", *detection_lines(run_dir, results[0], fig_dir)]
    return atomic_write_text(run_dir / "report.md", "\n".join(lines) + "\n")
