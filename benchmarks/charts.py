"""Linked views: one crossfilter step (a filter set on a chart -> the map's selection and every chart's
highlighted counts), dataexplore's kernel computation against the pandas a user would write.

Three charts over N rows: ``label`` (10 categories, bars), ``split`` (3 categories, bars) and ``score``
(float with 5 % NaN, 20-bin histogram). Filters: label in two bars, score in a range. One step is what
the Explorer computes when a bar is clicked or a range brushed: the rows passing all filters, and for
each chart the counts of the rows passing the *other* charts' filters (the crossfilter rule).

- **dataexplore**: ``Crossfilter.set`` + ``rows()`` + ``highlighted()`` (per-chart bar codes made once,
  then ``numpy.bincount``);
- **pandas**: boolean masks from ``isin``/comparisons, ``value_counts`` per bar chart and
  ``numpy.histogram`` over the same edges for the histogram, on the rows passing the other filters.

Both give identical rows and counts (checked). Medians of ``--repeats`` runs.

Run::

    .venv/bin/python benchmarks/charts.py [--sizes 1000000 10000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from dataexplore.widget import charts as ch


def table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = rng.normal(size=n)
    score[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({"label": pd.Categorical(rng.choice([f"class {i}" for i in range(10)], n)),
                         "split": pd.Categorical(rng.choice(["train", "val", "test"], n)), "score": score})


def dataexplore_step(cross: ch.Crossfilter, lo: float, hi: float) -> tuple[np.ndarray, list[np.ndarray]]:
    k, flt = cross.by_name("label", categories=["class 1", "class 4"])
    cross.set(k, flt)
    k, flt = cross.by_name("score", range=[lo, hi])
    cross.set(k, flt)
    rows = cross.rows()
    counts = cross.highlighted(rows)
    assert counts is not None
    return rows, counts


def pandas_step(df: pd.DataFrame, edges: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, list[np.ndarray]]:
    by_label = df["label"].isin(["class 1", "class 4"]).to_numpy()
    by_score = ((df["score"] >= lo) & (df["score"] < hi)).to_numpy()
    rows = np.flatnonzero(by_label & by_score)
    label = df["label"][by_score].value_counts(sort=False)  # each chart: the rows passing the others
    split = df["split"][by_label & by_score].value_counts(sort=False)
    score, _ = np.histogram(df["score"][by_label].dropna(), bins=edges)
    return rows, [label.to_numpy(), split.to_numpy(), score]


def median_time(fn, *args, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print("| rows | build charts (once) | dataexplore step | pandas step | pandas / dataexplore |")
    print("|---|---|---|---|---|")
    for n in args.sizes:
        df = table(n)
        ids = np.arange(n).astype(str)
        t = time.perf_counter()
        cross = ch.Crossfilter(ch.make_charts(["label", "split", "score"], df, ids, n))
        build = time.perf_counter() - t
        edges = cross.charts[2].edges
        assert edges is not None
        lo, hi = float(edges[8]), float(edges[13])  # a brush from one bin edge to another
        ours, (rows, counts) = median_time(dataexplore_step, cross, lo, hi, repeats=args.repeats)
        theirs, (prows, pcounts) = median_time(pandas_step, df, edges, lo, hi, repeats=args.repeats)
        np.testing.assert_array_equal(rows, prows)
        # dataexplore's bars are ordered by count; compare as {label: count} and the histogram bin by bin
        labels = cross.charts[0].labels
        assert dict(zip(labels, counts[0])) == {str(k): v for k, v in zip(df["label"].cat.categories, pcounts[0])}
        assert sorted(counts[1].tolist()) == sorted(pcounts[1].tolist())
        np.testing.assert_array_equal(counts[2][:len(pcounts[2])], pcounts[2])
        print(f"| {n:,} | {build:.2f} s | {ours * 1000:.0f} ms | {theirs * 1000:.0f} ms | {theirs / ours:.1f}× |")


if __name__ == "__main__":
    main()
