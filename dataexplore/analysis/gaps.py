"""Coverage between two sets: where the target (test, production, a pool) has no reference data.

For every sample, its ``k`` nearest neighbours are found in the union of both sets, in the full
embedding space. Around a target sample, the share of reference neighbours is compared with the
share expected if both sets were drawn from the same distribution (``N_ref / (N_ref + N_target
- 1)``), which normalises for set sizes. The ratio of observed to expected, smoothed by one
pseudo-neighbour at the expected share, is the relative reference density ``rho``:
``rho = (n_ref + p0) / ((k + 1) p0)``. The under-coverage score is ``max(0, 1 - rho)``: 0 where the
reference is at least as dense as the target, 1 where no reference sample is near. A one-sided
binomial test on ``n_ref`` (out of ``k`` at rate ``p0``) says whether the shortfall is more than
chance; p-values are adjusted for testing every sample (Benjamini-Hochberg false discovery rate).

Target samples with a score of at least ``threshold`` and a p-value under ``alpha`` are joined
into regions along the kNN graph (connected components among flagged samples) and ranked by
size × mean score. The same measure with the roles swapped finds redundant regions of the
reference: many reference samples where the target has few.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import DataexploreError
from .groups import GroupResult, medoids, members_of, top_labels
from .neighbors import knn
from .vocabulary import Describer, text_model, vocabulary


class Coverage(GroupResult):
    """Under-covered regions of a target set, ranked (see :func:`coverage`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per region, worst first: ``name``, ``description``, ``count``, ``share`` (of the
        target), ``score`` (mean under-coverage), ``reference_share`` (mean share of reference
        neighbours; ``expected_share`` when covered), ``top_labels``, ``exemplars`` (ids).
    scores : pandas.Series
        Under-coverage score per target sample (indexed by id), in [0, 1].
    p_values : pandas.Series
        One-sided binomial p-value per target sample, adjusted for the false discovery rate.
    redundant : GroupResult
        Over-represented regions of the reference (same columns, roles swapped).
    reference_scores : pandas.Series
        Over-representation score per reference sample.
    k : int
        Neighbours used.
    """

    title = "Coverage gaps"

    def map_values(self) -> pd.Series:
        """Under-coverage per target sample; reference samples have no value (drawn grey)."""
        return self.scores.rename("under-coverage")

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
             threshold: float = 0.5, alpha: float = 0.05, min_size: int = 10,
             concepts: Sequence[str] | None = None, backend: str = "auto") -> Coverage:
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
    threshold : float
        Minimum under-coverage score (0..1) for a sample to join a region.
    alpha : float
        False discovery rate for flagging samples (Benjamini-Hochberg over the one-sided binomial
        tests of all samples).
    min_size : int
        Smallest region reported.
    concepts : sequence of str, optional
        Extra words for region descriptions (the class names and a default vocabulary are used too).
    backend : {"auto", "exact", "faiss", "pynndescent"}
        Nearest-neighbour backend (see :func:`dataexplore.analysis.neighbors.knn`).

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
    from scipy.stats import binom, false_discovery_control

    from .inputs import as_analysed, check_same_model

    ref, tgt = as_analysed(reference, model), as_analysed(target, model)
    check_same_model(ref, tgt)
    n_ref, n_tgt = len(ref), len(tgt)
    if n_ref < 2 or n_tgt < 2:
        raise DataexploreError(f"coverage needs at least 2 samples in each set, got {n_ref} and {n_tgt}")
    if not 0 <= threshold <= 1:
        raise DataexploreError(f"threshold must be in [0, 1], got {threshold}")
    total = n_ref + n_tgt
    small = min(n_ref, n_tgt) / (total - 1)
    k = int(k or np.clip(np.ceil(10 / small), 15, 100))
    if k * small < 3:
        warnings.warn(f"the sets differ in size {max(n_ref, n_tgt) / min(n_ref, n_tgt):.0f}:1, so only "
                      f"{k * small:.1f} of {k} neighbours are expected from the smaller one and gaps can hardly "
                      "be told from chance; subsample the larger set to at most 30 times the smaller",
                      UserWarning, stacklevel=2)
    vectors = np.concatenate([ref.vectors, tgt.vectors])
    _, nbrs = knn(vectors, k=k, backend=backend)
    k = nbrs.shape[1]
    from_ref = nbrs < n_ref

    # target side: are there as many reference neighbours as expected?
    p_ref = n_ref / (total - 1)
    hits_t = from_ref[n_ref:].sum(axis=1)
    score_t = np.clip(1 - (hits_t + p_ref) / ((k + 1) * p_ref), 0, 1)
    pval_t = false_discovery_control(binom.cdf(hits_t, k, p_ref))
    # reference side: are there as many target neighbours as expected?
    p_tgt = n_tgt / (total - 1)
    hits_r = (~from_ref[:n_ref]).sum(axis=1)
    score_r = np.clip(1 - (hits_r + p_tgt) / ((k + 1) * p_tgt), 0, 1)
    pval_r = false_discovery_control(binom.cdf(hits_r, k, p_tgt))

    labels = pd.concat([ref.table.get("label", pd.Series(dtype=object)),
                        tgt.table.get("label", pd.Series(dtype=object))], ignore_index=True)
    describe = Describer(tgt.vectors, text_model(tgt), vocabulary(concepts, labels))
    gaps = _regions(nbrs[n_ref:] - n_ref, score_t, pval_t, hits_t / k, p_ref, tgt, threshold, alpha, min_size,
                    describe, "gap")
    extra = _regions(nbrs[:n_ref], score_r, pval_r, hits_r / k, p_tgt, ref, threshold, alpha, min_size,
                     describe.rebase(ref.vectors), "redundant")

    result = Coverage(tgt.ids, *gaps, sources=[tgt])
    result.scores = pd.Series(score_t, index=pd.Index(tgt.ids, name="id"))
    result.p_values = pd.Series(pval_t, index=pd.Index(tgt.ids, name="id"))
    result.reference_scores = pd.Series(score_r, index=pd.Index(ref.ids, name="id"))
    result.redundant = Redundancy(ref.ids, *extra, scores=result.reference_scores, sources=[ref])
    result.k = k
    return result


def _regions(nbrs, score, pval, share, expected, emb, threshold, alpha, min_size, describe, prefix):
    """Connected components of flagged samples along their kNN edges, ranked by size × score."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(score)
    flagged = (score >= threshold) & (pval <= alpha)
    rows = np.repeat(np.arange(n), nbrs.shape[1])
    cols = nbrs.ravel()
    keep = (cols >= 0) & (cols < n)  # neighbours from the same set only
    rows, cols = rows[keep], cols[keep]
    keep = flagged[rows] & flagged[cols]
    graph = coo_matrix((np.ones(int(keep.sum()), np.int8), (rows[keep], cols[keep])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    comp = np.where(flagged, comp, -1)
    groups = members_of(comp)
    groups = [g for g in groups if len(g) >= min_size]
    groups.sort(key=lambda g: -len(g) * float(score[g].mean()))
    labels = emb.table["label"] if "label" in emb.table.columns else None
    records = []
    for i, g in enumerate(groups):
        records.append({
            "name": f"{prefix} {i + 1}",
            "description": describe(emb.vectors[g]),
            "count": len(g),
            "share": len(g) / n,
            "score": float(score[g].mean()),
            "neighbour_share": float(share[g].mean()),
            "expected_share": float(expected),
            "top_labels": top_labels(labels, g),
            "exemplars": list(emb.ids[g[medoids(emb.vectors[g])]]),
        })
    columns = ["name", "description", "count", "share", "score", "neighbour_share", "expected_share",
               "top_labels", "exemplars"]
    return pd.DataFrame.from_records(records, columns=columns), groups
