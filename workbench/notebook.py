"""The cells every inspection notebook starts with: pick a run directory, open it or say why not.

Marimo is passed in (``mo``) rather than imported, so this module needs no notebook runtime.
"""

from __future__ import annotations

from pathlib import Path

from workbench.inspect import RunHandle, default_run_path, open_run


def run_path_input(mo):
    """A text box holding a run directory, the newest run by default."""
    return mo.ui.text(value=default_run_path(), label="run directory", full_width=True)


def open_run_or_stop(mo, path: str) -> RunHandle:
    """The run at ``path``; stops the cell with a hint when ``path`` is not a run directory."""
    mo.stop(not (Path(path) / "config.yaml").is_file(),
            mo.md(f"`{path}` is not a run directory: train one with `semprior demo`."))
    return open_run(path)
