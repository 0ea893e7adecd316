"""Projection: dataexplore's UMAP path against the UMAP a FiftyOne user gets, side by side.

Baseline: umap-learn with the settings FiftyOne's ``compute_visualization(method="umap")`` uses by
default (``n_neighbors=15``, ``min_dist=0.1``, ``metric="euclidean"``, no seed so its SGD runs on
every core, spectral initialisation, no PCA) on the raw vectors. Ours: ``dx.project(emb)`` with its
defaults (PCA to 50 dimensions, cosine, seeded, PCA initialisation; above 200,000 points a fit on a
sample and ``transform`` for the rest). Both run in the same process after warming numba up on
6,000 points, so neither pays JIT compilation in the timings.

Quality: ``sklearn.manifold.trustworthiness`` (k = 10, cosine in the embedding space) on the same
random 3,000 points of each map.

Data: Fashion-MNIST embedded with ``fashion-tiny`` (128-D): 10,000 = the test split, 50,000 = the
first 50,000 train images, 100,000 = all 70,000 images plus 30,000 horizontally flipped train
images (``benchmarks/analysis.py``'s set, built once and kept in the temp folder).

Run::

    .venv/bin/python benchmarks/projection.py                 # 10k, 50k, 100k
    .venv/bin/python benchmarks/projection.py --sizes 10000 50000
    .venv/bin/python benchmarks/projection.py --sampled 300000  # the sample + transform path

``--sampled N`` times the sampled path on N points (the 100,000 set repeated with small noise), with
the trustworthiness report the projection itself gives (``proj.sampling_``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()


def vectors(n: int) -> np.ndarray:
    import dataexplore as dx

    if n <= 10_000:
        return dx.embed(f"fashion-mnist:test:{n}", progress=False).vectors
    if n <= 60_000:
        return dx.embed(f"fashion-mnist:train:{n}", progress=False).vectors
    path = Path(tempfile.gettempdir()) / "dataexplore-bench-100k.npz"
    if not path.is_file():
        sys.path.insert(0, str(HERE.parent))
        from analysis import build_100k

        build_100k(path)
    with np.load(path, allow_pickle=True) as data:
        return data["vectors"][:n]


def baseline(x: np.ndarray) -> np.ndarray:
    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return umap.UMAP(n_components=2, n_neighbors=15, metric="euclidean", min_dist=0.1,
                         random_state=None).fit_transform(x)


def ours(x: np.ndarray, **params):
    import dataexplore as dx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dx.Projection(cache=False, **params).fit(x)


def trust(x: np.ndarray, y: np.ndarray, sub: np.ndarray) -> float:
    from sklearn.manifold import trustworthiness

    return float(trustworthiness(x[sub], y[sub], n_neighbors=10, metric="cosine"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    p.add_argument("--sampled", type=int, default=None, help="also time the sampled path on this many points")
    args = p.parse_args(argv)

    warm = vectors(10_000)[:6000]
    baseline(warm)
    ours(warm)
    rows = []
    for n in args.sizes:
        x = vectors(n)
        sub = np.random.default_rng(0).choice(n, 3000, replace=False)
        t0 = time.perf_counter()
        yb = baseline(x)
        tb = time.perf_counter() - t0
        t0 = time.perf_counter()
        yo = ours(x).embedding_
        to = time.perf_counter() - t0
        row = {"n": n, "baseline_s": round(tb, 1), "ours_s": round(to, 1), "speedup": round(tb / to, 2),
               "baseline_trust": round(trust(x, yb, sub), 4), "ours_trust": round(trust(x, yo, sub), 4)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.sampled:
        base = vectors(100_000)
        reps = -(-args.sampled // len(base))
        rng = np.random.default_rng(1)
        x = np.concatenate([base + rng.normal(0, 0.01, base.shape).astype(np.float32) for _ in range(reps)])
        x = (x / np.linalg.norm(x, axis=1, keepdims=True))[:args.sampled].astype(np.float32)
        t0 = time.perf_counter()
        proj = ours(x)
        row = {"n": args.sampled, "sampled_s": round(time.perf_counter() - t0, 1), "sampling": proj.sampling_}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                      "python": platform.python_version(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
