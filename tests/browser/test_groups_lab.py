"""Analysis results on the map in JupyterLab: click a group (failure slice, coverage gap, any duck-typed
result), Python holds exactly its rows and the page shows the same."""

from __future__ import annotations

import json
import time

import pytest

from .harness import ARTIFACTS, open_and_run, selection_after, write_notebook

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CELLS = [
    """import json, os
import numpy as np
import dataexplore as dx
emb = dx.embed("fashion-mnist:test:3000", model="fashion-tiny", progress=False)
bag = (emb.table["label"] == "Bag").to_numpy()
rng = np.random.default_rng(0)
wrong = np.where(bag, rng.random(len(emb)) < 0.6, rng.random(len(emb)) < 0.06)
fs = dx.failures(emb, correct=~wrong)
proj = dx.project(emb)
ex = dx.Explorer(proj, table=emb.table, samples=emb.samples, rows=emb.rows, height=420)
ex.show(fs)
def record(sel):
    tmp = os.environ["DX_TEST_OUT"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"ids": sorted(str(i) for i in sel.ids), "shape": sel.shape,
                   "group": sel.provenance.get("group")}, f)
    os.replace(tmp, os.environ["DX_TEST_OUT"])
ex.on_select(record)
ex""",
    """half = np.arange(len(emb)) < 1500
cov = dx.coverage(emb.subset(half & (emb.table["label"] != "Trouser").to_numpy()), emb.subset(~half))
ex2 = dx.Explorer(proj, table=emb.table, samples=emb.samples, rows=emb.rows, height=300)
ex2.show(cov)
ex2""",
    """expected = {k: sorted(map(str, fs.group_ids(k))) for k in range(len(fs))}
with open(os.environ["DX_TEST_OUT"] + ".groups", "w") as f:
    json.dump(expected, f)""",
]


def _json_when_written(path, timeout=120.0):
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline:
        time.sleep(0.2)
    return json.loads(path.read_text())


def test_clicking_analysis_groups_selects_them_in_python(lab, page):
    write_notebook(lab["root"] / "groups.ipynb", CELLS)
    open_and_run(page, lab, "groups.ipynb")
    page.wait_for_selector(".dx-explorer[data-ready='true'] >> nth=1", timeout=300_000)
    expected = _json_when_written(lab["root"] / "selection.json.groups")
    first = page.locator(".dx-explorer").first
    first.scroll_into_view_if_needed()
    table = first.locator(".dx-groups")
    assert "Failure slices" in table.locator(".dx-groups-title").inner_text()
    rows = table.locator(".dx-group-row")
    assert rows.count() == len(expected) >= 1
    assert rows.nth(0).locator("td").nth(0).inner_text() == "slice 1"
    assert "Bag" in rows.nth(0).inner_text()  # the planted slice, named in words

    got = selection_after(lab["root"] / "selection.json", page, lambda: rows.nth(0).click())
    assert got["ids"] == expected["0"] and got["shape"] == "group" and got["group"] == "slice 1"
    page.wait_for_function("() => document.querySelector('.dx-explorer').dataset.selected === "
                           f"'{len(expected['0'])}'", timeout=20_000)
    assert "dx-group-active" in rows.nth(0).get_attribute("class")
    highlighted = page.eval_on_selector(".dx-explorer >> nth=0", "el => el.dxSelected().length")
    assert highlighted == len(expected["0"])

    if len(expected) > 1:
        got = selection_after(lab["root"] / "selection.json", page, lambda: rows.nth(1).click(modifiers=["Shift"]))
        assert got["ids"] == sorted(set(expected["0"]) | set(expected["1"])) and got["shape"] == "combined"
        assert "dx-group-active" not in (rows.nth(0).get_attribute("class") or "")

    # the coverage map: a colour bar with grey "no value" for the reference half, and its gap list
    second = page.locator(".dx-explorer").nth(1)
    second.scroll_into_view_if_needed()
    assert second.locator(".dx-colorbar").count() == 1
    assert "no value" in second.locator(".dx-legend-none").inner_text()
    assert "1,500" in second.locator(".dx-legend-none").inner_text()
    gap = second.locator(".dx-group-row").first
    assert "Trouser" in gap.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    first.screenshot(path=str(ARTIFACTS / "groups-failure-slices.png"))
    second.screenshot(path=str(ARTIFACTS / "groups-coverage.png"))
    assert not page.dialogs


FAKE_CELLS = [
    """import json, os
import numpy as np, pandas as pd
import dataexplore as dx
emb = dx.embed("fashion-mnist:test:2000", model="fashion-tiny", progress=False)
proj = dx.project(emb)

class ByLabel:
    # a result as show() sees it: duck-typed, one group per label, a score with gaps
    title = "Labels <i>(a fake result)</i>"
    def __init__(self, emb):
        self.ids = np.asarray(emb.ids, dtype=object)
        self.labels = emb.table["label"].astype(str).to_numpy()
        self.names = sorted(set(self.labels))
    def map_values(self):
        v = pd.Series(np.linspace(0, 1, len(self.ids) - 100), index=self.ids[:-100], name="score")
        v.iloc[::10] = np.nan  # 190 NaN, and the last 100 ids have no value at all
        return v
    def groups(self):
        return pd.DataFrame({"name": self.names, "description": [f"all {n} images" for n in self.names],
                             "count": [int((self.labels == n).sum()) for n in self.names],
                             "error_rate": np.linspace(0.05, 0.5, len(self.names))})
    def group_ids(self, k):
        return self.ids[self.labels == self.names[k]]

fake = ByLabel(emb)
ex = dx.Explorer(proj, table=emb.table, samples=emb.samples, rows=emb.rows, height=420)
ex.show(fake)
out = os.environ["DX_TEST_OUT"] + ".fake"
def record(sel):
    with open(out + ".tmp", "w") as f:
        json.dump({"indices": sel.indices.tolist(), "shape": sel.shape, "group": sel.provenance.get("group"),
                   "analysis": sel.provenance.get("analysis")}, f)
    os.replace(out + ".tmp", out)
ex.on_select(record)
lookup = pd.Index(emb.ids)
with open(out + ".groups.tmp", "w") as f:
    json.dump({"names": fake.names,
               "rows": [sorted(lookup.get_indexer(fake.group_ids(k)).tolist()) for k in range(10)]}, f)
os.replace(out + ".groups.tmp", out + ".groups")
ex""",
]


def test_clicking_rows_of_a_duck_typed_result_selects_exactly_its_groups(lab, page):
    out = lab["root"] / "selection.json.fake"
    write_notebook(lab["root"] / "fake_groups.ipynb", FAKE_CELLS)
    open_and_run(page, lab, "fake_groups.ipynb")
    page.wait_for_selector(".dx-explorer[data-ready='true']", timeout=300_000)
    expected = _json_when_written(lab["root"] / "selection.json.fake.groups")
    widget = page.locator(".dx-explorer")
    widget.scroll_into_view_if_needed()
    panel = widget.locator(".dx-groups")
    assert "Labels <i>(a fake result)</i> · 10" in panel.locator(".dx-groups-title").inner_text()  # text, not HTML
    assert panel.locator("th").all_inner_texts() == ["name", "description", "count", "error rate"]
    rows = panel.locator(".dx-group-row")
    assert rows.count() == 10
    assert rows.nth(2).locator("td").all_inner_texts()[0] == expected["names"][2]
    # the numeric colour bar, with grey "no value" for the 190 NaN and the 100 ids without a value
    assert widget.locator(".dx-colorbar").count() == 1
    assert widget.locator(".dx-legend-none").inner_text().split() == ["no", "value", "290"]

    third = expected["rows"][2]
    got = selection_after(out, page, lambda: rows.nth(2).click())
    assert got["indices"] == third and got["shape"] == "group"
    assert got["group"] == expected["names"][2] and got["analysis"] == "Labels <i>(a fake result)</i>"
    assert widget.get_attribute("data-selected") == str(len(third))
    assert page.eval_on_selector(".dx-explorer", "el => el.dxSelected()") == third
    assert "dx-group-active" in rows.nth(2).get_attribute("class")
    assert widget.locator(".dx-group-active").count() == 1

    both = sorted(set(third) | set(expected["rows"][5]))
    got = selection_after(out, page, lambda: rows.nth(5).click(modifiers=["Shift"]))
    assert got["indices"] == both and got["shape"] == "combined"
    assert widget.get_attribute("data-selected") == str(len(both))
    assert page.eval_on_selector(".dx-explorer", "el => el.dxSelected()") == both
    assert widget.locator(".dx-group-active").count() == 0  # a union is no single row

    got = selection_after(out, page, lambda: rows.nth(2).click(modifiers=["Alt"]))
    assert got["indices"] == expected["rows"][5]
    ARTIFACTS.mkdir(exist_ok=True)
    widget.screenshot(path=str(ARTIFACTS / "groups-fake-result.png"))
    assert not page.dialogs
