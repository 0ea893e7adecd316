"""Project embeddings to a 2-D map: UMAP (umap-learn, or cuML's on a GPU) or PCA.

:class:`Projection` is an estimator (settings in ``__init__``, ``fit`` returns ``self``,
learned state ends in ``_``); :func:`project` is the one-liner. Fitted maps are cached on
disk by (embeddings fingerprint, parameters), so re-opening a notebook does not re-run UMAP,
and the fitted model is kept so :meth:`Projection.transform` can place new images (e.g.
production data) on an existing map.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .embeddings import Embeddings
from .errors import DataexploreError, SourceError

log = logging.getLogger(__name__)
_FORMAT = 1  # bump when the cached content changes meaning


def as_embeddings(data: Any) -> Embeddings:
    """Accept :class:`Embeddings`, a Parquet path written by ``dataexplore embed``, or an N×D array."""
    if isinstance(data, Embeddings):
        return data
    if isinstance(data, (str, os.PathLike)):
        return Embeddings.load(data)
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise SourceError(f"embeddings must be an N×D array, got shape {arr.shape}")
    return Embeddings(ids=np.arange(len(arr)).astype(str), vectors=arr)


class Projection:
    """A 2-D map of embeddings.

    Parameters
    ----------
    method : {"umap", "pca"}
    n_neighbors : int
        UMAP neighbourhood size (local vs global structure).
    min_dist : float
        UMAP minimum distance between points in the map.
    metric : str
        Distance in embedding space; ``"cosine"`` suits CLIP vectors.
    pca : int or "auto" or None
        Reduce to this many dimensions with PCA before UMAP (``"auto"``: 50 when D > 64).
    random_state : int
        Seed; the same inputs and seed give the same map.
    backend : {"auto", "umap-learn", "cuml"}
        ``"auto"`` uses cuML's GPU UMAP when it is importable and a GPU is present.
    cache : bool
        Reuse and store fitted maps on disk.
    cache_dir : path, optional
        Cache root (see :func:`dataexplore.cache.cache_root`).

    Attributes
    ----------
    ids_ : numpy.ndarray
        Sample ids, aligned with ``embedding_``.
    embedding_ : numpy.ndarray
        ``N×2`` float32 map coordinates.
    backend_ : str
        Which implementation produced the map.
    from_cache_ : bool
        Whether the map was read from the cache.

    Examples
    --------
    >>> import dataexplore as dx
    >>> emb = dx.embed("fashion-mnist:test:2000")  # doctest: +SKIP
    >>> proj = dx.Projection(method="umap", n_neighbors=15).fit(emb)  # doctest: +SKIP
    >>> proj.embedding_.shape  # doctest: +SKIP
    (2000, 2)
    """

    def __init__(self, method: str = "umap", *, n_neighbors: int = 15, min_dist: float = 0.1,
                 metric: str = "cosine", pca: int | str | None = "auto", random_state: int = 0,
                 backend: str = "auto", cache: bool = True, cache_dir: str | os.PathLike | None = None):
        self.method = method
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.pca = pca
        self.random_state = random_state
        self.backend = backend
        self.cache = cache
        self.cache_dir = cache_dir

    def get_params(self) -> dict:
        """The settings that determine the map (used in the cache key and saved files)."""
        return {"method": self.method, "n_neighbors": self.n_neighbors, "min_dist": self.min_dist,
                "metric": self.metric, "pca": self.pca, "random_state": self.random_state}

    def fit(self, embeddings: Any) -> "Projection":
        """Fit the map; ``embeddings`` as accepted by :func:`as_embeddings`. Returns ``self``."""
        emb = as_embeddings(embeddings)
        if self.method not in ("umap", "pca"):
            raise DataexploreError(f"method must be 'umap' or 'pca', got {self.method!r}")
        if len(emb) == 0:
            raise SourceError("no embeddings to project")
        emb.check_finite()
        backend = self._pick_backend()
        key = self._cache_key(emb, backend)
        path = _cache_path(self.cache_dir, key) if self.cache else None
        hit = _read_cached(path) if path is not None else None
        self.ids_ = emb.ids
        self.embeddings_ = emb
        self.backend_ = backend
        self.cache_path_ = path
        if hit is not None and len(hit) == len(emb):
            self.embedding_ = hit
            self.from_cache_ = True
            self._model = None
            return self
        self.from_cache_ = False
        self.embedding_, self._model = _fit(emb.vectors, self.get_params(), backend)
        if path is not None:
            _write_cached(path, self.embedding_, self._model)
        return self

    def fit_transform(self, embeddings: Any) -> np.ndarray:
        """Fit and return ``embedding_``."""
        return self.fit(embeddings).embedding_

    def transform(self, embeddings: Any) -> np.ndarray:
        """Place new embeddings on this map (``M×2`` float32), e.g. production images on the train map."""
        self._check_fitted()
        new = as_embeddings(embeddings)
        new.check_finite()
        if new.vectors.shape[1] != self.embeddings_.vectors.shape[1]:
            raise SourceError(
                f"these embeddings have {new.vectors.shape[1]} dimensions, the map was fitted on "
                f"{self.embeddings_.vectors.shape[1]}: embed them with the same model"
            )
        if self._model is None:
            self._model = _read_model(self.cache_path_)
        if self._model is None:  # cached coordinates without a usable model: refit once
            log.info("refitting the projection to get a model for transform()")
            coords, self._model = _fit(self.embeddings_.vectors, self.get_params(), self.backend_)
            if self.cache_path_ is not None:
                _write_cached(self.cache_path_, coords, self._model)
        reducer, mapper = self._model
        x = new.vectors if reducer is None else reducer.transform(new.vectors)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = mapper.transform(x)
        return np.ascontiguousarray(np.asarray(out, dtype=np.float32))

    def to_frame(self) -> pd.DataFrame:
        """``id``, ``x``, ``y`` of every point."""
        self._check_fitted()
        return pd.DataFrame({"id": self.ids_, "x": self.embedding_[:, 0], "y": self.embedding_[:, 1]})

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``id``, ``x``, ``y`` to Parquet (atomically), with the parameters in the metadata."""
        import pyarrow as pa

        from .io import write_parquet_atomic

        table = pa.Table.from_pandas(self.to_frame(), preserve_index=False)
        meta = {"dataexplore.projection": json.dumps(dict(self.get_params(), backend=self.backend_))}
        return write_parquet_atomic(table, path, meta)

    def _check_fitted(self) -> None:
        if not hasattr(self, "embedding_"):
            raise DataexploreError("this Projection is not fitted yet: call fit() first")

    def _pick_backend(self) -> str:
        if self.method == "pca":
            return "sklearn"
        if self.backend in ("umap-learn", "cuml"):
            return self.backend
        if self.backend != "auto":
            raise DataexploreError(f"backend must be auto, umap-learn or cuml, got {self.backend!r}")
        try:
            import cuml  # noqa: F401
            import torch

            return "cuml" if torch.cuda.is_available() else "umap-learn"
        except ImportError:
            return "umap-learn"

    def _cache_key(self, emb: Embeddings, backend: str) -> str:
        blob = json.dumps([_FORMAT, emb.fingerprint, self.get_params(), backend], sort_keys=True)
        return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def project(embeddings: Any, method: str = "umap", **params) -> Projection:
    """Fit a 2-D map of ``embeddings`` (cached); see :class:`Projection` for the parameters.

    Parameters
    ----------
    embeddings : Embeddings, path or array
        The result of :func:`dataexplore.embed`, a Parquet file from ``dataexplore embed``,
        or an ``N×D`` array.
    method : {"umap", "pca"}

    Returns
    -------
    Projection
        Fitted: ``embedding_`` (N×2 float32) aligned to ``ids_``; ``transform`` for new points.

    Examples
    --------
    >>> import dataexplore as dx
    >>> m = dx.project(dx.embed("fashion-mnist:test:2000"))  # doctest: +SKIP
    >>> m.to_frame().head()  # doctest: +SKIP
    """
    return Projection(method, **params).fit(embeddings)


def _fit(vectors: np.ndarray, params: dict, backend: str):
    n, d = vectors.shape
    reducer = None
    x = vectors
    n_pca = params["pca"]
    if n_pca == "auto":
        n_pca = 50 if d > 64 else None
    if params["method"] == "umap" and n_pca and d > n_pca and n > n_pca:
        from sklearn.decomposition import PCA

        reducer = PCA(n_components=int(n_pca), random_state=params["random_state"]).fit(x)
        x = reducer.transform(x).astype(np.float32)
    if params["method"] == "pca" or n < 4:  # UMAP needs a few points to build a graph
        from sklearn.decomposition import PCA

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # zero variance (one point, identical points)
            mapper = _PCA2(PCA(n_components=min(2, n, x.shape[1]), random_state=params["random_state"]).fit(x))
        return mapper.transform(x), (reducer, mapper)
    n_neighbors = max(2, min(params["n_neighbors"], n - 1))
    kwargs = dict(n_neighbors=n_neighbors, min_dist=params["min_dist"], metric=params["metric"],
                  random_state=params["random_state"], n_components=2)
    if backend == "cuml":
        from cuml.manifold import UMAP
    else:
        from .errors import require

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImportWarning)  # "Tensorflow not installed" (ParametricUMAP)
            UMAP = require("umap", "UMAP projection", "umap-learn").UMAP
        if n < 50:
            kwargs["init"] = "random"  # spectral init is unstable on tiny graphs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs/random_state and small-graph notices
        mapper = UMAP(**kwargs).fit(x)
    coords = np.asarray(mapper.embedding_, dtype=np.float32)
    if not np.isfinite(coords).all():
        raise DataexploreError("UMAP produced non-finite coordinates; try method='pca' or more points")
    return np.ascontiguousarray(coords), (reducer, mapper)


class _PCA2:
    """PCA to 2-D that always returns N×2 (zero-padded when there is too little data for 2 axes)."""

    def __init__(self, pca):
        self.pca = pca

    def transform(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), 2), np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, : self.pca.n_components_] = self.pca.transform(x)
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def _cache_path(cache_dir, key: str) -> Path:
    from .cache import cache_root

    return cache_root(cache_dir) / "projections" / f"{key}.npz"


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _write_cached(path: Path, coords: np.ndarray, model) -> None:
    from .io import atomic_write

    try:
        blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an unpicklable backend model: keep the coordinates anyway
        log.info("projection model not cached (%s)", exc)
        blob = b""
    atomic_write(path.with_suffix(".pkl"), lambda tmp: Path(tmp).write_bytes(blob))

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, coords=coords, coords_digest=_digest(coords.tobytes()), model_digest=_digest(blob))

    atomic_write(path, write)


def _read_cached(path: Path) -> np.ndarray | None:
    """Cached coordinates, or None if missing or damaged (damaged files are deleted)."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            coords = np.asarray(data["coords"], dtype=np.float32)
            ok = str(data["coords_digest"]) == _digest(coords.tobytes())
    except Exception:
        ok = False
    if not ok:
        log.warning("projection cache file %s is damaged; recomputing", path)
        path.unlink(missing_ok=True)
        return None
    return coords


def _read_model(path: Path | None):
    if path is None or not path.is_file() or not path.with_suffix(".pkl").is_file():
        return None
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            expected = str(data["model_digest"])
        blob = path.with_suffix(".pkl").read_bytes()
        if not blob or _digest(blob) != expected:
            return None
        return pickle.load(io.BytesIO(blob))
    except Exception:
        return None
