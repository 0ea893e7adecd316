"""Fixtures for the browser tests: JupyterLab on loopback, headless chromium, a fresh page per test."""

from __future__ import annotations

import os

import pytest

from .harness import CHROMIUM, launch_browser, start_lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.skip("browser tests need chromium (apt-get install chromium); .ci/setup installs it")
    pytest.importorskip("playwright")
    root = tmp_path_factory.mktemp("lab")
    with start_lab(root, {"DATAEXPLORE_CACHE_DIR": str(root / ".cache"),
                          "DX_TEST_OUT": str(root / "selection.json")}) as server:
        yield server


@pytest.fixture(scope="session")
def browser(lab):
    with launch_browser() as b:
        yield b


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    dialogs = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs
    yield pg
    context.close()


