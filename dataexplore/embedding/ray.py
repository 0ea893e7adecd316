"""Distributed embedding on Ray Data: ``dx.embed(source, engine="ray")``.

The computation is the local engine's (:mod:`dataexplore.embedding.inprocess`), spread over a Ray cluster::

    samples (row + absolute file path, or row into in-memory images put once in the object store)
      -> map_batches(decode)              CPU tasks: read, decode, resize+crop to the model's input
                                          (the local engine's ImageDataset/collate), uint8 3×S×S
      -> map_batches(Embedder, ActorPoolStrategy(size=A), num_gpus=1 on GPU clusters)
                                          actors that load the model once; normalise and encode
                                          exactly as the local engine does (to_model_input, encode)
      -> driver                           vectors stream back; finished shards are written

On a CPU-only cluster, where decoding and embedders ask for the same resources, Ray Data fuses the
two steps into the actors (decoding between forward passes, as the local engine does on CPUs).
The vectors come back to the driver in any case, since it returns them all in an
:class:`~dataexplore.core.embeddings.Embeddings`; writing the shards there costs no extra transfer.

Every image is one row of a deterministic **shard**: rows ``[i*shard_size, (i+1)*shard_size)`` of the
source, in source order. When the last image of a shard comes back, the driver writes the shard
as one Parquet file and then stores its rows in the model's SQLite cache, in that order::

    <cache root>/embeddings/<model key>.sqlite                 the cache both engines read
    <cache root>/embeddings/<model key>/shards/<digest>.parquet one file per finished shard

``<digest>`` hashes the content keys of the shard's images, so the same data gives the same file
names. A shard holds ``key`` (the content hash the cache is keyed by), ``vector`` (float32, null
where the image failed) and ``reason`` (why it failed), with the model key in its metadata
(:func:`dataexplore.embedding.cache.write_shard`). Files are written atomically (temporary file + rename):
a shard file that exists is complete.

Only the driver writes: shards and SQLite live where the driver runs, so no database is ever
shared over a network filesystem, and workers need no access to the cache. Workers need the images
(shared storage for file sources) and dataexplore with the model (a weights file at the same path
on every node); each embedder checks that its model has the driver's identity.

**Resuming.** A run that dies loses only the shards in flight. The next run first loads any shard
files the database does not hold yet (also done by the local engine, so shards copied from a
cluster are reused), then computes only the images still missing; their shards are written, the
complete ones are counted as reused. ``dx.embed(..., engine="local")`` afterwards computes nothing.

Examples
--------
>>> import dataexplore as dx
>>> emb = dx.embed("fashion-mnist:test:2000", engine="ray")  # doctest: +SKIP
>>> emb.stats  # doctest: +SKIP
{'computed': 2000, 'cached': 0, 'failed': 0, 'shards': {'total': 1, 'reused': 0, 'written': 1}}
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..core.crops import CropSamples
from ..core.embeddings import Embeddings
from ..core.errors import DataexploreError, require
from .plan import Run, cpu_batch_size, encode, execute

#: Images per shard: the unit that is written, reused and resumed.
DEFAULT_SHARD_SIZE = 4096


def connect(address: str | None = None):
    """Connect this process to Ray and return the ``ray`` module.

    Parameters
    ----------
    address : str, optional
        ``"HOST:PORT"`` (what ``ray start --head`` prints, port 6379 by default),
        ``"ray://HOST:10001"`` (Ray Client), ``"auto"`` (a running cluster, or an error) or
        ``"local"`` (a new local instance). ``None``: ``$RAY_ADDRESS``, else the last cluster
        started with ``ray start`` on this machine, else a new local instance (Ray's own rules).
        If this process is already connected, that connection is used; asking for another
        address is an error.

    Raises
    ------
    dataexplore.MissingDependencyError
        Ray is not installed (``pip install dataexplore[scale]``).
    dataexplore.DataexploreError
        The address is malformed or nothing answers there (checked within seconds, before Ray
        would retry for minutes).

    Examples
    --------
    >>> from dataexplore.embedding.ray import connect
    >>> ray = connect("head-node:6379")  # doctest: +SKIP
    """
    ray = require("ray", "distributed embedding", "dataexplore[scale]")
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if address not in (None, "auto") and not _same_address(address, current):
            raise DataexploreError(f"this process is already connected to the Ray cluster at {current}; "
                                   f"call ray.shutdown() first to use {address!r}")
        return ray
    if address not in (None, "auto", "local"):
        host, port = _split_address(address)
        try:
            socket.create_connection((host, port), timeout=5).close()
        except OSError as exc:
            raise DataexploreError(
                f"cannot reach a Ray cluster at {address!r} ({exc.strerror or exc}): start one with "
                "'ray start --head' and pass the address it prints") from None
    try:
        ray.init(address=address)
    except ConnectionError as exc:
        raise DataexploreError(f"cannot connect to a Ray cluster at {address or 'auto'!r}: {exc}") from None
    return ray


def _split_address(address: str) -> tuple[str, int]:
    client = address.startswith("ray://")
    target = address[len("ray://"):] if client else address
    host, sep, port = target.rpartition(":")
    if not sep or "]" in port:  # no port given (IPv6 literals keep their colons inside brackets)
        host, port = target, "10001" if client else "6379"
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise DataexploreError(f"bad Ray address {address!r}: expected HOST:PORT") from None


def _same_address(address: str, current: str) -> bool:
    """Whether ``address`` names the cluster at GCS address ``current`` (same port, same host's IP)."""
    if address == current or address.startswith("ray://"):  # a Ray Client session reports no comparable address
        return True
    try:
        (host, port), (chost, cport) = _split_address(address), _split_address(current)
        return port == cport and socket.gethostbyname(host) == socket.gethostbyname(chost)
    except (OSError, DataexploreError):
        return False


@dataclass
class Shard:
    """One deterministic chunk of the source: rows ``start:stop``, its file ``name``, rows still to come."""

    start: int
    stop: int
    name: str
    pending: int = 0


def plan_shards(keys: list[str | None], shard_size: int = DEFAULT_SHARD_SIZE) -> list[Shard]:
    """Cut ``len(keys)`` rows into shards of ``shard_size`` in source order, named by their keys.

    Examples
    --------
    >>> [(s.start, s.stop) for s in plan_shards(["a", "b", "c"], shard_size=2)]
    [(0, 2), (2, 3)]
    """
    from .cache import shard_name

    if shard_size < 1:
        raise DataexploreError(f"shard_size must be at least 1, got {shard_size}")
    return [Shard(start, min(start + shard_size, len(keys)), shard_name(keys[start:start + shard_size]))
            for start in range(0, len(keys), shard_size)]


def embed(
    source: Any,
    model: str = "fashion-tiny",
    pretrained: str | None = None,
    *,
    address: str | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    num_actors: int | None = None,
    cpus_per_actor: float = 1.0,
    **options: Any,
) -> Embeddings:
    """Embed images on a Ray cluster; same result as :func:`dataexplore.embed` with the local engine.

    ``dx.embed(source, engine="ray", ray_address=...)`` is this call with the default layout; call it
    directly to choose the shard size or the embedder pool.

    Parameters
    ----------
    source, model, pretrained
        As for :func:`dataexplore.embed`.
    address : str, optional
        The Ray cluster; see :func:`connect`.
    shard_size, num_actors, cpus_per_actor
        See :class:`RayEngine`.
    **options
        ``device``, ``batch_size``, ``precision``, ``cache``, ``cache_dir``, ``max_pixels``,
        ``progress``: as for :func:`dataexplore.embed`, with the differences :class:`RayEngine` lists.

    Returns
    -------
    Embeddings
        As from the local engine; ``stats`` adds ``shards``: ``total``, ``reused`` (complete
        files found), ``written``.

    Examples
    --------
    >>> from dataexplore.embedding.ray import embed
    >>> emb = embed("/data/images", model="ViT-B-32", pretrained="/models/vit-b-32.safetensors",
    ...             address="head-node:6379")  # doctest: +SKIP
    """
    engine = RayEngine(address=address, shard_size=shard_size, num_actors=num_actors, cpus_per_actor=cpus_per_actor)
    return execute(engine, source, model, pretrained, **options)


@dataclass
class RayEngine:
    """The engine of ``dx.embed(..., engine="ray")``; see the module documentation.

    Parameters
    ----------
    address : str, optional
        The Ray cluster; see :func:`connect`.
    shard_size : int
        Images per shard (the unit written to disk, reused and resumed).
    num_actors : int, optional
        Embedders in the pool. Default: the number of GPUs, or on a CPU-only cluster half its
        CPUs divided by ``cpus_per_actor`` (the other half decodes).
    cpus_per_actor : float
        CPUs each embedder reserves (its torch threads on CPU clusters). With equal resources
        Ray Data runs decoding inside the embedders (operator fusion), which on CPUs is what the
        local engine does too.

    Notes
    -----
    Of the settings of :func:`dataexplore.embed`: ``device`` is ``"auto"`` (one embedder per GPU,
    ``num_gpus=1`` each, when the cluster has GPUs, else CPU embedders), ``"cuda"`` (requires GPUs)
    or ``"cpu"`` (never asks for them); ``batch_size`` (images per forward pass and per decoding
    call) defaults to the local engine's CPU size, four times that on GPUs; ``progress`` shows Ray
    Data's progress bars and a one-line summary on stderr.
    """

    address: str | None = None
    shard_size: int = DEFAULT_SHARD_SIZE
    num_actors: int | None = None
    cpus_per_actor: float = 1.0
    _device: str = field(default="auto", init=False, repr=False)
    _ray: Any = field(default=None, init=False, repr=False)

    #: keyword of :func:`dataexplore.embed` -> constructor argument
    OPTIONS: ClassVar[dict[str, str]] = {"ray_address": "address"}
    #: said when options of another engine are given with this one
    HINT: ClassVar[str] = "Ray Data schedules the decoding tasks, so the options of the local engine do not apply"
    decoder: ClassVar[str] = "pil"
    #: shards are named by the content keys of their images: all of them are needed first
    hashes_while_decoding: ClassVar[bool] = False

    def start(self, device: Any) -> str:
        self._device = str(device)
        if self._device not in ("auto", "cuda", "cpu"):
            raise DataexploreError(f"with engine='ray' device must be 'auto', 'cuda' or 'cpu', got {self._device!r}")
        if self.shard_size < 1:
            raise DataexploreError(f"shard_size must be at least 1, got {self.shard_size}")
        self._ray = connect(self.address)
        return "cpu"  # the driver's model gives identity and preprocessing; the embedders load their own

    def compute(self, run: Run) -> None:
        store = run.store
        todo = run.todo
        plan = plan_shards(run.keys, self.shard_size)
        present = set(os.listdir(store.shard_dir)) if store is not None and store.shard_dir.is_dir() else set()
        results = _Results(run.keys, run.vectors, run.failures, plan, self.shard_size, store, run.clip, todo,
                           run.conditions)
        layout = None
        if len(todo):
            layout = _Layout.for_cluster(self._ray, run.clip, self._device, run.batch_size, self.num_actors,
                                         self.cpus_per_actor)
            with _ray_data_output(run.progress):
                ds = _pipeline(run.samples, todo, run.clip, layout, run.precision, run.max_pixels, self.shard_size)
                for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
                    results.add(out)
            results.check_complete()
        run.stats["computed"] = results.computed
        run.stats["shards"] = {"total": len(plan), "reused": sum(s.name in present for s in plan),
                               "written": results.written}
        if run.progress:
            where = f" on {layout.actors} {'GPU' if layout.gpu else 'CPU'} embedder(s)" if layout else ""
            dest = f" -> {store.shard_dir}" if store is not None else ""
            sh = run.stats["shards"]
            print(f"ray: embedded {len(run.samples)} images{where}: {results.computed} computed, "
                  f"{run.stats['cached']} from cache, {len(run.failures)} failed; shards: {sh['written']} written, "
                  f"{sh['reused']} reused, {sh['total']} in all{dest}", file=sys.stderr)


@dataclass
class _Layout:
    """How the work is spread: embedders on GPUs or CPUs, how many, batch size, cluster CPUs."""

    gpu: bool
    actors: int
    cpus_per_actor: float
    batch_size: int
    cpus: int

    @classmethod
    def for_cluster(cls, ray, clip, device: str, batch_size: int | None, num_actors: int | None,
                    cpus_per_actor: float) -> "_Layout":
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        if device == "cuda" and not gpus:
            raise DataexploreError("device 'cuda' was asked for, but the Ray cluster has no GPUs")
        gpu = gpus > 0 and device != "cpu"
        if num_actors is None:
            num_actors = gpus if gpu else max(1, int(cpus / 2 / cpus_per_actor))
        if batch_size is None:
            batch_size = min(2048, cpu_batch_size(clip.input_size) * (4 if gpu else 1))
        return cls(gpu, num_actors, cpus_per_actor, batch_size, cpus)


def _pipeline(samples, todo: np.ndarray, clip, layout: _Layout, precision: str, max_pixels: int, shard_size: int):
    """The Ray Dataset: sample rows -> decode tasks -> embedder actor pool."""
    import ray
    import ray.data

    frame = pd.DataFrame({"row": todo})
    crops = ray.put(_portable(samples)) if isinstance(samples, CropSamples) else None  # read by row in the tasks
    if samples.images is None and crops is None:
        paths = samples.table["filepath"].to_numpy(dtype=object)[todo]
        frame["path"] = [os.path.abspath(p) for p in paths]  # workers do not share the driver's cwd
    # input blocks: enough for every CPU to decode (4 per CPU), at least a batch, at most a shard
    block = int(min(shard_size, max(layout.batch_size, math.ceil(len(todo) / (4 * layout.cpus)))))
    blocks = [frame.iloc[i:i + block].reset_index(drop=True) for i in range(0, len(frame), block)]
    fused = clip.preprocess_cfg.get("resize_mode", "shortest") == "shortest"
    images = ray.put(samples.images) if samples.images is not None else None
    ds: Any = ray.data.from_pandas(blocks)  # Any: Ray's stubs do not model fn_kwargs (decode_batch's extra arguments)
    ds = ds.map_batches(decode_batch, batch_size=layout.batch_size, batch_format="numpy", num_cpus=1,
                        fn_kwargs={"images": images, "crops": crops, "cfg": clip.preprocess_cfg,
                                   "preprocess": None if fused else clip.preprocess, "max_pixels": max_pixels})
    return ds.map_batches(
        Embedder, batch_size=layout.batch_size, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=layout.actors),
        num_cpus=layout.cpus_per_actor, num_gpus=1 if layout.gpu else 0,
        fn_constructor_kwargs={"model": clip.name, "pretrained": clip.pretrained, "key": clip.key,
                               "precision": precision, "max_pixels": max_pixels, "use_gpu": layout.gpu,
                               "threads": max(1, int(layout.cpus_per_actor))})


@contextmanager
def _ray_data_output(progress: bool):
    """Ray Data's progress bars on or off for one run; off also hides its INFO lines."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    saved = ctx.enable_progress_bars
    loggers = [] if progress else [logging.getLogger(n) for n in ("ray.data", "ray.data._internal.progress")]
    levels = [logger.level for logger in loggers]
    ctx.enable_progress_bars = progress
    for logger, level in zip(loggers, (logging.WARNING, logging.ERROR)):  # ERROR: "progress bars disabled"
        logger.setLevel(level)
    try:
        yield
    finally:
        ctx.enable_progress_bars = saved
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class _Results:
    """Driver side: puts returned batches in place and writes each shard as soon as it is complete."""

    def __init__(self, keys, vectors, failures, plan, shard_size, store, clip, todo, conditions: str = ""):
        self.keys, self.vectors, self.failures, self.plan = keys, vectors, failures, plan
        self.store, self.clip, self.todo, self.conditions = store, clip, todo, conditions
        self.retry: set[int] = set()  # rows whose failure was transient: reported, never written
        self.shard_of = np.arange(len(keys)) // shard_size
        for shard, count in zip(plan, np.bincount(self.shard_of[todo], minlength=len(plan))):
            shard.pending = int(count)
        self.done = np.zeros(len(keys), dtype=bool)
        self.computed = self.written = 0

    def add(self, out: dict[str, np.ndarray]) -> None:
        rows = np.asarray(out["row"], dtype=np.int64)
        fresh = ~self.done[rows]  # a retried task never counts twice
        rows, reasons = rows[fresh], np.asarray(out["reason"], dtype=object)[fresh]
        good = reasons == ""
        self.vectors[rows[good]] = out["vector"][fresh][good]
        self.failures.update((int(r), str(why)) for r, why in zip(rows[~good], reasons[~good]))
        if "retry" in out:
            self.retry.update(int(r) for r in rows[np.asarray(out["retry"], dtype=bool)[fresh]])
        self.computed += int(np.asarray(out["computed"])[fresh].sum())
        self.done[rows] = True
        for s, count in zip(*np.unique(self.shard_of[rows], return_counts=True)):
            shard = self.plan[s]
            shard.pending -= int(count)
            if shard.pending == 0 and self.store is not None:
                _write_shard(shard, self.keys, self.vectors, self.failures, self.store, self.clip, self.retry,
                             self.conditions)
                self.written += 1

    def check_complete(self) -> None:
        missing = int((~self.done[self.todo]).sum())
        if missing:
            raise DataexploreError(f"the Ray pipeline returned {len(self.todo) - missing} of {len(self.todo)} images")


def _write_shard(shard: Shard, keys, vectors, failures, store, clip, retry: AbstractSet[int] = frozenset(),
                 conditions: str = "") -> None:
    """Write a finished shard's file, then its rows into SQLite (the file first: it is the record).

    Rows whose failure was transient (``retry``) are left out of both, so the next run computes them."""
    from .cache import write_shard

    first: dict[str, int] = {}
    for row in range(shard.start, shard.stop):
        if keys[row] is not None and row not in retry:
            first.setdefault(keys[row], row)
    rows = np.fromiter(first.values(), dtype=np.int64, count=len(first))
    shard_keys = list(first)
    reasons = [failures.get(int(r)) for r in rows]
    write_shard(store.shard_dir / shard.name, shard_keys, vectors[rows], reasons, clip.key, clip.identity,
                conditions)
    ok = np.array([r is None for r in reasons], dtype=bool)
    store.store([k for k, g in zip(shard_keys, ok) if g], vectors[rows][ok],
                {k: r for k, r in zip(shard_keys, reasons) if r is not None}, shard=shard.name)


def _portable(crops: CropSamples) -> CropSamples:
    """``crops`` with their images' paths made absolute (workers do not share the driver's cwd)."""
    from ..core.samples import Samples

    out = crops.slim()
    parent = crops.parent
    if parent.images is None:
        table = parent.table.assign(filepath=[p if p is None else os.path.abspath(p) for p in parent.table["filepath"]])
        out.parent = Samples(table, name=parent.name, provenance=parent.provenance)
    return out


def decode_batch(batch: dict[str, np.ndarray], images: Any, cfg: dict, preprocess: Any,
                 max_pixels: int, crops: Any = None) -> dict[str, np.ndarray]:
    """Ray Data task: rows -> model-sized pixels, with the local engine's decoding.

    Returns ``row``, ``pixels`` (uint8 N×3×S×S, or float for models with their own transform;
    zeros where decoding failed), ``reason`` (``""``, or why the image failed) and ``retry``
    (the failure is transient: not cached).
    """
    from ..core.samples import Samples
    from .batches import ImageDataset, collate

    rows = np.asarray(batch["row"], dtype=np.int64)
    local = np.arange(len(rows))
    ids = pd.DataFrame({"id": local.astype(str)})
    if crops is not None:  # object crops: cut from their images in the task (core.crops)
        import ray

        samples = (ray.get(crops) if isinstance(crops, ray.ObjectRef) else crops).subset(rows)
    elif images is not None:
        import ray

        if isinstance(images, ray.ObjectRef):
            images = ray.get(images)
        samples = Samples(ids, images=images[rows])
    else:
        samples = Samples(ids.assign(filepath=list(batch["path"])))
    data = ImageDataset(samples, local, cfg, preprocess, max_pixels)
    decoded = collate([data[i] for i in range(len(rows))])
    if decoded.pixels is not None:
        good = decoded.pixels.numpy()
        pixels = np.zeros((len(rows),) + good.shape[1:], dtype=good.dtype)
        pixels[decoded.rows] = good
    else:
        pixels = np.zeros((len(rows), 3, data.size, data.size), dtype=np.uint8 if data.fused else np.float32)
    reason = np.array([""] * len(rows), dtype=object)
    for i, why in decoded.failed.items():
        reason[i] = why
    retry = np.zeros(len(rows), dtype=bool)
    retry[list(decoded.retry)] = True
    return {"row": rows, "pixels": pixels, "reason": reason, "retry": retry}


class Embedder:
    """Ray Data actor: loads the model once, then encodes batches of decoded pixels.

    Parameters
    ----------
    model, pretrained : str
        As for :func:`dataexplore.models.load_model`; must resolve on this node.
    key : str
        The driver's model key; a different model here is an error, never mixed vectors.
    precision : str
        As for :func:`dataexplore.embed`.
    max_pixels : int
    use_gpu : bool
        Run on the GPU Ray assigned to this actor.
    threads : int
        torch threads on CPU.
    """

    def __init__(self, model: str, pretrained: str | None, key: str, precision: str, max_pixels: int,
                 use_gpu: bool, threads: int = 1):
        import torch

        from ..models import load_model
        from ..models.device import image_tower

        if not use_gpu:
            torch.set_num_threads(threads)
        self.device = torch.device("cuda" if use_gpu else "cpu")
        self.clip = load_model(model, pretrained, self.device)
        if self.clip.key != key:
            raise DataexploreError(
                f"model {model!r} on Ray node {socket.gethostname()} is not the driver's (key {self.clip.key}, "
                f"expected {key}): make the same weights available on every node")
        self.tower, self.dtype = image_tower(self.clip, self.device, precision)
        self.dim = self.clip.embed_dim
        self.max_pixels = max_pixels

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``row``, ``pixels``, ``reason``, ``retry`` -> ``row``, ``vector``, ``reason``, ``retry``, ``computed``."""
        import torch

        from .batches import Batch, to_model_input

        rows = np.asarray(batch["row"], dtype=np.int64)
        reasons = np.array(batch["reason"], dtype=object)
        ok = np.flatnonzero(reasons == "")
        vectors = np.zeros((len(rows), self.dim), dtype=np.float32)
        computed = np.zeros(len(rows), dtype=bool)
        retry = np.asarray(batch["retry"], dtype=bool).copy() if "retry" in batch else np.zeros(len(rows), bool)
        if len(ok):
            pixels = torch.from_numpy(np.ascontiguousarray(batch["pixels"][ok]))
            _, x = to_model_input(Batch(rows=list(ok), pixels=pixels), self.clip.preprocess_cfg, self.device,
                                  self.dtype, self.max_pixels)
            with torch.inference_mode():
                feats = encode(self.tower, x).cpu().numpy()
            finite = np.isfinite(feats).all(axis=1)
            vectors[ok[finite]] = feats[finite]
            reasons[ok[~finite]] = "non-finite embedding (model overflow)"
            retry[ok[~finite]] = True  # a model failure, not the file's: never cached
            computed[ok] = True
        return {"row": rows, "vector": vectors, "reason": reasons, "retry": retry, "computed": computed}
