"""Embedding at 1k, 10k and 60k small files: dataexplore's first run against the plain open_clip loop and
against the decoding ceiling, in one process; and (``--memory``) peak memory against N.

Data: Fashion-MNIST train images written as 28×28 PNG files (the first N); model ``fashion-tiny``
(32×32 input) unless ``--model``. Rows, all in the same process on the same files:

- **plain loop**: PIL open -> open_clip preprocess -> ``encode_image`` per batch of 256, fp32 (what a
  user writes);
- **ceiling, decode+hash only**: dataexplore's own decoding with no model and no cache: every file
  read once, hashed, decoded, resized+cropped into uint8 batches of the size ``dx.embed`` uses, by one
  thread (as ``dx.embed`` does) and by one thread per core; the faster of the two is the ceiling.
  ``dx.embed`` cannot be faster than this;
- **model only**: the image tower on those ready uint8 batches (normalise + forward), same threads,
  batch size and precision as ``dx.embed``: the other stage of the pipeline;
- **dataexplore**: ``dx.embed(paths)`` with a cold cache (a fresh ``cache_dir`` each time): stat and
  memo lookup, read once, hash, decode, model, batched cache commits.

The machine may be shared: each round runs every row at every size, the order of the rows rotating
from round to round, and the ratios are taken within a round (rows a few seconds apart), then the
median over rounds is reported. Speed-ups and fractions, not absolute times, are the result.

With ``--memory`` each (row, size) runs in a fresh process instead, to measure the growth of resident
memory during the call (sampled every 5 ms) after the model is loaded; the output itself is
N × 128 × 4 bytes (0.5 MB per 1,000 images), so a flat pipeline grows by about that and no more.

Run::

    .venv/bin/python benchmarks/embed_scale.py                  # --sizes 1000 10000 60000 --rounds 3
    .venv/bin/python benchmarks/embed_scale.py --memory
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
ROWS = ("plain", "ceiling", "model", "dataexplore")


def write_pngs(folder: Path, n: int) -> list[str]:
    """The first ``n`` Fashion-MNIST train images as PNG files in ``folder`` (kept if already there)."""
    from PIL import Image

    import dataexplore as dx

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}.png" for i in range(n)]
    if not all(p.exists() for p in paths):
        for path, img in zip(paths, dx.load(f"fashion-mnist:train:{n}").images):
            Image.fromarray(img).save(path)
    return [str(p) for p in paths]


class Rows:
    """The four rows of the table for one model, each a function of the file paths returning seconds."""

    def __init__(self, model: str, pretrained: str | None, tmp: Path):
        import torch

        from dataexplore.embedding.plan import cpu_count
        from dataexplore.models import load_model
        from dataexplore.models.device import image_tower, pick_device

        self.model, self.pretrained, self.tmp = model, pretrained, tmp
        self.dev = pick_device("cpu")
        self.clip = load_model(model, pretrained, self.dev)
        self.tower, self.dtype = image_tower(self.clip, self.dev)
        self.threads = cpu_count()
        self.torch_threads = torch.get_num_threads()
        self.ready: dict[int, list] = {}  # n -> decoded uint8 batches, for the model-only row
        self.decode_threads: dict[int, dict[int, float]] = {}  # n -> decoding threads -> seconds, last round
        self.runs = 0

    def batch_size(self, n: int) -> int:
        from dataexplore.embedding.inprocess import thread_batch_size

        return thread_batch_size(self.clip.input_size, n, self.threads)

    def plain(self, paths: list[str]) -> float:
        import torch
        import torch.nn.functional as F
        from PIL import Image

        t = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(paths), 256):
                x = torch.stack([self.clip.preprocess(Image.open(p).convert("RGB")) for p in paths[i:i + 256]])
                F.normalize(self.clip.model.encode_image(x), dim=-1).numpy()
        return time.perf_counter() - t

    def ceiling(self, paths: list[str]) -> float:
        import dataexplore as dx
        from dataexplore.core.images import DEFAULT_MAX_PIXELS
        from dataexplore.embedding.batches import ImageDataset

        n, size = len(paths), self.batch_size(len(paths))
        data = ImageDataset(dx.load(paths), np.arange(n), self.clip.preprocess_cfg, self.clip.preprocess,
                            DEFAULT_MAX_PIXELS, hash_rows=set(range(n)))
        seconds = {}
        for threads in sorted({1, self.threads}):  # dx.embed decodes on one thread; more is slower (the GIL)
            t = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                batches = [b.pixels for b in pool.map(lambda s: data.batch(s, min(s + size, n)), range(0, n, size))]
            seconds[threads] = time.perf_counter() - t
        self.ready[n] = batches
        self.decode_threads[n] = seconds
        return min(seconds.values())

    def model_only(self, paths: list[str]) -> float:
        import torch

        from dataexplore.core.images import DEFAULT_MAX_PIXELS
        from dataexplore.embedding.batches import Batch, to_model_input
        from dataexplore.embedding.plan import encode

        batches = self.ready.get(len(paths))
        if batches is None:
            self.ceiling(paths)
            batches = self.ready[len(paths)]
        cfg = self.clip.preprocess_cfg

        def one(pixels):
            with torch.inference_mode():
                _, x = to_model_input(Batch(rows=list(range(len(pixels))), pixels=pixels), cfg, self.dev,
                                      self.dtype, DEFAULT_MAX_PIXELS)
                return encode(self.tower, x).numpy()

        torch.set_num_threads(1)  # as dx.embed on a CPU: one torch thread per worker thread
        try:
            t = time.perf_counter()
            with ThreadPoolExecutor(self.threads) as pool:
                list(pool.map(one, batches))
            return time.perf_counter() - t
        finally:
            torch.set_num_threads(self.torch_threads)

    def dataexplore(self, paths: list[str]) -> float:
        import dataexplore as dx

        self.runs += 1
        cache = self.tmp / f"cache-{self.runs}"  # cold: nothing cached, no file hash memoised
        t = time.perf_counter()
        emb = dx.embed(paths, self.model, self.pretrained, device="cpu", cache_dir=cache, progress=False)
        seconds = time.perf_counter() - t
        assert emb.stats["computed"] == len(paths), emb.stats
        return seconds

    def run(self, row: str, paths: list[str]) -> float:
        return {"plain": self.plain, "ceiling": self.ceiling, "model": self.model_only,
                "dataexplore": self.dataexplore}[row](paths)


def compare(args) -> dict:
    """Every row at every size, ``args.rounds`` times, rotating the order of the rows."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = args.folder or tmp / "png"
        paths = write_pngs(Path(folder), max(args.sizes))
        rows = Rows(args.model, args.pretrained, tmp)
        for row in ROWS:  # warm-up: first-call costs (oneDNN kernels, imports) are not measured
            rows.run(row, paths[:512])
        times: dict[int, dict[str, list[float]]] = {n: {r: [] for r in ROWS} for n in args.sizes}
        for rnd in range(args.rounds):
            for n in args.sizes:
                order = ROWS[rnd % len(ROWS):] + ROWS[:rnd % len(ROWS)]
                for row in order:
                    times[n][row].append(rows.run(row, paths[:n]))
                rows.ready.pop(n, None)
                decoding = {f"decode_{k}_threads": round(v, 3) for k, v in rows.decode_threads[n].items()}
                print(json.dumps({"round": rnd, "n": n, **{r: round(times[n][r][-1], 3) for r in ROWS}, **decoding}),
                      flush=True)
        cpu = platform.processor() or platform.machine()
        return {"model": args.model, "machine": f"{cpu}, {os.cpu_count()} cores", "torch": torch.__version__,
                "torch_threads": rows.torch_threads, "threads": rows.threads,
                "dtype": str(rows.dtype).replace("torch.", "") if rows.dtype else "float32",
                "batch": {n: rows.batch_size(n) for n in args.sizes}, "times": times}


def table(result: dict) -> str:
    """Markdown table: median seconds per row, and the median of the per-round ratios."""
    lines = [f"{result['model']}, {result['machine']}, torch {result['torch']}, dataexplore: {result['threads']} "
             f"threads x 1 torch thread, {result['dtype']}; plain loop: {result['torch_threads']} torch threads, fp32",
             "",
             "| images | plain loop | ceiling (decode+hash) | model only | dataexplore | vs plain loop | of ceiling |",
             "|---|---|---|---|---|---|---|"]
    for n, t in result["times"].items():
        med = {r: statistics.median(v) for r, v in t.items()}
        speed = [p / d for p, d in zip(t["plain"], t["dataexplore"])]
        frac = [c / d for c, d in zip(t["ceiling"], t["dataexplore"])]
        lines.append(
            f"| {int(n):,} | {med['plain']:.2f} s | {med['ceiling']:.2f} s | {med['model']:.2f} s | "
            f"{med['dataexplore']:.2f} s | **{statistics.median(speed):.2f}×** ({min(speed):.2f}-{max(speed):.2f}) | "
            f"**{statistics.median(frac):.0%}** ({min(frac):.0%}-{max(frac):.0%}) |")
    return "\n".join(lines)


# ---- --memory: one fresh process per (row, size) ---------------------------------------------------

def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Peak:
    """Highest resident memory seen while running, sampled every 5 ms."""

    def __enter__(self):
        self.base, self.peak, self._stop = rss(), rss(), False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, rss())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def memory_worker(kind: str, n: int, folder: str, model: str) -> dict:
    import dataexplore as dx

    paths = sorted(str(p) for p in Path(folder).glob("*.png"))[:n]
    with tempfile.TemporaryDirectory() as tmp:
        rows = Rows(model, None, Path(tmp))
        with Peak() as peak:
            if kind == "plain":
                seconds = rows.plain(paths)
            else:
                t = time.perf_counter()
                dx.embed(paths, model, cache_dir=Path(tmp) / "cache", progress=False)
                seconds = time.perf_counter() - t
    return {"kind": kind, "n": n, "seconds": round(seconds, 2), "peak_growth_mb": round(peak.growth_mb, 1),
            "output_mb": round(n * rows.clip.embed_dim * 4 / 2**20, 1)}


def memory(args) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp) / "png"
        write_pngs(Path(folder), max(args.sizes))
        for n in args.sizes:
            for kind in ("plain", "dataexplore"):
                res = subprocess.run([sys.executable, str(HERE), "--worker", kind, str(n), str(folder), args.model],
                                     capture_output=True, text=True, check=True)
                out.append(json.loads(res.stdout.strip().splitlines()[-1]))
                print(json.dumps(out[-1]), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 60000])
    p.add_argument("--rounds", type=int, default=3, help="repetitions of every row at every size")
    p.add_argument("--model", default="fashion-tiny")
    p.add_argument("--pretrained", default=None)
    p.add_argument("--folder", type=Path, default=None, help="where the PNG files are written (default: a temp folder)")
    p.add_argument("--memory", action="store_true", help="peak memory, a fresh process per row and size")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument("--worker", nargs=4, metavar=("KIND", "N", "FOLDER", "MODEL"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        kind, n, folder, model = args.worker
        print(json.dumps(memory_worker(kind, int(n), folder, model)))
        return 0
    if args.memory:
        result: object = memory(args)
    else:
        result = compare(args)
        print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
