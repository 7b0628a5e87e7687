"""HoloViews (Bokeh) plots of the inspection views: layout only, every number comes from
:mod:`workbench.inspect`."""

from __future__ import annotations

import io
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (loads the Bokeh backend the options below are for)
import numpy as np
import panel as pn
from PIL import Image

from workbench.inspect.imaging import contour, overlay

SIDE = 300  # pixels of an image panel


def _frame(img: np.ndarray, scale: int = 1) -> dict[str, Any]:
    # Array row 0 is the image's top row (y = height), as image viewers show it; ``scale`` maps the cells of a
    # coarser map (a feature stride) onto image pixels, so maps of different stages line up.
    h, w = img.shape[:2]
    return {"bounds": (0, 0, w * scale, h * scale)}


def _image_opts(title: str, img: np.ndarray) -> dict[str, Any]:
    h, w = img.shape[:2]
    return {"title": title, "frame_width": SIDE, "frame_height": max(40, round(SIDE * h / w)),
            "xaxis": None, "yaxis": None, "toolbar": "above", "fontsize": {"title": "9pt"}}


def rgb(img: np.ndarray, title: str) -> hv.RGB:
    """An (H, W, 3) uint8 image."""
    return hv.RGB(img, **_frame(img)).opts(**_image_opts(title, img))


def scalar(img: np.ndarray, title: str, cmap: str = "magma", clim: tuple[float, float] | None = None,
           symmetric: bool = False, scale: int = 1) -> hv.Image:
    """A scalar map with a colour bar; ``symmetric`` centres a diverging colour map on 0; ``scale``: image
    pixels per cell."""
    a = np.asarray(img, dtype=np.float64)
    if symmetric:
        lim = float(np.abs(a).max()) or 1.0
        clim = (-lim, lim)
    opts = _image_opts(title, a) | {"cmap": cmap, "colorbar": True, "tools": ["hover"]}
    if clim is not None:
        opts["clim"] = clim
    return hv.Image(a, **_frame(a, scale)).opts(**opts)


def probability(img: np.ndarray, title: str) -> hv.Image:
    return scalar(img, title, clim=(0.0, 1.0))


def curves(series: list[dict[str, Any]], group: str, title: str, marker: int | None = None) -> hv.Overlay:
    """Lines of ``series`` entries (``name``, ``epoch``/``x``, ``value``) of one ``group``; optional vertical line."""
    parts = [hv.Curve((s["epoch"], s["value"]), "epoch", "value", label=s["name"]).opts(tools=["hover"])
             for s in series if s["group"] == group]
    parts += [hv.Scatter((s["epoch"], s["value"]), "epoch", "value", label=s["name"]).opts(size=5)
              for s in series if s["group"] == group and len(s["epoch"]) == 1]  # one point draws no line
    if marker is not None:
        parts.append(hv.VLine(marker).opts(color="orange", line_dash="dashed"))
    if not parts:
        parts = [hv.Curve([], "epoch", "value")]
    return hv.Overlay(parts).opts(title=title, frame_width=380, frame_height=220, legend_position="right",
                                  fontsize={"title": "10pt", "legend": "8pt"})


def side_by_side(*plots: hv.core.Dimensioned) -> hv.Layout:
    """Plots in a row with their own axes (their ranges mean different things)."""
    return hv.Layout(list(plots)).cols(len(plots)).opts(shared_axes=False)


def label_layout(frame: dict[str, Any]) -> hv.Layout:
    """Overlay (pseudo-mask, points, GT contour), the pseudo-mask, and each network's prediction."""
    iou = frame["iou_vs_gt"]
    panels = [
        rgb(overlay(frame["image"], frame["pseudo_mask"], frame["gt_contour"], frame["points"]),
            f"{frame['key']} · update {frame['update']} (epoch {frame['epoch']})"),
        probability(frame["pseudo_mask"], f"pseudo-mask · area {frame['area']}"
                    + ("" if iou is None else f" · IoU vs GT {iou:.2f}")),
    ]
    panels += [probability(p, f"{name} · {frame['checkpoint']}") for name, p in frame["predictions"].items()]
    return hv.Layout(panels).cols(4)


def gallery(items: list[dict[str, Any]], size: int = 150) -> pn.FlexBox:
    """Thumbnails with their pseudo-masks as plain PNG images (no plot machinery: many, small, static)."""
    cards = []
    for it in items:
        buf = io.BytesIO()
        Image.fromarray(overlay(it["image"], it["pseudo_mask"])).save(buf, format="PNG")
        cards.append(pn.Column(pn.pane.Markdown(f"`{it['key']}`", margin=(0, 5)),
                               pn.pane.PNG(buf.getvalue(), width=size, height=size, alt_text=it["key"])))
    return pn.FlexBox(*cards, css_classes=["cluster-gallery"])


def scam_layout(layers: list[dict[str, Any]]) -> hv.Layout:
    panels = []
    for layer in layers:
        tag = f"stage {layer['stage']} ← VFM block {layer['vfm_layer']}"
        panels += [
            scalar(layer["gamma"], f"{tag}: g·γ", "RdBu_r", symmetric=True, scale=layer["stride"]),
            scalar(layer["beta"], f"{tag}: g·β", "RdBu_r", symmetric=True, scale=layer["stride"]),
            scalar(layer["change"], f"{tag}: |ΔF| / mean|F|", "viridis", scale=layer["stride"]),
            hv.Bars(list(enumerate(layer["gate"].tolist())), f"channel (stage {layer['stage']})", "gate").opts(
                title=f"{tag}: gate g", frame_width=SIDE, frame_height=SIDE // 2, tools=["hover"], ylim=(-1, 1)),
        ]
    return hv.Layout(panels).cols(4).opts(shared_axes=False)


def toggle_layout(d: dict[str, Any]) -> hv.Layout:
    panels = [rgb(overlay(d["image"]), d["key"]), probability(d["with_scam"], "teacher, SCAM on"),
              probability(d["without_scam"], "teacher, SCAM off"),
              scalar(d["difference"], "on − off (colour scale fitted)", "RdBu_r", symmetric=True)]
    if d["student"] is not None:
        panels.append(probability(d["student"], "student (no VFM)"))
    return hv.Layout(panels).cols(4)


def attribution_layout(d: dict[str, Any]) -> hv.Layout:
    y, x = d["target"]
    panels = [rgb(overlay(d["image"], outline=contour(d["window"])), f"{d['key']} · target (y={y}, x={x})"),
              scalar(d["map"], f"{d['method']} · {d['model']} · w.r.t. {d['wrt']}", "RdBu_r", symmetric=True)]
    panels += [scalar(m, f"VFM block {block}", "RdBu_r", symmetric=True) for block, m in d["layers"].items()]
    return hv.Layout(panels).cols(4)
