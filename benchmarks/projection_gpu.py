"""cuML UMAP on 1,000,000 × 512 vectors: the GPU projection target (<= 60 s on one CUDA card).

Ready to run on a machine with a CUDA GPU and cuML (``pip install cuml-cu12``); it exits with a
clear message elsewhere. The data are 1M L2-normalised 512-D vectors drawn around 50 random centres
(CLIP-like: clusters on the sphere), made in a second. Timed: ``dx.project(emb, backend="cuml")``
with dataexplore's defaults (PCA to 50 dimensions on the GPU's host, cuML UMAP, every point
fitted, no sampling), and trustworthiness on 5,000 random points against cuML on those points alone.

Target written in the scale-out issue: <= 60 s for the whole projection on one CUDA card.

Run::

    .venv/bin/python benchmarks/projection_gpu.py            # --n 1000000 --dim 512
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def data(n: int, dim: int, centres: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, dim)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=512)
    args = p.parse_args(argv)
    try:
        import cuml  # noqa: F401
        import torch

        assert torch.cuda.is_available()
    except (ImportError, AssertionError):
        print("needs a CUDA GPU and cuML (pip install cuml-cu12): nothing measured", file=sys.stderr)
        return 2
    from sklearn.manifold import trustworthiness

    import dataexplore as dx

    x = data(args.n, args.dim)
    dx.Projection(backend="cuml", cache=False).fit(x[:20_000])  # warm up CUDA and cuML
    t0 = time.perf_counter()
    proj = dx.Projection(backend="cuml", cache=False).fit(x)
    seconds = time.perf_counter() - t0
    sub = np.random.default_rng(1).choice(args.n, 5000, replace=False)
    alone = dx.Projection(backend="cuml", cache=False).fit(x[sub]).embedding_
    print(json.dumps({"n": args.n, "dim": args.dim, "seconds": round(seconds, 1), "target_s": 60,
                      "met": seconds <= 60, "backend": proj.backend_, "sampling": proj.sampling_,
                      "trust_map": round(float(trustworthiness(x[sub], proj.embedding_[sub], n_neighbors=10)), 4),
                      "trust_alone": round(float(trustworthiness(x[sub], alone, n_neighbors=10)), 4),
                      "gpu": torch.cuda.get_device_name()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
