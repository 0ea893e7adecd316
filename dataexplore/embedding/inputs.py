"""What the analyses accept: embeddings, saved embeddings, or sources still to be embedded."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..core.embeddings import Embeddings
from ..core.errors import DataexploreError


def as_analysed(data: Any, model: str = "fashion-tiny", **embed_kwargs) -> Embeddings:
    """:class:`Embeddings` for ``data``.

    ``data`` may be Embeddings, a Parquet file written by ``Embeddings.save``/``dataexplore
    embed``, an ``N×D`` float array, or any source :func:`dataexplore.embed` accepts (embedded
    with ``model``, through the cache).
    """
    if isinstance(data, Embeddings):
        emb = data
    elif isinstance(data, (str, os.PathLike)) and str(data).endswith(".parquet") and os.path.isfile(data):
        emb = Embeddings.load(data)
    elif isinstance(data, np.ndarray) and data.ndim == 2 and np.issubdtype(data.dtype, np.floating):
        emb = Embeddings(ids=np.arange(len(data)).astype(str), vectors=data)
    else:
        from .local import embed

        emb = embed(data, model, **embed_kwargs)
    if len(emb) == 0:
        raise DataexploreError("nothing to analyse: the set is empty (no sample has an embedding)")
    emb.check_finite()
    return emb


def check_same_model(*sets: Embeddings) -> None:
    """Raise when embeddings come from different models or have different widths."""
    dims = {e.vectors.shape[1] for e in sets}
    if len(dims) > 1:
        raise DataexploreError(f"the sets have embeddings of different widths {sorted(dims)}: embed both "
                               "with the same model")
    weights = {e.model.get("weights") for e in sets if e.model.get("weights")}
    if len(weights) > 1:
        names = sorted({str(e.model.get("name")) for e in sets})
        raise DataexploreError(f"the sets were embedded with different models ({', '.join(names)}): "
                               "embed both with the same model")
