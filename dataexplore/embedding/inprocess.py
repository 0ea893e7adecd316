"""``engine="local"``: decoding and the model in this process (and its decoding workers).

On a CPU (there ``num_workers=0`` by default) the calling thread prepares batch after batch:

- reads each file **once**, hashing those bytes when the content key is not memoised yet (a new or
  changed file), so the key always belongs to the pixels that are embedded;
- decodes and resizes+crops straight into one uint8 array (:meth:`ImageDataset.batch`);
- serves the rows whose content the cache already holds (a renamed or copied file);

and hands the rest to ``cores - 1`` threads, each running the image tower on its batch with one
torch thread; when they fall behind (two batches wait), the calling thread runs the model on one
itself. Decoding small files is mostly Python holding the GIL: a second decoding thread made them
slower, not faster (the threads hand the GIL back and forth), while the forward passes release the
GIL and run beside the decoding, without OpenMP threads stalling each other (a machine shared with
other jobs slows the run down gracefully); one thread per core, no more, so the decoding thread
never queues for a core behind the model. The calling thread also puts the results in place and
hands them to a :class:`~dataexplore.embedding.writer.CacheWriter`, which commits every couple of
seconds: on ``kill -9`` at most that uncommitted tail is computed again.
For large photos on a many-core CPU, where one thread cannot decode as fast as the model runs,
``num_workers=N`` decodes in N processes instead (the accelerator pipeline below).

On an accelerator the pipeline is built the way a GPU needs to be fed:

- decoding (and hashing) happens in :class:`torch.utils.data.DataLoader` worker processes, so it
  overlaps with the forward pass; batches arrive in pinned memory and are copied with
  ``non_blocking=True``;
- the forward pass runs under ``torch.inference_mode`` on a copy of the image tower cast to
  bf16 where the hardware has it (fp16 on older GPUs): no per-batch weight casts as under
  autocast, half the memory traffic; on CUDA the batch size is measured to fill the card;
- results are copied back asynchronously and handed to the writer one batch behind, so the GPU
  never waits for the host;
- optionally (``decode="torchvision"``) JPEG files are decoded on the GPU by nvJPEG.

Nothing holds all images: memory is flat in N apart from the output array.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np

from ..core.errors import DataexploreError
from ..models.device import image_tower, pick_device
from .batches import Batch, ImageDataset, collate, to_model_input
from .plan import Run, cpu_batch_size, cpu_count, encode
from .writer import CacheWriter

NON_FINITE = "non-finite embedding (model overflow)"


@dataclass
class LocalEngine:
    """The engine of ``dx.embed(..., engine="local")``; see the module documentation.

    Parameters
    ----------
    num_workers : int, optional
        Decoding processes (a DataLoader). Default: on an accelerator one per spare core (up to 8);
        on a CPU 0: the calling thread decodes, ``cores - 1`` threads run the model.
    decode : {"pil", "torchvision"}
        ``"torchvision"`` decodes JPEG files on the model's device (nvJPEG on CUDA).
    """

    num_workers: int | None = None
    decode: str = "pil"

    #: keyword of :func:`dataexplore.embed` -> constructor argument
    OPTIONS: ClassVar[dict[str, str]] = {"num_workers": "num_workers", "decode": "decode"}
    #: said when options of another engine are given with this one
    HINT: ClassVar[str] = ""
    hashes_while_decoding: ClassVar[bool] = True

    @property
    def decoder(self) -> str:
        return self.decode

    def start(self, device: Any):
        if self.decode not in ("pil", "torchvision"):
            raise DataexploreError(f"decode must be 'pil' or 'torchvision', got {self.decode!r}")
        return pick_device(device)

    def compute(self, run: Run) -> None:
        from tqdm.auto import tqdm

        todo = run.todo
        if not len(todo):
            return
        clip, dev = run.clip, run.device
        tower, dtype = image_tower(clip, dev, run.precision)
        cores = cpu_count()
        on_threads = dev.type == "cpu" and not self.num_workers
        batch_size = run.batch_size
        if batch_size is None:
            if on_threads:
                batch_size = thread_batch_size(clip.input_size, len(todo), cores)
            elif dev.type == "cuda":
                batch_size = _cuda_batch_size(tower, dev, dtype, clip.input_size)
            else:
                batch_size = cpu_batch_size(clip.input_size)
        hashed = set(run.pending) if run.store is not None else frozenset()
        dataset = ImageDataset(run.samples, todo, clip.preprocess_cfg, clip.preprocess, run.max_pixels,
                               raw_jpeg=self.decode == "torchvision", hash_rows=hashed)
        bar = tqdm(total=len(todo), unit="img", desc=f"embed {clip.name}", disable=not run.progress, smoothing=0.1)
        with CacheWriter(run.store, run.memo) as writer:
            sink = _Sink(run, writer)
            try:
                if on_threads:
                    _on_threads(sink, dataset, tower, dtype, batch_size, cores, bar)
                else:
                    workers = self.num_workers if self.num_workers is not None else min(8, max(1, cores - 1))
                    _on_loader(sink, dataset, tower, dtype, batch_size, workers, cores, bar)
            finally:
                bar.close()
                run.stats["computed"] += sink.computed
                run.stats["cached"] += sink.cached


class _Sink:
    """Where finished batches go: the run's arrays, and the cache through the writer.

    Used by the thread that decodes (or drives the DataLoader); model threads only compute.
    """

    def __init__(self, run: Run, writer: CacheWriter):
        self.run, self.writer = run, writer
        self.computed = self.cached = 0

    def serve_cached(self, batch: Batch) -> dict[int, Any]:
        """Rows whose freshly hashed key the cache holds (a renamed or copied file): removed from
        ``batch``; returns row -> cached vector, or cached failure reason."""
        if not batch.keys or self.writer.store is None:
            return {}
        found, failed = self.writer.lookup(sorted(set(batch.keys.values())), self.run.vectors.shape[1])
        hits: dict[int, Any] = {}
        for row, key in batch.keys.items():
            if key in found:
                hits[row] = found[key]
            elif key in failed:
                hits[row] = failed[key]
        batch.drop(set(hits))
        return hits

    def settle(self, batch: Batch, hits: dict[int, Any]) -> None:
        """Record the batch's new keys (and their memo rows), its cache hits and its failures."""
        run = self.run
        memo = []
        for row, key in batch.keys.items():
            run.keys[row] = key
            stat = run.pending.get(row)
            if stat is not None:
                memo.append((*stat, key))
        self.writer.add_hashes(memo)
        for row, hit in hits.items():
            if isinstance(hit, str):
                run.failures[row] = hit
            else:
                run.vectors[row] = hit
        self.cached += len(hits)
        run.failures.update(batch.failed)
        lasting = {run.keys[r]: why for r, why in batch.failed.items()
                   if r not in batch.retry and run.keys[r] is not None}
        if lasting:
            self.writer.add([], None, lasting)

    def vectors(self, rows: list[int], out: np.ndarray | None) -> None:
        """Computed vectors into place and into the cache; non-finite ones are reported, never cached."""
        if not rows or out is None:
            return
        self.computed += len(rows)
        finite = np.isfinite(out).all(axis=1)
        if not finite.all():
            for row, ok in zip(rows, finite.tolist()):
                if not ok:  # a model failure, not the file's: a later run (in fp32?) tries again
                    self.run.failures[row] = NON_FINITE
            rows, out = [r for r, ok in zip(rows, finite.tolist()) if ok], out[finite]
        self.run.vectors[rows] = out
        keys = self.run.keys
        self.writer.add([keys[r] for r in rows], out)


def _on_threads(sink: _Sink, dataset: ImageDataset, tower, dtype, batch_size: int, cores: int, bar) -> None:
    """CPU: this thread decodes batch after batch for ``cores - 1`` model threads (one torch thread
    each); when they fall behind, it runs the model on a waiting batch itself (so on two cores one
    thread decodes and computes, the other computes)."""
    import torch

    run = sink.run
    cfg = run.clip.preprocess_cfg

    def model(batch: Batch):
        rows, x = to_model_input(batch, cfg, run.device, dtype, run.max_pixels)
        if x is None:
            return rows, None
        with torch.inference_mode():
            return rows, encode(tower, x).numpy()

    def land(n: int, batch: Batch, hits: dict, future: Future) -> None:
        rows, out = future.result()
        sink.settle(batch, hits)
        sink.vectors(rows, out)
        sink.writer.maybe_commit()
        bar.update(n)

    def help_out(jobs: deque, keep: int) -> None:
        """Run the model here on the newest batch no model thread has started, if more than ``keep`` wait."""
        waiting = [job for job in jobs if not (job[3].running() or job[3].done())]
        if len(waiting) > keep and waiting[-1][3].cancel():
            waiting[-1][3] = _run_here(model, waiting[-1][1])

    workers = max(1, cores - 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dataexplore-embed")
    running: deque = deque()  # [images, batch, cache hits, future], oldest first
    try:
        for start in range(0, len(dataset), batch_size):
            stop = min(start + batch_size, len(dataset))
            batch = dataset.batch(start, stop)
            hits = sink.serve_cached(batch)
            running.append([stop - start, batch, hits, pool.submit(model, batch)])
            help_out(running, keep=1)  # one batch stays queued, so no model thread waits for this one
            while running and (running[0][3].done() or len(running) > 2 * workers + 2):
                land(*running.popleft())
        while running:
            help_out(running, keep=0)
            land(*running.popleft())
    finally:
        for *_, future in running:
            future.cancel()
        pool.shutdown(wait=True)
        torch.set_num_threads(threads)


def _run_here(fn, *args) -> Future:
    """``fn(*args)`` in this thread, as a finished :class:`~concurrent.futures.Future`."""
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:  # raised where the result is used, in the order of the batches
        future.set_exception(exc)
    return future


def _on_loader(sink: _Sink, dataset: ImageDataset, tower, dtype, batch_size: int, num_workers: int,
               cores: int, bar) -> None:
    """A DataLoader's worker processes decode; the main thread runs the model and writes one batch behind."""
    import torch

    run = sink.run
    dev, cfg = run.device, run.clip.preprocess_cfg
    cuda = dev.type == "cuda"
    loader: Any = torch.utils.data.DataLoader(
        cast(Any, dataset),  # a map-style dataset by duck typing: batches.py does not import torch at import time
        batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate,
        pin_memory=cuda, prefetch_factor=4 if num_workers else None, persistent_workers=False,
    )
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(cores)
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels
    pending = None  # (rows, host tensor, event): results of the previous batch still being copied
    pinned: list[Any] = [None, None]
    slot = 0
    try:
        with torch.inference_mode():
            for batch in loader:
                n = len(batch)
                hits = sink.serve_cached(batch)
                rows, x = to_model_input(batch, cfg, dev, dtype, run.max_pixels)
                sink.settle(batch, hits)
                current = None
                if x is not None:
                    feats = encode(tower, x)
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
                _land(sink, pending)  # the previous batch, while this one runs on the device
                pending = current
                bar.update(n)
            _land(sink, pending)
            pending = None
    finally:
        if pending is not None:  # an error: keep the batch that had finished, if it can be read
            with suppress(Exception):
                _land(sink, pending)
        torch.set_num_threads(threads)


def _land(sink: _Sink, pending) -> None:
    """Wait for a batch's device-to-host copy, then hand its vectors to the sink."""
    if pending is None:
        return
    rows, host, event = pending
    if event is not None:
        event.synchronize()
    sink.vectors(rows, host.numpy())  # the run's array and the writer keep copies: the buffer is reused


def thread_batch_size(size: int, n: int, threads: int) -> int:
    """Batch size of the CPU threads: :func:`~dataexplore.embedding.plan.cpu_batch_size`, made smaller
    for small runs so that each thread gets at least two batches (a few hundred images use every core)."""
    return min(cpu_batch_size(size), max(16, -(-n // (2 * threads))))


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
