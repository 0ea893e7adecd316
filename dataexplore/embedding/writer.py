"""Batched cache commits: finished images are written every couple of seconds, not every batch.

A commit is one SQLite transaction for the vectors and failures (and one for the file-hash memo);
committing every batch of a fast model on small files costs more than the model. A
:class:`CacheWriter` buffers finished rows and commits them when :data:`COMMIT_SECONDS` have
passed since the last commit or :data:`COMMIT_ROWS` rows are waiting, and once more when the run
ends, also when it ends with an exception or Ctrl-C. A process killed outright (``kill -9``, a
power cut) loses only what was not committed yet: at most the last :data:`COMMIT_SECONDS` of
work, which the next run computes again. What was committed is never lost or half written.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

log = logging.getLogger(__name__)

#: Commit when this many seconds have passed since the last commit ...
COMMIT_SECONDS = 2.0
#: ... or when this many finished rows are waiting, whichever comes first.
COMMIT_ROWS = 16384


class CacheWriter:
    """Buffer of finished rows for an :class:`~dataexplore.embedding.cache.EmbeddingCache` and its
    :class:`~dataexplore.embedding.cache.FileHashes` memo, committed in batches.

    Parameters
    ----------
    store : EmbeddingCache or None
        Where vectors and lasting decode failures go; ``None``: nothing is written.
    memo : FileHashes or None
        Where the content hashes computed while decoding go.
    seconds, rows : float, int
        Commit when ``seconds`` have passed since the last commit or ``rows`` rows wait.

    Notes
    -----
    Used as a context manager: leaving the block commits what is buffered, whatever the reason
    for leaving. :attr:`lock` serialises every use of the two databases' connections, so worker
    threads may call :meth:`lookup` while the driver thread adds and commits.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from dataexplore.embedding.cache import EmbeddingCache
    >>> store = EmbeddingCache(tempfile.mkdtemp(), "m1")
    >>> with CacheWriter(store, None) as writer:
    ...     writer.add(["k1"], np.ones((1, 2), np.float32))
    >>> sorted(store.lookup(["k1"], 2)[0])
    ['k1']
    """

    def __init__(self, store, memo, seconds: float | None = None, rows: int | None = None):
        self.store, self.memo = store, memo
        self.seconds = COMMIT_SECONDS if seconds is None else seconds
        self.rows = COMMIT_ROWS if rows is None else rows
        self.lock = threading.Lock()
        self.commits = 0
        self._keys: list[str] = []
        self._vectors: list[np.ndarray] = []
        self._failures: dict[str, str] = {}
        self._memo: list[tuple[str, int, int, int, str]] = []
        self._waiting = 0
        self._last = time.monotonic()

    def __enter__(self) -> "CacheWriter":
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if kind is None:
            self.commit()
            return
        try:  # keep what was finished before the error; never hide the error itself
            self.commit()
        except Exception as err:
            log.warning("could not commit the finished images after %s: %s", kind.__name__, err)

    def add(self, keys: list[str], vectors: np.ndarray | None, failures: dict[str, str] | None = None) -> None:
        """Buffer vectors (``len(keys)×D``; ``None`` with no keys) and lasting failures (key -> reason);
        commit if it is time."""
        if self.store is not None:
            if len(keys):
                self._keys.extend(keys)
                self._vectors.append(np.array(vectors, dtype=np.float32))  # a copy: callers reuse their buffers
            if failures:
                self._failures.update(failures)
            self._waiting += len(keys) + len(failures or ())
        self.maybe_commit()

    def add_hashes(self, rows: list[tuple[str, int, int, int, str]]) -> None:
        """Buffer file-hash memo rows ``(path, size, mtime_ns, inode, hash)``."""
        if self.memo is not None:
            self._memo.extend(rows)

    def maybe_commit(self) -> None:
        """Commit if :attr:`seconds` have passed since the last commit or :attr:`rows` rows wait."""
        if self._waiting >= self.rows or time.monotonic() - self._last >= self.seconds:
            self.commit()

    def commit(self) -> None:
        """Write everything buffered: one transaction for the vectors and failures, one for the memo.

        The buffers are emptied only once written: a commit that fails or is interrupted is tried
        again on the way out (writing a row twice is harmless: the same key, the same vector)."""
        with self.lock:
            if self._keys or self._failures:
                dim = self._vectors[0].shape[1] if self._vectors else 0
                vectors = np.concatenate(self._vectors) if self._vectors else np.zeros((0, dim), np.float32)
                self.store.store(self._keys, vectors, self._failures)
                self.commits += 1
                self._keys, self._vectors, self._failures = [], [], {}
            if self._memo:
                self.memo.put(self._memo)
                self._memo = []
            self._waiting = 0
            self._last = time.monotonic()

    def lookup(self, keys: list[str], dim: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """:meth:`EmbeddingCache.lookup` under :attr:`lock`; nothing found when there is no cache."""
        if self.store is None or not keys:
            return {}, {}
        with self.lock:
            return self.store.lookup(keys, dim)
