"""Binder: a virtualenv built from the files in binder/ alone installs dataexplore and runs the notebooks."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_example_notebook_runs_in_ci_or_says_what_it_needs():
    executed_by_tests = {"quickstart.ipynb", "coverage.ipynb", "failures.ipynb",  # test_demo, test_examples
                         "collection_queries.ipynb", "fiftyone.ipynb", "closing_the_loop.ipynb", "data_quality.ipynb",
                         "objects.ipynb", "synthetic.ipynb"}
    installed_in_ci = {"fiftyone"}  # extras the dev install has and Binder's does not
    for path in sorted((ROOT / "examples").glob("*.ipynb")):
        needs = nbformat.read(path, as_version=4).metadata.get("dataexplore", {}).get("requires")
        assert path.name in executed_by_tests or needs, f"{path.name} is neither tested nor marked"
        assert not (path.name in executed_by_tests and set(needs or ()) - installed_in_ci)


@pytest.mark.slow
def test_a_venv_from_the_binder_files_runs_every_example(tmp_path):
    venv = tmp_path / "binder-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = dict(os.environ, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(venv),
               PIP_CONSTRAINT=str(ROOT / ".ci" / "constraints.txt"),  # this machine's torch builds
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", HF_HUB_OFFLINE="1",
               DATAEXPLORE_CACHE_DIR=str(tmp_path / "cache"), DATAEXPLORE_DEMO_N="2000",
               DATAEXPLORE_EXAMPLE_N="2000")
    env.pop("PYTHONPATH", None)

    def run(*cmd, timeout=1800):
        res = subprocess.run(list(cmd), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        assert res.returncode == 0, f"{cmd}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        return res

    run(str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", "binder/requirements.txt")
    res = run("bash", "binder/postBuild")
    out = res.stdout
    for name in ("quickstart", "coverage", "failures", "collection_queries", "closing_the_loop", "data_quality",
                 "objects", "synthetic"):
        assert f"ran {name}.ipynb" in out, out
    assert "skip your_own_images.ipynb (needs network, gpu)" in out
    assert "skip fiftyone.ipynb (needs fiftyone)" in out
    # the demo's data is cached: embeddings and maps are in the cache folder the notebooks used
    assert any((tmp_path / "cache").rglob("*.sqlite")) and any((tmp_path / "cache").rglob("*.npz"))
    where = run(str(venv / "bin" / "python"), "-c", "import dataexplore, sys; print(dataexplore.__file__, sys.prefix)")
    assert str(ROOT / "dataexplore") in where.stdout and str(venv) in where.stdout
