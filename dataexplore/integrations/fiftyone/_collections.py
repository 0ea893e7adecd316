"""What the modules of :mod:`dataexplore.integrations.fiftyone` share: checking a collection, its dataset and ids."""

from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from ...core.errors import DataexploreError, require
from ...core.ids import rows_of

INSTALL = "dataexplore[fiftyone]"
#: Where dataexplore keeps its records in ``dataset.info``.
INFO_KEY = "dataexplore"


def _check_collection(collection: Any, feature: str):
    from ...sources import is_fiftyone

    fo = require("fiftyone", feature, INSTALL)
    if not is_fiftyone(collection) or not hasattr(collection, "get_field_schema"):
        raise DataexploreError(f"{feature} needs a FiftyOne dataset or view, got {type(collection).__name__}")
    return fo


def _dataset(fo, collection: Any):
    """The dataset a collection belongs to (where info, saved views and runs live)."""
    return collection if isinstance(collection, fo.Dataset) else fo.load_dataset(collection.dataset_name)


def _info(dataset: Any, create: bool = False) -> dict:
    if create:
        return dataset.info.setdefault(INFO_KEY, {})
    return dataset.info.get(INFO_KEY) or {}


def _check_field_name(name: Any, what: str) -> None:
    if not isinstance(name, str) or not name or name.startswith("_") or "." in name or name != name.strip():
        raise DataexploreError(f"{what} must be a plain field name (no dots, no leading underscore), got {name!r}")


def _check_known(ids: list[str], collection_ids: list[str]) -> None:
    """Raise naming the first id that is not a sample of the collection."""
    rows_of(collection_ids, pd.Index(ids).unique(),
            message="sample id {id!r} is not in the collection ({count} unknown ids in all)")


def _selected_ids(selection: Any) -> tuple[list[str], str]:
    """Ids (unique, in order) and a few words of provenance from a Selection or a sequence of ids."""
    from ...core.selection import Selection

    how = ""
    if isinstance(selection, Selection):
        ids = selection.ids.tolist()
        how = selection.shape
    elif isinstance(selection, (str, bytes)) or not isinstance(selection, Iterable):
        raise DataexploreError(f"a selection must be a Selection or a list of sample ids, got "
                               f"{type(selection).__name__}")
    else:
        ids = [str(i) for i in selection]
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise DataexploreError("the selection is empty: select some samples first")
    return ids, how
