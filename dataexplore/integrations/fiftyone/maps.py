"""A 2-D map as a FiftyOne brain run, aligned to the collection by sample id."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ...core.errors import DataexploreError, require
from ...core.ids import locate
from ._collections import INSTALL, _check_collection, _check_known, _dataset, _info


def save_map(collection: Any, points: Any, *, brain_key: str = "dataexplore", embeddings_field: str | None = None,
             overwrite: bool = False):
    """Store a 2-D map as a FiftyOne brain run, so the App's Embeddings panel shows the same map.

    Parameters
    ----------
    collection : fiftyone.core.collections.SampleCollection
        The dataset or view the map was made of.
    points : Explorer, Projection, pandas.DataFrame or array-like
        An :class:`~dataexplore.Explorer` or fitted :class:`~dataexplore.Projection` (aligned by
        sample id, so its order does not matter), a table with ``id``, ``x``, ``y`` columns, or an
        ``N×2`` array in the collection's order. Samples missing from a map (e.g. images that
        failed to embed) are left out of the brain run.
    brain_key : str
        The run's key (a valid Python identifier).
    embeddings_field : str, optional
        The field holding the vectors the map was made of (see :func:`embed`). FiftyOne keeps no
        embeddings field for a manual map, so it is recorded in
        ``dataset.info["dataexplore"]["maps"][brain_key]`` with the projection settings.
    overwrite : bool
        Replace an existing brain run with this key.

    Returns
    -------
    fiftyone.brain.visualization.VisualizationResults
        ``points`` in the order of ``sample_ids`` (the collection's order).

    Examples
    --------
    >>> ex = dx.explore(dataset)  # doctest: +SKIP
    >>> dx.fiftyone.save_map(dataset, ex, embeddings_field="dataexplore_embedding")  # doctest: +SKIP
    >>> session = fo.launch_app(dataset)  # Embeddings panel -> brain key "dataexplore"  # doctest: +SKIP
    """
    fo = _check_collection(collection, "dataexplore.integrations.fiftyone.save_map")
    brain = require("fiftyone.brain", "dataexplore.integrations.fiftyone.save_map", INSTALL)
    if not isinstance(brain_key, str) or not brain_key.isidentifier():
        raise DataexploreError(f"a brain key must be a valid Python identifier, got {brain_key!r}")
    ids, xy, provenance = _map_points(points)
    collection_ids = collection.values("id")
    samples = collection
    if ids is None:
        if len(xy) != len(collection_ids):
            raise DataexploreError(f"mismatched lengths: {len(xy)} points for {len(collection_ids)} samples "
                                   "(pass an Explorer or Projection to align by id)")
    else:
        _check_known(ids, collection_ids)
        rows, on_map = locate(ids, collection_ids)  # each sample's row on the map, if it is on it
        if not on_map.all():
            samples = collection.select([i for i, keep in zip(collection_ids, on_map) if keep], ordered=True)
        xy = xy[rows]
    if embeddings_field is not None and embeddings_field not in collection.get_field_schema():
        raise DataexploreError(f"no field {embeddings_field!r} in the collection (embeddings_field)")
    if collection.has_brain_run(brain_key):
        if not overwrite:
            raise DataexploreError(f"brain key {brain_key!r} already exists: pass overwrite=True to replace it")
        collection.delete_brain_run(brain_key)
    results = brain.compute_visualization(samples, method="manual", points=xy, brain_key=brain_key,
                                          embeddings=embeddings_field)
    dataset = _dataset(fo, collection)
    record = {"points": int(len(xy)), "embeddings_field": embeddings_field, **provenance}
    _info(dataset, create=True).setdefault("maps", {})[brain_key] = record
    dataset.save()
    return results


def _map_points(points: Any) -> tuple[list[str] | None, np.ndarray, dict]:
    """(ids or None, N×2 float32, provenance) of an Explorer, a Projection, an id/x/y table or an array."""
    from ...projection import Projection

    source_ids: Any = None  # as the source holds them: an array, a Series or a list
    provenance: dict = {}
    if isinstance(points, Projection):
        points._check_fitted()
        source_ids, xy, provenance = points.ids_, points.embedding_, {"projection": points.get_params()}
    elif hasattr(points, "xy") and hasattr(points, "ids"):  # an Explorer
        source_ids, xy = points.ids, points.xy
        prov = getattr(points, "provenance", {}) or {}
        model = prov.get("model") or {}
        provenance = {k: v for k, v in (("projection", prov.get("projection")),
                                        ("model", {m: model[m] for m in ("name", "weights") if m in model}))
                      if v}
    elif isinstance(points, pd.DataFrame):
        if not {"id", "x", "y"} <= set(points.columns):
            raise DataexploreError(f"a map table needs id, x and y columns, it has {list(points.columns)}")
        source_ids, xy = points["id"], points[["x", "y"]].to_numpy()
    else:
        xy = points
    try:
        xy = np.asarray(xy, dtype=np.float32)
    except (TypeError, ValueError):
        raise DataexploreError(f"cannot read map points from {type(points).__name__}") from None
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise DataexploreError(f"map points must be N×2, got shape {xy.shape}")
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        raise DataexploreError(f"map points contain NaN or inf at row {int(np.flatnonzero(bad)[0])}")
    ids = None if source_ids is None else [str(i) for i in source_ids]
    if ids is not None:
        if len(ids) != len(xy):
            raise DataexploreError(f"mismatched lengths: {len(ids)} ids for {len(xy)} points")
        if not pd.Index(ids).is_unique:
            raise DataexploreError("the map has duplicate sample ids")
    return ids, xy, provenance
