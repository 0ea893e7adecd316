"""Maps past what a browser draws point by point (kernel side): a bounded sample that refines by
view, a density layer, exact selections over all points in a compact form. (Browser: tests/browser.)"""

import logging

import numpy as np
import pandas as pd
import pytest

import dataexplore as dx
from conftest import browser, recording
from dataexplore.core.errors import DataexploreError
from dataexplore.core.geometry import PointGrid, first_by_rank, sample_rank
from dataexplore.core.selection import RowIds, points_in_polygon

N, MAX, BUDGET = 20_000, 5_000, 1_000


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [6, 1], [2, 7]])
    label = rng.integers(0, 3, N)
    xy = (centres[label] + rng.normal(size=(N, 2)) * np.array([0.5, 1.0, 1.5])[label, None]).astype(np.float32)
    table = pd.DataFrame({"label": pd.Categorical.from_codes(label, ["a", "b", "c"])})
    return xy, table


@pytest.fixture
def ex(data):
    xy, table = data
    return dx.Explorer(xy, table=table, color="label", max_points=MAX, lod_points=BUDGET)


def _points(sent, request=None):
    """(rows, xy, codes, last header) of the points messages (answering ``request``) in ``sent``."""
    chunks = [(c, b) for c, b in sent if c["type"] == "points" and (request is None or c["reply_to"] == request)]
    assert chunks and chunks[-1][0]["final"]
    xy = np.concatenate([np.frombuffer(b[0], np.float32) for _, b in chunks]).reshape(-1, 2)
    codes = np.concatenate([np.frombuffer(b[1], np.uint16) for _, b in chunks])
    rows = np.concatenate([np.frombuffer(b[2], np.uint32) for _, b in chunks])
    return rows, xy, codes, chunks[-1][0]


def _view(ex, sent, rect, seq):
    sent.clear()
    browser(ex, {"type": "view", "id": f"v1:{seq}", "rect": rect}, [])
    return _points(sent, f"v1:{seq}")


def _in_rect(xy, rect):
    x0, y0, x1, y1 = rect
    return np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))


def test_overview_is_a_bounded_stable_sample_over_a_density_of_all_points(ex, data):
    xy, table = data
    assert ex.level_of_detail and not dx.Explorer(xy[:MAX], max_points=MAX).level_of_detail
    sent = recording(ex)
    browser(ex, {"type": "ready", "id": "v1:0"}, [])
    lod = [(c, b) for c, b in sent if c["type"] == "lod"]
    assert len(lod) == 1 and lod[0][0]["total"] == N and lod[0][0]["reply_to"] == "v1:0"
    head, (counts,) = lod[0]
    density = np.frombuffer(counts, np.uint32).reshape(head["size"], head["size"])
    assert density.sum() == N and head["bounds"] == [*map(float, xy.min(0)), *map(float, xy.max(0))]
    rows, pts, codes, last = _points(sent)
    assert len(rows) == BUDGET and last["inside"] == N and not last["complete"] and last["rect"] is None
    # the sample is the BUDGET rows first in sampling rank, with their own coordinates and colours
    np.testing.assert_array_equal(np.sort(rows), np.sort(np.argsort(sample_rank(np.arange(N)))[:BUDGET]))
    np.testing.assert_array_equal(pts, xy[rows])
    np.testing.assert_array_equal(codes, table["label"].cat.codes.to_numpy()[rows])
    # the binned density: each cell counts its points
    x0, y0, x1, y1 = head["bounds"]
    g = head["size"]
    cu = np.clip(np.floor((xy[:, 0].astype(np.float64) - x0) * (g / (x1 - x0))), 0, g - 1).astype(int)
    cv = np.clip(np.floor((xy[:, 1].astype(np.float64) - y0) * (g / (y1 - y0))), 0, g - 1).astype(int)
    np.testing.assert_array_equal(density, np.bincount(cv * g + cu, minlength=g * g).reshape(g, g))


def test_a_view_gets_all_its_points_when_they_fit_else_a_prefix_that_keeps_what_was_shown(ex, data):
    xy, _ = data
    sent = recording(ex)
    browser(ex, {"type": "ready", "id": "v1:0"}, [])
    overview = set(_points(sent)[0].tolist())

    small = [5.5, 0.5, 6.2, 1.4]  # few points: every one of them, exactly
    rows, pts, _, head = _view(ex, sent, small, 1)
    want = _in_rect(xy, small)
    assert 0 < len(want) <= BUDGET and head["complete"] and head["inside"] == len(want)
    np.testing.assert_array_equal(np.sort(rows), want)
    np.testing.assert_array_equal(pts, xy[rows])
    assert not [c for c, _ in sent if c["type"] == "density"]  # all drawn: no density needed

    wide = [-1.5, -1.5, 7.5, 2.5]  # too many: the BUDGET first by rank, and the overview's stay
    rows, _, _, head = _view(ex, sent, wide, 2)
    inside = _in_rect(xy, wide)
    assert len(inside) > BUDGET and head["inside"] == len(inside) and not head["complete"]
    assert len(rows) == BUDGET and set(rows.tolist()) <= set(inside.tolist())
    np.testing.assert_array_equal(rows, first_by_rank(inside, BUDGET))
    assert overview & set(inside.tolist()) <= set(rows.tolist())
    narrower = [-1.0, -1.0, 6.5, 1.5]  # zooming in keeps every point of the wider view that stays in
    rows2, *_ = _view(ex, sent, narrower, 3)
    assert set(rows.tolist()) & set(_in_rect(xy, narrower).tolist()) <= set(rows2.tolist())
    dens = [(c, b) for c, b in sent if c["type"] == "density"]
    assert len(dens) == 1 and dens[0][0]["reply_to"] == "v1:3"
    assert np.frombuffer(dens[0][1][0], np.uint32).sum() == len(_in_rect(xy, narrower))

    rows, _, _, head = _view(ex, sent, [50, 50, 60, 60], 4)  # off the map: nothing, and that is all of it
    assert len(rows) == 0 and head["complete"] and head["final"]
    rows, *_ = _view(ex, sent, [-100, -100, 100, 100], 5)  # the whole map: the overview again
    assert set(rows.tolist()) == overview
    assert max(sum(len(b) for b in buffers) for _, buffers in sent) < 10 * 2**20


def _decode(sent, n):
    """The selected rows from the selection messages in ``sent`` (bitset or rows)."""
    msgs = [(c, b) for c, b in sent if c["type"] == "selection"]
    if msgs[0][0]["format"] == "bits":
        bits = np.concatenate([np.frombuffer(b[0], np.uint8) for _, b in msgs])
        return "bits", np.flatnonzero(np.unpackbits(bits, bitorder="little")[:n])
    return "rows", np.concatenate([np.frombuffer(b[0], np.uint32) for _, b in msgs])


def test_lasso_is_exact_over_all_points_and_comes_back_compact(ex, data):
    xy, _ = data
    rng = np.random.default_rng(3)
    ang = np.sort(rng.uniform(0, 2 * np.pi, 40))
    star = np.c_[3 + 4 * rng.uniform(0.3, 1, 40) * np.cos(ang), 3 + 4 * rng.uniform(0.3, 1, 40) * np.sin(ang)]
    tangle = rng.uniform(-2, 8, (25, 2))  # self-intersecting
    on_points = xy[rng.integers(0, N, 12)]  # vertices exactly on points
    tiny = [[0.01, 0.01], [0.2, 0.02], [0.1, 0.15]]
    sent = recording(ex)
    for poly in (star, tangle, on_points, tiny):
        sent.clear()
        browser(ex, {"type": "select", "shape": "lasso", "polygon": np.asarray(poly).tolist()}, [])
        want = np.flatnonzero(points_in_polygon(xy, np.asarray(poly, np.float64)))
        np.testing.assert_array_equal(ex.selection.indices, want)
        form, rows = _decode(sent, N)
        np.testing.assert_array_equal(rows, want)
        assert form == ("bits" if len(want) * 4 > N / 8 else "rows")  # whichever is smaller
        assert ex.selection.ids.tolist() == [str(r) for r in want]
        panel = [c for c, _ in sent if c["type"] == "panel"][-1]
        assert panel["total"] == len(want) and sum(v for _, v in panel["counts"]) == len(want)
    assert ex.selection.ids[0] == str(ex.selection.indices[0])
    before = ex.selection.indices
    browser(ex, {"type": "select", "shape": "box", "polygon": [[-1, -1], [1, -1], [1, 1], [-1, 1]],
                        "op": "add"}, [])
    box = np.flatnonzero(points_in_polygon(xy, np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])))
    np.testing.assert_array_equal(ex.selection.indices, np.union1d(before, box))


def test_legend_class_hover_and_colours_on_a_big_map(ex, data):
    xy, table = data
    sent = recording(ex)
    browser(ex, {"type": "ready", "id": "v1:0"}, [])
    sent.clear()
    browser(ex, {"type": "select", "shape": "class", "category": 1, "op": "replace"}, [])
    want = np.flatnonzero(table["label"].cat.codes.to_numpy() == 1)
    form, rows = _decode(sent, N)
    assert form == "bits"
    np.testing.assert_array_equal(rows, want)
    np.testing.assert_array_equal(ex.selection.indices, want)
    panel = [c for c, _ in sent if c["type"] == "panel"][-1]
    assert panel["counts"] == [["b", len(want)]] and panel["titles"][0] == str(want[0])
    assert panel["xy"][0] == [float(v) for v in xy[want[0]]]

    sent.clear()
    row = N - 7  # a row the browser may not hold: hover names rows, not positions in the sample
    browser(ex, {"type": "hover", "id": "v1:4", "row": row}, [])
    tip = sent[-1][0]
    assert tip["reply_to"] == "v1:4" and tip["lines"][:2] == [["id", str(row)], ["label", table["label"].iloc[row]]]

    rows, *_ = _view(ex, sent, [-1, -1, 1, 1], 5)
    sent.clear()
    ex.set_color(xy[:, 0])  # the browser holds a sample: it gets the colours of that sample only
    (msg, (codes,)), = [(c, b) for c, b in sent if c["type"] == "colors"]
    assert msg["sample"] == "v1:5"  # the sample it colours: a view holding another asks for its own
    np.testing.assert_array_equal(np.frombuffer(codes, np.uint16), ex.color_codes[rows])


def test_big_map_without_ids_makes_them_only_when_read(data):
    xy, _ = data
    ex = dx.Explorer(xy, max_points=MAX)
    assert isinstance(ex.ids, RowIds) and list(ex.table.columns) == []
    assert ex.select(["19999", "5"]).ids.tolist() == ["5", "19999"]
    for bad in ("05", "20000", "-1", "x"):
        with pytest.raises(DataexploreError, match="unknown sample id"):
            ex.select([bad])
    browser(ex, {"type": "select", "shape": "box", "polygon": [[-9, -9], [9, -9], [9, 9], [-9, 9]]}, [])
    sel = ex.selection
    assert "ids" not in sel.__dict__  # nothing made yet
    np.testing.assert_array_equal(sel.ids, np.array([str(i) for i in sel.indices], dtype=object))
    assert sel.to_frame()["id"].iloc[-1] == str(sel.indices[-1])


@pytest.mark.parametrize("message", [
    {"type": "view", "id": "v1:1", "rect": [0, 0, 1]},
    {"type": "view", "id": "v1:1", "rect": [0, 0, float("nan"), 1]},
    {"type": "view", "id": "v1:1", "rect": [2, 0, 1, 1]},
    {"type": "view", "id": "v1:1", "rect": [0, 0, "1", 1]},
    {"type": "view", "id": -1, "rect": [0, 0, 1, 1]},
    {"type": "view", "id": ["x"], "rect": [0, 0, 1, 1]},
    {"type": "view", "id": "x" * 65, "rect": [0, 0, 1, 1]},
])
def test_bad_view_messages_are_rejected(ex, message, caplog):
    sent = recording(ex)
    with caplog.at_level(logging.WARNING, logger="dataexplore.widget.explorer"):
        browser(ex, message, [])
        browser(dx.Explorer(np.zeros((5, 2))), {"type": "view", "id": "v1:1", "rect": None}, [])
    assert sent == [] and caplog.text.count("ignored a message from the browser") == 2


def test_a_big_map_is_not_saved_as_html(ex, tmp_path):
    with pytest.raises(DataexploreError, match="max_points=5,000.*subsample"):
        ex.to_html(tmp_path / "big.html")
    assert not (tmp_path / "big.html").exists()


def test_bad_limits_are_clear_errors():
    with pytest.raises(DataexploreError, match="max_points must be a positive integer"):
        dx.Explorer(np.zeros((3, 2)), max_points=0)
    with pytest.raises(DataexploreError, match="lod_points"):
        dx.Explorer(np.zeros((3, 2)), lod_points=2.5)


def _polygons(rng, xy):
    n = len(xy)
    for _ in range(6):
        c = rng.uniform(-3, 3, 2)
        k = int(rng.integers(3, 50))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = rng.uniform(0.02, 4) * rng.uniform(0.2, 1, k)
        yield np.c_[c[0] + r * np.cos(ang), c[1] + r * np.sin(ang)]
        yield rng.uniform(-3, 3, (k, 2))
        snapped = rng.uniform(-3, 3, (k, 2))
        snapped[::2] = xy[rng.integers(0, n, len(snapped[::2]))]
        yield snapped
    yield np.array([[-1e6, -1e6], [1e6, -1e6], [1e6, 1e6], [-1e6, 1e6]])  # far bigger than the map
    yield np.array([[50.0, 50], [51, 50], [50, 51]])  # outside it
    yield np.array([[0.0, 0], [1, 1], [2, 2]])  # no area


@pytest.mark.parametrize("kind", ["gaussian", "lattice", "one column", "one point"])
def test_point_grid_answers_exactly_what_the_plain_rules_do(kind):
    rng = np.random.default_rng(7)
    xy = rng.normal(size=(30_000, 2)).astype(np.float32)
    if kind == "lattice":  # many points exactly on cell borders and on polygon vertices
        xy = (np.round(xy * 4) / 4).astype(np.float32)
    elif kind == "one column":
        xy[:, 0] = 0.5
    elif kind == "one point":
        xy[:] = [1.0, -2.0]
    grid = PointGrid(xy)
    for poly in _polygons(rng, xy):
        np.testing.assert_array_equal(grid.polygon(poly), np.flatnonzero(points_in_polygon(xy, poly)))
    for _ in range(20):
        (x0, x1), (y0, y1) = np.sort(rng.uniform(-3.5, 3.5, 2)), np.sort(rng.uniform(-3.5, 3.5, 2))
        np.testing.assert_array_equal(grid.box(x0, y0, x1, y1), _in_rect(xy, [x0, y0, x1, y1]))
    x0, y0, x1, y1 = grid.bounds  # edges exactly on the extreme points
    np.testing.assert_array_equal(grid.box(x0, y0, x1, y1), np.arange(len(xy)))
    assert grid.counts.sum() == len(xy)


def _lasso(rng, centre, radius, k=400, jitter=0.03):
    """A hand-drawn lasso: ``k`` vertices going once around ``centre``, the radius a random walk."""
    ang = np.linspace(0, 2 * np.pi, k, endpoint=False) + rng.normal(scale=0.3 / k, size=k)
    walk = np.cumsum(rng.normal(scale=jitter, size=k))
    walk -= np.linspace(0, walk[-1], k)  # closes where it started
    r = radius * (1 + walk) * (1 + jitter / 3 * rng.normal(size=k))
    return np.c_[centre[0] + r * np.cos(ang), centre[1] + r * np.sin(ang)]


def _hard_polygons(rng, xy, grid):
    """400-vertex lassos, self-intersecting ones, vertices and edges exactly on points and on cell
    borders, and degenerate outlines."""
    lo, hi = xy.min(0).astype(np.float64), xy.max(0).astype(np.float64)
    mid, span = (lo + hi) / 2, max(float((hi - lo).max()), 1e-3)
    for jitter in (0.0, 0.01, 0.05, 0.3):
        yield _lasso(rng, mid + rng.normal(scale=0.1 * span, size=2), rng.uniform(0.05, 0.4) * span, jitter=jitter)
    yield mid + rng.uniform(-0.4, 0.4, (400, 2)) * span  # a scribble: edges crossing everywhere
    ang = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    spikes = 0.3 * span * np.where(np.arange(400) % 2, 1.0, 0.05)
    yield np.c_[mid[0] + spikes * np.cos(ang), mid[1] + spikes * np.sin(ang)]  # a star of thin spikes
    on_points = _lasso(rng, mid, 0.3 * span)
    on_points[::3] = xy[rng.integers(0, len(xy), len(on_points[::3]))]  # vertices on points
    yield on_points
    # edges through points: each edge joins two points, so it passes exactly through both
    yield xy[rng.integers(0, len(xy), 60)].astype(np.float64)
    x0, y0, x1, y1 = grid.bounds
    bx = x0 + np.arange(grid.size + 1) * ((x1 - x0) / grid.size)  # (about) the cell borders
    by = y0 + np.arange(grid.size + 1) * ((y1 - y0) / grid.size)
    yield np.c_[rng.choice(bx, 50), rng.choice(by, 50)]  # vertices on cell borders
    yield np.array([[bx[2], by[1]], [bx[-3], by[1]], [bx[-3], by[-2]], [bx[2], by[-2]]])  # a box on borders
    for row in (grid.size // 2, grid.size // 3):  # sawtooths of long, nearly level edges ending in a row
        cell = by[row + 1] - by[row]
        teeth = np.c_[np.linspace(lo[0], hi[0], 41), by[row] + cell * np.tile([0.05, 0.35], 21)[:41]]
        yield np.r_[teeth, [[hi[0], lo[1]], [lo[0], lo[1]]]]
    ys = np.unique(xy[:, 1])[[len(np.unique(xy[:, 1])) // 3, 2 * len(np.unique(xy[:, 1])) // 3]].astype(np.float64)
    yield np.array([[lo[0], ys[0]], [hi[0], ys[0]], [hi[0], ys[1]], [lo[0], ys[1]]])  # level edges along rows of points
    # degenerate: repeated vertices, a spike out and back, no area, one point, a sliver, a speck
    doubled = np.repeat(_lasso(rng, mid, 0.2 * span, k=100), 2, axis=0)
    yield doubled
    spike = _lasso(rng, mid, 0.2 * span, k=50)
    yield np.insert(spike, 10, [[mid[0] + span, mid[1]], spike[9]], axis=0)
    yield np.array([mid - 0.3 * span, mid, mid + 0.3 * span, mid])  # collinear, back and forth
    yield np.repeat(mid[None], 5, axis=0)
    yield np.array([mid - 0.3 * span, mid + 0.3 * span, mid + 0.3 * span + 1e-9])
    p = xy[rng.integers(0, len(xy))].astype(np.float64)
    yield p + np.array([[0, 0], [1e-7, 0], [0, 1e-7]])


@pytest.mark.parametrize("kind", ["gaussian", "lattice", "clusters", "coarse", "one column", "one row"])
def test_point_grid_is_exact_for_hand_drawn_and_degenerate_lassos(kind):
    rng = np.random.default_rng(11)
    xy = rng.normal(size=(40_000, 2)).astype(np.float32)
    size = None
    if kind == "lattice":  # points on polygon vertices, on edges, and rows of points on level edges
        xy = (np.round(xy * 8) / 8).astype(np.float32)
    elif kind in ("clusters", "coarse"):  # a UMAP-like map: tight clusters, hundreds of points a cell
        centres = rng.uniform(-6, 6, (8, 2))
        xy = (centres[rng.integers(0, 8, len(xy))] + rng.standard_t(4, (len(xy), 2)) * 0.3).astype(np.float32)
        size = 16 if kind == "coarse" else None
    elif kind == "one column":
        xy[:, 0] = 0.5
    elif kind == "one row":
        xy[:, 1] = -0.25
    grid = PointGrid(xy, size=size)
    for poly in _hard_polygons(rng, xy, grid):
        for p in (poly, poly[::-1]):  # either way round (points on an edge may differ between them)
            np.testing.assert_array_equal(grid.polygon(p), np.flatnonzero(points_in_polygon(xy, p)))


def test_point_grid_small_tables_fall_back_to_the_plain_rule_with_the_same_answer(monkeypatch):
    import dataexplore.core.geometry as geometry

    rng = np.random.default_rng(5)
    xy = rng.normal(size=(20_000, 2)).astype(np.float32)
    grid = PointGrid(xy)
    polys = [_lasso(rng, (0, 0), 1.5), rng.uniform(-2, 2, (400, 2))]
    want = [grid.polygon(p) for p in polys]
    for limit in (grid.size * 2, 10):  # the per-band tables too big, then the outline too long
        monkeypatch.setattr(geometry, "_TABLE", limit)
        for p, w in zip(polys, want):
            np.testing.assert_array_equal(grid.polygon(p), w)
            np.testing.assert_array_equal(w, np.flatnonzero(points_in_polygon(xy, p)))


def test_sample_rank_is_a_permutation_and_prefixes_nest():
    r = sample_rank(np.arange(1 << 18))
    assert r.dtype == np.uint32 and len(np.unique(r)) == 1 << 18
    rows = np.arange(0, 50_000, 3)
    small, big = first_by_rank(rows, 100), first_by_rank(rows, 1000)
    np.testing.assert_array_equal(big[:100], small)
    assert len(first_by_rank(rows[:50], 100)) == 50
