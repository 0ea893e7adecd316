"""The label-noise model behind :func:`~dataexplore.analysis.label_errors.label_errors`.

1. **Probe** (:func:`probe_probabilities`). A multinomial logistic regression on the embeddings,
   cross-validated over stratified folds, gives each sample out-of-fold class probabilities: what a
   linear model that never saw this sample's label makes of it.
2. **Noise model** (:func:`clean_posteriors`). The probe learns from the given labels, mistakes
   included, so its probabilities are those of a *noisy* label. A latent-class model tells the two
   apart: each sample has a true class, and its given label is drawn from a noise matrix
   ``T[true, given]``. Expectation-maximisation alternates

   - each sample's *prior* over its true class: ``PROBE_WEIGHT`` × the probe's probabilities with
     the noise divided out (``P·T⁻¹``, clipped at zero) plus the rest × the mean posterior of its
     nearest neighbours, so a sample is judged by what its neighbours truly are, not by what they
     are labeled;
   - the *posterior* ``q ∝ prior × T[:, given]``;
   - the noise matrix from the posteriors, smoothed by spreading ``SMOOTHING`` of each row's mass
     evenly over the other classes (a Dirichlet prior that keeps any flip possible),

   until no posterior moves more than ``TOLERANCE``. Flips between look-alike classes show up as
   noise-matrix mass on those pairs, and the samples on such a pair are judged against it.

``PROBE_WEIGHT`` and ``SMOOTHING`` were chosen on planted noise with seeds kept apart from those
``benchmarks/label_errors.py`` reports.
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from typing import Any

import numpy as np

#: Weight of the probe in each sample's prior over its true class (the rest: its neighbours).
PROBE_WEIGHT = 0.6
#: Share of each true class's noise-matrix row spread evenly over the other classes.
SMOOTHING = 0.03
#: Expectation-maximisation stops when no posterior moves more than TOLERANCE, or after MAX_ITERATIONS.
MAX_ITERATIONS = 100
TOLERANCE = 1e-4
#: Below this many multiply-adds per probe iteration, BLAS runs on one thread (faster on a busy machine).
_SMALL_PROBE = 5e7


def probe_probabilities(vectors: np.ndarray, given: np.ndarray, n_classes: int, *, folds: int = 5,
                        random_state: int = 0, progress: Any = None) -> np.ndarray:
    """Out-of-fold probabilities of a multinomial logistic regression (``N × n_classes``).

    A class missing from a training fold gets probability 0 on that fold's held-out samples.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.r_[rng.normal(1, 1, (30, 2)), rng.normal(-1, 1, (30, 2))].astype(np.float32)
    >>> p = probe_probabilities(x, np.repeat([0, 1], 30), 2, folds=3)
    >>> p.shape, bool((p[:30, 0] > 0.5).mean() > 0.8)
    ((60, 2), True)
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # ships no type hints

    splits = int(min(folds, max(2, np.bincount(given).max())))
    out = np.zeros((len(vectors), n_classes))
    one_thread = vectors.size * n_classes < _SMALL_PROBE
    with warnings.catch_warnings(), threadpool_limits(1, user_api="blas") if one_thread else nullcontext():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="The least populated class")
        for train, test in StratifiedKFold(splits, shuffle=True, random_state=random_state).split(vectors, given):
            if len(np.unique(given[train])) < 2:
                out[np.ix_(test, np.unique(given[train]))] = 1.0
            else:
                clf = LogisticRegression(C=1.0, max_iter=1000).fit(vectors[train], given[train])
                out[np.ix_(test, clf.classes_)] = clf.predict_proba(vectors[test])
            if progress is not None:
                progress.update()
    return out


def clean_posteriors(probe: np.ndarray, given: np.ndarray, nbrs: np.ndarray, *, weight: float = PROBE_WEIGHT,
                     smoothing: float = SMOOTHING, max_iter: int = MAX_ITERATIONS,
                     tol: float = TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's posterior over its true class, and the noise matrix (see the module docs).

    Parameters
    ----------
    probe : numpy.ndarray
        ``N × C`` out-of-sample probabilities of the given labels.
    given : numpy.ndarray
        Given label (0..C-1) per sample.
    nbrs : numpy.ndarray
        ``N × k`` nearest neighbours (rows), the sample itself left out.

    Returns
    -------
    posteriors : numpy.ndarray
        ``N × C``, rows summing to 1.
    noise : numpy.ndarray
        ``C × C``: row = true class, column = given label.

    Examples
    --------
    >>> probe = np.array([[0.9, 0.1], [0.8, 0.2], [0.85, 0.15], [0.2, 0.8], [0.1, 0.9], [0.15, 0.85]])
    >>> nbrs = np.array([[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [3, 4]])
    >>> post, noise = clean_posteriors(probe, np.array([0, 0, 1, 1, 1, 1]), nbrs)
    >>> int(post[2].argmax())  # labeled 1 among 0s, and the probe agrees it is a 0
    0
    """
    n, c = probe.shape
    onehot = np.zeros((n, c))
    onehot[np.arange(n), given] = 1.0
    eye = np.eye(c)
    noise = 0.8 * eye + 0.2 / c
    post = 0.5 * onehot + 0.5 * probe
    for _ in range(max_iter):
        clean = np.clip(probe @ np.linalg.pinv(noise), 1e-6, None)
        clean /= clean.sum(1, keepdims=True)
        prior = weight * clean + (1 - weight) * _neighbour_mean(post, nbrs)
        new = prior * noise[:, given].T
        new /= np.maximum(new.sum(1, keepdims=True), 1e-300)
        counts = new.T @ onehot
        counts += smoothing * counts.sum(1, keepdims=True) * (1 - eye) / max(c - 1, 1)
        total = counts.sum(1, keepdims=True)
        noise = np.where(total > 0, counts / np.maximum(total, 1e-300), eye)
        moved = float(np.abs(new - post).max())
        post = new
        if moved < tol:
            break
    return post, noise


def _neighbour_mean(values: np.ndarray, nbrs: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over each row's neighbours, one neighbour column at a time (memory N × C)."""
    out = np.zeros_like(values)
    for j in range(nbrs.shape[1]):
        out += values[nbrs[:, j]]
    return out / max(nbrs.shape[1], 1)
