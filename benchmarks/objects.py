"""Objects (issue #16): matching against pycocotools, and object-level findings against the simple baselines.

Three parts, each in one process on the same data:

1. **Matching** (``--part matching``): random COCO-like ground truth and detections (``--images`` images,
   3-12 boxes each, detections jittered from the truth plus false ones, crowd boxes, score ties) written as
   COCO files. pycocotools: ``COCO(file)``, ``loadRes(results)``, ``COCOeval(..., "bbox")`` with
   ``iouThrs=[0.5]``, the "all" area range and ``maxDets=[100]``, ``evaluate()``. dataexplore:
   ``load_objects(file, predictions=results)`` and ``match(objects)``. Both read the same files; the
   verdicts are compared (true positives, false positives, ignored, missed must be equal).
2. **Failure slices** (``--part slices``): composed scenes (``fashion_scenes``, real Fashion-MNIST items),
   the ``ComponentDetector`` fitted on 60 training scenes, 400 test scenes per seed; a ground-truth object
   *fails* when no prediction matches it (IoU 0.5, class-agnostic). Two planted weaknesses of the detector,
   by construction: *faint* items (25 % drawn at contrast 0.05-0.12: under its threshold) and *touching*
   items (15 % of the items pushed against another, which touches too: merged into one box). The truth is the faint (or
   touching) items; precision and recall of the top slice of ``dx.failures`` on the crops' embeddings
   against the kNN error-smoothing and k-means-cell baselines of ``planted.py``. Two spaces: the
   ``fashion-tiny`` crops and ``pixels`` (PCA-50 of the 32×32 crop thumbnails, L2-normalised).
3. **Coverage** (``--part coverage``): a kind of object left out of 300 training scenes, 150 test scenes;
   the top region of ``dx.coverage`` against ``planted.kmeans_ratio`` and ``planted.knn_pooled_fraction``,
   same two spaces.

Run::

    .venv/bin/python benchmarks/objects.py                   # all three, about 5 minutes on 2 cores
    .venv/bin/python benchmarks/objects.py --part matching --images 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

import planted  # noqa: E402  (benchmarks/planted.py)


def coco_files(folder: Path, n_images: int, seed: int) -> tuple[Path, Path, int]:
    """Random ground truth and detections as COCO files; returns (gt path, results path, boxes)."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480})
        for _ in range(int(rng.integers(3, 13))):
            w, h = rng.uniform(10, 200, 2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            cat = int(rng.integers(1, 4))
            crowd = int(rng.random() < 0.03)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": cat, "bbox": [x, y, w, h],
                         "area": w * h, "iscrowd": crowd})
            if rng.random() < 0.8:  # a detection near it, sometimes of a look-alike class
                jx, jy = rng.normal(0, 0.12, 2) * (w, h)
                label = cat if rng.random() < 0.85 else int(rng.integers(1, 4))
                dets.append({"image_id": i, "category_id": label, "score": round(float(rng.random()), 2),
                             "bbox": [x + jx, y + jy, w * rng.uniform(0.8, 1.2), h * rng.uniform(0.8, 1.2)]})
        for _ in range(int(rng.integers(0, 4))):  # false detections
            w, h = rng.uniform(10, 150, 2)
            dets.append({"image_id": i, "category_id": int(rng.integers(1, 4)), "score": round(float(rng.random()), 2),
                         "bbox": [rng.uniform(0, 640 - w), rng.uniform(0, 480 - h), w, h]})
    cats = [{"id": c, "name": f"class{c}"} for c in (1, 2, 3)]
    gt, res = folder / "instances.json", folder / "results.json"
    gt.write_text(json.dumps({"images": images, "categories": cats, "annotations": anns}))
    res.write_text(json.dumps(dets))
    return gt, res, len(anns) + len(dets)


def matching(n_images: int) -> dict:
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    import dataexplore as dx

    folder = Path(tempfile.mkdtemp(prefix="dx-bench-objects-"))
    gt_path, res_path, boxes = coco_files(folder, n_images, 0)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(str(res_path))
        t_coco_load = time.perf_counter() - t0
        ev = COCOeval(gt, dt, "bbox")
        ev.params.iouThrs, ev.params.areaRng, ev.params.areaRngLbl = np.array([0.5]), [[0, 1e10]], ["all"]
        ev.params.maxDets = [100]
        ev.evaluate()
    t_coco = time.perf_counter() - t0
    tp = fp = ign = missed = 0
    for e in ev.evalImgs:
        if e is None:
            continue
        dm, di = e["dtMatches"][0], e["dtIgnore"][0].astype(bool)
        tp += int(((dm > 0) & ~di).sum())
        fp += int(((dm == 0) & ~di).sum())
        ign += int(di.sum())
        missed += int(((e["gtMatches"][0] == 0) & ~np.asarray(e["gtIgnore"], bool)).sum())
    t0 = time.perf_counter()
    objects = dx.load_objects(gt_path, predictions=res_path)
    t_load = time.perf_counter() - t0
    found = dx.match(objects)
    t_dx = time.perf_counter() - t0
    status = found.objects["status"].value_counts()
    ours = (int(status.get("true positive", 0)), int(status.get("false positive", 0)),
            int(status.get("missed", 0)))
    return {"images": n_images, "boxes": boxes, "pycocotools_s": t_coco, "dataexplore_s": t_dx,
            "pycocotools_load_s": t_coco_load, "dataexplore_load_s": t_load, "ratio": t_coco / t_dx,
            "equal": ours == (tp, fp, missed),
            "tp_fp_missed": ours, "pycocotools_tp_fp_missed": (tp, fp, missed), "ignored_predictions": ign}


def pixel_space(objects):
    """PCA-50 of the 32×32 grayscale crop thumbnails, L2-normalised (a space that owes nothing to CLIP)."""
    from PIL import Image
    from sklearn.decomposition import PCA

    import dataexplore as dx

    crops = dx.crops(objects)
    x = np.stack([np.asarray(Image.fromarray(crops.read(r)).convert("L").resize((32, 32), Image.Resampling.BILINEAR),
                             np.float32).ravel() / 255 for r in range(len(crops))])
    z = PCA(50, random_state=0).fit_transform(x)
    return dx.Embeddings(ids=objects.ids, vectors=(z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32),
                         rows=np.arange(len(crops)), samples=crops)


def spaces(objects, cache_dir) -> dict:
    import dataexplore as dx

    return {"fashion-tiny": dx.embed(objects, progress=False, cache_dir=cache_dir), "pixels": pixel_space(objects)}


def slices(seeds, cache_dir) -> list[dict]:
    import dataexplore as dx
    from dataexplore.analysis.neighbors import knn
    from dataexplore.sources.scenes import fashion_scenes

    detector = dx.ComponentDetector().fit(fashion_scenes("train", 60, seed=1, low_contrast=0.3, overlap=0.3))
    rows = []
    for weakness, kwargs, column in (("faint", {"low_contrast": 0.25}, "faint"),
                                     ("touching", {"overlap": 0.15}, "touching")):
        for seed in seeds:
            test = fashion_scenes("test", 400, seed=10 + seed, **kwargs)
            found = dx.match(dx.Objects.concat([test, detector.predict(test)]), class_agnostic=True)
            correct = found.correct.reindex(test.ids).to_numpy()
            truth = test.table[column].to_numpy()
            wrong = ~correct
            for space, emb in spaces(test, cache_dir).items():
                _, nbrs = knn(emb.vectors, k=40)
                fs = dx.failures(emb, correct=correct)
                out = {"dataexplore": fs.members[0] if len(fs) else [],
                       "knn_error_smoothing": planted.knn_error_smoothing(wrong, nbrs),
                       "kmeans_cells": planted.kmeans_cells(emb.vectors, wrong)}
                for method, members in out.items():
                    p, r = planted.precision_recall(members, truth)
                    rows.append({"part": "slices", "weakness": weakness, "seed": seed, "space": space,
                                 "method": method, "precision": p, "recall": r, "objects": len(test),
                                 "miss_rate_inside": float(wrong[truth].mean()),
                                 "miss_rate_outside": float(wrong[~truth].mean())})
                print(json.dumps(rows[-3:]), flush=True)
    return rows


def coverage(kinds, cache_dir) -> list[dict]:
    import dataexplore as dx
    from dataexplore.sources.scenes import fashion_scenes

    rows = []
    for seed, kind in enumerate(kinds):
        train = fashion_scenes("train", 300, seed=seed, exclude_labels=[kind])
        test = fashion_scenes("test", 150, seed=100 + seed)
        s_train, s_test = spaces(train, cache_dir), spaces(test, cache_dir)
        missing = test.table["label"].to_numpy() == kind
        for space in s_train:
            cov = dx.coverage(s_train[space], s_test[space])
            out = {"dataexplore": cov.members[0] if len(cov) else [],
                   "kmeans_ratio": planted.kmeans_ratio(s_train[space].vectors, s_test[space].vectors)[1][:1],
                   "knn_pooled_fraction": planted.knn_pooled_fraction(s_train[space].vectors,
                                                                      s_test[space].vectors)[1][:1]}
            for method, members in out.items():
                found = members[0] if isinstance(members, list) and members and not np.isscalar(members[0]) \
                    else members
                p, r = planted.precision_recall(np.asarray(found, np.int64), missing)
                rows.append({"part": "coverage", "kind": kind, "space": space, "method": method,
                             "precision": p, "recall": r})
            print(json.dumps(rows[-3:]), flush=True)
    return rows


def summarise(rows: list[dict]) -> str:
    import pandas as pd

    out = []
    frame = pd.DataFrame(rows)
    if "weakness" in frame:
        s = frame[frame["part"] == "slices"].assign(passes=lambda d: (d.precision >= 0.8) & (d.recall >= 0.8))
        g = s.groupby(["weakness", "space", "method"], sort=False).agg(
            passes=("passes", "sum"), cases=("passes", "size"), precision=("precision", "mean"),
            recall=("recall", "mean"), inside=("miss_rate_inside", "mean"), outside=("miss_rate_outside", "mean"))
        out.append("| weakness | space | method | passes (P>=0.8 & R>=0.8) | mean precision | mean recall | "
                   "miss rate inside / outside |\n|---|---|---|---|---|---|---|")
        for (w, sp, m), r in g.iterrows():
            out.append(f"| {w} | {sp} | {m} | {r.passes} / {r.cases} | {r.precision:.2f} | {r.recall:.2f} | "
                       f"{r.inside:.2f} / {r.outside:.2f} |")
    if "kind" in frame:
        c = frame[frame["part"] == "coverage"]
        out.append("\n| kind left out | space | method | top-region precision | top-region recall |\n"
                   "|---|---|---|---|---|")
        for _, r in c.iterrows():
            out.append(f"| {r.kind} | {r.space} | {r.method} | {r.precision:.2f} | {r.recall:.2f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["matching", "slices", "coverage", "all"], default="all")
    parser.add_argument("--images", type=int, default=10_000, help="images of the matching benchmark")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args(argv)
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, torch {torch.__version__}", flush=True)
    cache_dir = Path(tempfile.mkdtemp(prefix="dx-bench-objects-cache-"))
    rows: list[dict] = []
    if args.part in ("matching", "all"):
        m = matching(args.images)
        print(json.dumps(m), flush=True)
        print(f"\nmatching {m['boxes']:,} boxes in {m['images']:,} images: pycocotools {m['pycocotools_s']:.1f} s "
              f"(reading {m['pycocotools_load_s']:.1f} s), dataexplore {m['dataexplore_s']:.1f} s (reading "
              f"{m['dataexplore_load_s']:.1f} s): {m['ratio']:.1f}x; verdicts equal: {m['equal']}\n", flush=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.part in ("slices", "all"):
        rows += slices(seeds, cache_dir)
    if args.part in ("coverage", "all"):
        rows += coverage(["Bag", "Trouser", "Sandal", "Coat", "Sneaker", "Dress"], cache_dir)
    if rows:
        print(summarise(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
