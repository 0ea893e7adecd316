"""What every engine shares: one run's setup (samples, model, content keys, cache lookups), its result,
and the small helpers both engines compute with.

:func:`execute` is the whole of an embedding call apart from the computing itself::

    engine.start(device)        check the engine's options, connect (Ray); where the driver's model lives
    load(source), load_model    the samples and the model (its identity keys the cache)
    Run.open                    content keys known without reading files, cache lookups, what is left
    engine.compute(run)         the engine fills run.vectors / run.failures / run.stats for run.todo
    run.result()                the Embeddings

An engine is any object with the four members of :class:`Engine`; :data:`dataexplore.embedding.local.ENGINES`
names them. Engines import this module, never each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ..core.crops import CropSamples
from ..core.embeddings import Embeddings
from ..core.images import DEFAULT_MAX_PIXELS


class Engine(Protocol):
    """How an engine plugs into :func:`execute`."""

    @property
    def decoder(self) -> str:
        """The decoder named in the conditions cached decode failures are valid under."""

    @property
    def hashes_while_decoding(self) -> bool:
        """Whether :meth:`compute` hashes files as it decodes them (``run.pending``); if not, every
        file's content key is computed before :meth:`compute` (the Ray engine names its shards by them)."""

    def start(self, device: Any) -> Any:
        """Check the options, connect; return the device the driver loads the model on."""

    def compute(self, run: "Run") -> None:
        """Embed ``run.todo`` into ``run.vectors`` / ``run.failures``, count in ``run.stats``, fill the cache."""


@dataclass
class Run:
    """The state of one embedding call, shared by the driver and its engine.

    Attributes
    ----------
    samples : Samples
    clip : ClipModel
        The model as loaded by the driver (its identity keys the cache).
    keys : list of (str or None)
        Content key per row; ``None`` where it is not known yet (``pending``) or the file is unreadable.
    pending : dict
        Rows whose key is computed from the bytes the engine decodes -> ``(path, size, mtime_ns, inode)``
        for the file-hash memo, or ``None`` when the file could not be stat'ed.
    vectors : numpy.ndarray
        ``N×D`` float32 output, NaN where nothing is known yet.
    failures : dict
        Row -> reason.
    store, memo : EmbeddingCache, FileHashes or None
        The caches (``None`` with ``cache=False``).
    conditions : str
        Decode conditions failures are cached under (:func:`failure_conditions`).
    stats : dict
        ``computed``, ``cached``, ``failed`` (and what an engine adds).
    device, batch_size, precision, max_pixels, progress
        The call's settings.
    """

    samples: Any
    clip: Any
    keys: list
    pending: dict
    vectors: np.ndarray
    failures: dict
    store: Any
    memo: Any
    conditions: str
    stats: dict
    device: Any = None
    batch_size: int | None = None
    precision: str = "auto"
    max_pixels: int = DEFAULT_MAX_PIXELS
    progress: bool = True
    cached_rows: set = field(default_factory=set)

    @classmethod
    def open(cls, samples, clip, *, cache: bool, cache_dir, conditions: str, hash_all: bool, **settings) -> "Run":
        """Open the caches, find every key known without reading a file (all keys with ``hash_all``),
        and fill what the cache holds."""
        from .cache import EmbeddingCache, FileHashes, cache_root, content_keys, memo_keys

        root = cache_root(cache_dir)
        store = EmbeddingCache(root, clip.key, clip.identity, conditions) if cache else None
        memo = FileHashes(root) if cache else None
        try:
            failures: dict[int, str] = {}
            pending: dict = {}
            if hash_all:
                keys, failures = content_keys(samples, memo)
            else:
                keys, pending = memo_keys(samples, memo)
            vectors = np.full((len(samples), clip.embed_dim), np.nan, dtype=np.float32)
            run = cls(samples, clip, keys, pending, vectors, failures, store, memo, conditions,
                      {"computed": 0, "cached": 0, "failed": 0}, **settings)
            run.cached_rows = from_cache(store, keys, vectors, failures)
        except BaseException:
            _close(store, memo)
            raise
        run.stats["cached"] = len(run.cached_rows)
        return run

    @property
    def todo(self) -> np.ndarray:
        """Rows to compute: a known key that is not cached, or a key still to be computed."""
        rows = np.array([r for r, k in enumerate(self.keys)
                         if (k is not None and r not in self.cached_rows) or r in self.pending], dtype=np.int64)
        order = getattr(self.samples, "read_order", None)  # object crops: grouped by image (core.crops)
        return order(rows) if order is not None else rows

    def result(self) -> Embeddings:
        """The :class:`Embeddings` of the run (see :func:`make_result`)."""
        self.stats["failed"] = len(self.failures)
        return make_result(self.samples, self.clip, self.vectors, self.failures, self.stats)

    def close(self) -> None:
        _close(self.store, self.memo)


def _close(*databases) -> None:
    for db in databases:
        if db is not None:
            db.close()


def execute(engine: Engine, source: Any, model: str = "fashion-tiny", pretrained: str | None = None, *,
            device: Any = "auto", batch_size: int | None = None, precision: str = "auto", cache: bool = True,
            cache_dir: str | os.PathLike | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
            progress: bool = True) -> Embeddings:
    """One embedding call on ``engine``; the parameters are :func:`dataexplore.embed`'s."""
    from ..models import load_model
    from ..sources import load

    dev = engine.start(device)
    samples = load(source)
    if isinstance(samples, CropSamples):  # object crops decode their images under this call's limit
        samples.max_pixels = int(max_pixels)
    clip = load_model(model, pretrained, dev)
    run = Run.open(samples, clip, cache=cache, cache_dir=cache_dir,
                   conditions=failure_conditions(max_pixels, engine.decoder),
                   hash_all=not engine.hashes_while_decoding, device=dev, batch_size=batch_size,
                   precision=precision, max_pixels=max_pixels, progress=progress)
    try:
        engine.compute(run)
    finally:
        run.close()
    return run.result()


def failure_conditions(max_pixels: int, decoder: str) -> str:
    """The conditions a cached decode failure is valid under, as JSON (see :mod:`dataexplore.embedding.cache`).

    The same for both engines, so a failure recorded by a Ray run is served to a local one. Model
    failures (a non-finite embedding, which may depend on the precision) are never cached."""
    import json

    from ..core.images import decode_conditions

    return json.dumps(decode_conditions(max_pixels, decoder), sort_keys=True)


def from_cache(store, keys: list[str | None], vectors: np.ndarray, failures: dict[int, str]) -> set[int]:
    """Fill ``vectors``/``failures`` in place from the cache (and its shards); return the rows found."""
    cached_rows: set[int] = set()
    if store is None:
        return cached_rows
    dim = vectors.shape[1]
    store.ingest_shards(dim)  # shards written by the Ray engine, here or on a cluster
    wanted = sorted({k for k in keys if k is not None})
    found, failed = store.lookup(wanted, dim)
    for row, key in enumerate(keys):
        if key in found:
            vectors[row] = found[key]
            cached_rows.add(row)
        elif key in failed:
            failures[row] = failed[key]
            cached_rows.add(row)
    return cached_rows


def make_result(samples, clip, vectors: np.ndarray, failures: dict[int, str], stats: dict) -> Embeddings:
    """The :class:`Embeddings` of a run: vectors of the rows that did not fail, failures as a table."""
    n = len(samples)
    ok = np.array([r for r in range(n) if r not in failures], dtype=np.int64)
    ids = samples.ids
    fail_rows = sorted(failures)
    failure_table = pd.DataFrame(
        {"id": [ids[r] for r in fail_rows], "row": np.array(fail_rows, dtype=np.int64),
         "reason": [failures[r] for r in fail_rows]}
    )
    return Embeddings(ids=ids[ok], vectors=vectors[ok], rows=ok, samples=samples,
                      model=dict(clip.identity, name=clip.name, pretrained=clip.pretrained, key=clip.key),
                      failures=failure_table, stats=stats)


def encode(tower, pixels):
    """One forward pass of the image tower: L2-normalised float32 features (on the tower's device)."""
    import torch

    return torch.nn.functional.normalize(tower(pixels).float(), dim=-1)


def cpu_count() -> int:
    """Cores this process may use (respects affinity masks and containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cpu_batch_size(size: int) -> int:
    """Images per forward pass on a CPU core: about 64 at 224 px, more for smaller inputs (the same
    work per batch), at most 256 (larger batches of small images run slower: their activations
    leave the core's caches)."""
    work = 64 * (224 / size) ** 2
    return int(min(256, max(16, 2 ** int(np.log2(work)))))
