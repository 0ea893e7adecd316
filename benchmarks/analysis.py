"""Analyses: do they find what was planted, ahead of the simple baselines, in two embedding spaces?

Part 1, recovery. Every family of planted cases (``benchmarks/planted.py``: how each is built and
what each baseline is) runs in two embedding spaces of the same real images: ``fashion-tiny``
(the shipped CLIP) and ``pixels`` (PCA-50 of the raw pixels, L2-normalised: a space that owes
nothing to the CLIP model); concepts need a text tower, so their second space is a second small CLIP
trained with another seed (``--second-clip``, about 4 minutes the first time, then cached). Tool and
baselines run in the same process on the same vectors.

- failure slices, family (i) sub-cluster of one class and (ii) spanning two look-alike classes, two
  generators each (``grown``, ``kmeans``), 6 seeds/classes: the top slice's precision and recall
  against the planted set; a case *passes* at precision >= 0.8 and recall >= 0.8. Null: uniform 5 %
  errors, three seeds: samples flagged.
- coverage: a dropped class (t-shirt, pullover, coat, shirt, bag, ankle boot) and a dropped
  sub-concept (1-3 % of a class); per-sample AUROC of the gap and the top region's precision and
  recall. Null: a random 90 % of train.
- concepts: each class removed from the train split, its prompt checked against the test split
  (with labels, and without): is it flagged missing?

Part 2, scale: as before, each analysis on 10,000 and 100,000 samples in a fresh process, against
scikit-learn's exact kNN.

Run::

    .venv/bin/python benchmarks/analysis.py --part recovery [--second-clip]
    .venv/bin/python benchmarks/analysis.py --part slices   # the failure-slice grid alone
    .venv/bin/python benchmarks/analysis.py            # both parts
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
sys.path.insert(0, str(HERE.parent))

import planted  # noqa: E402  (benchmarks/planted.py)


def spaces(second_clip: bool = False) -> dict:
    """name -> (train Embeddings, test Embeddings, label ids train, label ids test)."""
    from sklearn.decomposition import PCA

    import dataexplore as dx

    train, test = dx.embed("fashion-mnist:train", progress=False), dx.embed("fashion-mnist:test", progress=False)
    ytr, yte = train.table["label_id"].to_numpy(), test.table["label_id"].to_numpy()
    out = {"fashion-tiny": (train, test, ytr, yte)}
    xtr = train.samples.images.reshape(len(train), -1).astype(np.float32) / 255
    xte = test.samples.images.reshape(len(test), -1).astype(np.float32) / 255
    pca = PCA(50, random_state=0).fit(xtr)

    def unit(a):
        return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)

    out["pixels"] = (
        dx.Embeddings(ids=train.ids, vectors=unit(pca.transform(xtr)), rows=train.rows, samples=train.samples),
        dx.Embeddings(ids=test.ids, vectors=unit(pca.transform(xte)), rows=test.rows, samples=test.samples),
        ytr, yte)
    if second_clip:
        model = second_clip_model()
        out["fashion-tiny-seed1"] = (dx.embed("fashion-mnist:train", model=model, progress=False),
                                     dx.embed("fashion-mnist:test", model=model, progress=False), ytr, yte)
    return out


def second_clip_model() -> str:
    """A second small CLIP, trained like fashion-tiny with seed 1 (once; kept in the cache)."""
    from dataexplore.embedding.cache import cache_root

    folder = cache_root() / "benchmark-models" / "fashion-tiny-seed1"
    if not (folder / "open_clip_model.safetensors").is_file():
        subprocess.run([sys.executable, "-m", "dataexplore.models.train_fashion_tiny", "--seed", "1", "--out",
                        str(folder)], check=True)
    return f"local-dir:{folder}"


def _subset(emb, keep):
    return emb.subset(keep)


def _row(p, r):
    return {"precision": p, "recall": r, "pass": bool(p >= 0.8 and r >= 0.8)}


def slices(space: str, test, yte) -> list[dict]:
    import dataexplore as dx
    from dataexplore.analysis.neighbors import knn

    _, nbrs = knn(test.vectors, k=40)
    rows = []
    for fam, gen, name, wrong, inside in planted.slice_cases(test.vectors, yte, nbrs):
        t0 = time.perf_counter()
        fs = dx.failures(test, correct=~wrong)
        seconds = time.perf_counter() - t0
        graph = dx.failures(test, correct=~wrong, refine=False)
        found = {"dataexplore": fs.members[0] if len(fs) else [],
                 "dataexplore_graph_only": graph.members[0] if len(graph) else [],
                 "knn_error_smoothing": planted.knn_error_smoothing(wrong, nbrs),
                 "kmeans_cells": planted.kmeans_cells(test.vectors, wrong)}
        for method, f in found.items():
            rows.append({"space": space, "family": fam, "generator": gen, "case": name, "method": method,
                         **_row(*planted.precision_recall(f, inside)),
                         "seconds": seconds if method == "dataexplore" else np.nan})
        print(json.dumps(rows[-4:]), flush=True)
    for seed in range(3):
        null = np.random.default_rng(seed).random(len(yte)) < 0.05
        fs = dx.failures(test, correct=~null)
        rows.append({"space": space, "family": "null", "generator": "uniform 5 %", "case": f"seed {seed}",
                     "method": "dataexplore", "flagged": int(sum(len(m) for m in fs.members))})
        rows.append({"space": space, "family": "null", "generator": "uniform 5 %", "case": f"seed {seed}",
                     "method": "knn_error_smoothing", "flagged": int(len(planted.knn_error_smoothing(null, nbrs)))})
    return rows


def coverage(space: str, train, test, ytr, yte) -> list[dict]:
    from sklearn.metrics import roc_auc_score

    import dataexplore as dx

    cases = []
    for c in (0, 2, 4, 6, 8, 9):
        cases.append(("dropped class", f"class {c}", ytr != c, yte == c))
    for c, seed in ((0, 1), (7, 3), (5, 6), (8, 7)):
        drop, gap = planted.subconcept(train.vectors, ytr, test.vectors, yte, c, seed)
        keep = np.ones(len(ytr), bool)
        keep[drop] = False
        cases.append(("dropped sub-concept", f"class {c}, {int(gap.sum())} test samples", keep, gap))
    rng = np.random.default_rng(0)
    null_keep = np.zeros(len(ytr), bool)
    null_keep[rng.choice(len(ytr), int(0.9 * len(ytr)), replace=False)] = True
    cases.append(("null", "random 90 % of train", null_keep, np.zeros(len(yte), bool)))
    rows = []
    for fam, name, keep, gap in cases:
        ref = train.subset(keep)
        t0 = time.perf_counter()
        cov = dx.coverage(ref, test)
        seconds = time.perf_counter() - t0
        from dataexplore.analysis.neighbors import knn

        t0 = time.perf_counter()
        knn(test.vectors, np.concatenate([ref.vectors, test.vectors]), k=cov.k + 1)
        knn_seconds = time.perf_counter() - t0
        results = {"dataexplore": (cov.gap_scores.to_numpy(), cov.members),
                   "knn_pooled_fraction": planted.knn_pooled_fraction(ref.vectors, test.vectors),
                   "kmeans_ratio": planted.kmeans_ratio(ref.vectors, test.vectors)}
        for method, (score, groups) in results.items():
            p, r = planted.precision_recall(groups[0], gap) if groups and gap.any() else (0.0, 0.0)
            rows.append({"space": space, "family": fam, "case": name, "method": method,
                         "auroc": float(roc_auc_score(gap, score)) if gap.any() else np.nan,
                         "precision": p, "recall": r, "regions": len(groups),
                         "flagged": int(sum(len(g) for g in groups)),
                         "seconds": seconds if method == "dataexplore" else np.nan,
                         "knn_seconds": knn_seconds})
        print(json.dumps(rows[-3]), flush=True)
    return rows


def concepts(space: str, train, test, ytr, yte) -> list[dict]:
    import dataexplore as dx
    from dataexplore.language import vocabulary
    from dataexplore.sources.datasets import FASHION_MNIST_PHRASES

    rows = []
    for c, phrase in enumerate(FASHION_MNIST_PHRASES):
        ref = train.subset(ytr != c)
        for labelled in (True, False):
            r, t = (ref, test) if labelled else (dx.Embeddings(ids=ref.ids, vectors=ref.vectors, model=ref.model),
                                                dx.Embeddings(ids=test.ids, vectors=test.vectors, model=test.model))
            cc = dx.concepts(r, [f"a photo of a {phrase}"], other=t, names=("train", "test"), default_vocabulary=False)
            row = cc.groups().iloc[0]
            rows.append({"space": space, "case": phrase, "labels": labelled, "method": "dataexplore",
                         "missing": row["status"] == "missing", "status": row["status"],
                         "threshold_source": row["threshold_source"]})
        # baseline: per-concept thresholds (calibrated on labels), raw shares, ratio < 0.25
        text = vocabulary.concept_vectors(vocabulary.text_model(test), [phrase])
        other = yte != c
        tau = float(np.quantile((test.vectors @ text.T)[other, 0], 0.98))
        a, b = float(((ref.vectors @ text.T)[:, 0] >= tau).mean()), float(((test.vectors @ text.T)[:, 0] >= tau).mean())
        rows.append({"space": space, "case": phrase, "labels": True, "method": "per_concept_threshold_counts",
                     "missing": a / max(b, 1e-9) < 0.25, "status": f"ratio {a / max(b, 1e-9):.2f}"})
    return rows


def recovery(second_clip: bool = False, only_slices: bool = False) -> dict:
    sp = spaces(second_clip and not only_slices)
    out = {"slices": [], "coverage": [], "concepts": []}
    for name in ("fashion-tiny", "pixels"):
        train, test, ytr, yte = sp[name]
        out["slices"] += slices(name, test, yte)
        if not only_slices:
            out["coverage"] += coverage(name, train, test, ytr, yte)
    for name in [n for n in sp if n != "pixels" and not only_slices]:
        out["concepts"] += concepts(name, *sp[name])
    return out


def summarise(res: dict) -> str:
    import pandas as pd

    lines = []
    s = pd.DataFrame([r for r in res["slices"] if r["family"] != "null"])
    lines.append("| space | family | generator | method | passes (P>=0.8 & R>=0.8) | mean precision | mean recall |")
    lines.append("|---|---|---|---|---|---|---|")
    for (space, fam, gen, method), g in s.groupby(["space", "family", "generator", "method"], sort=False):
        lines.append(f"| {space} | ({fam}) | {gen} | {method} | {int(g['pass'].sum())} / {len(g)} | "
                     f"{g['precision'].mean():.2f} | {g['recall'].mean():.2f} |")
    nulls = pd.DataFrame([r for r in res["slices"] if r["family"] == "null"])
    for (space, method), g in nulls.groupby(["space", "method"], sort=False):
        lines.append(f"| {space} | null | uniform 5 % | {method} | flagged {g['flagged'].tolist()} | | |")
    lines.append("")
    if not res["coverage"]:
        return "\n".join(lines)
    c = pd.DataFrame(res["coverage"])
    lines.append("| space | family | method | mean AUROC | mean top-region precision | mean top-region recall "
                 "| regions | seconds (kNN alone) |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for (space, fam, method), g in c.groupby(["space", "family", "method"], sort=False):
        secs = f"{g['seconds'].mean():.1f} ({g['knn_seconds'].mean():.1f})" if method == "dataexplore" else ""
        lines.append(f"| {space} | {fam} | {method} | {g['auroc'].mean():.3f} | {g['precision'].mean():.2f} | "
                     f"{g['recall'].mean():.2f} | {g['regions'].tolist()} | {secs} |")
    lines.append("")
    k = pd.DataFrame(res["concepts"])
    lines.append("| space | method | labels | removed classes flagged missing |")
    lines.append("|---|---|---|---|")
    for (space, method, labelled), g in k.groupby(["space", "method", "labels"], sort=False):
        lines.append(f"| {space} | {method} | {'yes' if labelled else 'no'} | {int(g['missing'].sum())} / {len(g)} |")
    return "\n".join(lines)


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
    np.savez(path, ids=ids[order].astype(str), vectors=vectors[order], labels=np.asarray(labels[order], dtype=str),
             model=json.dumps(train.model))


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
    from dataexplore.language import vocabulary

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
    vocabulary.text_model(emb)
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
    parser.add_argument("--part", choices=["recovery", "slices", "scale", "all"], default="all",
                        help="slices: the failure-slice grid of the recovery part alone")
    parser.add_argument("--worker")
    parser.add_argument("--n", type=int)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--second-clip", action="store_true", help="also a second small CLIP (trains once, ~4 min)")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.data)))
        return 0
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, torch {torch.__version__}", flush=True)
    if args.part in ("recovery", "slices", "all"):
        res = recovery(args.second_clip, only_slices=args.part == "slices")
        out = Path(tempfile.gettempdir()) / "dataexplore-bench-recovery.json"
        out.write_text(json.dumps(res, default=float))
        print(summarise(res), flush=True)
        print(f"(every case: {out})")
    if args.part in ("scale", "all"):
        results = scale()
        print("| analysis | n | seconds | peak RSS growth (MB) | vectors (MB) |")
        print("|---|---|---|---|---|")
        for r in results:
            print(f"| {r['kind']} | {r['n']:,} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | {r['vectors_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
