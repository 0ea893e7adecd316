"""A ten-million-point map in JupyterLab: the browser draws a sample over a density layer, zooming
refines it to every point of the view, and a lasso drawn with the mouse selects exactly the points
inside it among all ten million, in Python."""

from __future__ import annotations

import base64
import io
import json
import time

import numpy as np
import pytest

from .harness import ARTIFACTS, kernel_run, open_and_run, write_notebook

pytestmark = [pytest.mark.slow, pytest.mark.browser]
N = 10_000_000
BUDGET = 1_000_000  # the Explorer's default lod_points
# the same synthetic map in the kernel and in this process (a seeded Gaussian mixture, five classes)
DATA = f"""import numpy as np, pandas as pd
rng = np.random.default_rng(7)
centres = np.array([[0.0, 0.0], [9.0, 2.0], [3.0, 9.0], [-6.0, 6.0], [-4.0, -7.0]])
label = rng.integers(0, 5, {N})
xy = (centres[label] + rng.normal(size=({N}, 2)) * np.array([1.0, 1.6, 0.8, 1.2, 2.0])[label, None]).astype(np.float32)
names = ["alpha", "beta", "gamma", "delta", "epsilon"]"""
CELL = DATA + """
import json, os, time
import dataexplore as dx
from dataexplore.core.selection import points_in_polygon
ex = dx.Explorer(xy, table=pd.DataFrame({"label": pd.Categorical.from_codes(label, names)}), color="label", height=520)
asked = []  # the selection shapes the browser sent, as they arrived
def keep(widget, content, buffers):
    if isinstance(content, dict) and content.get("type") == "select":
        asked.append(content)
ex.on_msg(keep)
def record(sel):
    out = os.environ["DX_TEST_OUT"]
    np.save(out + ".tmp.npy", sel.indices)
    os.replace(out + ".tmp.npy", out + ".npy")
    with open(out + ".tmp", "w") as f:
        json.dump({"n": len(sel), "shape": sel.shape, "t": time.time()}, f)
    os.replace(out + ".tmp", out)
ex.on_select(record)
ex"""


@pytest.fixture(scope="module")
def synthetic():
    scope: dict = {}
    exec(DATA, scope)
    return scope["xy"], scope["label"]


def _lod(page):
    return page.eval_on_selector(".dx-explorer", "el => el.dxLod()")


def _held(page) -> np.ndarray:
    return np.frombuffer(base64.b64decode(page.eval_on_selector(".dx-explorer", "el => el.dxShownRows()")), np.uint32)


def _settle(page, timeout=120):
    """Wait until the view's answer has arrived (the debounce has fired and nothing is in flight)."""
    time.sleep(0.3)
    page.wait_for_function("() => { const l = document.querySelector('.dx-explorer').dxLod(); return l && !l.busy; }",
                           timeout=timeout * 1000)
    return _lod(page)


def _pixels(page, pts):
    return [page.eval_on_selector(".dx-explorer", "(el, p) => el.dxToPixel(p[0], p[1])", [float(x), float(y)])
            for x, y in pts]


def _selection_after(lab, page, action, timeout=120.0):
    """Do ``action`` (which ends with the mouse release or click), return what the kernel's observer
    recorded and the seconds from the end of the action to the observer."""
    out = lab["root"] / "selection.json"
    before = out.stat().st_mtime_ns if out.exists() else 0
    seq = page.get_attribute(".dx-explorer", "data-selection-seq")
    done = action()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if out.exists() and out.stat().st_mtime_ns != before and \
                page.get_attribute(".dx-explorer", "data-selection-seq") != seq:
            got = json.loads(out.read_text())
            return got, np.load(str(out) + ".npy"), got["t"] - done
        time.sleep(0.05)
    raise AssertionError("Python never received the selection")


def _in(xy, rect):
    x0, y0, x1, y1 = rect
    return (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)


def test_ten_million_points_draw_refine_and_select_exactly(lab, page, synthetic):
    from PIL import Image

    xy, label = synthetic
    write_notebook(lab["root"] / "lod.ipynb", [CELL])
    t0 = time.time()
    open_and_run(page, lab, "lod.ipynb")
    page.wait_for_selector(".dx-explorer[data-ready='true']", timeout=300_000)
    t_ready = time.time() - t0
    widget = page.locator(".dx-explorer")
    widget.scroll_into_view_if_needed()
    first_frame = page.eval_on_selector(".dx-explorer", "el => el.dxFirstFrameMs()") / 1000
    status = widget.locator(".dx-status").inner_text()
    assert "10,000,000 points · drawing 1,000,000 · zoom in for detail" in status, status
    assert widget.locator(".dx-legend-row").count() == 5
    lod = _lod(page)
    assert lod["n"] == N and lod["held"] == BUDGET and lod["rect"] is None and not lod["complete"]
    overview = _held(page)
    assert len(np.unique(overview)) == BUDGET and overview.max() < N

    # the map is drawn: many coloured pixels (the sample over the density layer)
    shot = np.asarray(Image.open(io.BytesIO(widget.locator(".dx-canvas").screenshot())).convert("RGB")).astype(int)
    painted = (np.abs(shot - 255).sum(-1) > 30).mean()
    assert painted > 0.05, painted
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "lod-overview.png"))

    # zoom in on the wide cluster: each view replaces the sample; once a view's points fit, all are drawn
    (cx, cy), = _pixels(page, [(-4.0, -5.5)])
    page.mouse.move(cx, cy)
    steps = []
    for _ in range(14):
        page.mouse.wheel(0, -400)
        lod = _settle(page)
        held = _held(page)
        steps.append((lod["held"], lod["inside"], lod["complete"]))
        assert lod["rect"] is not None and lod["held"] <= BUDGET and len(held) == lod["held"]
        inside = _in(xy, lod["rect"])
        assert lod["inside"] == int(inside.sum())
        assert inside[held].all()  # only points of the view are held
        # the overview's points inside the view are all still there: refining drops nothing shown
        kept = overview[inside[overview]]
        assert np.isin(kept, held).all()
        if lod["complete"]:
            np.testing.assert_array_equal(np.sort(held), np.flatnonzero(inside))
            break
    assert lod["complete"], steps
    assert "in view drawn" in widget.locator(".dx-status").inner_text()
    page.screenshot(path=str(ARTIFACTS / "lod-zoomed.png"))

    # hover a drawn point: the tooltip names its real row (and the kernel's label for that row)
    v = lod["visible"]
    centre = np.array([(v[0] + v[2]) / 2, (v[1] + v[3]) / 2])
    target = int(held[np.argmin(np.linalg.norm(xy[held] - centre, axis=1))])
    (hx, hy), = _pixels(page, [xy[target]])
    page.mouse.move(hx + 30, hy + 30)
    page.mouse.move(hx, hy, steps=3)
    tip = widget.locator(".dx-tooltip")
    tip.locator(".dx-tip-line").first.wait_for(timeout=30_000)
    lines = dict(line.split(": ", 1) for line in tip.inner_text().splitlines() if ": " in line)
    row = int(lines["id"])
    (px, py), = _pixels(page, [xy[row]])
    assert row in set(held.tolist()) and np.hypot(px - hx, py - hy) <= 9
    assert lines["label"] == ["alpha", "beta", "gamma", "delta", "epsilon"][label[row]]

    # back to the whole map, then a lasso with the mouse around a cluster: exact over all 10M in Python
    widget.get_by_role("button", name="Reset view").click()
    lod = _settle(page)
    assert lod["rect"] is None and lod["held"] == BUDGET
    ang = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    ring = np.c_[9.0 + 3.0 * np.cos(ang) * (1 + 0.2 * np.sin(3 * ang)), 2.0 + 3.5 * np.sin(ang)]
    path = _pixels(page, ring)

    def lasso():
        page.mouse.move(*path[0])
        page.mouse.down()
        for p in path[1:] + path[:1]:
            page.mouse.move(*p, steps=3)
        done = time.time()
        page.mouse.up()
        return done
    got, sel, lasso_s = _selection_after(lab, page, lasso)
    assert got["shape"] == "lasso" and got["n"] == len(sel) > 100_000
    exact = kernel_run(page, "poly = np.array(asked[-1]['polygon'], dtype=np.float64)\n"
                             "want = np.flatnonzero(points_in_polygon(ex.xy, poly))\n"
                             "print(len(want), np.array_equal(want, ex.selection.indices), len(poly))")
    n_want, same, n_vertices = exact.split()
    assert same == "True" and int(n_want) == len(sel), exact
    assert (label[sel] == 1).mean() > 0.9  # and it is the cluster drawn around
    # the browser highlights exactly the selected points among those it holds
    page.wait_for_function(f"() => document.querySelector('.dx-explorer').dataset.selected === '{len(sel)}'")
    held = _held(page)
    highlighted = np.array(page.eval_on_selector(".dx-explorer", "el => el.dxSelected()"), np.int64)
    np.testing.assert_array_equal(np.sort(highlighted), np.sort(held[np.isin(held, sel)]))
    assert f"{len(sel):,} selected" in widget.locator(".dx-status").inner_text()
    assert widget.locator(".dx-panel-head").inner_text().startswith(f"{len(sel):,} selected")
    page.screenshot(path=str(ARTIFACTS / "lod-lasso.png"))
    # a thumbnail of the grid rings its point, held or not (the kernel sends where it is)
    cell = widget.locator(".dx-cell").first
    ringed = int(cell.get_attribute("title"))
    assert ringed == sel[0]
    cell.click()
    (fx, fy), = _pixels(page, [xy[ringed]])
    red = page.eval_on_selector(".dx-explorer", """(el, p) => {
      const o = el.querySelector('.dx-overlay'), r = o.getBoundingClientRect(), k = o.width / r.width;
      const d = o.getContext('2d').getImageData(Math.round((p[0] - r.left - 12) * k),
        Math.round((p[1] - r.top - 12) * k), Math.round(25 * k), Math.round(25 * k)).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] > 150 && d[i + 1] < 90 && d[i + 3] > 100) n++;
      return n; }""", [fx, fy])
    assert red > 20, red

    # a legend class: every point of the class, counted in the kernel
    got, sel_class, class_s = _selection_after(
        lab, page, lambda: widget.locator(".dx-legend-row", has_text="gamma").click() or time.time())
    np.testing.assert_array_equal(sel_class, np.flatnonzero(label == 2))

    heap = page.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize / 2**20 : -1")
    print(f"\n10M-point map: notebook run -> widget ready {t_ready:.1f} s; widget mount -> first frame "
          f"{first_frame:.2f} s; zoom steps (held, inside, complete) {steps}; lasso ({n_vertices} vertices, "
          f"{len(sel):,} of {N:,} points) mouse-up -> Python observer {lasso_s * 1000:.0f} ms; legend class "
          f"({len(sel_class):,}) click -> Python {class_s * 1000:.0f} ms; JS heap {heap:.0f} MB")
