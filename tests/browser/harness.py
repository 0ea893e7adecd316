"""Drive JupyterLab and Notebook 7 on loopback with Debian's chromium through playwright.

Shared by the browser tests and ``benchmarks/widget.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start_lab(root: Path, extra_env: dict | None = None):
    """A JupyterLab server (with Notebook 7) on 127.0.0.1, autosave off; yields url, token, root, env."""
    settings = root / ".settings"
    for plugin, values in {
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
        # draw every cell, not only those on screen: a test reads widgets far up a long notebook
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                            "checkForUpdates": False},
    }.items():
        path = settings / plugin
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, HF_HUB_OFFLINE="1", **(extra_env or {}))
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.port={port}",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={token}", "--ServerApp.allow_root=True",
           f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
           "--JupyterNotebookApp.expose_app_in_browser=True",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={root / '.ws'}"]
    log = open(root / "lab.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((root / "lab.log").read_text()) from None
            time.sleep(0.5)
    try:
        yield {"url": url, "token": token, "root": root, "env": env}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@contextlib.contextmanager
def launch_browser():
    """Debian's chromium; playwright gives each launch a fresh, empty profile directory."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


def write_notebook(path: Path, cells: list[str]) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def open_and_run(page, lab, name: str, timeout: float = 240, app: str = "lab") -> None:
    """Open a notebook in JupyterLab (``app="lab"``) or Notebook 7 (``"notebook"``), wait for its kernel,
    run all cells."""
    # "reset": a clean workspace each time, so notebooks opened earlier are not restored beside it
    path = f"lab/tree/{name}?reset&" if app == "lab" else f"notebooks/{name}?"
    page.goto(f"{lab['url']}/{path}token={lab['token']}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=timeout * 1000)
    page.wait_for_function(
        "() => { const w = window.jupyterapp?.shell?.currentWidget;"
        " return w?.sessionContext?.session?.kernel?.status === 'idle'; }", timeout=timeout * 1000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def kernel_run(page, code: str) -> str:
    """Run ``code`` in the kernel of the notebook open in ``page`` (outside its cells) and return what
    it printed; raise if it failed. For checking kernel-side state after clicks in a widget."""
    result = page.evaluate(
        """async (code) => {
          const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
          const future = kernel.requestExecute({ code, store_history: false, silent: false });
          let text = "", error = "";
          future.onIOPub = (msg) => {
            if (msg.header.msg_type === "stream") text += msg.content.text;
            else if (msg.header.msg_type === "error") error = `${msg.content.ename}: ${msg.content.evalue}`;
          };
          const reply = await future.done;
          return { status: reply.content.status, text, error };
        }""", code)
    if result["status"] != "ok":
        raise AssertionError(f"kernel code failed: {result['error'] or result['status']}\n{code}")
    return result["text"]


def selection_after(out: Path, page, action, timeout: float = 30.0) -> dict:
    """Do ``action`` in ``page`` and return what the notebook's ``on_select`` callback wrote to ``out``
    (JSON), once both the file and the widget's ``data-selection-seq`` have changed."""
    before = out.stat().st_mtime_ns if out.exists() else 0
    seq = page.get_attribute(".dx-explorer >> nth=0", "data-selection-seq")
    action()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if out.exists() and out.stat().st_mtime_ns != before and \
                page.get_attribute(".dx-explorer >> nth=0", "data-selection-seq") != seq:
            time.sleep(0.2)
            return json.loads(out.read_text())
        time.sleep(0.05)
    raise AssertionError("Python never received the selection")
