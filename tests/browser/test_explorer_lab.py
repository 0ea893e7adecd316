"""The Explorer in JupyterLab: lasso, box, click and hover with the mouse; Python holds what is shown."""

from __future__ import annotations

import time

import numpy as np
import pytest

import dataexplore as dx
from dataexplore.core.selection import points_in_polygon

from .harness import ARTIFACTS, open_and_run, selection_after, write_notebook

pytestmark = [pytest.mark.slow, pytest.mark.browser]
N = 10000

CELLS = [
    f"""import json, os
import dataexplore as dx
ex = dx.explore("fashion-mnist:test:{N}", model="fashion-tiny", color="label", tooltip=["label_id"])
def record(sel):
    tmp = os.environ["DX_TEST_OUT"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump({{"indices": sel.indices.tolist(), "ids": [str(i) for i in sel.ids], "shape": sel.shape,
                   "polygon": None if sel.polygon is None else sel.polygon.tolist()}}, f)
    os.replace(tmp, os.environ["DX_TEST_OUT"])
ex.on_select(record)
ex""",
    """import numpy as np, pandas as pd
evil = dx.Explorer(np.array([[0, 0], [1, 1], [2, 0]], np.float32), height=220, color="label",
                   table=pd.DataFrame({"id": ["x", "y", "z"], "label": ["<img src=x onerror=alert(1)>", "ok", "ok"]}))
evil""",
    """import ipywidgets
ipywidgets.VBox([dx.Explorer(np.zeros((0, 2)), height=120), dx.Explorer(np.zeros((1, 2)), height=120),
                 dx.Explorer(np.ones((50, 2)), height=120)])""",
]


@pytest.fixture(scope="module")
def fashion_map(lab):
    """The map the notebook will show, computed here first (the kernel then reads it from the cache)."""
    emb = dx.embed(f"fashion-mnist:test:{N}", model="fashion-tiny", cache_dir=lab["env"]["DATAEXPLORE_CACHE_DIR"],
                   progress=False)
    proj = dx.Projection(cache_dir=lab["env"]["DATAEXPLORE_CACHE_DIR"]).fit(emb)
    return proj.embedding_, emb.table.label.to_numpy()


def _island(xy, labels):
    """The class whose island holds the fewest other points, and its outline (slightly grown).

    The island is the class's core, the 80 % of its points nearest its median, as a user draws a
    lasso around the dense part and leaves stray points out.
    """
    from scipy.spatial import ConvexHull

    best = None
    for cls in np.unique(labels):
        pts = xy[labels == cls]
        dist = np.linalg.norm(pts - np.median(pts, axis=0), axis=1)
        pts = pts[dist <= np.quantile(dist, 0.8)]
        hull = pts[ConvexHull(pts).vertices]
        grown = hull + 0.04 * (hull - hull.mean(0))
        inside = points_in_polygon(xy, grown)
        purity = (labels[inside] == cls).mean()
        if best is None or purity > best[0]:
            best = (purity, cls, grown)
    return best[1], best[2]


def _highlighted(page):
    return page.eval_on_selector(".dx-explorer >> nth=0", "el => el.dxSelected()")


def _pixels(page, pts):
    """Viewport pixels of map points, once the layout has settled (thumbnails loading can add a
    scrollbar to the notebook, which narrows and rescales the map)."""
    def read():
        return [page.eval_on_selector(".dx-explorer >> nth=0", "(el, p) => el.dxToPixel(p[0], p[1])",
                                      [float(x), float(y)]) for x, y in pts]
    last = read()
    for _ in range(50):
        time.sleep(0.2)
        now = read()
        if now == last:
            return now
        last = now
    return last


def _lasso(page, path):
    def action():
        page.mouse.move(*path[0])
        page.mouse.down()
        for p in path[1:] + path[:1]:
            page.mouse.move(*p, steps=4)
        page.mouse.up()
    return action


def test_lasso_box_click_hover_in_jupyterlab(lab, page, fashion_map):
    xy, labels = fashion_map
    write_notebook(lab["root"] / "explorer.ipynb", CELLS)
    open_and_run(page, lab, "explorer.ipynb")
    page.wait_for_selector(".dx-explorer[data-ready='true']", timeout=240_000)
    widget = page.locator(".dx-explorer").first
    widget.scroll_into_view_if_needed()
    assert f"{N:,} points" in page.locator(".dx-status").first.inner_text()
    assert widget.locator(".dx-legend-row").count() == 10  # one legend entry per class

    # lasso around one island, with the mouse, in the default mode
    cls, hull = _island(xy, labels)
    path = _pixels(page, hull)
    got = selection_after(lab["root"] / "selection.json", page, _lasso(page, path))
    sel = np.array(got["indices"])
    assert got["shape"] == "lasso" and len(sel) > 50
    assert sorted(_highlighted(page)) == sorted(sel.tolist())  # Python holds exactly what is shown
    np.testing.assert_array_equal(np.flatnonzero(points_in_polygon(xy, np.array(got["polygon"]))), np.sort(sel))
    # and they are the points inside the outline drawn (pixel rounding may move a point on the edge)
    centre = hull.mean(0)
    inner = np.flatnonzero(points_in_polygon(xy, centre + 0.98 * (hull - centre)))
    outer = np.flatnonzero(points_in_polygon(xy, centre + 1.02 * (hull - centre)))
    # (the browser coalesces mouse moves, so the drawn path may cut a corner of the hull slightly)
    assert len(set(inner) & set(sel.tolist())) >= 0.97 * len(inner) and set(sel.tolist()) <= set(outer)
    assert (labels[sel] == cls).mean() > 0.5
    assert got["ids"][0].startswith("test-")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-lasso.png"))

    # box select with the mode button, then Shift+click on a point outside adds it
    page.locator(".dx-btn[data-mode='box']").first.click()
    x0, y0 = np.percentile(xy, 20, axis=0)
    x1, y1 = np.percentile(xy, 60, axis=0)
    (px0, py0), (px1, py1) = _pixels(page, [(x0, y0), (x1, y1)])
    def box():
        page.mouse.move(px0, py0)
        page.mouse.down()
        page.mouse.move(px1, py1, steps=8)
        page.mouse.up()
    got = selection_after(lab["root"] / "selection.json", page, box)
    sel = np.array(got["indices"])
    assert got["shape"] == "box"
    np.testing.assert_array_equal(np.flatnonzero(points_in_polygon(xy, np.array(got["polygon"]))), np.sort(sel))
    # mouse positions are whole pixels: everything 2 px inside the box is in, nothing 2 px outside
    m = 2 * abs(x1 - x0) / abs(px1 - px0)
    def in_box(pad):
        return (xy[:, 0] >= x0 - pad) & (xy[:, 0] <= x1 + pad) & (xy[:, 1] >= y0 - pad) & (xy[:, 1] <= y1 + pad)
    assert set(np.flatnonzero(in_box(-m))) <= set(sel.tolist()) <= set(np.flatnonzero(in_box(m)))
    assert sorted(_highlighted(page)) == sorted(sel.tolist())

    # a point well outside the box, on the left (the legend covers the top right)
    far = np.flatnonzero(~in_box(3 * m) & (xy[:, 0] < np.percentile(xy[:, 0], 30)))
    gaps = [np.sort(np.linalg.norm(xy - xy[i], axis=1))[1] for i in far]  # clicks need a lone point
    outside = int(far[int(np.argmax(gaps))])
    (cx, cy), = _pixels(page, [xy[outside]])
    got = selection_after(lab["root"] / "selection.json", page,
                          lambda: page.keyboard.down("Shift") or page.mouse.click(cx, cy) or page.keyboard.up("Shift"))
    assert outside in got["indices"] and len(got["indices"]) == len(sel) + 1

    # hover shows the image and its id
    page.mouse.move(cx + 40, cy + 40)
    page.mouse.move(cx, cy, steps=3)
    tip = page.locator(".dx-tooltip").first
    tip.locator("img").wait_for(timeout=15_000)
    assert f"test-{outside:05d}" in tip.inner_text()
    assert page.eval_on_selector(".dx-tooltip img >> nth=0", "img => img.complete && img.naturalWidth > 0")
    page.screenshot(path=str(ARTIFACTS / "explorer-hover.png"))

    # Esc clears
    got = selection_after(lab["root"] / "selection.json", page, lambda: page.keyboard.press("Escape"))
    assert got["indices"] == [] and _highlighted(page) == []


def test_labels_are_text_not_html(lab, page, fashion_map):
    write_notebook(lab["root"] / "explorer.ipynb", CELLS)
    open_and_run(page, lab, "explorer.ipynb")
    page.wait_for_selector(".dx-explorer >> nth=1", timeout=240_000)
    evil = page.locator(".dx-explorer").nth(1)
    evil.scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelectorAll('.dx-explorer')[1]?.dataset.ready === 'true'")
    assert "<img src=x onerror=alert(1)>" in evil.locator(".dx-legend").inner_text()
    assert evil.locator(".dx-legend img").count() == 0
    (hx, hy), = [page.eval_on_selector(".dx-explorer >> nth=1", "(el) => el.dxToPixel(0, 0)")]
    page.mouse.move(hx + 30, hy + 30)
    page.mouse.move(hx, hy, steps=3)
    evil.locator(".dx-tooltip .dx-tip-line").first.wait_for(timeout=15_000)
    assert "<img src=x onerror=alert(1)>" in evil.locator(".dx-tooltip").inner_text()
    assert page.dialogs == []
    # 0 points, 1 point and identical coordinates render without errors
    page.wait_for_function("() => Array.from(document.querySelectorAll('.dx-explorer')).slice(2)"
                           ".filter(e => e.dataset.ready === 'true').length === 3", timeout=60_000)
    statuses = [page.locator(".dx-explorer").nth(i).locator(".dx-status").inner_text() for i in (2, 3, 4)]
    assert statuses == ["0 points", "1 point", "50 points"]
    assert page.locator(".dx-error").count() == 0


def test_lasso_and_hover_in_notebook7(lab, page, fashion_map):
    xy, labels = fashion_map
    write_notebook(lab["root"] / "explorer7.ipynb", CELLS[:1])  # the Fashion-MNIST map only
    open_and_run(page, lab, "explorer7.ipynb", app="notebook")
    page.wait_for_selector(".dx-explorer[data-ready='true']", timeout=240_000)
    page.locator(".dx-explorer").first.scroll_into_view_if_needed()
    cls, hull = _island(xy, labels)
    got = selection_after(lab["root"] / "selection.json", page, _lasso(page, _pixels(page, hull)))
    assert len(got["indices"]) > 50 and sorted(_highlighted(page)) == sorted(got["indices"])
    row = got["indices"][0]
    (x, y), = _pixels(page, [xy[row]])
    page.mouse.move(x + 30, y + 30)
    page.mouse.move(x, y, steps=3)
    page.locator(".dx-tooltip img").first.wait_for(timeout=15_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-notebook7.png"))


def test_a_million_points_render_and_a_million_selected_reach_python(lab, page):
    """1M points arrive in chunks under the 10 MB websocket cap; selecting all of them comes back whole."""
    cells = ["""import json, os
import numpy as np, dataexplore as dx
rng = np.random.default_rng(0)
big = dx.Explorer(rng.normal(size=(1_000_000, 2)).astype(np.float32), height=400,
                  color=np.char.mod("class %d", rng.integers(0, 250, 1_000_000)))
def record(sel):
    tmp = os.environ["DX_TEST_OUT"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"indices": [int(sel.indices[0]), int(sel.indices[-1])] if len(sel) else [], "n": len(sel)}, f)
    os.replace(tmp, os.environ["DX_TEST_OUT"])
big.on_select(record)
big"""]
    write_notebook(lab["root"] / "million.ipynb", cells)
    open_and_run(page, lab, "million.ipynb")
    page.wait_for_selector(".dx-explorer[data-ready='true']", timeout=240_000)
    widget = page.locator(".dx-explorer").first
    widget.scroll_into_view_if_needed()
    assert "1,000,000 points" in widget.locator(".dx-status").inner_text()
    assert widget.locator(".dx-legend-row").count() == 250
    widget.locator(".dx-btn[data-mode='box']").click()
    box = widget.locator(".dx-stage").bounding_box()
    def select_all():
        page.mouse.move(box["x"] + 2, box["y"] + 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] - 160, box["y"] + box["height"] - 2, steps=6)
        page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2, steps=2)
        page.mouse.up()
    got = selection_after(lab["root"] / "selection.json", page, select_all, timeout=120)
    assert got["n"] == 1_000_000 and got["indices"] == [0, 999_999]
    page.wait_for_function("() => document.querySelector('.dx-explorer').dataset.selected === '1000000'",
                           timeout=60_000)
    assert len(_highlighted(page)) == 1_000_000
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-million.png"))
