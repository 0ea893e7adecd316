"""``dataexplore demo``: embed and map Fashion-MNIST offline, then open the quickstart notebook itself.

JupyterLab's own start-up message links to its launcher; the demo starts the server on a port and
token it chose, waits until it answers, and prints (and opens, when a browser exists) the URL of the
quickstart notebook, so that the link lands on the notebook.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path
from urllib.parse import quote

from .core.errors import DataexploreError

START_TIMEOUT = 180.0  # seconds JupyterLab may take to answer (its first start builds nothing, but is slow)


def quickstart_notebook() -> Path:
    """The quickstart notebook: the repository's copy if we run from a checkout, else the packaged one
    (copied into the working directory as ``dataexplore-quickstart.ipynb``)."""
    for candidate in (Path.cwd() / "examples" / "quickstart.ipynb",
                      Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"):
        if candidate.is_file():
            return candidate
    packaged = Path(__file__).resolve().parent / "examples" / "quickstart.ipynb"
    target = Path.cwd() / "dataexplore-quickstart.ipynb"
    if not target.exists():
        shutil.copy(packaged, target)
    return target


def notebook_url(port: int, token: str, root: Path, notebook: Path) -> str:
    """The URL that opens ``notebook`` in JupyterLab served from ``root`` (not the launcher)."""
    relative = notebook.resolve().relative_to(root.resolve())
    return f"http://127.0.0.1:{port}/lab/tree/{quote(relative.as_posix())}?token={token}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_port(port: int) -> None:
    """Raise a one-line error if something listens on ``port`` already (before any work is done)."""
    if not 0 < port < 65536:
        raise DataexploreError(f"--port must be between 1 and 65535, got {port}")
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise DataexploreError(f"port {port} is in use; pass another with --port")


def _wait_until_up(proc: subprocess.Popen, port: int, token: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    status = f"http://127.0.0.1:{port}/api/status?token={token}"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DataexploreError(f"JupyterLab exited with status {proc.returncode} before it answered "
                                   f"(see its messages above)")
        try:
            with urllib.request.urlopen(status, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise DataexploreError(f"JupyterLab did not answer on port {port} within {timeout:.0f} s")


def _open_browser(url: str) -> bool:
    """Open ``url`` in the user's browser if there is one (``$BROWSER`` is honoured); never raise."""
    try:
        return webbrowser.get().open(url)
    except webbrowser.Error:  # no browser on this machine (a server, a container)
        return False


def start_lab(notebook: Path, port: int | None, env: dict[str, str]) -> int:
    """Run JupyterLab on ``notebook``'s folder (the working directory when it holds the notebook) until
    it stops; print and open the notebook's URL once it answers."""
    root = Path.cwd() if notebook.resolve().is_relative_to(Path.cwd().resolve()) else notebook.parent
    port = port or _free_port()
    check_port(port)
    token = secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    print(f"starting JupyterLab on 127.0.0.1:{port} in {root}", file=sys.stderr)
    proc = subprocess.Popen(cmd, env=env)
    try:
        _wait_until_up(proc, port, token, START_TIMEOUT)
        url = notebook_url(port, token, root, notebook)
        opened = _open_browser(url)
        print(f"the quickstart notebook{' (opened in your browser)' if opened else ''}:\n    {url}", flush=True)
        print("stop JupyterLab with Ctrl+C", file=sys.stderr)
        return proc.wait()
    except BaseException:
        proc.terminate()  # an interrupted or failed start leaves no server behind
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
