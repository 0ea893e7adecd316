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


def _pngs(folder, values) -> list:
    """One 20x20 grayscale PNG per value (each a different image)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, v in enumerate(values):
        img = np.full((20, 20), v, np.uint8)
        img[i % 20, :] = 255 - v
        Image.fromarray(img).save(folder / f"{i:03d}.png")
        paths.append(folder / f"{i:03d}.png")
    return paths


def test_each_file_is_read_once_and_not_at_all_when_unchanged(tmp_path, monkeypatch):
    """The content key is hashed from the bytes that are decoded: a first run opens every file once,
    a second run none (the memo knows them), and only the file that changed after that."""
    from dataexplore.core import samples as samples_mod

    paths = _pngs(tmp_path / "imgs", range(0, 200, 20))
    opened: list[str] = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(samples_mod, "open", counting_open, raising=False)
    first = dx.embed(tmp_path / "imgs", progress=False)
    assert first.stats == {"computed": 10, "cached": 0, "failed": 0}
    assert sorted(opened) == sorted(str(p) for p in paths)  # once each, not twice (hash, then decode)
    opened.clear()
    assert dx.embed(tmp_path / "imgs", progress=False).stats == {"computed": 0, "cached": 10, "failed": 0}
    assert opened == []
    Image.fromarray(np.full((20, 20), 7, np.uint8)).save(paths[3])
    os.utime(paths[3], ns=(time.time_ns(), time.time_ns() + 10**9))  # a new time even on a coarse clock
    again = dx.embed(tmp_path / "imgs", progress=False)
    assert again.stats == {"computed": 1, "cached": 9, "failed": 0} and opened == [str(paths[3])]


def test_a_file_rewritten_during_the_run_is_cached_under_the_content_that_was_embedded(tmp_path, monkeypatch):
    """A file replaced after the run looked at it (stat, memo) but before it was decoded: its vector is
    the new image's, stored under the new image's key. A key hashed from the old bytes would serve the
    new image's vector to every later copy of the old one."""
    from dataexplore.embedding.inprocess import LocalEngine

    paths = _pngs(tmp_path / "imgs", [10, 90, 170])
    old = paths[1].read_bytes()
    _pngs(tmp_path / "new", [250, 250, 250])
    new = (tmp_path / "new" / "001.png").read_bytes()
    compute = LocalEngine.compute

    def rewrite_then_compute(self, run):
        paths[1].write_bytes(new)
        return compute(self, run)

    with monkeypatch.context() as patched:
        patched.setattr(LocalEngine, "compute", rewrite_then_compute)
        emb = dx.embed(tmp_path / "imgs", progress=False)
    truth_new = dx.embed([str(tmp_path / "new" / "001.png")], cache=False, progress=False).vectors[0]
    np.testing.assert_allclose(emb.vectors[1], truth_new, atol=1e-2)

    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "old.png").write_bytes(old)  # the old image under another name
    copy = dx.embed(tmp_path / "copy", progress=False)
    assert copy.stats == {"computed": 1, "cached": 0, "failed": 0}  # nothing was cached under its key
    truth_old = dx.embed(tmp_path / "copy", cache=False, progress=False).vectors[0]
    np.testing.assert_allclose(copy.vectors[0], truth_old, atol=1e-2)
    assert dx.embed(tmp_path / "imgs", progress=False).stats["computed"] == 0


def test_an_error_mid_run_keeps_every_batch_finished_before_it(monkeypatch):
    """Batches that finished before an error are committed (the writer commits on the way out), so
    the next run computes only the rest."""
    from dataexplore.embedding import inprocess

    source, batch = "fashion-mnist:test:640", 64
    real = inprocess.to_model_input

    def fail_from_row_192(b, *args, **kwargs):
        if b.rows and min(b.rows) >= 192:
            raise RuntimeError("the model crashed")
        return real(b, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(inprocess, "to_model_input", fail_from_row_192)
        with pytest.raises(RuntimeError, match="the model crashed"):
            dx.embed(source, batch_size=batch, progress=False)
    resumed = dx.embed(source, batch_size=batch, progress=False)
    assert resumed.stats == {"computed": 640 - 192, "cached": 192, "failed": 0}  # three batches of 64 kept


def test_the_writer_commits_when_its_time_or_rows_are_up_and_on_the_way_out(tmp_path):
    from dataexplore.embedding.cache import EmbeddingCache
    from dataexplore.embedding.writer import CacheWriter

    store = EmbeddingCache(tmp_path, "m1")
    vec = np.ones((1, 4), np.float32)
    with CacheWriter(store, None, seconds=3600, rows=3) as writer:
        for i in range(5):
            writer.add([f"k{i}"], vec)
        assert len(store) == 3 and writer.commits == 1  # three rows waiting: committed; two still buffered
    assert len(store) == 5
    with pytest.raises(KeyError):
        with CacheWriter(store, None, seconds=3600, rows=100) as writer:
            writer.add(["k5", "k6"], np.ones((2, 4), np.float32), {"k7": "not an image"})
            assert len(store) == 5
            raise KeyError("boom")
    assert len(store) == 7 and store.lookup(["k7"], 4)[1] == {"k7": "not an image"}
    with CacheWriter(store, None, seconds=0.0, rows=100) as writer:  # due at once: every add commits
        writer.add(["k8"], vec)
        assert len(store) == 8
    reused = np.full((1, 4), 0.5, np.float32)  # a buffer the caller fills again (the GPU path's pinned one)
    with CacheWriter(store, None, seconds=3600, rows=100) as writer:
        writer.add(["k9"], reused)
        reused[:] = -1.0
    np.testing.assert_array_equal(store.lookup(["k9"], 4)[0]["k9"], [0.5] * 4)


def test_an_interrupt_just_after_a_commit_keeps_the_rows_and_the_database(tmp_path):
    """Ctrl-C arriving as a commit returns: the interrupt goes through, the committed rows stay, and the
    database is not taken for a damaged one (a rollback with no open transaction is an SQLite error)."""
    from dataexplore.embedding.cache import EmbeddingCache

    store = EmbeddingCache(tmp_path, "m1")
    vec = np.ones((1, 4), np.float32)
    store.store(["a"], vec)
    real = store.conn

    class InterruptedAfterCommit:
        in_transaction = property(lambda self: real.in_transaction)

        def execute(self, sql, *args):
            out = real.execute(sql, *args)
            if sql == "COMMIT":
                raise KeyboardInterrupt
            return out

        def __getattr__(self, name):
            return getattr(real, name)

    store._conn = InterruptedAfterCommit()
    with pytest.raises(KeyboardInterrupt):
        store.store(["b"], vec)
    store._conn = real
    assert len(store) == 2 and not list(tmp_path.rglob("*.corrupt-*"))


_SCRIPT = textwrap.dedent("""
    import sys, dataexplore as dx
    emb = dx.embed(sys.argv[1], model="fashion-tiny", batch_size=int(sys.argv[2]), num_workers=int(sys.argv[3]),
                   progress=False)
    print(emb.stats["computed"], emb.stats["cached"])
""")


def _rows(db) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("sig, workers", [(signal.SIGKILL, 0), (signal.SIGINT, 0), (signal.SIGKILL, 1)])
def test_killed_run_loses_only_what_was_not_committed(cache_dir, sig, workers):
    """Killed (or interrupted) mid-run, on CPU threads (the default) and with a decoding process: what
    was committed is there and intact, and the next run computes exactly the rest."""
    source, batch = "fashion-mnist:train:30000", 256
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, source, str(batch), str(workers)], env=os.environ.copy(),
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
    procs = [subprocess.Popen([sys.executable, "-c", _SCRIPT, source, "128", "1"], env=os.environ.copy(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with sqlite3.connect(_db(cache_dir)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    after = dx.embed(source)
    assert after.stats == {"computed": 0, "cached": 6000, "failed": 0}
