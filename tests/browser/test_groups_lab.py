"""Analysis results on the map in JupyterLab: click a failure slice or coverage gap, Python holds it."""

from __future__ import annotations

import json
import time

import pytest

from .harness import ARTIFACTS, open_and_run, write_notebook

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


def _selection_after(lab, page, action, timeout=30.0):
    out = lab["root"] / "selection.json"
    before = out.stat().st_mtime_ns if out.exists() else 0
    action()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if out.exists() and out.stat().st_mtime_ns != before:
            time.sleep(0.3)
            return json.loads(out.read_text())
        time.sleep(0.05)
    raise AssertionError("Python never received the selection")


def test_clicking_analysis_groups_selects_them_in_python(lab, page):
    write_notebook(lab["root"] / "groups.ipynb", CELLS)
    open_and_run(page, lab, "groups.ipynb")
    page.wait_for_selector(".dx-explorer[data-ready='true'] >> nth=1", timeout=300_000)
    groups_file = lab["root"] / "selection.json.groups"
    deadline = time.time() + 120
    while not groups_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    expected = json.loads(groups_file.read_text())
    first = page.locator(".dx-explorer").first
    first.scroll_into_view_if_needed()
    table = first.locator(".dx-groups")
    assert "Failure slices" in table.locator(".dx-groups-title").inner_text()
    rows = table.locator(".dx-group-row")
    assert rows.count() == len(expected) >= 1
    assert rows.nth(0).locator("td").nth(0).inner_text() == "slice 1"
    assert "Bag" in rows.nth(0).inner_text()  # the planted slice, named in words

    got = _selection_after(lab, page, lambda: rows.nth(0).click())
    assert got["ids"] == expected["0"] and got["shape"] == "group" and got["group"] == "slice 1"
    page.wait_for_function("() => document.querySelector('.dx-explorer').dataset.selected === "
                           f"'{len(expected['0'])}'", timeout=20_000)
    assert "dx-group-active" in rows.nth(0).get_attribute("class")
    highlighted = page.eval_on_selector(".dx-explorer >> nth=0", "el => el.dxSelected().length")
    assert highlighted == len(expected["0"])

    if len(expected) > 1:
        got = _selection_after(lab, page, lambda: rows.nth(1).click(modifiers=["Shift"]))
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
