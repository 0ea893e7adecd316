"""`dataexplore demo` lands on the quickstart notebook: the URL it prints (and hands to the browser) opens
the notebook in JupyterLab, not the launcher, and stopping the demo stops its server."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[2]


def _url_line(proc: subprocess.Popen, timeout: float, log: Path) -> str:
    """The URL the demo prints on stdout once JupyterLab answers (read in a thread: a silent demo
    cannot hang the test past ``timeout``)."""
    lines: queue.Queue[str] = queue.Queue()
    out = proc.stdout
    assert out is not None
    threading.Thread(target=lambda: [lines.put(line) for line in out], daemon=True).start()
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if line.strip().startswith("http://"):
            return line.strip()
    raise AssertionError(f"the demo printed no URL (exit status {proc.poll()}); its messages:\n"
                         f"{log.read_text()[-3000:]}")


def test_demo_prints_and_opens_a_url_that_lands_on_the_quickstart_notebook(page, tmp_path):
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "quickstart.ipynb", tmp_path / "examples" / "quickstart.ipynb")
    opened = tmp_path / "opened.txt"
    fake_browser = tmp_path / "fake-browser"  # what webbrowser runs for $BROWSER: records the URL it got
    fake_browser.write_text(f"#!{sys.executable}\nimport sys\nopen({str(opened)!r}, 'w').write(sys.argv[1])\n")
    fake_browser.chmod(0o755)
    env = dict(os.environ, BROWSER=str(fake_browser), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"))
    log = tmp_path / "demo.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "dataexplore", "demo", "--n", "300"], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
    try:
        url = _url_line(proc, timeout=400, log=log)
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
