"""From a gap's images to a :class:`~dataexplore.query.generation.GenerationRequest`: words, counts, vectors.

One builder (:func:`request_from`) serves every kind of gap; the results' ``to_generation``
methods only say which images are the gap and which are covered (the reference):

- **neighbours**: the covered samples nearest to the gap (each gap member's ``neighbours`` most
  similar reference samples), plus a random sample of the reference so that the check can tell an
  image of any covered concept from one of the gap;
- **concepts** (what to generate): the words given (a missing concept's name, a region's
  description), then the vocabulary concepts that set the gap apart from its neighbours
  (:class:`~dataexplore.language.vocabulary.Describer` on the gap against gap + neighbours), then
  the concepts the gap members match best zero-shot (nearest concept text vector); one prompt per
  concept, up to ``max_prompts``, the count split by the share of gap members each concept names;
- **attributes**: the Describer's concepts besides each prompt's own, added to the prompt;
- **negatives** (what it is not): the concepts that set the neighbours apart from the gap and the
  ones the neighbours match zero-shot, without the gap's own.

Without a text model (vectors from elsewhere) the prompts are the words given, or the gap's name.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..core.embeddings import medoids
from ..core.errors import DataexploreError
from .generation import GenerationRequest
from .jsonsafe import now as _now


def request_from(gap: Any, reference: Any, *, n: int, name: str, kind: str, words: Sequence[str] = (),
                 source: dict | None = None, target_size: int | None = None, k: int | None = None,
                 max_prompts: int = 3, max_gap: int = 2000, max_near: int = 20_000, random_reference: int = 1000,
                 exemplars: int = 8, gap_pixels: int = 256, seed: int = 0) -> GenerationRequest:
    """Build a request from the gap's :class:`~dataexplore.Embeddings` and the covered ones.

    Parameters
    ----------
    gap, reference : Embeddings
        The gap's samples and the covered (reference) samples, of one model.
    n : int
        Images to ask for in all.
    name, kind : str
        The request's name and what it was made from.
    words : sequence of str
        Concepts known to describe the gap (come first in the prompts).
    source : dict, optional
        Provenance (``analysis``, ``group``, ``description``).
    target_size : int, optional
        Size of the set the gap was found in (default: the gap's): with the reference's size it
        sets the coverage measure's expected share of reference neighbours, as in the analysis.
    k : int, optional
        Neighbours of the coverage measure (default: as :func:`~dataexplore.analysis.gaps.coverage` picks);
        each gap member's ``k`` nearest reference samples are kept, so the check measures the
        gap's coverage as the analysis did.
    max_prompts : int
        Most prompts (one per concept).
    max_gap, max_near, random_reference : int
        Most gap vectors kept (a random subsample), most nearest reference samples kept, and the
        random reference sample added to them (for telling any covered concept from the gap).
    exemplars : int
        Medoids of the gap kept as exemplars (ids, vectors, paths, pixels when in memory).
    gap_pixels : int
        Gap members whose pixels are kept when the images are small and in memory (the duplicate
        check calibrates on them).
    seed : int
        First seed; prompt ``i`` starts at ``seed + 1000 * i``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataexploreError(f"n must be a positive whole number of images, got {n!r}")
    if reference is None or len(reference) == 0:
        raise DataexploreError("a generation request needs covered (reference) samples to set the gap apart from")
    if len(gap) == 0:
        raise DataexploreError(f"{name!r} has no images: nothing to describe or to check generations against")
    if gap.vectors.shape[1] != reference.vectors.shape[1]:
        raise DataexploreError("the gap and the reference come from different models: embed both with one")
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(gap), max_gap, replace=False)) if len(gap) > max_gap else np.arange(len(gap))
    g = gap.vectors[keep]
    n_ref, n_tgt = len(reference), int(target_size or len(gap))
    if k is None:
        small = min(n_ref, n_tgt) / max(n_ref + n_tgt - 1, 1)
        k = int(np.clip(np.ceil(10 / max(small, 1e-9)), 15, 100))
    near = _nearest(g, reference.vectors, int(k))
    if len(near) > max_near:
        near = np.sort(rng.choice(near, max_near, replace=False))
    others = np.setdiff1d(np.arange(len(reference)), near)
    extra = np.sort(rng.choice(others, min(random_reference, len(others)), replace=False))
    ref_rows = np.r_[near, extra].astype(np.int64)
    r = reference.vectors[ref_rows]
    ref_labels = _labels(reference, ref_rows)
    concepts, weights, attributes, negatives = _words(gap, g, r[:len(near)], list(words), ref_labels[:len(near)],
                                                      max_prompts)
    if not concepts:
        concepts, weights = [name], [1.0]
    counts = split_count(n, weights)
    starts = np.r_[0, np.cumsum(counts)[:-1]]  # image k of prompt i gets seed + starts[i] + k: no two images share one
    prompts = [{"prompt": _sentence(c, [a for a in attributes if a != c]), "negative_prompt": _negative(negatives),
                "n": int(k), "seed": int(seed + start), "concept": c, "weight": float(w)}
               for c, w, k, start in zip(concepts, weights, counts, starts)]
    ex = keep[medoids(g, exemplars)]
    ex_emb = gap.subset(ex)
    images, paths = _exemplar_pixels(ex_emb)
    gap_images = _exemplar_pixels(gap.subset(keep[:gap_pixels]))[0] if images is not None and \
        images[0].size <= 64 * 64 * 3 else None
    model = dict(getattr(gap, "model", {}) or {})
    return GenerationRequest(
        name=name, kind=kind, n=int(n), prompts=prompts, model=model, gap_ids=[str(i) for i in gap.ids[keep]],
        gap_vectors=g, reference_ids=[str(i) for i in reference.ids[ref_rows]], reference_vectors=r,
        reference_labels=ref_labels if any(ref_labels) else [], concepts=concepts, attributes=attributes,
        negatives=negatives, exemplars=[str(i) for i in ex_emb.ids], exemplar_vectors=ex_emb.vectors,
        exemplar_paths=paths, exemplar_images=images, gap_images=gap_images,
        source={**(source or {}), "created": _now(), "gap_size": len(gap), "reference_size": n_ref},
        measure={"k": int(k), "expected": n_ref / max(n_ref + n_tgt - 1, 1), "near": int(len(near))}, seed=int(seed))


def split_count(n: int, weights: Sequence[float]) -> list[int]:
    """``n`` split in proportion to ``weights`` (largest remainders; sums to ``n``).

    Examples
    --------
    >>> split_count(10, [0.5, 0.3, 0.2]), split_count(7, [1, 1, 1])
    ([5, 3, 2], [3, 2, 2])
    """
    w = np.clip(np.asarray(weights, np.float64), 0, None)
    w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / len(w))
    raw = w * n
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out), kind="stable")[: n - int(out.sum())]:
        out[i] += 1
    return out.tolist()


def _nearest(queries: np.ndarray, pool: np.ndarray, k: int, block: int = 4096) -> np.ndarray:
    """Union of each query's ``k`` most similar pool rows (cosine), sorted."""
    k = min(k, len(pool))
    found = []
    for start in range(0, len(queries), block):
        sims = queries[start:start + block] @ pool.T
        found.append(np.argpartition(-sims, k - 1, axis=1)[:, :k].ravel())
    return np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)


def _labels(emb: Any, rows: np.ndarray) -> list[str]:
    table = emb.table if getattr(emb, "samples", None) is not None else None
    if table is None or "label" not in table.columns:
        return [""] * len(rows)
    return ["" if v is None or v != v else str(v) for v in table["label"].iloc[rows]]


def _words(gap: Any, g: np.ndarray, near: np.ndarray, given: list[str], near_labels: list[str],
           max_prompts: int) -> tuple[list[str], list[float], list[str], list[str]]:
    """Concepts (with weights), attributes and negatives, in the module's order (see the module docs)."""
    from ..language.vocabulary import Describer, concept_key, text_model, vocabulary

    clip = text_model(gap)
    if clip is None:
        return given[:max_prompts], [1.0] * len(given[:max_prompts]), [], sorted({x for x in near_labels if x})[:3]
    labels = [x for x in near_labels if x] + [x for x in _labels(gap, np.arange(len(gap))) if x]
    describe = Describer(np.concatenate([g, near]), clip, vocabulary(given, labels or None))
    if describe.text is None:
        return given[:max_prompts], [1.0] * len(given[:max_prompts]), [], []
    names, text = describe.concepts, describe.text
    setting_apart = describe.top(g, 5)
    gap_share = _zero_shot(g, text, len(names))
    near_share = _zero_shot(near, text, len(names)) if len(near) else np.zeros(len(names))
    order = [*given, *setting_apart, *(names[i] for i in np.argsort(-gap_share, kind="stable") if gap_share[i] >= 0.1)]
    concepts: list[str] = []
    for c in order:
        if concept_key(c) not in {concept_key(x) for x in concepts}:
            concepts.append(c)
    where = {concept_key(c): i for i, c in enumerate(names)}
    share = [float(gap_share[where[concept_key(c)]]) if concept_key(c) in where else None for c in concepts]
    concepts = [c for i, (c, w) in enumerate(zip(concepts, share)) if i == 0 or c in given or w is None or w >= 0.1]
    concepts = concepts[:max_prompts]
    weights = [max(float(gap_share[where[concept_key(c)]]), 0.05) if concept_key(c) in where else 0.5
               for c in concepts]
    own = {concept_key(c) for c in concepts} | {concept_key(c) for c in setting_apart}
    negatives = [c for c in [*describe.top(near, 3), *(names[i] for i in np.argsort(-near_share, kind="stable")
                                                     if near_share[i] >= 0.1)] if concept_key(c) not in own]
    negatives = list(dict.fromkeys(negatives))[:4]
    attributes = [c for c in setting_apart if concept_key(c) not in {concept_key(x) for x in concepts}]
    return concepts, weights, attributes, negatives


def _zero_shot(vectors: np.ndarray, text: np.ndarray, n: int) -> np.ndarray:
    """Share of ``vectors`` whose most similar concept text vector is each concept."""
    if not len(vectors):
        return np.zeros(n)
    best = np.argmax(vectors @ text.T, axis=1)
    return np.bincount(best, minlength=n) / len(vectors)


def _sentence(concept: str, attributes: list[str]) -> str:
    from ..language.vocabulary import phrase

    words = phrase(concept)
    body = words if len(words.split()) > 3 or words.endswith(".") else f"a photo of a {words}"
    return body + (", " + ", ".join(phrase(a) for a in attributes[:2]) if attributes else "")


def _negative(concepts: list[str]) -> str:
    from ..language.vocabulary import phrase

    return ", ".join(phrase(c) for c in concepts)


def _exemplar_pixels(emb: Any) -> tuple[np.ndarray | None, list]:
    """Pixels (in-memory images, one shape) and file paths of the exemplars."""
    samples = getattr(emb, "samples", None)
    if samples is None:
        return None, []
    rows = emb._rows()
    paths: list[str | None] = [None] * len(rows)
    if "filepath" in samples.table.columns:
        paths = [None if p is None else str(p) for p in samples.table["filepath"].iloc[rows]]
    images = None
    if samples.images is not None and np.asarray(samples.images).dtype == np.uint8:
        images = np.asarray(samples.images[rows], np.uint8)
    return images, paths if any(p is not None for p in paths) else []
