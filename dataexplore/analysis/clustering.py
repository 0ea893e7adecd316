"""Clusters overview: k-means in the embedding space, each cluster named by CLIP concepts.

Vectors are reduced with PCA (32 components, fitted on at most 20,000 samples) and clustered with
k-means (mini-batch above 20,000 samples). With ``n_clusters="auto"`` the number is chosen among a
few candidates by the silhouette score on a subsample. Each cluster is named after the concept
that best sets it apart from the rest (see :class:`~dataexplore.language.vocabulary.Describer`);
rename clusters with :meth:`Clusters.rename`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.embeddings import medoids
from ..core.errors import DataexploreError
from ..language.vocabulary import Describer, text_model, vocabulary
from .groups import GroupResult, top_labels

CANDIDATES = (6, 8, 10, 12, 16, 20, 25, 30)
_SUBSAMPLE = 20_000


class Clusters(GroupResult):
    """Unsupervised clusters with text labels (see :func:`clusters`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per cluster, largest first: ``name``, ``description`` (top concepts), ``count``,
        ``share``, ``top_labels``, ``exemplars`` (ids of the most central members).
    labels_ : pandas.Series
        Cluster name per sample, indexed by id.
    """

    title = "Clusters"

    def map_values(self) -> pd.Series:
        """Cluster name per sample."""
        return self.labels_.rename("cluster")

    def rename(self, names: Mapping[int | str, str]) -> "Clusters":
        """Rename clusters (keys: row number or current name); returns ``self``.

        Examples
        --------
        >>> cl = dx.clusters(emb)  # doctest: +SKIP
        >>> cl.rename({0: "shoes", "Bag": "bags"})  # doctest: +SKIP
        """
        new = self.table["name"].astype(str).tolist()
        for key, value in names.items():
            if not isinstance(value, str) or not value.strip():
                raise DataexploreError(f"a cluster name must be a non-empty string, got {value!r}")
            new[self._position(key)] = value.strip()
        if len(set(new)) != len(new):
            raise DataexploreError(f"cluster names must be unique, got {new}")
        self.table["name"] = new
        self.labels_ = _labels(self.ids, self.members, new)
        return self

    def plot(self):
        """Bar chart of cluster sizes (plotly Figure)."""
        from .plots import cluster_bars

        return cluster_bars(self)


def clusters(data: Any, n_clusters: int | str = "auto", *, model: str = "fashion-tiny",
             concepts: Sequence[str] | None = None, random_state: int = 0) -> Clusters:
    """Group samples into clusters of similar images and name each cluster.

    Parameters
    ----------
    data
        :class:`~dataexplore.Embeddings` or a source to embed with ``model``.
    n_clusters : int or "auto"
        How many clusters; ``"auto"`` picks by silhouette among 6 to 30.
    concepts : sequence of str, optional
        Extra words for names (class names and the default vocabulary are used too).
    random_state : int

    Returns
    -------
    Clusters

    Examples
    --------
    >>> import dataexplore as dx
    >>> cl = dx.clusters("fashion-mnist:test")  # doctest: +SKIP
    >>> cl.groups()[["name", "description", "count", "top_labels"]]  # doctest: +SKIP
    """
    from ..embedding.inputs import as_analysed

    emb = as_analysed(data, model)
    n = len(emb)
    if n_clusters != "auto" and (not isinstance(n_clusters, (int, np.integer)) or isinstance(n_clusters, bool)
                                 or not 1 <= n_clusters <= n):
        raise DataexploreError(f"n_clusters must be 'auto' or an integer in 1..{n}, got {n_clusters!r}")
    z = reduce(emb.vectors, random_state=random_state)
    k = choose_k(z, random_state) if n_clusters == "auto" else int(n_clusters)
    assign = kmeans(z, k, random_state)
    order = np.argsort(-np.bincount(assign, minlength=k), kind="stable")
    members = [np.flatnonzero(assign == c) for c in order if (assign == c).any()]
    labels = emb.table["label"] if "label" in emb.table.columns else None
    describe = Describer(emb.vectors, text_model(emb), vocabulary(concepts, labels), labels=labels)
    records: list[dict[str, Any]] = []
    taken: set[str] = set()
    for i, m in enumerate(members):
        words = describe.top(emb.vectors[m], 3)
        name = _unique(words[0] if words else f"cluster {i + 1}", taken)
        records.append({"name": name, "description": ", ".join(words), "count": len(m), "share": len(m) / n,
                        "top_labels": top_labels(labels, m),
                        "exemplars": list(emb.ids[m[medoids(emb.vectors[m])]])})
    result = Clusters(emb.ids, pd.DataFrame.from_records(records), members, sources=[emb])
    result.labels_ = _labels(emb.ids, members, result.table["name"].tolist())
    return result


def reduce(vectors: np.ndarray, n_components: int = 32, random_state: int = 0) -> np.ndarray:
    """PCA to ``n_components`` (fitted on a subsample), float32; the input when it is narrower."""
    from sklearn.decomposition import PCA

    if vectors.shape[1] <= n_components or len(vectors) <= n_components:
        return np.asarray(vectors, np.float32)
    rng = np.random.default_rng(random_state)
    fit_on = vectors if len(vectors) <= _SUBSAMPLE else vectors[rng.choice(len(vectors), _SUBSAMPLE, replace=False)]
    pca = PCA(n_components=n_components, random_state=random_state).fit(fit_on)
    return pca.transform(vectors).astype(np.float32)


def kmeans(z: np.ndarray, k: int, random_state: int = 0) -> np.ndarray:
    """Cluster index per row (k-means; mini-batch above 20,000 rows)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if len(z) > _SUBSAMPLE:
        model = MiniBatchKMeans(n_clusters=k, random_state=random_state, batch_size=4096, n_init=3)
    else:
        model = KMeans(n_clusters=k, random_state=random_state, n_init=1)
    return model.fit_predict(z).astype(np.int64)


def choose_k(z: np.ndarray, random_state: int = 0) -> int:
    """The candidate cluster count with the best silhouette on a subsample of at most 5,000."""
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(random_state)
    sub = z if len(z) <= 5000 else z[rng.choice(len(z), 5000, replace=False)]
    candidates = [k for k in CANDIDATES if k < len(sub)]
    if not candidates:  # a handful of samples: pairs at most
        return max(1, len(z) // 2)
    best, best_k = -np.inf, candidates[0]
    for k in candidates:
        score = silhouette_score(sub, kmeans(sub, k, random_state), sample_size=min(len(sub), 2000),
                                 random_state=random_state)
        if score > best:
            best, best_k = score, k
    return best_k


def _unique(name: str, taken: set[str]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name} {i}", i + 1
    taken.add(out)
    return out


def _labels(ids: np.ndarray, members: list[np.ndarray], names: list[str]) -> pd.Series:
    out = np.empty(len(ids), dtype=object)
    for m, name in zip(members, names):
        out[m] = name
    return pd.Series(out, index=pd.Index(ids, name="id"))
