"""A map saved with `to_html` opens from disk in chromium, without a kernel, and its lasso works."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dataexplore as dx
from dataexplore.core.errors import DataexploreError
from dataexplore.core.selection import points_in_polygon

from .harness import ARTIFACTS, CHROMIUM

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.skip("browser tests need chromium")
    # the quickstart's map (10,000 test images, coloured by label), plus a note that looks like HTML
    cache = tmp_path_factory.mktemp("cache")
    emb = dx.embed("fashion-mnist:test", model="fashion-tiny", progress=False, cache_dir=cache)
    proj = dx.project(emb, cache_dir=cache)
    ex = dx.Explorer(proj, table=emb.table.assign(note=["<b>bold</b>"] * len(emb)), samples=emb.samples,
                     rows=emb.rows, color="label", tooltip=["note"], provenance={"source": "fashion-mnist:test"})
    path = tmp_path_factory.mktemp("share") / "map.html"
    ex.to_html(path, thumbnails=True)
    return ex, path


def test_the_file_is_one_self_contained_page(shared, tmp_path):
    ex, path = shared
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<title>fashion-mnist:test</title>" in text
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text  # nothing fetched
    assert path.stat().st_size < 8_000_000  # 10,000 points with thumbnails, compressed
    assert path.stat().st_mode & 0o044  # readable by others: it is meant to be sent around
    with pytest.raises(DataexploreError, match="overwrite=True"):
        ex.to_html(path)
    with pytest.raises(DataexploreError, match=r"\.html"):
        ex.to_html(tmp_path / "map.txt")


def test_opens_from_disk_lasso_and_download(shared, browser):
    ex, path = shared
    # the session's chromium (tests/browser/conftest.py), in a fresh context; no server needed
    context = browser.new_context(viewport={"width": 1200, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_selector(".dx-explorer[data-ready='true']", timeout=60_000)
    assert "10,000 points" in page.locator(".dx-status").inner_text()
    assert page.locator(".dx-legend-row").count() == 10
    assert page.locator(".dx-export").count() == 0  # no kernel to write files: the ids download instead

    # hover a point: its id, label and thumbnail, with the HTML-looking note shown as text
    x, y = page.eval_on_selector(".dx-explorer", "(el, p) => el.dxToPixel(p[0], p[1])",
                                 [float(ex.xy[0, 0]), float(ex.xy[0, 1])])
    page.mouse.move(x, y)
    page.wait_for_selector(".dx-tooltip img", timeout=10_000)
    tip = page.locator(".dx-tooltip").inner_text()
    assert "<b>bold</b>" in tip and "label" in tip
    assert page.locator(".dx-tooltip b").count() == 3  # only our own field names are bold

    # lasso a square around the middle of the map
    lo, hi = np.percentile(ex.xy, 30, axis=0), np.percentile(ex.xy, 70, axis=0)
    corners = [(lo[0], lo[1]), (hi[0], lo[1]), (hi[0], hi[1]), (lo[0], hi[1])]
    pixels = [page.eval_on_selector(".dx-explorer", "(el, p) => el.dxToPixel(p[0], p[1])",
                                    [float(a), float(b)]) for a, b in corners]
    page.mouse.move(*pixels[0])
    page.mouse.down()
    for p in pixels[1:] + pixels[:1]:
        page.mouse.move(*p, steps=5)
    page.mouse.up()
    page.wait_for_function("() => Number(document.querySelector('.dx-explorer').dataset.selected) > 0")
    shown = page.eval_on_selector(".dx-explorer", "el => el.dxSelected()")

    with page.expect_download() as info:
        page.click("button[data-download='json']")
    data = json.loads(Path(info.value.path()).read_text())
    with page.expect_download() as info:
        page.click("button[data-download='csv']")
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))
    page.screenshot(path=str(ARTIFACTS / "share-html.png"))
    context.close()
    assert not errors
    polygon = np.asarray(data["polygon"])
    expected = np.flatnonzero(points_in_polygon(ex.xy, polygon))
    assert data["rows"] == shown == expected.tolist() and len(expected) > 50
    assert data["ids"] == [str(ex.ids[i]) for i in expected]
    assert [r["id"] for r in rows] == data["ids"] and rows[0]["note"] == "<b>bold</b>"
    assert [r["label"] for r in rows] == ex.table["label"].iloc[expected].astype(str).tolist()


def test_export_html_command(tmp_path):
    out = tmp_path / "cli.html"
    cmd = [sys.executable, "-m", "dataexplore", "export-html", "fashion-mnist:test:300", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "300 points" in res.stderr and out.stat().st_size > 10_000
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "--overwrite" in again.stderr
