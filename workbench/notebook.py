"""The cells every inspection notebook starts with (pick a run directory, open it or say why not), and the
pieces of the false-alarms notebook.

Marimo is passed in (``mo``) rather than imported, so this module needs no notebook runtime.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from workbench.inspect import RunHandle, default_run_path, false_alarms, open_run
from workbench.inspect.imaging import overlay
from workbench.notebook_export import display_path

FA_ROWS, FA_CLOSE_UPS = 100, 12  # false alarms in the table, close-ups in the figure (as in the dashboard)


def run_path_input(mo):
    """A text box holding a run directory, the newest run by default."""
    return mo.ui.text(value=default_run_path(), label="run directory", full_width=True)


def open_run_or_stop(mo, path: str) -> RunHandle:
    """The run at ``path``; stops the cell with a hint when ``path`` is not a run directory."""
    mo.stop(not (Path(path) / "config.yaml").is_file(),
            mo.md(f"`{path}` is not a run directory: train one with `semprior demo`."))
    return open_run(path)


# -- false alarms --------------------------------------------------------------------------------
def folder_dropdown(mo, folders: dict[str, list[str]], prefer: str = ""):
    """A dropdown of the folders of :func:`workbench.inspect.false_alarm_folders`, shown as
    :func:`~workbench.notebook_export.display_path` writes them; ``prefer`` (a folder typed by the user)
    is chosen when listed, else the first."""
    options = {display_path(f): f for f in folders}
    chosen = next((k for k, f in options.items() if prefer and f == prefer), next(iter(options)))
    return mo.ui.dropdown(options=options, value=chosen, label="dataset folder")


def where(folder: str, split: str) -> str:
    """``all images of `folder``` or ``the test split of `folder```, for the notebook's sentences."""
    return f"{'all images' if split == 'all' else 'the test split'} of `{display_path(folder)}`"


def false_alarms_or_stop(mo, run: RunHandle, folder: str, split: str) -> list[dict]:
    """The run's false alarms on ``split`` of ``folder``, largest first; stops the cell with the reason when
    they cannot be listed (no checkpoint yet, a folder without masks/ or test split) or there are none."""
    try:
        rows = false_alarms(run.path, folder, split=split)
    except ValueError as exc:  # DataError is one
        mo.stop(True, mo.md(f"Cannot list the false alarms of `{run.name}` on {where(folder, split)}: {exc}"))
    mo.stop(not rows, mo.md(f"No false alarm on {where(folder, split)}: every object `{run.name}` predicts "
                            "there matches a target."))
    return rows


def false_alarm_summary(rows: list[dict], folder: str, split: str) -> str:
    """The sentence above the table: how many false alarms, where, and how many the views show."""
    shown = [f"the table lists the first {FA_ROWS}"] if len(rows) > FA_ROWS else []
    shown += [f"the close-ups show the first {FA_CLOSE_UPS}"] if len(rows) > FA_CLOSE_UPS else []
    return (f"**{len(rows)} false-alarm object{'s' * (len(rows) != 1)}** on {where(folder, split)}, largest "
            "first" + (f" ({', '.join(shown)})" if shown else "") + ".")


def close_ups_figure(items: list[dict], cols: int = 6) -> Figure:
    """Items of :func:`workbench.inspect.false_alarm_gallery` in order: the grey image window with the
    object's box in cyan (just outside it, so a one-pixel object stays visible), titled with the frame, the
    object's size and its peak probability."""
    cols = max(1, min(cols, len(items)))
    rows = max(1, -(-len(items) // cols))
    # Figure() without pyplot: no global state, nothing left open in long notebook sessions.
    fig = Figure(figsize=(1.9 * cols, 2.1 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, it in zip(axes, items):
        ax.imshow(overlay(it["image"], outline=it["outline"]), interpolation="nearest")
        ax.set_title(f"{it['frame'].split('/')[-1]}\n{it['area']} px · peak {it['peak']:.2f}", fontsize=8)
    return fig
