"""How a query scores images: a linear probe (selected vs. rest), nearest selected neighbours, or text.

All three score L2-normalised vectors; a higher score means more like the selection. Each also
carries a threshold chosen on the data it was built from, and the probe a calibration curve
(score -> chance of being "such an image") learned from out-of-fold scores, so a search can say
how many of its top candidates are likely right.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import DataexploreError

#: Fewest selected samples for a linear probe; smaller selections use nearest neighbours.
MIN_PROBE = 10
#: Most reference (non-selected) vectors used to train a probe; more adds time, not accuracy.
MAX_NEGATIVES = 50_000
#: Selected vectors a kNN score averages over.
KNN_K = 5


def fit_probe(positives: np.ndarray, negatives: np.ndarray, random_state: int = 0) -> dict:
    """A logistic-regression probe of ``positives`` vs ``negatives``, with threshold and calibration.

    The threshold maximises F1 of out-of-fold scores (5-fold); the calibration is an isotonic fit
    of out-of-fold membership on score, weighted back to the reference's true class balance when
    negatives were subsampled. Returns the probe as plain arrays and numbers (see :func:`score`).
    """
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(random_state)
    n_neg_total = len(negatives)
    if n_neg_total > MAX_NEGATIVES:
        negatives = negatives[np.sort(rng.choice(n_neg_total, MAX_NEGATIVES, replace=False))]
    x = np.concatenate([positives, negatives]).astype(np.float32)
    y = np.concatenate([np.ones(len(positives), bool), np.zeros(len(negatives), bool)])
    neg_weight = n_neg_total / len(negatives)  # undo the subsampling when estimating precision
    w = np.where(y, 1.0, neg_weight)

    def model():
        return LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000)

    oof = np.empty(len(x), np.float64)
    folds = min(5, int(y.sum()), int((~y).sum()))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=random_state).split(x, y):
        oof[test] = model().fit(x[train], y[train]).decision_function(x[test])
    final = model().fit(x, y)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(oof, y.astype(float), sample_weight=w)
    threshold, precision, recall = _best_f1(oof, y, w)
    return {"method": "probe", "coef": final.coef_[0].astype(np.float32), "intercept": float(final.intercept_[0]),
            "threshold": threshold, "calibration": {"score": iso.X_thresholds_.tolist(),
                                                    "precision": iso.y_thresholds_.tolist()},
            "cv": {"precision": precision, "recall": recall, "folds": folds,
                   "positives": int(len(positives)), "negatives": int(n_neg_total)}}


def fit_knn(positives: np.ndarray) -> dict:
    """Nearest-selected-neighbour scoring; the threshold keeps 95% of the selection (leave-one-out)."""
    k = min(KNN_K, max(len(positives) - 1, 1))
    if len(positives) < 2:
        return {"method": "knn", "threshold": None, "k": 1}
    sims = positives @ positives.T
    np.fill_diagonal(sims, -np.inf)
    own = np.sort(sims, axis=1)[:, ::-1][:, :k].mean(axis=1)
    return {"method": "knn", "threshold": float(np.quantile(own, 0.05)), "k": int(k)}


def score(probe: dict, vectors: np.ndarray, exemplars: np.ndarray | None = None,
          text: np.ndarray | None = None, block: int = 65536) -> np.ndarray:
    """Scores of ``vectors`` (``N×D``) under ``probe``, in blocks so memory stays flat in N."""
    vectors = np.asarray(vectors, np.float32)
    out = np.empty(len(vectors), np.float32)
    method = probe["method"]
    if method == "probe" and not (np.isfinite(probe["coef"]).all() and np.isfinite(probe["intercept"])):
        raise DataexploreError("this query's probe weights are not finite numbers: it cannot rank anything")
    for start in range(0, len(vectors), block):
        v = vectors[start:start + block]
        if method == "probe":
            out[start:start + block] = v @ probe["coef"] + probe["intercept"]
        elif method == "knn":
            if exemplars is None:
                raise DataexploreError("this query scores by its nearest selected samples but holds none")
            sims = v @ exemplars.T
            k = min(probe["k"], sims.shape[1])
            out[start:start + block] = -np.sort(-sims, axis=1)[:, :k].mean(axis=1) if k > 1 else sims.max(axis=1)
        elif method == "text":
            out[start:start + block] = v @ text
        else:
            raise DataexploreError(f"unknown query method {method!r}")
    return out


def calibrated(probe: dict, scores: np.ndarray) -> np.ndarray:
    """Estimated chance that each score belongs to "such an image" (NaN where no calibration exists)."""
    cal = probe.get("calibration")
    if not cal or not cal.get("score"):
        return np.full(len(scores), np.nan, np.float32)
    return np.interp(scores, cal["score"], cal["precision"]).astype(np.float32)


def _best_f1(scores: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    order = np.argsort(-scores, kind="stable")
    s, yy, ww = scores[order], y[order], w[order]
    tp = np.cumsum(np.where(yy, ww, 0.0))
    fp = np.cumsum(np.where(yy, 0.0, ww))
    precision = tp / np.maximum(tp + fp, 1e-12)
    recall = tp / max(tp[-1], 1e-12)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    last = np.r_[s[1:] != s[:-1], True]  # only cut between distinct scores
    f1 = np.where(last, f1, -1)
    i = int(np.argmax(f1))
    return float(s[i]), float(precision[i]), float(recall[i])


def check_probe_input(positives: np.ndarray, negatives: np.ndarray) -> str:
    """The method a selection supports: ``"probe"`` with enough samples on both sides, else ``"knn"``."""
    if len(positives) == 0:
        raise DataexploreError("the selection is empty: select some points before making a query")
    return "probe" if len(positives) >= MIN_PROBE and len(negatives) >= MIN_PROBE else "knn"
