"""What a map shows, computed without a widget or a comm (dataexplore/widget/state.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dataexplore.core.errors import DataexploreError
from dataexplore.core.geometry import PointGrid
from dataexplore.core.selection import points_in_polygon
from dataexplore.widget import state
from dataexplore.widget.protocol import check_outgoing, parse_request


def test_classes_get_codes_in_natural_order_and_missing_values_a_class_or_grey():
    values = pd.Series([10, 2, None, 2, 10, 33], dtype="Int64")
    codes, info = state.color_codes(values, "size")
    assert info["categories"] == ["2", "10", "33", "(missing)"] and codes.tolist() == [1, 0, 3, 0, 1, 2]
    assert info["counts"] == [2, 2, 1, 1] and info["no_value"] == 0
    codes, info = state.color_codes(values, "size", no_value="grey")
    assert info["categories"] == ["2", "10", "33"] and codes[2] == info["no_value_code"] == 3 and info["no_value"] == 1


def test_numbers_get_a_colour_bar_that_missing_values_do_not_stretch():
    codes, info = state.color_codes(pd.Series([0.0, 0.5, np.nan, 1.0, np.inf]), "score")
    assert info["kind"] == "numeric" and (info["min"], info["max"]) == ("0", "1")
    assert codes.tolist() == [0, 128, 256, 255, 256] and info["no_value"] == 2


def test_too_many_classes_and_bad_colour_input_say_so():
    with pytest.raises(DataexploreError, match="more than a map can colour"):
        state.color_codes(pd.Series(np.arange(70_000).astype(str)))
    with pytest.raises(DataexploreError, match="no column 'x'"):
        state.color_values("x", pd.DataFrame({"label": [1]}), 1)
    with pytest.raises(DataexploreError, match="3 colour values for 2 points"):
        state.color_values([1, 2, 3], pd.DataFrame(index=range(2)), 2)


def test_the_panel_page_is_clamped_and_counts_are_most_common_first():
    rows = np.arange(50, dtype=np.uint32)
    assert state.page_of(rows, 1)[:2] == (1, 3) and state.page_of(rows, 1)[2].tolist() == list(range(24, 48))
    assert state.page_of(rows, 99)[0] == 2 and state.page_of(rows, -3)[0] == 0
    assert state.page_of(rows[:0], 5)[:2] == (0, 1)
    table = pd.DataFrame({"label": pd.Categorical(["a", "b", "b", "c"])})
    assert state.label_counts(table, np.array([1, 2, 3])) == [["b", 2], ["c", 1]]
    assert state.label_counts(pd.DataFrame(index=range(4)), np.array([1])) == []


@pytest.fixture
def grid():
    xy = np.random.default_rng(0).normal(size=(5000, 2)).astype(np.float32)
    return PointGrid(xy)


def _select(shape, op="replace", **fields):
    return parse_request({"type": "select", "id": "v:1", "shape": shape, "op": op, **fields})


def test_a_browser_selection_becomes_exact_rows_and_combines_by_its_operation(grid):
    square = [[-1, -1], [1, -1], [1, 1], [-1, 1]]
    codes = (np.arange(5000) % 3).astype(np.uint16)
    kw = dict(grid=grid, codes=codes, n_categories=3, groups=[np.array([1, 2, 3], np.uint32)])
    inside = np.flatnonzero(points_in_polygon(grid.xy, np.array(square, float)))
    lasso = state.selected_rows(_select("lasso", polygon=square), np.zeros(0, np.uint32), **kw)
    np.testing.assert_array_equal(lasso, inside)
    more = state.selected_rows(_select("class", "add", category=2), lasso, **kw)
    np.testing.assert_array_equal(more, np.union1d(inside, np.flatnonzero(codes == 2)))
    less = state.selected_rows(_select("group", "subtract", group=0), more, **kw)
    np.testing.assert_array_equal(less, np.setdiff1d(more, [1, 2, 3]))
    assert state.selected_rows(_select("clear"), less, **kw).size == 0
    for bad in (_select("point", row=5000), _select("class", category=3), _select("group", group=1)):
        with pytest.raises(ValueError, match="out of range"):
            state.selected_rows(bad, lasso, **kw)


def test_a_big_selection_travels_as_a_bitset_in_chunks_under_the_cap(monkeypatch):
    n = 100_000
    rows = np.arange(0, n, 2, dtype=np.uint32)
    (head, (bits,)), = state.selection_chunks(rows, n, lod=True, seq=4, group=-1)
    assert head["format"] == "bits" and head["total"] == len(rows) and head["final"]
    unpacked = np.unpackbits(np.frombuffer(bits, np.uint8), bitorder="little")[:n]
    np.testing.assert_array_equal(np.flatnonzero(unpacked), rows)
    few = list(state.selection_chunks(rows[:10], n, lod=True, seq=5, group=-1))
    assert few[0][0]["format"] == "rows"
    monkeypatch.setattr(state, "INDEX_CHUNK", 7)
    chunks = list(state.selection_chunks(rows[:20], n, lod=False, seq=6, group=2))
    assert [c["offset"] for c, _ in chunks] == [0, 7, 14] and [c["final"] for c, _ in chunks] == [False, False, True]
    for content, _ in [*chunks, *few]:
        check_outgoing(content)


def test_a_view_gets_its_points_or_a_ranked_sample_with_its_density(grid):
    whole = state.overview(len(grid.xy), 500)
    assert state.view_answer(grid, None, 500, whole).rows is whole
    small = state.view_answer(grid, [0, 0, 0.3, 0.3], 500, whole)
    assert small.complete and small.density is None and len(small.rows) == small.inside
    wide = state.view_answer(grid, [-1.5, -1.5, 0.5, 0.5], 500, whole)
    assert not wide.complete and len(wide.rows) == 500 and wide.inside > 500 and wide.density is not None
    messages = list(state.view_chunks(wide, grid.xy, np.zeros(len(grid.xy), np.uint16), "v:9"))
    assert [m["type"] for m, _ in messages] == ["density", "points"]
    assert all(m["reply_to"] == "v:9" for m, _ in messages)
    for content, _ in messages:
        check_outgoing(content)
