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

and the data-quality checks work on the same vectors::

    dx.duplicates(emb)                  # exact and near copies, grouped; emb.subset(result.keep())
    dx.duplicates(train, test)          # leaks: images the two sets share
    dx.label_errors(emb)                # labels that look wrong, with a suggested label
    dx.outliers(emb)                    # outlier, uniqueness and representativeness scores
    dx.sample(pool, 200, "diverse")     # a labeling budget spent well (balance_by=[...] too)

and a gap the data cannot fill becomes a generation request, checked when the images come back::

    req = cov.to_generation(0, n=200)   # prompts, negatives, exemplars; req.save / to_jsonl / to_diffusers_script
    dx.check_generated(req, pixels)     # off-target and duplicate images flagged, coverage before/after

and detection datasets are objects: boxes in images, embedded as crops::

    objects = dx.load_objects("instances.json", predictions="results.json")  # COCO, YOLO, Label Studio, FiftyOne
    dx.embed(objects)                   # each box plus a margin, through the same engine and cache
    dx.match(objects)                   # predictions vs ground truth, as COCO matches them
    dx.export_boxes(objects, "batch")   # rectangle tasks for Label Studio or COCO; dx.import_boxes brings them back

Heavy dependencies (torch, open_clip, umap) are imported on first use, so
``import dataexplore`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .core.errors import DataexploreError, MissingDependencyError, ModelError, SourceError

# public name -> (module, attribute); attribute None = the module itself
_LAZY: dict[str, tuple[str, str | None]] = {
    "load": ("sources", "load"),
    "Samples": ("core.samples", "Samples"),
    "Objects": ("core.objects", "Objects"),
    "load_objects": ("sources.detections", "load_objects"),
    "fashion_scenes": ("sources.scenes", "fashion_scenes"),
    "ComponentDetector": ("models.detector", "ComponentDetector"),
    "crops": ("core.crops", "crops"),
    "embed": ("embedding", "embed"),
    "embed_text": ("embedding", "embed_text"),
    "Embeddings": ("core.embeddings", "Embeddings"),
    "project": ("projection", "project"),
    "Projection": ("projection", "Projection"),
    "load_model": ("models", "load_model"),
    "Selection": ("core.selection", "Selection"),
    "Explorer": ("app", "Explorer"),
    "explore": ("app", "explore"),
    "coverage": ("analysis", "coverage"),
    "concepts": ("analysis", "concepts"),
    "failures": ("analysis", "failures"),
    "match": ("analysis", "match"),
    "clusters": ("analysis", "clusters"),
    "duplicates": ("analysis", "duplicates"),
    "label_errors": ("analysis", "label_errors"),
    "outliers": ("analysis", "outliers"),
    "sample": ("analysis", "sample"),
    "Query": ("query", "Query"),
    "load_query": ("query", "load_query"),
    "GenerationRequest": ("query.generation", "GenerationRequest"),
    "generation_request": ("query.generation", "generation_request"),
    "load_generation": ("query.generation", "load_generation"),
    "check_generated": ("analysis.generated", "check_generated"),
    "export_labeling": ("labeling", "export_labeling"),
    "import_labels": ("labeling", "import_labels"),
    "apply_labels": ("labeling", "apply_labels"),
    "export_boxes": ("labeling", "export_boxes"),
    "import_boxes": ("labeling", "import_boxes"),
    "datasets": ("sources.datasets", None),
    "models": ("models", None),
    "cache": ("embedding.cache", None),
    "images": ("core.images", None),
    "analysis": ("analysis", None),
    "fiftyone": ("integrations.fiftyone", None),
    "query": ("query", None),
    "labeling": ("labeling", None),
}

# Written out (not built from _LAZY) so that linters and type checkers see what is public;
# tests/test_package.py checks that the two agree.
__all__ = [
    "__version__", "DataexploreError", "MissingDependencyError", "ModelError", "SourceError",
    "load", "Samples", "Objects", "load_objects", "fashion_scenes", "ComponentDetector", "crops", "embed",
    "embed_text", "Embeddings", "project", "Projection",
    "load_model", "Selection",
    "Explorer", "explore", "coverage", "concepts", "failures", "match", "clusters",
    "duplicates", "label_errors", "outliers", "sample", "Query", "load_query",
    "GenerationRequest", "generation_request", "load_generation", "check_generated",
    "export_labeling", "import_labels", "apply_labels", "export_boxes", "import_boxes",
    "datasets", "models", "cache", "images", "analysis", "fiftyone", "query", "labeling",
]

if TYPE_CHECKING:  # pragma: no cover
    from . import analysis, labeling, models, query
    from .analysis import clusters, concepts, coverage, duplicates, failures, label_errors, match, outliers, sample
    from .analysis.generated import check_generated
    from .app import Explorer, explore
    from .core import images
    from .core.crops import crops
    from .core.embeddings import Embeddings
    from .core.objects import Objects
    from .core.samples import Samples
    from .core.selection import Selection
    from .embedding import cache, embed, embed_text
    from .integrations import fiftyone
    from .labeling import apply_labels, export_boxes, export_labeling, import_boxes, import_labels
    from .models import load_model
    from .models.detector import ComponentDetector
    from .projection import Projection, project
    from .query import Query, load_query
    from .query.generation import GenerationRequest, generation_request, load_generation
    from .sources import datasets, load
    from .sources.detections import load_objects
    from .sources.scenes import fashion_scenes


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'dataexplore' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = importlib.import_module(f".{module}", __name__)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
