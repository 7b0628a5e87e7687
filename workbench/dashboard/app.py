"""The semprior dashboard: one Panel app with a tab per inspection view of a set of runs.

:class:`DashboardState` holds the selections (run, image, label update, cluster, attribution target ...)
as parameters; its view methods return plots built from :mod:`workbench.inspect`, recomputed when a parameter
they depend on changes while their tab is open (:func:`_while_open`). :func:`serve` starts the app on a local
port.

Security: the server binds 127.0.0.1 unless told otherwise. It has no authentication, shows every image
and metric of the runs it was given, and runs model inference on request (CPU load). Binding another
address (``allow_remote=True``, ``semprior dashboard --allow-remote``) exposes all of that to anyone who
can reach the port; do it only on a trusted network.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.core.validation import silence
from bokeh.core.validation.warnings import FIXED_SIZING_MODE

from semprior_core.explain import METHODS
from workbench import inspect as wi
from workbench.inspect.handle import SPLITS

from . import plots

TEXT = {
    "overview": """
**Overview.** Every row of the table names the split its numbers come from. *test*: the held-out test split,
scored once by `semprior eval` with the checkpoint chosen on validation. *val (carved from train)*: the
validation split carved from the training data, at the epoch that selected `best.pt` (point-supervised runs
select on the point-only F1; dense validation metrics are diagnostics). IoU, nIoU, Pd and point F1 are in %,
here and in the validation curves; Fa in false-alarm pixels per million.""",
    "labels": """
**Label evolution.** Point-supervised training starts from one click per target and grows pseudo-masks from
the network's own predictions at every label update. Orange: the pseudo-mask at the chosen update; green
squares: the point labels; cyan (in the close-up): the outline of the dense ground truth, a **diagnostic
only** that training never sees. Update 0 is the initial labels made from the points; update *n* was made
after the number of training epochs its title names. The predictions are those of the run's checkpoint.
The tab opens on the training image whose pseudo-mask changed most; press play or drag the slider
to replay the updates. The two plots below average over all training images.""",
    "clusters": """
**Clusters.** A semprior run groups its training images into clusters and learns one loss weight per cluster
with a one-step look-ahead hypergradient (learning to reweight): a weight rises when training on that cluster
lowers the teacher's loss on the validation split. Pick a cluster to see its images with their latest
pseudo-masks.""",
    "scam": """
**SCAM.** The teacher modulates its encoder features with the frozen VFM's features,
F' = F ⊙ (1 + g·γ) + g·β, with per-pixel γ, β predicted from the VFM and a learned per-channel gate g.
The first row shows the image with its targets (green squares: point labels, cyan: ground-truth outline),
then the teacher's prediction with SCAM on and switched off (the same teacher without the prior), their
difference and the student's. Below, one row per modulated stage: the channel means of g·γ (scaling,
0 = unchanged) and g·β (shift), the relative feature change, all with the point labels marked, and the
gate values.""",
    "attributions": """
**Attributions.** The logits in a small window around the target (inside the cyan square) are summed and
explained with Captum. *integrated_gradients*: contributions that add up to the change from a mean-intensity
image; *saliency*: gradient magnitude; *smoothgrad*: saliency averaged over noisy copies; *gradcam*: a coarse
map from the deepest encoder stage. For the teacher, *w.r.t. vfm* attributes to the VFM features entering
SCAM: where the semantic prior mattered. Red is positive, blue negative.""",
    "false_alarms": """
**False alarms.** Predicted objects (probability above 0.5, or a classical run's mask) that match no target,
on the chosen dataset folder, largest first: what a detector mistakes for a target (cloud edges, bright
buildings, glint). A folder the run was trained on offers its test split only; other folders (given with
`data=`) also *all* their images, target-free frames included. The close-ups frame each object in cyan, just
outside it; a classical run's peak is 1 (its masks are binary).""",
    "compare": """
**Comparison.** Runs whose configs differ only in their seed form one group; each row gives mean ± sample
standard deviation over the group's runs (n), per split and model. The group column names only the settings
that tell groups (of trained or of classical runs) apart; the data column names the datasets. Runs without a
saved test evaluation contribute their validation scores, labelled as such.""",
}


FA_ROWS, FA_GALLERY = 100, 12  # false alarms in the table, close-ups in the gallery


def _message(text: str) -> pn.pane.Markdown:
    return pn.pane.Markdown(f"*{text}*", styles={"color": "#666"})


def _table(rows: list[dict], digits: int = 2) -> pn.pane.DataFrame:
    df = pd.DataFrame(rows)
    return pn.pane.DataFrame(df, index=False, float_format=lambda v: f"{v:.{digits}f}", sizing_mode="stretch_width",
                             na_rep="–")


def run_label(path: Path) -> str:
    """A short, unique-enough name for a run: its path relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class DashboardState(param.Parameterized):
    """Selections of the dashboard; view methods return the plots and tables of each tab."""

    # Selectors filled per run; check_on_set keeps a None (nothing to select) out of their objects.
    run = param.Selector(objects=[], allow_None=True, check_on_set=True, doc="run shown by all tabs but Comparison")
    label_image = param.Selector(objects=[], allow_None=True, check_on_set=True, doc="training image (labels tab)")
    label_update = param.Integer(default=0, bounds=(0, 0), doc="label update (0 = initial labels)")
    cluster = param.Selector(objects=[], allow_None=True, check_on_set=True, doc="cluster shown in the gallery")
    split = param.Selector(objects=list(SPLITS), default="test", doc="split of the SCAM and attribution images")
    image = param.Selector(objects=[], allow_None=True, check_on_set=True, doc="image (SCAM, attribution tabs)")
    model = param.Selector(objects=[], allow_None=True, check_on_set=True, doc="network to explain")
    method = param.Selector(objects=list(METHODS), default="integrated_gradients")
    wrt = param.Selector(objects=["image"], default="image", doc="explained input: the image or the VFM features")
    target_y = param.Integer(default=0, bounds=(0, None))
    target_x = param.Integer(default=0, bounds=(0, None))
    radius = param.Integer(default=2, bounds=(0, 8), doc="half-size of the explained window (pixels)")
    fa_folder = param.Selector(objects=[], allow_None=True, check_on_set=True, doc="dataset folder (false alarms)")
    fa_split = param.Selector(objects=["test"], default="test", doc="split of that folder: test or all")

    def __init__(self, run_dirs: Iterable[str | Path], data: Iterable[str | Path] = (), **params) -> None:
        super().__init__(**params)
        self.data = [run_label(Path(d)) for d in data]  # folders offered besides each run's own datasets
        self.fa_splits: dict[str, list[str]] = {}
        self.paths = {run_label(r.path): r.path for r in wi.expand_runs(run_dirs)}
        if not self.paths:
            raise ValueError(f"no run directory (a folder with config.yaml) in {list(run_dirs)}")
        self.param.run.objects = list(self.paths)
        self.run = next(iter(self.paths))  # fills every other selection (_on_run)

    # -- selection logic -------------------------------------------------------------------------
    @property
    def handle(self) -> wi.RunHandle:
        return wi.open_run(self.paths[self.run])

    @param.depends("run", watch=True)
    def _on_run(self) -> None:
        h = self.handle
        updates = wi.label_updates(h)
        keys = wi.label_images(h) if updates else []
        first = wi.most_changed_image(h) if updates else None
        clusters = [s["cluster"] for s in wi.cluster_summary(h)]
        nets = h.networks()
        self.fa_splits = {run_label(Path(f)): splits for f, splits in wi.false_alarm_folders(h, self.data).items()}
        with param.parameterized.batch_call_watchers(self):
            self.param.label_image.objects = keys
            self.label_image = first
            self.param.label_update.bounds = (0, max(len(updates) - 1, 0))
            self.label_update = max(len(updates) - 1, 0)
            self.param.cluster.objects = clusters
            self.cluster = clusters[0] if clusters else None
            self.param.model.objects = nets
            self.model = nets[0] if nets else None
            self.param.fa_folder.objects = list(self.fa_splits)
            if self.fa_folder not in self.fa_splits:
                self.fa_folder = next(iter(self.fa_splits), None)
        self._on_split()
        self._on_model()
        self._on_fa_folder()

    @param.depends("split", watch=True)
    def _on_split(self) -> None:
        keys = self.handle.keys(self.split)
        self.param.image.objects = keys
        self.image = keys[0] if keys else None
        self._on_image()

    @param.depends("image", watch=True)
    def _on_image(self) -> None:
        if self.image is None:
            return
        h = self.handle
        y, x = wi.default_target(h, self.image, self.split)
        rows, cols = h.bank(self.split).shape(h.index(self.split, self.image))
        with param.parameterized.batch_call_watchers(self):
            self.param.target_y.bounds, self.param.target_x.bounds = (0, rows - 1), (0, cols - 1)
            self.target_y, self.target_x = y, x

    @param.depends("model", "method", watch=True)
    def _on_model(self) -> None:
        options = wi.attribution_inputs(self.handle, self.model, self.method)  # only valid combinations
        self.param.wrt.objects = options
        if self.wrt not in options:
            self.wrt = "image"

    @param.depends("fa_folder", watch=True)
    def _on_fa_folder(self) -> None:
        splits = self.fa_splits.get(self.fa_folder, ["test"])
        self.param.fa_split.objects = splits
        if self.fa_split not in splits:
            self.fa_split = splits[0]

    # -- overview --------------------------------------------------------------------------------
    @param.depends("run")
    def overview_table(self):
        rows = wi.metrics_table(self.handle)
        if not rows:
            return _message("No validation or evaluation yet.")
        return _table(rows)

    @param.depends("run")
    def overview_curves(self):
        if self.handle.run.kind == "classical":
            return _message("A classical run is tuned on the validation split, not trained: it has no training "
                            "curves. Its scores are in the table above.")
        series = wi.curves(self.handle, percent=True)
        if not series:
            return _message("No epoch recorded yet.")
        return plots.flow(plots.curves(series, "training", "training losses", "loss"),
                          plots.curves(series, "validation", "validation (carved from train)", "score (%)",
                                       ylim=(0, 100)))

    # -- label evolution -------------------------------------------------------------------------
    @param.depends("run", "label_image", "label_update")
    def label_status(self):
        if self.label_image is None:
            return _message("This run has no label history (a classical run, full supervision, or no epoch yet).")
        f = wi.label_frame(self.handle, self.label_image, self.label_update, predictions=False)
        iou = "–" if f["iou_vs_gt"] is None else f"{f['iou_vs_gt']:.3f}"
        return pn.pane.Markdown(f"**`{f['key']}`, {f['caption']}** · pseudo-mask area {f['area']} px · "
                                f"IoU vs GT {iou} (diagnostic)", css_classes=["label-status"])

    @param.depends("run", "label_image", "label_update")
    def label_plots(self):
        if self.label_image is None:
            return _message("No pseudo-masks to show.")
        return plots.label_layout(wi.label_frame(self.handle, self.label_image, self.label_update))

    @param.depends("run", "label_update")
    def label_quality_plot(self):
        rows = wi.label_quality(self.handle)
        if not rows:
            return _message("No label updates.")
        ups = [r["update"] for r in rows]
        series = [{"name": "mean IoU vs GT (diagnostic)", "group": "iou", "epoch": ups,
                   "value": [np.nan if r["mean_iou_vs_gt"] is None else r["mean_iou_vs_gt"] for r in rows]},
                  {"name": "mean area (px)", "group": "area", "epoch": ups, "value": [r["mean_area"] for r in rows]}]
        over = f"mean over {rows[0]['images']} training images"
        top = max(r["mean_area"] for r in rows)
        return plots.flow(
            plots.curves(series, "iou", f"pseudo-mask IoU vs GT ({over})", "IoU vs GT (0–1)", self.label_update,
                         ylim=(0, 1), xlabel="label update"),
            plots.curves(series, "area", f"pseudo-mask area ({over})", "area (px)", self.label_update,
                         ylim=(0, 1.1 * top or 1), xlabel="label update"))

    # -- clusters --------------------------------------------------------------------------------
    @param.depends("run", "cluster")
    def cluster_plot(self):
        rows = wi.cluster_weights(self.handle)
        if not rows:
            return _message("This run has no cluster weights: only `--method semprior` runs reweight clusters.")
        series = [{"name": f"cluster {c}", "group": "w", "epoch": [r["step"] for r in rows if r["cluster"] == c],
                   "value": [r["weight"] for r in rows if r["cluster"] == c]} for c in sorted({r["cluster"] for r in rows})]
        return plots.curves(series, "w", "cluster weight per meta step", "weight", xlabel="optimiser step")

    @param.depends("run")
    def cluster_table(self):
        rows = [{k: v for k, v in s.items() if k != "members"} for s in wi.cluster_summary(self.handle)]
        return _table(rows, 3) if rows else _message("No clusters.")

    @param.depends("run", "cluster")
    def cluster_gallery(self):
        if self.cluster is None:
            return _message("No clusters.")
        items = wi.cluster_gallery(self.handle, self.cluster)
        size = next(s["size"] for s in wi.cluster_summary(self.handle) if s["cluster"] == self.cluster)
        return pn.Column(pn.pane.Markdown(f"Cluster {self.cluster}: {len(items)} of its {size} images"),
                         plots.gallery(items))

    # -- SCAM ------------------------------------------------------------------------------------
    @param.depends("run", "split", "image")
    def scam_plots(self):
        if not self.handle.has_scam():
            return _message("No modulation maps.")
        h = self.handle
        return plots.scam_layout(wi.scam_maps(h, self.image, self.split), h.points(self.split, h.index(self.split, self.image)))

    @param.depends("run", "split", "image")
    def scam_toggle(self):
        if not self.handle.has_scam():
            return _message("This run has no SCAM teacher: train with `--method semprior` and a VFM (`vfm.name`).")
        return plots.toggle_layout(wi.scam_toggle(self.handle, self.image, self.split))

    # -- attributions ----------------------------------------------------------------------------
    @param.depends("run", "split", "image", "model", "method", "wrt", "target_y", "target_x", "radius")
    def attribution_plot(self):
        if self.model is None:
            return _message("This run has no network to explain (a classical run, or no checkpoint yet).")
        try:
            d = wi.attributions(self.handle, self.image, (self.target_y, self.target_x), self.method, self.model,
                                split=self.split, wrt=self.wrt, radius=self.radius)
        except ValueError as exc:  # shown in place of a plot that would no longer match the selectors
            return _message(f"Cannot explain this choice: {exc}")
        text = pn.pane.Markdown(f"Explained score (Σ logits in the window): **{d['score']:.2f}** · "
                                f"positive attribution inside the window: **{100 * d['mass_inside']:.0f} %**")
        return pn.Column(text, plots.attribution_layout(d))

    # -- false alarms ----------------------------------------------------------------------------
    @param.depends("run", "fa_folder", "fa_split")
    def false_alarm_view(self):
        if self.fa_folder is None:
            return _message("No dataset folder to look for false alarms in.")
        try:
            rows = wi.false_alarms(self.paths[self.run], self.fa_folder, split=self.fa_split)
        except ValueError as exc:  # DataError too: no checkpoint yet, a folder without masks or test split
            return _message(f"Cannot list this run's false alarms: {exc}")
        where = f"{'all images' if self.fa_split == 'all' else 'the test split'} of `{self.fa_folder}`"
        if not rows:
            return _message(f"No false alarm on {where}: every predicted object matches a target.")
        listed = "" if len(rows) <= FA_ROWS else f"; the largest {FA_ROWS} listed"
        shown = min(len(rows), FA_GALLERY)
        return pn.Column(
            pn.pane.Markdown(f"**{len(rows)} false-alarm objects** on {where}, largest first{listed}."),
            _table(wi.false_alarm_table(rows[:FA_ROWS]), 3),
            pn.pane.Markdown(f"Close-ups of the largest {shown}:"),
            plots.close_ups(wi.false_alarm_gallery(self.fa_folder, rows[:shown])), sizing_mode="stretch_width")

    # -- comparison ------------------------------------------------------------------------------
    @param.depends()  # the runs given; no selection changes it
    def comparison_table(self):
        rows = wi.compare_runs(self.paths.values())
        shown = [{"group": r["group"], "data": r["data"], "split": r["split"], "model": r["model"], "n": r["n"],
                  "seeds": ", ".join(map(str, r["seeds"])),
                  **{m: wi.format_mean_std(r[f"{m}_mean"], r[f"{m}_std"]) for m in ("IoU", "nIoU", "Pd", "Fa")}}
                 for r in rows]
        if not shown:
            return _message("No metrics to compare.")
        warning = wi.dataset_warning(rows)
        return pn.Column(*([pn.pane.Alert(warning, alert_type="warning")] if warning else []), _table(shown),
                         sizing_mode="stretch_width")


def _tab(text: str, *items) -> pn.Column:
    return pn.Column(pn.pane.Markdown(text, sizing_mode="stretch_width", max_width=1000), *items,
                     sizing_mode="stretch_width")


def _while_open(view, tabs: pn.Tabs, index: int) -> pn.viewable.Viewable:
    """View method ``view`` of the state, computed only while tab ``index`` is open and then only when a
    parameter it depends on changed since it last was: the first response computes the first tab's views,
    choosing another run costs the open tab's views only, and reopening a tab costs nothing if nothing changed."""
    state = view.__self__
    deps = [state.param[d.name] for d in state.param.method_dependencies(view.__name__)]
    last: dict = {}

    def show(active: int, *values):
        if active == index and last.get("values") != values:
            last["values"], last["view"] = values, view()
        return last.get("view", pn.Spacer())

    return pn.param.ParamFunction(pn.bind(show, tabs.param.active, *deps))


def _when_open(tabs: pn.Tabs, index: int, page: pn.Column) -> pn.viewable.Viewable:
    """``page`` while tab ``index`` is open, else an empty placeholder, so that a closed tab keeps no Bokeh
    models and is rendered afresh when reopened. (Panel's dynamic tabs reuse a closed tab's models, which the
    browser then shows as they were before the run changed: stale and hidden.)"""
    return pn.param.ParamFunction(pn.bind(lambda active: page if active == index else pn.Spacer(), tabs.param.active),
                                  sizing_mode="stretch_width")


def _controls(*widgets) -> pn.FlexBox:
    # A FlexBox wraps its widgets onto a second line rather than widening the page.
    return pn.FlexBox(*widgets, sizing_mode="stretch_width")


def _rebuilt(build, *deps) -> pn.viewable.Viewable:
    """Widgets from ``build()``, built anew whenever a parameter in ``deps`` changes. Selectors whose options
    change with the run are replaced, not updated: an updated Bokeh select can send back a stale empty value
    (Panel reads it as the first option), and the plots then show another image than the selector."""
    return pn.param.ParamFunction(pn.bind(lambda *_: build(), *deps), lazy=True)


def build_app(run_dirs: Iterable[str | Path], data: Iterable[str | Path] = ()) -> pn.viewable.Viewable:
    """The dashboard for the runs at or below ``run_dirs``; ``data``: dataset folders to list false alarms on
    besides each run's own."""
    hv.extension("bokeh", logo=False)
    # HoloViews grids of fixed-frame plots trip this Bokeh check although they render correctly.
    silence(FIXED_SIZING_MODE, True)
    s = DashboardState(run_dirs, data)
    w, p = pn.widgets, s.param
    labels = _rebuilt(lambda: _controls(
        w.Select.from_param(p.label_image, name="training image"),
        w.Player.from_param(p.label_update, name="play", interval=800, loop_policy="once", width=320),
        w.IntSlider.from_param(p.label_update, name="label update (0 = initial point labels)", width=260)), p.run)

    def images():  # one per tab: a Panel object is shown in one place
        return _rebuilt(lambda: w.Select.from_param(p.image, name="image", width=220), p.run, p.split)

    tabs = pn.Tabs()

    def opened(index: int):  # wraps the view methods of tab ``index``
        return lambda view: _while_open(view, tabs, index)

    pages = [
        ("Overview", lambda v: _tab(TEXT["overview"], v(s.overview_table), v(s.overview_curves))),
        ("Label evolution", lambda v: _tab(TEXT["labels"], labels, v(s.label_status), v(s.label_plots),
                                           v(s.label_quality_plot))),
        ("Clusters", lambda v: _tab(
            TEXT["clusters"], _rebuilt(lambda: w.Select.from_param(p.cluster, name="cluster"), p.run),
            _controls(v(s.cluster_plot), v(s.cluster_table)), v(s.cluster_gallery))),
        ("SCAM", lambda v: _tab(TEXT["scam"], _controls(w.Select.from_param(p.split, name="split", width=160),
                                                        images()), v(s.scam_toggle), v(s.scam_plots))),
        ("Attributions", lambda v: _tab(
            TEXT["attributions"],
            _controls(w.Select.from_param(p.split, name="split", width=160), images(),
                      _rebuilt(lambda: w.Select.from_param(p.model, name="model", width=160), p.run),
                      w.Select.from_param(p.method, name="method", width=200),
                      _rebuilt(lambda: w.Select.from_param(p.wrt, name="w.r.t.", width=160), p.run, p.model, p.method)),
            _controls(w.IntInput.from_param(p.target_y, name="target y", width=160),
                      w.IntInput.from_param(p.target_x, name="target x", width=160),
                      w.IntSlider.from_param(p.radius, name="window radius", width=220)),
            v(s.attribution_plot))),
        ("False alarms", lambda v: _tab(
            TEXT["false_alarms"],
            _controls(_rebuilt(lambda: w.Select.from_param(p.fa_folder, name="dataset folder", width=420), p.run),
                      _rebuilt(lambda: w.Select.from_param(p.fa_split, name="split", width=160), p.run,
                               p.fa_folder)),
            v(s.false_alarm_view))),
        ("Comparison", lambda v: _tab(TEXT["compare"], v(s.comparison_table))),
    ]
    tabs.extend((name, _when_open(tabs, i, page(opened(i)))) for i, (name, page) in enumerate(pages))
    header = pn.Row(pn.pane.Markdown("## semprior dashboard"), w.Select.from_param(p.run, name="run", width=420))
    return pn.Column(header, tabs, sizing_mode="stretch_width")


@dataclass
class DashboardServer:
    """A dashboard served from a background thread."""

    url: str
    port: int
    thread: threading.Thread

    def stop(self) -> None:
        self.thread.stop()
        self.thread.join(timeout=10)

    def wait(self) -> None:
        """Block until interrupted (Ctrl-C), then stop."""
        try:
            while self.thread.is_alive():
                self.thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()


def is_loopback(host: str) -> bool:
    """Whether ``host`` resolves to a loopback address only."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def bindable_port(host: str, port: int) -> int:
    """``port`` if it can be bound on ``host`` (OSError otherwise, before any thread starts); 0: a free port."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, port))
        return sock.getsockname()[1]


def serve(run_dirs: Iterable[str | Path], host: str = "127.0.0.1", port: int = 0, show: bool = False, *,
          allow_remote: bool = False, data: Iterable[str | Path] = ()) -> DashboardServer:
    """Serve the dashboard of ``run_dirs`` (runs, or folders of runs) at ``http://host:port/`` in a background
    thread (``port=0``: a free port); ``data``: more dataset folders for the false-alarm tab. Hosts other than loopback need ``allow_remote=True``: see the module
    docstring for what that exposes. Call ``.wait()`` on the result to block, ``.stop()`` to end."""
    run_dirs, data = [Path(p) for p in run_dirs], [Path(d) for d in data]
    check_host(host, allow_remote, "exposes the runs to the network")
    # Fails here, not in the browser, when there is no run; rendering once also pays the one-off costs
    # (plotting modules, the runs' files) before the URL is given, not in the first visitor's response.
    build_app(run_dirs, data).get_root()
    return serve_page(lambda: build_app(run_dirs, data), "semprior dashboard", host, port, show, allow_remote)


def check_host(host: str, allow_remote: bool, exposure: str) -> None:
    """Refuse a non-loopback ``host`` unless remote access is explicit; ``exposure`` says what it would expose."""
    if not allow_remote and not is_loopback(host):
        raise ValueError(f"{host!r} is not a loopback address: serving there {exposure}; "
                         "pass allow_remote=True (--allow-remote) if that is intended")


def serve_page(build, title: str, host: str, port: int, show: bool, allow_remote: bool) -> DashboardServer:
    """Serve the Panel page ``build()`` (one per browser session) from a background thread; returns once
    the port accepts connections. Websocket origins are the loopback names unless remote access is allowed."""
    port = bindable_port(host, port)
    origins = ["*"] if allow_remote else [f"{h}:{port}" for h in ("localhost", "127.0.0.1", host)]
    thread = pn.serve({"/": build}, port=port, address=host, websocket_origin=origins,
                      show=show, threaded=True, title=title, verbose=False)
    _wait_listening("127.0.0.1" if host in ("0.0.0.0", "::") else host, port, thread)
    return DashboardServer(f"http://{host}:{port}/", port, thread)


def _wait_listening(host: str, port: int, thread: threading.Thread, timeout: float = 60.0) -> None:
    """Return once the server accepts connections, so that the URL works when :func:`serve` returns."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and thread.is_alive():
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the dashboard server did not start listening on {host}:{port}")
