import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(
        r"""
        # SCAM modulation

        The semprior teacher modulates its encoder features with the frozen VFM's features:
        $F' = F \odot (1 + g\gamma) + g\beta$, with per-pixel $\gamma, \beta$ predicted from the VFM and a
        learned per-channel gate $g$. Below, per modulated stage: the channel means of $g\gamma$ (scaling;
        0 leaves features unchanged), of $g\beta$ (shift), the relative change of the features, and the
        gate values. The last row switches SCAM off: the same teacher without the prior, to see what the
        prior changes in the prediction. The student (deployed alone) never uses the VFM.
        """
    )
    return


@app.cell
def _():
    import marimo as mo

    import workbench.inspect as wi
    from workbench import notebook as nb
    from workbench.inspect import figures

    return figures, mo, nb, wi


@app.cell
def _(mo, nb):
    run_path = nb.run_path_input(mo)
    mo.output.replace(run_path)
    return (run_path,)


@app.cell
def _(mo, nb, run_path):
    run = nb.open_run_or_stop(mo, run_path.value)
    mo.stop(not run.has_scam(), mo.md(f"`{run.name}` has no SCAM teacher: train with `--method semprior` and a VFM."))
    split = mo.ui.dropdown(options=["test", "val", "train"], value="test", label="split")
    mo.output.replace(split)
    return run, split


@app.cell
def _(mo, run, split):
    image = mo.ui.dropdown(options=run.keys(split.value), value=run.keys(split.value)[0], label="image")
    mo.output.replace(image)
    return (image,)


@app.cell
def _(figures, image, run, split, wi):
    figures.scam_figure(wi.scam_maps(run, image.value, split.value))
    return


@app.cell
def _(figures, image, mo, run, split, wi):
    mo.vstack([mo.md("### The teacher with and without SCAM"),
               figures.toggle_figure(wi.scam_toggle(run, image.value, split.value))])
    return


if __name__ == "__main__":
    app.run()
