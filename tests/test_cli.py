"""The command line as a user runs it: subprocesses, stderr summaries, exit codes."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dataexplore", *args], capture_output=True, text=True,
                          env=os.environ.copy(), cwd=cwd, timeout=600)


@pytest.mark.slow
def test_embed_twice_then_project(tmp_path):
    out = tmp_path / "e.parquet"
    first = run("embed", "fashion-mnist:test:2000", "--model", "fashion-tiny", "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert "2000 computed, 0 from cache, 0 failed" in first.stderr
    second = run("embed", "fashion-mnist:test:2000", "--model", "fashion-tiny", "--out", str(out), "--quiet")
    assert second.returncode == 0 and "0 computed, 2000 from cache, 0 failed" in second.stderr
    table = pq.read_table(out)
    assert table.column_names == ["id", "embedding"] and table.num_rows == 2000
    assert table.column("id")[0].as_py() == "test-00000" and table.column("id")[-1].as_py() == "test-01999"
    assert len(table.column("embedding")[0].as_py()) == 128

    map_path = tmp_path / "m.parquet"
    proj = run("project", str(out), "--out", str(map_path))
    assert proj.returncode == 0, proj.stderr
    frame = pd.read_parquet(map_path)
    assert list(frame.columns) == ["id", "x", "y"] and len(frame) == 2000
    assert np.isfinite(frame[["x", "y"]].to_numpy()).all()
    assert "projected 2000 points (umap, computed with umap-learn)" in proj.stderr
    assert "from cache" in run("project", str(out), "--out", str(map_path)).stderr


def test_failures_are_counted_kept_as_null_rows_and_listed(photo_folder, tmp_path):
    (photo_folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    out, fails = tmp_path / "e.parquet", tmp_path / "failures.csv"
    res = run("embed", str(photo_folder), "--out", str(out), "--failures", str(fails), "--quiet")
    assert res.returncode == 0, res.stderr
    assert "5 computed, 0 from cache, 1 failed" in res.stderr and "broken.jpg: not an image" in res.stderr
    table = pq.read_table(out).to_pandas()
    assert len(table) == 6 and table.embedding.isna().sum() == 1
    assert table.id.tolist()[0] == "animals/chelsea.jpg"  # source order, failed row in place
    assert pd.read_csv(fails).id.tolist() == ["broken.jpg"]
    proj = run("project", str(out), "--out", str(tmp_path / "m.parquet"), "--method", "pca")
    assert proj.returncode == 0 and "1 without embedding skipped" in proj.stderr
    assert len(pd.read_parquet(tmp_path / "m.parquet")) == 5


@pytest.mark.parametrize("args, message", [
    (["embed", "no/such/folder", "--out", "e.parquet"], "source not found"),
    (["embed", "fashion-mnist:test:5", "--model", "ViT-Q-99", "--out", "e.parquet"], "unknown model"),
    (["embed", "fashion-mnist:test:5", "--out", "e.csv"], "--out must be a .parquet file"),
    (["project", "missing.parquet", "--out", "m.parquet"], "file not found"),
    (["embed", "fashion-mnist:test:0", "--out", "e.parquet"], "number of images must be >= 1"),
])
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
    res = run(*args, cwd=tmp_path)
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dataexplore: error:") and message in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_demo_with_a_busy_port_stops_at_once_with_one_line(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run("demo", "--port", str(port), cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == f"dataexplore: error: port {port} is in use; pass another with --port"
    assert "embedding" not in res.stderr  # it failed before any work, not after minutes of embedding
