"""The cache: nothing computed twice, nothing lost on a crash, damage detected, concurrency safe."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

import dataexplore as dx
from dataexplore.models import load_model


def _db(cache_dir):
    return cache_dir / "embeddings" / f"{load_model('fashion-tiny').key}.sqlite"


def test_second_run_computes_nothing_and_ten_more_compute_ten():
    first = dx.embed("fashion-mnist:test:200")
    assert first.stats == {"computed": 200, "cached": 0, "failed": 0}
    second = dx.embed("fashion-mnist:test:200")
    assert second.stats == {"computed": 0, "cached": 200, "failed": 0}
    np.testing.assert_array_equal(first.vectors, second.vectors)
    more = dx.embed("fashion-mnist:test:210")
    assert more.stats == {"computed": 10, "cached": 200, "failed": 0}


def test_keys_follow_content_not_paths(photo_folder, tmp_path):
    dx.embed(photo_folder)
    moved = tmp_path / "renamed"
    shutil.copytree(photo_folder, moved)
    assert dx.embed(moved).stats["computed"] == 0  # copies and renames hit the cache
    Image.new("RGB", (40, 30), (200, 10, 10)).save(moved / "things/rocket.jpg")
    time.sleep(0.01)
    again = dx.embed(moved)
    assert again.stats == {"computed": 1, "cached": 4, "failed": 0}  # only the edited file


def test_cache_can_be_disabled_or_moved(tmp_path, cache_dir):
    dx.embed("fashion-mnist:test:20", cache=False)
    assert not (cache_dir / "embeddings").exists()
    dx.embed("fashion-mnist:test:20", cache_dir=tmp_path / "elsewhere")
    assert len(list((tmp_path / "elsewhere" / "embeddings").glob("*.sqlite"))) == 1


def test_truncated_cache_file_is_detected_and_recomputed(cache_dir):
    ref = dx.embed("fashion-mnist:test:300")
    db = _db(cache_dir)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{db}{suffix}"):
            os.unlink(f"{db}{suffix}")
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])
    again = dx.embed("fashion-mnist:test:300")
    assert again.stats["computed"] > 0
    np.testing.assert_allclose(again.vectors, ref.vectors, atol=1e-2)  # bf16: batch-dependent rounding
    assert list(cache_dir.glob("embeddings/*.corrupt-*")) or again.stats["computed"] < 300


def test_damaged_rows_are_never_used(cache_dir):
    ref = dx.embed("fashion-mnist:test:50")
    with sqlite3.connect(_db(cache_dir)) as conn:
        key, blob = conn.execute("SELECT key, vec FROM vectors LIMIT 1").fetchone()
        damaged = bytes([blob[0] ^ 0xFF]) + blob[1:]
        conn.execute("UPDATE vectors SET vec = ? WHERE key = ?", (damaged, key))
    again = dx.embed("fashion-mnist:test:50")
    assert again.stats == {"computed": 1, "cached": 49, "failed": 0}
    np.testing.assert_allclose(again.vectors, ref.vectors, atol=1e-2)  # bf16: batch-dependent rounding


_SCRIPT = textwrap.dedent("""
    import sys, dataexplore as dx
    emb = dx.embed(sys.argv[1], model="fashion-tiny", batch_size=int(sys.argv[2]), num_workers=1, progress=False)
    print(emb.stats["computed"], emb.stats["cached"])
""")


def _rows(db) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_loses_at_most_the_batch_in_flight(cache_dir, sig):
    source, batch = "fashion-mnist:train:30000", 256
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, source, str(batch)], env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = _db(cache_dir)
    deadline = time.time() + 120
    while _rows(db) < 4 * batch and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be interrupted"
    os.kill(proc.pid, sig)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    done = _rows(db)
    assert 4 * batch <= done < 30000
    resumed = dx.embed(source, batch_size=batch)
    assert resumed.stats["cached"] == done and resumed.stats["computed"] == 30000 - done
    # resumed vectors are the ones a clean run gives
    fresh = dx.embed(dx.load(source).subset(np.arange(0, 30000, 997)), cache=False)
    np.testing.assert_allclose(resumed.vectors[::997], fresh.vectors, atol=1e-2)


@pytest.mark.slow
def test_concurrent_runs_share_the_cache_safely(cache_dir):
    source = "fashion-mnist:train:6000"
    procs = [subprocess.Popen([sys.executable, "-c", _SCRIPT, source, "128"], env=os.environ.copy(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with sqlite3.connect(_db(cache_dir)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    after = dx.embed(source)
    assert after.stats == {"computed": 0, "cached": 6000, "failed": 0}
