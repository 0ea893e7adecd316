"""What a map shows, computed without a widget: colour codes and legend, the page of the selection
panel, the points of a view on a big map, the rows a browser selection stands for, and the
messages (:mod:`~dataexplore.widget.protocol`) that carry them, chunked under the websocket cap.

Pure functions over arrays and tables: the Explorer keeps the state and sends what these return;
tests check them without a comm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError
from ..core.geometry import PointGrid, first_by_rank
from ..core.selection import combine
from .protocol import ColorInfo, SelectRequest

POINT_CHUNK = 500_000  # points per message: 4 MB of float32 xy + 1 MB of codes (+ 2 MB of row ids)
INDEX_CHUNK = 2_000_000  # selected rows per message: 8 MB, under the 10 MB websocket cap
BITS_CHUNK = 8_000_000  # bytes of a selection bitset per message
PAGE_SIZE = 24
VIEW_DENSITY = 512  # density cells per side sent with a zoomed-in view
MAX_CATEGORIES = 65534
NUMERIC_LEVELS = 255  # colour-bar steps; code 256 is "no value"

Chunk = tuple[dict[str, Any], list[bytes]]


# ---- colours -----------------------------------------------------------------------------------
def color_codes(values: pd.Series | None, name: str = "value", *,
                no_value: str = "class") -> tuple[np.ndarray, ColorInfo]:
    """One uint16 colour code per point and the legend that explains them.

    Floats, and integers with more than 32 distinct values, get a colour bar (codes 0..255, 256
    for no value); everything else gets classes in natural order (codes 0..k-1). Missing
    categorical values become a ``(missing)`` class (``no_value="class"``) or code k, drawn grey
    outside the legend (``"grey"``).
    """
    if values is None:
        return np.zeros(0, np.uint16), {"kind": "none"}
    if no_value not in ("class", "grey"):
        raise DataexploreError("no_value must be 'class' or 'grey'")
    if pd.api.types.is_float_dtype(values) or (pd.api.types.is_integer_dtype(values) and values.nunique() > 32):
        v = values.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(v)
        lo, hi = (float(np.min(v[finite])), float(np.max(v[finite]))) if finite.any() else (0.0, 1.0)
        scaled = np.where(finite, (v - lo) / ((hi - lo) or 1.0), 0.0)
        codes = np.where(finite, np.round(scaled * NUMERIC_LEVELS), NUMERIC_LEVELS + 1).astype(np.uint16)
        return codes, {"kind": "numeric", "name": name, "min": f"{lo:.4g}", "max": f"{hi:.4g}",
                       "no_value": int((~finite).sum()), "no_value_code": NUMERIC_LEVELS + 1}
    try:  # natural order for numbers (2 before 10), text order otherwise
        raw, cats = pd.factorize(values, sort=True)
    except TypeError:  # mixed types
        raw, cats = pd.factorize(values.astype(str), sort=True)
    names = [str(c) for c in cats]
    missing = int((raw < 0).sum())
    if missing and no_value == "class":  # missing values get a class of their own, last
        raw = np.where(raw < 0, len(names), raw)
        names.append("(missing)")
        missing = 0
    if len(names) > MAX_CATEGORIES:
        raise DataexploreError(f"{len(names)} categories is more than a map can colour ({MAX_CATEGORIES})")
    raw = np.where(raw < 0, len(names), raw)  # no value: one past the last class, grey
    counts = np.bincount(raw, minlength=len(names))[:len(names)]
    return raw.astype(np.uint16), {"kind": "categorical", "name": name, "categories": names,
                                   "counts": counts.tolist(), "no_value": missing, "no_value_code": len(names)}


def color_values(color: Any, table: pd.DataFrame, n: int) -> tuple[pd.Series, str]:
    """The values behind ``color`` (a column name, a Series or an array of ``n``) and their name."""
    name = color if isinstance(color, str) else \
        str(color.name) if isinstance(color, pd.Series) and color.name is not None else "value"
    if isinstance(color, str):
        if color not in table.columns:
            raise DataexploreError(f"no column {color!r} to colour by; columns: {list(table.columns)}")
        return table[color], name
    values = color.reset_index(drop=True) if isinstance(color, pd.Series) else pd.Series(np.asarray(color))
    if len(values) != n:
        raise DataexploreError(f"mismatched lengths: {len(values)} colour values for {n} points")
    return values, name


def aligned(values: Any, ids: pd.Index) -> pd.Series:
    """``values`` (a Series keyed by sample id) in map order; ids it lacks get no value (NA).

    Integers and booleans stay integers and booleans (nullable), so a missing id does not turn
    cluster numbers into floats, which would colour them as a continuous scale.
    """
    if not isinstance(values, pd.Series):
        raise DataexploreError("map_values() must return a pandas Series keyed by sample id, "
                               f"got {type(values).__name__}")
    name = str(values.name) if values.name is not None else "value"
    values = values[~values.index.duplicated()]
    values.index = values.index.astype(str)
    if pd.api.types.is_bool_dtype(values):
        values = values.astype("boolean")
    elif pd.api.types.is_integer_dtype(values):
        values = values.astype("Int64")
    return values.reindex(ids).reset_index(drop=True).rename(name)


# ---- the list of an analysis' groups --------------------------------------------------------------
def group_rows(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The columns a group list shows (no list-valued ones) and each group's cells as short text."""
    columns = [c for c in table.columns if c != "exemplars" and not table[c].map(_is_list).any()]
    return columns, [[cell(c, table[c].iloc[k]) for c in columns] for k in range(len(table))]


def cell(column: str, value: Any) -> str:
    """A group-table value as short text: shares and rates as percentages, other floats to 3 digits."""
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if "share" in column or "rate" in column or column in ("low", "high"):
            return f"{value:.1%}"
        return f"{value:.3g}"
    return str(value)


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


# ---- selections --------------------------------------------------------------------------------
def selected_rows(request: SelectRequest, current: np.ndarray, *, grid: PointGrid, codes: np.ndarray,
                  n_categories: int, groups: list[np.ndarray]) -> np.ndarray:
    """The rows a ``select`` request stands for, combined with ``current`` by its ``op``.

    Lasso and box go through the grid index (exact, and quick at any size); a class is every point
    of that colour code; a group is the rows of the shown result's group."""
    shape = request["shape"]
    if shape in ("lasso", "box"):
        new: Any = grid.polygon(np.asarray(request["polygon"], np.float64))
    elif shape == "point":
        new = [within(request["row"], len(grid.xy), "row")]
    elif shape == "class":
        new = np.flatnonzero(codes == within(request["category"], n_categories, "category"))
    elif shape == "group":
        new = groups[within(request["group"], len(groups), "group")]
    else:  # clear
        new = []
    return combine(current, new, request["op"])


def within(value: int, n: int, what: str) -> int:
    """``value`` if it is in ``0..n-1``; :class:`ValueError` otherwise."""
    if not 0 <= value < n:
        raise ValueError(f"{what} {value!r} out of range 0..{n - 1}")
    return value


def selection_chunks(indices: np.ndarray, n: int, *, lod: bool, seq: int, group: int) -> Iterator[Chunk]:
    """The selection as messages: its rows, or on a big map a bitset of all rows when that is smaller."""
    if lod and len(indices) * 4 > (n + 7) // 8:
        mask = np.zeros(n, bool)
        mask[indices] = True
        bits = np.packbits(mask, bitorder="little")
        for start in range(0, len(bits), BITS_CHUNK):
            stop = min(len(bits), start + BITS_CHUNK)
            yield ({"type": "selection", "format": "bits", "offset": start, "count": stop - start,
                    "bytes": len(bits), "n": n, "total": len(indices), "final": stop >= len(bits),
                    "seq": seq, "group": group}, [bits[start:stop].tobytes()])
        return
    for start in range(0, max(len(indices), 1), INDEX_CHUNK):
        stop = min(len(indices), start + INDEX_CHUNK)
        fmt = {"format": "rows", "n": n} if lod else {}
        yield ({"type": "selection", "offset": start, "count": stop - start, "total": len(indices),
                "final": stop >= len(indices), "seq": seq, "group": group, **fmt},
               [indices[start:stop].astype(np.uint32).tobytes()])


# ---- the selection panel -------------------------------------------------------------------------
def page_of(indices: np.ndarray, page: int, size: int = PAGE_SIZE) -> tuple[int, int, np.ndarray]:
    """``(page, pages, rows)``: ``page`` clamped to the pages there are, and that page's rows."""
    pages = max(1, math.ceil(len(indices) / size))
    page = min(max(page, 0), pages - 1)
    return page, pages, indices[page * size:(page + 1) * size]


def label_counts(table: pd.DataFrame, indices: np.ndarray, top: int = 20) -> list[list[Any]]:
    """``[[label, count], ...]`` of the selected rows, most common first (empty without labels)."""
    if "label" not in table.columns or not len(indices):
        return []
    labels = table["label"].iloc[indices.astype(np.int64)]
    if isinstance(labels.dtype, pd.CategoricalDtype):  # count codes, not millions of strings
        vc = labels.value_counts(dropna=False)
        vc = vc[vc > 0]
    else:
        vc = labels.astype(str).value_counts()
    return [[str(k), int(v)] for k, v in vc.head(top).items()]


# ---- points, and the points of a view on a big map --------------------------------------------------
def point_chunks(xy: np.ndarray, codes: np.ndarray, rows: np.ndarray | None = None,
                 head: dict[str, Any] | None = None) -> Iterator[Chunk]:
    """Points as messages: all of them in order (``rows=None``), or the sample ``rows`` with its ids."""
    total = len(xy) if rows is None else len(rows)
    for start in range(0, max(total, 1), POINT_CHUNK):
        stop = min(total, start + POINT_CHUNK)
        meta = {"type": "points", **(head or {}), "offset": start, "count": stop - start, "total": total,
                "final": stop >= total}
        if rows is None:
            yield meta, [xy[start:stop].tobytes(), codes[start:stop].tobytes()]
        else:
            part = rows[start:stop]
            yield meta, [xy[part].tobytes(), codes[part].tobytes(), part.astype(np.uint32).tobytes()]


@dataclass(frozen=True)
class ViewAnswer:
    """The points a big map sends for a view: ``rows`` (all ``inside`` when they fit, else a sample by
    rank) and, for a zoomed view that is still a sample, the density of the view."""
    rows: np.ndarray
    inside: int
    rect: list[float] | None
    density: tuple[list[float], np.ndarray] | None = None

    @property
    def complete(self) -> bool:
        return len(self.rows) == self.inside


def overview(n: int, budget: int) -> np.ndarray:
    """The sample of a big map drawn before any zoom: the first ``budget`` rows by sampling rank."""
    return first_by_rank(np.arange(n, dtype=np.uint32), budget)


def view_answer(grid: PointGrid, rect: list[float] | None, budget: int, whole: np.ndarray) -> ViewAnswer:
    """What to draw for view ``rect`` (None: everything): ``whole`` (the overview) when the view holds
    the whole map; every point inside when they fit in ``budget``; else the first ``budget`` of them
    by sampling rank, so the points of a wider view that fall inside stay, with the view's density."""
    bx0, by0, bx1, by1 = grid.bounds
    n = len(grid.xy)
    if rect is None or (rect[0] <= bx0 and rect[1] <= by0 and rect[2] >= bx1 and rect[3] >= by1):
        return ViewAnswer(whole, n, rect)
    inside = grid.box(*rect)
    if len(inside) <= budget:
        return ViewAnswer(inside, len(inside), rect)
    density = None
    cx0, cy0, cx1, cy1 = max(rect[0], bx0), max(rect[1], by0), min(rect[2], bx1), min(rect[3], by1)
    if (cx1 - cx0) * (cy1 - cy0) < 0.25 * (bx1 - bx0) * (by1 - by0):
        density = ([cx0, cy0, cx1, cy1], grid.density(cx0, cy0, cx1, cy1, size=VIEW_DENSITY, rows=inside))
    return ViewAnswer(first_by_rank(inside, budget), len(inside), rect, density)


def view_chunks(answer: ViewAnswer, xy: np.ndarray, codes: np.ndarray, reply_to: str) -> Iterator[Chunk]:
    """The messages answering a view request: the view's density (if any), then its points."""
    if answer.density is not None:
        rect, counts = answer.density
        yield {"type": "density", "reply_to": reply_to, "rect": rect, "size": VIEW_DENSITY}, [counts.tobytes()]
    head = {"reply_to": reply_to, "lod": True, "n": len(xy), "rect": answer.rect, "inside": int(answer.inside),
            "complete": answer.complete}
    yield from point_chunks(xy, codes, answer.rows, head)
