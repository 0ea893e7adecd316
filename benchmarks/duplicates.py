"""Duplicates and leaks: planted near-copies in real Fashion-MNIST, found by dataexplore, FiftyOne Brain
and cleanlab on the same vectors, in two embedding spaces.

What is planted. Copies made the ways real datasets get them, each from a different random test image
(this file's own transforms, not the ones :mod:`dataexplore.analysis.copies` calibrates with):

- ``jpeg``: re-encoded at JPEG quality 25-55;
- ``resize``: shrunk to 55-80 % (Lanczos) and enlarged back (bicubic);
- ``crop``: 1-3 pixels trimmed from random sides of the 28, enlarged back (bicubic);
- ``flip``: mirrored left-right;
- ``brightness``: pixel values multiplied by 0.70-0.85 or 1.15-1.30 (clipped);
- ``overlay``: the text "dx" stamped at 50 % opacity into a random corner.

Within a set: 100 copies per transform added to the 10,000 test images. Leaks: 50 copies per transform
of test images added to the 60,000 train images; ``duplicates(train, test)``.

How it is scored. Every tool reports pairs: dataexplore and FiftyOne groups (every pair inside a group),
cleanlab each image's set of near duplicates. Recall: the share of planted (copy, original) pairs
reported. Precision: the share of reported pairs that are duplicates, where a pair is a duplicate when
both images come from one original (a copy and its original, two copies of one image) or when their
originals are *natural* duplicates: Fashion-MNIST holds many, so a pair of original images counts as
a true duplicate when their pixels differ by at most 10 grey levels on average (directly or mirrored:
what a JPEG re-encoding at quality 25-55 changes in a typical image), and as a false one otherwise;
``precision_strict`` uses 5 grey levels instead.

The tools, on the same vectors in the same process: dataexplore ``duplicates`` (calibrated thresholds,
default settings; it also reads the images, as a user's Embeddings carry them); FiftyOne Brain
``compute_near_duplicates`` (cosine distance threshold 0.2 = its default, 0.05, 0.01, 0.002, 0.001) and
``compute_leaky_splits`` (0.01, 0.002, 0.0005: its default 0.2 pairs most of the 70,000 images in these
spaces and does not fit in memory) given the embeddings, and cleanlab ``Datalab`` with the
``near_duplicate`` issue type and ``features=`` (threshold 0.13 = its default, 0.05, 0.01; leaks: 0.13);
the peers' best setting is picked on the scores themselves (an upper bound for them). Timing: also
``duplicates`` on all 70,000 Fashion-MNIST images as one set.

Spaces: ``fashion-tiny`` and ``fashion-tiny-seed1`` (``benchmarks/analysis.py second_clip_model``).

Run::

    .venv/bin/python benchmarks/duplicates.py            # both spaces, 3 seeds, leaks for 2 (about 25 min)
    .venv/bin/python benchmarks/duplicates.py --leak-seeds 1   # what BENCHMARKS.md reports (about 15 min)
    .venv/bin/python benchmarks/duplicates.py --quick    # fashion-tiny, one seed, no peers
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

TRANSFORMS = ("jpeg", "resize", "crop", "flip", "brightness", "overlay")
NATURAL, STRICT = 10.0, 5.0  # mean absolute pixel difference (grey levels) of natural duplicates


def plant_copy(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One copy of a 28×28 uint8 image, made as ``kind`` (module docs)."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(img)
    if kind == "jpeg":
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(rng.integers(25, 56)))
        return np.asarray(Image.open(buf).convert("L"))
    if kind == "resize":
        s = max(8, round(28 * rng.uniform(0.55, 0.8)))
        return np.asarray(im.resize((s, s), Image.Resampling.LANCZOS).resize((28, 28), Image.Resampling.BICUBIC))
    if kind == "crop":
        left, right, top, bottom = rng.multinomial(int(rng.integers(1, 4)), [0.5, 0.5]).tolist() + \
            rng.multinomial(int(rng.integers(1, 4)), [0.5, 0.5]).tolist()
        return np.asarray(im.crop((left, top, 28 - right, 28 - bottom)).resize((28, 28), Image.Resampling.BICUBIC))
    if kind == "flip":
        return img[:, ::-1].copy()
    if kind == "brightness":
        f = rng.uniform(0.70, 0.85) if rng.random() < 0.5 else rng.uniform(1.15, 1.30)
        return np.clip(img.astype(np.float32) * f, 0, 255).round().astype(np.uint8)
    if kind == "overlay":
        layer = Image.new("L", (28, 28), 0)
        x, y = int(rng.choice([1, 15])), int(rng.choice([1, 17]))
        ImageDraw.Draw(layer).text((x, y), "dx", fill=128)
        return np.maximum(img, np.asarray(layer))
    raise ValueError(kind)


def plant(images: np.ndarray, per_kind: int, rng: np.random.Generator, exclude=()) -> tuple:
    """Copies of distinct random images: ``(copies, source rows, kinds)``."""
    pool = np.setdiff1d(np.arange(len(images)), np.asarray(exclude, np.int64))
    src = rng.choice(pool, per_kind * len(TRANSFORMS), replace=False)
    kinds = np.repeat(np.array(TRANSFORMS), per_kind)
    made = np.stack([plant_copy(images[i], k, rng) for i, k in zip(src, kinds)])
    return made, src, kinds


def mad(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute pixel difference of image pairs, the smaller of direct and mirrored."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    return np.minimum(np.abs(a - b).mean((1, 2)), np.abs(a - b[:, :, ::-1]).mean((1, 2)))




MAX_PAIRS = 300_000  # above this many reported pairs, precision is estimated on a uniform sample of them


def score(groups: list, origin: np.ndarray, pixels: np.ndarray, planted: list, kinds: dict,
          boundary: int | None = None, seed: int = 0) -> dict:
    """Precision / recall of what a tool reports (module docs): ``groups`` are lists of positions and
    every pair inside a group counts as reported (an edge is a group of two); with ``boundary`` only
    the pairs spanning the two sets (positions below it / from it) count.

    ``origin``: original row of every position (itself for originals); ``planted``: (copy, original)
    position pairs; ``kinds``: copy position -> transform. Precision is computed on every pair, or on
    a uniform sample of ``MAX_PAIRS`` of them when there are more (the huge groups of a loose threshold)."""
    groups = [g for g in (np.unique(np.asarray(g, np.int64)) for g in groups) if len(g) > 1]
    if boundary is None:
        sides = [(g, g) for g in groups]
        counts = np.array([len(g) * (len(g) - 1) // 2 for g in groups], np.int64)
    else:
        sides = [(g[g < boundary], g[g >= boundary]) for g in groups]
        counts = np.array([len(x) * len(y) for x, y in sides], np.int64)
    total = int(counts.sum())
    out: dict = {"reported": total}
    if total:
        rng = np.random.default_rng(seed)
        pick = np.repeat(np.arange(len(sides)), counts) if total <= MAX_PAIRS else \
            rng.choice(len(sides), MAX_PAIRS, p=counts / total)
        a, b = np.empty(len(pick), np.int64), np.empty(len(pick), np.int64)
        for gi in np.unique(pick):
            rows = np.flatnonzero(pick == gi)
            x, y = sides[gi]
            if total <= MAX_PAIRS:
                if boundary is None:
                    i, j = np.triu_indices(len(x), 1)
                else:
                    i, j = np.repeat(np.arange(len(x)), len(y)), np.tile(np.arange(len(y)), len(x))
            elif boundary is None:
                i = rng.integers(0, len(x), len(rows))
                j = (i + rng.integers(1, len(x), len(rows))) % len(x)
            else:
                i, j = rng.integers(0, len(x), len(rows)), rng.integers(0, len(y), len(rows))
            a[rows], b[rows] = x[i], y[j]
        oa, ob = origin[a], origin[b]
        same = oa == ob
        diff = np.full(len(a), np.inf)
        diff[~same] = mad(pixels[oa[~same]], pixels[ob[~same]])
        out["precision"] = float(np.mean(same | (diff <= NATURAL)))
        out["precision_strict"] = float(np.mean(same | (diff <= STRICT)))
    else:
        out["precision"] = out["precision_strict"] = float("nan")
    member: dict = {}
    for gi, g in enumerate(groups):
        for x in g.tolist():
            member.setdefault(x, set()).add(gi)
    hit = np.array([bool(member.get(c, set()) & member.get(o, set())) for c, o in planted])
    out["recall"] = float(hit.mean()) if len(hit) else float("nan")
    for k in TRANSFORMS:
        m = np.array([kinds[c] == k for c, _ in planted])
        out[f"recall_{k}"] = float(hit[m].mean()) if m.any() else float("nan")
    return out


# --- the tools --------------------------------------------------------------------------------------


def run_ours(emb, other=None) -> tuple[list, float, object]:
    from dataexplore.analysis.duplicates import duplicates

    t0 = time.perf_counter()
    res = duplicates(emb, other, progress=False) if other is not None else duplicates(emb, progress=False)
    seconds = time.perf_counter() - t0
    return [m.tolist() for m in res.members], seconds, res


def fiftyone_module():
    os.environ.setdefault("FIFTYONE_DATABASE_DIR", tempfile.mkdtemp(prefix="dx-bench-fo-"))
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
    import fiftyone as fo
    import fiftyone.brain as fob

    return fo, fob


def fiftyone_dataset(fo, n: int, tags: list | None = None):
    ds = fo.Dataset()
    samples = [fo.Sample(filepath=f"/nonexistent/dx-bench/{i}.png", tags=[tags[i]] if tags else []) for i in range(n)]
    ids = ds.add_samples(samples)
    return ds, {sid: i for i, sid in enumerate(ids)}


def run_fiftyone_near(fo, fob, vectors: np.ndarray, thresholds) -> dict:
    ds, pos = fiftyone_dataset(fo, len(vectors))
    out = {}
    try:
        for t in thresholds:
            t0 = time.perf_counter()
            res = fob.compute_near_duplicates(ds, threshold=t, embeddings=vectors)
            seconds = time.perf_counter() - t0
            groups = [[pos[u]] + [pos[d[0] if isinstance(d, tuple) else d] for d in dups]
                      for u, dups in res.neighbors_map.items()]
            out[t] = (groups, seconds)
    finally:
        ds.delete()
    return out


def run_fiftyone_leaks(fo, fob, vectors: np.ndarray, split: list, thresholds) -> dict:
    ds, pos = fiftyone_dataset(fo, len(vectors), split)
    out = {}
    try:
        for t in thresholds:
            t0 = time.perf_counter()
            res = fob.compute_leaky_splits(ds, splits=sorted(set(split)), threshold=t, embeddings=vectors)
            seconds = time.perf_counter() - t0
            # what leaks_for_sample() reads, for all samples at once (cross-split pairs are kept below)
            neighbors = res._similarity_index.neighbors_map
            groups = [[pos[u]] + [pos[d[0] if isinstance(d, tuple) else d] for d in dups]
                      for u, dups in neighbors.items()]
            out[t] = (groups, seconds)
    finally:
        ds.delete()
    return out


def run_cleanlab(vectors: np.ndarray, thresholds) -> dict:
    from cleanlab import Datalab

    out = {}
    for t in thresholds:
        t0 = time.perf_counter()
        lab = Datalab(data={"x": np.zeros(len(vectors))}, verbosity=0)
        lab.find_issues(features=vectors, issue_types={"near_duplicate": {"threshold": t, "metric": "cosine"}})
        seconds = time.perf_counter() - t0
        sets = lab.get_issues("near_duplicate")["near_duplicate_sets"]
        out[t] = ([[i, int(j)] for i, s in enumerate(sets) for j in s if i < int(j)], seconds)
    return out

# --- cases ------------------------------------------------------------------------------------------


def within(space: str, test, seed: int, peers: bool, fo_mods=None) -> list[dict]:
    import dataexplore as dx

    rng = np.random.default_rng(seed)
    images = test.samples.images
    made, src, kinds = plant(images, 100, rng)
    with tempfile.TemporaryDirectory() as tmp:
        copies = dx.embed(made, model=test.model["name"], pretrained=test.model.get("pretrained"), cache_dir=tmp,
                          progress=False)
    n = len(test)
    union = dx.Embeddings(
        ids=np.r_[test.ids, [f"copy-{i}" for i in range(len(made))]], vectors=np.r_[test.vectors, copies.vectors],
        samples=dx.Samples(pd.DataFrame({"id": np.r_[test.ids, [f"copy-{i}" for i in range(len(made))]]}),
                           images=np.concatenate([images, made])), model=test.model)
    origin = np.r_[np.arange(n), src]
    pixels = np.concatenate([images, made])
    planted = [(n + j, int(s)) for j, s in enumerate(src)]
    kind_of = {n + j: k for j, k in enumerate(kinds)}
    rows = []
    pairs, seconds, res = run_ours(union)
    rows.append({"case": "within", "space": space, "seed": seed, "tool": "dataexplore", "setting": "calibrated",
                 "seconds": seconds, **score(pairs, origin, pixels, planted, kind_of),
                 "threshold": res.calibration.note})
    print(json.dumps(rows[-1]), flush=True)
    if peers:
        for name, found in (("fiftyone", run_fiftyone_near(*fo_mods, union.vectors, (0.2, 0.05, 0.01, 0.002, 0.001))),
                            ("cleanlab", run_cleanlab(union.vectors, (0.13, 0.05, 0.01)))):
            for t, (p, s) in found.items():
                rows.append({"case": "within", "space": space, "seed": seed, "tool": name, "setting": t,
                             "seconds": s, **score(p, origin, pixels, planted, kind_of), "threshold": str(t)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def leaks(space: str, train, test, seed: int, peers: bool, fo_mods=None) -> list[dict]:
    import dataexplore as dx

    rng = np.random.default_rng(1000 + seed)
    made, src, kinds = plant(test.samples.images, 50, rng)
    with tempfile.TemporaryDirectory() as tmp:
        copies = dx.embed(made, model=test.model["name"], pretrained=test.model.get("pretrained"), cache_dir=tmp,
                          progress=False)
    n_tr, n_te = len(train), len(test)
    tr_ids = np.r_[train.ids, [f"leak-{i}" for i in range(len(made))]]
    train_plus = dx.Embeddings(ids=tr_ids, vectors=np.r_[train.vectors, copies.vectors], model=train.model,
                               samples=dx.Samples(pd.DataFrame({"id": tr_ids, "split": "train"}),
                                                  images=np.concatenate([train.samples.images, made])))
    # positions: train (+ copies) first, then test
    pixels = np.concatenate([train.samples.images, made, test.samples.images])
    n_plus = n_tr + len(made)
    origin = np.r_[np.arange(n_tr), n_plus + src, np.arange(n_plus, n_plus + n_te)]
    planted = [(n_tr + j, n_plus + int(s)) for j, s in enumerate(src)]
    kind_of = {n_tr + j: k for j, k in enumerate(kinds)}
    rows = []
    pairs, seconds, res = run_ours(train_plus, test)
    rows.append({"case": "leaks", "space": space, "seed": seed, "tool": "dataexplore", "setting": "calibrated",
                 "seconds": seconds, **score(pairs, origin, pixels, planted, kind_of, boundary=n_plus),
                 "threshold": res.calibration.note})
    print(json.dumps(rows[-1]), flush=True)
    if peers:
        vectors = np.r_[train_plus.vectors, test.vectors]
        split = ["train"] * n_plus + ["test"] * n_te
        # FiftyOne's default 0.2 (and 0.05) would pair most of the 70,000 images in these spaces (at 10,600
        # images 0.2 already reports millions of pairs): its neighbour lists do not fit in memory here
        fo_found = run_fiftyone_leaks(*fo_mods, vectors, split, (0.01, 0.002, 0.0005))
        cl_found = run_cleanlab(vectors, (0.13,))  # 60-80 s and several GB per run at 70,000 images
        for name, found in (("fiftyone", fo_found), ("cleanlab", cl_found)):
            for t, (p, s) in found.items():
                rows.append({"case": "leaks", "space": space, "seed": seed, "tool": name, "setting": t, "seconds": s,
                             **score(p, origin, pixels, planted, kind_of, boundary=n_plus), "threshold": str(t)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def timing_70k(train, test) -> dict:
    """The full 70,000 images as one set, calibrated, default settings."""
    import dataexplore as dx
    from dataexplore.analysis.duplicates import duplicates

    both = dx.Embeddings.concat([train, test])
    t0 = time.perf_counter()
    res = duplicates(both, progress=False)
    return {"case": "timing", "images": len(both), "seconds": time.perf_counter() - t0, "groups": len(res),
            "threshold": res.calibration.note}


def spaces(second: bool) -> dict:
    import dataexplore as dx

    out = {"fashion-tiny": (dx.embed("fashion-mnist:train", progress=False), dx.embed("fashion-mnist:test",
                                                                                      progress=False))}
    if second:
        from analysis import second_clip_model

        model = second_clip_model()
        out["fashion-tiny-seed1"] = (dx.embed("fashion-mnist:train", model=model, progress=False),
                                     dx.embed("fashion-mnist:test", model=model, progress=False))
    return out


def summarise(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame([r for r in rows if r["case"] != "timing"])
    best = []
    for (case, space, tool, setting), g in frame.groupby(["case", "space", "tool", "setting"], sort=False):
        best.append({"case": case, "space": space, "tool": tool, "setting": setting,
                     **{c: g[c].mean() for c in ["precision", "precision_strict", "recall", "seconds"]
                        + [f"recall_{k}" for k in TRANSFORMS]}})
    return pd.DataFrame(best)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--leak-seeds", type=int, default=2)
    ap.add_argument("--spaces", default="fashion-tiny,fashion-tiny-seed1")
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "dataexplore-bench-duplicates.json"))
    args = ap.parse_args(argv)
    rows: list[dict] = []
    fo_mods = None if args.quick else fiftyone_module()
    wanted = args.spaces.split(",")
    for space, (train, test) in spaces(second=not args.quick and "fashion-tiny-seed1" in wanted).items():
        if space not in wanted:
            continue
        for seed in range(1 if args.quick else args.seeds):
            rows += within(space, test, seed, peers=not args.quick, fo_mods=fo_mods)
        for seed in range(1 if args.quick else args.leak_seeds):
            rows += leaks(space, train, test, seed, peers=not args.quick, fo_mods=fo_mods)
        if space == "fashion-tiny":
            rows.append(timing_70k(train, test))
            print(json.dumps(rows[-1]), flush=True)
    table = summarise(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.round(3).to_string(index=False))
    meta = {"machine": platform.platform(), "python": platform.python_version(), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(meta, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
