import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium")


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # dataexplore in marimo

    The quickstart's map in a [marimo](https://marimo.io) notebook: the Fashion-MNIST test split
    embedded with `fashion-tiny` (the small CLIP model that ships with dataexplore), projected with
    UMAP, and drawn by the same `Explorer` widget as in JupyterLab, wrapped with
    `mo.ui.anywidget`. Everything is cached, so a second run returns at once.

    Run it with `marimo edit examples/explorer_marimo.py` (or `marimo run` for the app view).
    """)
    return


@app.cell
def _():
    import os

    import marimo as mo

    import dataexplore as dx

    N = int(os.environ.get("DATAEXPLORE_DEMO_N", 10000))  # `dataexplore demo --n` fills the cache for N
    return N, dx, mo


@app.cell
def _(N, dx):
    samples = dx.load(f"fashion-mnist:test:{N}")
    emb = dx.embed(samples, model="fashion-tiny", progress=False)
    proj = dx.project(emb)
    return emb, proj


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    The map: hover a point to see the image; draw a lasso (or use **Box**, or click a point) to
    select; Shift adds, Alt subtracts, Esc clears. `mo.state` carries the selection to the cells
    below, so they run again after every lasso.
    """)
    return


@app.cell
def _(dx, emb, mo, proj):
    ex = dx.Explorer(proj, table=emb.table, samples=emb.samples, rows=emb.rows, color="label", height=480)
    get_selection, set_selection = mo.state(ex.selection)
    ex.on_select(set_selection)  # a lasso in the map, or ex.select() in any cell, runs the cells that read it
    widget = mo.ui.anywidget(ex)
    widget
    return ex, get_selection


@app.cell
def _(emb, get_selection, mo):
    selection = get_selection()
    mo.vstack([
        mo.md(f"**{len(selection):,} selected** (by {selection.shape})"),
        selection.to_frame(emb.table)[["id", "label"]].head(10),
    ])
    return (selection,)


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    A selection made in Python shows on the map: pick a class.
    """)
    return


@app.cell
def _(emb, mo):
    pick = mo.ui.dropdown(sorted(emb.table["label"].unique()), label="select a class from Python")
    pick
    return (pick,)


@app.cell
def _(emb, ex, pick):
    if pick.value is not None:
        ex.select(emb.table["id"][emb.table["label"] == pick.value])
    return


if __name__ == "__main__":
    app.run()
