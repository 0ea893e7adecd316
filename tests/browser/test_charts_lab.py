"""Linked charts under the map in JupyterLab: a click on a bar and a brush on a histogram with the real
mouse make exactly the selection pandas computes; a lasso on the map shows its rows' counts in the charts."""

from __future__ import annotations

import numpy as np
import pytest

from dataexplore.core.selection import points_in_polygon

from .harness import ARTIFACTS, open_and_run, selection_after, write_notebook

pytestmark = [pytest.mark.slow, pytest.mark.browser]

DATA = """import numpy as np, pandas as pd
rng = np.random.default_rng(7)
n = 4000
labels = np.array(["boot", "coat", "bag", "shirt", "sandal"])
lab_idx = rng.integers(0, 5, n)
centres = np.array([[0, 0], [6, 0], [0, 6], [6, 6], [3, 3]])
xy = (centres[lab_idx] + rng.normal(0, 0.8, (n, 2))).astype(np.float32)
score = rng.normal(lab_idx, 1.0)
score[rng.random(n) < 0.03] = np.nan
table = pd.DataFrame({"id": [f"p{i}" for i in range(n)], "label": labels[lab_idx], "score": score})
"""
BINS = 20
CELLS = [DATA + f"""import json, os
import dataexplore as dx
ex = dx.Explorer(xy, ids=table.id, table=table, color="label", height=420)
ex.charts(["label", "score"], bins={BINS})
def record(sel):
    tmp = os.environ["DX_TEST_OUT"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump({{"indices": sel.indices.tolist(), "shape": sel.shape, "filters": ex.filters,
                   "provenance": sel.provenance.get("filters")}}, f)
    os.replace(tmp, os.environ["DX_TEST_OUT"])
ex.on_select(record)
ex"""]


def _data():
    scope: dict = {}
    exec(DATA, scope)  # the same table the notebook builds
    return scope["xy"], scope["table"]


def _shown_counts(page, name: str, total: int) -> list[int]:
    """The highlighted counts a chart shows, once it shows ``total`` rows in all."""
    chart = f".dx-chart[data-name='{name}']"
    page.wait_for_function(
        """([chart, total]) => { const bars = document.querySelectorAll(chart + " [data-bar]");
             let sum = 0;
             for (const b of bars) { if (b.dataset.selected === "") return false; sum += Number(b.dataset.selected); }
             return sum === total; }""", arg=[chart, total], timeout=15_000)
    return page.eval_on_selector_all(f"{chart} [data-bar]", "bars => bars.map(b => Number(b.dataset.selected))")


def test_click_brush_and_lasso_link_the_charts_and_the_map(lab, page):
    xy, table = _data()
    write_notebook(lab["root"] / "charts.ipynb", CELLS)
    open_and_run(page, lab, "charts.ipynb")
    page.wait_for_selector(".dx-explorer[data-ready='true']", timeout=240_000)
    page.wait_for_selector(".dx-chart[data-name='score'] .dx-bin", timeout=60_000)
    label_chart = page.locator(".dx-chart[data-name='label']")
    hist = page.locator(".dx-chart[data-name='score'] .dx-hist")
    names = label_chart.locator(".dx-bar-name").all_inner_texts()
    vc = table.label.value_counts()
    assert names == sorted(vc.index, key=lambda k: (-vc[k], k))  # most common first
    full = [int(c) for c in label_chart.locator(".dx-bar-row").evaluate_all("bs => bs.map(b => b.dataset.count)")]
    assert full == [int(vc[k]) for k in names]

    # click a bar: the selection is exactly that label's rows
    label_chart.scroll_into_view_if_needed()
    chosen = names[1]
    got = selection_after(lab["root"] / "selection.json", page,
                          lambda: label_chart.locator(".dx-bar-row").nth(1).click())
    assert got["shape"] == "filter" and got["filters"] == {"label": {"categories": [chosen]}}
    assert got["indices"] == np.flatnonzero(table.label == chosen).tolist()
    # Shift+click adds a bar (JupyterLab must not take it for a cell selection), again removes it
    bars = label_chart.locator(".dx-bar-row")
    got = selection_after(lab["root"] / "selection.json", page, lambda: bars.nth(3).click(modifiers=["Shift"]))
    assert got["filters"] == {"label": {"categories": [chosen, names[3]]}}
    assert got["indices"] == np.flatnonzero(table.label.isin([chosen, names[3]])).tolist()
    got = selection_after(lab["root"] / "selection.json", page, lambda: bars.nth(3).click(modifiers=["Shift"]))
    assert got["indices"] == np.flatnonzero(table.label == chosen).tolist()
    # the histogram now highlights that label's scores (the other chart's filter)
    finite = np.isfinite(table.score)
    lo_all, hi_all = table.score[finite].min(), table.score[finite].max()
    edges = np.linspace(lo_all, hi_all, BINS + 1)
    edges[-1] = hi_all
    of_label = table.score[(table.label == chosen) & finite]
    want = np.histogram(of_label, bins=edges)[0].tolist() + [int(((table.label == chosen) & ~finite).sum())]
    assert _shown_counts(page, "score", int((table.label == chosen).sum())) == want

    # brush bins 6..13 of the histogram with the mouse: label AND range, exactly
    hist.scroll_into_view_if_needed()
    box = hist.bounding_box()
    a, b = 6, 13
    xa = box["x"] + (a + 0.5) * box["width"] / BINS
    xb = box["x"] + (b + 0.5) * box["width"] / BINS
    y = box["y"] + box["height"] / 2
    def brush():
        page.mouse.move(xa, y)
        page.mouse.down()
        page.mouse.move(xb, y, steps=8)
        page.mouse.up()
    got = selection_after(lab["root"] / "selection.json", page, brush)
    lo, hi = got["filters"]["score"]["range"]
    assert (lo, hi) == (edges[a], edges[b + 1])  # snapped to the edges of the bins under the mouse
    assert got["filters"]["label"] == {"categories": [chosen]} and got["provenance"] == got["filters"]
    v = table.score
    want_rows = np.flatnonzero((table.label == chosen) & (v >= lo) & ((v < hi) | (hi >= hi_all)))
    assert got["indices"] == want_rows.tolist() and len(want_rows) > 0
    # the label chart highlights the rows in the range, whatever their label
    in_range = (v >= lo) & (v < hi)
    assert _shown_counts(page, "label", int(in_range.sum())) == [int((in_range & (table.label == k)).sum())
                                                                   for k in names]
    assert page.locator(".dx-chart[data-name='score'] .dx-brush").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "charts-brush.png"))
    # the score chart's × removes its filter only
    got = selection_after(lab["root"] / "selection.json", page,
                          lambda: page.locator(".dx-chart[data-name='score'] .dx-chart-reset").click())
    assert got["filters"] == {"label": {"categories": [chosen]}}
    assert got["indices"] == np.flatnonzero(table.label == chosen).tolist()
    assert not page.locator(".dx-chart[data-name='score'] .dx-brush").is_visible()

    # a lasso on the map replaces the filters; the charts show the lassoed rows' counts
    widget = page.locator(".dx-explorer").first
    widget.locator(".dx-stage").scroll_into_view_if_needed()
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    outline = np.c_[4.5 + 2.5 * np.cos(t), 1.5 + 2.5 * np.sin(t)]
    path = [page.eval_on_selector(".dx-explorer >> nth=0", "(el, p) => el.dxToPixel(p[0], p[1])",
                                  [float(x), float(y)]) for x, y in outline]
    def lasso():
        page.mouse.move(*path[0])
        page.mouse.down()
        for p in path[1:] + path[:1]:
            page.mouse.move(*p, steps=3)
        page.mouse.up()
    got = selection_after(lab["root"] / "selection.json", page, lasso)
    assert got["shape"] == "lasso" and got["filters"] == {}
    sel = np.array(got["indices"])
    assert len(sel) > 100
    near = np.flatnonzero(points_in_polygon(xy, outline * 0.98 + outline.mean(0) * 0.02))
    assert len(set(near) & set(sel.tolist())) >= 0.95 * len(near)
    picked = table.iloc[sel]
    label_shown = _shown_counts(page, "label", len(sel))
    assert label_shown == [int((picked.label == k).sum()) for k in names]
    score_shown = _shown_counts(page, "score", len(sel))
    pf = picked.score[np.isfinite(picked.score)]
    assert score_shown == np.histogram(pf, bins=edges)[0].tolist() + [int(len(picked) - len(pf))]
    assert page.get_attribute(".dx-charts", "data-counts-mode") == "selection"
    page.screenshot(path=str(ARTIFACTS / "charts-lasso.png"))

    # Esc clears the selection; the charts show no highlight
    got = selection_after(lab["root"] / "selection.json", page, lambda: page.keyboard.press("Escape"))
    assert got["indices"] == []
    page.wait_for_function("() => document.querySelector('.dx-charts').dataset.countsMode === 'none'")
    assert page.dialogs == [] and page.locator(".dx-error").count() == 0

