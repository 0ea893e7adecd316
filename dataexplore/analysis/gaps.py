"""Coverage between two sets: where the target (test, production, a pool) has no reference data.

Two views of the density ratio between the sets, both in the full embedding space:

- **local**: among each sample's ``k`` nearest neighbours in the union of both sets, the share of
  reference neighbours against the share expected if both sets came from one distribution
  (``N_ref / (N_ref + N_target - 1)``); ``1 - observed / expected`` (smoothed by one
  pseudo-neighbour, clipped to 0..1) is the *count score*, averaged with that of the sample's target
  neighbours;
- **global**: a logistic regression that tells reference from target (out-of-fold, 2 folds, on at
  most 15,000 reference samples), whose decision value is high where only target data lives; it
  sees directions a whole class is spread along that a fixed neighbourhood size misses.

Both are standardised against a calibration sample of reference points (which are covered by
definition) and joined as a soft maximum into ``scores`` (higher = less covered). Regions are
built in two steps, so a null (both sets from one distribution) flags nothing:

1. **cores**: target samples whose count of reference neighbours is significantly low (one-sided
   binomial test, Benjamini-Hochberg false discovery rate ``alpha`` over all target samples);
2. **regions**: target samples scoring above the 99th percentile of the calibration points join
   their cores along kNN edges (connected components holding at least 3 cores), and regions whose
   samples are each other's nearest flagged samples are merged, so a gap mixed with look-alikes
   (coats among pullovers and shirts) stays one region.

Regions are ranked by size × mean score. The reference side (``redundant``: many reference samples
where the target has few) is computed only when you ask for it.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.embeddings import medoids
from ..core.errors import DataexploreError
from ..language.vocabulary import Describer, text_model, vocabulary
from .groups import GroupResult, top_labels
from .neighbors import knn

#: Reference points whose scores calibrate the target's.
CALIBRATION = 1000
#: Share of covered samples allowed to pass the region-joining cut.
JOIN_RATE = 0.01


class Coverage(GroupResult):
    """Under-covered regions of a target set, ranked (see :func:`coverage`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per region, worst first: ``name``, ``description``, ``count``, ``share`` (of the
        target), ``score`` (mean count score, 0..1), ``neighbour_share`` (mean share of reference
        neighbours; ``expected_share`` when covered), ``top_labels``, ``exemplars`` (ids).
    scores : pandas.Series
        Under-coverage score per target sample (indexed by id), in [0, 1]: the local count score
        (0 as many reference neighbours as expected, 1 none).
    gap_scores : pandas.Series
        The joined local and global score per target sample, in standard deviations of covered
        (reference) samples; it ranks samples by how unlike the reference they are (above about 2
        is unusual) and decides who joins a region.
    p_values : pandas.Series
        One-sided binomial p-value per target sample, adjusted for the false discovery rate.
    redundant : GroupResult
        Over-represented regions of the reference (same columns, roles swapped), computed on
        first access.
    reference_scores : pandas.Series
        Over-representation score per reference sample (on first access).
    k : int
        Neighbours used.
    """

    title = "Coverage gaps"
    scores: pd.Series
    gap_scores: pd.Series
    p_values: pd.Series
    k: int
    _redundant: Redundancy | None
    _inputs: tuple

    def map_values(self) -> pd.Series:
        """Under-coverage per target sample (0..1); reference samples have no value (drawn grey)."""
        return self.scores.rename("under-coverage")

    @property
    def redundant(self) -> Redundancy:
        """Regions of the reference that the target hardly needs (computed once, when first asked)."""
        if self._redundant is None:
            self._redundant = _redundancy(*self._inputs)
        return self._redundant

    @property
    def reference_scores(self) -> pd.Series:
        """Over-representation score per reference sample (see :attr:`redundant`)."""
        return self.redundant.scores

    def to_generation(self, k: int | str = 0, n: int = 100, **kwargs):
        """Region ``k`` as a :class:`~dataexplore.query.generation.GenerationRequest` for ``n`` images.

        Keywords go to :func:`~dataexplore.query.generation_words.request_from` (``max_prompts``, ``seed``, ...).

        Examples
        --------
        >>> req = dx.coverage(train, production).to_generation(0, n=200)  # doctest: +SKIP
        """
        from ..query.generation_words import request_from

        pos, (ref, tgt) = self._position(k), self._inputs[:2]
        row = self.table.iloc[pos]
        source = {"analysis": self.title, "group": str(row["name"]), "description": str(row["description"])}
        kwargs = {"name": source["group"], "k": self.k, "target_size": len(tgt), **kwargs}
        return request_from(tgt.subset(self.members[pos]), ref, n=n, kind="coverage gap", source=source,
                            words=[w for w in source["description"].split(", ") if w], **kwargs)

    def plot(self, top: int = 20):
        """Size and mean score of each region (plotly Figure)."""
        from .plots import region_bars

        return region_bars(self, top)


class Redundancy(GroupResult):
    """Regions of the reference that the target hardly needs (see :func:`coverage`)."""

    title = "Redundant reference regions"

    def __init__(self, ids, table, members, scores: pd.Series, sources=()):
        super().__init__(ids, table, members, sources)
        self.scores = scores

    def map_values(self) -> pd.Series:
        return self.scores.rename("over-representation")

    def plot(self, top: int = 20):
        """Size and mean score of each region (plotly Figure)."""
        from .plots import region_bars

        return region_bars(self, top)


def coverage(reference: Any, target: Any, *, model: str = "fashion-tiny", k: int | None = None,
             threshold: float | None = None, alpha: float = 0.05, min_size: int = 10,
             concepts: Sequence[str] | None = None, backend: str = "auto", random_state: int = 0) -> Coverage:
    """Find where ``target`` has too little ``reference`` data nearby, in the embedding space.

    Parameters
    ----------
    reference, target
        :class:`~dataexplore.Embeddings` (or anything :func:`dataexplore.embed` accepts, embedded
        with ``model``): e.g. train vs test, production or an unlabeled pool. Sizes may differ.
    model : str
        Model for sources that still need embedding.
    k : int, optional
        Neighbours per sample. Default: enough that about 10 of them are expected from the
        smaller set (between 15 and 100). Beyond a size ratio of about 30:1 fewer than 3 are
        expected and a warning says to subsample the larger set.
    threshold : float, optional
        The joined score above which a target sample may join a region; default: the 99th
        percentile of the calibration (reference) points.
    alpha : float
        False discovery rate of the per-sample core tests.
    min_size : int
        Smallest region reported.
    concepts : sequence of str, optional
        Extra words for region descriptions (the class names and a default vocabulary are used too).
    backend : {"auto", "exact", "faiss", "pynndescent"}
        Nearest-neighbour backend (see :func:`dataexplore.analysis.neighbors.knn`).
    random_state : int

    Returns
    -------
    Coverage

    Examples
    --------
    >>> import dataexplore as dx
    >>> train = dx.embed("fashion-mnist:train:20000")  # doctest: +SKIP
    >>> prod = dx.embed("fashion-mnist:test")  # doctest: +SKIP
    >>> cov = dx.coverage(train, prod)  # doctest: +SKIP
    >>> cov.groups()[["name", "description", "count", "score", "top_labels"]]  # doctest: +SKIP
    >>> cov.selection(0)  # the worst gap, as a Selection  # doctest: +SKIP
    """
    import warnings

    from ..embedding.inputs import as_analysed, check_same_model

    ref, tgt = as_analysed(reference, model), as_analysed(target, model)
    check_same_model(ref, tgt)
    n_ref, n_tgt = len(ref), len(tgt)
    if n_ref < 2 or n_tgt < 2:
        raise DataexploreError(f"coverage needs at least 2 samples in each set, got {n_ref} and {n_tgt}")
    total = n_ref + n_tgt
    small = min(n_ref, n_tgt) / (total - 1)
    k = int(k or np.clip(np.ceil(10 / small), 15, 100))
    k = min(k, total - 2)
    if k * small < 3:
        warnings.warn(f"the sets differ in size {max(n_ref, n_tgt) / min(n_ref, n_tgt):.0f}:1, so only "
                      f"{k * small:.1f} of {k} neighbours are expected from the smaller one and gaps can hardly "
                      "be told from chance; subsample the larger set to at most 30 times the smaller",
                      UserWarning, stacklevel=2)
    scored = under_coverage(ref.vectors, tgt.vectors, k=k, alpha=alpha, backend=backend, random_state=random_state)
    cut = scored["calibration"].quantile(1 - JOIN_RATE) if threshold is None else float(threshold)
    labels = pd.concat([ref.table.get("label", pd.Series(dtype=object)),
                        tgt.table.get("label", pd.Series(dtype=object))], ignore_index=True)
    tgt_labels = tgt.table["label"] if "label" in tgt.table.columns else None
    describe = Describer(tgt.vectors, text_model(tgt), vocabulary(concepts, labels), labels=tgt_labels)
    groups = _regions(tgt.vectors, scored, cut, min_size)
    table = _region_table(groups, scored["count"], scored["share"], scored["p0"], tgt, describe, "gap")
    result = Coverage(tgt.ids, table, groups, sources=[tgt])
    index = pd.Index(tgt.ids, name="id")
    result.scores = pd.Series(scored["count"], index=index)
    result.gap_scores = pd.Series(scored["score"], index=index)
    result.p_values = pd.Series(scored["q"], index=index)
    result.k = k
    result._redundant = None
    result._inputs = (ref, tgt, k, alpha, min_size, describe, backend)
    return result


def under_coverage(reference: np.ndarray, target: np.ndarray, *, k: int, rows: np.ndarray | None = None,
                   alpha: float = 0.05, backend: str = "auto", random_state: int = 0, global_view: bool = True,
                   expected: float | None = None) -> dict:
    """Per-target-sample coverage measures (see the module docs); ``rows`` restricts the count score
    to some target samples (e.g. one failure slice), then without the global view or calibration.
    ``expected`` overrides the expected share of reference neighbours (for parts of larger sets: a
    gap and the reference around it, measured as in the whole sets).

    Returns a dict: ``count`` (0..1), ``share`` (of reference neighbours), ``p0`` (expected share),
    ``q`` (FDR-adjusted p-values), ``core`` (bool), ``score`` (joined), ``calibration`` (Series of
    the calibration points' joined scores), ``nbrs`` (union-kNN rows of the target samples).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(500, 8)).astype(np.float32); ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    >>> m = under_coverage(ref, ref[:50] * 1.0, k=15, rows=np.arange(5), global_view=False)
    >>> m["count"].shape
    (5,)
    """
    from scipy.stats import binom, false_discovery_control

    n_ref, n_tgt = len(reference), len(target)
    p0 = n_ref / (n_ref + n_tgt - 1) if expected is None else float(expected)
    rng = np.random.default_rng(random_state)
    queries = np.arange(n_tgt) if rows is None else np.asarray(rows, np.int64)
    cal = np.sort(rng.choice(n_ref, min(CALIBRATION, max(n_ref // 2, 1)), replace=False)) \
        if rows is None and global_view else np.zeros(0, np.int64)
    union = np.concatenate([reference, target])
    query_vectors = np.concatenate([target[queries], reference[cal]])
    own = np.r_[n_ref + queries, cal]
    _, nb = knn(query_vectors, union, k=k + 1, backend=backend, random_state=random_state)
    is_own = nb == own[:, None]
    nb = np.take_along_axis(nb, np.argsort(is_own, axis=1, kind="stable"), axis=1)[:, :k]  # drop itself
    hits = (nb < n_ref).sum(1)
    count = np.clip(1 - (hits + p0) / ((k + 1) * p0), 0, 1)
    share = hits / k
    p = binom.cdf(hits[:len(queries)], k, p0)
    out = {"count": count[:len(queries)], "share": share[:len(queries)], "p0": p0, "nbrs": nb[:len(queries)],
           "n_ref": n_ref,
           "q": false_discovery_control(p) if len(p) else p}
    out["core"] = out["q"] <= alpha
    if rows is not None or not global_view:
        return out
    smooth = _target_smoothing(nb, n_ref, n_tgt)
    local = smooth(count[:n_tgt], count)
    glob_t, glob_c = _domain_scores(reference, target, cal, random_state)
    glob = smooth(glob_t, np.r_[glob_t, glob_c])
    joined = np.logaddexp(_standard(local, local[n_tgt:]), _standard(glob, glob[n_tgt:]))
    out["score"] = joined[:n_tgt]
    out["calibration"] = pd.Series(joined[n_tgt:])
    return out


def _target_smoothing(nb: np.ndarray, n_ref: int, n_tgt: int):
    """Average a per-target value with that of each query's target neighbours."""
    tnb = nb - n_ref
    has = tnb >= 0
    idx = np.clip(tnb, 0, n_tgt - 1)

    def smooth(target_values: np.ndarray, query_values: np.ndarray) -> np.ndarray:
        mean = np.where(has, target_values[idx], 0.0).sum(1) / np.maximum(has.sum(1), 1)
        return np.where(has.any(1), 0.5 * query_values + 0.5 * mean, query_values)

    return smooth


def _standard(values: np.ndarray, covered: np.ndarray) -> np.ndarray:
    return (values - np.median(covered)) / max(float(covered.std()), 1e-9)


def _domain_scores(reference: np.ndarray, target: np.ndarray, cal: np.ndarray, random_state: int,
                   max_reference: int = 15_000) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold decision values of a reference-vs-target logistic regression, for the target
    samples and the calibration reference samples."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(random_state + 1)
    n_ref = len(reference)
    sub = np.union1d(np.sort(rng.choice(n_ref, min(n_ref, max_reference), replace=False)), cal)
    x = np.concatenate([reference[sub], target])
    y = np.r_[np.zeros(len(sub), bool), np.ones(len(target), bool)]
    out = np.zeros(len(x))
    folds = int(min(2, len(target), len(sub)))
    if folds < 2:
        return np.zeros(len(target)), np.zeros(len(cal))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=random_state).split(x, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=150).fit(x[train], y[train])
        out[test] = clf.decision_function(x[test])
    where = np.searchsorted(sub, cal)
    return out[len(sub):], out[where]


def _regions(vectors: np.ndarray, scored: dict, cut: float, min_size: int, link: int = 5,
             min_cores: int = 3) -> list[np.ndarray]:
    """Cores joined by the samples above ``cut`` along kNN edges (components holding at least
    ``min_cores`` cores), merged when their samples are each other's ``link`` nearest flagged ones."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    core = scored["core"]
    if core.sum() < min_cores:
        return []
    n = len(core)
    members = np.flatnonzero(core | (scored["score"] > cut))
    pos = np.full(n, -1)
    pos[members] = np.arange(len(members))
    nb = scored["nbrs"][members] - scored["n_ref"]  # target neighbours (negative: reference ones)
    ok = nb >= 0
    other = np.where(ok, pos[np.clip(nb, 0, n - 1)], -1)
    ok &= other >= 0
    rows = np.repeat(np.arange(len(members)), nb.shape[1])[ok.ravel()]
    graph = coo_matrix((np.ones(len(rows)), (rows, other[ok])), shape=(len(members),) * 2)
    _, comp = connected_components(graph, directed=False)
    parts = [members[comp == c] for c in np.unique(comp)]
    parts = [x for x in parts if core[x].sum() >= min_cores]
    if len(parts) > 1 and link:
        joined = np.concatenate(parts)
        part = np.concatenate([np.full(len(x), i) for i, x in enumerate(parts)])
        _, near = knn(vectors[joined], k=min(link, len(joined) - 1))
        g = coo_matrix((np.ones(near.size), (np.repeat(part, near.shape[1]), part[near.ravel()])),
                       shape=(len(parts),) * 2)
        _, which = connected_components(g, directed=False)
        parts = [np.sort(np.concatenate([x for x, w in zip(parts, which) if w == j])) for j in np.unique(which)]
    parts = [x for x in parts if len(x) >= min_size]
    score = scored["score"]
    parts.sort(key=lambda x: -len(x) * float(score[x].mean()))
    return parts


def _region_table(groups, count, share, expected, emb, describe, prefix) -> pd.DataFrame:
    labels = emb.table["label"] if "label" in emb.table.columns else None
    records = []
    for i, g in enumerate(groups):
        records.append({
            "name": f"{prefix} {i + 1}", "description": describe(emb.vectors[g]), "count": len(g),
            "share": len(g) / len(emb), "score": float(count[g].mean()), "neighbour_share": float(share[g].mean()),
            "expected_share": float(expected), "top_labels": top_labels(labels, g),
            "exemplars": list(emb.ids[g[medoids(emb.vectors[g])]]),
        })
    columns = ["name", "description", "count", "share", "score", "neighbour_share", "expected_share",
               "top_labels", "exemplars"]
    return pd.DataFrame.from_records(records, columns=columns)


def _redundancy(ref, tgt, k, alpha, min_size, describe, backend) -> Redundancy:
    """The coverage measure with the roles swapped: reference regions the target hardly needs."""
    scored = under_coverage(tgt.vectors, ref.vectors, k=k, alpha=alpha, backend=backend)
    cut = scored["calibration"].quantile(1 - JOIN_RATE)
    groups = _regions(ref.vectors, scored, cut, min_size)
    table = _region_table(groups, scored["count"], scored["share"], scored["p0"], ref, describe.rebase(ref.vectors),
                          "redundant")
    return Redundancy(ref.ids, table, groups, scores=pd.Series(scored["count"], index=pd.Index(ref.ids, name="id")),
                      sources=[ref])
