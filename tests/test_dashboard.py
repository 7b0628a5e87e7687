"""The Panel dashboard: its state class on the tiny runs, the serve() safety checks, and (browser) every tab of
a point-supervised, a semprior and a classical run rendered at laptop size (1400×900) by Debian's chromium
through Playwright."""

from __future__ import annotations

import io
import logging
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import panel as pn
import pytest
from bokeh.models import Plot, Tabs, Title
from bokeh.models.widgets.markups import Markup

import semprior_core.evaluation.evaluate as evaluate
import workbench.inspect as wi
from tests.fixtures_runs import tiny_classical_run, tiny_run, tiny_supervised_run  # noqa: F401
from workbench.dashboard import DashboardState, build_app, serve
from workbench.dashboard.app import FA_GALLERY, bindable_port, is_loopback, run_label
from workbench.inspect.imaging import box_outline

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
SHOTS = ARTIFACTS / "ui"  # every tab of every run kind
# SEMPRIOR_UI_DOCS=1 also writes small copies of the semprior and top-hat runs' tabs here (README.md shows two)
DOCS_SHOTS, DOCS_RUNS, DOCS_MAX_BYTES = ROOT / "docs" / "figures" / "ui", ("semprior", "tophat"), 300_000
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
VIEWPORT = {"width": 1400, "height": 900}


@pytest.fixture(scope="module")
def clutter(tmp_path_factory) -> Path:
    """A dataset folder the runs were not trained on: 6 test frames, half of them target-free with clutter."""
    from semprior_core.data.synthetic import SyntheticConfig, generate

    return generate(tmp_path_factory.mktemp("other") / "clutter", SyntheticConfig(
        n_train=0, n_test=6, seed=7, height=64, width=64, size_range=None, max_targets=2, empty_fraction=0.5,
        empty_clutter=1.0))


@pytest.fixture(scope="module")
def state(tiny_run, tiny_supervised_run, tiny_classical_run, clutter) -> DashboardState:  # noqa: F811
    return DashboardState([tiny_run, tiny_supervised_run, tiny_classical_run], data=[clutter])


def _select(state: DashboardState, name: str) -> None:
    state.run = next(label for label in state.param.run.objects if Path(label).name == name)


def _markdown(view) -> str:
    return view.object if isinstance(view, pn.pane.Markdown) else ""


def _plots(view) -> dict[str, Plot]:
    """The Bokeh figures a view renders to, by title."""
    root = pn.panel(view).get_root()
    return {p.title.text: p for p in root.select({"type": Plot}) if isinstance(p.title, Title)}


# -- state -------------------------------------------------------------------------------------
def test_state_lists_the_runs_and_fills_selections_from_the_semprior_run(state):
    assert sorted(Path(label).name for label in state.param.run.objects) == ["semprior", "supervised", "tophat"]
    _select(state, "semprior")
    assert len(state.param.label_image.objects) == 8  # 10 training images, 2 carved for validation
    assert state.label_image == wi.most_changed_image(state.handle)  # opens where the labels changed most
    assert state.param.label_update.bounds == (0, 2) and state.label_update == 2  # 3 updates, latest shown
    assert state.param.cluster.objects == [0, 1]
    assert state.param.model.objects == ["student", "teacher"]
    assert len(state.param.image.objects) == 3  # the test split
    state.model = "teacher"
    assert state.param.wrt.objects == ["image", "vfm"]
    state.model = "student"
    assert state.param.wrt.objects == ["image"]


def test_label_status_and_image_title_name_the_same_update(state):
    _select(state, "semprior")
    for update, caption in ((2, "update 2/2 · after 2 training epochs"), (0, "update 0/2 · initial point labels")):
        state.label_update = update
        assert caption in _markdown(state.label_status())
        titles = list(_plots(state.label_plots()))
        assert f"{state.label_image} · {caption}" in titles and f"close-up · {caption}" in titles
    state.label_update = 2


def test_label_quality_plots_say_they_average_and_keep_a_fixed_range(state):
    _select(state, "semprior")
    plots = _plots(state.label_quality_plot())
    iou = plots["pseudo-mask IoU vs GT (mean over 8 training images)"]
    assert (iou.y_range.start, iou.y_range.end) == (0, 1)  # a flat line stays flat
    assert plots["pseudo-mask area (mean over 8 training images)"].y_range.start == 0


def test_colour_bars_are_titled_with_what_they_show(state):
    _select(state, "semprior")
    root = pn.panel(state.label_plots()).get_root()
    bars = [c.title for p in root.select({"type": Plot}) for c in p.right if hasattr(c, "color_mapper")]
    # bokeh's select walks a set of models, so only the multiset of titles is stable
    assert sorted(bars) == ["pseudo-mask value", "student probability", "teacher probability"]


def test_state_views_return_plots_for_a_semprior_run(state):
    _select(state, "semprior")
    assert isinstance(state.overview_table(), pn.pane.DataFrame)
    table = state.overview_table().object
    assert "val (carved from train)" in table["split"].tolist() and "point F1" in table.columns
    curves = _plots(state.overview_curves())
    assert curves["validation (carved from train)"].yaxis[0].axis_label == "score (%)"
    assert curves["training losses"].yaxis[0].axis_label == "loss"
    scam = _plots(state.scam_plots())
    assert {"stage 0 ← VFM block 1: g·γ", "stage 1 ← VFM block 2: gate g"} <= set(scam)
    assert len({p.title.text_font_size for p in scam.values()}) == 1  # gate titles in the maps' font size
    toggle = _plots(state.scam_toggle())
    assert f"{state.image} · targets" in toggle and "teacher, SCAM off" in toggle
    gallery = state.cluster_gallery()
    assert "5 of its 5 images" in gallery[0].object and len(gallery[1]) == 5  # cluster 0's images
    assert "cluster weight per meta step" in _plots(state.cluster_plot())
    attribution = state.attribution_plot()
    assert "positive attribution inside the window" in attribution[0].object


def test_attribution_choices_are_valid_and_the_plot_is_the_one_its_title_names(state):
    _select(state, "semprior")
    state.model, state.method, state.wrt = "teacher", "saliency", "vfm"
    assert "saliency · teacher · w.r.t. vfm" in _plots(state.attribution_plot()[1])
    state.method = "gradcam"  # Grad-CAM explains a layer: the VFM input is withdrawn, not left to fail
    assert state.param.wrt.objects == ["image"] and state.wrt == "image"
    assert "gradcam · teacher · w.r.t. image" in _plots(state.attribution_plot()[1])
    state.param.wrt.objects = ["image", "vfm"]  # a stale choice from elsewhere: a message, never an old plot
    state.wrt = "vfm"
    assert "Cannot explain this choice: gradcam cannot explain the teacher" in _markdown(state.attribution_plot())
    state.model, state.method = "student", "integrated_gradients"


def test_comparison_names_only_the_differing_settings(state):
    table = state.comparison_table()[-1].object
    groups = sorted(set(table["group"]))  # the two trained runs differ in their method and its settings only
    assert groups[0] == "classical.method=tophat" and groups[1].startswith("method.name=semprior, scam.hidden=8")
    assert groups[2].startswith("method.name=supervised, scam.hidden=64") and groups[2].endswith("vfm.name=none")
    assert groups[1].count("=") == groups[2].count("=") == 9  # of ~100 config keys
    assert set(table["data"]) == {"data"} and len(state.comparison_table()) == 1  # one dataset: no warning


def test_state_explains_what_a_supervised_run_lacks(state):
    _select(state, "supervised")
    assert state.param.model.objects == ["student"] and state.param.cluster.objects == []
    assert "no cluster weights" in _markdown(state.cluster_plot())
    assert "no SCAM teacher" in _markdown(state.scam_toggle())
    assert _plots(state.label_plots())  # LESPS labels evolve without a teacher
    _select(state, "semprior")


def test_a_classical_run_gets_messages_not_empty_axes(state):
    _select(state, "tophat")
    assert "classical run is tuned on the validation split" in _markdown(state.overview_curves())
    assert state.overview_table().object["model"].tolist() == ["tophat"]
    assert "no label history (a classical run" in _markdown(state.label_status())
    assert "no network to explain" in _markdown(state.attribution_plot())
    _select(state, "semprior")


def test_the_first_view_builds_no_network(tiny_run, tmp_path, monkeypatch):  # noqa: F811
    # A fresh copy: shared handles of the other tests may hold networks already.
    run = shutil.copytree(tiny_run, tmp_path / "fresh")

    def refuse(*_, **__):
        raise RuntimeError("a network was built")

    monkeypatch.setattr(evaluate, "build_network", refuse)
    app = build_app([run])
    root = app.get_root()  # the first tab, as a browser's first request gets it
    assert any("carved from train" in (m.text or "") for m in root.select({"type": Markup}))  # the metrics
    assert DashboardState([run]).param.model.objects == ["student", "teacher"]  # names, read without building
    titles = [t.title for t in root.select_one({"type": Tabs}).tabs]
    with pytest.raises(RuntimeError, match="a network was built"):  # the refusal bites where networks are needed
        app[1].active = titles.index("Attributions")


# -- false alarms ------------------------------------------------------------------------------
def test_box_outline_frames_the_box_from_outside_and_stops_at_the_border():
    drawn = np.zeros((6, 6), dtype=int)
    drawn[tuple(box_outline((2, 1, 4, 3), (6, 6)).T)] = 1  # rows 2-3, columns 1-2
    assert drawn.tolist() == [[0, 0, 0, 0, 0, 0],
                              [1, 1, 1, 1, 0, 0],
                              [1, 0, 0, 1, 0, 0],
                              [1, 0, 0, 1, 0, 0],
                              [1, 1, 1, 1, 0, 0],
                              [0, 0, 0, 0, 0, 0]]
    assert box_outline((0, 0, 2, 6), (6, 6)).tolist() == [[2, c] for c in range(6)]  # only the row below is inside
    with pytest.raises(ValueError, match="empty box"):
        box_outline((3, 3, 3, 4), (6, 6))


def test_false_alarm_table_names_size_peak_and_location():
    row = {"frame": "d/x", "area": 7, "y": 3.25, "x": 10.0, "top": 2, "left": 9, "bottom": 5, "right": 12,
           "peak": 0.875}
    assert wi.false_alarm_table([row]) == [{"image": "d/x", "size (px)": 7, "peak probability": 0.875,
                                            "centroid (y, x)": "(3.2, 10.0)", "box rows, columns": "[2, 5), [9, 12)"}]


def test_false_alarms_of_a_classical_run_largest_first_with_close_ups(state, tiny_classical_run, clutter):  # noqa: F811
    _select(state, "tophat")
    own = tiny_classical_run.parent / "data"  # the tiny runs' dataset (tests/fixtures_runs.py)
    assert state.param.fa_folder.objects == [run_label(own), run_label(clutter)]  # its own data first
    assert state.param.fa_split.objects == ["test"]  # its own data: scoring all images would score training ones
    rows = wi.false_alarms(tiny_classical_run, state.fa_folder)
    assert rows, "the top-hat finds clutter in the tiny test split"
    view = state.false_alarm_view()
    assert f"**{len(rows)} false-alarm objects** on the test split of" in view[0].object
    table = view[1].object
    assert table["image"].tolist() == [r["frame"] for r in rows]
    assert table["size (px)"].tolist() == sorted(table["size (px)"], reverse=True)
    cards = view[3]
    assert len(cards) == min(len(rows), FA_GALLERY)
    patch, _ = wi.false_alarm_patch(state.fa_folder, rows[0])
    assert (cards[0][1].width, cards[0][1].height) == (3 * patch.shape[1], 3 * patch.shape[0])
    assert f"`{rows[0]['frame']}` · {rows[0]['area']} px" in cards[0][0].object
    state.fa_folder = run_label(clutter)  # another folder: all its images may be scored, target-free ones too
    assert state.param.fa_split.objects == ["test", "all"]
    state.fa_split = "all"
    other = wi.false_alarms(tiny_classical_run, clutter, split="all")
    assert f"**{len(other)} false-alarm objects** on all images of" in state.false_alarm_view()[0].object
    _select(state, "semprior")  # another run on the same data: the chosen folder and split stay
    assert (state.fa_folder, state.fa_split) == (run_label(clutter), "all")
    state.fa_folder = run_label(own)
    assert state.param.fa_split.objects == ["test"] and state.fa_split == "test"


def test_runs_that_cannot_predict_and_folders_without_masks_get_a_message(  # noqa: F811
        tiny_supervised_run, tiny_classical_run, clutter, tmp_path):  # noqa: F811
    run = shutil.copytree(tiny_supervised_run, tmp_path / "untrained", ignore=shutil.ignore_patterns("*.pt"))
    text = _markdown(DashboardState([run]).false_alarm_view())
    assert "Cannot list this run's false alarms" in text and "checkpoint not found" in text
    bare = tmp_path / "no_masks"
    for part in ("images", "splits"):
        shutil.copytree(clutter / part, bare / part)
    s = DashboardState([tiny_classical_run], data=[bare])
    s.fa_folder = run_label(bare)
    assert "no masks/ folder" in _markdown(s.false_alarm_view())


def test_serve_binds_loopback_unless_remote_access_is_explicit(tiny_run):  # noqa: F811
    assert is_loopback("127.0.0.1") and is_loopback("localhost")
    assert not is_loopback("192.0.2.1")  # TEST-NET-1, documentation-only address
    with pytest.raises(ValueError, match="allow_remote"):
        serve([tiny_run], host="0.0.0.0")
    with pytest.raises(ValueError, match="no run directory"):
        serve([tiny_run / "labels"])
    port = bindable_port("127.0.0.1", 0)
    assert port > 0 and bindable_port("127.0.0.1", port) == port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError):
            serve([tiny_run], port=busy.getsockname()[1])


# -- browser -----------------------------------------------------------------------------------
class _Errors(logging.Handler):
    """Server-side errors (an exception in a callback is logged by Bokeh's server, never shown in the page)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record))


@pytest.fixture(scope="module")
def page(tiny_run, tiny_supervised_run, tiny_classical_run, clutter):  # noqa: F811
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium (/usr/bin/chromium) is not installed: run .ci/install-browser.sh")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    server = serve([tiny_run, tiny_supervised_run, tiny_classical_run], data=[clutter])
    problems: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            pg = browser.new_page(viewport=VIEWPORT)
            pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            pg.set_default_timeout(60_000)
            pg.goto(server.url)
            pg.problems, pg.server_errors = problems, errors.records
            yield pg
            pg.goto("about:blank")  # close the session before the server goes
            browser.close()
    finally:
        server.stop()
        logging.getLogger().removeHandler(errors)


def _show_run(page, name: str) -> None:
    """Choose the run whose folder is ``name`` in the header's run selector (the page's first select)."""
    select = page.locator("select").first
    select.locator("option").first.wait_for(state="attached")  # the page has loaded
    label = next(o for o in select.locator("option").all_inner_texts() if Path(o).name == name)
    if select.input_value() != label:
        select.select_option(label)


# A phrase of each tab's description: shown once the server has put the tab's page in (with its views).
DESCRIPTIONS = {
    "Overview": "Every row of the table names the split", "Label evolution": "starts from one click per target",
    "Clusters": "groups its training images into clusters", "SCAM": "modulates its encoder features",
    "Attributions": "explained with Captum", "False alarms": "mistakes for a target",
    "Comparison": "differ only in their seed",
}  # fmt: skip


def _open_tab(page, title: str, expected: str):
    page.locator(".bk-tab", has_text=title).click()
    # First the description: ``expected`` may also be in the page of the tab just closed, until the server
    # has swapped it out (the Comparison's table names the splits as the Overview's does).
    page.get_by_text(DESCRIPTIONS[title]).wait_for()
    page.get_by_text(expected).first.wait_for()


# Bokeh draws plot titles on a canvas: read them from the Bokeh documents of the page.
PLOT_TITLES = """() => [...Bokeh.documents].flatMap(d => [...d.all_models])
    .filter(m => m.constructor.__name__ === 'Title').map(m => m.text)"""
# Elements (shadow roots included, where Bokeh renders) that end right of the window: cut off at this width.
OVERFLOW = """() => {
    const out = [];
    const walk = root => root.querySelectorAll('*').forEach(el => {
        if (el.shadowRoot) walk(el.shadowRoot);
        const r = el.getBoundingClientRect();
        if (r.width > 0 && r.height > 0 && r.right > window.innerWidth + 1) out.push(`${el.tagName}.${el.className} ${r.right}`);
    });
    walk(document);
    return out.concat(document.documentElement.scrollWidth > window.innerWidth ? ['page scrolls sideways'] : []);
}"""
# Bounding boxes of the plots on screen, top to bottom, left to right (one per plot: Bokeh stacks canvases).
CANVASES = """() => {
    const out = new Map();
    const walk = root => root.querySelectorAll('*').forEach(el => {
        if (el.shadowRoot) walk(el.shadowRoot);
        const r = el.getBoundingClientRect();
        if (el.tagName === 'CANVAS' && r.width > 50) out.set(`${r.x},${r.y}`, {x: r.x, y: r.y, width: r.width, height: r.height});
    });
    walk(document);
    return [...out.values()].sort((a, b) => a.y - b.y || a.x - b.x);
}"""


def _wait_for_plots(page, prefixes: list[str]) -> None:
    """Wait until, for every prefix, a plot whose title starts with it is on the page."""
    page.wait_for_function(
        f"() => {{ const t = ({PLOT_TITLES})(); return {prefixes!r}.every(p => t.some(x => x.startsWith(p))); }}")


# run -> tab -> (a text the tab shows for that run, plot title prefixes)
TABS = {
    "supervised": {
        "Overview": ("val (carved from train)", ["training losses", "validation (carved from train)"]),
        "Label evolution": ("update 1/1 · after 1 training epoch", ["pseudo-mask IoU vs GT", "close-up · update 1/1",
                                                                    "student · best.pt"]),
        "Clusters": ("no cluster weights", []),
        "SCAM": ("no SCAM teacher", []),
        "Attributions": ("positive attribution inside the window", ["integrated_gradients · student · w.r.t. image"]),
        "False alarms": ("the test split of", []),
        "Comparison": ("classical.method=tophat", []),
    },
    "tophat": {
        "Overview": ("classical run is tuned", []),
        "Label evolution": ("no label history", []),
        "Clusters": ("no cluster weights", []),
        "SCAM": ("no SCAM teacher", []),
        "Attributions": ("no network to explain", []),
        "False alarms": ("false-alarm objects on the test split of", []),
        "Comparison": ("method.name=semprior", []),
    },
    "semprior": {
        "Overview": ("val (carved from train)", ["training losses"]),
        "Label evolution": ("update 2/2 · after 2 training epochs", ["teacher · best.pt", "student · best.pt"]),
        "Clusters": ("last_weight", ["cluster weight per meta step"]),
        "SCAM": ("modulates its encoder features", ["stage 0 ← VFM block 1: g·γ", "stage 1 ← VFM block 2: gate g",
                                                    "teacher, SCAM off"]),
        "Attributions": ("positive attribution inside the window", ["integrated_gradients · student · w.r.t. image"]),
        "False alarms": ("the test split of", []),
        "Comparison": ("method.name=supervised", []),
    },
}  # fmt: skip
CASES = [(run, tab) for run, tabs in TABS.items() for tab in tabs]


@pytest.mark.browser
@pytest.mark.parametrize(("run", "tab"), CASES, ids=[f"{r}-{t}" for r, t in CASES])
def test_each_tab_fits_the_window_and_shows_its_content(page, run, tab):
    _show_run(page, run)
    text, plots = TABS[run][tab]
    _open_tab(page, tab, text)
    _wait_for_plots(page, plots)
    page.wait_for_timeout(300)  # let the canvases paint before measuring and the screenshot
    assert page.evaluate(OVERFLOW) == [], f"{run}/{tab} is wider than {VIEWPORT['width']} px"
    if tab in ("Label evolution", "SCAM") and plots:  # the image panel shows the selected image
        chosen = page.locator("select:has(> option[value^='data/syn_'])").input_value()
        assert any(t.startswith(f"{chosen} · ") for t in page.evaluate(PLOT_TITLES)), chosen
    name = f"{run}_{tab.lower().replace(' ', '_')}.png"
    shot = page.screenshot(path=str(SHOTS / name), full_page=True)
    if os.environ.get("SEMPRIOR_UI_DOCS") and run in DOCS_RUNS:
        _write_small(shot, DOCS_SHOTS / name)
    assert page.server_errors == []


def _write_small(png: bytes, path: Path) -> None:
    """A screenshot in 256 colours: the flat UI colours and colour bars survive, the file stays small."""
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256).save(buf, format="PNG", optimize=True)
    assert len(buf.getvalue()) < DOCS_MAX_BYTES, f"{path.name}: {len(buf.getvalue())} bytes"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


@pytest.mark.browser
def test_the_label_image_changes_between_first_and_last_update(page):
    _show_run(page, "supervised")
    _open_tab(page, "Label evolution", "update 1/1")
    _wait_for_plots(page, ["close-up · update 1/1"])
    page.wait_for_timeout(300)

    def close_up() -> bytes:  # the close-up's pixels below its title (which names the update anyway)
        box = page.evaluate(CANVASES)[1]
        return page.screenshot(clip={"x": box["x"], "y": box["y"] + 30, "width": box["width"],
                                     "height": box["height"] - 60})

    last = close_up()
    handle = page.locator(".noUi-handle").first
    handle.press("Home")  # as in the slider test: Locator.press waits until the handle takes input
    page.get_by_text("update 0/1 · initial point labels").first.wait_for()
    _wait_for_plots(page, ["close-up · update 0/1"])
    page.wait_for_timeout(300)
    assert close_up() != last
    handle.press("End")
    page.get_by_text("update 1/1 · after 1 training epoch").first.wait_for()


def _slide(page, key: str, shown: str, before: str) -> None:
    """Press ``key`` on the label slider until the page shows ``shown``. On a loaded machine a key can reach
    the handle before the slider listens; it is pressed again only while the page still shows ``before``
    (so an arrow key never steps twice)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    handle = page.locator(".noUi-handle").first
    for _ in range(3):
        handle.press(key)  # waits until the handle can take input, and focuses it
        try:
            page.get_by_text(shown).first.wait_for(timeout=15_000)
            return
        except PlaywrightTimeout:
            if not page.get_by_text(before).count():
                raise
    page.get_by_text(shown).first.wait_for()


@pytest.mark.browser
def test_moving_the_label_slider_changes_the_shown_update(page):
    _show_run(page, "semprior")
    _open_tab(page, "Label evolution", "update 2/2")
    page.get_by_text("label update (0 = initial point labels): 2").wait_for()  # the slider has the run's range
    _slide(page, "ArrowLeft", "update 1/2 · after 1 training epoch", "update 2/2")
    handle = page.locator(".noUi-handle").first
    handle.press("Home")
    page.get_by_text("update 0/2 · initial point labels").first.wait_for()
    assert page.get_by_text("update 2/2").count() == 0
    # The image panel follows: its title names the update shown, as the status line does.
    page.wait_for_function(f"() => ({PLOT_TITLES})().some(t => t.endsWith('· update 0/2 · initial point labels'))")
    handle.press("End")
    page.get_by_text("update 2/2").first.wait_for()


@pytest.mark.browser
def test_attribution_selectors_offer_only_what_can_be_explained(page):
    _show_run(page, "semprior")
    _open_tab(page, "Attributions", "explained with Captum")
    model = page.locator("select:has(> option[value='teacher'])")
    method = page.locator("select:has(> option[value='gradcam'])")
    model.select_option("teacher")
    method.select_option("saliency")
    _wait_for_plots(page, ["saliency · teacher · w.r.t. image"])  # processed: the w.r.t. selector is rebuilt
    page.locator("select:has(> option[value='vfm'])").select_option("vfm")
    _wait_for_plots(page, ["saliency · teacher · w.r.t. vfm"])
    method.select_option("gradcam")
    _wait_for_plots(page, ["gradcam · teacher · w.r.t. image"])
    # no longer offered (the selector is rebuilt in a message of its own, maybe after the plot's)
    page.locator("select:has(> option[value='vfm'])").wait_for(state="detached")
    page.wait_for_timeout(300)
    assert len(page.evaluate(CANVASES)) == 2  # image and map: the VFM blocks' maps of the old plot are gone
    method.select_option("integrated_gradients")
    model.select_option("student")
    assert page.server_errors == []


@pytest.mark.browser
def test_choosing_a_cluster_shows_its_images(page):
    _show_run(page, "semprior")
    _open_tab(page, "Clusters", "learns one loss weight per cluster")
    gallery = page.locator(".cluster-gallery img")
    gallery.first.wait_for()
    assert gallery.count() == 5
    page.locator("select:has(> option[value='1'])").select_option("1")  # the cluster selector
    page.get_by_text("data/syn_0000").wait_for(state="detached")  # image 0 belongs to cluster 0
    assert gallery.count() == 3


@pytest.mark.browser
def test_false_alarm_close_ups_follow_the_chosen_folder_and_split(page, tiny_classical_run, clutter):  # noqa: F811
    _show_run(page, "tophat")
    _open_tab(page, "False alarms", "false-alarm objects on the test split of")
    gallery = page.locator(".false-alarm-gallery img")
    gallery.first.wait_for()
    assert gallery.count() == min(len(wi.false_alarms(tiny_classical_run, tiny_classical_run.parent / "data")),
                                  FA_GALLERY)
    other = run_label(clutter)
    page.locator(f"select:has(> option[value='{other}'])").select_option(other)
    page.get_by_text(f"on the test split of {other}").first.wait_for()  # processed: the split selector is rebuilt
    page.locator("select:has(> option[value='all'])").select_option("all")  # offered: the run did not train on it
    found = len(wi.false_alarms(tiny_classical_run, clutter, split="all"))
    page.get_by_text(f"{found} false-alarm objects on all images of {other}").wait_for()
    assert gallery.count() == min(found, FA_GALLERY)
    page.wait_for_timeout(300)
    assert page.evaluate(OVERFLOW) == [] and page.server_errors == []


@pytest.mark.browser
def test_the_browser_console_and_the_server_log_have_no_errors(page):
    # Runs after the tab tests (file order): every tab of every run has been opened by now.
    page.wait_for_timeout(500)
    assert page.problems == [] and page.server_errors == []
