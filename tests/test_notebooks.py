"""Notebooks run headless on the tiny fixture run (marimo: ``marimo export html``, which exits non-zero when a
cell fails; Jupyter: executed through nbclient), and background training (workbench.live) stops and resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.fixtures_runs import tiny_run  # noqa: F401
from workbench.live import LiveTraining, session

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
VENV_BIN = Path(sys.executable).parent
# marimo notebook -> figures it must show on the fixture run
MARIMO = {"label_evolution": 2, "cluster_weights": 2, "scam_modulation": 2, "attributions": 1, "live_training": 2}
JUPYTER = ("label_evolution", "live_training")
_EXECUTE = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], 4)
NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": sys.argv[3]}}).execute()
nbformat.write(nb, sys.argv[2])
"""


@pytest.fixture(scope="module")
def executed(tiny_run, tmp_path_factory) -> dict:  # noqa: F811
    """Every notebook run at once (separate processes: the slow part is each one's start-up)."""
    out = tmp_path_factory.mktemp("notebooks")
    env = os.environ | {"SEMPRIOR_RUN": str(tiny_run)}
    procs = {}
    for name in MARIMO:
        cmd = [str(VENV_BIN / "marimo"), "export", "html", str(NOTEBOOKS / f"{name}.py"), "-o", str(out / f"{name}.html")]
        procs[f"{name}.py"] = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for name in JUPYTER:
        cmd = [sys.executable, "-c", _EXECUTE, str(NOTEBOOKS / f"{name}.ipynb"), str(out / f"{name}.ipynb"), str(ROOT)]
        procs[f"{name}.ipynb"] = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    results = {}
    for key, proc in procs.items():
        log, _ = proc.communicate(timeout=300)
        results[key] = (proc.returncode, log.decode(errors="replace"))
    return {"dir": out, "results": results}


@pytest.mark.parametrize("name", list(MARIMO))
def test_marimo_notebook_runs_headless_and_shows_its_figures(executed, name):
    rc, log = executed["results"][f"{name}.py"]
    assert rc == 0, log[-3000:]
    html = (executed["dir"] / f"{name}.html").read_text()
    assert html.count("data:image/png") >= MARIMO[name], "a view was stopped (mo.stop) or drew nothing"


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
