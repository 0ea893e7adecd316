"""Outliers: planted out-of-distribution images in Fashion-MNIST, found by ``dx.outliers`` beside
cleanlab, FiftyOne Brain and a plain kNN distance, in the same process on the same vectors.

Planted (per seed and rate, a third each): crops of scikit-image photos (``skimage.data``: astronaut,
camera, chelsea, coffee, rocket and 15 more; square crops of 30-100 % of the short side, grayscale,
28×28, three crops of each photo drawn, so they can clump), handwritten digits of scikit-learn's
``load_digits`` (8×8, upsampled to 20×20 and centred on a black 28×28 canvas like MNIST) and noise
images (uniform, blurred Gaussian, salt-and-pepper, gradients). Rates: 0.5 %, 1 %, 2 % of the
10,000 Fashion-MNIST test images; seeds 0, 1, 2.

Two setups:

- **reference**: target = the test images + the planted ones, reference = 10,000 train images (a
  fixed random subset, so that each call takes seconds). ``dx.outliers(target, reference=ref)``;
  cleanlab ``OutOfDistribution().fit(features=ref)`` then ``.score(features=target)`` (fitted once
  per space, its fit time counted once); baseline: mean cosine distance to the 10 nearest reference
  samples.
- **alone**: the target set alone. ``dx.outliers(target)``; cleanlab
  ``OutOfDistribution().fit_score(features=target)``; FiftyOne Brain ``compute_uniqueness`` with
  ``embeddings=`` the same vectors (seed 0 only unless ``--fiftyone-seeds``: each call spends most of
  its time writing to MongoDB); baseline: mean distance to the 10 nearest other samples.

Ours runs with its default ``local_weight=0.25`` and, to show the trade-off, with 0.5.

Measures: AUROC of each method's score (planted against test images), precision@planted (share of
planted images among the top ``m`` scores, ``m`` = number planted), per-family AUROC; for ours also
the flagged set's precision and recall and the share of test images flagged (``fpr`` = 0.01 asks for
about 1 %), and a null run (nothing planted). Spaces: ``fashion-tiny`` (the shipped CLIP),
``fashion-tiny-seed1`` (the same recipe trained with seed 1, from ``benchmarks/analysis.py``) and
``pixels`` (PCA-50 of raw pixels fitted on train, L2-normalised).

Run::

    .venv/bin/python benchmarks/outliers.py [--seeds 3] [--spaces fashion-tiny,fashion-tiny-seed1,pixels]
        [--fiftyone-seeds 1] [--out /tmp/outliers.json]
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

RATES = (0.005, 0.01, 0.02)
REFERENCE = 10_000

PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket", "cat", "clock", "coins", "moon", "page", "text",
          "hubble_deep_field", "immunohistochemistry", "grass", "gravel", "brick", "cell", "colorwheel",
          "stereo_motorcycle", "retina")


def _gray(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img[0] if isinstance(img, tuple) else img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 3:
        img = (img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    return np.clip(img, 0, 255).astype(np.uint8)


def photo_crops(n: int, rng: np.random.Generator, names=PHOTOS, per_photo: int = 3) -> tuple[np.ndarray, list[str]]:
    """``n`` random square crops (30-100 % of the short side) of scikit-image photos, 28×28 grayscale,
    ``per_photo`` crops of each photo drawn (so crops of one photo may form a clump)."""
    from PIL import Image
    from skimage import data

    order = [names[i] for i in rng.permutation(len(names))]
    chosen = [order[(i // per_photo) % len(order)] for i in range(n)]
    pics = {name: _gray(getattr(data, name)()) for name in set(chosen)}
    out, kinds = [], []
    for name in chosen:
        img = pics[name]
        side = int(min(img.shape) * rng.uniform(0.3, 1.0))
        y, x = rng.integers(0, img.shape[0] - side + 1), rng.integers(0, img.shape[1] - side + 1)
        crop = Image.fromarray(img[y:y + side, x:x + side]).resize((28, 28), Image.Resampling.LANCZOS)
        out.append(np.asarray(crop))
        kinds.append(f"photo:{name}")
    return np.stack(out) if out else np.zeros((0, 28, 28), np.uint8), kinds


def digits(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """``n`` handwritten digits of scikit-learn's ``load_digits`` (8×8, 0-16) as MNIST-like 28×28:
    upsampled to 20×20 and centred on a black 28×28 canvas."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    pick = rng.choice(len(d.images), n, replace=False)
    out = []
    for i in pick:
        small = Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8)).resize((20, 20), Image.Resampling.BICUBIC)
        canvas = np.zeros((28, 28), np.uint8)
        canvas[4:24, 4:24] = np.asarray(small)
        out.append(canvas)
    return np.stack(out) if out else np.zeros((0, 28, 28), np.uint8), [f"digit:{d.target[i]}" for i in pick]


def noise(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """``n`` noise images of four kinds: uniform pixels, blurred Gaussian noise, sparse salt-and-pepper
    on black, a random linear gradient."""
    from scipy.ndimage import gaussian_filter

    out, kinds = [], []
    for i in range(n):
        kind = ("uniform", "blurred", "salt", "gradient")[i % 4]
        if kind == "uniform":
            img = rng.integers(0, 256, (28, 28))
        elif kind == "blurred":
            g = gaussian_filter(rng.normal(size=(28, 28)), rng.uniform(1, 3))
            img = (g - g.min()) / max(np.ptp(g), 1e-9) * 255
        elif kind == "salt":
            img = (rng.random((28, 28)) < rng.uniform(0.02, 0.2)) * 255
        else:
            a = rng.normal(size=2)
            yy, xx = np.mgrid[0:28, 0:28]
            g = a[0] * yy + a[1] * xx
            img = (g - g.min()) / max(np.ptp(g), 1e-9) * 255
        out.append(np.asarray(img, np.uint8))
        kinds.append(f"noise:{kind}")
    return np.stack(out) if out else np.zeros((0, 28, 28), np.uint8), kinds


def planted(m: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """``m`` OOD images (28×28 uint8), a third photo crops, a third digits, the rest noise; their kinds."""
    rng = np.random.default_rng(1000 + seed)
    n_photo, n_digit = (m + 2) // 3, (m + 1) // 3
    parts = [photo_crops(n_photo, rng), digits(n_digit, rng), noise(m - n_photo - n_digit, rng)]
    return np.concatenate([p[0] for p in parts]), sum((p[1] for p in parts), [])


def unit(a: np.ndarray) -> np.ndarray:
    return (a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def spaces(names: list[str]) -> dict:
    """name -> (train vectors, test vectors, function: uint8 images -> vectors)."""
    from sklearn.decomposition import PCA

    import dataexplore as dx

    train, test = dx.embed("fashion-mnist:train", progress=False), dx.embed("fashion-mnist:test", progress=False)
    out = {}
    for name in names:
        if name == "fashion-tiny":
            out[name] = (train.vectors, test.vectors, lambda x: dx.embed(x, progress=False).vectors)
        elif name == "fashion-tiny-seed1":
            import analysis  # benchmarks/analysis.py

            model = analysis.second_clip_model()
            out[name] = (dx.embed("fashion-mnist:train", model=model, progress=False).vectors,
                         dx.embed("fashion-mnist:test", model=model, progress=False).vectors,
                         lambda x, model=model: dx.embed(x, model=model, progress=False).vectors)
        elif name == "pixels":
            xtr = train.samples.images.reshape(len(train), -1).astype(np.float32) / 255
            xte = test.samples.images.reshape(len(test), -1).astype(np.float32) / 255
            pca = PCA(50, random_state=0).fit(xtr)
            out[name] = (unit(pca.transform(xtr)), unit(pca.transform(xte)),
                         lambda x, pca=pca: unit(pca.transform(x.reshape(len(x), -1).astype(np.float32) / 255)))
        else:
            raise SystemExit(f"unknown space {name!r}")
    return out


def knn_baseline(target: np.ndarray, reference: np.ndarray | None, k: int = 10) -> np.ndarray:
    from dataexplore.analysis.neighbors import knn

    d, _ = knn(target, reference, k=k)
    return d.mean(1)


class FiftyOne:
    """FiftyOne Brain's uniqueness on a dataset of placeholder samples (the embeddings are given)."""

    def __init__(self, n: int):
        os.environ.setdefault("FIFTYONE_DATABASE_DIR", tempfile.mkdtemp(prefix="fo-outliers-"))
        os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
        os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
        os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
        import fiftyone as fo

        self.fo = fo
        self.ds = fo.Dataset()
        self.ds.add_samples([fo.Sample(filepath=f"/placeholder/{i}.png") for i in range(n)])

    def uniqueness(self, vectors: np.ndarray) -> np.ndarray:
        import fiftyone.brain as fob

        view = self.ds.limit(len(vectors))
        fob.compute_uniqueness(view, embeddings=vectors, progress=False)
        return np.asarray(view.values("uniqueness"), np.float64)


def measure(y: np.ndarray, score: np.ndarray, families: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    m = int(y.sum())
    top = np.argsort(-score, kind="stable")[:m]
    out = {"auroc": float(roc_auc_score(y, score)), "precision_at_planted": float(y[top].mean())}
    for fam in ("photo", "digit", "noise"):
        sel = (families == fam) | (y == 0)
        if (families == fam).any():
            out[f"auroc_{fam}"] = float(roc_auc_score(y[sel], score[sel]))
    return out


def ours(target: np.ndarray, reference: np.ndarray | None, y: np.ndarray,
         **kwargs) -> tuple[np.ndarray, dict, float]:
    import dataexplore as dx
    from dataexplore.analysis.outliers import outliers

    ids = np.arange(len(target)).astype(str)
    emb = dx.Embeddings.from_arrays(ids, target)
    ref = None if reference is None else dx.Embeddings.from_arrays(np.arange(len(reference)).astype(str), reference)
    t0 = time.perf_counter()
    res = outliers(emb, ref, progress=False, **kwargs)
    seconds = time.perf_counter() - t0
    flagged = res.scores["flagged"].to_numpy()
    grouped = np.zeros(len(target), bool)
    for name, members in zip(res.table["name"], res.members):
        if name != "isolated outliers":
            grouped[members] = True
    extra = {"flagged": int(flagged.sum()), "flagged_normal_share": float(flagged[y == 0].mean()),
             "flag_precision": float(y[flagged].mean()) if flagged.any() else float("nan"),
             "flag_recall": float(flagged[y == 1].mean()) if y.any() else float("nan"),
             "planted_in_groups": int((grouped & (y == 1)).sum()),
             "groups": int((res.table["name"] != "isolated outliers").sum()),
             "k": res.k}
    return res.scores["outlier"].to_numpy(), extra, seconds


def run(space: str, train: np.ndarray, test: np.ndarray, embed, seeds: int, fo_seeds: int, fo: FiftyOne | None):
    from cleanlab.outlier import OutOfDistribution

    rows = []
    ref = train[np.sort(np.random.default_rng(0).choice(len(train), REFERENCE, replace=False))]
    t0 = time.perf_counter()
    cl_ref = OutOfDistribution()
    cl_ref.fit(features=ref, verbose=False)
    cl_fit = time.perf_counter() - t0
    zeros = np.zeros(len(test))
    for setup, reference in (("reference", ref), ("alone", None)):  # null: nothing planted
        _, extra, seconds = ours(test, reference, zeros)
        rows.append({"space": space, "setup": setup, "rate": 0.0, "seed": 0, "method": "dataexplore",
                     "seconds": seconds, **extra})
        print(json.dumps(rows[-1]), flush=True)
    for seed in range(seeds):
        for rate in RATES:
            m = int(round(rate * len(test)))
            imgs, kinds = planted(m, seed)
            target = np.concatenate([test, embed(imgs)])
            y = np.r_[np.zeros(len(test)), np.ones(m)]
            fam = np.array(["fashion"] * len(test) + [k.split(":")[0] for k in kinds])
            case = {"space": space, "rate": rate, "seed": seed, "planted": m}
            for setup, reference in (("reference", ref), ("alone", None)):
                scores: dict[str, tuple[np.ndarray, dict, float]] = {}
                scores["dataexplore"] = ours(target, reference, y)
                scores["dataexplore_local0.5"] = ours(target, reference, y, local_weight=0.5)
                t0 = time.perf_counter()
                if reference is None:
                    cl = 1 - OutOfDistribution().fit_score(features=target, verbose=False)
                    scores["cleanlab"] = (cl, {}, time.perf_counter() - t0)
                else:
                    cl = 1 - cl_ref.score(features=target)
                    scores["cleanlab"] = (cl, {"fit_seconds_once": cl_fit}, time.perf_counter() - t0)
                t0 = time.perf_counter()
                scores["knn_distance"] = (knn_baseline(target, reference), {}, time.perf_counter() - t0)
                if reference is None and fo is not None and seed < fo_seeds:
                    t0 = time.perf_counter()
                    scores["fiftyone_uniqueness"] = (fo.uniqueness(target), {}, time.perf_counter() - t0)
                for method, (score, extra, seconds) in scores.items():
                    rows.append({**case, "setup": setup, "method": method, **measure(y, score, fam),
                                 "seconds": seconds, **extra})
                    print(json.dumps(rows[-1]), flush=True)
    return rows


def summarise(rows: list[dict]) -> str:
    import pandas as pd

    df = pd.DataFrame(rows)
    lines = []
    planted_rows = df[df["rate"] > 0]
    table = planted_rows.groupby(["space", "setup", "rate", "method"]).agg(
        auroc=("auroc", "mean"), p_at_m=("precision_at_planted", "mean"), seconds=("seconds", "mean"),
        runs=("seed", "count")).reset_index()
    wide = table.pivot_table(index=["space", "setup", "rate"], columns="method", values=["auroc", "p_at_m"])
    lines.append("AUROC and precision@planted, mean over seeds:\n" + wide.round(3).to_string())
    fam = planted_rows.groupby(["space", "setup", "method"])[["auroc_photo", "auroc_digit", "auroc_noise"]].mean()
    lines.append("per-family AUROC, mean over rates and seeds:\n" + fam.round(3).to_string())
    ours_rows = df[df["method"] == "dataexplore"]  # the default, local_weight=0.25
    flags = ours_rows.groupby(["space", "setup", "rate"])[
        ["flagged", "flagged_normal_share", "flag_precision", "flag_recall", "planted_in_groups", "groups"]].mean()
    lines.append("dataexplore flags (fpr=0.01; rate 0 = nothing planted):\n" + flags.round(3).to_string())
    secs = table.groupby(["setup", "method"])["seconds"].mean()
    lines.append("seconds per call (10,050-10,200 targets; reference 10,000):\n" + secs.round(2).to_string())
    return "\n\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--spaces", default="fashion-tiny,fashion-tiny-seed1,pixels")
    parser.add_argument("--fiftyone-seeds", type=int, default=1, help="seeds on which FiftyOne runs (0: never)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, torch {torch.__version__}", flush=True)
    t0 = time.perf_counter()
    fo = FiftyOne(10_000 + int(round(max(RATES) * 10_000))) if args.fiftyone_seeds > 0 else None
    rows = []
    for space, (train, test, embed) in spaces(args.spaces.split(",")).items():
        rows += run(space, train, test, embed, args.seeds, args.fiftyone_seeds, fo)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    print("\n" + summarise(rows))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
