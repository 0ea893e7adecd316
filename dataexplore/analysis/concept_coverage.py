"""Concept coverage: how many images show each concept, and which concepts have (almost) none.

Each concept (a class name, a default visual concept, or your own prompt) becomes a CLIP text
vector (prompt-ensembled over a few templates). An image *matches* a concept when that concept is
its most similar one among all concepts checked (top-1) **and** the cosine similarity reaches the
model's threshold.

The threshold is calibrated per model so that a wrong concept passes it rarely: on labelled
images, it is the ``1 - false_match_rate`` quantile of the similarities between images and the
class concepts that are *not* their label (:func:`calibrate_threshold`; default rate 5 %). With
``threshold="auto"``, the model's shipped calibration is used (``fashion-tiny`` ships one,
computed on the Fashion-MNIST train split), else a calibration on the analysed images' own labels
when they have some, else no floor (top-1 only); :attr:`ConceptCoverage.threshold_source` says which.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import DataexploreError
from .groups import GroupResult
from .vocabulary import concept_vectors, text_model, vocabulary

STATUS_ORDER = ("missing", "under-represented", "rare", "covered", "over-represented", "present", "absent")


class ConceptCoverage(GroupResult):
    """Matches per concept in one or two sets (see :func:`concepts`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per concept: ``name`` (the concept), ``description`` (the status in words),
        ``count`` (matches in all sets), ``matches`` and ``share`` per set (``matches_<set>``,
        ``share_<set>``), ``ratio`` (share in the first set over the second) and ``status``:
        ``missing`` / ``under-represented`` / ``covered`` / ``over-represented`` / ``absent``
        with two sets; ``missing`` / ``rare`` / ``present`` with one.
    threshold : float or None
        The similarity floor used.
    threshold_source : str
        ``"model"``, ``"labels"``, ``"given"`` or ``"none"``.
    best : pandas.Series
        The matched concept per sample (None when it matched nothing), indexed by id.
    """

    title = "Concept coverage"

    def map_values(self) -> pd.Series:
        """The concept each sample matched; unmatched samples have no value."""
        return self.best.rename("concept")

    def missing(self) -> list[str]:
        """Concepts with no or few images: status ``missing`` (or ``rare`` with one set).

        With two sets, a concept is missing from the first when the second has it (at least
        ``min_count`` matches) and the first has fewer than ``min_count`` or under a quarter of
        the second's share, and the difference is significant (see ``alpha``). With one set, it is missing under ``min_count`` matches and rare
        under a fifth of the median share of the concepts present.
        """
        return self.table.loc[self.table["status"].isin(["missing", "rare"]), "name"].tolist()

    def to_query(self, concept: str):
        """A text :class:`~dataexplore.Query` for ``concept`` (e.g. one of :meth:`missing`), to find it in a pool.

        It uses the same model and similarity threshold as this analysis.

        Examples
        --------
        >>> cc = dx.concepts(train, other=production)  # doctest: +SKIP
        >>> cc.to_query(cc.missing()[0]).search("/data/unlabeled", top=200)  # doctest: +SKIP
        """
        from ..query import Query
        from .vocabulary import phrase

        if concept not in set(self.table["name"]):
            raise DataexploreError(f"{concept!r} was not checked here; checked: {sorted(self.table['name'])[:20]}")
        return Query.from_text(phrase(concept, self.phrases), self.model["name"], self.model["pretrained"],
                               name=concept, threshold=self.threshold)

    def plot(self, top: int = 40):
        """Horizontal bars of the share of each set matching each concept (plotly Figure)."""
        from .plots import concept_bars

        return concept_bars(self, top)


def concepts(data: Any, prompts: Sequence[str] | Mapping[str, str] | None = None, *, other: Any = None,
             names: Sequence[str] = ("data", "other"), model: str = "fashion-tiny",
             threshold: float | str | None = "auto", min_count: int | None = None,
             default_vocabulary: bool = True, false_match_rate: float = 0.05,
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
        Cosine-similarity floor for a match (see the module docs); ``None``: top-1 only.
    min_count : int, optional
        A concept with fewer matches is "missing" (default: 5, or 0.05 % of the set if more).
    default_vocabulary : bool
        Also check :data:`~dataexplore.analysis.vocabulary.DEFAULT_CONCEPTS` and the class names.
    false_match_rate : float
        For calibrating on labels: the share of wrong concepts allowed above the threshold.
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
    from .inputs import as_analysed, check_same_model

    sets = [as_analysed(data, model)] + ([as_analysed(other, model)] if other is not None else [])
    check_same_model(*sets)
    names = [str(n) for n in names][:len(sets)]
    if len(set(names)) != len(names):
        raise DataexploreError(f"the two sets need different names, got {names}")
    clip = text_model(sets[0])
    if clip is None:
        raise DataexploreError("concept coverage needs the CLIP model that made the embeddings; these "
                               "embeddings do not name one (embed with dataexplore.embed)")
    labels = pd.concat([s.table["label"] for s in sets if "label" in s.table.columns], ignore_index=True) \
        if any("label" in s.table.columns for s in sets) else None
    phrases = {str(k): str(v) for k, v in prompts.items()} if isinstance(prompts, Mapping) else None
    if isinstance(prompts, str):
        prompts = [prompts]
    vocab = vocabulary(list(prompts or ()), labels, default=default_vocabulary, phrases=phrases)
    if not vocab:
        raise DataexploreError("no concepts to check: give prompts or keep the default vocabulary")
    text = concept_vectors(clip, vocab, phrases)
    tau, source = _threshold(threshold, clip, sets, text, vocab, false_match_rate)

    best_all, ids_all, records = [], [], {}
    for name, emb in zip(names, sets):
        best = match(emb.vectors, text, tau)
        best_all.append(best)
        ids_all.append(emb.ids)
        counts = np.bincount(best[best >= 0], minlength=len(vocab))
        records[f"matches_{name}"] = counts
        records[f"share_{name}"] = counts / len(emb)
    floor = min_count if min_count is not None else max(5, int(0.0005 * len(sets[0])))
    table = pd.DataFrame({"name": vocab, **records})
    table["count"] = sum(table[f"matches_{n}"] for n in names)
    table["status"] = _status(table, names, floor, [len(e) for e in sets], alpha)
    if len(names) == 2:
        a, b = table[f"share_{names[0]}"], table[f"share_{names[1]}"]
        table["ratio"] = np.where(b > 0, a / b.where(b > 0, 1), np.inf)
        table.loc[(a == 0) & (b == 0), "ratio"] = np.nan
    table["description"] = [_describe(r, names) for r in table.to_dict("records")]
    order = table["status"].map({s: i for i, s in enumerate(STATUS_ORDER)})
    key = table[f"share_{names[-1]}"] if len(names) == 2 else -table[f"share_{names[0]}"]
    table = table.assign(_o=order, _k=-key).sort_values(["_o", "_k"], kind="stable").drop(columns=["_o", "_k"])
    best = np.concatenate(best_all)
    ids = np.concatenate(ids_all)
    members = [np.flatnonzero(best == i) for i in table.index]
    columns = ["name", "description", "count", "status", *records] + (["ratio"] if len(names) == 2 else [])
    result = ConceptCoverage(ids, table[columns], members)
    result.threshold, result.threshold_source, result.names = tau, source, names
    result.model, result.phrases = {"name": clip.name, "pretrained": clip.pretrained}, phrases
    concept = np.asarray(vocab, dtype=object)
    result.best = pd.Series(np.where(best >= 0, concept[np.maximum(best, 0)], None), index=pd.Index(ids, name="id"))
    return result


def match(vectors: np.ndarray, text: np.ndarray, threshold: float | None, block: int = 65536) -> np.ndarray:
    """Index of the matched concept per image (top-1 and above ``threshold``), or -1."""
    out = np.empty(len(vectors), np.int64)
    for start in range(0, len(vectors), block):
        sim = vectors[start:start + block] @ text.T
        top = sim.argmax(axis=1)
        ok = True if threshold is None else sim[np.arange(len(sim)), top] >= threshold
        out[start:start + block] = np.where(ok, top, -1)
    return out


def calibrate_threshold(vectors: np.ndarray, labels: Sequence[Any], text: np.ndarray, concepts: Sequence[str],
                        false_match_rate: float = 0.05) -> float:
    """Similarity floor that only ``false_match_rate`` of (image, wrong class concept) pairs reach.

    Parameters
    ----------
    vectors : numpy.ndarray
        Image embeddings, ``N×D``.
    labels : sequence
        Class name of each image; only classes that are among ``concepts`` are used.
    text, concepts
        Concept text vectors and their names.
    """
    lookup = {c.lower(): i for i, c in enumerate(concepts)}
    lab = pd.Series(labels).astype(str).str.lower()
    cols = sorted({lookup[v] for v in lab.unique() if v in lookup})
    if len(cols) < 2:
        raise DataexploreError("calibrating a concept threshold needs labels naming at least two concepts")
    use = lab.isin([concepts[c].lower() for c in cols]).to_numpy()
    sim = vectors[use] @ text[cols].T
    own = np.asarray([cols.index(lookup[v]) for v in lab[use]])
    wrong = np.ones_like(sim, bool)
    wrong[np.arange(len(sim)), own] = False
    return float(np.quantile(sim[wrong], 1 - false_match_rate))


def shipped_threshold(clip) -> float | None:
    """The concept threshold stored with a built-in model (``metrics.json``), if any."""
    from ..models import BUILTIN_MODELS

    folder = BUILTIN_MODELS.get(getattr(clip, "name", ""))
    if folder is None or not (folder / "metrics.json").is_file():
        return None
    value = json.loads((folder / "metrics.json").read_text()).get("concept_threshold", {}).get("value")
    return None if value is None else float(value)


def _threshold(threshold, clip, sets, text, vocab, rate) -> tuple[float | None, str]:
    if threshold is None:
        return None, "none"
    if threshold != "auto":
        if not isinstance(threshold, (int, float)) or not -1 <= threshold <= 1:
            raise DataexploreError(f"threshold must be 'auto', None or a cosine similarity in [-1, 1], got {threshold!r}")
        return float(threshold), "given"
    shipped = shipped_threshold(clip)
    if shipped is not None:
        return shipped, "model"
    labelled = [s for s in sets if "label" in s.table.columns]
    if labelled:
        try:
            vecs = np.concatenate([s.vectors for s in labelled])
            labels = pd.concat([s.table["label"] for s in labelled], ignore_index=True)
            return calibrate_threshold(vecs, labels, text, vocab, rate), "labels"
        except DataexploreError:
            pass
    return None, "none"


def _status(table: pd.DataFrame, names: list[str], floor: int, sizes: list[int], alpha: float) -> list[str]:
    first = table[f"matches_{names[0]}"].to_numpy()
    if len(names) == 1:
        share = table[f"share_{names[0]}"].to_numpy()
        rare = share < 0.2 * np.median(share[first >= floor]) if (first >= floor).any() else np.zeros(len(first), bool)
        return np.where(first < floor, "missing", np.where(rare, "rare", "present")).tolist()
    second = table[f"matches_{names[1]}"].to_numpy()
    a, b = table[f"share_{names[0]}"].to_numpy(), table[f"share_{names[1]}"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(b > 0, a / np.where(b > 0, b, 1), np.inf)
    low, high = _differ(first, second, sizes, alpha)
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
    parts = [f"{row['matches_' + n]} in {n} ({row['share_' + n]:.1%})" for n in names]
    return f"{row['status']}: " + ", ".join(parts)
