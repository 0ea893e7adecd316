"""Selections as values: which samples, chosen how, on which map.

A :class:`Selection` is what a lasso, a box, a click or a legend class becomes in Python. It holds
sample ids (stable across sessions), row indices into the map, the polygon in map coordinates, and
provenance, so it can be saved, compared and turned into queries later. This module is compute
core: it never imports the widget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


class RowIds(Sequence):
    """The ids ``"0"``, ``"1"``, ..., ``"N-1"`` of a map given no ids, made only when asked for.

    Behaves like the object array of str it stands for (``len``, indexing with an int, a slice or an
    array of rows, iteration, ``np.asarray``) without holding N Python strings (about 70 bytes each:
    700 MB at ten million points).

    Examples
    --------
    >>> ids = RowIds(5)
    >>> ids[3], ids[[0, 4]].tolist(), ids.positions(["4", "7", "01"]).tolist()
    ('3', ['0', '4'], [4, -1, -1])
    """

    __slots__ = ("n",)

    def __init__(self, n: int):
        self.n = int(n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            k = int(key) + self.n if key < 0 else int(key)
            if not 0 <= k < self.n:
                raise IndexError(f"row {key} out of range for {self.n} ids")
            return str(k)
        return self.take(np.arange(self.n)[key])

    def __iter__(self):
        return (str(i) for i in range(self.n))

    def __repr__(self) -> str:
        return f"RowIds({self.n})"

    def take(self, rows: Any) -> np.ndarray:
        """The ids of ``rows`` as an object array of str."""
        return np.asarray(rows, dtype=np.int64).astype(str).astype(object)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.take(np.arange(self.n))
        return out if dtype is None else out.astype(dtype)

    def astype(self, dtype: Any) -> np.ndarray:
        return np.asarray(self).astype(dtype)

    def tolist(self) -> list[str]:
        return list(self)

    def positions(self, ids: Any) -> np.ndarray:
        """Row of each id (-1 where it is not one of these ids), like ``pd.Index.get_indexer``."""
        out = np.full(len(ids), -1, np.int64)
        for i, value in enumerate(ids):
            text = str(value)
            if text.isdecimal() and text.isascii() and (text == "0" or not text.startswith("0")):
                row = int(text)
                if row < self.n:
                    out[i] = row
        return out


def take_ids(ids: Any, rows: np.ndarray) -> np.ndarray:
    """``ids[rows]`` as an object array of str, for an array of ids or :class:`RowIds`."""
    if isinstance(ids, RowIds):
        return ids.take(rows)
    return np.asarray(ids, dtype=object)[np.asarray(rows, dtype=np.int64)]


@dataclass(frozen=True, eq=False)
class Selection:
    """Selected samples of a map.

    Attributes
    ----------
    ids : numpy.ndarray
        Sample ids (object array of str), in map row order. On a map without ids of its own (see
        :class:`RowIds`) they are made on first access, so a selection of millions costs nothing
        until its ids are read.
    indices : numpy.ndarray
        Row indices into the map's points (uint32, sorted, unique).
    polygon : numpy.ndarray or None
        The lasso or box outline in map coordinates (``P×2`` float32) when the last step drew one.
    shape : str
        How it was made: ``"lasso"``, ``"box"``, ``"point"``, ``"class"``, ``"ids"``, ``"clear"``,
        ``"filter"`` (the rows passing the linked charts' filters), or ``"combined"`` after adding to /
        subtracting from an earlier selection.
    provenance : dict
        What map it lives on (dataset, model identity, projection parameters); for ``"filter"`` also
        ``filters``, the charts' filters that made it.
    embeddings : Embeddings or None
        The map's embeddings when the explorer knows them (lets :meth:`to_query` work alone).

    Examples
    --------
    >>> from dataexplore.core.selection import as_selection
    >>> sel = as_selection(["a", "b", "c"], [2, 0])
    >>> sel.ids.tolist(), sel.indices.tolist()
    (['a', 'c'], [0, 2])
    """

    ids: np.ndarray
    indices: np.ndarray
    polygon: np.ndarray | None = None
    shape: str = "ids"
    provenance: dict = field(default_factory=dict)
    embeddings: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.indices)

    def __getattr__(self, name: str) -> Any:  # only for attributes not set: the deferred ids
        source = self.__dict__.get("_id_source") if name == "ids" else None
        if source is None:
            raise AttributeError(name)
        ids = take_ids(source, self.indices)
        object.__setattr__(self, "ids", ids)
        return ids

    def __repr__(self) -> str:
        head = ", ".join(map(repr, self.ids[:3])) + (", ..." if len(self) > 3 else "")
        return f"<Selection {len(self)} samples by {self.shape}: [{head}]>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Selection) and np.array_equal(self.indices, other.indices)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value: compare, don't hash

    def to_query(self, name: str | None = None, *, embeddings: Any = None, describe: bool = True):
        """This selection as a reusable :class:`~dataexplore.Query` that finds more such images.

        Parameters
        ----------
        name : str, optional
            Default: the most common label of the selection.
        embeddings : Embeddings, optional
            The map's embeddings; needed only when the selection was not made in an explorer
            that knows them.
        describe : bool
            Describe the selection in words (the concepts that set it apart).

        Examples
        --------
        >>> q = ex.selection.to_query("trousers")  # doctest: +SKIP
        >>> q.save("trousers.dxq")  # doctest: +SKIP
        """
        from ..query import make_query

        return make_query(self, embeddings if embeddings is not None else self.embeddings, name=name,
                          describe=describe)

    def to_frame(self, table: pd.DataFrame | None = None) -> pd.DataFrame:
        """The selected rows of ``table`` (the map's metadata), or just ``id`` and ``index``."""
        if table is None:
            return pd.DataFrame({"id": self.ids, "index": self.indices.astype(np.int64)})
        return table.iloc[self.indices.astype(np.int64)].reset_index(drop=True)


def points_in_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean mask of the points of ``xy`` (N×2) inside ``polygon`` (P×2, closed implicitly).

    Even-odd rule: a point is inside when a ray towards +x crosses the outline an odd number of
    times; an edge from ``a`` to ``b`` is crossed by the ray of a point at height ``y`` when
    ``min(ay, by) <= y < max(ay, by)`` and the point lies left of the edge at that height. After a
    bounding-box filter the candidates are sorted by ``y`` once, so each edge touches only the
    points in its height band: a 400-vertex hand-drawn lasso costs about as much as a square.
    """
    xy = np.asarray(xy, dtype=np.float64)
    poly = np.asarray(polygon, dtype=np.float64)
    mask = np.zeros(len(xy), dtype=bool)
    if len(poly) < 3 or len(xy) == 0:
        return mask
    lo, hi = poly.min(0), poly.max(0)
    cand = np.flatnonzero((xy[:, 0] >= lo[0]) & (xy[:, 0] <= hi[0]) & (xy[:, 1] >= lo[1]) & (xy[:, 1] <= hi[1]))
    if not len(cand):
        return mask
    order = np.argsort(xy[cand, 1], kind="stable")
    cand = cand[order]
    x, y = xy[cand, 0], xy[cand, 1]
    inside = np.zeros(len(cand), dtype=bool)
    ax, ay = poly[:, 0], poly[:, 1]
    bx, by = np.roll(ax, -1), np.roll(ay, -1)
    band_lo, band_hi = np.minimum(ay, by), np.maximum(ay, by)
    start = np.searchsorted(y, band_lo, side="left")  # first point with y >= the edge's lower end
    stop = np.searchsorted(y, band_hi, side="left")   # first point with y >= its upper end
    for i in np.flatnonzero(stop > start):
        a, b = start[i], stop[i]
        yy = y[a:b]
        xs = ax[i] + (yy - ay[i]) * (bx[i] - ax[i]) / (by[i] - ay[i])
        inside[a:b] ^= x[a:b] < xs
    mask[cand] = inside
    return mask


def unique_rows(rows: Any) -> np.ndarray:
    """``rows`` as sorted unique uint32 (what ``np.unique`` gives), without work when they already are:
    a lasso over millions of points comes back sorted, and hashing it again would cost seconds."""
    a = np.asarray(rows, dtype=np.uint32)
    if a.ndim != 1:
        a = a.ravel()
    if len(a) > 1 and not (a[1:] > a[:-1]).all():
        a = np.sort(a)
        a = a[np.r_[True, a[1:] != a[:-1]]]
    return a


def combine(current: np.ndarray, new: np.ndarray, op: str) -> np.ndarray:
    """Sorted unique uint32 rows after ``op`` ("replace", "add", "subtract") of ``new`` onto ``current``."""
    new = unique_rows(new)
    if op == "replace":
        return new
    if op == "add":
        return unique_rows(np.concatenate([np.asarray(current, np.uint32), new]))
    if op == "subtract":
        return np.setdiff1d(current, new, assume_unique=True).astype(np.uint32)
    raise ValueError(f"unknown selection operation {op!r}")


def as_selection(ids: np.ndarray, indices: Any, *, polygon=None, shape: str = "ids",
                 provenance: dict | None = None, embeddings: Any = None) -> Selection:
    """Build a :class:`Selection` from row indices into a map whose ids are ``ids``."""
    idx = unique_rows(indices)
    poly = None if polygon is None else np.asarray(polygon, dtype=np.float32).reshape(-1, 2)
    if isinstance(ids, RowIds):  # ids made on first access (see Selection.__getattr__)
        sel = object.__new__(Selection)
        for name, value in (("indices", idx), ("polygon", poly), ("shape", shape),
                            ("provenance", dict(provenance or {})), ("embeddings", embeddings), ("_id_source", ids)):
            object.__setattr__(sel, name, value)
        return sel
    return Selection(ids=take_ids(ids, idx), indices=idx, polygon=poly,
                     shape=shape, provenance=dict(provenance or {}), embeddings=embeddings)
