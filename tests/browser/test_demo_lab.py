"""`dataexplore demo` lands on the quickstart notebook: the URL it prints (and hands to the browser) opens
the notebook in JupyterLab, not the launcher, and stopping the demo stops its server."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[2]


def _url_line(proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.time() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:  # the demo prints the URL on stdout once JupyterLab answers
        if line.strip().startswith("http://"):
            return line.strip()
        if time.time() > deadline:
            break
    raise AssertionError(f"the demo printed no URL (exit status {proc.poll()})")


def test_demo_prints_and_opens_a_url_that_lands_on_the_quickstart_notebook(page, tmp_path):
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "quickstart.ipynb", tmp_path / "examples" / "quickstart.ipynb")
    opened = tmp_path / "opened.txt"
    fake_browser = tmp_path / "fake-browser"  # what webbrowser runs for $BROWSER: records the URL it got
    fake_browser.write_text(f"#!{sys.executable}\nimport sys\nopen({str(opened)!r}, 'w').write(sys.argv[1])\n")
    fake_browser.chmod(0o755)
    env = dict(os.environ, BROWSER=str(fake_browser), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"))
    proc = subprocess.Popen([sys.executable, "-m", "dataexplore", "demo", "--n", "300"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        url = _url_line(proc, timeout=400)
        assert "/lab/tree/examples/quickstart.ipynb?token=" in url
        assert opened.read_text() == url  # the browser was handed the same URL
        page.goto(url)
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
        current = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel")
        assert current.inner_text() == "quickstart.ipynb"
        heading = page.locator(".jp-NotebookPanel .jp-RenderedMarkdown h1").first
        heading.wait_for(timeout=60_000)  # markdown cells render once the notebook has laid out
        assert heading.inner_text().startswith("dataexplore quickstart")
        assert page.locator(".jp-Launcher:visible").count() == 0
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl+C in the terminal does
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
    port = int(url.split(":")[2].split("/")[0])
    with pytest.raises(OSError):  # the demo took its JupyterLab down with it
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
