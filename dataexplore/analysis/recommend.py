"""What to label next for a failure slice, following its verdict (:mod:`.verdicts`).

- **Under-covered** slices: the slice becomes a query (:meth:`Selection.to_query
  <dataexplore.Selection.to_query>`) and the batch is spread over the pool images it matches: its
  best ``SPREAD × n`` matches are split into ``n`` k-means clusters and the match nearest each
  centre is taken (fewer matches than ``n``: the best ``n``; past ``MAX_CLUSTERS`` clusters, each
  gives its share of the batch, nearest its centre first, so the cost grows linearly with ``n``).
  The top ``n`` alone are the most typical and alike; a batch spread over the matches teaches the
  model the variety the training data lacks (on `benchmarks/loop.py` it gains more per label than
  the top ``n``).
- **Covered** slices: the pool images nearest the slice (the query's top ``candidates × n``) are
  ranked by the model's margin (top probability minus the second) on them, smallest first: the
  cases the model is least sure about where it fails. Without the model's pool probabilities
  there is no honest way to pick, and :func:`recommend` says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError

#: For covered slices: how many nearest pool images per recommended one are ranked by margin.
CANDIDATES = 30
#: For under-covered slices: how many best matches per recommended image the batch is spread over.
SPREAD = 10
#: Most k-means clusters a batch is spread over (larger batches take several from each).
MAX_CLUSTERS = 256


def recommend(result, k: int | str, pool: Any, n: int = 100, *, probabilities: Any = None,
              candidates: int = CANDIDATES, **search_kwargs):
    """The pool images to label for slice ``k`` of ``result`` (a :class:`FailureSlices` made with
    ``reference=``); see :meth:`FailureSlices.recommend`.

    Examples
    --------
    >>> batch = recommend(fs, 0, pool, n=200, probabilities=probs)  # doctest: +SKIP
    """
    from ..query.search import SearchResult, _pool_embeddings, search
    from .verdicts import COLLECT

    if "verdict" not in result.table.columns:
        raise DataexploreError("this analysis has no verdicts: run dx.failures(..., reference=train_embeddings) "
                               "to know what to recommend")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise DataexploreError(f"n must be a positive integer, got {n!r}")
    pos = result._position(k)
    row = result.table.iloc[pos]
    query = result.selection(pos).to_query(name=str(row["name"]), describe=False)
    pool = _pool_embeddings(query, pool, progress=search_kwargs.pop("progress", True), **search_kwargs)
    if row["verdict"] == COLLECT:
        found = search(query, pool, top=int(n) * SPREAD, **search_kwargs)
        order = _spread(found, int(n))
        table = found.table.iloc[order].reset_index(drop=True)
        table["rank"] = np.arange(1, len(table) + 1)
        table["reason"] = "like the slice: the training data lacks such images"
        return SearchResult(query=query, table=table, embeddings=found.embeddings.subset(order),
                            pool_size=found.pool_size, expected_matches=found.expected_matches)
    if probabilities is None:
        raise DataexploreError(f"{row['name']} is covered in training: more of the same data is unlikely to help. "
                               "Pass probabilities= (the model's class probabilities on the pool) to get the pool "
                               "images near the slice on which the model is least certain")
    near = search(query, pool, top=int(n) * int(candidates), **search_kwargs)
    margin = _margins(probabilities, near, pool)
    order = np.argsort(margin, kind="stable")[: int(n)]
    table = near.table.iloc[order].reset_index(drop=True)
    table.insert(2, "margin", margin[order])
    table["rank"] = np.arange(1, len(table) + 1)
    table["reason"] = "near the slice, and the model is unsure about it"
    return SearchResult(query=query, table=table, embeddings=near.embeddings.subset(order),
                        pool_size=near.pool_size, expected_matches=near.expected_matches)


def _spread(found, n: int) -> np.ndarray:
    """Rows of ``found`` (ranked best first) for a batch of ``n`` spread over its matches, best first.

    The matches are split into ``n`` k-means clusters (at most ``MAX_CLUSTERS``, so the cost grows
    linearly with ``n``) and each cluster gives the matches nearest its centre, as many as its share
    of the matches (largest remainder; one each when there are ``n`` clusters).
    """
    from sklearn.cluster import KMeans

    table = found.table
    matches = np.flatnonzero(table["match"].to_numpy(bool)) if "match" in table.columns else np.arange(len(table))
    if len(matches) <= n:
        return np.arange(min(n, len(table)))
    vectors = found.embeddings.vectors[matches].astype(np.float32)
    km = KMeans(min(n, MAX_CLUSTERS), n_init=1, random_state=0, max_iter=100).fit(vectors)
    dist = ((vectors - km.cluster_centers_[km.labels_]) ** 2).sum(1)
    sizes = np.bincount(km.labels_, minlength=km.n_clusters)
    quota = _quota(sizes, n)
    order = np.lexsort((dist, km.labels_))  # by cluster, nearest the centre first
    rank = np.empty(len(order), np.int64)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    rank[order] = np.arange(len(order)) - starts[km.labels_[order]]
    return np.sort(matches[rank < quota[km.labels_]])


def _quota(sizes: np.ndarray, n: int) -> np.ndarray:
    """``n`` picks shared among clusters in proportion to their sizes (largest remainder), each at most its size.

    Examples
    --------
    >>> _quota(np.array([6, 3, 1]), 5).tolist()
    [3, 2, 0]
    """
    share = sizes * n / sizes.sum()
    out = np.minimum(np.floor(share).astype(np.int64), sizes)
    left = n - int(out.sum())
    room = np.flatnonzero(out < sizes)
    extra = room[np.argsort(-(share[room] - np.floor(share[room])), kind="stable")][:left]
    out[extra] += 1
    return out


def _margins(probabilities: Any, near, pool) -> np.ndarray:
    """Top-1 minus top-2 probability of each candidate of ``near``.

    ``probabilities``: a DataFrame indexed by pool id (a column per class), or an array aligned to
    the pool's embeddings (``len(pool) × classes``)."""
    ids = near.table["id"].astype(str)
    if isinstance(probabilities, pd.DataFrame):
        frame = probabilities.copy()
        frame.index = frame.index.astype(str)
    else:
        arr = np.asarray(probabilities, np.float64)
        if arr.ndim != 2 or len(arr) != len(pool):
            raise DataexploreError(f"probabilities= must be len(pool) × classes ({len(pool)} rows) or a DataFrame "
                                   f"indexed by pool id, got shape {arr.shape}")
        frame = pd.DataFrame(arr, index=pd.Index(pool.ids).astype(str))
    missing = ~ids.isin(frame.index)
    if missing.any():
        raise DataexploreError(f"probabilities= has no row for pool image {ids[missing].iloc[0]!r}")
    p = frame.reindex(ids).to_numpy(np.float64)
    if p.shape[1] < 2 or not np.isfinite(p).all():
        raise DataexploreError("probabilities= needs finite class probabilities, two or more columns")
    top2 = np.sort(p, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]
