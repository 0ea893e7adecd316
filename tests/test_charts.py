"""Linked charts under the map: binning, top categories, crossfilter counts and the selection they make,
all in the kernel (dataexplore/widget/charts.py) and checked against pandas. (Browser: tests/browser.)"""

import logging
import time

import numpy as np
import pandas as pd
import pytest

import dataexplore as dx
from conftest import browser, recording
from dataexplore.core.errors import DataexploreError
from dataexplore.widget import charts as ch, protocol


def _table(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    score = rng.normal(size=n)
    score[rng.random(n) < 0.05] = np.nan
    score[:3] = [np.inf, -np.inf, np.nan]
    size = rng.integers(0, 500, n)
    return pd.DataFrame({"id": [f"s{i}" for i in range(n)],
                         "label": rng.choice(list("abcdefghijklmnop"), n, p=np.r_[[0.2, 0.15], np.full(14, 0.65 / 14)]),
                         "split": rng.choice(["train", "test", None], n),
                         "score": score, "size": size, "ok": rng.random(n) < 0.3})


def test_histogram_bins_cover_the_finite_range_and_count_missing_apart():
    t = _table()
    c = ch.numeric_chart(t.score, "score", bins=12)
    finite = np.isfinite(t.score)
    assert c.kind == "numeric" and len(c.edges) == 13
    assert c.edges[0] == t.score[finite].min() and c.edges[-1] == t.score[finite].max()
    want, _ = np.histogram(t.score[finite], bins=c.edges)
    assert c.counts[:-1].tolist() == want.tolist()
    assert c.counts[-1] == (~finite).sum()  # NaN and ±inf: "no value"
    spec = c.spec()
    assert spec["counts"] == want.tolist() and spec["missing"] == int((~finite).sum()) and spec["labels"] == []


def test_a_constant_or_empty_column_still_makes_a_histogram():
    c = ch.numeric_chart(pd.Series([5.0, 5.0, np.nan]), "x", bins=4)
    assert c.counts.tolist() == [2, 0, 0, 0, 1]
    c = ch.numeric_chart(pd.Series([np.nan, np.nan]), "x", bins=3)
    assert c.counts.tolist() == [0, 0, 0, 2]


def test_bars_are_the_top_categories_then_other_and_missing():
    t = _table()
    c = ch.categorical_chart(t.label, "label", top=5)
    vc = t.label.value_counts()
    top = sorted(vc.index, key=lambda k: (-vc[k], k))[:5]  # most common first, ties in natural order
    assert c.labels == [*top, "(other)"]
    assert c.counts.tolist() == [*(vc[k] for k in top), len(t) - sum(vc[k] for k in top)]
    split = ch.categorical_chart(t.split, "split")
    assert split.labels[-1] == "(missing)" and split.counts[-1] == t.split.isna().sum()
    assert "(other)" not in split.labels
    np.testing.assert_array_equal(np.asarray(split.labels)[split.codes],
                                  t.split.fillna("(missing)").to_numpy())


def test_which_columns_get_bars_and_which_a_histogram():
    t = _table()
    kinds = {c.name: c.kind for c in ch.make_charts(["label", "split", "score", "size", "ok"], t, t.id, len(t))}
    assert kinds == {"label": "categorical", "split": "categorical", "score": "numeric", "size": "numeric",
                     "ok": "categorical"}
    assert ch.make_chart(pd.Series([1, 2, 3, 2]), "few").kind == "categorical"
    with pytest.raises(DataexploreError, match="no column 'nope'"):
        ch.make_charts(["nope"], t, t.id, len(t))
    with pytest.raises(DataexploreError, match="bins must be"):
        ch.make_charts(["score"], t, t.id, len(t), bins=0)
    with pytest.raises(DataexploreError, match="same name"):
        ch.make_charts(["score", "score"], t, t.id, len(t))


def test_a_range_from_one_bin_edge_to_another_keeps_exactly_those_bins():
    v = pd.Series(np.r_[np.arange(0, 101, dtype=float), [np.nan]])  # every edge value is a data value
    c = ch.numeric_chart(v, "v", bins=10)
    assert c.edges.tolist() == list(np.arange(0, 101, 10.0))
    mask = ch.Filter(range=(20.0, 50.0)).mask(c)
    assert np.flatnonzero(mask).tolist() == list(range(20, 50))  # 20 in, 50 out (it is bin 5's)
    assert mask.sum() == c.counts[2:5].sum()
    top = ch.Filter(range=(90.0, 100.0)).mask(c)  # the last edge: the largest value is in
    assert np.flatnonzero(top).tolist() == list(range(90, 101)) and top.sum() == c.counts[9]
    assert not ch.Filter(range=(-1e9, 1e9)).mask(c)[-1]  # no value passes no range
    assert ch.Filter(range=(20.5, 20.5)).mask(c).sum() == 0


def _brute(t, filters):
    """Rows passing ``filters`` ({column: ("in", values) | ("range", lo, hi, top)}), in pandas."""
    keep = pd.Series(True, index=t.index)
    for col, f in filters.items():
        if f[0] == "in":
            keep &= t[col].fillna("(missing)").astype(str).isin(f[1])
        else:
            lo, hi, top = f[1:]
            v = t[col].where(np.isfinite(t[col]))
            keep &= (v >= lo) & ((v < hi) | (hi >= top))
    return keep


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_crossfilter_counts_equal_pandas(seed):
    t = _table(4000, seed)
    rng = np.random.default_rng(seed)
    charts = ch.make_charts(["label", "split", "score"], t, t.id, len(t), bins=15, top=6)
    label, split, score = charts
    cf = ch.Crossfilter(charts)
    picked = sorted(rng.choice(label.bars, 3, replace=False).tolist())
    cf.set(0, ch.check_filter(label, bars=picked))
    cf.set(1, ch.check_filter(split, bars=[0, 2]))
    lo, hi = score.edges[3], score.edges[11]
    cf.set(2, ch.check_filter(score, range=[lo, hi]))
    top_labels = set(label.labels[:-1])
    label_names = [label.labels[b] for b in picked]
    # pandas: "(other)" is every label outside the top bars
    as_bar = t.label.where(t.label.isin(top_labels), "(other)")
    t2 = t.assign(label=as_bar)
    filters = {"label": ("in", label_names), "split": ("in", [split.labels[0], split.labels[2]]),
               "score": ("range", lo, hi, score.edges[-1])}
    passing = _brute(t2, filters)
    np.testing.assert_array_equal(cf.rows(), np.flatnonzero(passing))
    got = cf.highlighted(np.zeros(0, np.uint32))
    for k, (chart, col) in enumerate(zip(charts, ["label", "split", "score"])):
        others = _brute(t2, {c: f for c, f in filters.items() if c != col})
        want = np.bincount(chart.codes[others.to_numpy()], minlength=len(chart.counts))
        assert got[k].tolist() == want.tolist(), col
    # one filter removed: the others still apply; all removed: the charts show the selection
    cf.set(1, None)
    np.testing.assert_array_equal(cf.rows(), np.flatnonzero(_brute(t2, {c: f for c, f in filters.items()
                                                                         if c != "split"})))
    cf.clear()
    sel = np.sort(rng.choice(len(t), 300, replace=False)).astype(np.uint32)
    counts = cf.highlighted(sel)
    assert counts[0].tolist() == np.bincount(label.codes[sel], minlength=len(label.counts)).tolist()
    assert cf.highlighted(np.zeros(0, np.uint32)) is None


@pytest.fixture
def ex():
    t = _table(3000)
    rng = np.random.default_rng(5)
    return dx.Explorer(rng.normal(size=(len(t), 2)).astype(np.float32), ids=t.id, table=t, color="label")


def test_clicking_bars_and_brushing_make_the_selection_with_provenance(ex):
    t = ex.table
    sent = recording(ex)
    ex.charts(["label", "score"], bins=10)
    spec = next(c for c, _ in sent if c["type"] == "charts")
    labels, edges = spec["charts"][0]["labels"], spec["charts"][1]["edges"]
    seen = []
    ex.on_select(seen.append)
    browser(ex, {"type": "filter", "id": "v:1", "version": spec["version"], "chart": 0, "bars": [0, 2]})
    want = t.label.isin([labels[0], labels[2]])
    np.testing.assert_array_equal(ex.selection.indices, np.flatnonzero(want))
    assert ex.selection.shape == "filter" and seen == [ex.selection]
    assert ex.selection.provenance["filters"] == {"label": {"categories": [labels[0], labels[2]]}}
    browser(ex, {"type": "filter", "id": "v:2", "version": spec["version"], "chart": 1,
                 "range": [edges[2], edges[6]]})
    v = t.score.where(np.isfinite(t.score))
    want &= (v >= edges[2]) & (v < edges[6])
    np.testing.assert_array_equal(ex.selection.indices, np.flatnonzero(want))
    assert ex.filters == {"label": {"categories": [labels[0], labels[2]]}, "score": {"range": [edges[2], edges[6]]}}
    counts = [c for c, _ in sent if c["type"] == "chart_counts"][-1]
    assert counts["mode"] == "filter" and counts["total"] == int(want.sum())
    assert counts["filters"] == [{"bars": [0, 2]}, {"range": [edges[2], edges[6]]}]
    # the label chart highlights the rows in the score range (the other chart's filter)
    in_range = (v >= edges[2]) & (v < edges[6])
    bars = t.label.where(t.label.isin(labels), "(other)")
    assert counts["selected"][0] == [int((in_range & (bars == name)).sum()) for name in labels]
    # the map's own selection (a lasso) replaces the filters; the charts show its rows
    browser(ex, {"type": "select", "id": "v:3", "shape": "box", "op": "replace",
                 "polygon": [[-1, -1], [1, -1], [1, 1], [-1, 1]]})
    assert ex.filters == {} and ex.selection.shape == "box"
    counts = [c for c, _ in sent if c["type"] == "chart_counts"][-1]
    picked = bars.iloc[ex.selection.indices]
    assert counts["mode"] == "selection" and counts["filters"] == [{}, {}]
    assert counts["selected"][0] == [int((picked == name).sum()) for name in labels]
    # Python's filter() does what a click does; clear_filters() ends it
    sel = ex.filter("label", categories=[labels[1]])
    np.testing.assert_array_equal(sel.indices, np.flatnonzero(t.label == labels[1]))
    assert ex.clear_filters().shape == "clear" and ex.filters == {}


def test_charts_of_analysis_values_keyed_by_sample_id(ex):
    ids = ex.table.id
    values = pd.Series(np.arange(100, dtype=float), index=ids[::30].to_numpy(), name="confidence")
    class Result:
        title = "slices"
        def map_values(self):
            return pd.Series(["x", "y"] * 50, index=ids[:100].to_numpy())
    sent = recording(ex)
    ex.charts([values, Result(), ("rank", np.arange(len(ids)))])
    specs = next(c for c, _ in sent if c["type"] == "charts")["charts"]
    assert [s["name"] for s in specs] == ["confidence", "slices", "rank"]
    assert specs[0]["missing"] == len(ids) - 100 and sum(specs[0]["counts"]) == 100
    assert specs[1]["labels"] == ["x", "y", "(missing)"] and specs[1]["counts"] == [50, 50, len(ids) - 100]
    sel = ex.filter("confidence", range=(10, 20))
    assert sel.ids.tolist() == ids[::30].iloc[10:20].tolist()


@pytest.mark.parametrize("message, why", [
    ({"type": "filter", "version": 1, "chart": 5, "bars": [0]}, "chart 5 out of range"),
    ({"type": "filter", "version": 9, "chart": 0, "bars": [0]}, "no longer shown"),
    ({"type": "filter", "version": 1, "chart": 0, "bars": [99]}, "out of range"),
    ({"type": "filter", "version": 1, "chart": 0, "range": [0, 1]}, "not a range"),
    ({"type": "filter", "version": 1, "chart": 1, "bars": [0]}, "histogram"),
    ({"type": "filter", "version": 1, "chart": 1, "range": [2, 1]}, "bad range"),
    ({"type": "filter", "version": 1, "chart": 1, "range": [0, float("inf")]}, "bad range"),
    ({"type": "filter", "version": 1, "chart": 1, "range": [0, "1"]}, "low, high"),
    ({"type": "filter", "version": 1, "chart": 0, "bars": [0], "range": [0, 1]}, "not both"),
    ({"type": "filter", "version": 1, "chart": 0, "bars": [True]}, "bar"),
    ({"type": "filter", "version": 1, "chart": 0, "bars": list(range(2000))}, "at most"),
    ({"type": "filter", "version": "1", "chart": 0}, "version"),
])
def test_bad_filter_requests_are_logged_and_ignored(ex, message, why, caplog):
    ex.charts(["label", "score"])
    ex.filter("label", categories=["a"])
    before = ex.selection
    with caplog.at_level(logging.WARNING, logger="dataexplore.widget.explorer"):
        browser(ex, {"id": "v:1", **message})
    assert ex.selection is before and ex.filters == {"label": {"categories": ["a"]}}
    assert why in caplog.text


def test_filters_on_a_big_map_select_over_all_rows(ex):
    t = ex.table
    big = dx.Explorer(ex.xy, ids=t.id, table=t, max_points=500, lod_points=200)
    assert big.level_of_detail
    sent = recording(big)
    browser(big, {"type": "ready", "id": "v:1"})
    big.charts(["split", "score"])
    browser(big, {"type": "filter", "id": "v:2", "version": 1, "chart": 0, "bars": [0]})
    split = ch.categorical_chart(t.split, "split")
    np.testing.assert_array_equal(big.selection.indices, np.flatnonzero(split.codes == 0))
    assert len(big.selection) > 500  # more rows than the browser holds
    chunks = [c for c, _ in sent if c["type"] == "selection"]
    assert chunks[-1]["total"] == len(big.selection)


def test_new_charts_drop_old_filters_and_keep_the_rows(ex):
    ex.charts(["label"])
    rows = ex.filter("label", categories=["b"]).indices
    sent = recording(ex)
    ex.charts(["split"])
    assert ex.filters == {} and ex.selection.shape == "combined"
    assert ex.selection.provenance["filters"] == {"label": {"categories": ["b"]}}  # still says what made it
    np.testing.assert_array_equal(ex.selection.indices, rows)
    assert [c["version"] for c, _ in sent if c["type"] == "charts"] == [2]
    ex.charts([])
    assert [c for c, _ in sent if c["type"] == "charts"][-1]["charts"] == []
    with pytest.raises(DataexploreError, match="no charts"):
        ex.filter("label", categories=["b"])


def test_parse_request_checks_filters():
    got = protocol.parse_request({"type": "filter", "id": "v:1", "version": 2, "chart": 1, "range": [0, 1.5]})
    assert got == {"type": "filter", "id": "v:1", "version": 2, "chart": 1, "range": [0.0, 1.5]}
    assert "bars" not in protocol.parse_request({"type": "filter", "id": "v:1", "version": 2, "chart": 0})


@pytest.mark.slow
def test_ten_million_points_are_counted_exactly_and_quickly():
    n = 10_000_000
    rng = np.random.default_rng(0)
    label = pd.Categorical.from_codes(rng.integers(0, 12, n, dtype=np.int8), [f"c{i}" for i in range(12)])
    score = rng.random(n, dtype=np.float32).astype(np.float64)
    t = pd.DataFrame({"label": label, "score": score})
    start = time.perf_counter()
    charts = ch.make_charts(["label", "score"], t, None, n, bins=20, top=8)
    cf = ch.Crossfilter(charts)
    cf.set(0, ch.check_filter(charts[0], bars=[0, 3]))
    cf.set(1, ch.check_filter(charts[1], range=[charts[1].edges[4], charts[1].edges[9]]))
    rows = cf.rows()
    counts = cf.highlighted(rows)
    took = time.perf_counter() - start
    keep = np.isin(np.asarray(label), [charts[0].labels[0], charts[0].labels[3]]) & \
        (score >= charts[1].edges[4]) & (score < charts[1].edges[9])
    np.testing.assert_array_equal(rows, np.flatnonzero(keep))
    assert counts[0].sum() == ((score >= charts[1].edges[4]) & (score < charts[1].edges[9])).sum()
    assert took < 20, f"{took:.1f} s"


def test_python_filters_say_what_is_wrong(ex):
    ex.charts(["label", "score"])
    for call, says in [(lambda: ex.filter("nope", categories=["a"]), "no chart 'nope'"),
                       (lambda: ex.filter(7), "no chart 7"),
                       (lambda: ex.filter("label", categories=["zzz"]), "no bar 'zzz'"),
                       (lambda: ex.filter("label", range=(0, 1)), "not a range"),
                       (lambda: ex.filter("score", range=(1, 0)), "bad range")]:
        with pytest.raises(DataexploreError, match=says):
            call()
    assert ex.filter(1, range=(0, 1)).shape == "filter" and list(ex.filters) == ["score"]
    assert ex.filter("score").shape == "clear" and ex.filters == {}


def test_mixed_values_keep_missing_apart_and_bar_names_pick_one_bar():
    values = pd.Series([1, "1", None, "(other)", 2.5, np.nan, "x", "x"], dtype=object)
    c = ch.categorical_chart(values, "mixed")
    assert "None" not in c.labels and "nan" not in c.labels
    assert c.labels[-1] == ch.MISSING and c.counts[-1] == 2  # None and NaN are "no value", not bars
    assert len(set(c.labels)) == len(c.labels)  # 1 and "1" share a bar as text; "(other)" is not OTHER
    assert ch.OTHER not in c.labels[:-1] and "(other) (2)" in c.labels
