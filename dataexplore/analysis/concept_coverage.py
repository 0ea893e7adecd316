"""Concept coverage: how many images show each concept, and which concepts have (almost) none.

Each concept (a class name, a default visual concept, or your own prompt) becomes a CLIP text
vector (prompt-ensembled over a few templates). An image *matches* a concept when its similarity
reaches that concept's own calibrated threshold (:mod:`.thresholds`): every concept is decided on
its own, so counts never depend on which other concepts are checked, and a prompt, its synonym and
the class name of the same thing match the same images.

A threshold lets a known share of images *without* the concept through (its false-match rate, 2 %
by default). Counts are therefore reported raw (``matches``) and corrected for those expected false
matches (``excess``: ``matches - rate × images``); the status is decided on the corrected counts,
so a class removed from the reference is "missing" even though a few look-alikes still pass its
threshold there.

A concept you ask about that has no calibration (your own CLIP, no labels) is compared by the tails
of the two sets instead: where the images most like it come from one set far more than its share
predicts, that is where its threshold is put (``threshold_source`` "uncalibrated-tail").
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError
from ..language.thresholds import FALSE_MATCH_RATE, ConceptThresholds, concept_thresholds, shipped_threshold  # noqa: F401
from ..language.vocabulary import concept_vectors, text_model, vocabulary
from .groups import GroupResult

STATUS_ORDER = ("missing", "under-represented", "rare", "covered", "over-represented", "present", "absent",
                "unknown to the model")


class ConceptCoverage(GroupResult):
    """Matches per concept in one or two sets (see :func:`concepts`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per concept: ``name`` (the concept), ``description`` (the status in words),
        ``count`` (matches in all sets), per set ``matches_<set>``, ``share_<set>`` and
        ``excess_<set>`` (matches beyond the expected false matches), ``ratio`` (corrected share in
        the first set over the second), ``threshold``, ``threshold_source`` and ``status``:
        ``missing`` / ``under-represented`` / ``covered`` / ``over-represented`` / ``absent``
        with two sets; ``missing`` / ``rare`` / ``present`` with one; ``unknown to the model``
        for a prompt the model was never shown to tell apart (e.g. "car" for ``fashion-tiny``).
    thresholds : ConceptThresholds
        Each concept's threshold, false-match rate and where it came from.
    threshold : float
        The median threshold (one number for a summary; each concept uses its own).
    threshold_source : str
        The most common source (``"labels"``, ``"model"``, ``"model-level"``, ``"given"``,
        ``"uncalibrated"``).
    best : pandas.Series
        The concept each sample matches most clearly (highest similarity above its threshold),
        None when it matches none, indexed by id; an image may match several (see ``members``).
    """

    title = "Concept coverage"
    thresholds: ConceptThresholds
    names: list[str]
    threshold: float
    threshold_source: str
    model: dict
    phrases: dict[str, str] | None
    best: pd.Series

    def map_values(self) -> pd.Series:
        """The concept each sample matched; unmatched samples have no value."""
        return self.best.rename("concept")

    def missing(self) -> list[str]:
        """Concepts with no or few images: status ``missing`` (or ``rare`` with one set).

        With two sets, a concept is missing from the first when the second has it (at least
        ``min_count`` matches) and the first has fewer than ``min_count`` or under a quarter of
        the second's share, and the difference is significant (see ``alpha``). With one set, it is
        missing under ``min_count`` matches and rare under a fifth of the median share of the
        concepts present.
        """
        return self.table.loc[self.table["status"].isin(["missing", "rare"]), "name"].tolist()

    def to_query(self, concept: str):
        """A text :class:`~dataexplore.Query` for ``concept`` (e.g. one of :meth:`missing`), to find it in a pool.

        It uses the same model and the concept's own similarity threshold.

        Examples
        --------
        >>> cc = dx.concepts(train, other=production)  # doctest: +SKIP
        >>> cc.to_query(cc.missing()[0]).search("/data/unlabeled", top=200)  # doctest: +SKIP
        """
        from ..language.vocabulary import phrase
        from ..query import Query

        if concept not in set(self.table["name"]):
            raise DataexploreError(f"{concept!r} was not checked here; checked: {sorted(self.table['name'])[:20]}")
        tau = float(self.table.set_index("name").loc[concept, "threshold"])
        return Query.from_text(phrase(concept, self.phrases), self.model["name"], self.model["pretrained"],
                               name=concept, threshold=tau)

    def to_generation(self, concept: str, n: int = 100, **kwargs):
        """A :class:`~dataexplore.query.generation.GenerationRequest` for ``n`` images of ``concept``.

        With two sets the gap is the second set's images of the concept and the first set is the
        covered side; with one set, its images of the concept against the rest.

        Examples
        --------
        >>> cc = dx.concepts(train, other=production)  # doctest: +SKIP
        >>> req = cc.to_generation(cc.missing()[0], n=200)  # doctest: +SKIP
        """
        from ..query.generation_words import request_from

        if concept not in set(self.table["name"]):
            raise DataexploreError(f"{concept!r} was not checked here; checked: {sorted(self.table['name'])[:20]}")
        pos = self._position(concept)
        first, second = self._sources[0], self._sources[-1]
        hits = np.zeros(len(self.ids), bool)
        hits[self.members[pos]] = True
        if len(self._sources) > 1:
            gap, ref = second.subset(hits[len(first):]), first
        else:
            gap, ref = first.subset(hits), first.subset(~hits)
        if len(gap) == 0:
            raise DataexploreError(f"no image matches {concept!r} here: a request needs examples of it (give "
                                   "other= a set that has some)")
        from ..language.vocabulary import phrase

        source = {"analysis": self.title, "group": concept, "description": str(self.table["description"].iloc[pos])}
        kwargs = {"name": concept, "target_size": len(second), **kwargs}
        return request_from(gap, ref, n=n, kind="missing concept", words=[phrase(concept, self.phrases)],
                            source=source, **kwargs)

    def plot(self, top: int = 40):
        """Horizontal bars of the share of each set matching each concept (plotly Figure)."""
        from .plots import concept_bars

        return concept_bars(self, top)


def concepts(data: Any, prompts: Sequence[str] | Mapping[str, str] | None = None, *, other: Any = None,
             names: Sequence[str] = ("data", "other"), model: str = "fashion-tiny",
             threshold: float | str | None = "auto", min_count: int | None = None,
             default_vocabulary: bool = True, false_match_rate: float = FALSE_MATCH_RATE,
             alpha: float = 0.05) -> ConceptCoverage:
    """Count the images of each concept, in one set or compared between two.

    Parameters
    ----------
    data
        :class:`~dataexplore.Embeddings` or a source to embed with ``model`` (e.g. the train set).
    prompts : sequence of str or dict, optional
        Concepts to check: short names ("sandal") go through prompt templates, full sentences
        ("a photo of a red sandal on grass") are used as they are; a dict maps a concept's name
        to the phrase or sentence to prompt with (``{"Trouser": "trousers"}``).
    other : optional
        A second set to compare against (e.g. test or production data).
    names : (str, str)
        Column suffixes for the two sets.
    model : str
        Model for sources that still need embedding.
    threshold : float, "auto" or None
        ``"auto"``: a calibrated threshold per concept (see :mod:`.thresholds`); a float: that
        similarity for every concept; ``None``: the uncalibrated outlier rule for every concept.
    min_count : int, optional
        A concept with fewer matches is "missing" (default: 5, or 0.05 % of the set if more).
    default_vocabulary : bool
        Also check the class names and those of
        :data:`~dataexplore.language.vocabulary.DEFAULT_CONCEPTS` the model knows (a model that ships
        its vocabulary, like ``fashion-tiny``, is not asked about words it never learned);
        ``False``: exactly the ``prompts`` given.
    false_match_rate : float
        For calibrating on labels: the share of other-class images allowed above a threshold.
    alpha : float
        With two sets, a concept is only called missing, under- or over-represented when a
        one-sided binomial test says the shares differ, at this false discovery rate.

    Returns
    -------
    ConceptCoverage

    Examples
    --------
    >>> import dataexplore as dx
    >>> cc = dx.concepts("fashion-mnist:train:20000", ["sandal", "high heel shoe"],
    ...                  other="fashion-mnist:test")  # doctest: +SKIP
    >>> cc.missing()  # doctest: +SKIP
    >>> cc.plot()  # doctest: +SKIP
    """
    from ..embedding.inputs import as_analysed, check_same_model

    sets = [as_analysed(data, model)] + ([as_analysed(other, model)] if other is not None else [])
    check_same_model(*sets)
    names = [str(n) for n in names][:len(sets)]
    if len(set(names)) != len(names):
        raise DataexploreError(f"the two sets need different names, got {names}")
    clip = text_model(sets[0])
    if clip is None:
        raise DataexploreError("concept coverage needs the CLIP model that made the embeddings; these "
                               "embeddings do not name one (embed with dataexplore.embed)")
    pooled_labels = pd.concat([s.table["label"] if "label" in s.table.columns
                               else pd.Series([None] * len(s), dtype=object) for s in sets], ignore_index=True)
    has_labels = bool(pooled_labels.notna().any())
    phrases = {str(k): str(v) for k, v in prompts.items()} if isinstance(prompts, Mapping) else None
    if isinstance(prompts, str):
        prompts = [prompts]
    vocab = vocabulary(list(prompts or ()), pooled_labels if default_vocabulary and has_labels else None,
                       default=default_vocabulary, phrases=phrases)
    if not vocab:
        raise DataexploreError("no concepts to check: give prompts or keep the default vocabulary")
    text = concept_vectors(clip, vocab, phrases)
    pooled = np.concatenate([e.vectors for e in sets])
    cal = concept_thresholds(clip, vocab, text, pooled, pooled_labels if has_labels else None, threshold=threshold,
                             false_match_rate=false_match_rate, phrases=phrases)
    # concepts you asked for are always reported; default-vocabulary ones only if the model knows them
    asked = set(vocabulary(list(prompts or ()), pooled_labels if default_vocabulary and has_labels else None,
                           default=False, phrases=phrases))
    keep = np.array([c in asked or bool(k) for c, k in zip(vocab, cal.known)], bool)
    if not keep.all():
        vocab, text = [c for c, k in zip(vocab, keep) if k], text[keep]
        cal = ConceptThresholds([c for c, k in zip(cal.concepts, keep) if k], cal.threshold[keep],
                                cal.false_match_rate[keep], [x for x, k in zip(cal.source, keep) if k],
                                cal.known[keep], cal.auroc[keep])
    if len(sets) == 2 and threshold == "auto":  # only for concepts asked about, not the default vocabulary
        _tail_thresholds(cal, pooled, text, len(sets[0]), alpha, [c in asked for c in vocab])
    hits = cal.matches(pooled, text)
    rate = np.nan_to_num(cal.false_match_rate, nan=0.0)
    records, start = {}, 0
    for name, emb in zip(names, sets):
        counts = hits[start:start + len(emb)].sum(0)
        records[f"matches_{name}"] = counts
        records[f"share_{name}"] = counts / len(emb)
        records[f"excess_{name}"] = np.clip(counts - rate * len(emb), 0, None).round(1)
        start += len(emb)
    floor = min_count if min_count is not None else max(5, int(0.0005 * len(sets[0])))
    table = pd.DataFrame({"name": vocab, **records})
    table["count"] = sum(table[f"matches_{n}"] for n in names)
    table["status"] = _status(table, names, floor, [len(e) for e in sets], alpha)
    if len(names) == 2:
        a = table[f"excess_{names[0]}"] / len(sets[0])
        b = table[f"excess_{names[1]}"] / len(sets[1])
        table["ratio"] = np.where(b > 0, a / b.where(b > 0, 1), np.inf)
        table.loc[(a == 0) & (b == 0), "ratio"] = np.nan
    table["threshold"] = np.round(cal.threshold, 4)
    table["threshold_source"] = cal.source
    table["known"] = cal.known
    table.loc[~table["known"], "status"] = "unknown to the model"  # it cannot tell these; no count is meaningful
    table["description"] = [_describe(r, names) for r in table.to_dict("records")]
    order = table["status"].map({s: i for i, s in enumerate(STATUS_ORDER)})
    key = table[f"share_{names[-1]}"] if len(names) == 2 else -table[f"share_{names[0]}"]
    table = table.assign(_o=order, _k=-key).sort_values(["_o", "_k"], kind="stable").drop(columns=["_o", "_k"])
    ids = np.concatenate([e.ids for e in sets])
    members = [np.flatnonzero(hits[:, i]) for i in table.index]
    extra = [f"excess_{n}" for n in names]
    columns = ["name", "description", "count", "status", *records.keys()] + \
        (["ratio"] if len(names) == 2 else []) + ["threshold", "threshold_source", "known"]
    columns = [c for c in columns if c not in extra] + extra
    result = ConceptCoverage(ids, table[columns], members, sources=sets)
    result.thresholds, result.names = cal, names
    result.threshold = float(np.median(cal.threshold))
    result.threshold_source = pd.Series(cal.source).mode().iloc[0]
    result.model, result.phrases = {"name": clip.name, "pretrained": clip.pretrained}, phrases
    margin = (np.where(hits, pooled @ text.T - cal.threshold[None, :], -np.inf) if len(vocab)
              else np.zeros((len(ids), 0)))
    best = margin.argmax(axis=1) if len(vocab) else np.zeros(len(ids), int)
    matched = hits.any(axis=1)
    concept = np.asarray(vocab, dtype=object)
    result.best = pd.Series(np.where(matched, concept[best], None), index=pd.Index(ids, name="id"))
    return result


def _tail_thresholds(cal: ConceptThresholds, pooled: np.ndarray, text: np.ndarray, n_first: int,
                     alpha: float, asked: Sequence[bool]) -> None:
    """Thresholds for the uncalibrated concepts of a two-set comparison, from the tails of both sets.

    Without labels or a shipped calibration no threshold says whether an image shows a concept; the
    outlier rule lands above every image for concepts with many look-alikes, or below the
    look-alikes. What two sets can still tell is which one the images *most like* the concept come
    from: for the ``m`` most similar images (pooled; ``m`` = 25, 50, 100, ... up to 5 % of the
    images), the first set's count is binomial with its share of all images when both sets have the
    concept equally. The ``m`` where that two-sided test is most significant (Bonferroni over the
    sizes tried) sets the threshold, the similarity those ``m`` images reach, and the source becomes
    ``"uncalibrated-tail"``; when no size differs, the outlier rule stands. Counts at such a
    threshold compare the two sets; they say nothing about how many images really show the concept.
    """
    from scipy.stats import binom

    todo = [i for i, src in enumerate(cal.source) if src == "uncalibrated" and asked[i]]
    n = len(pooled)
    sizes = [m for m in (25 * 2 ** j for j in range(20)) if m <= max(25, 0.05 * n)]
    if not todo or n < 2 * sizes[0] or n_first in (0, n):
        return
    p0 = n_first / n
    first = np.r_[np.ones(n_first, bool), np.zeros(n - n_first, bool)]
    m = np.array(sizes)
    top = sizes[-1]
    for i in todo:
        s = pooled @ text[i]
        order = np.argpartition(-s, top - 1)[:top]
        order = order[np.argsort(-s[order], kind="stable")]
        counts = np.cumsum(first[order])[m - 1]
        p = np.minimum(binom.cdf(counts, m, p0), binom.sf(counts - 1, m, p0)) * 2 * len(sizes)  # both sides
        best = int(np.argmin(p))
        if p[best] <= alpha:
            cal.threshold[i] = float(s[order[sizes[best] - 1]])
            cal.source[i] = "uncalibrated-tail"


def _status(table: pd.DataFrame, names: list[str], floor: int, sizes: list[int], alpha: float) -> list[str]:
    """Status per concept from the counts corrected for expected false matches (``excess_*``)."""
    first = table[f"excess_{names[0]}"].to_numpy()
    if len(names) == 1:
        share = first / sizes[0]
        rare = share < 0.2 * np.median(share[first >= floor]) if (first >= floor).any() else np.zeros(len(first), bool)
        return np.where(first < floor, "missing", np.where(rare, "rare", "present")).tolist()
    second = table[f"excess_{names[1]}"].to_numpy()
    a, b = first / sizes[0], second / sizes[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(b > 0, a / np.where(b > 0, b, 1), np.inf)
    low, high = _differ(table[f"matches_{names[0]}"].to_numpy(), table[f"matches_{names[1]}"].to_numpy(), sizes, alpha)
    out = np.full(len(a), "covered", dtype=object)
    out[low & (ratio < 0.5)] = "under-represented"
    out[high & (ratio > 2)] = "over-represented"
    out[low & (second >= floor) & ((first < floor) | (ratio < 0.25))] = "missing"
    out[(first < floor) & (second < floor)] = "absent"
    return out.tolist()


def _differ(first, second, sizes, alpha) -> tuple[np.ndarray, np.ndarray]:
    """Which concepts are significantly rarer / more common in the first set than in the second.

    Conditional on the total matches of a concept, its count in the first set is binomial with
    the first set's share of all images when both sets have the same rate; one-sided tests, with
    the false discovery rate controlled over all concepts.
    """
    from scipy.stats import binom, false_discovery_control

    total = first + second
    p0 = sizes[0] / (sizes[0] + sizes[1])
    p_low = np.where(total > 0, binom.cdf(first, total, p0), 1.0)
    p_high = np.where(total > 0, binom.sf(first - 1, total, p0), 1.0)
    return false_discovery_control(p_low) <= alpha, false_discovery_control(p_high) <= alpha


def _describe(row: dict, names) -> str:
    parts = [f"{row['matches_' + n]} in {n} ({row['share_' + n]:.1%}; {row['excess_' + n]:g} beyond false matches)"
             for n in names]
    return f"{row['status']}: " + ", ".join(parts)
