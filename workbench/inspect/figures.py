"""Matplotlib figures of the inspection views for notebooks: layout only, every number comes from a view
function of :mod:`workbench.inspect`."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .imaging import contour, overlay

PSEUDO_MASK, POINT, GT = "#ff8c00", "#19ff33", "#00e6ff"  # the colours of imaging.overlay


def _figure(rows: int, cols: int, width: float = 3.0, height: float = 3.0) -> tuple[Figure, np.ndarray]:
    # Figure() without pyplot: no global state, nothing left open in long notebook sessions.
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    return fig, np.atleast_2d(fig.subplots(rows, cols, squeeze=False))


def _show(ax, img, title: str, colorbar: str | None = None, **kw):
    """``img`` on ``ax`` (grey unless ``cmap`` is given), with a colour bar labelled ``colorbar``."""
    im = ax.imshow(img, **({"cmap": "gray"} | kw))
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    if colorbar is not None:
        ax.figure.colorbar(im, ax=ax, shrink=0.8).set_label(colorbar, fontsize=7)
    return im


def _signed(ax, img, title: str, label: str):
    """A signed map on a diverging colour scale centred on 0, with its colour bar."""
    lim = float(np.abs(img).max()) or 1.0
    return _show(ax, img, title, label, cmap="RdBu_r", vmin=-lim, vmax=lim)


def _marks(ax, points: np.ndarray | None = None, outline: np.ndarray | None = None) -> None:
    """Hollow green squares around the point labels and the ground-truth outline in cyan on pixel edges,
    so that neither hides the pseudo-mask (imshow centres pixel (r, c) on (c, r))."""
    if outline is not None and len(outline):
        y0, x0, y1, x1 = np.asarray(outline, dtype=np.float64).T - 0.5
        ax.add_collection(LineCollection(np.stack([np.stack([x0, y0], 1), np.stack([x1, y1], 1)], 1),
                                         colors=GT, linewidths=1.2, label="ground truth (diagnostic)"))
    if points is not None and len(points):
        ys, xs = np.asarray(points).reshape(-1, 2).T
        ax.scatter(xs, ys, s=60, marker="s", facecolors="none", edgecolors=POINT, linewidths=1.2, label="point label")


def label_figure(frame: dict[str, Any]) -> Figure:
    """Image with pseudo-mask and point labels; a close-up with the GT outline and a legend; the pseudo-mask;
    each network's prediction."""
    preds = frame["predictions"]
    fig, axes = _figure(1, 3 + len(preds))
    ax = axes[0]
    painted = overlay(frame["image"], frame["pseudo_mask"], alpha=0.7)
    _show(ax[0], painted, f"{frame['key']}\n{frame['caption']}")
    _marks(ax[0], frame["points"])
    ys, xs = frame["zoom"]
    _show(ax[1], painted, f"close-up\n{frame['caption']}")
    _marks(ax[1], frame["points"], frame["gt_outline"])
    ax[1].set(xlim=(xs.start - 0.5, xs.stop - 0.5), ylim=(ys.stop - 0.5, ys.start - 0.5))
    handles = [Patch(color=PSEUDO_MASK, label="pseudo-mask"), *ax[1].get_legend_handles_labels()[0]]
    ax[1].legend(handles=handles, fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.02), frameon=False)
    iou = frame["iou_vs_gt"]
    _show(ax[2], frame["pseudo_mask"], f"pseudo-mask, area {frame['area']} px"
          + ("" if iou is None else f"\nIoU vs GT {iou:.2f} (diagnostic)"), "pseudo-mask value",
          vmin=0, vmax=1, cmap="magma")
    for a, (name, prob) in zip(ax[3:], preds.items()):
        _show(a, prob, f"{name} probability\n{frame['checkpoint']}", "probability", vmin=0, vmax=1, cmap="magma")
    return fig


def quality_figure(rows: list[dict[str, Any]], current: int | None = None) -> Figure:
    """Mean IoU vs GT (diagnostic, on a fixed 0–1 axis) and mean area of the pseudo-masks per update."""
    fig, axes = _figure(1, 2, 4.0, 2.6)
    ups = [r["update"] for r in rows]
    over = f"mean over {rows[0]['images']} training images" if rows else ""
    for ax, key, title, ylim in zip(axes[0], ("mean_iou_vs_gt", "mean_area"), ("IoU vs GT (diagnostic)", "area (px)"),
                                    ((0, 1), (0, None))):
        ax.plot(ups, [np.nan if r[key] is None else r[key] for r in rows], marker="o")
        if current is not None:
            ax.axvline(current, color="tab:orange", ls="--")
        ax.set(title=f"pseudo-mask {title}\n{over}", xlabel="label update", ylabel=title)
        ax.set_ylim(*ylim)
        ax.title.set_fontsize(8)
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
        _signed(ax[0], layer["gamma"], f"{tag}\ng·γ", "g·γ (channel mean)")
        _signed(ax[1], layer["beta"], f"{tag}\ng·β", "g·β (channel mean)")
        _show(ax[2], layer["change"], f"{tag}\n|ΔF| / mean|F|", "relative change", cmap="viridis")
        ax[3].bar(np.arange(len(layer["gate"])), layer["gate"])
        ax[3].set_ylim(-1, 1)
        ax[3].set_title(f"{tag}\ngate g per channel", fontsize=8)
        ax[3].set_xlabel("channel", fontsize=7)
        ax[3].set_ylabel("gate g", fontsize=7)
    return fig


def toggle_figure(d: dict[str, Any]) -> Figure:
    """The image with its targets, the teacher with SCAM, without SCAM, their difference, and the student."""
    prob = {"cmap": "magma", "vmin": 0, "vmax": 1, "colorbar": "probability"}
    panels = [("teacher, SCAM on", d["with_scam"], prob), ("teacher, SCAM off", d["without_scam"], prob),
              ("on − off", d["difference"], {"cmap": "RdBu_r", "vmin": -1, "vmax": 1, "colorbar": "difference"})]
    if d["student"] is not None:
        panels.append(("student", d["student"], prob))
    fig, axes = _figure(1, 1 + len(panels), 2.6, 2.6)
    _show(axes[0, 0], d["image"], f"{d['key']}\nimage and targets")
    _marks(axes[0, 0], d["points"], d["gt_outline"])
    for ax, (title, img, kw) in zip(axes[0, 1:], panels):
        _show(ax, img, title, **kw)
    return fig


def attribution_figure(d: dict[str, Any]) -> Figure:
    """The image with the explained window, and the signed attribution map."""
    fig, axes = _figure(1, 2, 3.2, 3.2)
    y, x = d["target"]
    _show(axes[0, 0], overlay(d["image"], outline=contour(d["window"])), f"{d['key']}\ntarget (y={y}, x={x})")
    _signed(axes[0, 1], d["map"], f"{d['method']} · {d['model']} · w.r.t. {d['wrt']}\n"
            f"{100 * d['mass_inside']:.0f} % of positive mass in the window", "attribution")
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
