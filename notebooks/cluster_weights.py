import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(
        r"""
        # Cluster weights

        A semprior run groups its training images into clusters (k-means on pooled VFM features or on
        image statistics) and learns one loss weight per cluster. Every few optimiser steps the weights
        take one hypergradient step: they move towards the clusters whose training loss, after a
        one-step look-ahead, most lowers the teacher's loss on the validation split (carved from the
        training data). Weights above 1 mark clusters the method leans on; below 1, clusters it
        discounts. Pick a cluster to see its images and their latest pseudo-masks.
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
    summary = wi.cluster_summary(run)
    mo.stop(not summary, mo.md(f"`{run.name}` has no clusters: only `--method semprior` runs reweight clusters."))
    return run, summary


@app.cell
def _(mo, summary):
    cluster = mo.ui.dropdown(options={f"cluster {s['cluster']} ({s['size']} images)": s["cluster"] for s in summary},
                             value=f"cluster {summary[0]['cluster']} ({summary[0]['size']} images)", label="cluster")
    mo.output.replace(cluster)
    return (cluster,)


@app.cell
def _(cluster, figures, run, wi):
    figures.cluster_weights_figure(wi.cluster_weights(run), selected=cluster.value)
    return


@app.cell
def _(mo, summary, wi):
    mo.ui.table(wi.rounded([{k: v for k, v in s.items() if k != "members"} for s in summary]), selection=None)
    return


@app.cell
def _(cluster, figures, mo, run, wi):
    mo.vstack([mo.md(f"### Images of cluster {cluster.value} (latest pseudo-mask in orange)"),
               figures.gallery_figure(wi.cluster_gallery(run, cluster.value))])
    return


if __name__ == "__main__":
    app.run()
