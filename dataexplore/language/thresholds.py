"""When does an image show a concept? One calibrated similarity threshold per concept.

A concept (a class name, a visual concept, your own prompt) becomes a CLIP text vector; an image
*matches* it when their cosine similarity reaches the concept's own threshold. Each concept is
decided on its own, never by winning an argmax against the other concepts checked, so a prompt and
its synonym both match the same images and adding concepts never changes another concept's count.

Where each concept's threshold comes from (``ConceptThresholds.source``), best first:

- ``"labels"``: the analysed images have labels naming the concept. The threshold is the
  ``1 - false_match_rate`` quantile of the concept's similarity to images labelled as *other*
  classes, so by construction that share of other-class images passes it;
- ``"model"``: the model ships a calibration for the concept (``fashion-tiny`` ships one per class
  phrase, computed the same way on the Fashion-MNIST train split; see ``calibrate.py``);
- ``"model-level"``: the model's (or the labels') typical threshold for the concepts it was
  calibrated on, used for other concepts;
- ``"given"``: a threshold you passed;
- ``"uncalibrated"``: nothing to calibrate on: the median plus three robust standard deviations of
  the concept's similarity over the analysed images (an outlier rule), flagged as such;
- ``"uncalibrated-tail"``: in a two-set comparison (:func:`dataexplore.concepts` with ``other=``),
  a concept you asked about that has no calibration takes its threshold from the images most like
  it in both sets, where the two sets differ most (see ``concept_coverage._tail_thresholds``).

``false_match_rate`` per concept is the share of images *without* the concept expected to pass
(known for ``labels``/``model`` thresholds, the nominal rate for ``model-level``, unknown otherwise):
analyses subtract it to estimate how many images really show a concept.

``known`` says whether the model has been shown to tell a concept apart: calibrated on labels or
shipped with an AUROC of at least 0.9, or (for models without a shipped calibration) not shown
otherwise. Descriptions of groups use known concepts only: a model that never learned a word (as
``fashion-tiny`` never learned "dog") maps it to a generic vector that would "describe" anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError
from .words import concept_key

#: Default share of images without a concept allowed to pass its threshold.
FALSE_MATCH_RATE = 0.02
#: Smallest calibration AUROC (own-class images vs the rest) for a concept to count as known.
KNOWN_AUROC = 0.9


@dataclass
class ConceptThresholds:
    """Per-concept similarity thresholds and what they rest on (see the module docs).

    Examples
    --------
    >>> t = ConceptThresholds(["a", "b"], np.array([0.5, 0.6]), np.array([0.02, np.nan]),
    ...                       ["labels", "given"], np.array([True, True]))
    >>> t.matches(np.array([[0.55, 0.7]]), np.eye(2, dtype=np.float32)).tolist()
    [[True, True]]
    """

    concepts: list
    threshold: np.ndarray
    false_match_rate: np.ndarray
    source: list
    known: np.ndarray
    auroc: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def matches(self, vectors: np.ndarray, text: np.ndarray, block: int = 32768) -> np.ndarray:
        """``N×C`` bool: which image matches which concept (each against its own threshold)."""
        out = np.empty((len(vectors), len(self.concepts)), bool)
        for start in range(0, len(vectors), block):
            out[start:start + block] = (vectors[start:start + block] @ text.T) >= self.threshold[None, :]
        return out

    def table(self) -> pd.DataFrame:
        """One row per concept: threshold, false-match rate, source, known."""
        return pd.DataFrame({"concept": self.concepts, "threshold": self.threshold,
                             "false_match_rate": self.false_match_rate, "source": self.source, "known": self.known})


def shipped_calibration(clip) -> dict:
    """The concept calibration stored with a built-in model (``metrics.json``), or ``{}``."""
    from ..models import BUILTIN_MODELS

    folder = BUILTIN_MODELS.get(getattr(clip, "name", ""))
    if folder is None or not (folder / "metrics.json").is_file():
        return {}
    metrics = json.loads((folder / "metrics.json").read_text())
    return metrics.get("concept_calibration") or {}


def shipped_threshold(clip) -> float | None:
    """The model-level concept threshold a built-in model ships, if any (for text queries)."""
    value = shipped_calibration(clip).get("model_level")
    return None if value is None else float(value)


def concept_thresholds(clip, concepts: Sequence[str], text: np.ndarray, vectors: np.ndarray,
                       labels: Iterable[Any] | None = None, *, threshold: float | str | None = "auto",
                       false_match_rate: float = FALSE_MATCH_RATE,
                       phrases: dict[str, str] | None = None) -> ConceptThresholds:
    """Calibrate one threshold per concept (see the module docs for the order of sources).

    Parameters
    ----------
    clip : ClipModel or None
        The model (for its shipped calibration).
    concepts : sequence of str
    text : numpy.ndarray
        ``C×D`` concept text vectors.
    vectors : numpy.ndarray
        The analysed images (``N×D``), for label calibration and the uncalibrated fallback.
    labels : sequence, optional
        A label per row of ``vectors`` (None where unknown).
    threshold : "auto", float or None
        ``"auto"``: calibrate; a float: the same threshold for every concept (``"given"``);
        ``None``: the uncalibrated outlier rule.
    false_match_rate : float
        For label calibration.
    """
    if not 0 < false_match_rate < 0.5:
        raise DataexploreError(f"false_match_rate must be in (0, 0.5), got {false_match_rate}")
    n_c = len(concepts)
    tau = np.full(n_c, np.nan)
    fmr = np.full(n_c, np.nan)
    auroc = np.full(n_c, np.nan)
    source = ["uncalibrated"] * n_c
    keys = [concept_key(c, phrases) for c in concepts]
    if threshold not in ("auto", None):
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1 <= threshold <= 1:
            raise DataexploreError(
                f"threshold must be 'auto', None or a cosine similarity in [-1, 1], got {threshold!r}")
        return ConceptThresholds(list(concepts), np.full(n_c, float(threshold)), fmr, ["given"] * n_c,
                                 np.ones(n_c, bool), auroc)
    shipped = shipped_calibration(clip) if threshold == "auto" else {}
    if threshold == "auto" and labels is not None:
        _from_labels(concepts, keys, text, vectors, labels, false_match_rate, phrases, tau, fmr, auroc, source)
    for i, key in enumerate(keys):
        entry = (shipped.get("concepts") or {}).get(key)
        if np.isnan(tau[i]) and entry is not None:
            tau[i], fmr[i], auroc[i], source[i] = entry["threshold"], shipped.get("false_match_rate", np.nan), \
                entry.get("auroc", np.nan), "model"
    level = shipped.get("model_level")
    calibrated = [i for i in range(n_c) if source[i] == "labels"]
    if level is None and calibrated:
        level = float(np.median(tau[calibrated]))
    nominal = shipped.get("false_match_rate", false_match_rate)
    for i in range(n_c):
        if np.isnan(tau[i]) and threshold == "auto" and level is not None:
            tau[i], fmr[i], source[i] = float(level), nominal, "model-level"
        elif np.isnan(tau[i]):
            s = vectors @ text[i] if len(vectors) else np.zeros(1)
            med = float(np.median(s))
            tau[i] = med + 3 * 1.4826 * float(np.median(np.abs(s - med)))
    has_vocab = bool(shipped.get("concepts"))
    known = np.array([(auroc[i] >= KNOWN_AUROC) if not np.isnan(auroc[i]) else not has_vocab for i in range(n_c)])
    return ConceptThresholds(list(concepts), tau, fmr, source, known, auroc)


def _from_labels(concepts, keys, text, vectors, labels, rate, phrases, tau, fmr, auroc, source) -> None:
    """Thresholds for the concepts the labels name: the (1 - rate) quantile over other-class images."""
    lab = pd.Series(list(labels), dtype=object)
    known = lab.notna().to_numpy()
    if known.sum() < 20:
        return
    lab_keys = np.array([concept_key(str(v), phrases) if ok else "" for v, ok in zip(lab, known)], dtype=object)
    classes = set(lab_keys[known])
    if len(classes) < 2:
        return
    for i, key in enumerate(keys):
        if key not in classes:
            continue
        own = lab_keys == key
        other = known & ~own
        if own.sum() < 5 or other.sum() < 20:
            continue
        s = vectors @ text[i]
        tau[i] = float(np.quantile(s[other], 1 - rate))
        fmr[i], source[i] = rate, "labels"
        auroc[i] = _auroc(s[own], s[other])


def _auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    from scipy.stats import rankdata

    r = rankdata(np.concatenate([pos, neg]))
    return float((r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))
