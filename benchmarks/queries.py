"""Queries: does a lasso turned into a query find that kind of image in a pool, against the plain approach?

Fashion-MNIST embedded with ``fashion-tiny``. The map is the test split (``--map`` images), the pool
is the train split (``--pool`` images, never seen by the map). For each of the 10 classes we draw the
lasso a user would draw: the convex hull of the densest 80 % of the class's points on the UMAP map
(it catches some neighbours of other classes too, as real lassos do). Then, in the same run:

- **dataexplore**: ``selection.to_query()`` then ``query.search(pool)``: a linear probe of selected
  vs. the rest of the map, ranked by probe score;
- **baseline**: what one writes by hand: rank the pool by cosine similarity to the mean vector of
  the selected images (centroid search).

Measured: precision@100 and @1000 against the class the lasso was drawn around, the error of the
query's estimated precision at 100 (|estimated - true|), and the time to build the query and to
score the pool (the pool's embedding is shared by both and excluded).

Run::

    .venv/bin/python benchmarks/queries.py               # --map 10000 --pool 30000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def lasso_rows(xy: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from scipy.spatial import ConvexHull

    from dataexplore.core.selection import points_in_polygon

    pts = xy[mask]
    dist = np.linalg.norm(pts - np.median(pts, axis=0), axis=1)
    core = pts[dist < np.quantile(dist, 0.8)]
    return np.flatnonzero(points_in_polygon(xy, core[ConvexHull(core).vertices]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--map", type=int, default=10000)
    p.add_argument("--pool", type=int, default=30000)
    args = p.parse_args(argv)

    import dataexplore as dx
    from dataexplore.query import make_query

    emb = dx.embed(f"fashion-mnist:test:{args.map}", progress=False)
    xy = dx.project(emb).embedding_
    pool = dx.embed(f"fashion-mnist:train:{args.pool}", progress=False)
    labels = emb.table["label"].astype(str).to_numpy()
    pool_labels = pool.table["label"].astype(str).to_numpy()
    rows = []
    for cls in sorted(set(labels)):
        sel = lasso_rows(xy, labels == cls)
        t0 = time.perf_counter()
        query = make_query(emb.ids[sel], emb, name=cls, describe=False)
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = query.search(pool, top=1000, progress=False)
        t_search = time.perf_counter() - t0
        ours = res.table["label"].astype(str).to_numpy()
        t0 = time.perf_counter()
        centre = emb.vectors[sel].mean(axis=0)
        base_order = np.argsort(-(pool.vectors @ centre), kind="stable")[:1000]
        t_base = time.perf_counter() - t0
        base = pool_labels[base_order]
        p100 = float((ours[:100] == cls).mean())
        est = float(np.nanmean(res.table["probability"].to_numpy()[:100]))
        rows.append({"class": cls, "selected": int(len(sel)), "purity": float((labels[sel] == cls).mean()),
                     "ours_p100": p100, "base_p100": float((base[:100] == cls).mean()),
                     "ours_p1000": float((ours == cls).mean()), "base_p1000": float((base == cls).mean()),
                     "estimate_error": abs(est - p100), "build_s": t_build, "search_s": t_search, "base_s": t_base})
        r = rows[-1]
        print(f"{cls:12s} sel={r['selected']:5d} purity={r['purity']:.2f}  p@100 {r['ours_p100']:.2f} vs "
              f"{r['base_p100']:.2f}  p@1000 {r['ours_p1000']:.2f} vs {r['base_p1000']:.2f}  "
              f"|est-true|@100 {r['estimate_error']:.2f}  build {t_build:.2f}s search {t_search:.2f}s", flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "class"}
    print(json.dumps({"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                      "map": args.map, "pool": args.pool, "mean": mean}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
