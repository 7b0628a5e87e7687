import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(
        r"""
        # Attributions

        Which pixels made the network call this spot a target? We sum the network's logits in a small
        window around a target point and explain that number with Captum: *integrated gradients*
        (attributions add up to the change from a mean-intensity image), *saliency* (gradient magnitude),
        *smoothgrad* (saliency averaged over noisy copies) or *Grad-CAM* (a coarse map from the deepest
        encoder stage). For the teacher, "w.r.t. vfm" attributes to the VFM features entering SCAM: where
        the semantic prior mattered. Red is positive, blue negative.
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
    mo.stop(not run.networks(), mo.md(f"`{run.name}` has no checkpoint yet."))
    split = mo.ui.dropdown(options=["test", "val", "train"], value="test", label="split")
    model = mo.ui.dropdown(options=run.networks(), value=run.networks()[0], label="model")
    method = mo.ui.dropdown(options=["integrated_gradients", "saliency", "smoothgrad", "gradcam"],
                            value="integrated_gradients", label="method")
    mo.hstack([split, model, method], justify="start")
    return method, model, run, split


@app.cell
def _(method, mo, model, run, split, wi):
    image = mo.ui.dropdown(options=run.keys(split.value), value=run.keys(split.value)[0], label="image")
    wrt = mo.ui.dropdown(options=wi.attribution_inputs(run, model.value, method.value), value="image", label="w.r.t.")
    mo.hstack([image, wrt], justify="start")
    return image, wrt


@app.cell
def _(image, mo, run, split, wi):
    y0, x0 = wi.default_target(run, image.value, split.value)
    h, w = run.bank(split.value).shape(run.index(split.value, image.value))
    ty = mo.ui.number(start=0, stop=h - 1, value=y0, label="target y")
    tx = mo.ui.number(start=0, stop=w - 1, value=x0, label="target x")
    radius = mo.ui.slider(0, 8, value=2, label="window radius", show_value=True)
    mo.hstack([ty, tx, radius], justify="start")
    return radius, tx, ty


@app.cell
def _(figures, image, method, model, radius, run, split, tx, ty, wi, wrt):
    figures.attribution_figure(wi.attributions(run, image.value, (ty.value, tx.value), method.value, model.value,
                                               split=split.value, wrt=wrt.value, radius=radius.value))
    return


if __name__ == "__main__":
    app.run()
