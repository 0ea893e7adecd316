"""dataexplore: see what your computer-vision dataset is missing, inside a notebook.

The common path is three calls::

    import dataexplore as dx
    emb = dx.embed("fashion-mnist:test:2000", model="fashion-tiny")   # CLIP vectors, cached
    proj = dx.project(emb)                                             # 2-D UMAP map, cached
    proj.to_frame()                                                    # id, x, y

and the analyses find what to look at (see :mod:`dataexplore.analysis`)::

    dx.coverage(train, production)      # where production has no training data nearby
    dx.concepts(train, other=production) # concepts with no or few images
    dx.failures(emb, correct=ok)        # where the model's errors concentrate
    dx.clusters(emb)                    # an overview, each cluster named in words

Heavy dependencies (torch, open_clip, umap) are imported on first use, so
``import dataexplore`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import DataexploreError, MissingDependencyError, ModelError, SourceError

_LAZY = {
    "load": "samples",
    "Samples": "samples",
    "embed": "engine",
    "embed_text": "engine",
    "Embeddings": "embeddings",
    "project": "projection",
    "Projection": "projection",
    "load_model": "models",
    "Selection": "selection",
    "Explorer": "explorer",
    "explore": "explorer",
    "coverage": "analysis",
    "concepts": "analysis",
    "failures": "analysis",
    "clusters": "analysis",
    "Query": "query",
    "load_query": "query",
    "export_labeling": "labeling",
    "import_labels": "labeling",
    "apply_labels": "labeling",
    "datasets": None,
    "models": None,
    "cache": None,
    "images": None,
    "analysis": None,
    "fiftyone": None,
    "query": None,
    "labeling": None,
}

__all__ = ["__version__", "DataexploreError", "MissingDependencyError", "ModelError", "SourceError", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from . import analysis, cache, datasets, fiftyone, images, models, query
    from .query import Query, load_query
    from .analysis import clusters, concepts, coverage, failures
    from .engine import embed, embed_text
    from .explorer import Explorer, explore
    from .selection import Selection
    from .embeddings import Embeddings
    from .models import load_model
    from .projection import Projection, project
    from .samples import Samples, load


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'dataexplore' has no attribute {name!r}")
    module = _LAZY[name]
    if module is None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
