"""Outliers, uniqueness and representativeness: three per-sample scores from the nearest neighbours.

Distances are cosine distances (``1 - cosine``) between the L2-normalised embeddings, from the
exact, chunked :func:`~dataexplore.analysis.neighbors.knn`. The *pool* is what a sample is compared
with: the reference set when one is given (e.g. train, to score production), otherwise the analysed
set itself, each sample left out of its own neighbours.

- **outlier** (from 0; about 1 for a typical sample): ``d(x) / (local(x) ** w * typical ** (1 - w))``
  with ``w = local_weight`` (0.25 by default). ``d(x)`` is the mean distance from ``x`` to its
  ``k`` nearest pool samples, leaving out the nearest ``skip`` of them; ``local(x)`` is the median
  of the same measure over those neighbours (each measured within the pool, itself left out; at
  least a tenth of ``typical``, so a few exact copies nearby cannot make it explode); ``typical`` is
  its median over the whole pool. The score is a weighted geometric mean of a global view
  (``d / typical``: how far, in typical neighbour distances) and a local one (``d / local``, as in
  the local outlier factor: how much farther than its neighbours' own neighbours), so a class that
  is merely spread out weighs ``1 - w`` as much, in log units, as a sample far from a dense one. On
  odd images planted in Fashion-MNIST ``w = 0.5`` ranked the bulk best (AUROC) and ``w = 0`` the
  very top in the CLIP spaces (precision at the number planted); 0.25 is the default between them.
- **clumps of outliers**: near-identical odd images (a burst of screenshots, a broken sensor) are
  each other's nearest neighbours and would vouch for each other. Against a reference they are not
  in the pool: ``skip`` is 0 and ``k`` 10. On a set alone ``skip`` is ``k // 2`` and ``k`` 1 % of
  the set (10 to 200): ``d`` and ``local`` are measured on the neighbours ranked ``k // 2 + 1`` to
  ``k``, which lie outside any clump of up to ``k // 2`` samples, so such a clump scores like a
  single odd image.
- **flagged**: ``outlier > threshold``. With a reference the threshold is the ``1 - fpr`` quantile
  of the reference samples' own scores (each scored against the rest of the reference in the same
  way): about ``fpr`` of the target samples drawn like the reference are flagged. Without one it is
  a robust z-score cut on the log scores, ``exp(median + z * 1.4826 * MAD)`` with ``z`` the normal
  ``1 - fpr`` quantile, which a minority of outliers cannot drag along. Real score distributions
  are not log-normal, so this share is approximate: on the 10,000 Fashion-MNIST test images it
  flagged 0.3 to 0.8 times ``fpr`` (depending on the embedding); a reference calibrates exactly.
- **groups**: flagged samples near each other form *outlier groups*: two flagged samples are
  linked when one is among the 5 nearest neighbours of the other in the analysed set; each
  connected group of two or more is one row, the flagged samples linked to none one row of
  *isolated outliers*. Rows are ranked by their mean outlier score.
- **uniqueness** (0 to 1): ``u / (u + typical_u)`` where ``u`` is the geometric mean of the
  distances to the 3 nearest other samples (of the set and the reference) and ``typical_u`` its
  median over the pool: about 0 for a sample with an exact copy, 0.5 for a typical one, towards 1
  for one unlike anything.
- **representativeness** (0 to 1): ``r / (r + 5.5)`` where ``r`` counts the samples of the analysed
  set that have ``x`` among their 10 nearest neighbours there, the nearest counting 1, the second
  0.9, ..., the tenth 0.1 (a weighted reverse-neighbour count: how many samples it stands for;
  5.5 is its mean). 0 for a sample that is nobody's neighbour, 0.5 for a typical one, towards 1 for
  the hubs at the centres of dense regions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..core.embeddings import Embeddings
from ..core.errors import DataexploreError
from .groups import GroupResult, top_labels
from .neighbors import knn

if TYPE_CHECKING:
    from ..core.selection import Selection

#: The per-sample scores, as :meth:`Outliers.map_values` names them.
SCORES = ("outlier", "uniqueness", "representativeness")
#: Neighbours for uniqueness, for representativeness, and for linking flagged samples into groups.
UNIQUE_K, REPRESENT_K, LINK_K = 3, 10, 5
#: Default ``k``: against a reference, and on a set alone as a share of it (clipped to the bounds).
REFERENCE_K, SELF_SHARE, SELF_K = 10, 0.01, (10, 200)
#: Default weight of the local view in the outlier score (0: distance only, 1: as the local outlier factor).
LOCAL_WEIGHT = 0.25


class Outliers(GroupResult):
    """Per-sample outlier, uniqueness and representativeness scores and the flagged outliers
    (see :func:`outliers` and the module docs for the exact definitions).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per group of flagged samples, highest mean score first: ``name`` (``"outlier group
        1"``, ..., ``"isolated outliers"``), ``description``, ``count``, ``share`` (of the set),
        ``mean_outlier``, ``max_outlier``, ``top_labels``, ``exemplars`` (ids of the highest scores).
    scores : pandas.DataFrame
        One row per analysed sample, in input order: ``id``, ``outlier``, ``uniqueness``,
        ``representativeness``, ``flagged``; sort it by any column.
    threshold : float
        The outlier score above which a sample is flagged.
    reference_scores : pandas.Series or None
        Outlier score of each reference sample against the rest of the reference (the calibration).
    k : int
        Neighbours behind the outlier score.
    """

    title = "Outliers"
    scores: pd.DataFrame
    threshold: float
    reference_scores: pd.Series | None
    k: int

    def map_values(self, by: str = "outlier") -> pd.Series:
        """One score per sample (indexed by id) to colour the map: ``"outlier"``, ``"uniqueness"``
        or ``"representativeness"``.

        Examples
        --------
        >>> ex.show(result, by="uniqueness")  # doctest: +SKIP
        """
        if by not in SCORES:
            raise DataexploreError(f"by must be one of {', '.join(SCORES)}; got {by!r}")
        return pd.Series(self.scores[by].to_numpy(), index=pd.Index(self.ids, name="id"), name=by)

    @property
    def flagged(self) -> np.ndarray:
        """Ids of the flagged samples, highest outlier score first."""
        s = self.scores[self.scores["flagged"]]
        return s.sort_values("outlier", ascending=False)["id"].to_numpy(dtype=object)

    def selection(self, k: int | str | None = None, on: Any = None) -> Selection:
        """Group ``k`` as a :class:`~dataexplore.Selection`; without ``k`` every flagged sample."""
        if k is not None:
            return super().selection(k, on)
        from ..core.ids import rows_of
        from ..core.selection import as_selection

        provenance = {"analysis": self.title, "group": "flagged"}
        if on is None:
            return as_selection(self.ids, np.flatnonzero(self.scores["flagged"].to_numpy()), shape="group",
                                provenance=provenance, embeddings=self._analysed_embeddings())
        map_ids = np.asarray(getattr(on, "ids", on), dtype=object)
        provenance.update(getattr(on, "provenance", {}) or {})
        return as_selection(map_ids, rows_of(map_ids, self.flagged, missing="drop"), shape="group",
                            provenance=provenance, embeddings=getattr(on, "embeddings", None))

    def plot(self, bins: int = 80):
        """Histogram of the outlier scores (log scale), the reference's beside them, and the threshold."""
        from .plots import _go

        go = _go()
        fig = go.Figure()
        traces = [("analysed", self.scores["outlier"].to_numpy())]
        if self.reference_scores is not None:
            traces.append(("reference (calibration)", self.reference_scores.to_numpy()))
        for name, values in traces:
            fig.add_trace(go.Histogram(x=np.log10(np.maximum(values, 1e-6)), nbinsx=bins, name=name, opacity=0.6,
                                       histnorm="probability", hovertemplate="10^%{x:.2f}: %{y:.2%}<extra></extra>"))
        flagged = int(self.scores["flagged"].sum())
        fig.add_vline(x=float(np.log10(max(self.threshold, 1e-6))), line_dash="dash",
                      annotation_text=f"threshold {self.threshold:.2f}: {flagged} flagged")
        fig.update_layout(title=f"Outlier scores (k={self.k})", barmode="overlay", yaxis_type="log",
                          xaxis_title="outlier score (log10; about 0 is typical)", yaxis_title="share of samples",
                          margin={"l": 10, "r": 10, "t": 50, "b": 40})
        return fig


def outliers(data: Any, reference: Any = None, *, k: int | None = None, fpr: float = 0.01,
             local_weight: float = LOCAL_WEIGHT, model: str = "fashion-tiny", backend: str = "auto",
             progress: bool = True) -> Outliers:
    """Score every sample for how much of an outlier, how unique and how representative it is.

    Parameters
    ----------
    data
        :class:`~dataexplore.Embeddings`, a :class:`~dataexplore.Selection` made with embeddings, a
        search result, or anything :func:`dataexplore.embed` accepts (embedded with ``model``).
    reference : optional
        The same kinds: the data ``data`` should look like (e.g. train, scoring production). Then
        the outlier score of ``data`` is measured against it and calibrated on it.
    k : int, optional
        Neighbours behind the outlier score. Default: 10 with a reference; alone, 1 % of the set
        (10 to 200), so that clumps of up to about ``k / 2`` near-identical outliers are found too.
    fpr : float
        Share of ordinary samples allowed above the threshold (between 0 and 0.5).
    local_weight : float
        How much the local view counts in the outlier score, 0 to 1: 0 ranks by distance alone
        (best at the very top where odd images land in sparse regions), 1 by the ratio to the
        neighbours' own distances (as the local outlier factor; spread-out classes are not
        flagged); 0.25 ranked planted odd images best overall (``benchmarks/outliers.py``).
    model : str
        Model for sources that still need embedding.
    backend : {"auto", "exact", "faiss", "pynndescent"}
        Nearest-neighbour backend (see :func:`dataexplore.analysis.neighbors.knn`).
    progress : bool
        Show a progress bar over the neighbour searches.

    Returns
    -------
    Outliers

    Examples
    --------
    >>> import dataexplore as dx
    >>> out = dx.outliers(dx.embed("fashion-mnist:test"))  # doctest: +SKIP
    >>> out.scores.sort_values("outlier", ascending=False).head()  # doctest: +SKIP
    >>> out.groups()[["name", "count", "mean_outlier", "top_labels"]]  # doctest: +SKIP
    >>> prod = dx.outliers("production/", reference=dx.embed("fashion-mnist:train"))  # doctest: +SKIP
    >>> ex.show(out, by="representativeness")  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    from ..embedding.inputs import check_same_model

    emb = _embeddings(data, model, "data", progress)
    ref = None if reference is None else _embeddings(reference, model, "reference", progress)
    if ref is not None:
        check_same_model(ref, emb)
    if not 0 < fpr < 0.5:
        raise DataexploreError(f"fpr must be between 0 and 0.5, got {fpr!r}")
    if not 0 <= local_weight <= 1:
        raise DataexploreError(f"local_weight must be between 0 and 1, got {local_weight!r}")
    pool_size = len(emb) if ref is None else len(ref)
    if pool_size < 3:
        raise DataexploreError(f"outliers need at least 3 samples to compare with, got {pool_size}")
    if k is None:
        k = REFERENCE_K if ref is not None else int(np.clip(np.ceil(SELF_SHARE * len(emb)), *SELF_K))
    elif not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise DataexploreError(f"k must be a positive integer, got {k!r}")
    k = int(min(k, pool_size - 2))
    own_k = int(min(max(REPRESENT_K, UNIQUE_K, LINK_K, k if ref is None else 0), len(emb) - 1))

    bar = tqdm(total=2 if ref is None else 3, desc="outliers", unit="search", disable=not progress, leave=False)
    own_d, own_i = knn(emb.vectors, k=own_k, backend=backend) if own_k >= 1 else _empty(len(emb))
    bar.update()
    if ref is None:
        pool_d, pool_i = own_d[:, :k], own_i[:, :k]
        score = _outlier_score(pool_d, pool_i, pool_d[:, k // 2:].mean(1), local_weight, skip=k // 2)
        calibration = None
        threshold = _robust_cut(score, fpr)
        u = _geomean(own_d[:, :UNIQUE_K])
        typical_u = float(np.median(u))
    else:
        ref_d, ref_i = knn(ref.vectors, k=max(k, UNIQUE_K), backend=backend)
        bar.update()
        pool_d, pool_i = knn(emb.vectors, ref.vectors, k=max(k, UNIQUE_K), backend=backend)
        calibration = _outlier_score(ref_d[:, :k], ref_i[:, :k], ref_d[:, :k].mean(1), local_weight)
        score = _outlier_score(pool_d[:, :k], pool_i[:, :k], ref_d[:, :k].mean(1), local_weight)
        threshold = float(np.quantile(calibration, 1 - fpr))
        u = _geomean(np.sort(np.concatenate([pool_d[:, :UNIQUE_K], own_d[:, :UNIQUE_K]], axis=1), axis=1)[:, :UNIQUE_K])
        typical_u = float(np.median(_geomean(ref_d[:, :UNIQUE_K])))
    bar.update()
    bar.close()
    flagged = score > threshold
    uniqueness = u / np.maximum(u + typical_u, 1e-12)
    representativeness = _representativeness(own_i[:, :REPRESENT_K], len(emb))
    groups, alone = _groups(flagged, own_i[:, :LINK_K])
    ids = emb.ids
    table, members = _table(groups, alone, score, emb)
    result = Outliers(ids, table, members, sources=[emb])
    result.scores = pd.DataFrame({"id": ids, "outlier": score, "uniqueness": uniqueness,
                                  "representativeness": representativeness, "flagged": flagged})
    result.threshold = float(threshold)
    result.reference_scores = None if calibration is None else \
        pd.Series(calibration, index=pd.Index(ref.ids if ref is not None else [], name="id"), name="outlier")
    result.k = k
    return result


def _embeddings(data: Any, model: str, what: str, progress: bool) -> Embeddings:
    """Embeddings of ``data``: Embeddings, a Selection with embeddings, a search result, or a source."""
    from ..core.ids import rows_of
    from ..core.selection import Selection
    from ..embedding.inputs import as_analysed

    if isinstance(data, Selection):
        if not isinstance(data.embeddings, Embeddings):
            raise DataexploreError(f"this selection ({what}) carries no embeddings: pass the Embeddings of its "
                                   "samples instead, e.g. emb.subset(...)")
        if not len(data):
            raise DataexploreError(f"nothing to analyse: the selection ({what}) is empty")
        data = data.embeddings.subset(rows_of(data.embeddings.ids, data.ids))
    elif not isinstance(data, Embeddings) and isinstance(getattr(data, "embeddings", None), Embeddings):
        data = data.embeddings  # a search result
    return as_analysed(data) if isinstance(data, Embeddings) else as_analysed(data, model, progress=progress)


def _empty(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)


def _outlier_score(dist: np.ndarray, idx: np.ndarray, pool_mean: np.ndarray, weight: float,
                   skip: int = 0) -> np.ndarray:
    """``d / (local ** weight * typical ** (1 - weight))`` from the queries' pool distances (``d``:
    their mean, the nearest ``skip`` left out) and the pool's own ``d``."""
    d = dist[:, skip:].mean(1).astype(np.float64)
    typical = max(float(np.median(pool_mean)), 1e-12)
    local = np.maximum(np.median(pool_mean[idx[:, skip:]], axis=1), 0.1 * typical)
    return d / (local ** weight * typical ** (1 - weight))


def _geomean(dist: np.ndarray) -> np.ndarray:
    """Geometric mean of each row (0 when a distance is 0)."""
    return np.exp(np.log(np.maximum(dist.astype(np.float64), 1e-9)).mean(1))


def _robust_cut(score: np.ndarray, fpr: float) -> float:
    """``exp(median + z * 1.4826 * MAD)`` of the log scores, ``z`` the normal ``1 - fpr`` quantile."""
    from scipy.stats import norm

    logs = np.log(np.maximum(score, 1e-12))
    centre = float(np.median(logs))
    spread = 1.4826 * float(np.median(np.abs(logs - centre)))
    if spread <= 1e-9:  # most scores equal (copies): fall back on the quantile
        return float(np.quantile(score, 1 - fpr))
    return float(np.exp(centre + norm.ppf(1 - fpr) * spread))


def _representativeness(idx: np.ndarray, n: int) -> np.ndarray:
    """Weighted reverse-neighbour count ``r`` (rank 1 counts 1, rank 10 0.1) as ``r / (r + mean)``."""
    kr = idx.shape[1]
    if kr == 0:
        return np.full(n, 0.5)
    weights = np.broadcast_to((kr - np.arange(kr)) / kr, idx.shape)
    r = np.bincount(idx.ravel(), weights=weights.ravel(), minlength=n)
    mean = (kr + 1) / 2
    return r / (r + mean)


def _groups(flagged: np.ndarray, link_i: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Flagged samples linked when one is among the other's nearest neighbours in the set: the
    linked groups, and the flagged samples linked to none."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    where = np.flatnonzero(flagged)
    if not len(where):
        return [], where
    pos = np.full(len(flagged), -1)
    pos[where] = np.arange(len(where))
    other = pos[link_i[where]]
    ok = other >= 0
    rows = np.repeat(np.arange(len(where)), link_i.shape[1])[ok.ravel()]
    graph = coo_matrix((np.ones(len(rows)), (rows, other[ok])), shape=(len(where), len(where)))
    _, comp = connected_components(graph, directed=False)
    sizes = np.bincount(comp)
    groups = [where[comp == c] for c in np.flatnonzero(sizes >= 2)]
    return groups, where[sizes[comp] == 1]


def _table(groups: list[np.ndarray], alone: np.ndarray, score: np.ndarray,
           emb: Embeddings) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """The group table, highest mean score first, and the members in its order."""
    labels = emb.table["label"] if "label" in emb.table.columns else None
    records: list[dict[str, Any]] = []
    for m, isolated in [(g, False) for g in groups] + ([(alone, True)] if len(alone) else []):
        records.append({
            "name": "", "isolated": isolated, "count": len(m), "share": len(m) / len(emb),
            "mean_outlier": float(score[m].mean()), "max_outlier": float(score[m].max()),
            "top_labels": top_labels(labels, m), "exemplars": list(emb.ids[m[np.argsort(-score[m])[:4]]]),
            "members": m,
        })
    records.sort(key=lambda r: -r["mean_outlier"])
    number = 0
    for r in records:
        if r["isolated"]:
            r["name"] = "isolated outliers"
            r["description"] = "flagged samples with no flagged one among their 5 nearest neighbours"
        else:
            number += 1
            r["name"] = f"outlier group {number}"
            r["description"] = f"{r['count']} flagged samples that are each other's near neighbours"
    members = [r.pop("members") for r in records]
    columns = ["name", "description", "count", "share", "mean_outlier", "max_outlier", "top_labels", "exemplars"]
    return pd.DataFrame.from_records(records, columns=columns), members
