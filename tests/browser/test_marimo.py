"""The Explorer in marimo: examples/explorer_marimo.py in ``marimo run`` and ``marimo edit``, headless chromium.

The map draws, a lasso drawn with the mouse reaches Python (a cell of the notebook runs again and a
callback records the exact ids), a selection made in Python shows on the map, hover shows the image.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import dataexplore as dx
from dataexplore.core.selection import points_in_polygon

from .harness import ARTIFACTS, CHROMIUM, _free_port, selection_after
from .test_explorer_lab import _highlighted, _island, _lasso, _pixels

pytestmark = [pytest.mark.slow, pytest.mark.browser]
N = 2000
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "explorer_marimo.py"
# appended to a copy of the example: every selection Python holds, written where the test reads it
RECORD_CELL = '''
@app.cell
def _(ex):
    import json as _json
    import os as _os

    def _record(sel):
        _tmp = _os.environ["DX_TEST_OUT"] + ".tmp"
        with open(_tmp, "w") as _f:
            _json.dump({"indices": sel.indices.tolist(), "ids": [str(i) for i in sel.ids], "shape": sel.shape,
                        "polygon": None if sel.polygon is None else sel.polygon.tolist()}, _f)
        _os.replace(_tmp, _os.environ["DX_TEST_OUT"])

    ex.on_select(_record)
    return

'''


@contextlib.contextmanager
def start_marimo(notebook: Path, env: dict, command: str = "run"):
    """``marimo run`` (or ``edit``) on 127.0.0.1 with a random access token; yields the URL to open. The
    server and its kernels (threads in run mode, processes in edit mode) are stopped as one process group."""
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "marimo", command, notebook.name, "--headless", "--host", "127.0.0.1",
           "--port", str(port), "--token-password", token, "--no-sandbox", "--no-skew-protection"]
    log_path = notebook.parent / "marimo.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=notebook.parent, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"marimo did not start:\n{log_path.read_text()[-3000:]}") from None
                time.sleep(0.5)
        yield f"{url}/?access_token={token}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        log.close()
        # nothing of the group may outlive the test: its kernels get a while to stop (edit mode's kernel is a
        # process, slow to exit on a busy machine), then are killed; one that survives even that is a failure
        if not _group_gone(proc.pid, 30):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            if not _group_gone(proc.pid, 10) and sys.exc_info()[0] is None:
                raise AssertionError("marimo left processes behind")


def _group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module", params=["run", "edit"])
def marimo_page(request, tmp_path_factory, browser):
    """The example open in ``marimo run`` or ``edit``, in the session's chromium (tests/browser/conftest.py:
    playwright's sync API runs once per process)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("browser tests need chromium (apt-get install chromium); .ci/setup installs it")
    pytest.importorskip("playwright")
    if os.environ.get("CI") != "true":  # CI installs the dev extra: there a missing marimo fails the test
        pytest.importorskip("marimo")
    root = tmp_path_factory.mktemp("marimo")
    cache = root / ".cache"
    # the map the notebook will show, computed here first (the notebook then reads it from the cache)
    emb = dx.embed(f"fashion-mnist:test:{N}", model="fashion-tiny", cache_dir=cache, progress=False)
    proj = dx.Projection(cache_dir=cache).fit(emb)
    source = EXAMPLE.read_text()
    main = source.index('\nif __name__ == "__main__":')
    notebook = root / "explorer_marimo.py"
    notebook.write_text(source[:main] + RECORD_CELL + source[main:])
    # the editor runs the notebook when it opens (its default waits for "Run"); no user config, no update check
    (root / "pyproject.toml").write_text("[tool.marimo.runtime]\nauto_instantiate = true\n")
    out = root / "selection.json"
    env = dict(os.environ, HF_HUB_OFFLINE="1", DATAEXPLORE_CACHE_DIR=str(cache), DATAEXPLORE_DEMO_N=str(N),
               DX_TEST_OUT=str(out), XDG_CONFIG_HOME=str(root / ".config"), MARIMO_SKIP_UPDATE_CHECK="1")
    with start_marimo(notebook, env, request.param) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(url)
        yield {"page": page, "out": out, "xy": proj.embedding_, "labels": emb.table["label"].to_numpy(),
               "mode": request.param}
        context.close()


def _distance_to_outline(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Each point's distance to the nearest edge of the closed ``polygon``."""
    a, b = polygon, np.roll(polygon, -1, axis=0)
    ab = b - a
    t = np.clip(((xy[:, None] - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
    return np.linalg.norm(xy[:, None] - (a + t[..., None] * ab), axis=-1).min(axis=1)


def _shown_count(page, n: int, shape: str) -> None:
    """The notebook's selection cell ran again and says what Python holds."""
    count = page.get_by_text(f"{n:,} selected", exact=True).first
    count.wait_for(timeout=30_000)
    assert f"(by {shape})" in count.locator("..").inner_text()


def test_marimo_map_lasso_python_selection_and_hover(marimo_page):
    from PIL import Image

    page, out, xy, labels = (marimo_page[k] for k in ("page", "out", "xy", "labels"))
    page.wait_for_selector(".dx-explorer[data-ready='true']", timeout=240_000)
    widget = page.locator(".dx-explorer").first
    widget.scroll_into_view_if_needed()
    assert widget.locator(".dx-status").inner_text().startswith(f"{N:,} points")
    assert widget.locator(".dx-legend-row").count() == 10
    # the map is drawn: the stage shows many coloured pixels, not a blank canvas
    shot = np.asarray(Image.open(io.BytesIO(widget.locator(".dx-stage").screenshot())).convert("RGB")).astype(int)
    coloured = (shot.max(axis=2) - shot.min(axis=2)) > 60
    assert coloured.sum() > 2000, "the map looks blank"
    _shown_count(page, 0, "clear")

    # a lasso around one island, with the mouse
    cls, hull = _island(xy, labels)
    path = _pixels(page, hull)
    got = selection_after(out, page, _lasso(page, path))
    sel = np.array(got["indices"])
    assert got["shape"] == "lasso" and len(sel) > 50
    assert sorted(_highlighted(page)) == sorted(sel.tolist())  # Python holds exactly what is shown
    np.testing.assert_array_equal(np.flatnonzero(points_in_polygon(xy, np.array(got["polygon"]))), np.sort(sel))
    # and they are the points inside the outline drawn: all that lie 3 px inside it, none 3 px outside
    # (mouse positions are whole pixels, and the browser may coalesce moves and cut a corner)
    far = int(np.argmax(np.linalg.norm(hull - hull[0], axis=1)))
    margin = 3 * np.linalg.norm(hull[far] - hull[0]) / np.linalg.norm(np.subtract(path[far], path[0]))
    inside, edge = points_in_polygon(xy, hull), _distance_to_outline(xy, hull)
    assert set(np.flatnonzero(inside & (edge > margin))) <= set(sel.tolist()) <= \
        set(np.flatnonzero(inside | (edge < margin)))
    assert (labels[sel] == cls).mean() > 0.5
    assert got["ids"] == [f"test-{i:05d}" for i in sel]
    _shown_count(page, len(sel), "lasso")  # the cell reading the selection ran again
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"marimo-{marimo_page['mode']}-lasso.png"))

    # a selection made in Python (a cell calls ex.select) shows on the map
    other = next(c for c in ["Sandal", "Trouser", "Bag"] if c != cls)
    dropdown = page.locator("select").filter(has=page.locator(f"option:text-is('{other}')")).first
    got = selection_after(out, page, lambda: dropdown.select_option(other))
    expected = np.flatnonzero(labels == other)
    assert got["shape"] == "ids" and got["indices"] == expected.tolist()
    assert sorted(_highlighted(page)) == expected.tolist()
    assert widget.get_attribute("data-selected") == str(len(expected))
    _shown_count(page, len(expected), "ids")

    # hover a lone point: its image and id
    far = np.flatnonzero(labels == other)
    gaps = [np.sort(np.linalg.norm(xy - xy[i], axis=1))[1] for i in far]
    row = int(far[int(np.argmax(gaps))])
    (x, y), = _pixels(page, [xy[row]])
    page.mouse.move(x + 40, y + 40)
    page.mouse.move(x, y, steps=3)
    tip = widget.locator(".dx-tooltip")
    tip.locator("img").wait_for(timeout=15_000)
    assert f"test-{row:05d}" in tip.inner_text()
    assert page.eval_on_selector(".dx-tooltip img >> nth=0", "img => img.complete && img.naturalWidth > 0")
    page.screenshot(path=str(ARTIFACTS / f"marimo-{marimo_page['mode']}-hover.png"))
