import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(
        r"""
        # Label evolution

        With point supervision every training image starts from one click per target. After each label
        update the network's prediction grows the pseudo-masks (LESPS, PAL, or the semprior teacher and
        student together). Move the slider to replay the updates of one image: the orange area is the
        pseudo-mask, green squares mark the point labels, and the cyan outline (in the close-up) is the dense
        ground truth, shown as a **diagnostic only** (training never sees it). Update 0 is the initial labels
        made from the points; the notebook opens on the image whose pseudo-mask changed most.
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
def _(mo, nb, run_path, wi):
    run = nb.open_run_or_stop(mo, run_path.value)
    updates = wi.label_updates(run)
    mo.stop(not updates, mo.md(f"`{run.name}` has no label history (full supervision?)."))
    keys = wi.label_images(run)
    return keys, run, updates


@app.cell
def _(keys, mo, run, updates, wi):
    image = mo.ui.dropdown(options=keys, value=wi.most_changed_image(run), label="training image")
    update = mo.ui.slider(0, len(updates) - 1, value=len(updates) - 1, label="label update (0 = initial point labels)",
                          show_value=True)
    mo.hstack([image, update], justify="start")
    return image, update


@app.cell
def _(figures, image, run, update, wi):
    frame = wi.label_frame(run, image.value, update.value)
    figures.label_figure(frame)
    return


@app.cell
def _(figures, mo, run, update, wi):
    mo.vstack([mo.md("### Label quality over updates (mean over training images)"),
               figures.quality_figure(wi.label_quality(run), current=update.value)])
    return


@app.cell
def _(image, mo, run, wi):
    mo.vstack([mo.md("### This image, update by update"),
               mo.ui.table(wi.rounded(wi.image_label_history(run, image.value)), selection=None)])
    return


if __name__ == "__main__":
    app.run()
