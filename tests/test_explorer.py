"""The Explorer's kernel side: messages in and out, selections, validation. (Browser: tests/browser.)"""

import json
import logging

import numpy as np
import pandas as pd
import pytest

import dataexplore as dx
from conftest import browser, recording
from dataexplore.core.errors import DataexploreError
from dataexplore.core.selection import combine, points_in_polygon
from dataexplore.widget import state as state_mod


@pytest.fixture
def ex():
    rng = np.random.default_rng(0)
    xy = np.concatenate([rng.normal((0, 0), 0.3, (50, 2)), rng.normal((5, 5), 0.3, (50, 2))]).astype(np.float32)
    table = pd.DataFrame({"id": [f"s{i}" for i in range(100)], "label": ["a"] * 50 + ["b"] * 50,
                          "score": np.linspace(0, 1, 100)})
    return dx.Explorer(xy, ids=table.id, table=table, color="label")


def test_points_travel_as_binary_chunks(ex, monkeypatch):
    monkeypatch.setattr(state_mod, "POINT_CHUNK", 30)
    sent = recording(ex)
    browser(ex, {"type": "ready"}, [])
    chunks = [(c, b) for c, b in sent if c["type"] == "points"]
    assert [c["offset"] for c, _ in chunks] == [0, 30, 60, 90] and chunks[-1][0]["final"]
    xy = np.concatenate([np.frombuffer(b[0], np.float32) for _, b in chunks]).reshape(-1, 2)
    codes = np.concatenate([np.frombuffer(b[1], np.uint16) for _, b in chunks])
    np.testing.assert_array_equal(xy, ex.xy)
    assert codes[:50].tolist() == [0] * 50 and codes[50:].tolist() == [1] * 50


def test_lasso_message_selects_exact_rows_and_notifies(ex):
    seen = []
    ex.on_select(seen.append)
    sent = recording(ex)
    square = [[-2, -2], [2, -2], [2, 2], [-2, 2]]
    browser(ex, {"type": "select", "shape": "lasso", "polygon": square, "op": "replace"}, [])
    assert list(ex.selection.indices) == list(range(50)) and ex.selection.ids[0] == "s0"
    assert ex.selection.shape == "lasso" and ex.selection.polygon.shape == (4, 2)
    assert seen == [ex.selection]
    back = [b for c, b in sent if c["type"] == "selection"]
    np.testing.assert_array_equal(np.frombuffer(back[0][0], np.uint32), np.arange(50))
    panel = [c for c, _ in sent if c["type"] == "panel"][0]
    assert panel["total"] == 50 and panel["counts"] == [["a", 50]] and panel["pages"] == 3


def test_add_subtract_click_class_and_clear(ex):
    browser(ex, {"type": "select", "shape": "class", "category": 1, "op": "replace"}, [])
    assert list(ex.selection.indices) == list(range(50, 100))
    browser(ex, {"type": "select", "shape": "point", "row": 3, "op": "add"}, [])
    assert len(ex.selection) == 51 and ex.selection.shape == "combined"
    browser(ex, {"type": "select", "shape": "box", "polygon": [[4, 4], [6, 4], [6, 6], [4, 6]],
                        "op": "subtract"}, [])
    assert 3 in ex.selection.indices and ex.selection.indices.max() < 100
    browser(ex, {"type": "select", "shape": "clear"}, [])
    assert len(ex.selection) == 0


@pytest.mark.parametrize("message", [
    {"type": "select", "shape": "point", "row": 100},
    {"type": "select", "shape": "point", "row": -1},
    {"type": "select", "shape": "point", "row": "3"},
    {"type": "select", "shape": "point", "row": True},
    {"type": "select", "shape": "lasso", "polygon": [[0, 0], [1, 1]]},
    {"type": "select", "shape": "lasso", "polygon": [[0, 0], [1, "x"], [2, 2]]},
    {"type": "select", "shape": "lasso", "polygon": [[0, 0], [1, float("nan")], [2, 2]]},
    {"type": "select", "shape": "lasso", "polygon": "0,0 1,1 2,2"},
    {"type": "select", "shape": "class", "category": 7},
    {"type": "select", "shape": "hexagon"},
    {"type": "select", "shape": "point", "row": 1, "op": "xor"},
    {"type": "hover", "row": 10**9},
    {"type": "page", "page": "next"},
    {"type": "format-disk"},
    ["not", "a", "dict"],
])
def test_bad_browser_messages_are_rejected_with_a_warning(ex, message, caplog):
    ex.select(["s1", "s2"])
    before = ex.selection
    with caplog.at_level(logging.WARNING, logger="dataexplore.widget.explorer"):
        browser(ex, message, [])
    assert ex.selection is before
    assert "ignored a message from the browser" in caplog.text


def test_select_from_python_save_and_list(ex):
    sent = recording(ex)
    sel = ex.select(["s10", "s60"])
    assert list(sel.indices) == [10, 60] and sel.shape == "ids"
    assert any(c["type"] == "selection" and c["total"] == 2 for c, _ in sent)
    ex.save_selection("two")
    ex.select(None)
    assert len(ex.selection) == 0 and list(ex.selections) == ["two"]
    assert ex.select(ex.selections["two"]) == sel
    with pytest.raises(DataexploreError, match="unknown sample id 'nope'"):
        ex.select(["nope"])
    assert ex.selection.to_frame(ex.table).label.tolist() == ["a", "b"]


def test_traitlets_observe_sees_selection_changes(ex):
    changes = []
    ex.observe(lambda ch: changes.append(len(ch["new"])), names="selection")
    ex.select(["s1"])
    assert changes == [1]


def test_numeric_and_categorical_colours(ex):
    ex.set_color("score")
    assert ex.color_info["kind"] == "numeric" and ex.color_info["min"] == "0"
    many = dx.Explorer(np.random.default_rng(1).random((600, 2)), color=[f"c{i % 250}" for i in range(600)])
    assert many.color_info["kind"] == "categorical" and len(many.color_info["categories"]) == 250
    with pytest.raises(DataexploreError, match="no column 'nope'"):
        ex.set_color("nope")


@pytest.mark.parametrize("xy", [np.zeros((0, 2)), np.zeros((1, 2)), np.ones((5, 2))])
def test_degenerate_maps(xy):
    ex = dx.Explorer(xy)
    sent = recording(ex)
    browser(ex, {"type": "ready"}, [])
    assert [c["final"] for c, _ in sent if c["type"] == "points"] == [True]
    browser(ex, {"type": "select", "shape": "box", "polygon": [[0, 0], [2, 0], [2, 2], [0, 2]]}, [])
    assert len(ex.selection) == len(xy)


def test_bad_coordinates_are_clear_errors():
    with pytest.raises(DataexploreError, match="N×2"):
        dx.Explorer(np.zeros((3, 3)))
    with pytest.raises(DataexploreError, match="NaN or inf at row 1"):
        dx.Explorer(np.array([[0, 0], [np.nan, 1]]))
    with pytest.raises(DataexploreError, match="mismatched lengths"):
        dx.Explorer(np.zeros((3, 2)), ids=["a"])


def test_hover_sends_thumbnail_and_text_fields():
    s = dx.load("fashion-mnist:test:20")
    ex = dx.Explorer(np.random.default_rng(0).random((20, 2)), ids=s.ids, table=s.table, samples=s, color="label",
                     tooltip=["label_id"])
    sent = recording(ex)
    browser(ex, {"type": "hover", "row": 0}, [])
    content, buffers = sent[-1]
    assert content["lines"] == [["id", "test-00000"], ["label", "Ankle boot"], ["label_id", "9"]]
    assert buffers[0][:3] == b"\xff\xd8\xff"  # a JPEG made in the kernel, by row index


def test_million_points_and_a_million_selected_stay_under_the_message_cap():
    xy = np.random.default_rng(0).random((1_000_000, 2)).astype(np.float32)
    ex = dx.Explorer(xy)
    sent = recording(ex)
    browser(ex, {"type": "ready"}, [])
    browser(ex, {"type": "select", "shape": "box", "polygon": [[-1, -1], [2, -1], [2, 2], [-1, 2]]}, [])
    assert len(ex.selection) == 1_000_000
    assert max(sum(len(b) for b in buffers) for _, buffers in sent) < 10 * 2**20


def test_explore_one_liner_builds_the_widget():
    ex = dx.explore("fashion-mnist:test:300", color="label", method="pca")
    assert len(ex) == 300 and ex.color_info["categories"][0] == "Ankle boot"
    assert ex.provenance["model"]["arch"] == "fashion-tiny" and ex.thumbnail(0)[:3] == b"\xff\xd8\xff"


def test_export_messages_write_queries_and_batches_and_say_when_the_name_is_taken(tmp_path, caplog):
    """What the widget's export menu sends, straight to the handler, and what the menu is told."""
    out = tmp_path / "exports"
    ex = dx.explore("fashion-mnist:test:300", color="label", method="pca", export_dir=out)
    assert ex.export_dir == out
    sent = recording(ex)

    asked = iter(range(1, 100))

    def export(name, what, overwrite=False):
        request = f"view1:{next(asked)}"
        browser(ex, {"type": "export", "id": request, "name": name, "what": what, "overwrite": overwrite}, [])
        assert len(sent) == 1, sent  # one reply, no selection or panel traffic
        reply = sent.pop()[0]
        assert reply.pop("reply_to") == request  # the menu takes the answer to its own request
        return reply

    nothing = export("odd shoes", "query")
    assert nothing["type"] == "exported" and not nothing["ok"] and not nothing["exists"]
    assert "empty" in nothing["message"] and not out.exists()

    browser(ex, {"type": "select", "shape": "class", "category": 0, "op": "replace"}, [])
    sent.clear()
    chosen = sorted(map(str, ex.selection.ids))
    first = export("odd shoes", "query")
    assert first == {"type": "exported", "what": "query", "name": "odd shoes", "ok": True, "exists": False,
                     "path": str(out / "odd_shoes.dxq"),
                     "message": f"saved {len(chosen)} images as query → {out / 'odd_shoes.dxq'}"}
    assert sorted((out / "odd_shoes.dxq" / "ids.txt").read_text().split()) == chosen
    assert list(ex.queries) == ["odd shoes"]

    taken = export("odd shoes", "query")
    assert not taken["ok"] and taken["exists"] and "already exists" in taken["message"]
    assert taken["name"] == "odd shoes" and taken["what"] == "query"
    browser(ex, {"type": "select", "shape": "point", "row": 299, "op": "add"}, [])
    sent.clear()
    replaced = export("odd shoes", "query", overwrite=True)
    assert replaced["ok"] and len((out / "odd_shoes.dxq" / "ids.txt").read_text().split()) == len(chosen) + 1

    batch = export("odd shoes", "label-studio")
    assert batch["ok"] and batch["path"] == str((out / "odd_shoes-label-studio").resolve())
    assert len(json.loads((out / "odd_shoes-label-studio" / "tasks.json").read_text())) == len(chosen) + 1
    unknown = export("odd shoes", "pdf")
    assert not unknown["ok"] and not unknown["exists"] and "'pdf'" in unknown["message"]
    assert "query, label-studio, coco, csv" in unknown["message"]  # what this map can export instead
    assert ex.exports == [["query", "Query"], ["label-studio", "Label Studio"], ["coco", "COCO"],
                          ["csv", "CSV manifest"]]  # the menu the browser shows
    blank = export("  ", "csv")
    assert not blank["ok"] and "name" in blank["message"]

    with caplog.at_level(logging.WARNING, logger="dataexplore.widget.explorer"):
        browser(ex, {"type": "export", "name": "x", "what": "query", "overwrite": "yes"}, [])
        browser(ex, {"type": "export", "name": ["x"], "what": "query"}, [])
    assert sent == [] and caplog.text.count("ignored a message from the browser") == 2


def test_geometry_helpers():
    xy = np.array([[0.5, 0.5], [2, 2], [0.1, 0.9], [1.5, 0.5]])
    tri = np.array([[0, 0], [1, 0], [1, 1], [0, 1]])
    assert points_in_polygon(xy, tri).tolist() == [True, False, True, False]
    assert combine(np.array([1, 2], np.uint32), [2, 3], "add").tolist() == [1, 2, 3]
    assert combine(np.array([1, 2], np.uint32), [2, 3], "subtract").tolist() == [1]


def test_categories_in_natural_order_with_missing_values():
    ex = dx.Explorer(np.zeros((5, 2)), color=pd.Series([10, 2, 2, None, 1], dtype="Int64"))
    assert ex.color_info["categories"] == ["1", "2", "10", "(missing)"]
    assert ex.color_info["counts"] == [1, 2, 1, 1]
