import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(
        r"""
        # False alarms

        A false alarm is an object the detector predicts (a connected region of probability above 0.5, or of
        a classical run's mask) that matches no target. Most real errors of a small-target detector are of
        this kind: cloud edges, bright buildings, sea glint. This lists a run's false alarms on a dataset
        folder, **largest first**, with a close-up of each (the cyan box frames the object). A folder the run
        was trained on offers its test split only (its other images trained the run); another folder, with
        `images/` and `masks/` (an all-zero mask is a target-free frame), offers its test split or all its
        images.
        """
    )
    return


@app.cell
def _():
    import marimo as mo

    import workbench.inspect as wi
    from workbench import notebook as nb

    return mo, nb, wi


@app.cell
def _(mo, nb):
    run_path = nb.run_path_input(mo)
    other = mo.ui.text(value="", label="another dataset folder (optional)", full_width=True)
    mo.vstack([run_path, other])
    return other, run_path


@app.cell
def _(mo, nb, other, run_path, wi):
    run = nb.open_run_or_stop(mo, run_path.value)
    folders = wi.false_alarm_folders(run, [other.value.strip()] if other.value.strip() else [])
    folder = nb.folder_dropdown(mo, folders, prefer=other.value.strip())
    return folder, folders, run


@app.cell
def _(folder, folders, mo):
    split = mo.ui.dropdown(options=folders[folder.value], value=folders[folder.value][0], label="split")
    mo.hstack([folder, split], justify="start")
    return (split,)


@app.cell
def _(folder, mo, nb, run, split, wi):
    rows = nb.false_alarms_or_stop(mo, run, folder.value, split.value)
    mo.vstack([mo.md(nb.false_alarm_summary(rows, folder.value, split.value)),
               mo.ui.table(wi.rounded(wi.false_alarm_table(rows[:nb.FA_ROWS])), selection=None, pagination=False)])
    return (rows,)


@app.cell
def _(folder, mo, nb, rows, wi):
    mo.vstack([mo.md("### Close-ups, largest first"),
               nb.close_ups_figure(wi.false_alarm_gallery(folder.value, rows[:nb.FA_CLOSE_UPS]))])
    return


if __name__ == "__main__":
    app.run()
