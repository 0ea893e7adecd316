"""Analyses: do they find what was planted, against what a user would do on the 2-D map, and how fast.

Part 1, recovery (Fashion-MNIST embedded with ``fashion-tiny``). Each planted case is measured
twice in the same run: with dataexplore (full embedding space) and with the baseline a user would
otherwise reach for, the same method applied to the 2-D UMAP map they look at:

(a) coverage: reference = 20,000 train images with 97 % of the sandals removed, target = the
    10,000 test images; precision/recall of the top gap region against the test sandals.
    Baseline: the same kNN-share score computed on the 2-D map of both sets.
(b) failures: errors planted at 60 % in a subset (one class; two neighbouring classes), 8 %
    elsewhere, on the test set; precision/recall of the top slice against the subset.
    Baseline: k-means (10 clusters) on the 2-D map, highest-error cluster.
(c) concepts: with the reduced train set against the test set, is "sandal" flagged missing, and
    what share ratio is measured.

Part 2, scale: each analysis on 10,000 and 100,000 samples (the 70,000 Fashion-MNIST images plus
30,000 horizontally flipped train images, all embedded), in a fresh process each; peak memory is the
growth of resident memory during the analysis (sampled every 5 ms), after the data and the text
model are loaded. Baseline for time: scikit-learn's exact kNN
(``NearestNeighbors(algorithm="brute", metric="cosine")``) on the same vectors, the step that
dominates coverage.

Run::

    .venv/bin/python benchmarks/analysis.py            # both parts
    .venv/bin/python benchmarks/analysis.py --part recovery
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

import numpy as np

HERE = Path(__file__).resolve()


def _subset(emb, keep):
    import dataexplore as dx

    return dx.Embeddings(ids=emb.ids[keep], vectors=emb.vectors[keep], rows=emb.rows[keep], samples=emb.samples,
                         model=emb.model)


def _pr(found, planted) -> tuple[float, float]:
    found, planted = set(found), set(planted)
    hit = len(found & planted)
    return hit / max(len(found), 1), hit / max(len(planted), 1)


def _map_gap(xy_ref, xy_tgt, k, threshold=0.5):
    """Baseline (a): the coverage score from kNN on 2-D map coordinates, largest flagged component."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import NearestNeighbors

    xy = np.concatenate([xy_ref, xy_tgt])
    n_ref = len(xy_ref)
    _, nbrs = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy[n_ref:])
    nbrs = nbrs[:, 1:]
    p0 = n_ref / (len(xy) - 1)
    score = np.clip(1 - ((nbrs < n_ref).sum(1) + p0) / ((k + 1) * p0), 0, 1)
    flagged = score >= threshold
    rows = np.repeat(np.arange(len(xy_tgt)), k)
    cols = nbrs.ravel() - n_ref
    ok = (cols >= 0) & flagged[rows] & flagged[np.clip(cols, 0, None)]
    g = coo_matrix((np.ones(ok.sum()), (rows[ok], cols[ok])), shape=(len(xy_tgt),) * 2)
    _, comp = connected_components(g, directed=False)
    comp = np.where(flagged, comp, -1)
    if not flagged.any():
        return np.zeros(0, int)
    sizes = np.bincount(comp[comp >= 0])
    return np.flatnonzero(comp == int(np.argmax(sizes)))


def _map_slice(xy, wrong):
    """Baseline (b): k-means on the 2-D map, the cluster with the highest error rate."""
    from sklearn.cluster import KMeans

    km = KMeans(10, n_init=3, random_state=0).fit_predict(xy)
    rates = np.bincount(km, weights=wrong) / np.bincount(km)
    return np.flatnonzero(km == int(np.argmax(rates)))


def recovery() -> list[dict]:
    import dataexplore as dx

    rows = []
    train = dx.embed("fashion-mnist:train:20000", progress=False)
    test = dx.embed("fashion-mnist:test", progress=False)
    tl, sl = train.table["label"].astype(str).to_numpy(), test.table["label"].astype(str).to_numpy()
    rng = np.random.default_rng(0)
    ref = _subset(train, (tl != "Sandal") | (rng.random(len(tl)) < 0.03))
    sandals = test.ids[sl == "Sandal"]

    t0 = time.perf_counter()
    cov = dx.coverage(ref, test)
    t_cov = time.perf_counter() - t0
    p, r = _pr(cov.group_ids(0) if len(cov) else [], sandals)
    both = dx.Embeddings(ids=np.concatenate([ref.ids, test.ids]), vectors=np.concatenate([ref.vectors, test.vectors]))
    t0 = time.perf_counter()
    xy = dx.project(both, cache=False).embedding_
    t_map = time.perf_counter() - t0
    found = _map_gap(xy[:len(ref)], xy[len(ref):], cov.k)
    pb, rb = _pr(test.ids[found], sandals)
    rows.append({"case": "(a) coverage gap = the dropped class (Sandal)", "precision": p, "recall": r,
                 "baseline_precision": pb, "baseline_recall": rb, "seconds": t_cov,
                 "baseline_seconds": t_map, "note": f"top gap: {cov.groups().iloc[0]['description']}"})

    xy_test = dx.project(test, cache=False).embedding_
    for planted in (("Bag",), ("Sandal", "Sneaker")):
        inside = np.isin(sl, planted)
        wrong = np.where(inside, rng.random(len(sl)) < 0.6, rng.random(len(sl)) < 0.08)
        t0 = time.perf_counter()
        fs = dx.failures(test, correct=~wrong)
        t_fs = time.perf_counter() - t0
        p, r = _pr(fs.group_ids(0) if len(fs) else [], test.ids[inside])
        t0 = time.perf_counter()
        found = _map_slice(xy_test, wrong.astype(float))
        t_b = time.perf_counter() - t0
        pb, rb = _pr(test.ids[found], test.ids[inside])
        rows.append({"case": f"(b) failure slice = errors planted in {' + '.join(planted)}", "precision": p,
                     "recall": r, "baseline_precision": pb, "baseline_recall": rb, "seconds": t_fs,
                     "baseline_seconds": t_b, "note": f"top slice {fs.groups().iloc[0]['interval']}: "
                                                      f"{fs.groups().iloc[0]['description']}"})

    t0 = time.perf_counter()
    cc = dx.concepts(ref, ["sandal"], other=test, names=("train", "test"))
    t_cc = time.perf_counter() - t0
    row = cc.groups().set_index("name").loc["sandal"]
    rows.append({"case": "(c) concept coverage flags 'sandal' missing", "precision": float("nan"),
                 "recall": float("nan"), "baseline_precision": float("nan"), "baseline_recall": float("nan"),
                 "seconds": t_cc, "baseline_seconds": float("nan"),
                 "note": f"missing list {cc.missing()}; share train {row['share_train']:.2%} vs test "
                         f"{row['share_test']:.2%} (ratio {row['ratio']:.2f})"})
    return rows


def build_100k(path: Path) -> None:
    """The 70,000 Fashion-MNIST images plus 30,000 flipped train images, embedded, saved as npz."""
    import dataexplore as dx

    train, test = dx.embed("fashion-mnist:train", progress=False), dx.embed("fashion-mnist:test", progress=False)
    images = dx.load("fashion-mnist:train:30000").images[:, :, ::-1]
    flipped = dx.embed(dx.load(np.ascontiguousarray(images), ids=[f"flip-{i:05d}" for i in range(30000)]),
                       progress=False)
    ids = np.concatenate([train.ids, test.ids, flipped.ids])
    vectors = np.concatenate([train.vectors, test.vectors, flipped.vectors])
    labels = np.concatenate([train.table["label"].astype(str), test.table["label"].astype(str),
                             train.table["label"].astype(str)[:30000]])
    order = np.random.default_rng(0).permutation(len(ids))
    np.savez(path, ids=ids[order].astype(str), vectors=vectors[order], labels=np.asarray(labels[order], dtype=str), model=json.dumps(train.model))


class RssSampler:
    """Peak growth of this process's resident memory while running, sampled every 5 ms."""

    def __init__(self):
        self.base = self.peak = _rss()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "RssSampler":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, _rss())

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return max(self.peak, _rss()) - self.base


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(kind: str, n: int, data: Path) -> dict:
    """One analysis on the first ``n`` samples, in this fresh process: seconds and peak RSS growth."""
    import pandas as pd

    import dataexplore as dx

    z = np.load(data, allow_pickle=False)
    ids, vectors, labels = z["ids"][:n].astype(object), z["vectors"][:n], z["labels"][:n]
    model = json.loads(str(z["model"]))
    table = pd.DataFrame({"id": ids, "label": labels, "filepath": None})  # labels only, no images
    samples = dx.Samples(table, name="bench")
    emb = dx.Embeddings(ids=ids, vectors=vectors, model=model, samples=samples)
    # one-time costs stay out of the measurement: imports, thread pools, the text model
    from sklearn.neighbors import NearestNeighbors

    dx.analysis.knn(vectors[:64], k=5)
    NearestNeighbors(n_neighbors=5, algorithm="brute", metric="cosine").fit(vectors[:64]).kneighbors(vectors[:64])
    dx.analysis.vocabulary.text_model(emb)
    sampler = RssSampler().start()
    t0 = time.perf_counter()
    if kind == "coverage":
        half = n // 2
        dx.coverage(_subset(emb, np.arange(n) < half), _subset(emb, np.arange(n) >= half))
    elif kind == "failures":
        wrong = np.where(labels == "Bag", np.random.default_rng(0).random(n) < 0.6,
                         np.random.default_rng(1).random(n) < 0.08)
        dx.failures(emb, correct=~wrong)
    elif kind == "concepts":
        dx.concepts(emb)
    elif kind == "clusters":
        dx.clusters(emb)
    elif kind == "sklearn-knn":
        k = 20
        NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric="cosine").fit(vectors).kneighbors(vectors)
    elif kind == "our-knn":
        dx.analysis.knn(vectors, k=20)
    seconds = time.perf_counter() - t0
    return {"kind": kind, "n": n, "seconds": seconds, "peak_mb": sampler.stop() / 2**20,
            "vectors_mb": vectors.nbytes / 2**20}


def scale(sizes=(10_000, 100_000)) -> list[dict]:
    data = Path(tempfile.gettempdir()) / "dataexplore-bench-100k.npz"
    if not data.exists():
        build_100k(data)
    out = []
    for n in sizes:
        for kind in ("coverage", "concepts", "failures", "clusters", "our-knn", "sklearn-knn"):
            res = subprocess.run([sys.executable, str(HERE), "--worker", kind, "--n", str(n), "--data", str(data)],
                                 capture_output=True, text=True, check=True)
            out.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(json.dumps(out[-1]), flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["recovery", "scale", "all"], default="all")
    parser.add_argument("--worker")
    parser.add_argument("--n", type=int)
    parser.add_argument("--data", type=Path)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.data)))
        return 0
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, torch {torch.__version__}", flush=True)
    if args.part in ("recovery", "all"):
        print("| case | dataexplore precision / recall | 2-D map baseline precision / recall | seconds (ours) | note |")
        print("|---|---|---|---|---|")
        for r in recovery():
            if np.isnan(r["precision"]):
                print(f"| {r['case']} | – | – | {r['seconds']:.2f} | {r['note']} |", flush=True)
            else:
                print(f"| {r['case']} | **{r['precision']:.2f} / {r['recall']:.2f}** | "
                      f"{r['baseline_precision']:.2f} / {r['baseline_recall']:.2f} | {r['seconds']:.2f} | "
                      f"{r['note']} |", flush=True)
    if args.part in ("scale", "all"):
        results = scale()
        print("| analysis | n | seconds | peak RSS growth (MB) | vectors (MB) |")
        print("|---|---|---|---|---|")
        for r in results:
            print(f"| {r['kind']} | {r['n']:,} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | {r['vectors_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
