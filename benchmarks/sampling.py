"""A labeling budget spent well: how fast ``dx.sample`` picks, what its picks buy, and how even its balance is.

(a) **Speed.** 100,000 and 1,000,000 random-but-clustered unit vectors of width 512 (200 Gaussian
clusters around random directions, Zipf-distributed sizes, noise of norm about 0.6 before
normalising), 1,000 picks with each strategy (the uncertain ones on Dirichlet class probabilities),
and a balanced pick along three synthetic axes. The baseline is the k-center greedy a user would write
in numpy (full width, ``|x|² - 2 x·c + |c|²`` against the last pick, then ``argmax`` of the running
minimum), in the same process on the same vectors; at one million its per-step time is measured on
the first 50 steps and multiplied out (every step costs the same: one pass over all vectors).
``--clusters 0`` runs the same on vectors without any structure (the worst case for the pruning).
Quality: the covering radius (largest distance from a candidate to its nearest pick) and the mean
distance, in the full 512-d space, for ours (PCA-32), the naive full-width k-center, and random.
BLAS runs single-threaded for every contender (``threadpool_limits(1)``: on a shared 2-core CPU
threads only contend; ``dx.sample`` does the same by itself).

(b) **The loop** of ``benchmarks/loop.py``: a pixel logistic-regression classifier trained on a
labelled set of Fashion-MNIST train, an unlabeled pool of 20,000 other train images, both scenarios
(``data-gap``: sandals nearly absent; ``confusion``: balanced, look-alike tops confused), several
seeds. The same budget is spent on ``random``, plain margin ``uncertain`` (what loop.py calls
uncertainty), ``diverse`` (k-center greedy away from the labelled set), ``uncertain-diverse`` and
``typical``, the space-based ones in two embedding spaces (``fashion-tiny`` and ``pixels``, PCA-50
of the raw pixels); the batch is labelled with its true labels and the model retrained. Budgets:
200 labels (loop.py's) and 1,000 (the fashion-tiny space only). Reported: test accuracy gain per 100
labels, overall and on the scenario's classes (sandal; shirt, t-shirt, pullover, coat), against
random and against uncertainty, and the share of the batch in those classes.

(c) **Balance** on all 60,000 train images along five axes: ``label`` (real), ``brightness`` (real:
mean pixel value) and ``ink`` (real: share of non-zero pixels), both bucketed by quartiles,
``camera`` (synthetic: a skewed categorical that depends on the class, ``phone`` ~70 %, ``dslr``,
``webcam`` a few %, and 40 ``scanner`` images, too few for an equal share) and ``time`` (synthetic
capture times over two years, uploads growing exponentially, quartiles). Checked: each axis' largest
``|picked share - target share|`` in the report, and that the report names the bucket it could not
fill; beside it, how far an unbalanced random pick of the same size is from an equal split.

Run::

    .venv/bin/python benchmarks/sampling.py [--part a b c] [--seeds 3] [--budgets 200 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loop  # noqa: E402  (benchmarks/loop.py: the scenarios, the classifier)

STRATEGIES = ("diverse", "typical", "uncertain", "uncertain-diverse", "random")


def _single_thread():
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


# ---- (a) speed ---------------------------------------------------------------------------------------
def clustered(n: int, d: int = 512, clusters: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random-but-clustered unit vectors and their cluster ids (see the module docs); ``clusters=0``:
    no structure at all (isotropic Gaussian directions, every point in its own "cluster")."""
    rng = np.random.default_rng(seed)
    if clusters == 0:
        x = np.empty((n, d), np.float32)
        for s in range(0, n, 100_000):
            x[s:s + 100_000] = rng.standard_normal((min(n, s + 100_000) - s, d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x, np.arange(n)
    centres = rng.standard_normal((clusters, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.8
    label = rng.choice(clusters, n, p=weights / weights.sum())
    x = np.empty((n, d), np.float32)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        x[s:e] = centres[label[s:e]] + rng.standard_normal((e - s, d), dtype=np.float32) * np.float32(0.6 / np.sqrt(d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, label


def naive_kcenter(x: np.ndarray, n: int, steps: int | None = None) -> tuple[np.ndarray, float]:
    """k-center greedy as a user would write it in numpy; ``(picks, seconds per step)``."""
    sq = np.einsum("ij,ij->i", x, x)
    mind = np.full(len(x), np.inf, np.float32)
    i = int(np.argmin(((x - x.mean(0)) ** 2).sum(1)))
    picks = []
    t0 = time.perf_counter()
    for _ in range(n if steps is None else steps):
        picks.append(i)
        np.minimum(mind, sq - 2 * (x @ x[i]) + sq[i], out=mind)
        mind[i] = -1
        i = int(np.argmax(mind))
    return np.asarray(picks), (time.perf_counter() - t0) / len(picks)


def cover(x: np.ndarray, picks: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
    """Largest and mean distance from ``x[rows]`` to the nearest pick (full width)."""
    q = x[rows]
    best = np.full(len(q), np.inf)
    qq = np.einsum("ij,ij->i", q, q)
    for s in range(0, len(picks), 500):
        c = x[picks[s:s + 500]]
        for a in range(0, len(q), 20_000):
            d = qq[a:a + 20_000, None] - 2 * q[a:a + 20_000] @ c.T + np.einsum("ij,ij->i", c, c)[None, :]
            best[a:a + 20_000] = np.minimum(best[a:a + 20_000], d.min(1))
    dist = np.sqrt(np.maximum(best, 0))
    return float(dist.max()), float(dist.mean())


def speed(sizes: list[int], n: int = 1000, clusters: int = 200) -> list[dict]:
    import dataexplore as dx
    from dataexplore.analysis.sampling import sample

    out = []
    for size in sizes:
        t0 = time.perf_counter()
        x, label = clustered(size, clusters=clusters)
        print(f"# {size} vectors ({clusters or 'no'} clusters) made in {time.perf_counter() - t0:.0f} s", flush=True)
        emb = dx.Embeddings(ids=np.arange(size).astype(str), vectors=x)
        rng = np.random.default_rng(1)
        probs = rng.dirichlet(np.full(10, 0.3), size).astype(np.float32)
        group = label % 10 if clusters else rng.integers(0, 10, size)
        meta = pd.DataFrame({"cluster": group, "camera": rng.choice(["phone", "dslr", "webcam"], size,
                                                                    p=[0.8, 0.15, 0.05]),
                             "brightness": rng.random(size)})
        evaluate = np.sort(rng.choice(size, min(size, 100_000), replace=False))
        row = {"candidates": size, "clusters": clusters, "dims": 512, "picks": n}
        picked = {}
        for strategy in (*STRATEGIES, "diverse balanced"):
            kwargs: dict = {"probabilities": probs} if strategy.startswith("uncertain") else {}
            if strategy.endswith("balanced"):
                kwargs.update(balance_by=["cluster", "camera", "brightness"], metadata=meta)
            t0 = time.perf_counter()
            s = sample(emb, n, strategy.split()[0], progress=False, **kwargs)
            row[f"{strategy} s"] = round(time.perf_counter() - t0, 2)
            picked[strategy] = s.ids.astype(np.int64)
        steps = None if size <= 100_000 else 50
        with _single_thread():
            naive, per_step = naive_kcenter(x, n, steps)
        row["naive k-center s"] = round(per_step * n, 1)
        row["naive measured"] = "all steps" if steps is None else f"{steps} steps × {n / steps:.0f}"
        row["speed-up diverse vs naive"] = round(row["naive k-center s"] / row["diverse s"], 1)
        with _single_thread():
            for name, picks in (("diverse", picked["diverse"]), ("random", picked["random"]),
                                ("typical", picked["typical"])) + ((("naive", naive),) if steps is None else ()):
                radius, mean = cover(x, picks, evaluate)
                row[f"radius {name}"], row[f"mean dist {name}"] = round(radius, 3), round(mean, 3)
        if clusters:
            row["clusters hit diverse/random"] = \
                f"{len(set(label[picked['diverse']]))}/{len(set(label[picked['random']]))}"
        print(json.dumps(row), flush=True)
        out.append(row)
        del x, emb
    return out


# ---- (b) the loop ------------------------------------------------------------------------------------
FOCUS = {"data-gap": [5], "confusion": [0, 2, 4, 6]}


def loop_run(scenario: str, seed: int, budget: int, spaces: dict, xtr, xte, ytr, yte) -> dict:
    from dataexplore.analysis.sampling import sample

    first = next(iter(spaces.values()))[0]
    keep, pool = loop.setup(scenario, seed, first)
    focus = np.isin(yte, FOCUS[scenario])
    with _single_thread():
        model = loop.train_classifier(xtr[keep], ytr[keep], seed)
    ok = model.predict(xte) == yte
    out = {"scenario": scenario, "seed": seed,
           "before": {"overall": float(ok.mean()), "focus": float(ok[focus].mean())}}
    probs = model.predict_proba(xtr[pool])
    pool_first = first.subset(pool)
    chosen = {"random": sample(pool_first, budget, "random", seed=seed, progress=False),
              "uncertain": sample(pool_first, budget, "uncertain", probabilities=probs, progress=False)}
    timing = {}
    for space, (train_emb, *_rest) in spaces.items():
        pool_emb, labelled = train_emb.subset(pool), train_emb.subset(keep)
        for strategy in ("diverse", "uncertain-diverse", "typical"):
            t0 = time.perf_counter()
            chosen[f"{strategy} ({space})"] = sample(pool_emb, budget, strategy, already=labelled, seed=seed,
                                                     probabilities=probs if strategy.startswith("uncertain") else None,
                                                     progress=False)
            timing[f"{strategy} ({space})"] = time.perf_counter() - t0
    position = pd.Series(np.arange(len(pool)), index=pool_first.ids)
    for name, s in chosen.items():
        rows = pool[position[s.ids].to_numpy()]
        with _single_thread():
            retrained = loop.train_classifier(xtr[np.r_[keep, rows]], ytr[np.r_[keep, rows]], seed)
        ok = retrained.predict(xte) == yte
        out[name] = {"overall": float(ok.mean()), "focus": float(ok[focus].mean()),
                     "batch_in_focus": float(np.isin(ytr[rows], FOCUS[scenario]).mean())}
    out["sample_seconds"] = {k: round(v, 2) for k, v in timing.items()}
    return out


def summarise_loop(results: list[dict], budget: int) -> str:
    lines = ["| scenario | batch | overall gain / 100 labels (± sd over seeds) | vs random | vs uncertain "
             "| focus-class gain / 100 labels (± sd) | vs random | vs uncertain | batch in focus classes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for scenario in FOCUS:
        rs = [r for r in results if r["scenario"] == scenario]
        if not rs:
            continue
        names = [k for k in rs[0] if isinstance(rs[0][k], dict) and "overall" in rs[0][k] and k != "before"]
        gains = {(m, w): 100 * np.array([r[m][w] - r["before"][w] for r in rs]) / budget
                 for m in names for w in ("overall", "focus")}
        gain = {k: float(v.mean()) for k, v in gains.items()}

        def ratio(m, other, w, gain=gain):
            return f"{gain[(m, w)] / gain[(other, w)]:.2f}×" if gain[(other, w)] > 1e-9 else "–"

        for m in names:
            share = np.mean([r[m]["batch_in_focus"] for r in rs])
            lines.append(f"| {scenario} | {m} | {gain[(m, 'overall')]:+.4f} ± {gains[(m, 'overall')].std():.4f} | "
                         f"{ratio(m, 'random', 'overall')} | {ratio(m, 'uncertain', 'overall')} | "
                         f"{gain[(m, 'focus')]:+.4f} ± {gains[(m, 'focus')].std():.4f} | "
                         f"{ratio(m, 'random', 'focus')} | {ratio(m, 'uncertain', 'focus')} | {share:.0%} |")
    return "\n".join(lines)


# ---- (c) balance -------------------------------------------------------------------------------------
def fashion_metadata(train, seed: int = 0) -> pd.DataFrame:
    """Five axes for the 60,000 train images: three real, two synthetic (see the module docs)."""
    rng = np.random.default_rng(seed)
    pixels = train.samples.images.reshape(len(train.samples.images), -1)[train.rows]
    y = train.table["label_id"].to_numpy()
    dslr = np.where(np.isin(y, [5, 7, 8, 9]), 0.3, 0.15)  # shoes and bags shot on a DSLR more often
    u = rng.random(len(y))
    camera = np.where(u < dslr, "dslr", np.where(u < dslr + 0.06, "webcam", "phone")).astype(object)
    camera[rng.choice(np.flatnonzero(y == 8), 40, replace=False)] = "scanner"  # too few for an equal share
    days = np.log1p(rng.random(len(y)) * (np.e ** 3 - 1)) / 3 * 730  # uploads grow exponentially over 2 years
    return pd.DataFrame({"label": train.table["label"].to_numpy(), "camera": camera,
                         "brightness": pixels.mean(1), "ink": (pixels > 0).mean(1),
                         "time": pd.Timestamp("2023-01-01") + pd.to_timedelta(days, unit="D")}, index=train.ids)


def balance(train, sizes=(500, 2000)) -> list[dict]:
    from dataexplore.analysis.balance import balance_report, bucketize, deviations
    from dataexplore.analysis.sampling import sample

    meta = fashion_metadata(train)
    axes_names = ["label", "camera", "brightness", "ink", "time"]
    axes = bucketize(meta.reset_index(drop=True), axes_names)
    out = []
    for n in sizes:
        for strategy in ("diverse", "typical", "random"):
            t0 = time.perf_counter()
            s = sample(train, n, strategy, balance_by=axes_names, metadata=meta.drop(columns=["label"]), progress=False)
            seconds = time.perf_counter() - t0
            dev = s.deviations()
            out.append({"picks": n, "strategy": strategy, "balanced": True, "seconds": round(seconds, 2),
                        **{f"max dev {a}": round(float(dev[a]), 4) for a in axes_names},
                        "unfilled": "; ".join(f"{r.axis}={r.value}: {r.picked}/{r.requested:.0f} ({r.note})"
                                              for r in s.unfilled.itertuples())})
            print(json.dumps(out[-1]), flush=True)
        # without balancing: how far a random pick is from an equal split on each axis
        picks = np.random.default_rng(0).choice(len(train), n, replace=False)
        report = balance_report(axes, picks, balanced=True)
        dev = deviations(report)
        out.append({"picks": n, "strategy": "random", "balanced": False, "seconds": None,
                    **{f"max dev {a}": round(float(dev[a]), 4) for a in axes_names}, "unfilled": ""})
        print(json.dumps(out[-1]), flush=True)
    s = sample(train, 500, "diverse", balance_by=axes_names, metadata=meta.drop(columns=["label"]), progress=False)
    print(s.report.round(3).to_string(index=False), flush=True)
    return out


def table(rows: list[dict]) -> str:
    cols = list(rows[0])
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] +
                     ["| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |" for r in rows])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", default=["a", "b", "c"], choices=["a", "b", "c"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--clusters", type=int, default=200, help="(a): clusters of the vectors; 0: none")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budgets", nargs="+", type=int, default=[200, 1000],
                        help="labels per batch; the pixels space runs at the first only")
    args = parser.parse_args(argv)
    print(f"# {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    if "a" in args.part:
        print(table(speed(args.sizes, clusters=args.clusters)), flush=True)
    if "b" in args.part or "c" in args.part:
        import analysis  # noqa: E402  (benchmarks/analysis.py: the two embedding spaces)

        spaces = analysis.spaces()
        train, test, ytr, yte = spaces["fashion-tiny"]
    if "b" in args.part:
        xtr, xte = loop.pixels(train.samples)[train.rows], loop.pixels(test.samples)[test.rows]
        for i, budget in enumerate(args.budgets):
            results = []
            used = spaces if i == 0 else {"fashion-tiny": spaces["fashion-tiny"]}
            for scenario in FOCUS:
                for seed in range(args.seeds):
                    r = loop_run(scenario, seed, budget, used, xtr, xte, ytr, yte)
                    results.append(r)
                    print(json.dumps(r), flush=True)
            print(f"budget {budget}:\n" + summarise_loop(results, budget), flush=True)
    if "c" in args.part:
        print(table(balance(train)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
