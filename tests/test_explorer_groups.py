"""Analysis results on the map: colours, the groups list, and selecting a group (kernel side)."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

import dataexplore as dx
from conftest import browser, recording
from dataexplore.core.errors import DataexploreError


@pytest.fixture(scope="module")
def emb():
    return dx.embed("fashion-mnist:test:3000", progress=False)


@pytest.fixture
def ex(emb):
    xy = np.random.default_rng(0).normal(size=(len(emb), 2)).astype(np.float32)
    return dx.Explorer(xy, ids=emb.ids, table=emb.table, samples=emb.samples, rows=emb.rows, color="label")


@pytest.fixture(scope="module")
def slices(emb):
    inside = (emb.table["label"] == "Bag").to_numpy()
    wrong = np.where(inside, np.random.default_rng(0).random(len(emb)) < 0.6,
                     np.random.default_rng(1).random(len(emb)) < 0.05)
    return dx.failures(emb, correct=~wrong)


def test_show_lists_the_groups_and_colours_by_them(ex, slices):
    sent = recording(ex)
    ex.show(slices)
    msg = [c for c, _ in sent if c["type"] == "groups"][-1]
    assert msg["title"] == "Failure slices" and msg["columns"][:3] == ["name", "description", "count"]
    assert "exemplars" not in msg["columns"]  # lists stay in Python
    assert len(msg["rows"]) == len(slices) and msg["rows"][0][0] == "slice 1"
    rate = msg["rows"][0][msg["columns"].index("error_rate")]
    assert rate.endswith("%") and abs(float(rate[:-1]) / 100 - slices.groups()["error_rate"].iloc[0]) < 0.001
    assert msg["on_map"][0] == slices.groups()["count"].iloc[0]
    info = ex.color_info
    assert info["kind"] == "categorical" and info["name"] == "failure slice"
    assert info["categories"] == sorted(slices.groups()["name"].tolist())
    # samples outside every slice have no value: grey, not a class
    outside = int(slices.slice_.isna().sum())
    assert info["no_value"] == outside and int((ex.color_codes == info["no_value_code"]).sum()) == outside
    colors = [b for c, b in sent if c["type"] == "colors"][-1]
    assert np.frombuffer(colors[0], np.uint16).tolist() == ex.color_codes.tolist()


def test_clicking_a_row_selects_exactly_that_group(ex, slices):
    ex.show(slices)
    sent = recording(ex)
    browser(ex, {"type": "select", "shape": "group", "group": 0, "op": "replace"}, [])
    assert set(ex.selection.ids) == set(slices.group_ids(0)) and ex.selection.shape == "group"
    assert ex.selection.provenance["group"] == "slice 1"
    assert ex.selection.provenance["analysis"] == "Failure slices"
    back = [c for c, _ in sent if c["type"] == "selection"][-1]
    assert back["group"] == 0 and back["total"] == len(slices.group_ids(0))
    if len(slices) > 1:
        browser(ex, {"type": "select", "shape": "group", "group": 1, "op": "add"}, [])
        assert len(ex.selection) == len(slices.group_ids(0)) + len(slices.group_ids(1))
        assert ex.selection.shape == "combined"
    assert ex.select_group(0) == slices.selection(0, on=ex)


def test_bad_group_messages_are_logged_and_ignored(ex, slices, caplog):
    ex.show(slices)
    ex.select_group(0)
    before = ex.selection
    with caplog.at_level(logging.WARNING, logger="dataexplore.widget.explorer"):
        for bad in (-1, len(slices), "0", 1.5, None, True):
            browser(ex, {"type": "select", "shape": "group", "group": bad, "op": "replace"}, [])
    assert ex.selection is before
    assert len([r for r in caplog.records if "ignored" in r.message]) == 6
    with pytest.raises(DataexploreError, match="out of range"):
        ex.select_group(99)


def test_numeric_results_colour_with_grey_for_samples_not_analysed(ex, emb):
    half = np.arange(len(emb)) < 1500
    cov = dx.coverage(emb.subset(half & (emb.table["label"] != "Trouser").to_numpy()), emb.subset(~half))
    ex.show(cov)
    info = ex.color_info
    assert info["kind"] == "numeric" and info["name"] == "under-coverage"
    assert info["no_value"] == 1500 and (ex.color_codes[:1500] == 256).all() and (ex.color_codes[1500:] <= 255).all()
    assert float(info["max"]) == pytest.approx(cov.scores.max(), abs=1e-3)  # grey points do not stretch it
    ex.select_group(0)
    labels = ex.table["label"].iloc[ex.selection.indices].astype(str)
    assert (labels == "Trouser").mean() > 0.9


def test_show_none_removes_the_list_and_the_colours(ex, slices):
    ex.show(slices)
    sent = recording(ex)
    ex.show(None)
    msg = [c for c, _ in sent if c["type"] == "groups"][-1]
    assert msg["rows"] == [] and ex.color_info == {"kind": "none"}
    with pytest.raises(DataexploreError, match="show\\(result\\) first"):
        ex.select_group(0)
    ex.show(slices, color=False)  # list only: the colours stay
    assert ex.color_info == {"kind": "none"}
    with pytest.raises(DataexploreError, match="no groups\\(\\) method"):
        ex.show(object())


def test_a_reopened_view_gets_the_list_again(ex, slices):
    ex.show(slices, by="correct")
    assert ex.color_info["categories"] == ["right", "wrong"]
    sent = recording(ex)
    browser(ex, {"type": "ready"}, [])
    assert [c["type"] for c, _ in sent][-3:] == ["groups", "selection", "panel"]


def test_user_colour_columns_keep_a_missing_class(emb):
    table = emb.table.assign(note=[None if i % 3 else "x" for i in range(len(emb))])
    ex = dx.Explorer(np.zeros((len(emb), 2), np.float32), ids=emb.ids, table=table, color="note")
    assert ex.color_info["categories"] == ["x", "(missing)"] and ex.color_info["no_value"] == 0
    ex.set_color(pd.Series([np.nan] * 10 + list(np.linspace(0, 1, len(emb) - 10))))
    assert ex.color_info["no_value"] == 10 and ex.color_info["min"] == "0"


# ---- the show() contract with a duck-typed result (no analysis module involved) -----------------
class FakeResult:
    """What show() needs: title, map_values(), groups(), group_ids(k)."""

    title = "Fake <b>slices</b>"

    def __init__(self, values, members, name="score"):
        self.values = pd.Series(values, name=name)
        self.members = members

    def map_values(self):
        return self.values

    def groups(self):
        k = len(self.members)
        return pd.DataFrame({"name": [f"g{i}" for i in range(k)], "description": [f"group <{i}>" for i in range(k)],
                             "count": [len(m) for m in self.members], "error_rate": np.linspace(0.25, 0.5, k),
                             "interval": [f"[{i}, {i + 1})" for i in range(k)],
                             "exemplars": [list(m[:2]) for m in self.members]})

    def group_ids(self, k):
        return np.asarray(self.members[k], dtype=object)


@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(100)]
    table = pd.DataFrame({"id": ids, "label": ["a"] * 50 + ["b"] * 50})
    return dx.Explorer(rng.random((100, 2)).astype(np.float32), ids=ids, table=table, color="label")


@pytest.fixture
def fake():
    # values for s0..s79 only (s80..s99 are not in the result), NaN for s0..s9; an id the map lacks
    values = pd.Series(np.r_[np.full(10, np.nan), np.linspace(2.0, 4.0, 70)], index=[f"s{i}" for i in range(80)])
    values["ghost"] = 100.0  # not on the map: must not stretch the colour bar
    members = [[f"s{i}" for i in range(10, 20)] + ["ghost"], [f"s{i}" for i in range(15, 30)],
               [f"s{i}" for i in range(90, 100)]]
    return FakeResult(values, members)


def test_show_sends_a_small_json_groups_message(small, fake):
    sent = recording(small)
    small.show(fake)
    msgs = [(c, b) for c, b in sent if c["type"] == "groups"]
    assert len(msgs) == 1 and msgs[0][1] == []
    assert msgs[0][0] == {
        "type": "groups", "title": "Fake <b>slices</b>",
        "columns": ["name", "description", "count", "error_rate", "interval"],  # lists stay in Python
        "rows": [["g0", "group <0>", "11", "25.0%", "[0, 1)"], ["g1", "group <1>", "15", "37.5%", "[1, 2)"],
                 ["g2", "group <2>", "10", "50.0%", "[2, 3)"]],
        "on_map": [10, 15, 10],  # "ghost" is not on the map
    }
    assert json.loads(json.dumps(msgs[0][0])) == msgs[0][0]
    np.testing.assert_array_equal(small._groups[0], np.arange(10, 20))


def test_numeric_result_codes_nan_and_absent_ids_as_grey(small, fake):
    sent = recording(small)
    small.show(fake)
    info = small.color_info
    assert info["kind"] == "numeric" and info["name"] == "score"
    assert (info["min"], info["max"]) == ("2", "4")  # NaN, absent and off-map ids left out of the range
    assert info["no_value"] == 30 and info["no_value_code"] == 256
    codes = np.frombuffer([b for c, b in sent if c["type"] == "colors"][-1][0], np.uint16)
    assert (codes[:10] == 256).all() and (codes[80:] == 256).all()
    assert codes[10] == 0 and codes[79] == 255 and (codes[10:80] <= 255).all()


@pytest.mark.parametrize("values, categories", [
    (["x", "y"] * 30 + [None] * 10, ["x", "y"]),
    ([True, False] * 35, ["False", "True"]),
    ([3, 1, 2] * 20 + [7] * 10, ["1", "2", "3", "7"]),  # integers stay classes though ids are absent
])
def test_categorical_results_leave_absent_ids_grey_not_a_class(small, values, categories):
    result = FakeResult(pd.Series(values, index=[f"s{i}" for i in range(70)], name="kind"), [["s1"]])
    small.show(result)
    info = small.color_info
    assert info["kind"] == "categorical" and info["categories"] == categories
    grey = 30 + sum(v is None for v in values)
    assert info["no_value"] == grey and "(missing)" not in info["categories"]
    codes = small.color_codes
    assert int((codes == info["no_value_code"]).sum()) == grey and (codes[70:] == len(categories)).all()
    assert sum(info["counts"]) == 100 - grey


def test_group_click_selects_exact_rows_with_provenance(small, fake):
    small.show(fake)
    sent = recording(small)
    browser(small, {"type": "select", "shape": "group", "group": 1, "op": "replace"}, [])
    sel = small.selection
    assert sel.indices.tolist() == list(range(15, 30)) and sel.ids.tolist() == [f"s{i}" for i in range(15, 30)]
    assert sel.shape == "group" and sel.provenance == {"analysis": "Fake <b>slices</b>", "group": "g1"}
    back = [(c, b) for c, b in sent if c["type"] == "selection"][-1]
    assert back[0]["group"] == 1 and back[0]["total"] == 15
    assert np.frombuffer(back[1][0], np.uint32).tolist() == list(range(15, 30))
    browser(small, {"type": "select", "shape": "group", "group": 0, "op": "add"}, [])
    assert small.selection.indices.tolist() == list(range(10, 30)) and small.selection.shape == "combined"
    assert [c for c, _ in sent if c["type"] == "selection"][-1]["group"] == -1  # no single row to highlight
    browser(small, {"type": "select", "shape": "group", "group": 0, "op": "subtract"}, [])
    assert small.selection.indices.tolist() == list(range(20, 30))
    assert small.select_group(2).indices.tolist() == list(range(90, 100))


def test_group_messages_before_show_or_out_of_range_are_logged(small, fake, caplog):
    with caplog.at_level(logging.WARNING, logger="dataexplore.widget.explorer"):
        browser(small, {"type": "select", "shape": "group", "group": 0}, [])
        assert "ignored a message from the browser" in caplog.text and len(small.selection) == 0
        small.show(fake)
        small.select(["s1"])
        before = small.selection
        caplog.clear()
        for bad in (3, -1, "1", 1.0, True, None, [1]):
            browser(small, {"type": "select", "shape": "group", "group": bad, "op": "replace"}, [])
        browser(small, {"type": "select", "shape": "group", "group": 1, "op": "toggle"}, [])
    assert small.selection is before
    assert sum("ignored a message from the browser" in r.getMessage() for r in caplog.records) == 8
    for bad in (3, -1, True, "1"):
        with pytest.raises(DataexploreError, match="out of range"):
            small.select_group(bad)


def test_show_none_clears_the_list_and_only_its_own_colours(small, fake):
    small.show(fake)
    sent = recording(small)
    small.show(None)
    assert [c for c, _ in sent if c["type"] == "groups"] == [
        {"type": "groups", "clear": True, "title": "", "columns": [], "rows": [], "on_map": []}]
    assert small.color_info == {"kind": "none"} and not small.color_codes.any()
    with pytest.raises(DataexploreError, match="show\\(result\\) first"):
        small.select_group(0)
    small.show(fake)
    small.set_color("label")  # the user's colours after show() are theirs: show(None) keeps them
    small.show(None)
    assert small.color_info["categories"] == ["a", "b"]
    small.show(fake)
    small.show(fake, color=False)  # a list only: the earlier result's colours go
    assert small.color_info == {"kind": "none"}


def test_show_rejects_what_it_cannot_show(small, fake):
    listy = FakeResult(fake.values, fake.members)
    listy.map_values = lambda: [1.0, 2.0]
    with pytest.raises(DataexploreError, match="Series keyed by sample id"):
        small.show(listy)
    nameless = FakeResult(fake.values, fake.members)
    nameless.groups = lambda: pd.DataFrame({"count": [1]})
    with pytest.raises(DataexploreError, match="no 'name' column"):
        small.show(nameless)
    assert small._groups_msg is None and small.color_info["kind"] == "categorical"  # nothing half-shown
