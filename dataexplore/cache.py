"""On-disk caches: embeddings keyed by (model identity, image content), and content hashes.

Layout under the cache root (``platformdirs`` user cache by default, ``$DATAEXPLORE_CACHE_DIR``
or ``cache_dir=`` to change it)::

    embeddings/<model key>.sqlite   one database per model identity: vectors and decode failures
    filehashes.sqlite               (path, size, mtime, inode) -> content hash memo
    projections/<key>.npz           projection results (see :mod:`dataexplore.projection`)

Why SQLite: every batch is committed in one transaction (atomic, survives Ctrl-C and
``kill -9``; at most the batch in flight is lost), concurrent runs on the same cache
serialise their writes through SQLite's locking, and lookups of a million keys are fast.
Every vector row carries a CRC32 of its key and bytes, so a damaged row is detected and
recomputed, never used; a database file that SQLite cannot read at all (truncated,
overwritten) is moved aside as ``*.corrupt-<time>`` and rebuilt.

The compute precision is not part of the key: bf16 and fp32 vectors of the same model agree to a
cosine above 0.999, and recomputing a whole dataset for that difference would waste hours.

Images are keyed by the hash of their *content* (file bytes, or array bytes for in-memory
images), so renaming or copying a file keeps its cache entry and editing it invalidates it.
Re-reading every file on every run would be slow for large datasets, so the hash of a file is
memoised under its path, size, modification time and inode: a file that was not touched is
not read again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
_CHUNK = 500  # keys per SQL "IN (...)" query, below SQLite's variable limit


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$DATAEXPLORE_CACHE_DIR``, else the user cache."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("DATAEXPLORE_CACHE_DIR"):
        return Path(os.environ["DATAEXPLORE_CACHE_DIR"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("dataexplore"))


class _Database:
    """A SQLite file that is moved aside and recreated if it turns out to be unreadable."""

    schema: str = ""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self._conn = self._open()
            except sqlite3.DatabaseError as exc:
                self._quarantine(exc)
                self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=120, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable across process crashes
            conn.executescript(self.schema)
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _quarantine(self, exc: Exception) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                try:
                    os.replace(src, f"{src}.corrupt-{stamp}")
                except OSError:
                    pass
        log.warning("cache file %s was unreadable (%s); moved aside, recomputing", self.path, exc)

    def run(self, fn):
        """Run ``fn(conn)``; if the file is damaged, move it aside and run once more on a fresh one."""
        try:
            return fn(self.conn)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            self._quarantine(exc)
            return fn(self.conn)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class EmbeddingCache(_Database):
    """Vectors and per-image decode failures of one model, keyed by content hash.

    Parameters
    ----------
    root : path
        Cache root (see :func:`cache_root`).
    model_key : str
        Short hash of the model identity; one database file per model.
    identity : dict
        Stored in the file for humans and tools (``dataexplore`` never trusts it for lookups).
    """

    schema = """
        CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL, crc INTEGER NOT NULL)
            WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS failures (key TEXT PRIMARY KEY, reason TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """

    def __init__(self, root: Path, model_key: str, identity: dict | None = None):
        super().__init__(Path(root) / "embeddings" / f"{model_key}.sqlite")
        self.identity = identity or {}

    def lookup(self, keys: list[str], dim: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Cached vectors and cached failures for ``keys``; damaged rows are dropped and deleted."""

        def query(conn):
            found, failed, bad = {}, {}, []
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, blob, crc in conn.execute(f"SELECT key, vec, crc FROM vectors WHERE key IN ({marks})", chunk):
                    if len(blob) != 4 * dim or zlib.crc32(key.encode() + blob) != crc:
                        bad.append(key)
                        continue
                    vec = np.frombuffer(blob, dtype="<f4")
                    if not np.isfinite(vec).all():
                        bad.append(key)
                        continue
                    found[key] = vec
                failed.update(conn.execute(f"SELECT key, reason FROM failures WHERE key IN ({marks})", chunk))
            return found, failed, bad

        found, failed, bad = self.run(query)
        if bad:
            log.warning("%d damaged cache rows in %s will be recomputed", len(bad), self.path)
            self.run(lambda c: c.executemany("DELETE FROM vectors WHERE key = ?", [(k,) for k in bad]))
        return found, failed

    def store(self, keys: list[str], vectors: np.ndarray, failures: dict[str, str] | None = None) -> None:
        """Write one batch of vectors (and failures) in a single transaction."""
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        rows = []
        for key, vec in zip(keys, vectors):
            blob = vec.tobytes()
            rows.append((key, blob, zlib.crc32(key.encode() + blob)))

        def write(conn):
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('identity', ?)", (json.dumps(self.identity, sort_keys=True),)
                )
                conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)
                if failures:
                    conn.executemany("INSERT OR REPLACE INTO failures VALUES (?, ?)", list(failures.items()))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        self.run(write)

    def __len__(self) -> int:
        return self.run(lambda c: c.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])


class FileHashes(_Database):
    """Memo of file content hashes, valid while (size, mtime_ns, inode) are unchanged."""

    schema = """
        CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,
            inode INTEGER, hash TEXT NOT NULL) WITHOUT ROWID;
    """

    def __init__(self, root: Path):
        super().__init__(Path(root) / "filehashes.sqlite")

    def get(self, paths: list[str]) -> dict[str, tuple[int, int, int, str]]:
        def query(conn):
            out = {}
            for i in range(0, len(paths), _CHUNK):
                chunk = paths[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for path, size, mtime, inode, h in conn.execute(
                    f"SELECT path, size, mtime_ns, inode, hash FROM hashes WHERE path IN ({marks})", chunk
                ):
                    out[path] = (size, mtime, inode, h)
            return out

        return self.run(query)

    def put(self, rows: list[tuple[str, int, int, int, str]]) -> None:
        if rows:
            self.run(lambda c: c.executemany("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?)", rows))


def hash_bytes(data: bytes) -> str:
    """Content hash used as a cache key (BLAKE2b, 128 bits, hex)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def hash_array(arr: np.ndarray) -> str:
    """Content hash of one in-memory image, including its shape and dtype."""
    h = hashlib.blake2b(f"{arr.dtype.str}{arr.shape}".encode(), digest_size=16)
    h.update(np.ascontiguousarray(arr).data)
    return h.hexdigest()


def content_keys(samples, memo: FileHashes | None = None, threads: int = 8) -> tuple[list[str | None], dict[int, str]]:
    """Content hash of every sample.

    Returns
    -------
    keys : list of str or None
        One key per row; ``None`` where the file could not be read.
    failures : dict
        Row -> reason for the rows whose key is ``None`` (``"missing file"``, ...).
    """
    from .images import DecodeError

    n = len(samples)
    if samples.images is not None:
        return [hash_array(samples.images[i]) for i in range(n)], {}

    paths = [p if p is None else os.path.abspath(p) for p in samples.table["filepath"]]
    known = memo.get([p for p in paths if p is not None]) if memo is not None else {}
    keys: list[str | None] = [None] * n
    failures: dict[int, str] = {}
    fresh: list[tuple[str, int, int, int, str]] = []

    def one(row: int):
        path = paths[row]
        try:
            st = os.stat(path) if path is not None else None
        except OSError:
            st = None
        if st is not None:
            hit = known.get(path)
            if hit is not None and hit[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
                return row, hit[3], None, None
        try:
            data = samples.read(row)
        except DecodeError as exc:
            return row, None, str(exc), None
        h = hash_bytes(data)
        return row, h, None, (path, st.st_size, st.st_mtime_ns, st.st_ino, h) if st else None

    with ThreadPoolExecutor(max_workers=threads) as pool:  # hashlib and file reads release the GIL
        for row, key, reason, memo_row in pool.map(one, range(n), chunksize=64):
            keys[row] = key
            if reason is not None:
                failures[row] = reason
            if memo_row is not None:
                fresh.append(memo_row)
    if memo is not None:
        memo.put(fresh)
    return keys, failures
