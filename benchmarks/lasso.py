"""Lasso -> rows in the kernel at a million points: the plain point-in-polygon test over every point
against the grid index the Explorer answers lassos with (``dataexplore.core.geometry.PointGrid``).

Both give the same rows (checked on every lasso); this measures how long each takes, median of
``--repeat`` runs, on two layouts of ``--n`` points:

- ``umap``: a Fashion-MNIST-like UMAP layout, ten clusters of unequal size, spread and shape with
  heavy tails (tight cores holding dozens of points per grid cell, thin bridges, empty space);
- ``blobs``: the 20 Gaussian clusters of ``benchmarks/widget.py``.

and four lassos around the middle of the map, a circle over 45 % of its smaller side:

- ``circle``: a smooth circle, 80 vertices (what the browser benchmark's mouse path becomes);
- ``hand-drawn``: 400 vertices (the most the browser sends), the radius a random walk with a
  zigzag of 2.5 pixels on top, as a hand on a mouse draws it on a map 500 pixels across (the same
  shape ``benchmarks/widget.py`` draws with the mouse);
- ``star`` and ``scribble``: stress cases, not lassos anyone draws: 400 vertices alternating
  between two radii (long spikes), and 400 random vertices inside the circle (edges everywhere).

The grid's build time (once per map) is reported apart. ``--baseline`` adds the grid code of
another commit, timed in turn with this checkout's (run by run, so a busy machine slows both
alike). Run::

    git show 179acda:dataexplore/core/geometry.py > /tmp/geometry_179acda.py
    .venv/bin/python benchmarks/lasso.py --n 1000000 --repeat 15 --baseline /tmp/geometry_179acda.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dataexplore.core.geometry import PointGrid  # noqa: E402
from dataexplore.core.selection import points_in_polygon  # noqa: E402


def umap_like(n: int, seed: int = 0) -> np.ndarray:
    """A Fashion-MNIST-like UMAP layout: ten clusters, unequal in size, spread and shape."""
    rng = np.random.default_rng(seed)
    k = 10
    centres = rng.uniform(-10, 10, (k, 2))
    label = rng.choice(k, n, p=rng.dirichlet(np.full(k, 3.0)))
    scale = rng.uniform(0.4, 1.5, (k, 2))[label]
    turn = rng.uniform(0, np.pi, k)[label]
    z = rng.standard_t(5, (n, 2)) * scale
    c, s = np.cos(turn), np.sin(turn)
    return (centres[label] + np.c_[c * z[:, 0] - s * z[:, 1], s * z[:, 0] + c * z[:, 1]]).astype(np.float32)


def blobs(n: int, seed: int = 0) -> np.ndarray:
    """The points of ``benchmarks/widget.py``: 20 Gaussian clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6, size=(20, 2))
    return (centres[rng.integers(0, 20, n)] + rng.normal(size=(n, 2))).astype(np.float32)


def hand_drawn(cx: float, cy: float, r: float, px: float, k: int = 400, seed: int = 1) -> np.ndarray:
    """A ``k``-vertex lasso once around ``(cx, cy)``: the radius wanders (a random walk, closed) and
    a zigzag of about ``px`` rides on it. ``benchmarks/widget.py`` draws it with the mouse, in pixels."""
    rng = np.random.default_rng(seed)
    ang = np.linspace(0, 2 * np.pi, k, endpoint=False)
    walk = np.cumsum(rng.normal(scale=0.01, size=k))
    walk -= np.linspace(0, walk[-1], k)
    rad = r * (1 + walk) + px * (2.0 * (np.arange(k) % 2) - 1 + 0.5 * rng.normal(size=k))
    return np.c_[cx + rad * np.cos(ang), cy + rad * np.sin(ang)]


def lassos(xy: np.ndarray) -> dict[str, np.ndarray]:
    lo, hi = xy.min(0).astype(np.float64), xy.max(0).astype(np.float64)
    (cx, cy), r = (lo + hi) / 2, 0.22 * float((hi - lo).min())
    px = 2.5 * float((hi - lo).max()) / 500  # 2.5 pixels of a map drawn 500 pixels across
    rng = np.random.default_rng(2)
    ang = np.linspace(0, 2 * np.pi, 80, endpoint=False)
    star = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    spikes = r * np.where(np.arange(400) % 2, 1.0, 0.3)
    a, d = rng.uniform(0, 2 * np.pi, 400), r * np.sqrt(rng.uniform(0, 1, 400))
    return {
        "circle": np.c_[cx + r * np.cos(ang), cy + r * np.sin(ang)],
        "hand-drawn": hand_drawn(cx, cy, r, px),
        "star": np.c_[cx + spikes * np.cos(star), cy + spikes * np.sin(star)],
        "scribble": np.c_[cx + d * np.cos(a), cy + d * np.sin(a)],
    }


def load_grid(path: Path):
    """``PointGrid`` from a copy of ``geometry.py`` (another commit's)."""
    spec = importlib.util.spec_from_file_location("dataexplore.core._bench_geometry", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # its `from .selection import ...` resolves inside dataexplore.core
    return module.PointGrid


def timed(fs: list, repeat: int) -> list[tuple[float, object]]:
    """Median seconds and last result of each function of ``fs``, run in turn ``repeat`` times."""
    times, out = [[] for _ in fs], [None] * len(fs)
    for _ in range(repeat):
        for i, f in enumerate(fs):
            t = time.perf_counter()
            out[i] = f()
            times[i].append(time.perf_counter() - t)
    return [(float(np.median(t)), o) for t, o in zip(times, out)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--layouts", nargs="+", default=["umap", "blobs"], choices=["umap", "blobs"])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--baseline", type=Path, default=None, help="a geometry.py (another commit's) to compare")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    grids = [PointGrid] + ([load_grid(args.baseline)] if args.baseline else [])
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, "
          f"load {os.getloadavg()[0]:.1f}, baseline {args.baseline}", flush=True)
    results = []
    for layout in args.layouts:
        xy = (umap_like if layout == "umap" else blobs)(args.n)

        def build(grid_class, xy=xy):
            grid = grid_class(xy)
            grid.order  # noqa: B018 (the sort by cell, built on first use)
            return grid

        built = timed([lambda c=c: build(c) for c in grids], 3)
        build_s, index = [b for b, _ in built], [g for _, g in built]
        print(f"{layout}: grid {index[0].size}x{index[0].size} built in {build_s[0]:.3f} s", flush=True)
        for name, poly in lassos(xy).items():
            (plain_s, want), *answers = timed([lambda p=poly, xy=xy: np.flatnonzero(points_in_polygon(xy, p))]
                                              + [lambda p=poly, g=g: g.polygon(p) for g in index], args.repeat)
            row = {"layout": layout, "n": args.n, "lasso": name, "vertices": len(poly), "selected": len(want),
                   "identical": all(np.array_equal(got, want) for _, got in answers), "plain_s": plain_s,
                   "grid_s": answers[0][0], "build_s": build_s[0]}
            if args.baseline:
                row.update(baseline_s=answers[1][0], baseline_build_s=build_s[1])
            results.append(row)
            print(json.dumps(row), flush=True)
    base = " grid, baseline (s) | baseline / grid |" if args.baseline else ""
    print(f"\n| layout | lasso | vertices | selected | plain test (s) | grid (s) | plain / grid |{base} identical |")
    print("|---|---|---|---|---|---|---|" + ("---|---|" if args.baseline else "") + "---|")
    for r in results:
        extra = f" {r['baseline_s']:.4f} | {r['baseline_s'] / r['grid_s']:.1f}× |" if args.baseline else ""
        print(f"| {r['layout']} | {r['lasso']} | {r['vertices']} | {r['selected']:,} | {r['plain_s']:.3f} | "
              f"{r['grid_s']:.4f} | {r['plain_s'] / r['grid_s']:.0f}× |{extra} {r['identical']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["identical"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
