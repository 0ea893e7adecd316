"""Label-error candidates: samples whose given label their place in the embedding space disputes.

How samples are scored (all in the full embedding space, never on the 2-D map):

1. **Probe.** Out-of-fold class probabilities of a logistic regression on the embeddings
   (``folds`` stratified folds), or ``probabilities=`` from a model of your own.
2. **Noise model.** Each sample has a true class, and its given label is drawn from a noise matrix
   ``T[true, given]``; expectation-maximisation estimates each sample's posterior over its true
   class from the probe (noise divided out) and its ``k`` nearest neighbours' posteriors, and the
   noise matrix from the posteriors (:mod:`~dataexplore.analysis.label_noise` has the details).
   Flips between look-alike classes show up as noise-matrix mass on those pairs, and the samples
   on such a pair are judged against it.
3. **Score and suggestion.** ``score = 1 - q[given]``: the model's probability that the given
   label is wrong. The suggested label is the most probable other class; ``confidence`` is its
   posterior.
4. **How many are flagged.** The scores are probabilities, so their sum is the expected number of
   wrong labels; that many of the highest-scoring samples are the candidates (``threshold=``
   flags every sample scoring at least that instead). On Fashion-MNIST with its own labels this
   flags about 1.5 % (look-alikes such as shirts and T-shirts, many of them truly ambiguous); with
   5-20 % planted flips it flags 0.8-1.1 times the number planted (``benchmarks/label_errors.py``).

Candidates are grouped by their (given label → suggested label) pair, ranked by the expected number
of wrong labels in the group (the sum of its scores), each with its most suspicious members as
exemplars; every sample keeps its nearest neighbours and their labels as evidence.
``NEIGHBOURS`` and the noise model's settings were chosen on planted noise with seeds kept apart from
those the benchmark reports (see its docs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError
from .groups import GroupResult
from .label_noise import clean_posteriors, probe_probabilities

#: Neighbours whose posteriors inform a sample's prior.
NEIGHBOURS = 20
#: Nearest neighbours listed per sample as evidence.
EVIDENCE = 5


class LabelErrors(GroupResult):
    """Samples whose labels look wrong, grouped by (given → suggested) label (see :func:`label_errors`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (given label → suggested label) pair of candidates, the most expected errors
        first: ``name`` (``"Shirt → T-shirt/top"``), ``description``, ``count``, ``label`` (given),
        ``suggested``, ``expected_errors`` (sum of the members' scores), ``mean_score``, ``share``
        (of all samples with that given label), ``exemplars`` (ids, most suspicious first).
    scores : pandas.DataFrame
        One row per sample, most suspicious first: ``id``, ``label`` (given), ``suggested`` (the most
        probable other label), ``score`` (probability that the given label is wrong, 0..1),
        ``confidence`` (probability of the suggested label), ``is_candidate``, ``rank`` (1 = most
        suspicious), ``agreement`` (share of the ``k`` nearest neighbours with the same given label),
        ``neighbours`` and ``neighbour_labels`` (ids and given labels of the nearest ``EVIDENCE``
        neighbours, nearest first).
    suggestions : pandas.Series
        Suggested label per candidate (indexed by id): pass it as ``predictions=`` to
        :func:`dataexplore.labeling.export_labeling` to pre-annotate a review batch.
    classes : list of str
        The label classes.
    noise : pandas.DataFrame
        Estimated noise matrix: row = true class, column = given label, each row summing to 1.
    noise_rates : pandas.Series
        Estimated share of wrong labels among the samples given each label.
    expected_errors : float
        Sum of the scores: the expected number of wrong labels.
    threshold : float
        Lowest score among the candidates (``inf`` when there are none).
    k : int
        Neighbours used.
    """

    title = "Label errors"
    scores: pd.DataFrame
    suggestions: pd.Series
    classes: list
    noise: pd.DataFrame
    noise_rates: pd.Series
    expected_errors: float
    threshold: float
    k: int
    embeddings: Any
    _posteriors: np.ndarray
    _nbrs: np.ndarray
    _dist: np.ndarray
    _given: np.ndarray

    def map_values(self, by: str = "score") -> pd.Series:
        """A value per sample for colouring the map (indexed by id).

        ``by="score"``: the probability that the label is wrong (0..1); ``by="pair"``: the
        candidate's group name (``"Shirt → T-shirt/top"``; None for the others);
        ``by="suggested"``: the candidates' suggested labels (None for the others).
        """
        if by == "score":
            return self.scores.set_index("id")["score"].reindex(self.ids).rename("label error score")
        if by in ("pair", "suggested"):
            out = pd.Series([None] * len(self.ids), index=pd.Index(self.ids, name="id"), dtype=object)
            for pos, members in enumerate(self.members):
                out.iloc[members] = self.table["name" if by == "pair" else "suggested"].iloc[pos]
            return out.rename("label error" if by == "pair" else "suggested label")
        raise DataexploreError(f"map values by 'score', 'pair' or 'suggested', got {by!r}")

    def summary(self) -> str:
        """One line: how many candidates, the expected number of wrong labels and the largest pair."""
        flagged = int(self.scores["is_candidate"].sum())
        top = f"; first: {self.table['name'].iloc[0]} ({int(self.table['count'].iloc[0])})" if len(self) else ""
        return (f"{flagged} label-error candidates of {len(self.ids)} samples (expected wrong labels "
                f"{self.expected_errors:.1f}) in {len(self)} pairs{top}")

    def candidates(self) -> pd.DataFrame:
        """The flagged rows of :attr:`scores`, most suspicious first."""
        return self.scores[self.scores["is_candidate"]].reset_index(drop=True)

    def candidate_selection(self, on: Any = None):
        """Every candidate as one :class:`~dataexplore.Selection` (``on`` as in :meth:`selection`)."""
        from ..core.ids import rows_of
        from ..core.selection import as_selection

        rows = rows_of(self.ids, self.candidates()["id"])
        provenance = {"analysis": self.title, "group": "all candidates"}
        if on is None:
            return as_selection(self.ids, rows, shape="group", provenance=provenance,
                                embeddings=self._analysed_embeddings())
        map_ids = np.asarray(getattr(on, "ids", on), dtype=object)
        provenance.update(getattr(on, "provenance", {}) or {})
        return as_selection(map_ids, rows_of(map_ids, self.ids[rows], missing="drop"), shape="group",
                            provenance=provenance, embeddings=getattr(on, "embeddings", None))

    def neighbours(self, sample_id: str) -> pd.DataFrame:
        """The evidence for one sample: its ``k`` nearest neighbours, nearest first.

        Columns ``id``, ``label`` (given), ``similarity`` (cosine), ``score`` (the neighbour's own
        label-error score) and ``truly`` (the class the noise model believes it is).
        """
        from ..core.ids import rows_of

        row = int(rows_of(self.ids, [str(sample_id)], message="no sample {id!r} among the analysed samples")[0])
        nb = self._nbrs[row]
        given = np.asarray(self.classes, dtype=object)
        score = 1 - self._posteriors[nb, self._given[nb]]
        return pd.DataFrame({"id": self.ids[nb], "label": given[self._given[nb]],
                             "similarity": 1 - self._dist[row].astype(np.float64), "score": score,
                             "truly": given[self._posteriors[nb].argmax(1)]})

    def plot(self, top: int = 20):
        """Candidates per (given → suggested) pair, coloured by their mean score (plotly Figure)."""
        from ..core.htmlsafe import plot_text as _t
        from .plots import _go

        go = _go()
        t = self.table.head(top)
        fig = go.Figure(go.Bar(x=t["count"], y=[_t(v) for v in t["name"]], orientation="h",
                               marker={"color": t["mean_score"], "colorscale": "Reds", "cmin": 0, "cmax": 1,
                                       "colorbar": {"title": "mean score"}},
                               customdata=np.stack([t["share"], t["mean_score"]], axis=1) if len(t) else None,
                               hovertemplate="%{y}<br>%{x} candidates (%{customdata[0]:.1%} of the label)"
                                             "<br>mean score %{customdata[1]:.2f}<extra></extra>"))
        fig.update_layout(title=_t(f"Label-error candidates: {int(self.scores['is_candidate'].sum())} of "
                                   f"{len(self.ids)} samples (given → suggested)"),
                          xaxis_title="candidates", yaxis_autorange="reversed", height=120 + 28 * max(len(t), 1),
                          margin={"l": 10, "r": 10, "t": 50, "b": 40})
        return fig


def label_errors(data: Any, label: Any = "label", *, probabilities: Any = None, folds: int = 5,
                 k: int = NEIGHBOURS, threshold: float | None = None, progress: bool = True,
                 model: str = "fashion-tiny", backend: str = "auto", random_state: int = 0) -> LabelErrors:
    """Find samples whose labels look wrong, with a suggested label and the neighbours as evidence.

    Parameters
    ----------
    data
        :class:`~dataexplore.Embeddings` (or a Selection made with embeddings, a search result,
        or a source to embed with ``model``).
    label : str, pandas.Series or array-like
        The given labels: a metadata column, a Series indexed by sample id, or one value per sample.
    probabilities : array-like or pandas.DataFrame, optional
        Your model's class probabilities instead of the built-in probe: a DataFrame indexed by
        sample id with a column per class name, or an ``N × classes`` array whose columns follow
        the sorted class names. Use out-of-sample probabilities (cross-validated, or from a model
        not trained on these samples): a model that learned the labels by heart vouches for them.
    folds : int
        Cross-validation folds of the probe (at least 2).
    k : int
        Neighbours per sample in the noise model.
    threshold : float, optional
        Flag every sample whose score is at least this; default: as many as the expected number of
        wrong labels (see the module docs).
    progress : bool
        Show a progress bar.
    model : str
        Model for sources that still need embedding.
    backend : {"auto", "exact", "faiss", "pynndescent"}
        Nearest-neighbour backend (see :func:`dataexplore.analysis.neighbors.knn`).
    random_state : int

    Returns
    -------
    LabelErrors

    Examples
    --------
    >>> import dataexplore as dx
    >>> emb = dx.embed("fashion-mnist:test")  # doctest: +SKIP
    >>> errs = dx.label_errors(emb)  # doctest: +SKIP
    >>> errs.scores.head(10)[["id", "label", "suggested", "score", "neighbour_labels"]]  # doctest: +SKIP
    >>> errs.groups()[["name", "count", "mean_score"]]  # doctest: +SKIP
    >>> dx.export_labeling(errs.selection(0), "review/shirts", predictions=errs.suggestions)  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    from .neighbors import knn

    emb = _embeddings(data, model)
    n = len(emb)
    if n < 10:
        raise DataexploreError(f"label errors need at least 10 samples, got {n}")
    given_text = _labels(emb, label)
    classes = sorted(pd.unique(given_text))
    if len(classes) < 2:
        raise DataexploreError(f"label errors need at least two classes, got only {classes[0]!r}")
    if not (isinstance(folds, (int, np.integer)) and folds >= 2):
        raise DataexploreError(f"folds must be an integer of at least 2, got {folds!r}")
    if not (isinstance(k, (int, np.integer)) and 1 <= k < n):
        raise DataexploreError(f"k must be an integer from 1 to {n - 1}, got {k!r}")
    given = pd.Categorical(given_text, categories=classes).codes.astype(np.int64)
    user = None if probabilities is None else _user_probabilities(probabilities, emb, classes)
    bar = tqdm(total=(0 if user is not None else folds) + 2, desc="label errors", unit="step",
               disable=not progress, leave=False)
    try:
        probe = user if user is not None else probe_probabilities(emb.vectors, given, len(classes), folds=folds,
                                                                   random_state=random_state, progress=bar)
        dist, nbrs = knn(emb.vectors, k=max(k, EVIDENCE), backend=backend, random_state=random_state)
        bar.update()
        post, noise = clean_posteriors(probe, given, nbrs[:, :k])
        bar.update()
    finally:
        bar.close()
    return _result(emb, given, classes, post, noise, dist, nbrs, k, threshold)


def _result(emb, given, classes, post, noise, dist, nbrs, k, threshold) -> LabelErrors:
    n = len(emb)
    names = np.asarray(classes, dtype=object)
    rows = np.arange(n)
    score = np.clip(1.0 - post[rows, given], 0.0, 1.0)
    other = post.copy()
    other[rows, given] = -1.0
    suggested = other.argmax(1)
    order = np.lexsort((rows, -score))
    if threshold is None:
        flagged = order[:int(round(float(score.sum())))]
    else:
        if not np.isfinite(threshold) or not 0 <= threshold <= 1:
            raise DataexploreError(f"threshold must be a score between 0 and 1, got {threshold!r}")
        flagged = order[score[order] >= threshold]
    is_candidate = np.zeros(n, bool)
    is_candidate[flagged] = True
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(1, n + 1)
    show = nbrs[:, :EVIDENCE]
    scores = pd.DataFrame({
        "id": emb.ids, "label": names[given], "suggested": names[suggested], "score": score,
        "confidence": post[rows, suggested], "is_candidate": is_candidate, "rank": rank,
        "agreement": (given[nbrs[:, :k]] == given[:, None]).mean(1),
        "neighbours": [list(emb.ids[r]) for r in show], "neighbour_labels": [list(names[given[r]]) for r in show],
    }).iloc[order].reset_index(drop=True)

    pairs: dict[tuple[int, int], list[int]] = {}
    for i in flagged:
        pairs.setdefault((int(given[i]), int(suggested[i])), []).append(int(i))
    per_label = np.bincount(given, minlength=len(classes))
    records, members = [], []
    for (g, s), idx in sorted(pairs.items(), key=lambda kv: (-float(score[kv[1]].sum()), -len(kv[1]))):
        m = np.asarray(idx, np.int64)  # already most suspicious first
        records.append({"name": f"{names[g]} → {names[s]}", "description": f"labeled {names[g]}, looks like {names[s]}",
                        "count": len(m), "label": names[g], "suggested": names[s],
                        "expected_errors": float(score[m].sum()), "mean_score": float(score[m].mean()),
                        "share": len(m) / per_label[g],
                        "exemplars": list(emb.ids[m[:4]])})
        members.append(m)
    table = pd.DataFrame.from_records(records, columns=["name", "description", "count", "label", "suggested",
                                                        "expected_errors", "mean_score", "share", "exemplars"])
    result = LabelErrors(emb.ids, table, members, sources=[emb])
    result.scores = scores
    result.suggestions = pd.Series(names[suggested[flagged]], index=pd.Index(emb.ids[flagged], name="id"),
                                   name="suggested", dtype=object)
    result.classes = list(classes)
    result.noise = pd.DataFrame(noise, index=pd.Index(classes, name="true"), columns=pd.Index(classes, name="given"))
    result.noise_rates = pd.Series(np.bincount(given, weights=score, minlength=len(classes)) / np.maximum(per_label, 1),
                                   index=pd.Index(classes, name="label"), name="noise rate")
    result.expected_errors = float(score.sum())
    result.threshold = float(score[flagged].min()) if len(flagged) else float("inf")
    result.k = int(k)
    result.embeddings = emb
    result._posteriors, result._nbrs, result._dist, result._given = post, nbrs[:, :k], dist[:, :k], given
    return result


def _embeddings(data: Any, model: str):
    """Embeddings for ``data``: a Selection or search result brings its own, else :func:`as_analysed`."""
    from ..core.embeddings import Embeddings
    from ..core.ids import rows_of
    from ..embedding.inputs import as_analysed

    if not isinstance(data, Embeddings) and hasattr(data, "indices") and hasattr(data, "ids"):  # Selection
        emb = getattr(data, "embeddings", None)
        if emb is None:
            raise DataexploreError("this selection does not know its embeddings: make it in dx.explore(), or pass "
                                   "embeddings.subset(...)")
        return emb.subset(rows_of(emb.ids, data.ids, message="the selection holds id {id!r}, which its embeddings "
                                  "do not have"))
    if hasattr(data, "query") and hasattr(data, "embeddings") and hasattr(data, "table"):  # SearchResult
        return data.embeddings
    return as_analysed(data, model)


def _labels(emb, label: Any) -> np.ndarray:
    """The given labels as str, aligned to ``emb``; every sample must have one."""
    from .slices import _aligned

    values = _aligned(emb, label, "label")
    missing = values.isna().to_numpy()
    if missing.all():
        raise DataexploreError("label= has no values: pass the column (or Series) holding the given labels")
    if missing.any():
        raise DataexploreError(f"{int(missing.sum())} samples have no label (e.g. {emb.ids[missing][0]!r}): analyse "
                               "the labeled ones, e.g. emb.subset(emb.table['label'].notna())")
    return values.astype(str).to_numpy(dtype=object)


def _user_probabilities(probabilities: Any, emb, classes: list) -> np.ndarray:
    """``probabilities=`` as an ``N × classes`` array aligned to ``emb``, rows summing to 1."""
    if isinstance(probabilities, pd.DataFrame):
        frame = probabilities.copy()
        frame.columns = [str(c) for c in frame.columns]
        absent = [c for c in classes if c not in frame.columns]
        if absent:
            raise DataexploreError(f"probabilities= has no column for class {absent[0]!r}: name the columns by class "
                                   f"({', '.join(classes[:6])}{', ...' if len(classes) > 6 else ''})")
        if not isinstance(frame.index, pd.RangeIndex):
            frame.index = frame.index.astype(str)
            missing = ~pd.Index(emb.ids).isin(frame.index)
            if missing.any():
                raise DataexploreError(f"probabilities= has no row for sample {emb.ids[missing][0]!r}")
            frame = frame.reindex(emb.ids)
        elif len(frame) != len(emb):
            raise DataexploreError(f"probabilities= has {len(frame)} rows for {len(emb)} samples: index it by "
                                   "sample id")
        p = frame[classes].to_numpy(np.float64)
    else:
        p = np.asarray(probabilities, dtype=np.float64)
        if p.shape != (len(emb), len(classes)):
            raise DataexploreError(f"probabilities= must be {len(emb)} × {len(classes)} (a column per class, in sorted "
                                   f"class order), got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise DataexploreError("probabilities= must be finite and non-negative")
    total = p.sum(1, keepdims=True)
    if (total <= 0).any():
        raise DataexploreError("probabilities= has a row of zeros")
    return p / total
