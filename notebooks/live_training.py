import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(
        r"""
        # Live training

        Train in the background and watch. **Start** trains a new run with the demo recipe into the run
        directory, **Stop** interrupts it (the last complete epoch's checkpoint stays), **Resume** continues
        from it with the run's saved config plus the overrides below (e.g. `train.epochs=40` to train
        longer). Curves and pseudo-masks refresh while it runs.
        """
    )
    return


@app.cell
def _():
    import marimo as mo

    import workbench.inspect as wi
    from workbench import live
    from workbench import notebook as nb
    from workbench.inspect import figures

    return figures, live, mo, nb, wi


@app.cell
def _(mo, nb):
    run_path = nb.run_path_input(mo)
    overrides = mo.ui.text(value="", label="overrides (section.key=value, space separated)", full_width=True)
    mo.vstack([run_path, overrides])
    return overrides, run_path


@app.cell
def _(mo):
    start = mo.ui.run_button(label="Start")
    stop = mo.ui.run_button(label="Stop")
    resume = mo.ui.run_button(label="Resume")
    refresh = mo.ui.refresh(options=["2s", "5s", "10s"], default_interval="5s")
    mo.hstack([start, stop, resume, refresh], justify="start")
    return refresh, resume, start, stop


@app.cell
def _(live, overrides, resume, run_path, start, stop):
    session = live.session(run_path.value)
    if start.value:
        session.start(overrides.value.split())
    if stop.value:
        session.stop()
    if resume.value:
        session.resume(overrides.value.split())
    return (session,)


@app.cell
def _(mo, refresh, session):
    _tick = refresh.value  # re-run on every tick
    status = session.poll()
    mo.md(f"**{status.state}** · epoch {status.epoch} of {status.epochs or '?'}"
          + (f" · exit code {status.returncode}" if status.returncode is not None else "")
          + (f"\n\n```\n{status.log_tail}\n```" if status.state == "failed" else ""))
    return (status,)


@app.cell
def _(figures, mo, run_path, status, wi):
    mo.stop(not status.history, mo.md("No epoch finished yet."))
    figures.curves_figure(wi.curves(run_path.value))
    return


@app.cell
def _(figures, mo, run_path, status, wi):
    mo.stop(not status.history or not wi.label_updates(run_path.value), mo.md("No label updates yet."))
    figures.label_figure(wi.label_frame(run_path.value, 0, -1))
    return


if __name__ == "__main__":
    app.run()
