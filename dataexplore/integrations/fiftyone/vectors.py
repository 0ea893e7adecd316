"""Embedding vectors kept in a sample field: computed once, recorded with their model, read back."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ...core.embeddings import Embeddings
from ...core.errors import DataexploreError
from ._collections import _check_collection, _check_field_name, _dataset, _info


def embed(collection: Any, model: str | None = "fashion-tiny", pretrained: str | None = None, *,
          field: str = "dataexplore_embedding", **embed_kwargs) -> Embeddings:
    """Embed a FiftyOne collection, storing the vectors in a sample field and reusing them later.

    When every sample already has a vector in ``field``, nothing is computed: the stored vectors
    are read back, after checking that they come from the requested model (dataexplore records
    the model identity of the fields it writes in ``dataset.info["dataexplore"]["fields"]``).
    Otherwise the images are embedded with :func:`dataexplore.embed` (its disk cache applies),
    the vectors are written to ``field`` and the model identity is recorded.

    Parameters
    ----------
    collection : fiftyone.core.collections.SampleCollection
        A FiftyOne dataset or view of images.
    model, pretrained : str
        The CLIP model (see :func:`dataexplore.embed`). ``model=None`` uses the vectors already in
        ``field`` as they are, including a field written by another tool (they are L2-normalised
        on reading).
    field : str
        The sample field that holds the vectors (a ``VectorField``).
    **embed_kwargs
        Passed to :func:`dataexplore.embed` (``device``, ``batch_size``, ``cache_dir``, ...).

    Returns
    -------
    Embeddings
        Aligned to the collection's sample ids, with ``samples`` set (thumbnails, ``label`` from
        ``ground_truth``). ``stats`` counts vectors ``computed``, taken from the disk ``cache``,
        ``failed`` and ``reused`` (read from ``field``).

    Raises
    ------
    dataexplore.DataexploreError
        If ``field`` holds vectors of another model, was written by another tool while a model
        was asked for, or holds something other than vectors.

    Examples
    --------
    >>> import dataexplore as dx
    >>> emb = dx.fiftyone.embed(dataset)  # doctest: +SKIP
    >>> emb = dx.fiftyone.embed(dataset)  # the second call reads the field  # doctest: +SKIP
    >>> emb.stats  # doctest: +SKIP
    {'computed': 0, 'cached': 0, 'failed': 0, 'reused': 2000}
    """
    from ...embedding import local as engine
    from ...sources import load

    fo = _check_collection(collection, "dataexplore.integrations.fiftyone.embed")
    _check_field_name(field, "field")
    samples = load(collection)
    n = len(samples)
    if n == 0:
        raise DataexploreError("the FiftyOne collection has no samples to embed")
    dataset = _dataset(fo, collection)
    schema = collection.get_field_schema()
    recorded = _info(dataset).get("fields", {}).get(field)
    filled = 0
    if field in schema:
        if not isinstance(schema[field], (fo.VectorField, fo.ListField)):
            raise DataexploreError(f"field {field!r} holds {type(schema[field]).__name__} values, not embedding "
                                   "vectors: pass field=<another name>")
        filled = collection.count(field)
    if model is None:
        if filled < n:
            have = "does not exist" if field not in schema else f"has vectors for only {filled} of {n} samples"
            raise DataexploreError(f"model=None reuses the vectors in field {field!r}, but it {have}: "
                                   "pass a model to compute them")
        return _read_field(collection, samples, field, dict(recorded or {}, field=field))
    if filled and recorded is None:
        raise DataexploreError(
            f"field {field!r} was written by another tool (dataexplore recorded no model for it): pass "
            f"model=None to use its vectors as they are, or field=<another name> to compute {model!r} embeddings")
    if filled and recorded is not None:
        from ...models import load_model

        weights = load_model(model, pretrained).identity["weights"]
        if recorded.get("weights") != weights:
            raise DataexploreError(
                f"field {field!r} holds embeddings of {_describe(recorded)}, not of the requested model "
                f"{model!r} (pretrained={pretrained!r}, weights {weights[:12]}): pass field=<another name>, "
                "or model=None to use the stored vectors")
        if filled == n:
            return _read_field(collection, samples, field, dict(recorded, field=field))
    if field in schema and not isinstance(schema[field], fo.VectorField):
        raise DataexploreError(f"field {field!r} is a {type(schema[field]).__name__}, dataexplore writes "
                               "vectors to a VectorField: pass field=<another name>")
    emb = engine.embed(samples, model, pretrained, **embed_kwargs)
    emb.stats["reused"] = 0
    if field not in schema:
        dataset.add_sample_field(field, fo.VectorField)
    if len(emb):
        collection.set_values(field, dict(zip(emb.ids.tolist(), emb.vectors)), key_field="id")
    identity = {k: emb.model.get(k) for k in ("name", "pretrained", "arch", "weights", "preprocess", "key")}
    _info(dataset, create=True).setdefault("fields", {})[field] = identity
    dataset.save()
    return emb


def _read_field(collection: Any, samples: Any, field: str, model: dict) -> Embeddings:
    """Embeddings from the vectors stored in ``field`` (rows without a usable vector become failures)."""
    values = collection.values(field)
    ids = samples.ids
    kept: list[int] = []
    vectors: list[np.ndarray] = []
    failures: dict[int, str] = {}
    for row, value in enumerate(values):
        vec = None if value is None else np.asarray(value, dtype=np.float32).ravel()
        if vec is None:
            failures[row] = f"no vector in field {field!r}"
        elif not np.isfinite(vec).all() or not np.any(vec):
            failures[row] = f"zero or non-finite vector in field {field!r}"
        else:
            kept.append(row)
            vectors.append(vec)
    if len({len(v) for v in vectors}) > 1:
        raise DataexploreError(f"field {field!r} holds vectors of different lengths "
                               f"{sorted({len(v) for v in vectors})}")
    dim = len(vectors[0]) if vectors else 0
    matrix = np.stack(vectors) if vectors else np.zeros((0, dim), np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    off = np.abs(norms[:, 0] - 1) > 1e-3  # vectors written by dataexplore are unit already: leave their bits
    matrix[off] /= norms[off]
    rows = np.asarray(kept, dtype=np.int64)
    fail_rows = sorted(failures)
    failure_table = pd.DataFrame({"id": [ids[r] for r in fail_rows], "row": np.asarray(fail_rows, np.int64),
                                  "reason": [failures[r] for r in fail_rows]})
    stats = {"computed": 0, "cached": 0, "failed": len(fail_rows), "reused": len(rows)}
    return Embeddings(ids=ids[rows], vectors=matrix, rows=rows, samples=samples, model=model,
                      failures=failure_table, stats=stats)


def _describe(identity: dict) -> str:
    name = identity.get("name") or identity.get("arch") or "an unnamed model"
    pretrained = identity.get("pretrained")
    weights = str(identity.get("weights") or "?")[:12]
    return f"model {name!r}" + (f" (pretrained={pretrained!r})" if pretrained else "") + f", weights {weights}"
