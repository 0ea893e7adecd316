"""Failure slices: regions of the embedding space where a model's errors concentrate.

Slice discovery in the spirit of Domino, built to return *regions* (so new images can be placed in
a slice and a slice can become a collection query):

1. the vectors are reduced with PCA (32 components) and cut into small cells by k-means
   (about 40 samples per cell, at most 1,000 cells);
2. a cell is *failing* when its error rate is at least ``min_lift`` times the overall rate and a
   one-sided binomial test says it is higher than the overall rate, at a false discovery rate of
   ``alpha`` over all cells (Benjamini-Hochberg), so evenly spread errors give no slice;
3. failing cells that are neighbours (among each other's 5 nearest cell centres) are merged, so
   a slice follows the data rather than the cell grid;
4. slices are ranked by the lower end of their error-rate interval (a small slice has to be
   convincingly bad to rank high) and described by their distinguishing concepts and medoid
   exemplars.

With ``loss=`` instead of ``correct=``, a sample counts as a failure when its loss is in the top
``1 - loss_quantile`` of all losses.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..errors import DataexploreError
from .clustering import kmeans, reduce
from .groups import GroupResult, medoids, members_of, top_labels, wilson
from .vocabulary import Describer, text_model, vocabulary


class FailureSlices(GroupResult):
    """Slices of the data where errors concentrate, ranked (see :func:`failures`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per slice, worst first: ``name``, ``description`` (distinguishing concepts),
        ``count``, ``errors``, ``error_rate``, ``low``/``high`` (95 % Wilson interval),
        ``interval`` (as text), ``lift`` (rate over the overall rate), ``error_share`` (share of
        all errors), ``top_labels``, ``exemplars`` (medoid ids); ``mean_loss`` with ``loss=``.
    error_rate : float
        Overall error rate.
    correct : pandas.Series
        Whether each sample was right (``False`` = failure), indexed by id.
    slice_ : pandas.Series
        Slice name per sample (None outside every slice), indexed by id.
    """

    title = "Failure slices"

    def map_values(self, by: str = "slice") -> pd.Series:
        """``by="slice"``: slice name per sample; ``by="correct"``: ``"right"``/``"wrong"``."""
        if by == "slice":
            return self.slice_.rename("failure slice")
        if by == "correct":
            return self.correct.map({True: "right", False: "wrong"}).rename("correct")
        raise DataexploreError(f"map values by 'slice' or 'correct', got {by!r}")

    def plot(self, top: int = 20):
        """Error rate per slice with its Wilson interval and the overall rate (plotly Figure)."""
        from .plots import slice_rates

        return slice_rates(self, top)


def failures(data: Any, correct: Any = None, *, loss: Any = None, model: str = "fashion-tiny",
             min_lift: float = 1.5, alpha: float = 0.05, min_size: int | None = None, cell_size: int = 40,
             loss_quantile: float = 0.9, concepts: Sequence[str] | None = None,
             random_state: int = 0) -> FailureSlices:
    """Find where a model fails: slices of the embedding space with a high error rate.

    Parameters
    ----------
    data
        :class:`~dataexplore.Embeddings` of the evaluated samples (or a source to embed).
    correct : array-like of bool, pandas.Series or str
        Whether the model was right on each sample: aligned to ``data``, a Series indexed by
        sample id, or the name of a boolean metadata column.
    loss : array-like of float, pandas.Series or str
        Per-sample loss instead of ``correct`` (the top ``1 - loss_quantile`` count as failures).
    min_lift : float
        A cell fails when its error rate is at least this times the overall rate (and
        significantly above it).
    alpha : float
        False discovery rate of the per-cell tests.
    min_size : int, optional
        Smallest slice reported (default: 20, or 0.2 % of the data if more).
    cell_size : int
        Average samples per k-means cell.
    loss_quantile : float
    concepts : sequence of str, optional
        Extra words for slice descriptions.
    random_state : int

    Returns
    -------
    FailureSlices

    Examples
    --------
    >>> import dataexplore as dx
    >>> emb = dx.embed("fashion-mnist:test")  # doctest: +SKIP
    >>> fs = dx.failures(emb, correct=predictions == emb.table["label"])  # doctest: +SKIP
    >>> fs.groups()[["name", "description", "count", "interval", "error_share"]]  # doctest: +SKIP
    >>> fs.plot()  # doctest: +SKIP
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.stats import binom, false_discovery_control

    from .inputs import as_analysed
    from .neighbors import knn

    emb = as_analysed(data, model)
    n = len(emb)
    wrong, losses = _failures(emb, correct, loss, loss_quantile)
    base = float(wrong.mean())
    if base == 0:
        raise DataexploreError("no failures to analyse: the model is right on every sample")
    min_size = int(min_size if min_size is not None else max(20, int(0.002 * n)))

    z = reduce(emb.vectors, random_state=random_state)
    n_cells = int(np.clip(n // max(cell_size, 2), 1, 1000))
    cell = kmeans(z, n_cells, random_state)
    size = np.bincount(cell, minlength=n_cells)
    errors = np.bincount(cell, weights=wrong.astype(np.float64), minlength=n_cells)
    rate = errors / np.maximum(size, 1)
    p_value = false_discovery_control(binom.sf(errors - 1, np.maximum(size, 1), base))
    failing = (size > 0) & (p_value <= alpha) & (rate >= min_lift * base)

    centres = np.stack([z[cell == c].mean(0) if size[c] else np.zeros(z.shape[1], np.float32)
                        for c in range(n_cells)]).astype(np.float32)
    centres_n = centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    _, near = knn(centres_n, k=min(5, n_cells - 1), backend="exact") if n_cells > 1 else (None, np.zeros((1, 0), int))
    rows = np.repeat(np.arange(n_cells), near.shape[1])
    cols = near.ravel()
    keep = failing[rows] & failing[cols]
    graph = coo_matrix((np.ones(int(keep.sum()), np.int8), (rows[keep], cols[keep])), shape=(n_cells, n_cells))
    _, comp = connected_components(graph, directed=False)
    slices = members_of(np.where(failing, comp, -1)[cell])  # samples of the failing cells, per component
    slices = [s for s in slices if len(s) >= min_size]

    labels = emb.table["label"] if "label" in emb.table.columns else None
    describe = Describer(emb.vectors, text_model(emb), vocabulary(concepts, labels))
    total_errors = max(int(wrong.sum()), 1)
    records = []
    for s in slices:
        e = int(wrong[s].sum())
        lo, hi = wilson(e, len(s))
        rec = {"description": describe(emb.vectors[s]), "count": len(s), "errors": e,
               "error_rate": e / len(s), "low": float(lo), "high": float(hi),
               "interval": f"{e / len(s):.0%} [{float(lo):.0%}–{float(hi):.0%}]",
               "lift": e / len(s) / base, "error_share": e / total_errors,
               "top_labels": top_labels(labels, s), "exemplars": list(emb.ids[s[medoids(emb.vectors[s])]])}
        if losses is not None:
            rec["mean_loss"] = float(losses[s].mean())
        records.append(rec)
    order = sorted(range(len(slices)), key=lambda i: (-records[i]["low"], -records[i]["count"]))
    records = [{"name": f"slice {r + 1}", **records[i]} for r, i in enumerate(order)]
    slices = [slices[i] for i in order]
    columns = ["name", "description", "count", "errors", "error_rate", "low", "high", "interval", "lift",
               "error_share", "top_labels", "exemplars"] + (["mean_loss"] if losses is not None else [])
    result = FailureSlices(emb.ids, pd.DataFrame.from_records(records, columns=columns), slices, sources=[emb])
    result.error_rate = base
    result.correct = pd.Series(~wrong, index=pd.Index(emb.ids, name="id"))
    names = np.full(n, None, dtype=object)
    for r, s in zip(records, slices):
        names[s] = r["name"]
    result.slice_ = pd.Series(names, index=pd.Index(emb.ids, name="id"))
    return result


def _failures(emb, correct, loss, loss_quantile) -> tuple[np.ndarray, np.ndarray | None]:
    """Boolean "wrong" per sample (and the losses when given), aligned to ``emb``."""
    if (correct is None) == (loss is None):
        raise DataexploreError("give exactly one of correct= (right/wrong per sample) or loss=")
    values = _aligned(emb, correct if loss is None else loss, "correct" if loss is None else "loss")
    if loss is None:
        if values.isna().any():
            raise DataexploreError(f"correct= has no value for sample {values.index[values.isna()][0]!r}")
        if not pd.api.types.is_bool_dtype(values) and not set(pd.unique(values)) <= {0, 1}:
            raise DataexploreError("correct= must be booleans (True where the model was right)")
        return ~values.astype(bool).to_numpy(), None
    losses = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    if not np.isfinite(losses).all():
        raise DataexploreError("loss= must be finite numbers for every sample")
    if not 0 < loss_quantile < 1:
        raise DataexploreError(f"loss_quantile must be in (0, 1), got {loss_quantile}")
    return losses > np.quantile(losses, loss_quantile), losses


def _aligned(emb, values, what: str) -> pd.Series:
    if isinstance(values, str):
        if values not in emb.table.columns:
            raise DataexploreError(f"no metadata column {values!r} for {what}=; columns: {list(emb.table.columns)}")
        return emb.table[values].reset_index(drop=True)
    if isinstance(values, pd.Series) and not isinstance(values.index, pd.RangeIndex):
        series = values.copy()
        series.index = series.index.astype(str)
        missing = ~pd.Index(emb.ids).isin(series.index)
        if missing.any():
            raise DataexploreError(f"{what}= has no value for sample {emb.ids[missing][0]!r}")
        return series.reindex(emb.ids).reset_index(drop=True)
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != len(emb):
        raise DataexploreError(f"{what}= needs one value per sample: got shape {arr.shape} for {len(emb)} samples")
    return pd.Series(arr)
