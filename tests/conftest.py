"""Shared fixtures. No test may reach a model hub: HF_HUB_OFFLINE is set before anything imports it."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
# nor a developer's own Label Studio: notebooks push to the server these name (the live tests start their own)
for _name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
    os.environ.pop(_name, None)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


@pytest.fixture(scope="session")
def _signing_key_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("config") / "cache.key"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch, _signing_key_file):
    """Every test gets its own cache folder (nothing leaks between tests or into the user's cache)
    and the session's own key for signing cached projection models (never the user's)."""
    root = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("DATAEXPLORE_CACHE_DIR", str(root))
    monkeypatch.setenv("DATAEXPLORE_KEY_FILE", str(_signing_key_file))
    return root


@pytest.fixture
def cache_dir(_isolated_cache) -> Path:
    return _isolated_cache


def _photos() -> dict[str, np.ndarray]:
    from skimage import data

    return {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee(),
            "rocket": data.rocket(), "camera": data.camera()}


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real photographs shipped by scikit-image (RGB or grayscale uint8)."""
    return _photos()


@pytest.fixture
def photo_folder(tmp_path, photos) -> Path:
    """A folder tree of real JPEG/PNG photos: animals/chelsea.jpg, things/coffee.png, ..."""
    layout = {"animals/chelsea.jpg": "chelsea", "people/astronaut.jpg": "astronaut",
              "things/coffee.png": "coffee", "things/rocket.jpg": "rocket", "people/camera.png": "camera"}
    for rel, name in layout.items():
        path = tmp_path / "photos" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photos[name]).save(path)
    return tmp_path / "photos"


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory) -> Path:
    """One embedding cache for every module that embeds real Fashion-MNIST: an image is embedded once
    per session, whichever module asks first."""
    return tmp_path_factory.mktemp("embedding-cache")


def recording(ex) -> list:
    """Capture what an Explorer sends to the browser: a list of ``(content, buffers)``.

    Every message is checked against the protocol (dataexplore/widget/protocol.py, mirrored from
    js/src/protocol.ts): a field the browser does not know, or one it needs and does not get, fails."""
    from dataexplore.widget.protocol import check_outgoing

    sent: list = []

    def send(content, buffers=None):
        check_outgoing(content)
        sent.append((content, buffers or []))

    ex.send = send
    return sent


def browser(ex, content, buffers=()) -> None:
    """Deliver ``content`` to a widget the way the browser's comm does (a custom message)."""
    ex._handle_custom_msg(content, list(buffers))


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A real Label Studio server for the session (tests/label_studio_server.py); skips where .ci/setup did
    not install it, except under CI=true, where it fails."""
    from label_studio_server import server_fixture

    yield from server_fixture(tmp_path_factory)


def tracked_files_rewritten(folder: Path) -> list[str]:
    """The files a notebook run in ``folder`` wrote that git tracks under ``examples/``: run from there,
    it would rewrite them, so generated files must not be committed. Empty outside a git checkout."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    listed = subprocess.run(["git", "ls-files", "examples"], cwd=root, capture_output=True, text=True)
    if listed.returncode != 0:
        return []
    tracked = set(listed.stdout.split())
    written = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return sorted(f"examples/{w}" for w in written if f"examples/{w}" in tracked)


@pytest.hookimpl(trylast=True)  # after pytest's own, which tears down session fixtures on -x or Ctrl+C
def pytest_sessionfinish(session, exitstatus):
    """The test run leaves no process behind: servers, kernels, databases and workers that tests start are
    stopped by the tests. Whatever of ours is still running here (after a short grace period) fails the run."""
    try:
        import psutil
    except ImportError:  # psutil comes with the dev extras (FiftyOne, Ray); nothing to check without it
        return
    children = psutil.Process().children(recursive=True)
    _, alive = psutil.wait_procs(children, timeout=15)
    listed = []
    for p in alive:
        try:
            listed.append(f"{p.pid} {' '.join(p.cmdline()[:4])}")
        except psutil.Error:  # exited (or became a zombie) while we looked
            continue
    if listed:
        session.config.get_terminal_writer().line(f"processes left running by the tests: {'; '.join(listed)}",
                                                  red=True)
        session.exitstatus = 1
