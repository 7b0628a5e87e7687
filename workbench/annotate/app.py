"""The annotation app: a thin Panel layer over :class:`~workbench.annotate.session.AnnotationSession`.

The image is a Bokeh figure whose data coordinates are pixel coordinates (pixel (row, col) covers
x ∈ [col, col + 1), y ∈ [row, row + 1); the y axis points down), so a click reports its pixel exactly at any
zoom or pan. Key presses reach Python through :class:`KeyListener`. One session is shared by every browser
tab of a server (one annotator at a time); each page load resumes at the first unannotated image.

Security as for the dashboard (:mod:`workbench.dashboard.app`): loopback only unless ``allow_remote``.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Callable
from pathlib import Path

import numpy as np
import panel as pn
import param
from bokeh.core.validation import silence
from bokeh.core.validation.warnings import FIXED_SIZING_MODE
from bokeh.events import DoubleTap, Tap
from bokeh.models import ColumnDataSource, LinearColorMapper, Range1d
from bokeh.palettes import Greys256
from bokeh.plotting import figure
from panel.reactive import ReactiveHTML

from semprior_core.data.folder import FolderLayout
from semprior_core.io import DataError
from workbench.dashboard.app import DashboardServer, check_host, serve_page

from .contrast import VIEWS, display
from .session import AnnotationSession

FRAME = (960, 680)  # largest displayed frame (width, height) in screen pixels, at zoom 1
PICK_PX = 8  # a click this close (screen pixels) to a point removes it
HELP = ("**click** a target: add a point · **click a point**: remove it · **n** / **→** next · **p** / **←** previous · "
        "**u** undo · **0** no target in this image · **a** / **r** accept / reject the highlighted suggestion · "
        "**l** switch view · wheel: zoom · drag: pan. Red circle: a point; dashed orange square: a model "
        "suggestion, the highlighted one in bright yellow.")


class KeyListener(ReactiveHTML):
    """Forwards key presses outside text fields to ``press`` as ``"<key>:<count>"`` (the count makes a repeated
    key a new value)."""

    press = param.String(default="")

    _template = '<span id="keys"></span>'
    _scripts = {
        "render": """
        if (window._sempriorKeys) document.removeEventListener('keydown', window._sempriorKeys);
        window._sempriorKeyCount = window._sempriorKeyCount || 0;
        window._sempriorKeys = (e) => {
          const t = e.composedPath()[0];  // the real target, also inside Panel's shadow roots
          if (e.ctrlKey || e.metaKey || e.altKey) return;
          if (t && (['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName) || t.isContentEditable)) return;
          if (e.key === 'ArrowLeft' || e.key === 'ArrowRight') e.preventDefault();
          window._sempriorKeyCount += 1;
          data.press = e.key + ':' + window._sempriorKeyCount;
        };
        document.addEventListener('keydown', window._sempriorKeys);
        """,
    }


def frame_size(shape: tuple[int, int], limit: tuple[int, int] = FRAME) -> tuple[int, int]:
    """(width, height) in screen pixels showing an HxW image whole with square pixels."""
    h, w = shape
    scale = min(limit[0] / w, limit[1] / h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _xy(points: list[tuple[int, int]] | np.ndarray) -> dict[str, list[float]]:
    """Marker positions at pixel centres."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return {"x": (pts[:, 1] + 0.5).tolist(), "y": (pts[:, 0] + 0.5).tolist()}


class AnnotatorView:
    """Widgets, figure and callbacks of one browser page."""

    def __init__(self, session: AnnotationSession) -> None:
        self.s = session
        w = pn.widgets
        self.view = w.RadioButtonGroup(options=list(VIEWS), value=VIEWS[0])
        self.view.param.watch(lambda _: self._update_image(), "value")
        self.actions: dict[str, Callable[[], object]] = {
            "previous": session.previous, "next": session.next, "undo": session.undo,
            "no target": session.mark_no_target, "accept": session.accept_suggestion,
            "reject": session.reject_suggestion,
        }
        self.keys = {"n": "next", "ArrowRight": "next", "p": "previous", "ArrowLeft": "previous", "u": "undo",
                     "0": "no target", "a": "accept", "r": "reject"}
        shortcut = {"previous": "p", "next": "n", "undo": "u", "no target": "0", "accept": "a", "reject": "r"}
        self.buttons = []
        for name in self.actions:
            button = w.Button(label=f"{name} ({shortcut[name]})", width=120)
            button.on_click(lambda _, name=name: self.act(name))
            self.buttons.append(button)
        self.bar = pn.indicators.Progress(value=0, max=len(session.ids), width=300, bar_color="success")
        self.status = pn.pane.Markdown("", css_classes=["annotate-status"], margin=(0, 10))
        self.message = pn.pane.Markdown("", css_classes=["annotate-message"], styles={"color": "#b00"})
        self.listener = KeyListener()
        self.listener.param.watch(self._on_key, "press")
        self._build_figure()
        self.plot = pn.pane.Bokeh(self.fig, sizing_mode="fixed")
        session.go(session.first_unannotated())
        self._show_image()

    def layout(self) -> pn.Column:
        model = f" · suggestions: {self.s.suggestions.model}" if self.s.suggestions else ""
        return pn.Column(
            pn.pane.Markdown(f"## semprior annotate\n`{self.s.images_dir}` → `{self.s.points_path}`{model}"),
            pn.Row(self.bar, self.status),
            pn.Row(*self.buttons, self.view),
            self.message, self.plot, pn.pane.Markdown(HELP), self.listener,
        )

    # -- figure --------------------------------------------------------------------------------------
    def _build_figure(self) -> None:
        """The page's one figure. It is built once and re-fitted per image: replacing the Bokeh model on every
        image raced the data updates that follow it (the browser got patches for models it did not know yet)."""
        fig = figure(x_range=Range1d(0, 1), y_range=Range1d(1, 0), tools="pan,wheel_zoom,reset", active_drag="pan",
                     active_scroll="wheel_zoom", toolbar_location="above", min_border=30, width=None, height=None)
        fig.grid.visible = False
        self.image_source = ColumnDataSource({"image": [np.zeros((1, 1), np.float32)], "x": [0], "y": [0],
                                              "dw": [1], "dh": [1]})
        fig.image("image", x="x", y="y", dw="dw", dh="dh", source=self.image_source,
                  color_mapper=LinearColorMapper(palette=Greys256, low=0.0, high=1.0))
        self.pending_source = ColumnDataSource(_xy([]))
        self.current_source = ColumnDataSource(_xy([]))
        self.point_source = ColumnDataSource(_xy([]))
        fig.scatter("x", "y", source=self.pending_source, marker="square", size=18, fill_alpha=0,
                    line_color="#ffb000", line_dash="dashed", line_width=2)
        fig.scatter("x", "y", source=self.current_source, marker="square", size=26, fill_alpha=0,
                    line_color="#ffe000", line_width=3)
        fig.scatter("x", "y", source=self.point_source, marker="circle", size=16, fill_alpha=0,
                    line_color="#ff2d2d", line_width=2)
        fig.scatter("x", "y", source=self.point_source, marker="cross", size=7, line_color="#ff2d2d")
        # Bokeh reports a click that quickly follows another as a DoubleTap instead of a Tap: both are clicks here.
        fig.on_event(Tap, self._on_tap)
        fig.on_event(DoubleTap, self._on_tap)
        self.fig = fig

    def _show_image(self) -> None:
        """Fit the figure to the current image: its whole extent, zoom reset, square pixels."""
        h, w = self.s.shape(self.s.current)
        # Only the frame is sized; an outer width/height (Bokeh's default 600) would override it.
        self.fig.frame_width, self.fig.frame_height = frame_size((h, w))
        # The reset tool returns to reset_start/reset_end; bounds keep panning inside the image (y points down).
        self.fig.x_range.update(bounds=(0, w), start=0, end=w, reset_start=0, reset_end=w)
        self.fig.y_range.update(bounds=(0, h), start=h, end=0, reset_start=h, reset_end=0)
        self.image_source.data = {"image": [self._display()], "x": [0], "y": [0], "dw": [w], "dh": [h]}
        self._update_marks()

    def _display(self) -> np.ndarray:
        try:
            return display(self.s.image(), self.view.value)
        except DataError as exc:  # a broken file: say so, keep the app usable
            self.message.object = f"**{exc}**"
            return np.zeros(self.s.shape(self.s.current), dtype=np.float32)

    def _update_image(self) -> None:
        self.image_source.data = dict(self.image_source.data, image=[self._display()])

    def _update_marks(self) -> None:
        s = self.s
        pending = s.pending()
        self.point_source.data = _xy(s.points())
        self.current_source.data = _xy(pending[:1])
        self.pending_source.data = _xy(pending[1:])
        p = s.progress()
        self.bar.value = p.done
        state = ("not annotated" if not s.is_done() else
                 "annotated: no target" if not len(s.points()) else f"annotated: {len(s.points())} point(s)")
        more = f" · {len(pending)} suggestion(s) to review" if pending else ""
        self.status.object = (f"**{p.done} / {p.total}** images annotated · **{p.targets}** targets · image "
                              f"{s.index + 1} of {p.total}: `{s.current}` ({state}){more}")

    # -- events --------------------------------------------------------------------------------------
    def _pick_radius(self) -> float:
        """PICK_PX screen pixels in image pixels at the current zoom."""
        span = abs(self.fig.x_range.end - self.fig.x_range.start)
        return PICK_PX * span / self.fig.frame_width

    def _on_tap(self, event: Tap) -> None:
        if event.x is None or event.y is None:
            return
        self._guarded(lambda: self.s.click(math.floor(event.y), math.floor(event.x), self._pick_radius()))
        self._update_marks()

    def _on_key(self, event: param.parameterized.Event) -> None:
        key = event.new.rsplit(":", 1)[0]
        if key == "l":
            self.view.value = VIEWS[(VIEWS.index(self.view.value) + 1) % len(VIEWS)]
        elif key in self.keys:
            self.act(self.keys[key])

    def act(self, name: str) -> None:
        """Run action ``name`` (next, previous, undo, no target, accept, reject) and redraw."""
        before = self.s.current
        self._guarded(self.actions[name])
        if self.s.current != before:
            self.message.object = ""
            self._show_image()
        else:
            self._update_marks()

    def _guarded(self, action: Callable[[], object]) -> None:
        """Run ``action``; a failed save is shown on the page rather than lost in the server log."""
        try:
            action()
        except (OSError, DataError) as exc:
            self.message.object = f"**not saved: {exc}**"


def build_app(session: AnnotationSession) -> pn.viewable.Viewable:
    # The figure sets its frame size (square pixels) rather than its outer size, which trips this check.
    silence(FIXED_SIZING_MODE, True)
    return AnnotatorView(session).layout()


def serve(session: AnnotationSession, host: str = "127.0.0.1", port: int = 0, show: bool = False, *,
          allow_remote: bool = False) -> DashboardServer:
    """Serve the annotator of ``session`` at ``http://host:port/`` from a background thread (``port=0``: any
    free port). Hosts other than loopback need ``allow_remote=True``: anyone reaching the port can read the
    images and change the labels. ``.wait()`` blocks, ``.stop()`` ends."""
    check_host(host, allow_remote, "lets the network read the images and edit the labels")
    return serve_page(lambda: build_app(session), "semprior annotate", host, port, show, allow_remote)


def default_paths(images: str | Path) -> tuple[Path, Path]:
    """Default (points file, split file) for an image folder ``ROOT/images``: ``ROOT/points/manual.json`` and
    ``ROOT/splits/annotated.txt``, the dataset layout ``semprior train --data ROOT`` reads."""
    root = Path(images).expanduser().parent
    layout = FolderLayout(root)
    return layout.points / "manual.json", layout.splits / "annotated.txt"


def train_command(images: str | Path, points: str | Path, split: str | Path) -> str:
    """The ``semprior train`` command for a folder ``ROOT/images`` annotated into ``points`` and ``split``: no
    test split, validation carved from the annotated images and scored on their points."""
    root = Path(images).expanduser().parent
    split = Path(split).expanduser()
    # train_split is read relative to the dataset root (an absolute path also works).
    rel = split.relative_to(root) if split.is_relative_to(root) else split.resolve()
    spec = f"data.datasets=[{{root: {json.dumps(str(root))}, train_split: {json.dumps(str(rel))}, test_split: \"\", " \
           f"points: {json.dumps(str(points))}}}]"
    return f"semprior train --supervision lesps {shlex.quote(spec)} --out runs/annotated"
