"""Sample ids to rows: one lookup, and one explicit policy for ids that are not there.

Every stage that turns ids back into rows (a selection into its embeddings, labels into samples, a
group onto a map, a map onto a FiftyOne collection) goes through :func:`rows_of`, so an unknown id
either raises one clear error or is dropped on purpose; it never becomes row ``-1`` (which numpy
reads as the last row).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .errors import DataexploreError

__all__ = ["locate", "rows_of"]


def locate(index: Any, ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``ids`` sits in ``index``: ``(rows of the ids found, which ids were found)``.

    ``index`` is the ids of the rows (a sequence, a :class:`pandas.Index` or the
    :class:`~dataexplore.core.selection.RowIds` of a map without ids of its own); ids compare as text.

    Examples
    --------
    >>> rows, found = locate(["a", "b", "c"], ["c", "x", "a"])
    >>> rows.tolist(), found.tolist()
    ([2, 0], [True, False, True])
    """
    wanted = pd.Index(_texts(ids))
    if hasattr(index, "positions"):  # RowIds: the row number is the id
        pos = np.asarray(index.positions(wanted), np.int64)
    else:
        lookup = index if isinstance(index, pd.Index) and index.dtype == object else \
            pd.Index(np.asarray(index, dtype=object).astype(str))
        pos = lookup.get_indexer(wanted)
    found = pos >= 0
    return pos[found].astype(np.int64), found


def rows_of(index: Any, ids: Any, *, missing: str = "raise",
            message: str = "sample id {id!r} is not among these samples ({count} unknown ids in all)") -> np.ndarray:
    """Row of each of ``ids`` in ``index`` (int64, in the order of ``ids``).

    Parameters
    ----------
    index, ids
        As in :func:`locate`.
    missing : {"raise", "drop"}
        ``"raise"``: a :class:`~dataexplore.core.errors.DataexploreError` built from ``message`` (with
        ``{id}``, the first unknown id, and ``{count}``, how many are unknown); ``"drop"``: the
        rows of the ids found only.

    Examples
    --------
    >>> rows_of(["a", "b", "c"], ["c", "a"]).tolist()
    [2, 0]
    >>> rows_of(["a", "b"], ["b", "x"], missing="drop").tolist()
    [1]
    >>> rows_of(["a", "b"], ["x"])
    Traceback (most recent call last):
    ...
    dataexplore.core.errors.DataexploreError: sample id 'x' is not among these samples (1 unknown ids in all)
    """
    if missing not in ("raise", "drop"):
        raise DataexploreError(f"missing must be 'raise' or 'drop', got {missing!r}")
    ids = _texts(ids)
    rows, found = locate(index, ids)
    if missing == "raise" and not found.all():
        unknown = ids[~found]
        raise DataexploreError(message.format(id=str(unknown[0]), count=int((~found).sum())))
    return rows


def _texts(ids: Any) -> np.ndarray:
    """Ids as an object array of str (any iterable, read once)."""
    values = ids if isinstance(ids, (np.ndarray, pd.Index, pd.Series)) else list(ids)
    return np.asarray(values, dtype=object).astype(str).astype(object)
