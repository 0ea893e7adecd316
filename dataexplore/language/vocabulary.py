"""Words for regions of the embedding space: a default concept vocabulary and text vectors.

Every group an analysis finds (a coverage gap, a failure slice, a cluster) is described by the
concepts that set it apart, in words (:class:`Describer`): an image matches a concept when it
passes the concept's own calibrated threshold (:mod:`.thresholds`); a concept describes a group
when the group's match rate is significantly higher than the rest's (one-sided binomial test,
Benjamini-Hochberg over the concepts), at least 1.5 times as high, and at least a quarter of the
group matches. Only concepts the model has been shown to tell apart are used (``known`` in
:mod:`.thresholds`). A group that no concept sets apart gets no description rather than a guess.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ..core.errors import DataexploreError
from .words import LABEL_PHRASES, _key, concept_key, phrase  # noqa: F401  (re-exported)

#: Common visual concepts, checked besides the dataset's own class names.
DEFAULT_CONCEPTS = (
    "person", "face", "child", "crowd", "hand",
    "dog", "cat", "bird", "horse", "cow", "fish", "insect",
    "car", "truck", "bus", "bicycle", "motorcycle", "airplane", "boat", "train",
    "street", "building", "house", "bridge", "road", "traffic sign",
    "tree", "flower", "grass", "forest", "mountain", "beach", "sea", "sky", "snow", "desert",
    "kitchen", "bedroom", "table", "chair", "sofa", "computer", "phone", "book", "bottle", "cup",
    "food", "fruit", "vegetable", "toy", "tool",
    "t-shirt", "shirt", "pullover", "dress", "coat", "trousers", "skirt", "sneaker", "sandal",
    "boot", "high heel shoe", "bag", "hat", "glasses", "watch",
    "text", "logo", "drawing", "screenshot", "x-ray", "microscope image", "satellite image",
    "night scene", "rain", "fog",
)

#: Prompt templates averaged per concept (prompt ensembling, as in the CLIP paper).
TEMPLATES = (
    "a photo of a {}.",
    "a picture of a {}.",
    "a photo of the {}.",
    "a low resolution photo of a {}.",
)


def vocabulary(extra: Sequence[str] | None = None, labels: Iterable[Any] | None = None,
               default: bool = True, phrases: dict[str, str] | None = None) -> list[str]:
    """Concept names: ``extra``, then the class names in ``labels``, then :data:`DEFAULT_CONCEPTS`.

    Duplicates are dropped, the first spelling winning; two names are duplicates when their
    phrases are the same word up to case, punctuation and a plural "s" ("Trouser"/"trousers",
    "T-shirt/top"/"t-shirt").
    """
    names: list[str] = []
    seen: set[str] = set()
    for name in [*(extra or ()), *_label_names(labels), *(DEFAULT_CONCEPTS if default else ())]:
        name = str(name).strip()
        key = _key(phrase(name, phrases))
        if name and key not in seen:
            seen.add(key)
            names.append(name)
    return names


def _label_names(labels) -> list[str]:
    if labels is None:
        return []
    import pandas as pd

    values = pd.Series(labels).dropna()
    if values.empty or pd.api.types.is_numeric_dtype(values):  # numeric class ids say nothing
        return []
    return [str(v) for v in pd.unique(values.astype(str))]


def prompt_for(concept: str) -> list[str]:
    """The prompts for one concept: a full sentence is used as is, a noun phrase in each template."""
    concept = concept.strip()
    if len(concept.split()) > 3 or concept.endswith(".") or "{}" in concept:
        return [concept.replace("{}", "").strip() or concept]
    return [t.format(concept) for t in TEMPLATES]


def text_model(embeddings) -> Any:
    """The CLIP model that made ``embeddings``, loaded for its text tower, or ``None``.

    ``None`` when the embeddings carry no model name (vectors from elsewhere) or when the loaded
    weights are not the ones that made the vectors.
    """
    info = getattr(embeddings, "model", None) or {}
    name = info.get("name")
    if not name:
        return None
    from ..models import load_model

    try:
        clip = load_model(name, info.get("pretrained"))
    except Exception:  # a model we cannot load just means no words
        return None
    if info.get("weights") and clip.identity.get("weights") != info.get("weights"):
        return None
    return clip


def concept_vectors(clip, concepts: Sequence[str], phrases: dict[str, str] | None = None) -> np.ndarray:
    """L2-normalised text vector per concept (template ensemble), ``len(concepts)×D`` float32."""
    from ..models import embed_prompts

    if clip is None:
        raise DataexploreError("no text model: these embeddings do not say which CLIP model made them")
    prompts = [prompt_for(phrase(c, phrases)) for c in concepts]
    flat = [p for group in prompts for p in group]
    vecs = embed_prompts(clip, flat) if flat else np.zeros((0, 1), np.float32)
    out, i = [], 0
    for group in prompts:
        v = vecs[i:i + len(group)].mean(axis=0)
        out.append(v / max(np.linalg.norm(v), 1e-12))
        i += len(group)
    return np.asarray(out, np.float32).reshape(len(concepts), -1)


class Describer:
    """Names groups of images by the concepts that set them apart from a background set.

    Parameters
    ----------
    vectors : numpy.ndarray
        The background image vectors (``N×D``, normalised), e.g. all samples analysed; the groups
        described are subsets of it.
    clip : ClipModel or None
        Text model; ``None`` gives empty descriptions.
    concepts : sequence of str
        The vocabulary; concepts the model cannot tell apart are left out.
    labels : sequence, optional
        Labels of ``vectors`` (calibrate the thresholds of the concepts they name).
    alpha : float
        False discovery rate over the concepts.

    Examples
    --------
    >>> d = Describer(emb.vectors, clip, ["sandal", "sneaker", "bag"])  # doctest: +SKIP
    >>> d(emb.vectors[sandals])  # doctest: +SKIP
    'sandal'
    """

    def __init__(self, vectors: np.ndarray, clip, concepts: Sequence[str], phrases: dict[str, str] | None = None,
                 labels: Iterable[Any] | None = None, alpha: float = 0.05):
        from .thresholds import concept_thresholds

        self.alpha = alpha
        self.concepts: list[str] = []
        self.text = None
        if clip is None or not len(concepts) or not len(vectors):
            return
        text = concept_vectors(clip, list(concepts), phrases)
        cal = concept_thresholds(clip, list(concepts), text, vectors, labels, phrases=phrases)
        keep = np.flatnonzero(cal.known)
        self.concepts = [list(concepts)[i] for i in keep]
        self.text, self.threshold = text[keep], cal.threshold[keep]
        self._rebase(vectors)

    def _rebase(self, vectors: np.ndarray) -> None:
        self.n_background = len(vectors)
        self.background = self._counts(vectors) if self.text is not None else None

    def _counts(self, vectors: np.ndarray) -> np.ndarray:
        out = np.zeros(len(self.concepts), np.int64)
        if self.text is None:  # no concepts the model can tell apart
            return out
        for start in range(0, len(vectors), 32768):
            out += ((vectors[start:start + 32768] @ self.text.T) >= self.threshold).sum(0)
        return out

    def rebase(self, vectors: np.ndarray) -> "Describer":
        """The same vocabulary and thresholds against another background set."""
        other = object.__new__(Describer)
        other.__dict__.update(self.__dict__)
        if self.text is not None:
            other._rebase(vectors)
        return other

    def top(self, vectors: np.ndarray, n: int = 3) -> list[str]:
        """Up to ``n`` concepts that set ``vectors`` (a subset of the background) apart, strongest first."""
        if self.text is None or len(vectors) == 0 or not self.concepts:
            return []
        from scipy.stats import binom, false_discovery_control

        m = self._counts(vectors)
        g = len(vectors)
        rest_n = max(self.n_background - g, 1)
        rest = np.clip(self.background - m, 0, None) / rest_n
        rate = m / g
        p = binom.sf(m - 1, g, np.clip(rest, 1e-6, 1 - 1e-6))
        q = false_discovery_control(p)
        ok = (q <= self.alpha) & (rate >= 0.25) & (rate >= 1.5 * rest)
        order = sorted(np.flatnonzero(ok), key=lambda i: (-(rate[i] - rest[i]), i))
        return [self.concepts[i] for i in order[:n]]

    def __call__(self, vectors: np.ndarray, n: int = 3) -> str:
        return ", ".join(self.top(vectors, n))


def _mean_direction(vectors: np.ndarray) -> np.ndarray:
    m = np.asarray(vectors, np.float64).mean(axis=0)
    return (m / max(np.linalg.norm(m), 1e-12)).astype(np.float32)
