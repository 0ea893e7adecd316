"""Labels from an annotation tool written back as Classifications, with their provenance."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pandas as pd

from ...core.errors import DataexploreError
from ...core.io import is_missing
from ._collections import _check_collection, _check_field_name, _check_known

_REQUIRED_COLUMNS = ("id", "label")
_OPTIONAL_COLUMNS = ("annotator", "annotated_at", "source", "task", "confidence")


def apply_labels(collection: Any, labels: pd.DataFrame, field: str = "human_label", *,
                 overwrite: bool = False) -> int:
    """Write labels from an annotation tool into a Classification field, with their provenance.

    Parameters
    ----------
    collection : fiftyone.core.collections.SampleCollection
    labels : pandas.DataFrame
        Columns ``id`` (FiftyOne sample id) and ``label`` (text); optional provenance columns
        ``annotator``, ``annotated_at`` (ISO 8601 text), ``source`` (``"label-studio"``,
        ``"cvat"``, ``"coco"``, ``"csv"``, ...), ``task`` (the tool's task id) and ``confidence``,
        stored as attributes of each label. One row per sample. ``meta_*`` columns (the exported
        metadata :func:`dataexplore.import_labels` returns) are ignored.
    field : str
        The sample field to write; only the labelled samples are touched.
    overwrite : bool
        Replace labels the labelled samples already have in ``field``.

    Returns
    -------
    int
        How many samples were written.

    Examples
    --------
    >>> labels = pd.DataFrame({"id": [sample_id], "label": ["Bag"], "annotator": ["ana"],
    ...                        "annotated_at": ["2026-01-05T10:00:00Z"], "source": ["csv"]})  # doctest: +SKIP
    >>> dx.fiftyone.apply_labels(dataset, labels)  # doctest: +SKIP
    1
    >>> dataset[sample_id].human_label.annotator  # doctest: +SKIP
    'ana'
    """
    fo = _check_collection(collection, "dataexplore.integrations.fiftyone.apply_labels")
    if not isinstance(labels, pd.DataFrame):
        raise DataexploreError(f"labels must be a pandas DataFrame, got {type(labels).__name__}")
    missing = [c for c in _REQUIRED_COLUMNS if c not in labels.columns]
    unknown = [c for c in labels.columns if c not in _REQUIRED_COLUMNS + _OPTIONAL_COLUMNS
               and not str(c).startswith("meta_")]
    if missing or unknown:
        problem = f"needs the columns {missing}" if missing else f"has unknown columns {unknown}"
        raise DataexploreError(f"the labels table {problem}; expected id, label and optionally "
                               f"{', '.join(_OPTIONAL_COLUMNS)}")
    if labels.empty:
        raise DataexploreError("the labels table is empty: nothing to apply")
    _check_field_name(field, "field")
    ids = [str(i) for i in labels["id"]]
    dup = pd.Index(ids).duplicated()
    if dup.any():
        raise DataexploreError(f"sample id {ids[int(np.flatnonzero(dup)[0])]!r} has more than one label")
    schema = collection.get_field_schema()
    if field in schema and getattr(schema[field], "document_type", None) is not fo.Classification:
        raise DataexploreError(f"field {field!r} holds {type(schema[field]).__name__} values, not "
                               "Classifications: pass field=<another name>")
    _check_known(ids, collection.values("id"))
    if field in schema and not overwrite:
        have_ids, have = collection.select(ids).values(["id", field])
        taken = [i for i, v in zip(have_ids, have) if v is not None]
        if taken:
            raise DataexploreError(f"{len(taken)} of the labelled samples already have a {field!r} label "
                                   f"(first: {taken[0]!r}): pass overwrite=True to replace them")
    columns = {c: _provenance_column(labels[c], c) for c in _OPTIONAL_COLUMNS if c in labels.columns}
    values = {}
    for row, (sample_id, label) in enumerate(zip(ids, labels["label"])):
        if not isinstance(label, str) or not label.strip():
            raise DataexploreError(f"the label of sample {sample_id!r} must be non-empty text, got {label!r}")
        extra = {c: col[row] for c, col in columns.items() if col[row] is not None}
        values[sample_id] = fo.Classification(label=label, **extra)
    collection.set_values(field, values, key_field="id", dynamic=True)
    return len(values)


def _provenance_column(column: pd.Series, name: str) -> list[Any]:
    """One provenance column as plain Python values (None where missing), checked and of one type."""
    values = [None if is_missing(v) else v for v in column]
    present = [v for v in values if v is not None]
    if name == "annotated_at":
        return [None if v is None else _iso(v) for v in values]
    if name == "confidence":
        try:
            out = [None if v is None else float(v) for v in values]
        except (TypeError, ValueError):
            raise DataexploreError("confidence values must be numbers") from None
        if any(v is not None and not 0 <= v <= 1 for v in out):
            raise DataexploreError("confidence values must lie between 0 and 1")
        return out
    if name == "task" and present and all(_integral(v) for v in present):
        return [None if v is None else int(v) for v in values]  # Label Studio / CVAT task numbers
    return [None if v is None else str(v) for v in values]


def _iso(value: Any) -> str:
    if isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, str):
        try:
            text = value.strip()
            _dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)  # 3.10
        except ValueError:
            raise DataexploreError(f"annotated_at must be an ISO 8601 time such as '2026-01-05T10:00:00Z', "
                                   f"got {value!r}") from None
        return value.strip()
    raise DataexploreError(f"annotated_at must be an ISO 8601 time, got {type(value).__name__}")


def _integral(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) or (
        isinstance(value, (float, np.floating)) and float(value).is_integer())
