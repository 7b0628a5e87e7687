"""HoloViews (Bokeh) plots of the inspection views: layout only, every number comes from
:mod:`workbench.inspect`.

Image panels flow in a :class:`panel.FlexBox`, so that a row of them wraps instead of widening the page.
Plot coordinates are image pixels with the image's top row at the top: pixel (row r, column c) covers
x ∈ [c, c + 1], y ∈ [top − r − 1, top − r].
"""

from __future__ import annotations

import io
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (loads the Bokeh backend the options below are for)
import numpy as np
import panel as pn
from PIL import Image

from workbench.inspect.imaging import contour, overlay

SIDE = 260  # pixels of an image panel
TITLE = {"title": "9pt", "legend": "8pt"}  # one font size for every panel's title
PSEUDO_MASK, POINT, GT = "#ff8c00", "#19ff33", "#00e6ff"  # the colours of imaging.overlay


def _bounds(img: np.ndarray, scale: int = 1) -> tuple[int, int, int, int]:
    # ``scale`` maps the cells of a coarser map (a feature stride) onto image pixels, so that maps of
    # different stages line up with the image and its marks.
    h, w = img.shape[:2]
    return 0, 0, w * scale, h * scale


def _image_opts(title: str, img: np.ndarray) -> dict[str, Any]:
    h, w = img.shape[:2]
    return {"title": title, "frame_width": SIDE, "frame_height": max(40, round(SIDE * h / w)),
            "xaxis": None, "yaxis": None, "toolbar": "above", "fontsize": TITLE}


def rgb(img: np.ndarray, title: str, bounds: tuple[int, int, int, int] | None = None) -> hv.RGB:
    """An (H, W, 3) uint8 image, placed at ``bounds`` (left, bottom, right, top; default: its own size)."""
    return hv.RGB(img, bounds=bounds or _bounds(img)).opts(**_image_opts(title, img))


def scalar(img: np.ndarray, title: str, label: str, cmap: str = "magma", clim: tuple[float, float] | None = None,
           symmetric: bool = False, scale: int = 1) -> hv.Image:
    """A scalar map with a colour bar titled ``label``; ``symmetric`` centres a diverging colour map on 0;
    ``scale``: image pixels per cell."""
    a = np.asarray(img, dtype=np.float64)
    if symmetric:
        lim = float(np.abs(a).max()) or 1.0
        clim = (-lim, lim)
    opts = _image_opts(title, a) | {"cmap": cmap, "colorbar": True, "clabel": label, "tools": ["hover"]}
    if clim is not None:
        opts["clim"] = clim
    return hv.Image(a, bounds=_bounds(a, scale), vdims=[label]).opts(**opts)


def probability(img: np.ndarray, title: str, label: str = "probability") -> hv.Image:
    return scalar(img, title, label, clim=(0.0, 1.0))


def marks(top: int, points: np.ndarray | None = None, outline: np.ndarray | None = None,
          mask_legend: bool = False) -> list[hv.Element]:
    """Vector marks in a panel whose image is ``top`` pixels high: hollow squares around the point labels
    and the ground-truth ``outline`` on pixel edges (:func:`~workbench.inspect.imaging.outline_segments`),
    so neither hides the pseudo-mask underneath; ``mask_legend`` adds a legend entry for the orange mask."""
    out = []
    if mask_legend:  # no data: the mask is painted into the image; this is its legend entry only
        out.append(hv.Points([], label="pseudo-mask").opts(color=PSEUDO_MASK, marker="square", size=10))
    if outline is not None and len(outline):
        y0, x0, y1, x1 = np.asarray(outline, dtype=np.float64).T
        out.append(hv.Segments((x0, top - y0, x1, top - y1), label="ground truth (diagnostic)").opts(
            color=GT, line_width=2))
    if points is not None and len(points):
        ys, xs = np.asarray(points, dtype=np.float64).reshape(-1, 2).T
        out.append(hv.Points((xs + 0.5, top - ys - 0.5), label="point label").opts(
            marker="square", size=14, fill_alpha=0, line_color=POINT, color=POINT, line_width=2))
    return out


def marked(base: hv.Element, extra: list[hv.Element], legend: bool = True) -> hv.Overlay:
    """``base`` with ``extra`` marks on top, the legend below the panel (or none)."""
    return hv.Overlay([base, *extra]).opts(show_legend=legend and bool(extra), legend_position="bottom",
                                           fontsize=TITLE)


def flow(*panels: hv.core.Dimensioned) -> pn.FlexBox:
    """Panels side by side with their own axes, wrapping onto the next line when the window is narrower
    than the row."""
    return pn.FlexBox(*[pn.pane.HoloViews(p, linked_axes=False) for p in panels], sizing_mode="stretch_width")


def curves(series: list[dict[str, Any]], group: str, title: str, ylabel: str, marker: int | None = None,
           ylim: tuple[float | None, float | None] = (None, None), xlabel: str = "epoch") -> hv.Overlay:
    """Lines of ``series`` entries (``name``, ``epoch``, ``value``) of one ``group``; optional vertical line."""
    parts = [hv.Curve((s["epoch"], s["value"]), xlabel, ylabel, label=s["name"]).opts(tools=["hover"])
             for s in series if s["group"] == group]
    parts += [hv.Scatter((s["epoch"], s["value"]), xlabel, ylabel, label=s["name"]).opts(size=5)
              for s in series if s["group"] == group and len(s["epoch"]) == 1]  # one point draws no line
    if marker is not None:
        parts.append(hv.VLine(marker).opts(color="orange", line_dash="dashed"))
    if not parts:
        parts = [hv.Curve([], xlabel, ylabel)]
    return hv.Overlay(parts).opts(title=title, frame_width=360, frame_height=200, legend_position="right",
                                  ylim=ylim, fontsize={"title": "10pt", "legend": "8pt"})


def label_layout(frame: dict[str, Any]) -> pn.FlexBox:
    """The image with its pseudo-mask and point labels; a close-up with the ground-truth outline and a
    legend; the pseudo-mask alone; each network's prediction."""
    image, mask, iou = frame["image"], frame["pseudo_mask"], frame["iou_vs_gt"]
    top = image.shape[0]
    ys, xs = frame["zoom"]
    painted = overlay(image, mask, alpha=0.7)
    zoom = (xs.start, top - ys.stop, xs.stop, top - ys.start)
    close_up = marked(rgb(painted[ys, xs], f"close-up · {frame['caption']}", bounds=zoom),
                      marks(top, frame["points"], frame["gt_outline"], mask_legend=True))
    close_up = close_up.opts(xlim=(zoom[0], zoom[2]), ylim=(zoom[1], zoom[3]))  # marks outside stay outside
    panels = [
        marked(rgb(painted, f"{frame['key']} · {frame['caption']}"), marks(top, frame["points"]), legend=False),
        close_up,
        probability(mask, f"pseudo-mask · area {frame['area']} px" + ("" if iou is None else f" · IoU vs GT {iou:.2f}"),
                    "pseudo-mask value"),
    ]
    panels += [probability(p, f"{name} · {frame['checkpoint']}", f"{name} probability")
               for name, p in frame["predictions"].items()]
    return flow(*panels)


def gallery(items: list[dict[str, Any]], size: int = 150) -> pn.FlexBox:
    """Thumbnails with their pseudo-masks as plain PNG images (no plot machinery: many, small, static)."""
    cards = []
    for it in items:
        buf = io.BytesIO()
        Image.fromarray(overlay(it["image"], it["pseudo_mask"])).save(buf, format="PNG")
        cards.append(pn.Column(pn.pane.Markdown(f"`{it['key']}`", margin=(0, 5)),
                               pn.pane.PNG(buf.getvalue(), width=size, height=size, alt_text=it["key"])))
    return pn.FlexBox(*cards, css_classes=["cluster-gallery"])


def close_ups(items: list[dict[str, Any]], zoom: int = 3) -> pn.FlexBox:
    """Image windows with a cyan box outline, as PNGs enlarged ``zoom`` times without smoothing (a few-pixel
    object stays a few sharp squares), captioned with their frame, size and peak."""
    cards = []
    for it in items:
        img = overlay(it["image"], outline=it["outline"]).repeat(zoom, axis=0).repeat(zoom, axis=1)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        caption = f"`{it['frame']}` · {it['area']} px · peak {it['peak']:.2f}"
        cards.append(pn.Column(pn.pane.Markdown(caption, margin=(0, 5)),
                               pn.pane.PNG(buf.getvalue(), width=img.shape[1], height=img.shape[0],
                                           alt_text=it["frame"])))
    return pn.FlexBox(*cards, css_classes=["false-alarm-gallery"], sizing_mode="stretch_width")


def scam_layout(layers: list[dict[str, Any]], points: np.ndarray) -> pn.Column:
    """One row per modulated stage: g·γ, g·β and the relative feature change (point labels marked), and
    the gate values."""
    rows = []
    for layer in layers:
        tag = f"stage {layer['stage']} ← VFM block {layer['vfm_layer']}"
        top = layer["gamma"].shape[0] * layer["stride"]
        maps = [scalar(layer["gamma"], f"{tag}: g·γ", "g·γ (channel mean)", "RdBu_r", symmetric=True,
                       scale=layer["stride"]),
                scalar(layer["beta"], f"{tag}: g·β", "g·β (channel mean)", "RdBu_r", symmetric=True,
                       scale=layer["stride"]),
                scalar(layer["change"], f"{tag}: |ΔF| / mean|F|", "relative change", "viridis",
                       scale=layer["stride"])]
        gate = hv.Bars(list(enumerate(layer["gate"].tolist())), f"channel (stage {layer['stage']})", "gate g").opts(
            title=f"{tag}: gate g", frame_width=SIDE, frame_height=SIDE // 2, tools=["hover"], ylim=(-1, 1),
            fontsize=TITLE)
        rows.append(flow(*[marked(m, marks(top, points), legend=False) for m in maps], gate))
    return pn.Column(*rows, sizing_mode="stretch_width")


def toggle_layout(d: dict[str, Any]) -> pn.FlexBox:
    """The image with its targets, the teacher with and without SCAM, their difference, and the student."""
    top = d["image"].shape[0]
    on_off = [probability(d["with_scam"], "teacher, SCAM on", "teacher probability"),
              probability(d["without_scam"], "teacher, SCAM off", "teacher probability"),
              scalar(d["difference"], "on − off (colour scale fitted)", "probability difference", "RdBu_r",
                     symmetric=True)]
    if d["student"] is not None:
        on_off.append(probability(d["student"], "student (no VFM)", "student probability"))
    image = marked(rgb(overlay(d["image"]), f"{d['key']} · targets"), marks(top, d["points"], d["gt_outline"]))
    return flow(image, *[marked(p, marks(top, d["points"]), legend=False) for p in on_off])


def attribution_layout(d: dict[str, Any]) -> pn.FlexBox:
    y, x = d["target"]
    panels = [rgb(overlay(d["image"], outline=contour(d["window"])), f"{d['key']} · target (y={y}, x={x})"),
              scalar(d["map"], f"{d['method']} · {d['model']} · w.r.t. {d['wrt']}", "attribution", "RdBu_r",
                     symmetric=True)]
    panels += [scalar(m, f"VFM block {block}", f"attribution (VFM block {block})", "RdBu_r", symmetric=True)
               for block, m in d["layers"].items()]
    return flow(*panels)
