"""Linked views under the map, computed without a widget: one small chart per column (bars of the
top categories, or a histogram), the filters set on them, and the counts each chart highlights.

Every row gets one bar code per chart once (``uint16``), so every count afterwards is one
``numpy.bincount`` over codes, exact and quick at millions of rows; the browser only draws.

Semantics (the crossfilter rule):

- A chart's filter keeps the rows in its chosen bars (bar charts) or its value range (histograms).
  Filters of several charts combine with AND, and the rows passing all of them become the map's
  selection.
- While filters are set, each chart highlights the rows passing the *other* charts' filters, so
  a chart shows what choosing another bar of its own would give.
- Without filters, each chart highlights the map's selection (a lasso, box, click or
  ``Explorer.select``); a selection made another way clears the filters.

A histogram's range ``[lo, hi]`` keeps ``lo <= value < hi``, and also ``value == hi`` when ``hi``
is the last bin edge (the largest finite value): the rule numpy's histogram bins follow, so a
range from one bin edge to another keeps exactly the rows counted in the bins between them.
Missing and non-finite values are counted apart and pass no range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError
from .protocol import ChartCountsMessage, ChartFilter, ChartSpec
from .state import aligned

BINS = 20
TOP = 10
MAX_BINS = 200
MAX_TOP = 100
NUMERIC_DISTINCT = 32  # integer columns with more distinct values than this get a histogram
OTHER = "(other)"
MISSING = "(missing)"


@dataclass(frozen=True)
class Chart:
    """One chart: a bar code per row (``uint16``) and what the bars are.

    Attributes
    ----------
    name : str
        The chart's title (the column's name).
    kind : {"categorical", "numeric"}
    codes : numpy.ndarray
        Each row's bar: ``0..len(counts)-1``; for a histogram, ``bins`` (one past the last bin)
        means no value.
    labels : list of str
        Bar names (categorical), empty for a histogram.
    edges : numpy.ndarray or None
        ``bins + 1`` increasing bin edges (numeric).
    values : numpy.ndarray or None
        The values as float64 (numeric; NaN for missing and non-finite), for exact ranges.
    counts : numpy.ndarray
        Rows per bar, over all rows (for a histogram the last entry counts rows without a value).
    """

    name: str
    kind: Literal["categorical", "numeric"]
    codes: np.ndarray
    labels: list[str]
    edges: np.ndarray | None
    values: np.ndarray | None
    counts: np.ndarray

    @property
    def bars(self) -> int:
        """Bars a filter can name (a histogram's no-value bar is not one)."""
        return len(self.counts) - (1 if self.kind == "numeric" else 0)

    def spec(self) -> ChartSpec:
        """What the browser draws (full-data counts, bar names or bin edges)."""
        counts = self.counts.tolist()
        if self.kind == "numeric":
            assert self.edges is not None
            return {"name": self.name, "kind": "numeric", "labels": [], "edges": self.edges.tolist(),
                    "counts": counts[:-1], "missing": counts[-1]}
        return {"name": self.name, "kind": "categorical", "labels": list(self.labels), "edges": [],
                "counts": counts, "missing": 0}

    def count(self, rows: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray:
        """Rows per bar among ``rows`` (indices) or ``mask`` (booleans); all rows when neither."""
        codes = self.codes if rows is None else self.codes[rows]
        if mask is not None:
            codes = codes[mask]
        return np.bincount(codes, minlength=len(self.counts))


def numeric_chart(values: pd.Series, name: str, bins: int = BINS) -> Chart:
    """A histogram of ``bins`` equal bins over the finite range of ``values``."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(v)
    v = np.where(finite, v, np.nan)
    lo, hi = (float(np.min(v[finite])), float(np.max(v[finite]))) if finite.any() else (0.0, 1.0)
    if hi <= lo:  # one value: one bin of width 1 (or wider, where 1 is below the float's precision)
        hi = lo + max(1.0, abs(lo) * 1e-9)
    edges = np.linspace(lo, hi, bins + 1)
    edges[-1] = hi  # exactly the largest value, so it falls in the last bin
    codes = np.full(len(v), bins, np.uint16)
    codes[finite] = np.clip(np.searchsorted(edges, v[finite], side="right") - 1, 0, bins - 1)
    counts = np.bincount(codes, minlength=bins + 1)
    return Chart(name, "numeric", codes, [], edges, v, counts)


def categorical_chart(values: pd.Series, name: str, top: int = TOP) -> Chart:
    """Bars of the ``top`` most common values (ties in natural order), then ``(other)`` and
    ``(missing)`` when there are such rows."""
    try:
        raw, cats = pd.factorize(values, sort=True)
    except TypeError:  # mixed types: compared as text; missing values stay missing, not "None"/"nan" bars
        raw, cats = pd.factorize(values.astype(str).where(values.notna()), sort=True)
    full = np.bincount(raw[raw >= 0], minlength=len(cats))
    order = np.argsort(-full, kind="stable")[:top]  # most common first; ties keep the natural order
    lookup = np.full(len(cats) + 1, -1, np.int64)  # factor code -> bar; the last entry is "missing"
    lookup[order] = np.arange(len(order))
    labels = _unique([str(cats[k]) for k in order])
    if len(cats) > len(order):
        lookup[:-1][lookup[:-1] < 0] = len(labels)
        labels.append(OTHER)
    if (raw < 0).any():
        lookup[-1] = len(labels)
        labels.append(MISSING)
    codes = lookup[np.where(raw < 0, len(cats), raw)].astype(np.uint16)
    return Chart(name, "categorical", codes, labels, None, None, np.bincount(codes, minlength=len(labels)))


def _unique(labels: list[str]) -> list[str]:
    """Bar names as shown, made distinct: values whose text is equal (``1`` and ``"1"``) or that read
    ``(other)``/``(missing)`` get a numbered suffix, so a bar's name picks exactly one bar."""
    seen = {OTHER, MISSING}
    out = []
    for label in labels:
        name, k = label, 2
        while name in seen:
            name, k = f"{label} ({k})", k + 1
        seen.add(name)
        out.append(name)
    return out


def make_chart(values: pd.Series, name: str, *, bins: int = BINS, top: int = TOP) -> Chart:
    """A histogram for floats and integers of many values, bars for everything else."""
    if pd.api.types.is_bool_dtype(values):
        return categorical_chart(values, name, top)
    if pd.api.types.is_float_dtype(values) or \
            (pd.api.types.is_integer_dtype(values) and values.nunique() > NUMERIC_DISTINCT):
        return numeric_chart(values, name, bins)
    return categorical_chart(values, name, top)


def chart_values(item: Any, table: pd.DataFrame, ids: Any, n: int) -> tuple[pd.Series, str]:
    """The values behind one chart and its name.

    ``item`` is a ``table`` column name; a pandas Series keyed by sample id (what an analysis
    result's ``map_values()`` returns; ids it lacks get no value) or with a default ``0..n-1``
    index (positional); an analysis result (anything with ``map_values()``); or a
    ``(name, values)`` pair with values aligned to the points."""
    if isinstance(item, str):
        if item not in table.columns:
            raise DataexploreError(f"no column {item!r} to chart; columns: {list(table.columns)}")
        return table[item], item
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        name, values = item
        values = pd.Series(np.asarray(values)) if not isinstance(values, pd.Series) else values.reset_index(drop=True)
        if len(values) != n:
            raise DataexploreError(f"mismatched lengths: {len(values)} values for chart {name!r}, {n} points")
        return values, name
    if callable(getattr(item, "map_values", None)):
        name = str(getattr(item, "title", type(item).__name__))
        values = item.map_values()
        return _by_id(values, ids), name
    if isinstance(item, pd.Series):
        name = str(item.name) if item.name is not None else "value"
        if isinstance(item.index, pd.RangeIndex) and item.index.equals(pd.RangeIndex(n)):
            return item.reset_index(drop=True), name
        return _by_id(item, ids), name
    raise DataexploreError("a chart is a column name, a Series keyed by sample id, an analysis result "
                           f"or a (name, values) pair; got {type(item).__name__}")


def _by_id(values: Any, ids: Any) -> pd.Series:
    return aligned(values, pd.Index(np.asarray(ids).astype(str)))


def make_charts(items: Iterable[Any] | Mapping[str, Any], table: pd.DataFrame, ids: Any, n: int, *,
                bins: int = BINS, top: int = TOP) -> list[Chart]:
    """One :class:`Chart` per item (see :func:`chart_values`); a mapping gives ``{name: values}``."""
    for what, value, most in (("bins", bins, MAX_BINS), ("top", top, MAX_TOP)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 1 <= value <= most:
            raise DataexploreError(f"{what} must be an integer from 1 to {most}, got {value!r}")
    if isinstance(items, Mapping):
        items = list(items.items())
    elif isinstance(items, (str, pd.Series)):
        items = [items]
    charts = []
    for item in items:
        values, name = chart_values(item, table, ids, n)
        charts.append(make_chart(values, name, bins=int(bins), top=int(top)))
    names = [c.name for c in charts]
    if len(set(names)) != len(names):
        raise DataexploreError(f"two charts of the same name: {names}")
    return charts


# ---- filters -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filter:
    """A chart's filter: the ``bars`` kept (bar charts) or a value ``range`` (histograms)."""

    bars: tuple[int, ...] = ()
    range: tuple[float, float] | None = None

    def mask(self, chart: Chart) -> np.ndarray:
        """Which rows pass (a boolean per row)."""
        if self.range is not None:
            assert chart.values is not None and chart.edges is not None
            lo, hi = self.range
            v = chart.values
            with np.errstate(invalid="ignore"):
                keep = v >= lo
                if hi < chart.edges[-1]:
                    keep &= v < hi
            return keep
        table = np.zeros(len(chart.counts), bool)
        table[list(self.bars)] = True
        return table[chart.codes]

    def describe(self, chart: Chart) -> dict[str, Any]:
        """The filter as a user reads it (for a selection's provenance)."""
        if self.range is not None:
            return {"range": [float(self.range[0]), float(self.range[1])]}
        return {"categories": [chart.labels[b] for b in self.bars]}

    def message(self) -> ChartFilter:
        if self.range is not None:
            return {"range": [float(self.range[0]), float(self.range[1])]}
        return {"bars": list(self.bars)}


def check_filter(chart: Chart, bars: Sequence[int] | None = None,
                 range: Sequence[float] | None = None) -> Filter | None:
    """A checked :class:`Filter` for ``chart`` (None: no filter); :class:`ValueError` if it does not fit."""
    if bars is not None and range is not None:
        raise ValueError("a filter keeps bars or a range, not both")
    if range is not None:
        if chart.kind != "numeric":
            raise ValueError(f"chart {chart.name!r} has bars, not a range")
        lo, hi = (float(v) for v in range)
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
            raise ValueError(f"bad range {list(range)!r}")
        return Filter(range=(lo, hi))
    if bars is not None:
        if chart.kind != "categorical":
            raise ValueError(f"chart {chart.name!r} is a histogram: filter it by a range")
        chosen = sorted(set(int(b) for b in bars))
        if any(not 0 <= b < chart.bars for b in chosen):
            raise ValueError(f"bars {list(bars)!r} out of range 0..{chart.bars - 1}")
        return Filter(bars=tuple(chosen)) if chosen else None
    return None


@dataclass
class Crossfilter:
    """The charts of a map and their filters: which rows pass, and what each chart highlights."""

    charts: list[Chart]
    filters: dict[int, Filter] = field(default_factory=dict)
    _masks: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def set(self, k: int, flt: Filter | None) -> None:
        """Set (or with None, remove) chart ``k``'s filter."""
        self._masks.pop(k, None)
        if flt is None:
            self.filters.pop(k, None)
        else:
            self.filters[k] = flt

    def by_name(self, chart: str | int, categories: Sequence[Any] | None = None,
                range: Sequence[float] | None = None) -> tuple[int, Filter | None]:
        """Chart ``chart`` (its name or position) and the filter keeping bars ``categories`` (by
        name) or ``range``, checked; :class:`DataexploreError` saying what is wrong otherwise."""
        names = [c.name for c in self.charts]
        k = names.index(chart) if isinstance(chart, str) and chart in names else chart
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 0 <= k < len(names):
            raise DataexploreError(f"no chart {chart!r}; charts: {names}")
        c = self.charts[int(k)]
        bars = None
        if categories is not None:
            unknown = [v for v in categories if str(v) not in c.labels]
            if unknown:
                raise DataexploreError(f"chart {c.name!r} has no bar {unknown[0]!r}; bars: {c.labels}")
            bars = [c.labels.index(str(v)) for v in categories]
        try:
            return int(k), check_filter(c, bars, range)
        except ValueError as exc:
            raise DataexploreError(str(exc)) from None

    def clear(self) -> None:
        self.filters.clear()
        self._masks.clear()

    def _mask(self, k: int) -> np.ndarray:
        if k not in self._masks:
            self._masks[k] = self.filters[k].mask(self.charts[k])
        return self._masks[k]

    def _failed(self) -> np.ndarray:
        """How many filters each row fails."""
        n = len(self.charts[0].codes) if self.charts else 0
        failed = np.zeros(n, np.uint16)
        for k in self.filters:
            failed += ~self._mask(k)
        return failed

    def rows(self) -> np.ndarray:
        """The rows passing every filter (sorted uint32)."""
        return np.flatnonzero(self._failed() == 0).astype(np.uint32)

    def highlighted(self, selection: np.ndarray) -> list[np.ndarray] | None:
        """Per chart, the counts it highlights: with filters, those of the rows passing every
        *other* chart's filter; else those of the rows of ``selection``; None when there is neither."""
        if self.filters:
            failed = self._failed()
            out = []
            for k, chart in enumerate(self.charts):
                others = failed == 0
                if k in self.filters:
                    others |= (failed == 1) & ~self._mask(k)
                out.append(chart.count(mask=others))
            return out
        if len(selection):
            rows = np.asarray(selection, np.int64)
            return [chart.count(rows) for chart in self.charts]
        return None

    def describe(self) -> dict[str, Any]:
        """The filters by chart name, as a selection's provenance names them."""
        return {self.charts[k].name: f.describe(self.charts[k]) for k, f in sorted(self.filters.items())}

    def message(self, version: int, selection: np.ndarray) -> ChartCountsMessage:
        """The ``chart_counts`` broadcast: what each chart highlights and each chart's filter."""
        counts = self.highlighted(selection)
        mode: Literal["filter", "selection", "none"] = \
            "filter" if self.filters else "selection" if counts is not None else "none"
        return {"type": "chart_counts", "version": version, "mode": mode,
                "selected": [] if counts is None else [c.tolist() for c in counts],
                "filters": [self.filters[k].message() if k in self.filters else {} for k in range(len(self.charts))],
                "total": int(len(selection))}
