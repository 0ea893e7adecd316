"""A real Label Studio server for the tests: started from ``.venv-labelstudio`` (made by ``.ci/setup``) on
loopback with SQLite and a temporary data folder, local-files serving on, and stopped with its children at
the end of the session.

Users and tokens are made the way Label Studio's docs say: the first user from ``LABEL_STUDIO_USERNAME`` /
``LABEL_STUDIO_PASSWORD``, more users through the sign-up page, and for each a *personal access token*
(a JWT refresh token; legacy tokens are disabled by default in 1.23) created from a logged-in session with
``POST /api/token/``, which is what *Account & Settings > Personal Access Token* does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv-labelstudio"
EXE = VENV / "bin" / "label-studio"
ADMIN, PASSWORD = "admin@example.com", "dx-Admin-pass-2026"
START_TIMEOUT = float(os.environ.get("DX_LABEL_STUDIO_START_TIMEOUT", "300"))


@dataclass
class User:
    email: str
    password: str
    token: str  # personal access token (JWT refresh token)
    id: int = 0


@dataclass
class LabelStudioServer:
    url: str
    document_root: Path
    data_dir: Path
    process: subprocess.Popen
    log: Path
    users: dict = field(default_factory=dict)

    @property
    def admin(self) -> User:
        return self.users[ADMIN]

    def session(self, email: str, password: str) -> httpx.Client:
        """A browser-like session logged in through the login form."""
        http = httpx.Client(base_url=self.url, follow_redirects=True, timeout=60)
        http.get("/user/login/")
        r = http.post("/user/login/", data={"email": email, "password": password,
                                            "csrfmiddlewaretoken": http.cookies.get("csrftoken", "")},
                      headers={"Referer": f"{self.url}/user/login/"})
        if "sessionid" not in http.cookies:
            http.close()
            raise RuntimeError(f"could not log in to Label Studio as {email}: HTTP {r.status_code}")
        return http

    def personal_token(self, email: str, password: str) -> User:
        with contextlib.closing(self.session(email, password)) as http:
            r = http.post("/api/token/", headers={"X-CSRFToken": http.cookies.get("csrftoken", ""),
                                                  "Referer": f"{self.url}/user/account/"})
            r.raise_for_status()
            me = http.get("/api/current-user/whoami").json()
        user = User(email, password, r.json()["token"], int(me["id"]))
        self.users[email] = user
        return user

    def add_user(self, email: str, password: str) -> User:
        """Sign up another user (an annotator) through the sign-up page, and make their token."""
        with httpx.Client(base_url=self.url, follow_redirects=True, timeout=60) as http:
            http.get("/user/signup/")
            http.post("/user/signup/", data={"email": email, "password": password,
                                             "csrfmiddlewaretoken": http.cookies.get("csrftoken", "")},
                      headers={"Referer": f"{self.url}/user/signup/"})
        return self.personal_token(email, password)

    def api(self, user: User) -> httpx.Client:
        """An HTTP client speaking as ``user`` with a fresh access token from their personal access token."""
        r = httpx.post(f"{self.url}/api/token/refresh/", json={"refresh": user.token}, timeout=60)
        r.raise_for_status()
        return httpx.Client(base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {r.json()['access']}"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp: Path, document_root: Path) -> LabelStudioServer:
    """Start the server and wait for ``/health``; the caller must :func:`stop` it."""
    port = free_port()
    data = tmp / "label-studio-data"
    data.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data), "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
           "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root), "LABEL_STUDIO_USERNAME": ADMIN,
           "LABEL_STUDIO_PASSWORD": PASSWORD, "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false",
           "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "false", "DJANGO_DB": "sqlite"}
    for key in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV"):
        env.pop(key, None)
    log = tmp / "label-studio.log"
    with open(log, "wb") as out:
        # --internal-host is the address it listens on (default 0.0.0.0); --host the URL it calls itself
        command = [str(EXE), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
                   "--host", f"http://127.0.0.1:{port}", "--data-dir", str(data)]
        process = subprocess.Popen(command, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = LabelStudioServer(f"http://127.0.0.1:{port}", document_root, data, process, log)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"Label Studio exited with {process.returncode}: {_tail(log)}")
            try:
                if httpx.get(f"{server.url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Label Studio did not answer /health within {START_TIMEOUT:.0f} s: {_tail(log)}")
            time.sleep(1)
        server.personal_token(ADMIN, PASSWORD)
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: LabelStudioServer) -> None:
    """Stop the server and every process it started (it runs in its own process group)."""
    process = server.process
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
    try:  # children that outlived the leader
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(log: Path) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])[-800:]
    except OSError:
        return "(no log)"


def server_fixture(tmp_path_factory):
    """The body of the session fixture: skips where the venv is missing unless CI=true, where it fails."""
    if not EXE.is_file():
        message = f"Label Studio is not installed in {VENV}: run .ci/setup"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + " (CI must run the live Label Studio tests)")
        pytest.skip(message)
    tmp = tmp_path_factory.mktemp("label-studio")
    root = tmp / "files"
    root.mkdir()
    server = start(tmp, root)
    try:
        yield server
    finally:
        stop(server)
