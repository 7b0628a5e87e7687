"""Matplotlib figures of the inspection views for notebooks: layout only, every number comes from a view
function of :mod:`workbench.inspect`."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .imaging import contour, overlay


def _figure(rows: int, cols: int, width: float = 3.0, height: float = 3.0) -> tuple[Figure, np.ndarray]:
    # Figure() without pyplot: no global state, nothing left open in long notebook sessions.
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    return fig, np.atleast_2d(fig.subplots(rows, cols, squeeze=False))


def _show(ax, img, title: str, **kw) -> None:
    ax.imshow(img, **({"cmap": "gray"} | kw))
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def label_figure(frame: dict[str, Any]) -> Figure:
    """Image with pseudo-mask, points and GT contour; the pseudo-mask; each network's prediction."""
    preds = frame["predictions"]
    fig, axes = _figure(1, 2 + len(preds))
    ax = axes[0]
    _show(ax[0], overlay(frame["image"], frame["pseudo_mask"], frame["gt_contour"], frame["points"]),
          f"{frame['key']}\nupdate {frame['update']}/{frame['updates'] - 1} (epoch {frame['epoch']})")
    iou = frame["iou_vs_gt"]
    _show(ax[1], frame["pseudo_mask"], f"pseudo-mask, area {frame['area']}"
          + ("" if iou is None else f"\nIoU vs GT {iou:.2f} (diagnostic)"), vmin=0, vmax=1, cmap="magma")
    for a, (name, prob) in zip(ax[2:], preds.items()):
        _show(a, prob, f"{name} probability\n{frame['checkpoint']}", vmin=0, vmax=1, cmap="magma")
    return fig


def quality_figure(rows: list[dict[str, Any]], current: int | None = None) -> Figure:
    """Mean IoU vs GT (diagnostic) and mean area of the pseudo-masks per update."""
    fig, axes = _figure(1, 2, 4.0, 2.6)
    ups = [r["update"] for r in rows]
    for ax, key, title in zip(axes[0], ("mean_iou_vs_gt", "mean_area"), ("mean IoU vs GT (diagnostic)", "mean area (px)")):
        ax.plot(ups, [np.nan if r[key] is None else r[key] for r in rows], marker="o")
        if current is not None:
            ax.axvline(current, color="tab:orange", ls="--")
        ax.set(title=title, xlabel="label update")
    return fig


def curves_figure(series: list[dict[str, Any]]) -> Figure:
    """Training losses and validation scores (validation split carved from training data) per epoch."""
    fig, axes = _figure(1, 2, 4.5, 2.8)
    for ax, group in zip(axes[0], ("training", "validation")):
        for s in series:
            if s["group"] == group:
                ax.plot(s["epoch"], s["value"], marker=".", label=s["name"])
        ax.set(title=group if group == "training" else "validation (carved from train)", xlabel="epoch")
        if ax.lines:
            ax.legend(fontsize=6)
    return fig


def cluster_weights_figure(rows: list[dict[str, Any]], selected: int | None = None) -> Figure:
    """Weight of every cluster over meta steps (the selected one bold)."""
    fig, axes = _figure(1, 1, 5.0, 2.8)
    ax = axes[0, 0]
    for c in sorted({r["cluster"] for r in rows}):
        pts = [(r["step"], r["weight"]) for r in rows if r["cluster"] == c]
        ax.plot(*zip(*pts), marker=".", lw=3 if c == selected else 1, label=f"cluster {c}")
    ax.axhline(1.0, color="gray", ls=":")
    ax.set(title="cluster weights", xlabel="optimiser step", ylabel="weight")
    if ax.lines:
        ax.legend(fontsize=6)
    return fig


def gallery_figure(items: list[dict[str, Any]], cols: int = 6) -> Figure:
    """Thumbnails of a cluster's images with their latest pseudo-masks."""
    rows = max(1, -(-len(items) // cols))
    fig, axes = _figure(rows, cols, 1.6, 1.7)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, it in zip(axes.ravel(), items):
        _show(ax, overlay(it["image"], it["pseudo_mask"]), it["key"].split("/")[-1])
    return fig


def scam_figure(layers: list[dict[str, Any]]) -> Figure:
    """Per SCAM layer: g·γ, g·β, relative feature change and the gate values."""
    fig, axes = _figure(max(1, len(layers)), 4, 2.6, 2.4)
    for ax, layer in zip(axes, layers):
        tag = f"stage {layer['stage']} (VFM block {layer['vfm_layer']})"
        for a, key, cmap in zip(ax[:3], ("gamma", "beta", "change"), ("RdBu_r", "RdBu_r", "viridis")):
            m = layer[key]
            lim = float(np.abs(m).max()) or 1.0
            kw = {"vmin": -lim, "vmax": lim} if cmap == "RdBu_r" else {}
            _show(a, m, f"{tag}\n{'g·γ' if key == 'gamma' else 'g·β' if key == 'beta' else '|ΔF| / mean|F|'}",
                  cmap=cmap, **kw)
        ax[3].bar(np.arange(len(layer["gate"])), layer["gate"])
        ax[3].set_title("gate g per channel", fontsize=8)
    return fig


def toggle_figure(d: dict[str, Any]) -> Figure:
    """The teacher with SCAM, without SCAM, their difference, and the student."""
    panels = [("image", d["image"], {}), ("teacher, SCAM on", d["with_scam"], {"vmin": 0, "vmax": 1}),
              ("teacher, SCAM off", d["without_scam"], {"vmin": 0, "vmax": 1}),
              ("on − off", d["difference"], {"cmap": "RdBu_r", "vmin": -1, "vmax": 1})]
    if d["student"] is not None:
        panels.append(("student", d["student"], {"vmin": 0, "vmax": 1}))
    fig, axes = _figure(1, len(panels), 2.6, 2.6)
    for ax, (title, img, kw) in zip(axes[0], panels):
        _show(ax, img, f"{d['key']}\n{title}" if title == "image" else title, **({"cmap": "magma"} | kw))
    return fig


def attribution_figure(d: dict[str, Any]) -> Figure:
    """The image with the explained window, and the signed attribution map."""
    fig, axes = _figure(1, 2, 3.2, 3.2)
    y, x = d["target"]
    _show(axes[0, 0], overlay(d["image"], outline=contour(d["window"])), f"{d['key']}\ntarget (y={y}, x={x})")
    lim = float(np.abs(d["map"]).max()) or 1.0
    _show(axes[0, 1], d["map"], f"{d['method']} · {d['model']} · w.r.t. {d['wrt']}\n"
          f"{100 * d['mass_inside']:.0f} % of positive mass in the window", cmap="RdBu_r", vmin=-lim, vmax=lim)
    return fig


def predictions_figure(examples: list[dict[str, Any]], threshold: float = 0.5) -> Figure:
    """Rows of images: the image with its ground-truth outline, then each run's detections (p > threshold)
    alone, since an outline would hide a few-pixel detection."""
    labels = list(examples[0]["predictions"]) if examples else []
    fig, axes = _figure(max(1, len(examples)), 1 + len(labels), 2.2, 2.2)
    for ax, ex in zip(axes, examples):
        _show(ax[0], overlay(ex["image"], outline=ex["gt_contour"]), f"{ex['key'].split('/')[-1]}\nground truth (cyan)")
        for a, label in zip(ax[1:], labels):
            _show(a, overlay(ex["image"], ex["predictions"][label] > threshold, alpha=0.8), label)
    return fig
