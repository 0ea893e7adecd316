"""Failure slices: regions of the embedding space where a model's errors concentrate, drawn at the
resolution of single samples, and what the training data says about each one.

How slices are found (all in the full embedding space, never on the 2-D map):

1. **Seeds.** Each sample's ``k`` nearest neighbours (``k`` = 10, 20, 40) are counted for errors; a
   sample is a seed when a one-sided binomial test says its neighbourhood fails more often than
   the overall rate, at a false discovery rate of ``alpha`` over all samples and scales (Benjamini-
   Hochberg), and at least ``min_lift`` times as often. Evenly spread errors give no seed.
2. **Boundaries.** Seeds that are neighbours form one failure mode each. For each, a two-region
   model decides every sample: inside a sample fails at the mode's own rate, outside at the
   background rate (estimated away from the seeds); a sample's prior
   of being inside is the share of its neighbours inside (a Potts prior on the symmetric kNN graph
   with coupling ``smoothness``). Mean-field iterations from the mode's seeds settle each sample's
   chance of belonging; the connected samples above one half that hold those seeds form the slice
   (a sample claimed by two modes goes to the one it belongs to most).
   Then each slice's boundary is refitted in the embedding space itself
   (:mod:`~dataexplore.analysis.boundary`: a logistic gate and the two error rates, fitted by EM
   around the graph slice), because a kNN graph in many dimensions smears any boundary over a hop.
   A slice therefore holds the samples of the failure mode, the few it gets right among them
   included, and not the part of a neighbourhood that lies outside it.
3. **Ranking and words.** Slices are ranked by the lower end of their error-rate interval (Wilson),
   described by the concepts that set them apart (:class:`~dataexplore.language.vocabulary.Describer`)
   and by medoid exemplars.
4. **Why** (``reference=``): each slice's coverage by the training data is measured with the coverage
   measure of :func:`~dataexplore.analysis.gaps.coverage`, restricted to the slice, and turned into a
   verdict: *under-covered in training: collect more such images* (the slice's query is the action)
   or *covered: more of the same data is unlikely to help; the model confuses these or their labels
   disagree* (the action: label the pool images nearest the slice on which the model is least
   certain; see :meth:`FailureSlices.recommend`).

With ``loss=`` instead of ``correct=``, a sample counts as a failure when its loss is in the top
``1 - loss_quantile`` of all losses.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.embeddings import medoids
from ..core.errors import DataexploreError
from ..language.vocabulary import Describer, text_model, vocabulary
from .groups import GroupResult, members_of, top_labels, wilson

#: Neighbourhood sizes at which seeds are tested.
SEED_SCALES = (10, 20, 40)
#: Most seed components grown into slices (largest first).
MAX_COMPONENTS = 25
#: A sample's evidence: its own outcome and, with a weight that grows with the overall error rate
#: (from 0 at 10 % to 0.5 at 30 %), those of its NEAR nearest neighbours: when a model fails often,
#: one error says less, and errors scattered through an area of look-alikes must not chain into a slice.
NEAR = 5
#: Seeds failing within this much of the worst rate left are peeled off as one failure mode.
SAME_RATE = 0.25
#: When a slice fails this much more often than its members' neighbourhoods do, it has collected the
#: scattered errors of a high-error area instead of a region (and the area is taken instead).
SCATTER = 0.2


class FailureSlices(GroupResult):
    """Slices of the data where errors concentrate, ranked (see :func:`failures`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per slice, worst first: ``name``, ``description`` (distinguishing concepts),
        ``count``, ``errors``, ``error_rate``, ``low``/``high`` (95 % Wilson interval),
        ``interval`` (as text), ``lift`` (rate over the overall rate), ``error_share`` (share of
        all errors), ``top_labels``, ``exemplars`` (medoid ids); ``mean_loss`` with ``loss=``; with
        ``reference=`` also ``coverage`` (median under-coverage score of the slice's samples against
        the reference, 0 covered .. 1 nothing alike), ``verdict`` and ``action`` in words.
    error_rate : float
        Overall error rate.
    correct : pandas.Series
        Whether each sample was right (``False`` = failure), indexed by id.
    slice_ : pandas.Series
        Slice name per sample (None outside every slice), indexed by id.
    membership : pandas.Series
        Each sample's estimated chance of belonging to a slice (0..1), indexed by id.
    """

    title = "Failure slices"
    error_rate: float
    correct: pd.Series
    slice_: pd.Series
    membership: pd.Series
    embeddings: Any
    reference: Any

    def map_values(self, by: str = "slice") -> pd.Series:
        """``by="slice"``: slice name per sample; ``by="correct"``: ``"right"``/``"wrong"``;
        ``by="verdict"`` (with ``reference=``): each slice sample's verdict."""
        if by == "slice":
            return self.slice_.rename("failure slice")
        if by == "correct":
            return self.correct.map({True: "right", False: "wrong"}).rename("correct")
        if by == "verdict":
            if "verdict" not in self.table.columns:
                raise DataexploreError("no verdicts: run dx.failures(..., reference=train_embeddings)")
            words = dict(zip(self.table["name"], self.table["verdict"].str.split(":").str[0]))
            return self.slice_.map(words).rename("verdict")
        raise DataexploreError(f"map values by 'slice', 'correct' or 'verdict', got {by!r}")

    def plot(self, top: int = 20):
        """Error rate per slice with its Wilson interval and the overall rate (plotly Figure)."""
        from .plots import slice_rates

        return slice_rates(self, top)

    def recommend(self, k: int | str, pool: Any, n: int = 100, *, probabilities: Any = None, **search_kwargs):
        """What to label next for slice ``k``, following its verdict (needs ``reference=``).

        Parameters
        ----------
        k : int or str
            The slice (row or name).
        pool
            Unlabeled images (Embeddings of the same model, or a source to embed).
        n : int
            How many images to recommend.
        probabilities : array-like, pandas.DataFrame or pandas.Series, optional
            The model's class probabilities on the pool (``len(pool) × classes``, or a DataFrame
            indexed by pool id). Needed for covered slices.

        Returns
        -------
        SearchResult
            The recommended pool images, best first (``table["reason"]`` says why).

        Raises
        ------
        DataexploreError
            Without ``reference=`` (no verdict), or for a covered slice without ``probabilities``
            (say so rather than guess).

        Examples
        --------
        >>> fs = dx.failures(test, correct=ok, reference=train)  # doctest: +SKIP
        >>> batch = fs.recommend(0, pool, n=200, probabilities=pool_probs)  # doctest: +SKIP
        """
        from .recommend import recommend

        return recommend(self, k, pool, n, probabilities=probabilities, **search_kwargs)

    def to_generation(self, k: int | str = 0, n: int = 100, **kwargs):
        """Slice ``k`` as a :class:`~dataexplore.query.generation.GenerationRequest` for ``n`` images; the
        covered side is the ``reference=`` set when given, else the samples outside the slice.

        Examples
        --------
        >>> req = dx.failures(test, correct=ok, reference=train).to_generation(0, n=100)  # doctest: +SKIP
        """
        from ..query.generation_words import request_from

        pos, emb = self._position(k), self.embeddings
        row = self.table.iloc[pos]
        inside = np.zeros(len(emb), bool)
        inside[self.members[pos]] = True
        ref = self.reference if self.reference is not None else emb.subset(~inside)
        source = {"analysis": self.title, "group": str(row["name"]), "description": str(row["description"])}
        kwargs = {"name": source["group"], "target_size": len(emb), **kwargs}
        return request_from(emb.subset(inside), ref, n=n, kind="failure slice", source=source,
                            words=[w for w in source["description"].split(", ") if w], **kwargs)


def failures(data: Any, correct: Any = None, *, loss: Any = None, reference: Any = None,
             model: str = "fashion-tiny", min_lift: float = 1.5, alpha: float = 0.05, min_size: int | None = None,
             k: int = 20, smoothness: float = 3.5, loss_quantile: float = 0.9,
             concepts: Sequence[str] | None = None, refine: bool = True, random_state: int = 0) -> FailureSlices:
    """Find where a model fails: slices of the embedding space with a high error rate, and why.

    Parameters
    ----------
    data
        :class:`~dataexplore.Embeddings` of the evaluated samples (or a source to embed).
    correct : array-like of bool, pandas.Series or str
        Whether the model was right on each sample: aligned to ``data``, a Series indexed by
        sample id, or the name of a boolean metadata column.
    loss : array-like of float, pandas.Series or str
        Per-sample loss instead of ``correct`` (the top ``1 - loss_quantile`` count as failures).
    reference : optional
        The training set (Embeddings of the same model, or a source): each slice then says how
        well the training data covers it and what to do about it (see the module docs).
    min_lift : float
        A seed's neighbourhood must fail at least this times as often as the overall rate.
    alpha : float
        False discovery rate of the seed tests.
    min_size : int, optional
        Smallest slice reported (default: 20, or 0.2 % of the data if more).
    k : int
        Neighbours per sample in the graph the slice boundaries are drawn on.
    smoothness : float
        How strongly a sample follows its neighbours rather than its own outcome (the Potts
        coupling; measured best at 3.5 on planted slices, ``benchmarks/analysis.py``).
    loss_quantile : float
    concepts : sequence of str, optional
        Extra words for slice descriptions.
    refine : bool
        Refit each slice's boundary in the embedding space (:mod:`~dataexplore.analysis.boundary`);
        ``False`` keeps the boundaries drawn on the kNN graph.
    random_state : int

    Returns
    -------
    FailureSlices

    Examples
    --------
    >>> import dataexplore as dx
    >>> emb = dx.embed("fashion-mnist:test")  # doctest: +SKIP
    >>> fs = dx.failures(emb, correct=predictions == emb.table["label"], reference=train)  # doctest: +SKIP
    >>> fs.groups()[["name", "description", "count", "interval", "verdict"]]  # doctest: +SKIP
    >>> fs.plot()  # doctest: +SKIP
    """
    from ..embedding.inputs import as_analysed, check_same_model
    from .neighbors import knn

    emb = as_analysed(data, model)
    n = len(emb)
    wrong, losses = _failures(emb, correct, loss, loss_quantile)
    base = float(wrong.mean())
    if base == 0:
        raise DataexploreError("no failures to analyse: the model is right on every sample")
    if not (isinstance(k, (int, np.integer)) and 2 <= k < n):
        raise DataexploreError(f"k must be an integer from 2 to {n - 1}, got {k!r}")
    min_size = int(min_size if min_size is not None else max(20, int(0.002 * n)))
    ref = None
    if reference is not None:
        ref = as_analysed(reference, model)
        check_same_model(ref, emb)

    depth = min(max(max(SEED_SCALES), k), n - 1)
    _, nbrs = knn(emb.vectors, k=depth, random_state=random_state)
    membership, slices = segment(wrong, nbrs, k=k, smoothness=smoothness, alpha=alpha, min_lift=min_lift,
                                 min_size=min_size)
    if refine:
        from .boundary import refine as refine_boundaries

        membership, slices = refine_boundaries(emb.vectors, wrong, nbrs, slices, membership, k=k,
                                               min_size=min_size, min_lift=min_lift)

    labels = emb.table["label"] if "label" in emb.table.columns else None
    describe = Describer(emb.vectors, text_model(emb), vocabulary(concepts, labels), labels=labels)
    total_errors = max(int(wrong.sum()), 1)
    records: list[dict[str, Any]] = []
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
    table = pd.DataFrame.from_records(records, columns=columns)
    if ref is not None:
        from .verdicts import slice_verdicts

        table = pd.concat([table, slice_verdicts(ref, emb, slices, random_state=random_state)], axis=1)
    result = FailureSlices(emb.ids, table, slices, sources=[emb] + ([ref] if ref is not None else []))
    result.error_rate = base
    result.correct = pd.Series(~wrong, index=pd.Index(emb.ids, name="id"))
    names = np.full(n, None, dtype=object)
    for r, s in zip(records, slices):
        names[s] = r["name"]
    result.slice_ = pd.Series(names, index=pd.Index(emb.ids, name="id"))
    result.membership = pd.Series(membership, index=pd.Index(emb.ids, name="id"))
    result.embeddings, result.reference = emb, ref
    return result


def segment(wrong: np.ndarray, nbrs: np.ndarray, *, k: int = 20, smoothness: float = 3.5, alpha: float = 0.05,
            min_lift: float = 1.5, min_size: int = 20, iterations: int = 80) -> tuple[np.ndarray, list[np.ndarray]]:
    """Slices of failing samples on a kNN graph: (membership chance per sample, slices as positions).

    ``nbrs`` holds each sample's nearest neighbours (``N × ≥ max(k, 40)``, nearest first, itself
    excluded). See the module docs for the model.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.r_[rng.normal(0, 1, (300, 2)), rng.normal(8, 1, (100, 2))]
    >>> wrong = np.r_[rng.random(300) < 0.05, rng.random(100) < 0.8]
    >>> from scipy.spatial import cKDTree
    >>> nbrs = cKDTree(x).query(x, 41)[1][:, 1:]
    >>> _, slices = segment(wrong, nbrs)
    >>> len(slices), bool((slices[0] >= 300).mean() > 0.9)
    (1, True)
    """
    from scipy.sparse import coo_matrix, csr_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.stats import binom, false_discovery_control

    n = len(wrong)
    wrong = np.asarray(wrong, bool)
    base = float(wrong.mean())
    seed = np.zeros(n, bool)
    scales = [s for s in SEED_SCALES if s <= nbrs.shape[1]] or [nbrs.shape[1]]
    for scale in scales:
        count = wrong[nbrs[:, :scale]].sum(1)
        p = false_discovery_control(binom.sf(count - 1, scale, base))
        seed |= (p <= alpha / len(scales)) & (count >= min_lift * base * scale)
    membership = np.zeros(n)
    if not seed.any():
        return membership, []
    kk = min(k, nbrs.shape[1])
    rows = np.repeat(np.arange(n), kk)
    cols = nbrs[:, :kk].ravel()
    adj = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    graph = adj.maximum(adj.T).tocsr()
    degree = np.maximum(np.asarray(graph.sum(1)).ravel(), 1)
    local = (wrong[nbrs[:, :kk]].sum(1) + wrong) / (kk + 1)
    near = (graph @ seed.astype(float)) > 0
    far = ~near & ~seed
    r_far = float(np.clip(wrong[far].mean() if far.any() else base, 1e-3, 0.5))  # the background, away from seeds
    pooling = float(np.clip((base - 0.1) / 0.4, 0.0, 0.5))
    best = np.zeros(n)
    owner = np.full(n, -1)
    claimed = np.zeros(n, bool)
    used = np.zeros(n, bool)
    for g_index in range(MAX_COMPONENTS):
        # peel failure modes worst first: the connected seeds failing at about the highest rate left
        free = seed & ~claimed & ~used
        if free.sum() < 3:
            break
        core = free & (local >= local[free].max() - SAME_RATE)
        edges = core[rows] & core[cols]
        g = coo_matrix((np.ones(int(edges.sum())), (rows[edges], cols[edges])), shape=(n, n))
        _, comp = connected_components(g, directed=False)
        labels_c = np.where(core, comp, -1)
        group = max(members_of(labels_c), key=len)
        used[group] = True
        if len(group) < 3:
            continue
        q = np.zeros(n)
        q[group] = 1.0
        r_out = r_far
        for _ in range(iterations):
            r_out = float(np.clip(((1 - q) * wrong).sum() / max((1 - q).sum(), 1e-9), r_far, 0.5))
            r_in = float(np.clip((q * wrong).sum() / max(q.sum(), 1e-9), r_out + 1e-3, 1 - 1e-3))
            own = np.where(wrong, float(np.log(r_in / r_out)), float(np.log((1 - r_in) / (1 - r_out))))
            evidence = (1 - pooling) * own + pooling * own[nbrs[:, :NEAR]].mean(1) if pooling else own
            prior = (graph @ q) / degree
            new = 0.5 * q + 0.5 / (1 + np.exp(-(smoothness * (2 * prior - 1) + evidence)))
            new[claimed] = 0.0  # samples of a worse mode already found stay there
            done = np.abs(new - q).max() < 1e-4
            q = new
            if done:
                break
        region = _component(q >= 0.5, group, rows, cols, n)
        if region.any() and wrong[region].mean() - float(np.median(local[region])) > SCATTER:
            # not a region but the errors of an area where the model often fails (a region made of its
            # errors alone is self-consistent at a rate of 1): take the area, where the local error
            # rate is nearer the mode's than the background's
            cut = 0.5 * (float(np.median(local[group])) + r_out)
            region = _component((local >= cut) & ~claimed, group, rows, cols, n)
            q = np.where(region, np.maximum(q, 0.5), np.minimum(q, 0.5))
        if region.sum() < min_size:
            continue
        best[region], owner[region] = q[region], g_index
        claimed |= region
    membership = best
    slices = [s for s in members_of(owner) if len(s) >= min_size]
    return membership, slices


def _component(mask: np.ndarray, group: np.ndarray, rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """The samples of ``mask`` connected (along kNN edges within ``mask``) to a sample of ``group``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    keep = mask[rows] & mask[cols]
    linked = coo_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(n, n))
    _, comp = connected_components(linked, directed=False)
    return mask & np.isin(comp, np.unique(comp[group][mask[group]]))


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
