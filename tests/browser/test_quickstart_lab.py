"""The quickstart notebook itself, opened and run in JupyterLab; its map is the README's screenshot."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .harness import ARTIFACTS, open_and_run

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "examples" / "img" / "quickstart.png"


def test_quickstart_runs_in_jupyterlab_and_shows_its_map(lab, page):
    shutil.copy(ROOT / "examples" / "quickstart.ipynb", lab["root"] / "quickstart.ipynb")
    open_and_run(page, lab, "quickstart.ipynb", timeout=400)
    page.wait_for_selector(".dx-explorer[data-ready='true']", timeout=400_000)
    widget = page.locator(".dx-explorer").first
    # the notebook's last step selects the 20 best text matches from Python; the map shows them
    page.wait_for_function("() => document.querySelector('.dx-explorer').dataset.selected === '20'",
                           timeout=400_000)
    widget.scroll_into_view_if_needed()  # the notebook goes on below the map
    assert "10,000 points" in widget.locator(".dx-status").inner_text()
    assert widget.locator(".dx-legend-row").count() == 10
    assert widget.locator(".dx-panel .dx-thumb").count() == 20  # their images, below the map
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert all("Error" not in errors.nth(i).inner_text() for i in range(errors.count()))
    ARTIFACTS.mkdir(exist_ok=True)
    widget.screenshot(path=str(ARTIFACTS / "quickstart.png"))
    if os.environ.get("DATAEXPLORE_UPDATE_SCREENSHOTS"):  # refresh the README's picture
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copy(ARTIFACTS / "quickstart.png", SCREENSHOT)
    assert SCREENSHOT.is_file(), "run with DATAEXPLORE_UPDATE_SCREENSHOTS=1 once to create the README screenshot"
