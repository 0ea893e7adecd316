"""Analysis results on the map: colours, the groups list, and selecting a group (kernel side)."""

import logging

import numpy as np
import pandas as pd
import pytest

import dataexplore as dx
from dataexplore.errors import DataexploreError


def _recording(ex):
    sent = []
    ex.send = lambda content, buffers=None: sent.append((content, buffers or []))
    return sent


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
    sent = _recording(ex)
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
    assert info["no_value"] == outside and int((ex._codes == info["no_value_code"]).sum()) == outside
    colors = [b for c, b in sent if c["type"] == "colors"][-1]
    assert np.frombuffer(colors[0], np.uint16).tolist() == ex._codes.tolist()


def test_clicking_a_row_selects_exactly_that_group(ex, slices):
    ex.show(slices)
    sent = _recording(ex)
    ex._on_message(ex, {"type": "select", "shape": "group", "group": 0, "op": "replace"}, [])
    assert set(ex.selection.ids) == set(slices.group_ids(0)) and ex.selection.shape == "group"
    assert ex.selection.provenance["group"] == "slice 1"
    assert ex.selection.provenance["analysis"] == "Failure slices"
    back = [c for c, _ in sent if c["type"] == "selection"][-1]
    assert back["group"] == 0 and back["total"] == len(slices.group_ids(0))
    if len(slices) > 1:
        ex._on_message(ex, {"type": "select", "shape": "group", "group": 1, "op": "add"}, [])
        assert len(ex.selection) == len(slices.group_ids(0)) + len(slices.group_ids(1))
        assert ex.selection.shape == "combined"
    assert ex.select_group(0) == slices.selection(0, on=ex)


def test_bad_group_messages_are_logged_and_ignored(ex, slices, caplog):
    ex.show(slices)
    ex.select_group(0)
    before = ex.selection
    with caplog.at_level(logging.WARNING, logger="dataexplore.explorer"):
        for bad in (-1, len(slices), "0", 1.5, None, True):
            ex._on_message(ex, {"type": "select", "shape": "group", "group": bad, "op": "replace"}, [])
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
    assert info["no_value"] == 1500 and (ex._codes[:1500] == 256).all() and (ex._codes[1500:] <= 255).all()
    assert float(info["max"]) == pytest.approx(cov.scores.max(), abs=1e-3)  # grey points do not stretch it
    ex.select_group(0)
    labels = ex.table["label"].iloc[ex.selection.indices].astype(str)
    assert (labels == "Trouser").mean() > 0.9


def test_show_none_removes_the_list_and_the_colours(ex, slices):
    ex.show(slices)
    sent = _recording(ex)
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
    sent = _recording(ex)
    ex._on_message(ex, {"type": "ready"}, [])
    assert [c["type"] for c, _ in sent][-3:] == ["groups", "selection", "panel"]


def test_user_colour_columns_keep_a_missing_class(emb):
    table = emb.table.assign(note=[None if i % 3 else "x" for i in range(len(emb))])
    ex = dx.Explorer(np.zeros((len(emb), 2), np.float32), ids=emb.ids, table=table, color="note")
    assert ex.color_info["categories"] == ["x", "(missing)"] and ex.color_info["no_value"] == 0
    ex.set_color(pd.Series([np.nan] * 10 + list(np.linspace(0, 1, len(emb) - 10))))
    assert ex.color_info["no_value"] == 10 and ex.color_info["min"] == "0"
