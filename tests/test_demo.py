"""The offline demo: `dataexplore demo` prepares everything and the quickstart notebook runs on it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tracked_files_rewritten

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_demo_prepares_and_quickstart_notebook_runs(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    n = 600
    res = subprocess.run([sys.executable, "-m", "dataexplore", "demo", "--no-lab", "--n", str(n)],
                         capture_output=True, text=True, env=os.environ.copy(), cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr
    assert res.stderr.count(f"{n} computed") == 2 and "quickstart.ipynb" in res.stderr  # test split and pool

    monkeypatch.setenv("DATAEXPLORE_DEMO_N", str(n))
    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = {i: c.outputs for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    text = "\n".join(o.get("data", {}).get("text/plain", "") if o.output_type != "stream" else o.text
                     for outs in outputs.values() for o in outs)
    # the notebook reused the demo's cache: nothing was computed again
    assert f"'computed': 0, 'cached': {n}" in text
    widgets = [o for outs in outputs.values() for o in outs
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 1  # the Explorer map
    # selecting from Python: the 20 best text matches
    assert "(20, 'ids')" in text
    # the text query finds sneakers
    counts = next(c for c in nb.cells if c.cell_type == "code" and "value_counts" in c.source)
    assert "Sneaker" in counts.outputs[0]["data"]["text/plain"].splitlines()[1]
    # the cluster the sneakers sit in became a query that found sneakers in the train split, went out as
    # Label Studio tasks and came back labelled
    assert "<Query 'Sneaker'" in text and "method=probe" in text
    # no server configured (conftest clears LABEL_STUDIO_URL): the notebook says it used the offline stand-in
    assert "offline stand-in: no LABEL_STUDIO_URL" in text and "live Label Studio:" not in text
    confirmed = next(line for line in text.splitlines() if "of the candidates were confirmed as Sneaker" in line)
    assert int(confirmed.split("%")[0]) >= 90
    assert (tmp_path / "queries" / "selection.dxq" / "query.json").is_file()
    assert (tmp_path / "batches" / "selection" / "tasks.json").is_file()
    # the map, shared as one HTML file (opened in chromium by tests/browser/test_share_html.py)
    shared = tmp_path / "fashion-map.html"
    assert shared.is_file() and "fashion-map.html:" in text and shared.stat().st_size > 50_000
    # what it writes is not committed (running it from examples/ would rewrite the repository)
    assert tracked_files_rewritten(tmp_path) == []
