"""Embedding at 1k, 10k and 60k images: time against the plain open_clip loop, and peak memory against N.

Each size runs in a fresh process (so peak resident memory is that run's own), on Fashion-MNIST
images written as PNG files (the train split's first N), with ``fashion-tiny``:

- **plain loop**: PIL open -> open_clip preprocess -> ``encode_image`` per batch of 256, fp32;
- **dataexplore**: ``dx.embed(paths)`` with a cold cache (``cache_dir`` in a fresh temp folder).

Peak memory is the growth of resident memory during the call (sampled every 5 ms) after the model is
loaded; the output itself is N × 128 × 4 bytes (0.5 MB per 1,000 images), so a flat pipeline grows by
about that and no more. The time ratio shows the per-image overhead of each path when the model is
small and decoding dominates; ``benchmarks/embed.py`` has the ViT-B-32 rows.

Run::

    .venv/bin/python benchmarks/embed_scale.py               # --sizes 1000 10000 60000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()


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


def worker(kind: str, n: int, folder: str) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    import dataexplore as dx
    from dataexplore.models import load_model

    paths = sorted(str(p) for p in Path(folder).glob("*.png"))[:n]
    clip = load_model("fashion-tiny")
    if kind == "plain":
        def run():
            out = []
            with torch.no_grad():
                for i in range(0, len(paths), 256):
                    x = torch.stack([clip.preprocess(Image.open(p).convert("RGB")) for p in paths[i:i + 256]])
                    out.append(F.normalize(clip.model.encode_image(x), dim=-1).numpy())
            return np.concatenate(out)
    else:
        def run():
            with tempfile.TemporaryDirectory() as cache:
                return dx.embed(paths, "fashion-tiny", cache_dir=cache, progress=False).vectors
    with Peak() as peak:
        t0 = time.perf_counter()
        vectors = run()
        seconds = time.perf_counter() - t0
    return {"kind": kind, "n": n, "seconds": round(seconds, 2), "peak_growth_mb": round(peak.growth_mb, 1),
            "output_mb": round(vectors.nbytes / 2**20, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 60000])
    p.add_argument("--worker", nargs=3, metavar=("KIND", "N", "FOLDER"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        kind, n, folder = args.worker
        print(json.dumps(worker(kind, int(n), folder)))
        return 0

    from PIL import Image

    import dataexplore as dx

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        images = dx.load(f"fashion-mnist:train:{max(args.sizes)}").images
        for i, img in enumerate(images):
            Image.fromarray(img).save(Path(folder) / f"{i:05d}.png")
        for n in args.sizes:
            for kind in ("plain", "dataexplore"):
                out = subprocess.run([sys.executable, str(HERE), "--worker", kind, str(n), folder],
                                     capture_output=True, text=True, check=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                      "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
