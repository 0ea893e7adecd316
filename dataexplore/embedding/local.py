"""CLIP embedding engine: :func:`embed` images and :func:`embed_text` prompts.

The image pipeline is built the way a GPU needs to be fed:

- decoding and resizing happen in :class:`torch.utils.data.DataLoader` worker processes, so they
  overlap with the forward pass; batches arrive in pinned memory and are copied with
  ``non_blocking=True``;
- the forward pass runs under ``torch.inference_mode`` on a copy of the image tower cast to
  bf16 where the hardware has it (fp16 on older GPUs): no per-batch weight casts as under
  autocast, half the memory traffic; on CUDA the batch size is measured to fill the card;
- results are copied back asynchronously and written to the cache one batch behind, so the GPU
  never waits for the disk; on a crash at most the batch in flight is lost;
- optionally (``decode="torchvision"``) JPEG files are decoded on the GPU by nvJPEG.

Nothing holds all images: memory is flat in N apart from the output array.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.embeddings import Embeddings
from ..core.errors import DataexploreError
from .batches import ImageDataset, collate, threaded_batches, to_model_input
from ..core.images import DEFAULT_MAX_PIXELS
from ..models.device import image_tower, pick_device


def cpu_count() -> int:
    """Cores this process may use (respects affinity masks and containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def embed(
    source: Any,
    model: str = "fashion-tiny",
    pretrained: str | None = None,
    *,
    device: Any = "auto",
    batch_size: int | None = None,
    num_workers: int | None = None,
    precision: str = "auto",
    decode: str = "pil",
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
    engine: str = "local",
    ray_address: str | None = None,
) -> Embeddings:
    """Embed images with a CLIP model, reusing every vector already in the cache.

    Parameters
    ----------
    source
        Anything :func:`dataexplore.load` accepts (folder, paths, DataFrame, array,
        ``"fashion-mnist:test:2000"``, FiftyOne view) or a :class:`Samples`.
    model, pretrained : str
        See :mod:`dataexplore.models`: ``"fashion-tiny"`` (built in, offline), or an open_clip
        architecture with a hub tag / local weights file, or a ``local-dir:`` folder.
    device : {"auto", "cuda", "mps", "cpu"} or torch.device
        ``"auto"`` picks cuda, then mps, then cpu.
    batch_size : int, optional
        Default: measured to fill the GPU on CUDA; on CPU sized to the model's input.
    num_workers : int, optional
        Decoding processes. Default: on an accelerator one per spare core (up to 8), overlapping
        decoding with the forward pass; on CPU 0, meaning a thread per core decodes each batch
        between forward passes (the forward pass already uses every core).
    precision : {"auto", "fp32", "bf16", "fp16"}
        Compute dtype of the image tower; ``"auto"`` uses bf16 where the hardware supports it
        (fp16 on older GPUs, fp32 on CPUs without bf16 instructions). Vectors are returned in fp32.
    decode : {"pil", "torchvision"}
        ``"torchvision"`` decodes JPEG files on the model's device (nvJPEG on CUDA); other
        formats still go through PIL in the workers.
    cache : bool
        Read and write the on-disk cache (see :mod:`dataexplore.embedding.cache`).
    cache_dir : path, optional
        Cache root; default ``$DATAEXPLORE_CACHE_DIR`` or the user cache folder.
    max_pixels : int
        Images larger than this are reported as failures (decompression-bomb guard).
    progress : bool
        Show a progress bar (images/s) while computing.
    engine : {"local", "ray"}
        ``"ray"`` runs the same computation as a Ray Data pipeline across a cluster's GPUs (see
        :mod:`dataexplore.embedding.ray`, needs ``pip install dataexplore[scale]``): same ids and
        vectors, results written as Parquet shards into the same cache. ``num_workers`` and
        ``decode="torchvision"`` are local-engine options.
    ray_address : str, optional
        With ``engine="ray"``: the cluster to connect to (``"HOST:6379"``, ``"ray://HOST:10001"``,
        ``"auto"``); default: ``$RAY_ADDRESS``, else a cluster started with ``ray start`` on this
        machine, else a new local Ray.

    Returns
    -------
    Embeddings
        L2-normalised float32 vectors for the samples that decoded, in source order, with
        ``failures`` (id, row, reason) for those that did not, the model identity and
        counts of computed / cached / failed images in ``stats``.

    Examples
    --------
    >>> import dataexplore as dx
    >>> emb = dx.embed("fashion-mnist:test:1000", model="fashion-tiny")  # doctest: +SKIP
    >>> emb.vectors.shape, emb.stats  # doctest: +SKIP
    ((1000, 128), {'computed': 1000, 'cached': 0, 'failed': 0})
    >>> emb = dx.embed("fashion-mnist:test:1000", engine="ray")  # doctest: +SKIP
    """
    from .cache import EmbeddingCache, FileHashes, cache_root, content_keys
    from ..models import load_model
    from ..sources import load

    if engine not in ("local", "ray"):
        raise DataexploreError(f"engine must be 'local' or 'ray', got {engine!r}")
    if engine == "ray":
        if num_workers is not None or decode != "pil":
            raise DataexploreError("num_workers and decode='torchvision' are options of the local engine; "
                                   "with engine='ray' Ray Data schedules the decoding tasks")
        from .ray import embed as embed_ray

        return embed_ray(source, model, pretrained, address=ray_address, device=device, batch_size=batch_size,
                         precision=precision, cache=cache, cache_dir=cache_dir, max_pixels=max_pixels,
                         progress=progress)
    if ray_address is not None:
        raise DataexploreError("ray_address is only used with engine='ray'")
    if decode not in ("pil", "torchvision"):
        raise DataexploreError(f"decode must be 'pil' or 'torchvision', got {decode!r}")
    samples = load(source)
    dev = pick_device(device)
    clip = load_model(model, pretrained, dev)
    dim = clip.embed_dim
    n = len(samples)
    root = cache_root(cache_dir)
    conditions = failure_conditions(max_pixels, decode)
    store = EmbeddingCache(root, clip.key, clip.identity, conditions) if cache else None
    memo = FileHashes(root) if cache else None

    keys, key_failures = content_keys(samples, memo)
    vectors = np.full((n, dim), np.nan, dtype=np.float32)
    failures: dict[int, str] = dict(key_failures)
    cached_rows = from_cache(store, keys, vectors, failures)
    todo = np.array([r for r in range(n) if keys[r] is not None and r not in cached_rows], dtype=np.int64)

    stats = {"computed": 0, "cached": len(cached_rows), "failed": 0}
    if len(todo):
        stats["computed"] = _run(samples, todo, keys, clip, dev, vectors, failures, store,
                                 batch_size=batch_size, num_workers=num_workers, precision=precision,
                                 decode=decode, max_pixels=max_pixels, progress=progress)
    stats["failed"] = len(failures)
    if store is not None:
        store.close()
        memo.close()
    return make_result(samples, clip, vectors, failures, stats)


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


def _run(samples, todo, keys, clip, dev, vectors, failures, store, *, batch_size, num_workers, precision,
         decode, max_pixels, progress) -> int:
    """Compute the ``todo`` rows in place into ``vectors``/``failures``; return how many were computed."""
    import torch
    from tqdm.auto import tqdm

    tower, dtype = image_tower(clip, dev, precision)
    size = clip.preprocess_cfg["size"]
    size = size if isinstance(size, int) else max(size)
    cores = cpu_count()
    if batch_size is None:
        batch_size = _cuda_batch_size(tower, dev, dtype, size) if dev.type == "cuda" else _cpu_batch_size(size)
    if num_workers is None:
        # On an accelerator, worker processes decode while the device computes. On a CPU the model
        # already uses every core: a decoding process would only fight it for them (and OpenMP
        # threads degrade badly when preempted), so decode runs between batches on all cores.
        num_workers = min(8, max(1, cores - 1)) if dev.type != "cpu" else 0
    cfg = clip.preprocess_cfg
    dataset = ImageDataset(samples, todo, cfg, clip.preprocess, max_pixels, raw_jpeg=decode == "torchvision")
    if dev.type == "cpu" and num_workers == 0:
        loader = threaded_batches(dataset, batch_size, cores)
    else:
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate,
            pin_memory=dev.type == "cuda", prefetch_factor=4 if num_workers else None,
            persistent_workers=False,
        )
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(cores)
    pending = None  # (rows, host tensor, event): results of the previous batch still being copied
    pinned, slot = [None, None], 0
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels
    computed = 0
    bar = tqdm(total=len(todo), unit="img", desc=f"embed {clip.name}", disable=not progress, smoothing=0.1)
    try:
        with torch.inference_mode():
            for batch in loader:
                rows, tensors = to_model_input(batch, cfg, dev, dtype, max_pixels)
                failed = batch.failed
                if tensors is not None:
                    feats = encode(tower, tensors)
                    # copy into one of two reused (pinned, on CUDA) host buffers without waiting;
                    # the copy is synchronised one batch later, while the next batch computes
                    if pinned[slot] is None or len(pinned[slot]) < len(feats):
                        pinned[slot] = torch.empty((max(batch_size, len(feats)), feats.shape[1]),
                                                   dtype=torch.float32, pin_memory=cuda)
                    host = pinned[slot][: len(feats)]
                    host.copy_(feats, non_blocking=cuda)
                    event = torch.cuda.Event() if cuda else None
                    if event is not None:
                        event.record()
                    current = (rows, host, event)
                    slot ^= 1
                else:
                    current = None
                # write the previous batch while this one runs on the device
                computed += _flush(pending, keys, vectors, failures, store, {})
                pending = current
                if failed:
                    _flush(None, keys, vectors, failures, store, failed, batch.retry)
                bar.update(len(rows) + len(failed))
            computed += _flush(pending, keys, vectors, failures, store, {})
            pending = None
    finally:
        bar.close()
        if dev.type == "cpu":
            torch.set_num_threads(threads)
    return computed


def _flush(pending, keys, vectors, failures, store, failed: dict[int, str], retry: set = frozenset()) -> int:
    """Move one finished batch into the output array and the cache; return rows written.

    Failures in ``retry`` (transient) are reported in ``failures`` but not cached."""
    bad = {}
    written = 0
    if pending is not None:
        rows, host, event = pending
        if event is not None:
            event.synchronize()
        out = host.numpy()
        finite = np.isfinite(out).all(axis=1)
        for row, good in zip(rows, finite):
            if not good:
                bad[row] = "non-finite embedding (model overflow)"
        good_rows = [r for r, g in zip(rows, finite) if g]
        vectors[good_rows] = out[finite]
        written = len(rows)
        if store is not None:  # non-finite vectors are not cached: a later run (fp32?) tries again
            store.store([keys[r] for r in good_rows], out[finite])
    lasting = {keys[r]: reason for r, reason in failed.items() if r not in retry}
    if lasting and store is not None:
        store.store([], np.zeros((0, vectors.shape[1]), np.float32), lasting)
    failures.update(bad)
    failures.update(failed)
    return written


def _cpu_batch_size(size: int) -> int:
    """About 64 images at 224 px; more for smaller inputs (same work per batch), capped at 1024."""
    work = 64 * (224 / size) ** 2
    return int(min(1024, max(16, 2 ** int(np.log2(work)))))


def _cuda_batch_size(tower, dev, dtype, size: int) -> int:
    """Measure activation memory per image with a trial batch and fill ~60% of free memory."""
    import torch

    probe = 16
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    with torch.inference_mode():
        tower(torch.zeros(probe, 3, size, size, device=dev, dtype=dtype or torch.float32))
    torch.cuda.synchronize(dev)
    per_image = max(1, (torch.cuda.max_memory_allocated(dev) - base) / probe)
    free, _ = torch.cuda.mem_get_info(dev)
    fit = int(0.6 * free / per_image)
    return int(max(16, min(2048, 2 ** int(np.log2(max(fit, 16))))))


def embed_text(
    prompts: str | Sequence[str],
    model: str = "fashion-tiny",
    pretrained: str | None = None,
    *,
    device: Any = "auto",
) -> np.ndarray:
    """Embed text prompts with the same CLIP model, L2-normalised float32 ``len(prompts)×D``.

    Examples
    --------
    >>> import dataexplore as dx
    >>> t = dx.embed_text(["a photo of a sneaker", "a photo of a bag"])  # doctest: +SKIP
    >>> t.shape  # doctest: +SKIP
    (2, 128)
    """
    from ..models import embed_prompts, load_model

    return embed_prompts(load_model(model, pretrained, pick_device(device)), prompts)
