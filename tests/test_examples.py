"""The analysis notebooks in examples/ run headless and show what they say they show."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_notebook(name: str, tmp_path, monkeypatch, n: int = 2000):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("DATAEXPLORE_EXAMPLE_N", str(n))
    nb = nbformat.read(ROOT / "examples" / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return [c for c in nb.cells if c.cell_type == "code"]


def text_of(cell) -> str:
    parts = []
    for o in cell.outputs:
        if o.output_type == "stream" and o.name == "stdout":
            parts.append(o.text)
        elif "data" in o:
            parts.append(o["data"].get("text/plain", ""))
    return "\n".join(parts)


def cell_with(cells, snippet: str):
    return next(c for c in cells if snippet in c.source)


def has_output(cell, mime: str) -> bool:
    return any(mime in o.get("data", {}) for o in cell.outputs)


@pytest.mark.slow
def test_coverage_notebook_finds_the_missing_sandals(tmp_path, monkeypatch):
    cells = run_notebook("coverage.ipynb", tmp_path, monkeypatch)
    gaps = text_of(cell_with(cells, "cov = dx.coverage"))
    first_gap = gaps.splitlines()[1]
    assert "gap 1" in first_gap and "Sandal" in first_gap
    assert has_output(cell_with(cells, "cov.plot()"), "application/vnd.plotly.v1+json")
    assert has_output(cell_with(cells, "cov.exemplars(0)"), "image/png")
    assert has_output(cell_with(cells, "ex.show(cov)"), "application/vnd.jupyter.widget-view+json")
    selected = text_of(cell_with(cells, "ex.select_group(0)"))
    assert selected.splitlines()[1].startswith("Sandal")  # the selected gap is mostly sandals
    assert text_of(cell_with(cells, "cc.missing()")).strip() == "['sandal']"
    assert has_output(cell_with(cells, "cc.plot("), "application/vnd.plotly.v1+json")


@pytest.mark.slow
def test_failures_notebook_trains_a_probe_and_ranks_its_failure_slices(tmp_path, monkeypatch):
    cells = run_notebook("failures.ipynb", tmp_path, monkeypatch)
    out = text_of(cell_with(cells, "LogisticRegression(max_iter"))  # also progress widgets' text
    accuracy = next(line for line in out.splitlines() if line.startswith("accuracy "))
    assert accuracy.endswith("on 2000 images")
    value = float(accuracy.split()[1].rstrip("%"))
    assert 60 < value < 99  # a real, imperfect classifier
    slices = text_of(cell_with(cells, "fs = dx.failures"))
    assert "slice 1" in slices
    assert has_output(cell_with(cells, "fs.plot()"), "application/vnd.plotly.v1+json")
    assert has_output(cell_with(cells, "fs.exemplars(0)"), "image/png")
    assert has_output(cell_with(cells, "ex.show(fs)"), "application/vnd.jupyter.widget-view+json")
    confusions = text_of(cell_with(cells, "pd_confusions"))
    assert "label" in confusions and "predicted" in confusions
    assert "'largest cluster'" in text_of(cell_with(cells, "cl.rename("))
