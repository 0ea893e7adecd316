"""Project embeddings to a 2-D map: UMAP (umap-learn, or cuML's on a GPU) or PCA.

:class:`Projection` is an estimator (settings in ``__init__``, ``fit`` returns ``self``,
learned state ends in ``_``); :func:`project` is the one-liner. Fitted maps are cached on
disk by (embeddings fingerprint, parameters), so re-opening a notebook does not re-run UMAP,
and the fitted model is kept so :meth:`Projection.transform` can place new images (e.g.
production data) on an existing map.

The fitted model is stored as a pickle (what umap-learn's ``transform`` needs has no other
portable form) and is **only ever unpickled when it carries a valid HMAC-SHA256** made with a
per-user secret key kept outside the cache (:func:`signing_key`; ``$DATAEXPLORE_KEY_FILE`` or
``<user config dir>/dataexplore/cache.key``, created on first use with mode 0600). Whoever can write a
shared cache folder can therefore not make another user run code at ``transform()``: a model file
without a valid signature (tampered, or written by another user) is ignored and the map refitted.

Past :data:`FULL_FIT_MAX` points a full UMAP fit costs more than it gives: the map is fitted on a
random sample of :data:`SAMPLE_SIZE` points and every other point is placed with ``transform``.
The trade is measured, not hidden: ``sampling_`` reports the trustworthiness of the map on a
random subsample against a full fit of that subsample alone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .core.embeddings import Embeddings
from .core.errors import DataexploreError, SourceError

log = logging.getLogger(__name__)
_FORMAT = 3  # bump when the cached content changes meaning
#: Largest map fitted on all its points with ``sample="auto"``.
FULL_FIT_MAX = 200_000
#: Points a sampled map is fitted on; the rest are placed with ``transform``.
SAMPLE_SIZE = 100_000
#: Points of the subsample on which a sampled map's trustworthiness is compared with a full fit.
QUALITY_SAMPLE = 5_000
_PLACE_BLOCK = 100_000


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
    n_epochs : int or "auto"
        UMAP optimisation epochs. ``"auto"``: 100 up to 50,000 points, 60 above: as trustworthy as
        umap-learn's 200-500 on CLIP vectors (within 0.003) at a fraction of the time, measured in
        ``benchmarks/projection.py``.
    init : {"auto", "spectral", "pca", "random"}
        UMAP's starting layout. ``"auto"``: ``"pca"`` with umap-learn (as trustworthy as
        spectral on CLIP vectors and much faster on large sets, see ``benchmarks/projection.py``),
        the backend's default with cuML.
    sample : "auto", int or None
        Fit on a random sample of this many points and place the rest with ``transform``
        (``"auto"``: :data:`SAMPLE_SIZE` when there are more than :data:`FULL_FIT_MAX` points and
        the backend is umap-learn; cuML fits every point; ``None``: always fit on all).
        ``sampling_`` then reports what it cost.
    backend : {"auto", "umap-learn", "cuml"}
        ``"auto"`` uses cuML's GPU UMAP when it is importable and a GPU is present.
    cache : bool
        Reuse and store fitted maps on disk.
    cache_dir : path, optional
        Cache root (see :func:`dataexplore.embedding.cache.cache_root`).

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
    sampling_ : dict or None
        For a map fitted on a sample: ``fitted_on`` and ``placed`` point counts, and
        ``trustworthiness`` (``map``: this map on a random subsample of :data:`QUALITY_SAMPLE`
        points; ``full_fit``: a UMAP fitted on that subsample alone; ``n``, ``k``). ``None`` when
        every point was fitted.

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
                 n_epochs: int | str = "auto", init: str = "auto", sample: int | str | None = "auto",
                 backend: str = "auto", cache: bool = True,
                 cache_dir: str | os.PathLike | None = None):
        self.method = method
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.pca = pca
        self.random_state = random_state
        self.n_epochs = n_epochs
        self.init = init
        self.sample = sample
        self.backend = backend
        self.cache = cache
        self.cache_dir = cache_dir

    def get_params(self) -> dict:
        """The settings that determine the map (used in the cache key and saved files)."""
        return {"method": self.method, "n_neighbors": self.n_neighbors, "min_dist": self.min_dist,
                "metric": self.metric, "pca": self.pca, "random_state": self.random_state, "n_epochs": self.n_epochs,
                "init": self.init, "sample": self.sample}

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
        if hit is not None and len(hit[0]) == len(emb):
            self.embedding_, self.sampling_ = hit
            self.from_cache_ = True
            self._model = None
            return self
        self.from_cache_ = False
        rows = self._sample_rows(len(emb), backend)
        if rows is None:
            self.embedding_, self._model = _fit(emb.vectors, self.get_params(), backend)
            self.sampling_ = None
        else:
            self._fit_sampled(emb.vectors, rows, backend)
        if path is not None:
            _write_cached(path, self.embedding_, self._model, self.sampling_)
        return self

    def _sample_rows(self, n: int, backend: str) -> np.ndarray | None:
        size = self.sample
        if size == "auto":  # cuML fits millions of points on the GPU in seconds: no need to sample there
            size = SAMPLE_SIZE if n > FULL_FIT_MAX and backend != "cuml" else None
        if size is None or self.method != "umap":
            return None
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 50:
            raise DataexploreError(f"sample must be 'auto', None or an integer >= 50, got {size!r}")
        if n <= size:
            return None
        return np.sort(np.random.default_rng(self.random_state).choice(n, int(size), replace=False))

    def _fit_sampled(self, vectors: np.ndarray, rows: np.ndarray, backend: str) -> None:
        from tqdm.auto import tqdm

        coords = np.empty((len(vectors), 2), np.float32)
        log.info("fitting the map on %d of %d points, placing the rest", len(rows), len(vectors))
        coords[rows], self._model = _fit(vectors[rows], self.get_params(), backend)
        rest = np.setdiff1d(np.arange(len(vectors)), rows, assume_unique=True)
        for start in tqdm(range(0, len(rest), _PLACE_BLOCK), desc="placing points", unit="block", leave=False):
            block = rest[start:start + _PLACE_BLOCK]
            coords[block] = _place(self._model, vectors[block])
        self.embedding_ = coords
        self.sampling_ = {"fitted_on": int(len(rows)), "placed": int(len(rest)),
                          "trustworthiness": _quality(vectors, coords, self.get_params(), backend)}
        t = self.sampling_["trustworthiness"]
        log.info("sampled map trustworthiness %.4f vs %.4f for a full fit (on %d points)",
                 t["map"], t["full_fit"], t["n"])

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
            rows = self._sample_rows(len(self.embeddings_), self.backend_)
            vectors = self.embeddings_.vectors if rows is None else self.embeddings_.vectors[rows]
            _, self._model = _fit(vectors, self.get_params(), self.backend_)
            if self.cache_path_ is not None:
                _write_cached(self.cache_path_, self.embedding_, self._model, self.sampling_)
        return _place(self._model, new.vectors)

    def to_frame(self) -> pd.DataFrame:
        """``id``, ``x``, ``y`` of every point."""
        self._check_fitted()
        return pd.DataFrame({"id": self.ids_, "x": self.embedding_[:, 0], "y": self.embedding_[:, 1]})

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``id``, ``x``, ``y`` to Parquet (atomically), with the parameters in the metadata."""
        import pyarrow as pa

        from .core.io import write_parquet_atomic

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


def _place(model, vectors: np.ndarray) -> np.ndarray:
    """Coordinates of ``vectors`` on a fitted map (``model`` = (PCA reducer or None, mapper))."""
    reducer, mapper = model
    x = vectors if reducer is None else reducer.transform(vectors).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = mapper.transform(x)
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32))


def _quality(vectors: np.ndarray, coords: np.ndarray, params: dict, backend: str, k: int = 10) -> dict:
    """Trustworthiness of ``coords`` on a random subsample against a full fit of that subsample alone."""
    from sklearn.manifold import trustworthiness

    rng = np.random.default_rng(params["random_state"] + 1)
    sub = np.sort(rng.choice(len(vectors), min(QUALITY_SAMPLE, len(vectors)), replace=False))
    full, _ = _fit(vectors[sub], dict(params, sample=None), backend)
    x = vectors[sub]
    return {"map": round(float(trustworthiness(x, coords[sub], n_neighbors=k, metric="cosine")), 4),
            "full_fit": round(float(trustworthiness(x, full, n_neighbors=k, metric="cosine")), 4),
            "n": int(len(sub)), "k": k}


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
    epochs = params.get("n_epochs", "auto")
    if epochs == "auto":
        epochs = 100 if n <= 50_000 else 60
    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 1:
        raise DataexploreError(f"n_epochs must be 'auto' or a positive integer, got {epochs!r}")
    kwargs["n_epochs"] = int(epochs)
    init = params.get("init", "auto")
    if init not in ("auto", "spectral", "pca", "random"):
        raise DataexploreError(f"init must be auto, spectral, pca or random, got {init!r}")
    if init != "auto":
        kwargs["init"] = init
    elif backend != "cuml":
        kwargs["init"] = "pca"
    if backend == "cuml":
        from cuml.manifold import UMAP
    else:
        from .core.errors import require

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
    from .embedding.cache import cache_root

    return cache_root(cache_dir) / "projections" / f"{key}.npz"


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def signing_key() -> bytes | None:
    """This user's secret key for signing cached projection models (created on first use).

    Kept at ``$DATAEXPLORE_KEY_FILE``, else ``<user config dir>/dataexplore/cache.key``, outside any
    cache folder, readable by this user only. Returns ``None`` (models are then neither stored nor
    loaded) when the file cannot be made, is not this user's, or others may read or write it.
    """
    import secrets
    import stat

    if os.environ.get("DATAEXPLORE_KEY_FILE"):
        path = Path(os.environ["DATAEXPLORE_KEY_FILE"]).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_config_dir("dataexplore")) / "cache.key"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
        st = path.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
            log.warning("projection models are not cached: %s is readable or writable by others, or not yours "
                        "(chmod 600 it)", path)
            return None
        key = path.read_bytes()
    except OSError as exc:
        log.info("projection models are not cached: no signing key (%s)", exc)
        return None
    return key if len(key) >= 32 else None


def _mac(key: bytes, blob: bytes) -> str:
    return hmac.new(key, blob, hashlib.sha256).hexdigest()


def _write_cached(path: Path, coords: np.ndarray, model, sampling: dict | None = None) -> None:
    from .core.io import atomic_write

    key = signing_key()
    blob = b""
    if key is not None:
        try:
            blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an unpicklable backend model: keep the coordinates anyway
            log.info("projection model not cached (%s)", exc)
    atomic_write(path.with_suffix(".pkl"), lambda tmp: Path(tmp).write_bytes(blob))
    mac = _mac(key, blob) if key is not None and blob else ""

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, coords=coords, coords_digest=_digest(coords.tobytes()), model_mac=mac,
                     sampling=json.dumps(sampling))

    atomic_write(path, write)


def _read_cached(path: Path) -> tuple[np.ndarray, dict | None] | None:
    """Cached coordinates and sampling report, or None if missing or damaged (damaged files are deleted)."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            coords = np.asarray(data["coords"], dtype=np.float32)
            ok = (coords.ndim == 2 and coords.shape[1] == 2 and np.isfinite(coords).all()
                  and str(data["coords_digest"]) == _digest(coords.tobytes()))
            sampling = json.loads(str(data["sampling"]))
            ok = ok and (sampling is None or isinstance(sampling, dict))
    except Exception:
        ok = False
    else:
        if ok:
            return coords, sampling
    log.warning("projection cache file %s is damaged; recomputing", path)
    path.unlink(missing_ok=True)
    return None


def _read_model(path: Path | None):
    """The cached fitted model, only if its HMAC verifies with this user's key; else ``None``."""
    if path is None or not path.is_file() or not path.with_suffix(".pkl").is_file():
        return None
    key = signing_key()
    if key is None:
        return None
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            expected = str(data["model_mac"]) if "model_mac" in data.files else ""
        blob = path.with_suffix(".pkl").read_bytes()
    except Exception:
        return None
    if not blob or not expected or not hmac.compare_digest(_mac(key, blob), expected):
        if blob:
            log.warning("projection model %s has no valid signature for this user: not loaded, refitting",
                        path.with_suffix(".pkl"))
        return None
    try:
        return pickle.loads(blob)
    except Exception:
        return None
