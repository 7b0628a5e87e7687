"""Notebooks run headless on the tiny fixture runs (marimo: exported by workbench.notebook_export, which runs
``marimo export html`` and fails when a cell fails, then writes a static page that must open offline; Jupyter:
executed through nbclient), and background training (workbench.live) stops and resumes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from tests.fixtures_runs import tiny_classical_run, tiny_run  # noqa: F401
from workbench.live import LiveTraining, session
from workbench.notebook_export import (
    NotebookExportError,
    display_path,
    main,
    read_marimo_export,
    relative_paths,
    render_page,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
# marimo notebook -> figures it must show on the fixture run
MARIMO = {"label_evolution": 2, "cluster_weights": 2, "scam_modulation": 2, "attributions": 1, "live_training": 2,
          "false_alarms": 1}
CLASSICAL = ("false_alarms",)  # opened on the top-hat run, which has false alarms on its test split
JUPYTER = ("label_evolution", "live_training")
_EXECUTE = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], 4)
NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": sys.argv[3]}}).execute()
nbformat.write(nb, sys.argv[2])
"""


@pytest.fixture(scope="module")
def executed(tiny_run, tiny_classical_run, tmp_path_factory) -> dict:  # noqa: F811
    """Every notebook run at once (separate processes: the slow part is each one's start-up). The marimo
    exports run from the folder holding the runs and their data, as from a checkout holding runs/: the pages
    must then name no absolute path (``base``)."""
    out = tmp_path_factory.mktemp("notebooks")
    base = tiny_run.parents[1]
    env = os.environ | {"SEMPRIOR_RUN": str(tiny_run), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = {}
    for name in MARIMO:
        run = tiny_classical_run if name in CLASSICAL else tiny_run
        cmd = [sys.executable, "-m", "workbench.notebook_export", str(NOTEBOOKS / f"{name}.py"), "--run", str(run),
               "--out", str(out)]
        procs[f"{name}.py"] = subprocess.Popen(cmd, env=env, cwd=base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for name in JUPYTER:
        cmd = [sys.executable, "-c", _EXECUTE, str(NOTEBOOKS / f"{name}.ipynb"), str(out / f"{name}.ipynb"), str(ROOT)]
        procs[f"{name}.ipynb"] = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    results = {}
    for key, proc in procs.items():
        log, _ = proc.communicate(timeout=300)
        results[key] = (proc.returncode, log.decode(errors="replace"))
    return {"dir": out, "base": base, "results": results}


@pytest.mark.parametrize("name", list(MARIMO))
def test_marimo_notebook_runs_headless_and_shows_its_figures(executed, name):
    rc, log = executed["results"][f"{name}.py"]
    assert rc == 0, log[-3000:]
    assert "warning" not in log, log  # an output shown as a placeholder: the static page lacks it
    html = (executed["dir"] / f"{name}.html").read_text()
    assert html.count('<img src="data:image/png') >= MARIMO[name], "a view was stopped (mo.stop) or drew nothing"


@pytest.mark.parametrize("name", list(MARIMO))
def test_marimo_export_loads_nothing_and_names_no_absolute_path(executed, name):
    html = (executed["dir"] / f"{name}.html").read_text()
    assert not re.search(r"<(script|link|iframe|object|embed)\b|@import", html, re.I)
    sources = re.findall(r"""\b(?:src|srcset|poster|data)\s*=\s*["']?([^"'\s>]*)|url\(\s*["']?([^"')]*)""", html, re.I)
    assert [u for pair in sources for u in pair if u and not u.startswith("data:")] == []
    for path in (executed["base"], ROOT, Path.home()):
        assert f"{path}/" not in html and f"{path}<" not in html, path
    assert "runs/" in html  # the run, named relative to where the export ran


@pytest.mark.browser
def test_marimo_exports_render_offline_in_chromium(executed):
    """Opened from the file in a browser whose every network request fails: it asks for nothing but the file,
    draws every figure and fits a 1400 px window."""
    from tests.test_dashboard import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium (/usr/bin/chromium) is not installed: run .ci/install-browser.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900}, offline=True)
        for name in ("label_evolution", "false_alarms"):
            page = context.new_page()
            requests = []
            page.on("request", lambda r: requests.append(r.url))  # noqa: B023 (read before the next page)
            url = (executed["dir"] / f"{name}.html").as_uri()
            page.goto(url)
            assert requests == [url]
            widths = page.evaluate("[...document.images].map(i => i.complete ? i.naturalWidth : 0)")
            assert len(widths) >= MARIMO[name] and min(widths) > 0
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
            assert page.locator("h1").first.inner_text() == name.replace("_", " ").capitalize()
            page.close()
        browser.close()


def _widget_outputs(nb) -> list[dict]:
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return [o for m in state.values() if m["model_name"] == "OutputModel" for o in m["state"].get("outputs", [])]


@pytest.mark.parametrize("name", JUPYTER)
def test_jupyter_notebook_runs_headless_and_draws_into_its_widgets(executed, name):
    rc, log = executed["results"][f"{name}.ipynb"]
    assert rc == 0, log[-3000:]
    nb = nbformat.read(executed["dir"] / f"{name}.ipynb", 4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    pngs = [o for o in _widget_outputs(nb) if "image/png" in o.get("data", {})]
    assert len(pngs) == 2  # label view + quality, or curves + latest pseudo-mask


@pytest.mark.parametrize("name", JUPYTER)
def test_jupyter_notebooks_are_stored_without_outputs(name):
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert "widgets" not in nb["metadata"]


# -- background training -------------------------------------------------------------------------
def test_live_training_checks_its_inputs(tmp_path):
    with pytest.raises(ValueError, match="section.key=value"):
        LiveTraining(tmp_path / "run", overrides=["epochs=3"])
    live = LiveTraining(tmp_path / "run")
    with pytest.raises(RuntimeError, match="nothing to resume"):
        live.resume()
    status = live.poll()
    assert (status.state, status.epoch, status.epochs, status.returncode) == ("new", 0, None, None)
    assert session(tmp_path / "run") is session(str(tmp_path / "run"))


def test_live_training_stops_and_resumes(tiny_run, tmp_path):  # noqa: F811
    """Stop a run after its first epoch (SIGINT keeps the last checkpoint), resume it for one more epoch."""
    # The fixture run's config, trained with dense masks (no label updates: quick epochs) and a constant
    # learning rate (nothing depends on the epoch budget, so a resume may cut it).
    overrides = ["method.name=supervised", "method.supervision=full", "train.epochs=40", "data.flips=false",
                 "train.schedule=constant"]
    live = LiveTraining(tmp_path / "run", config=tiny_run / "config.yaml", overrides=overrides)
    live.start()
    assert live.running
    with pytest.raises(RuntimeError, match="already running"):
        live.resume()
    first = live.wait_for_epoch(1, timeout=120)
    assert first.state == "running" and first.epoch >= 1, first.log_tail
    stopped = live.stop()
    assert stopped.state == "stopped" and stopped.returncode not in (None, 0)
    assert 1 <= stopped.epoch < 40 and (tmp_path / "run" / "last.pt").exists()
    with pytest.raises(RuntimeError, match="already holds a run"):
        live.start()
    k = stopped.epoch
    live.resume([f"train.epochs={k + 1}"])
    done = live.wait(timeout=120)
    assert done.state == "finished" and done.returncode == 0, done.log_tail
    assert [r["epoch"] for r in done.history] == list(range(1, k + 2))  # no epoch lost or repeated
    assert done.epochs == k + 1 and done.progress == 1.0


class _Stopped(Exception):
    pass


class _FakeMarimo:
    """Just what workbench.notebook uses of marimo: stop() halts the cell, md() wraps text."""

    @staticmethod
    def stop(condition, output=None):
        if condition:
            raise _Stopped(output)

    @staticmethod
    def md(text):
        return text


def test_notebook_helper_opens_a_run_or_stops_with_a_hint(tiny_run, tmp_path):  # noqa: F811
    from workbench.notebook import open_run_or_stop

    assert open_run_or_stop(_FakeMarimo, str(tiny_run)).networks() == ["student", "teacher"]
    with pytest.raises(_Stopped, match="is not a run directory: train one with `semprior demo`"):
        open_run_or_stop(_FakeMarimo, str(tmp_path))


# -- the false-alarms notebook's pieces ----------------------------------------------------------
@pytest.fixture(scope="module")
def cluttered(tmp_path_factory) -> Path:
    """Another synthetic folder, a third of its frames target-free with structured clutter."""
    from semprior_core.data.synthetic import SyntheticConfig, generate

    root = tmp_path_factory.mktemp("cluttered") / "OTHER"
    generate(root, SyntheticConfig(n_train=4, n_test=6, seed=7, height=64, width=64, size_range=None,
                                   empty_fraction=0.34, empty_clutter=1.0))
    return root


def test_false_alarm_notebook_lists_largest_first_with_close_ups(tiny_classical_run, cluttered):  # noqa: F811
    import marimo as mo

    import workbench.inspect as wi
    from workbench import notebook as nb

    run = nb.open_run_or_stop(_FakeMarimo, str(tiny_classical_run))
    folders = wi.false_alarm_folders(run, [str(cluttered)])
    assert list(folders.values()) == [["test"], ["test", "all"]]  # its own data: test split only
    dropdown = nb.folder_dropdown(mo, folders, prefer=str(cluttered))
    assert dropdown.value == str(cluttered) and display_path(cluttered) in dropdown.options
    assert nb.folder_dropdown(mo, folders).value == next(iter(folders))

    rows = nb.false_alarms_or_stop(_FakeMarimo, run, str(cluttered), "all")
    assert rows == wi.false_alarms(tiny_classical_run, cluttered, split="all") and len(rows) > 1
    assert [r["area"] for r in rows] == sorted((r["area"] for r in rows), reverse=True)
    summary = nb.false_alarm_summary(rows, str(cluttered), "all")
    assert summary.startswith(f"**{len(rows)} false-alarm objects** on all images of `{display_path(cluttered)}`")
    assert ("close-ups show the first 12" in summary) == (len(rows) > nb.FA_CLOSE_UPS)

    shown = rows[:nb.FA_CLOSE_UPS]
    fig = nb.close_ups_figure(wi.false_alarm_gallery(cluttered, shown))
    drawn = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in drawn] == [f"{r['frame'].split('/')[-1]}\n{r['area']} px · peak {r['peak']:.2f}"
                                               for r in shown]
    cyan = np.all(drawn[0].images[0].get_array() == (0, 230, 255), axis=-1)  # the first object's box
    assert cyan.any() and not cyan[0].all()


def test_false_alarm_notebook_says_why_it_lists_nothing(tiny_run, tmp_path, cluttered):  # noqa: F811
    import workbench.inspect as wi
    from workbench import notebook as nb

    run = nb.open_run_or_stop(_FakeMarimo, str(tiny_run))
    (own,) = wi.false_alarm_folders(run)
    with pytest.raises(_Stopped, match=f"No false alarm on the test split of `{re.escape(display_path(own))}`"):
        nb.false_alarms_or_stop(_FakeMarimo, run, own, "test")  # 3 epochs: nothing above 0.5 on its test split
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "images").symlink_to(cluttered / "images")
    with pytest.raises(_Stopped, match="Cannot list the false alarms of `semprior` on all images of .*no masks/"):
        nb.false_alarms_or_stop(_FakeMarimo, run, str(tmp_path / "frames"), "all")


# -- the static export's pieces ------------------------------------------------------------------
def test_paths_are_written_relative_to_the_working_directory(tmp_path):
    run = tmp_path / "runs" / "demo"
    run.mkdir(parents=True)
    home = Path.home()
    text = (f"<b>{run}</b> {run}/best.pt {tmp_path} </var> https://cdn.example.org/a/b.js "
            "data:image/jpeg;base64,/9j/4AAQ/x /no-such-top-folder/a/b")
    assert relative_paths(text, tmp_path) == ("<b>runs/demo</b> runs/demo/best.pt . </var> "
                                              "https://cdn.example.org/a/b.js data:image/jpeg;base64,/9j/4AAQ/x "
                                              "/no-such-top-folder/a/b")
    if tmp_path not in home.parents and home != Path("/"):
        assert display_path(home / ".cache" / "x", tmp_path) == "~/.cache/x"
    assert display_path("/", tmp_path) == os.path.relpath("/", tmp_path)


def _page(cells: list[tuple[str, dict]], version: str = "1") -> str:
    """A page shaped as ``marimo export html`` writes it, with ``cells`` (code, output bundle)."""
    config = {"version": "0.25.2", "appConfig": {}, "notebook": {"cells": [
        {"id": str(i), "code": code, "config": {"hide_code": False}} for i, (code, _) in enumerate(cells)]},
        "session": {"version": version, "cells": [
            {"id": str(i), "outputs": [{"type": "data", "data": out}], "console": []} for i, (_, out) in enumerate(cells)]}}
    return ('<script>Object.defineProperty(window, "__MARIMO_MOUNT_CONFIG__", {\n value: Object.freeze('
            + json.dumps(config) + "), writable: false });</script>")


def _attr(value) -> str:
    import html

    return html.escape(json.dumps(value), quote=True)


def test_static_page_shows_marimo_outputs_without_its_frontend():
    label = _attr('<span class="paragraph">update</span>')
    rows = _attr(json.dumps([{"image": "d/a", "size": 3}, {"image": "d/b", "size": 1}]))
    bundle = json.dumps({"image/png": "data:image/png;base64,iVBORw0K", "__metadata__": {"image/png": {"width": 300}}})
    page = _page([
        ("slider", {"text/html": f"<marimo-ui-element object-id='a'><marimo-slider data-initial-value='2' "
                                 f"data-label='{label}' data-start='0' data-stop='6'></marimo-slider></marimo-ui-element>"}),
        ("table", {"text/html": f"<div><marimo-table data-data='{rows}' data-total-rows='5'></marimo-table></div>"}),
        ("figure", {"application/vnd.marimo+mimebundle": bundle}),
        ("chart", {"text/html": "<marimo-vega data-spec='{}'></marimo-vega>"}),
        ("formula", {"text/markdown": r"<p>scaled by <marimo-tex>||(g\gamma \odot F||)</marimo-tex></p>"}),
    ])
    html, unrendered = render_page(read_marimo_export(page), notebook="notebooks/x_y.py", run="runs/demo")
    assert "<title>X y</title>" in html and "<code>runs/demo</code>" in html and "<script" not in html
    assert '<span class="paragraph">update</span> <b>2 (of 0–6)</b>' in html
    assert "<th>image</th><th>size</th>" in html and "<td>d/b</td><td class=num>1</td>" in html
    assert "first 2 of 5 rows" in html
    assert '<img src="data:image/png;base64,iVBORw0K" width="300" alt="figure">' in html
    assert "<marimo-" not in html and unrendered == ["marimo-vega"]
    assert '<p>scaled by <span class="tex">gγ ⊙ F</span></p>' in html
    assert html.count("<summary>code</summary>") == 5


def test_export_refuses_what_it_cannot_read(tmp_path, capsys):
    with pytest.raises(NotebookExportError, match="no __MARIMO_MOUNT_CONFIG__"):
        read_marimo_export("<html>a page from a CDN</html>")
    with pytest.raises(NotebookExportError, match="session snapshot has version '2'"):
        read_marimo_export(_page([], version="2"))
    assert main([str(NOTEBOOKS / "false_alarms.py"), "--run", str(tmp_path), "--out", str(tmp_path)]) == 1
    assert f"{tmp_path}: not a run directory" in capsys.readouterr().err
