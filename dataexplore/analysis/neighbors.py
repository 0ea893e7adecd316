"""k-nearest neighbours in the full embedding space, with memory linear in N.

Every analysis (coverage, failure slices, clusters) measures density in the embedding space, not
on the 2-D map, because UMAP distorts distances. The backends:

- ``"exact"``: blockwise cosine similarity with torch (``queries_block × N`` at a time) and a
  ``topk`` per block, so memory is ``O(block × N)``, never ``O(N²)``. On a GPU this is the fastest
  path at any size that fits the card; on CPU it is used up to 2·10¹² multiply-adds (100,000
  points of width 128 against each other: about 30 s on two cores).
- ``"faiss"``: an exact inner-product index when ``faiss`` is importable (CPU or GPU build).
- ``"pynndescent"``: approximate nearest-neighbour descent (a dependency of umap-learn), for large
  sets on CPU.

``"auto"`` picks exact on a GPU or when the pair count is small, then FAISS when installed, then
pynndescent. Vectors are L2-normalised CLIP embeddings, so the distance is ``1 - cosine``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from ..core.errors import DataexploreError

EXACT_WORK = 2e12  # above this many multiply-adds (queries × base × D) on CPU, "auto" goes approximate
_BLOCK_BYTES = 64 * 2**20  # similarity block held at once on CPU (topk needs about 3× more); 16× on a GPU


def knn(queries: np.ndarray, base: np.ndarray | None = None, k: int = 15, *, backend: str = "auto",
        device: Any = "auto", random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``base`` for each row of ``queries`` by cosine distance.

    Parameters
    ----------
    queries : numpy.ndarray
        ``M×D`` float32, L2-normalised.
    base : numpy.ndarray, optional
        ``N×D``; ``None`` means ``queries`` itself, and then each point's own row is left out of
        its neighbours.
    k : int
        Neighbours per query (clipped to what ``base`` has).
    backend : {"auto", "exact", "faiss", "pynndescent"}
    device : str or torch.device
        For the exact backend (``"auto"``: CUDA when available).

    Returns
    -------
    distances : numpy.ndarray
        ``M×k`` float32 cosine distances, ascending.
    indices : numpy.ndarray
        ``M×k`` int64 rows of ``base``.

    Examples
    --------
    >>> import numpy as np
    >>> from dataexplore.analysis.neighbors import knn
    >>> x = np.array([[1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32)
    >>> knn(x, k=1)[1].ravel().tolist()
    [1, 0, 1]
    """
    self_query = base is None
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    base = queries if self_query else np.ascontiguousarray(base, dtype=np.float32)
    if queries.ndim != 2 or base.ndim != 2 or queries.shape[1] != base.shape[1]:
        raise DataexploreError(f"kNN needs two arrays of the same width, got {queries.shape} and {base.shape}")
    k = int(min(k, len(base) - (1 if self_query else 0)))
    if k < 1:
        raise DataexploreError(f"too few points for nearest neighbours ({len(base)})")
    chosen = pick_backend(len(queries), len(base), backend, device, dim=queries.shape[1])
    if chosen == "exact":
        return _exact(queries, base, k, self_query, device)
    if chosen == "faiss":
        return _faiss(queries, base, k, self_query)
    return _nndescent(queries, base, k, self_query, random_state)


def pick_backend(n_queries: int, n_base: int, backend: str = "auto", device: Any = "auto", dim: int = 128) -> str:
    """Which kNN backend :func:`knn` will use for these sizes."""
    if backend not in ("auto", "exact", "faiss", "pynndescent"):
        raise DataexploreError(f"kNN backend must be auto, exact, faiss or pynndescent, got {backend!r}")
    if backend != "auto":
        if backend == "faiss" and importlib.util.find_spec("faiss") is None:
            raise DataexploreError("kNN backend 'faiss' needs the faiss package: pip install faiss-cpu")
        return backend
    from ..models.device import pick_device

    if pick_device(device).type == "cuda" or float(n_queries) * n_base * dim <= EXACT_WORK:
        return "exact"
    return "faiss" if importlib.util.find_spec("faiss") is not None else "pynndescent"


def _exact(queries, base, k, self_query, device):
    import torch

    from ..models.device import pick_device

    dev = pick_device(device)
    if dev.type == "mps":  # topk on MPS is limited to k <= 16 in some versions; CPU is safe
        dev = torch.device("cpu")
    b = torch.from_numpy(base).to(dev, non_blocking=True)
    budget = _BLOCK_BYTES * (16 if dev.type == "cuda" else 1)
    block = int(max(1, min(len(queries), budget // (4 * max(len(base), 1)))))
    dist = np.empty((len(queries), k), np.float32)
    idx = np.empty((len(queries), k), np.int64)
    with torch.inference_mode():
        for start in range(0, len(queries), block):
            q = torch.from_numpy(queries[start:start + block]).to(dev, non_blocking=True)
            sim = q @ b.T
            if self_query:  # a point is not its own neighbour, even when duplicates tie with it
                rows = torch.arange(len(q), device=dev)
                sim[rows, rows + start] = -torch.inf
            top, arg = torch.topk(sim, k, dim=1)
            dist[start:start + len(q)] = (1.0 - top).clamp_min(0).cpu().numpy()
            idx[start:start + len(q)] = arg.cpu().numpy()
    return dist, idx


def _faiss(queries, base, k, self_query):
    import faiss

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    sim, idx = index.search(queries, k + (1 if self_query else 0))
    if self_query:
        sim, idx = _drop_self(sim, idx, k, larger_is_closer=True)
    return np.clip(1.0 - sim, 0, None).astype(np.float32), idx.astype(np.int64)


def _nndescent(queries, base, k, self_query, random_state):
    from ..core.errors import require

    pynndescent = require("pynndescent", "approximate nearest neighbours", "pynndescent")
    n_neighbors = k + (1 if self_query else 0)
    index = pynndescent.NNDescent(base, n_neighbors=max(n_neighbors, 10), metric="cosine",
                                  random_state=random_state, low_memory=True, n_jobs=-1, verbose=False)
    if self_query:
        idx, dist = index.neighbor_graph
        idx, dist = idx[:, :n_neighbors], dist[:, :n_neighbors]
        dist, idx = _drop_self(dist, idx, k, larger_is_closer=False)
    else:
        idx, dist = index.query(queries, k=k)
    return np.asarray(dist, np.float32), np.asarray(idx, np.int64)


def _drop_self(score, idx, k, *, larger_is_closer):
    """Remove each row's own index (or its worst neighbour when it was not returned)."""
    own = idx == np.arange(len(idx))[:, None]
    has_own = own.any(axis=1)
    own[~has_own, -1] = True  # keep k: drop the farthest instead
    keep = ~own
    score = score[keep].reshape(len(idx), -1)[:, :k]
    idx = idx[keep].reshape(len(idx), -1)[:, :k]
    return score, idx
