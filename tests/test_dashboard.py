"""The Panel dashboard: its state class on the tiny runs, the serve() safety checks, and (browser) every tab
rendered by Debian's chromium through Playwright."""

from __future__ import annotations

import socket
from pathlib import Path

import holoviews as hv
import panel as pn
import pytest

from tests.fixtures_runs import tiny_run, tiny_supervised_run  # noqa: F401
from workbench.dashboard import DashboardState, serve
from workbench.dashboard.app import bindable_port, is_loopback

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def state(tiny_run, tiny_supervised_run) -> DashboardState:  # noqa: F811
    return DashboardState([tiny_run, tiny_supervised_run])


def _select(state: DashboardState, name: str) -> None:
    state.run = next(label for label in state.param.run.objects if Path(label).name == name)


def _markdown(view) -> str:
    return view.object if isinstance(view, pn.pane.Markdown) else ""


# -- state -------------------------------------------------------------------------------------
def test_state_lists_the_runs_and_fills_selections_from_the_semprior_run(state):
    assert sorted(Path(label).name for label in state.param.run.objects) == ["semprior", "supervised"]
    _select(state, "semprior")
    assert len(state.param.label_image.objects) == 8  # 10 training images, 2 carved for validation
    assert state.param.label_update.bounds == (0, 2) and state.label_update == 2  # 3 updates, latest shown
    assert state.param.cluster.objects == [0, 1]
    assert state.param.model.objects == ["student", "teacher"]
    assert len(state.param.image.objects) == 3  # the test split
    state.model = "teacher"
    assert state.param.wrt.objects == ["image", "vfm"]
    state.model = "student"
    assert state.param.wrt.objects == ["image"]


def test_label_status_follows_the_update_parameter(state):
    _select(state, "semprior")
    state.label_update = 2
    assert "Update 2 of 2" in _markdown(state.label_status())
    state.label_update = 0
    assert "Update 0 of 2" in _markdown(state.label_status())
    assert isinstance(state.label_plots(), hv.Layout)
    state.label_update = 2


def test_state_views_return_plots_for_a_semprior_run(state):
    _select(state, "semprior")
    assert isinstance(state.overview_table(), pn.pane.DataFrame)
    assert "val (carved from train)" in state.overview_table().object["split"].tolist()
    for view in (state.overview_curves, state.label_quality_plot, state.scam_plots, state.scam_toggle):
        assert isinstance(view(), hv.Layout), view.__name__
    gallery = state.cluster_gallery()
    assert "5 of its 5 images" in gallery[0].object and len(gallery[1]) == 5  # cluster 0's images
    assert isinstance(state.cluster_plot(), hv.Overlay)
    attribution = state.attribution_plot()
    assert "positive attribution inside the window" in attribution[0].object
    table = state.comparison_table().object
    assert set(table["model"]) == {"student", "teacher"} and (table["n"] == 1).all()


def test_state_explains_what_a_supervised_run_lacks(state):
    _select(state, "supervised")
    assert state.param.model.objects == ["student"] and state.param.cluster.objects == []
    assert "no cluster weights" in _markdown(state.cluster_plot())
    assert "no SCAM teacher" in _markdown(state.scam_plots())
    assert isinstance(state.label_plots(), hv.Layout)  # LESPS labels evolve without a teacher
    _select(state, "semprior")


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
@pytest.fixture(scope="module")
def page(tiny_run, tiny_supervised_run):  # noqa: F811
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium (/usr/bin/chromium) is not installed: run .ci/install-browser.sh")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    server = serve([tiny_run, tiny_supervised_run])
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1500, "height": 1100})
        pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        pg.set_default_timeout(60_000)
        pg.goto(server.url)
        pg.problems = problems
        yield pg
        pg.goto("about:blank")  # close the session before the server goes
        browser.close()
    server.stop()


def _open_tab(page, title: str, expected: str):
    page.locator(".bk-tab", has_text=title).click()
    page.get_by_text(expected).first.wait_for()


# Bokeh draws plot titles on a canvas: read them from the Bokeh documents of the page.
PLOT_TITLES = """() => [...Bokeh.documents].flatMap(d => [...d.all_models])
    .filter(m => m.constructor.__name__ === 'Title').map(m => m.text)"""


def _wait_for_plots(page, prefixes: list[str]) -> None:
    """Wait until, for every prefix, a plot whose title starts with it is on the page."""
    page.wait_for_function(
        f"() => {{ const t = ({PLOT_TITLES})(); return {prefixes!r}.every(p => t.some(x => x.startsWith(p))); }}")


TABS = [  # tab, its explanatory text, texts in the page, plot title prefixes
    ("Overview", "Every row of the table names the split", ["val (carved from train)"],
     ["training losses", "validation (carved from train)"]),
    ("Label evolution", "Point-supervised training starts", ["Update 2 of 2"],
     ["pseudo-mask IoU vs GT", "teacher · best.pt", "student · best.pt"]),
    ("Clusters", "learns one loss weight per cluster", ["last_weight", "data/syn_0000"], ["cluster weight per meta step"]),
    ("SCAM", "modulates its encoder features", [],
     ["stage 0 ← VFM block 1: g·γ", "stage 1 ← VFM block 2: gate g", "teacher, SCAM off"]),
    ("Attributions", "explained with Captum", ["positive attribution inside the window"],
     ["integrated_gradients · student · w.r.t. image"]),
    ("Comparison", "differ only in their seed", ["method.name=semprior", "method.name=supervised"], []),
]  # fmt: skip


@pytest.mark.browser
@pytest.mark.parametrize(("title", "intro", "texts", "plots"), TABS, ids=[t[0] for t in TABS])
def test_each_tab_renders_its_text_and_plots(page, title, intro, texts, plots):
    _open_tab(page, title, intro)
    for text in texts:
        page.get_by_text(text).first.wait_for()
    _wait_for_plots(page, plots)
    page.wait_for_timeout(300)  # let the canvases paint before the screenshot
    page.screenshot(path=str(ARTIFACTS / f"dashboard_{title.split()[0].lower()}.png"), full_page=True)


@pytest.mark.browser
def test_moving_the_label_slider_changes_the_shown_update(page):
    _open_tab(page, "Label evolution", "Point-supervised training starts")
    page.get_by_text("Update 2 of 2").wait_for()
    handle = page.locator(".noUi-handle").first
    handle.focus()
    page.keyboard.press("ArrowLeft")
    page.get_by_text("Update 1 of 2").wait_for()
    page.keyboard.press("Home")
    page.get_by_text("Update 0 of 2").wait_for()
    assert page.get_by_text("Update 2 of 2").count() == 0
    # The image panel follows: its title names the update shown.
    page.wait_for_function(f"() => ({PLOT_TITLES})().some(t => t.endsWith('· update 0 (epoch 0)'))")
    page.screenshot(path=str(ARTIFACTS / "dashboard_label_update0.png"), full_page=True)


@pytest.mark.browser
def test_choosing_a_cluster_shows_its_images(page):
    _open_tab(page, "Clusters", "learns one loss weight per cluster")
    gallery = page.locator(".cluster-gallery img")
    gallery.first.wait_for()
    assert gallery.count() == 5
    page.locator("select:has(> option[value='1'])").select_option("1")  # the cluster selector
    page.get_by_text("data/syn_0000").wait_for(state="detached")  # image 0 belongs to cluster 0
    assert gallery.count() == 3


@pytest.mark.browser
def test_the_browser_console_has_no_errors(page):
    # Runs after the tab tests (file order): every tab has been opened by now.
    page.wait_for_timeout(500)
    assert page.problems == []
