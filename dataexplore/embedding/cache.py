"""On-disk caches: embeddings keyed by (model identity, image content), and content hashes.

Layout under the cache root (``platformdirs`` user cache by default, ``$DATAEXPLORE_CACHE_DIR``
or ``cache_dir=`` to change it)::

    embeddings/<model key>.sqlite   one database per model identity: vectors and decode failures
                                    (each failure with the conditions that produced it, see below)
    embeddings/<model key>/shards/<digest>.parquet
                                    Parquet shards written by the Ray engine (see below)
    filehashes.sqlite               (path, size, mtime, inode) -> content hash memo
    projections/<key>.npz           projection results (see :mod:`dataexplore.projection`)

Why SQLite: finished images are committed in transactions (atomic, survive Ctrl-C and
``kill -9``), concurrent runs on the same cache serialise their writes through SQLite's
locking, and lookups of a million keys are fast. The local engine commits every couple of
seconds rather than every batch (:class:`dataexplore.embedding.writer.CacheWriter`): a run that
is killed loses at most its uncommitted tail, which the next run computes again.
Every vector row carries a CRC32 of its key and bytes, so a damaged row is detected and
recomputed, never used; a database file that SQLite cannot read at all (truncated,
overwritten) is moved aside as ``*.corrupt-<time>`` and rebuilt.

The compute precision is not part of the key: bf16 and fp32 vectors of the same model agree to a
cosine above 0.999, and recomputing a whole dataset for that difference would waste hours.

A decode failure is stored with the **conditions** that produced it (the pixel limit, the decoder,
Pillow's version; :func:`dataexplore.core.images.decode_conditions`) and served only to a run with the
same conditions: an image refused under ``max_pixels=5000`` is decoded again once the limit is
raised. Transient failures (out of memory, an I/O error while reading, a file that vanished during
the run) and model failures (a non-finite embedding) are never stored: the next run tries again.

Images are keyed by the hash of their *content* (file bytes, or array bytes for in-memory
images), so renaming or copying a file keeps its cache entry and editing it invalidates it.
Re-reading every file on every run would be slow for large datasets, so the hash of a file is
memoised under its path, size, modification time and inode: a file that was not touched is
not read again (:func:`memo_keys`). A file without a valid memo row is read once: the local
engine hashes the bytes it decodes, in the decoding thread or worker, so the key always
belongs to the pixels that were embedded. Memo rows carry a CRC32 of all their fields, like vector rows: a damaged or
swapped row is ignored and the file hashed again.

Shards (:mod:`dataexplore.embedding.ray`) are the cache in a form any node and any tool can read: one
Parquet file per deterministic chunk of a dataset, named by the hash of the chunk's content keys,
with columns ``key`` (content hash, as above), ``vector`` (fixed-size list of float32, null where
the image failed) and ``reason`` (the failure, else null), and the model key in the file metadata.
Each is written atomically (temporary file + rename), so a shard file that exists is complete.
The database remembers which shards it holds (table ``shards``); :meth:`EmbeddingCache.ingest_shards`,
called by both engines before every lookup, loads the ones it has not seen, so shards copied from a
cluster, or left by a run that died before its last write, are reused and never recomputed.
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

from ..core.crops import CropSamples

log = logging.getLogger(__name__)
_CHUNK = 500  # keys per SQL "IN (...)" query, below SQLite's variable limit
_STAT_BLOCK = 256  # files stat'ed or hashed per task of the thread pool (a future per file costs more)


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
    #: SQLite page cache of the connection, MiB (SQLite's default is 2 MiB)
    cache_mib: int = 2

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
            conn.execute(f"PRAGMA cache_size=-{self.cache_mib * 1024}")
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


def _transaction(conn: sqlite3.Connection, body) -> None:
    """``body(conn)`` in one ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back if it fails.

    Rolled back only while the transaction is open: an interrupt (Ctrl-C) that arrives just after
    ``COMMIT`` returned must neither try a rollback (SQLite would answer "no transaction is active",
    an error :meth:`_Database.run` takes for a damaged file and moves aside) nor hide the interrupt.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        body(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:  # the error being raised matters more
                pass
        raise


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
    conditions : str
        The decode conditions of this run (:func:`dataexplore.core.images.decode_conditions`, as JSON):
        failures are stored with them and only failures stored under the same conditions are served.
    """

    schema = """
        CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL, crc INTEGER NOT NULL)
            WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS decode_failures (key TEXT PRIMARY KEY, conditions TEXT NOT NULL,
            reason TEXT NOT NULL) WITHOUT ROWID;
        DROP TABLE IF EXISTS failures;  -- before 0.2: failures without their conditions, never served
        CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS shards (name TEXT PRIMARY KEY) WITHOUT ROWID;
    """
    #: rows are ~0.6 KB and keys random: inserts touch pages all over the B-tree, which a bigger
    #: cache keeps in memory (60,000 new vectors committed in 1.5 s instead of 2.5 s)
    cache_mib = 64

    def __init__(self, root: Path, model_key: str, identity: dict | None = None, conditions: str = ""):
        super().__init__(Path(root) / "embeddings" / f"{model_key}.sqlite")
        self.identity = identity or {}
        self.conditions = conditions
        self.model_key = model_key
        self.shard_dir = shard_dir(root, model_key)

    def lookup(self, keys: list[str], dim: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Cached vectors, and failures cached under this run's conditions, for ``keys``; damaged rows
        are dropped and deleted."""

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
                failed.update(conn.execute(f"SELECT key, reason FROM decode_failures WHERE conditions = ? "
                                           f"AND key IN ({marks})", [self.conditions, *chunk]))
            return found, failed, bad

        found, failed, bad = self.run(query)
        if bad:
            log.warning("%d damaged cache rows in %s will be recomputed", len(bad), self.path)
            self.run(lambda c: c.executemany("DELETE FROM vectors WHERE key = ?", [(k,) for k in bad]))
        return found, failed

    def store(self, keys: list[str], vectors: np.ndarray, failures: dict[str, str] | None = None,
              shard: str | None = None, conditions: str | None = None) -> None:
        """Write one batch of vectors (and failures) in a single transaction.

        ``shard`` names the shard file these rows come from, recorded in the same transaction so
        :meth:`ingest_shards` does not load it again. Failures are stored under ``conditions``
        (default: this cache's); a vector replaces an older failure of the same image.
        """
        conditions = self.conditions if conditions is None else conditions
        raw = np.ascontiguousarray(vectors, dtype="<f4").tobytes()
        step = len(raw) // len(keys) if len(keys) else 0
        rows = []
        for i in sorted(range(len(keys)), key=keys.__getitem__):  # in key order: B-tree pages in sequence
            key, blob = keys[i], raw[i * step:(i + 1) * step]
            rows.append((key, blob, zlib.crc32(blob, zlib.crc32(key.encode()))))  # = crc32(key + blob)

        def write(conn):
            identity = json.dumps(self.identity, sort_keys=True)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('identity', ?)", (identity,))
            conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)
            # a vector replaces an older failure; most caches hold none, so skip the per-row deletes then
            if rows and conn.execute("SELECT 1 FROM decode_failures LIMIT 1").fetchone():
                conn.executemany("DELETE FROM decode_failures WHERE key = ?", [(r[0],) for r in rows])
            if failures:
                conn.executemany("INSERT OR REPLACE INTO decode_failures VALUES (?, ?, ?)",
                                 [(k, conditions, r) for k, r in failures.items()])
            if shard is not None:
                conn.execute("INSERT OR IGNORE INTO shards VALUES (?)", (shard,))

        self.run(lambda conn: _transaction(conn, write))

    def __len__(self) -> int:
        return self.run(lambda c: c.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def ingest_shards(self, dim: int) -> int:
        """Load every shard file of this model that the database does not hold yet; return how many.

        A shard that cannot be read, or that belongs to another model or dimension, is moved aside
        as ``*.corrupt-<time>`` (its rows will be recomputed) and a warning is logged.
        """
        try:
            names = sorted(e.name for e in os.scandir(self.shard_dir)
                           if e.name.endswith(".parquet") and not e.name.startswith("."))
        except FileNotFoundError:
            return 0
        if not names:
            return 0
        known = set(self.run(lambda c: [r[0] for r in c.execute("SELECT name FROM shards")]))
        loaded = 0
        for name in names:
            if name in known:
                continue
            path = self.shard_dir / name
            try:
                keys, vectors, reasons, conditions = read_shard(path, self.model_key, dim, with_conditions=True)
            except FileNotFoundError:  # another process moved it aside meanwhile
                continue
            except ShardError as exc:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                log.warning("shard %s is unusable (%s); moved aside, its images will be recomputed", path, exc)
                try:
                    os.replace(path, f"{path}.corrupt-{stamp}")
                except OSError:
                    pass
                continue
            ok = np.array([r is None for r in reasons], dtype=bool)
            self.store([k for k, g in zip(keys, ok) if g], vectors[ok],
                       {k: r for k, r in zip(keys, reasons) if r is not None}, shard=name, conditions=conditions)
            loaded += 1
        return loaded


SHARD_FORMAT = "1"


class ShardError(ValueError):
    """A shard file that cannot be used (unreadable, another model, wrong dimension)."""


def shard_dir(root: str | os.PathLike, model_key: str) -> Path:
    """Folder of one model's Parquet shards: ``<root>/embeddings/<model key>/shards``."""
    return Path(root) / "embeddings" / model_key / "shards"


def shard_name(keys: list[str | None]) -> str:
    """File name of the shard holding these rows: a hash of their content keys, in order.

    The same images in the same order give the same name, so a rerun finds the shard it wrote
    before; ``None`` (an unreadable file) counts as a key, so such rows change the name too.
    """
    h = hashlib.blake2b(digest_size=16)
    for key in keys:
        h.update((key or "-").encode() + b"\n")
    return f"{h.hexdigest()}.parquet"


def write_shard(path: str | os.PathLike, keys: list[str], vectors: np.ndarray, reasons: list[str | None],
                model_key: str, identity: dict | None = None, conditions: str = "") -> Path:
    """Write one shard atomically: ``key``, ``vector`` (null where ``reasons`` has one), ``reason``.

    Parameters
    ----------
    path : path
        Target file, normally ``shard_dir(root, model_key) / shard_name(keys_of_the_chunk)``.
    keys : list of str
        Content keys, unique.
    vectors : numpy.ndarray
        ``len(keys)×D`` float32; rows with a reason are ignored.
    reasons : list of (str or None)
        The failure of each key, ``None`` where it has a vector.
    model_key, identity
        Stored in the file metadata and checked when the shard is read.
    conditions : str
        The decode conditions the failures were produced under (see :class:`EmbeddingCache`).

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.parquet"
    >>> _ = write_shard(p, ["a", "b"], np.eye(2, dtype=np.float32), [None, "not an image"], "m1")
    >>> keys, vecs, reasons = read_shard(p, "m1", 2)
    >>> keys, reasons, vecs[0].tolist()
    (['a', 'b'], [None, 'not an image'], [1.0, 0.0])
    """
    import pyarrow as pa

    from ..core.io import write_parquet_atomic

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    failed = np.array([r is not None for r in reasons], dtype=bool)
    values = pa.array(np.where(failed[:, None], 0, vectors).reshape(-1), pa.float32())
    table = pa.table({
        "key": pa.array(list(keys), pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(values, dim, mask=pa.array(failed)),
        "reason": pa.array(list(reasons), pa.string()),
    })
    meta = {"dataexplore.shard_format": SHARD_FORMAT, "dataexplore.model_key": model_key,
            "dataexplore.identity": json.dumps(identity or {}, sort_keys=True),
            "dataexplore.conditions": conditions}
    return write_parquet_atomic(table, path, meta)


def read_shard(path: str | os.PathLike, model_key: str, dim: int, *, with_conditions: bool = False):
    """Read a shard written by :func:`write_shard`: keys, ``N×dim`` vectors (zeros where failed), reasons
    (and, with ``with_conditions``, the decode conditions of its failures; ``""`` for older shards).

    Raises
    ------
    ShardError
        Unreadable file, another model's shard, another dimension, or non-finite vectors.
    FileNotFoundError
        The file does not exist.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    try:
        table = pq.read_table(path, columns=["key", "vector", "reason"])
    except (pa.ArrowException, OSError, KeyError) as exc:
        raise ShardError(f"not a readable shard ({exc})") from None
    meta = table.schema.metadata or {}
    found = meta.get(b"dataexplore.model_key", b"").decode()
    if found != model_key:
        raise ShardError(f"shard of model {found or '?'}, expected {model_key}")
    col = table.column("vector").combine_chunks()
    if not pa.types.is_fixed_size_list(col.type) or col.type.list_size != dim:
        raise ShardError(f"vectors of type {col.type}, expected {dim} float32 values")
    keys = table.column("key").to_pylist()
    reasons = table.column("reason").to_pylist()
    valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if any(k is None for k in keys) or any(v != (r is None) for v, r in zip(valid, reasons)):
        raise ShardError("rows without a key, or with both a vector and a failure")
    vectors = np.zeros((len(keys), dim), np.float32)
    kept = col.filter(pa.array(valid)).flatten()
    vectors[valid] = np.asarray(kept.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
    if not np.isfinite(vectors).all():
        raise ShardError("non-finite vectors")
    if with_conditions:
        return keys, vectors, reasons, meta.get(b"dataexplore.conditions", b"").decode()
    return keys, vectors, reasons


class FileHashes(_Database):
    """Memo of file content hashes, valid while (size, mtime_ns, inode) are unchanged.

    Every row carries a CRC32 of all its fields: a row whose hash was altered or swapped with
    another's fails the check, is ignored and deleted, and the file is hashed again.
    """

    schema = """
        CREATE TABLE IF NOT EXISTS memo (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
            inode INTEGER NOT NULL, hash TEXT NOT NULL, crc INTEGER NOT NULL) WITHOUT ROWID;
        DROP TABLE IF EXISTS hashes;  -- before 0.2: rows without a checksum (files are hashed once again)
    """

    def __init__(self, root: Path):
        super().__init__(Path(root) / "filehashes.sqlite")

    @staticmethod
    def _crc(path: str, size: int, mtime: int, inode: int, h: str) -> int:
        return zlib.crc32(f"{path}\0{size}\0{mtime}\0{inode}\0{h}".encode("utf-8", "surrogatepass"))

    def get(self, paths: list[str]) -> dict[str, tuple[int, int, int, str]]:
        def query(conn):
            out, bad = {}, []
            for i in range(0, len(paths), _CHUNK):
                chunk = paths[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for path, size, mtime, inode, h, crc in conn.execute(
                    f"SELECT path, size, mtime_ns, inode, hash, crc FROM memo WHERE path IN ({marks})", chunk
                ):
                    if self._crc(path, size, mtime, inode, h) != crc:
                        bad.append(path)
                        continue
                    out[path] = (size, mtime, inode, h)
            return out, bad

        found, bad = self.run(query)
        if bad:
            log.warning("%d damaged file-hash memo rows in %s; those files are hashed again", len(bad), self.path)
            self.run(lambda c: c.executemany("DELETE FROM memo WHERE path = ?", [(p,) for p in bad]))
        return found

    def put(self, rows: list[tuple[str, int, int, int, str]]) -> None:
        """Store ``(path, size, mtime_ns, inode, hash)`` rows in one transaction."""
        if not rows:
            return
        checked = [(*r, self._crc(*r)) for r in sorted(rows)]

        self.run(lambda conn: _transaction(
            conn, lambda c: c.executemany("INSERT OR REPLACE INTO memo VALUES (?, ?, ?, ?, ?, ?)", checked)))


def hash_bytes(data: bytes) -> str:
    """Content hash used as a cache key (BLAKE2b, 128 bits, hex)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def hash_array(arr: np.ndarray) -> str:
    """Content hash of one in-memory image, including its shape and dtype."""
    h = hashlib.blake2b(f"{arr.dtype.str}{arr.shape}".encode(), digest_size=16)
    h.update(np.ascontiguousarray(arr).data)
    return h.hexdigest()


#: ``(path, size, mtime_ns, inode)`` of a file whose content key is still to be computed
FileStat = tuple[str, int, int, int]


def memo_keys(samples, memo: FileHashes | None = None, threads: int = 8
              ) -> tuple[list[str | None], dict[int, FileStat | None]]:
    """The content keys known without reading a file: in-memory images are hashed, files are looked up
    in the memo under their current path, size, modification time and inode.

    Returns
    -------
    keys : list of str or None
        One key per row; ``None`` where the file must be read to know it.
    pending : dict
        Row -> ``(path, size, mtime_ns, inode)`` for the rows whose key is ``None`` (what the memo row
        will record once the file is hashed), or ``None`` where the file could not be stat'ed (it is
        missing or unreadable: reading it will say why).
    """
    n = len(samples)
    if isinstance(samples, CropSamples):  # keyed by their image's content, box and margin (core.crops)
        crop_keys, failed = content_keys(samples, memo, threads)
        return crop_keys, {row: None for row in failed}
    if samples.images is not None:
        return [hash_array(samples.images[i]) for i in range(n)], {}
    paths = [p if p is None else os.path.abspath(p) for p in samples.table["filepath"]]
    known = memo.get([p for p in paths if p is not None]) if memo is not None else {}
    keys: list[str | None] = [None] * n
    pending: dict[int, FileStat | None] = {}

    def block(start: int) -> None:
        for row in range(start, min(n, start + _STAT_BLOCK)):
            path = paths[row]
            try:
                st = os.stat(path) if path is not None else None
            except OSError:
                st = None
            if path is None or st is None:
                pending[row] = None
                continue
            hit = known.get(path)
            if hit is not None and hit[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
                keys[row] = hit[3]
            else:
                pending[row] = (path, st.st_size, st.st_mtime_ns, st.st_ino)

    with ThreadPoolExecutor(max_workers=threads) as pool:  # stat calls release the GIL (and wait on network disks)
        list(pool.map(block, range(0, n, _STAT_BLOCK)))
    return keys, dict(sorted(pending.items()))


def content_keys(samples, memo: FileHashes | None = None, threads: int = 8) -> tuple[list[str | None], dict[int, str]]:
    """Content hash of every sample, reading the files the memo does not know (and memoising them).

    Returns
    -------
    keys : list of str or None
        One key per row; ``None`` where the file could not be read.
    failures : dict
        Row -> reason for the rows whose key is ``None`` (``"missing file"``, ...).
    """
    from ..core.images import DecodeError

    if isinstance(samples, CropSamples):  # an image read once keys all its crops; unreadable: all fail
        used = np.unique(samples.parent_rows)  # only the images that have crops here
        keys_used, failed_used = content_keys(samples.parent.subset(used), memo, threads)
        image_keys: list[str | None] = [None] * len(samples.parent)
        image_failures: dict[int, str] = {}
        for i, row in enumerate(used):
            image_keys[int(row)] = keys_used[i]
            if i in failed_used:
                image_failures[int(row)] = failed_used[i]
        crop_keys = samples.keys_from(image_keys)
        return crop_keys, {row: image_failures[int(p)] for row, p in enumerate(samples.parent_rows)
                           if crop_keys[row] is None}
    keys, pending = memo_keys(samples, memo, threads)
    failures: dict[int, str] = {}
    fresh: list[tuple[str, int, int, int, str]] = []

    def block(rows: list[int]) -> None:
        for row in rows:
            try:
                keys[row] = h = hash_bytes(samples.read(row))
            except DecodeError as exc:
                failures[row] = str(exc)
                continue
            stat = pending[row]
            if stat is not None:
                fresh.append((*stat, h))

    rows = list(pending)
    with ThreadPoolExecutor(max_workers=threads) as pool:  # hashlib and file reads release the GIL
        list(pool.map(block, [rows[i:i + _STAT_BLOCK] for i in range(0, len(rows), _STAT_BLOCK)]))
    if memo is not None:
        memo.put(fresh)
    return keys, dict(sorted(failures.items()))
