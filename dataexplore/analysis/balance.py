"""Balanced picks along several metadata axes at once, and the report that checks them.

Used by :func:`~dataexplore.analysis.sampling.sample` with ``balance_by=[...]``.

**Axes and buckets.** Each axis is a column of the items' table. Text, boolean and categorical
columns, and numeric columns with at most ``bins`` distinct values, give one bucket per value
(missing values: a ``(missing)`` bucket). Other numeric and datetime columns are cut at their
quantiles into ``bins`` buckets of about equal size (ties can merge buckets), labelled by their range.

**Targets.** Every axis asks for an equal share of the picks per bucket (``n / buckets``). A bucket
with fewer candidates than that cannot be filled: it gets all its candidates and the rest of the
budget is shared equally among the others ("water filling"), so each axis' targets add up to ``n``.

**The fill rule.** Candidates fall into *cells*, one per combination of buckets across the axes
that occurs. Picks are made one at a time: the next one comes from the cell whose buckets are
least filled, the sum over the axes of ``picked / target`` of the cell's bucket on that axis (ties:
the cell whose fullest bucket is least filled, then the cell with most candidates left). Inside
the cell the sampling strategy chooses (the most uncertain, the farthest from earlier picks, ...).
This greedy, online form of iterative proportional fitting keeps every axis near its targets at
every budget, also when the axes are correlated; what it cannot reach is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError

MISSING = "(missing)"


@dataclass
class Axes:
    """The buckets of each candidate along each axis.

    Attributes
    ----------
    names : list of str
        The axes (table columns), in the order asked.
    codes : numpy.ndarray
        ``N×A`` int32: the bucket of each candidate on each axis (an index into ``values``).
    values : list of list of str
        Bucket labels per axis (values, or value ranges for binned columns).
    binned : list of bool
        Whether the axis was cut into quantile bins (numeric or datetime columns).
    """

    names: list[str]
    codes: np.ndarray
    values: list[list[str]]
    binned: list[bool]

    def available(self, axis: int) -> np.ndarray:
        """Candidates per bucket of ``axis``."""
        return np.bincount(self.codes[:, axis], minlength=len(self.values[axis]))

    def labels(self, axis: int, positions: np.ndarray) -> np.ndarray:
        """Bucket labels of the candidates at ``positions`` on ``axis`` (object array of str)."""
        return np.asarray(self.values[axis], dtype=object)[self.codes[positions, axis]]


def bucketize(table: pd.DataFrame, axes: Sequence[str], bins: int | Mapping[str, int] = 4) -> Axes:
    """The buckets of each row of ``table`` along each of ``axes`` (see the module docs).

    Examples
    --------
    >>> t = pd.DataFrame({"camera": ["a", "b", "a", None], "size": [1.0, 2.0, 3.0, 4.0]})
    >>> ax = bucketize(t, ["camera", "size"], bins=2)
    >>> ax.values[0], ax.codes[:, 0].tolist(), ax.values[1]
    (['a', 'b', '(missing)'], [0, 1, 0, 2], ['1 – 2.5', '2.5 – 4'])
    """
    if isinstance(axes, str):
        axes = [axes]
    axes = list(axes)
    if not axes:
        raise DataexploreError("balance_by needs at least one column")
    if len(set(axes)) != len(axes):
        raise DataexploreError(f"balance_by names a column twice: {axes}")
    missing = [a for a in axes if a not in table.columns]
    if missing:
        shown = [str(c) for c in table.columns if c != "id"][:12]
        raise DataexploreError(f"no column {missing[0]!r} to balance by; the items' columns are {shown} "
                               "(pass metadata= to add columns)")
    codes, values, binned = [], [], []
    for axis in axes:
        k = bins.get(axis, 4) if isinstance(bins, Mapping) else bins
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise DataexploreError(f"bins must be a positive integer, got {k!r} for {axis!r}")
        c, v, b = _bucket_column(table[axis], int(k))
        codes.append(c)
        values.append(v)
        binned.append(b)
    return Axes(axes, np.stack(codes, axis=1).astype(np.int32), values, binned)


def _bucket_column(column: pd.Series, bins: int) -> tuple[np.ndarray, list[str], bool]:
    is_time = pd.api.types.is_datetime64_any_dtype(column)
    is_number = (pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
                 and not isinstance(column.dtype, pd.CategoricalDtype))
    if is_time or is_number:
        missing = column.isna().to_numpy().copy()
        if is_time:
            times = column.dt.tz_convert(None) if getattr(column.dt, "tz", None) is not None else column
            x = times.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
        else:
            x = column.to_numpy(dtype=np.float64, na_value=np.nan)
            missing |= ~np.isfinite(x)
        distinct = np.unique(x[~missing])
        if len(distinct) > bins:
            return _quantile_bins(x, missing, bins, is_time) + (True,)
        if not is_time:  # few distinct numbers (a class id, a count): one bucket per value
            names = [f"{v:g}" for v in distinct]
            code = np.searchsorted(distinct, np.where(missing, distinct[0] if len(distinct) else 0, x))
            return _with_missing(code, names, missing) + (False,)
    text = column.astype(object)
    missing = text.isna().to_numpy().copy()
    names_all = text.where(~missing, MISSING).astype(str).to_numpy(dtype=object)
    if isinstance(column.dtype, pd.CategoricalDtype):
        order = [str(c) for c in column.cat.categories if str(c) in set(names_all)]
    else:
        order = sorted(set(names_all) - {MISSING})
    if missing.any():
        order.append(MISSING)
    return pd.Categorical(names_all, categories=order).codes.astype(np.int64), order, False


def _with_missing(code: np.ndarray, names: list[str], missing: np.ndarray) -> tuple[np.ndarray, list[str]]:
    code = np.asarray(code, np.int64)
    if missing.any():
        code = np.where(missing, len(names), code)
        names = names + [MISSING]
    return code, names


def _quantile_bins(x: np.ndarray, missing: np.ndarray, bins: int, is_time: bool) -> tuple[np.ndarray, list[str]]:
    edges = np.unique(np.quantile(x[~missing], np.linspace(0, 1, bins + 1)))
    code = np.clip(np.searchsorted(edges[1:-1], np.where(missing, edges[0], x), side="right"), 0, len(edges) - 2)
    fmt = _time_text(edges) if is_time else (lambda v: f"{v:.4g}")
    names = [f"{fmt(lo)} – {fmt(hi)}" for lo, hi in zip(edges[:-1], edges[1:])]
    return _with_missing(code, names, missing)


def _time_text(edges: np.ndarray) -> Callable[[float], str]:
    stamps = pd.to_datetime(edges.astype(np.int64))
    daily = bool((stamps == stamps.normalize()).all())
    return lambda v: pd.Timestamp(int(v)).strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M")


def water_fill(available: np.ndarray, n: int) -> np.ndarray:
    """Equal shares of ``n`` per bucket, each capped at what the bucket has, the rest shared again.

    Examples
    --------
    >>> water_fill(np.array([100, 3, 100]), 30).tolist()
    [13.5, 3.0, 13.5]
    """
    m = np.asarray(available, np.float64)
    if n >= m.sum():
        return m.copy()
    order = np.sort(m)
    below = 0.0
    level = 0.0
    for i, v in enumerate(order):
        rest = len(order) - i
        if below + v * rest >= n:
            level = (n - below) / rest
            break
        below += v
    return np.minimum(m, level)


def greedy_fill(axes: Axes, n: int, take: Callable[[int, np.ndarray], int], progress: bool = False) -> np.ndarray:
    """Pick ``n`` candidates, each from the least-filled cell (see the module docs).

    ``take(cell, members)`` is the strategy: it returns the position (one of ``members``, the
    candidates of the cell not picked yet) it picks, or -1 when it has none left.

    Returns the picked positions in pick order.
    """
    cells, cell_of = _cells(axes)
    order = np.argsort(cell_of, kind="stable")
    starts = np.r_[0, np.cumsum(np.bincount(cell_of, minlength=len(cells)))]
    members = [order[starts[c]:starts[c + 1]] for c in range(len(cells))]
    taken = [np.zeros(len(m), bool) for m in members]
    left = np.diff(starts).astype(np.int64)
    targets = [water_fill(axes.available(a), n) for a in range(len(axes.names))]
    inverse = [1.0 / np.maximum(t, 1e-12) for t in targets]
    counts = [np.zeros(len(t)) for t in targets]
    picks: list[int] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=n, desc="balanced pick", unit="pick", disable=not progress or n < 500, leave=False)
    while len(picks) < n and left.any():
        ratios = np.stack([counts[a][cells[:, a]] * inverse[a][cells[:, a]] for a in range(len(counts))], axis=1)
        fill = np.where(left > 0, ratios.sum(1), np.inf)
        best = np.flatnonzero(fill <= fill.min() + 1e-9)
        if len(best) > 1:
            fullest = ratios[best].max(1)
            best = best[fullest <= fullest.min() + 1e-9]
        c = int(best[np.argmax(left[best])])
        pos = take(c, members[c][~taken[c]])
        if pos < 0:  # the strategy has nothing left here
            left[c] = 0
            continue
        taken[c][np.searchsorted(members[c], pos)] = True
        left[c] -= 1
        picks.append(int(pos))
        for a in range(len(counts)):
            counts[a][cells[c, a]] += 1
        bar.update(1)
    bar.close()
    return np.asarray(picks, np.int64)


def _cells(axes: Axes) -> tuple[np.ndarray, np.ndarray]:
    """The combinations of buckets that occur (``cells×A``) and the cell of each candidate."""
    sizes = [max(len(v), 1) for v in axes.values]
    if float(np.prod(sizes, dtype=np.float64)) < 2.0 ** 62:  # one integer per combination: a fast unique
        key = np.zeros(len(axes.codes), np.int64)
        for a, k in enumerate(sizes):
            key = key * k + axes.codes[:, a]
        uniq, cell_of = np.unique(key, return_inverse=True)
        cells = np.empty((len(uniq), len(sizes)), np.int64)
        for a in range(len(sizes) - 1, -1, -1):
            uniq, cells[:, a] = np.divmod(uniq, sizes[a])
        return cells, cell_of.reshape(-1)
    cells, cell_of = np.unique(axes.codes, axis=0, return_inverse=True)
    return cells, cell_of.reshape(-1)


def balance_report(axes: Axes, picks: np.ndarray, balanced: bool = True) -> pd.DataFrame:
    """Distribution per axis bucket before (all candidates) and after (the picks), against the target.

    Columns: ``axis``, ``value``, ``available`` and ``available_share`` (candidates), ``requested``
    (the equal share ``picks / buckets``), ``target`` (after water filling) and ``target_share``,
    ``picked`` and ``picked_share``, ``deviation`` (``picked_share - target_share``), ``shortfall``
    (how many short of the equal share, rounded down) and ``note`` (why a bucket is short). Without
    balancing the target columns are NaN.
    """
    n = len(picks)
    rows = []
    for a, axis in enumerate(axes.names):
        available = axes.available(a)
        picked = np.bincount(axes.codes[picks, a], minlength=len(available)) if n else np.zeros(len(available), int)
        requested = n / len(available)
        target = water_fill(available, n) if balanced else np.full(len(available), np.nan)
        for v, value in enumerate(axes.values[a]):
            short = max(0, int(np.floor(requested + 1e-9)) - int(picked[v])) if balanced else 0
            note = ""
            if short and available[v] < requested:
                note = f"only {int(available[v])} candidates"
            elif short:
                note = "the other axes left too few of these"
            rows.append({"axis": axis, "value": value, "available": int(available[v]),
                         "available_share": available[v] / max(available.sum(), 1),
                         "requested": requested if balanced else np.nan, "target": target[v],
                         "target_share": target[v] / n if n else np.nan, "picked": int(picked[v]),
                         "picked_share": picked[v] / n if n else np.nan,
                         "deviation": (picked[v] - target[v]) / n if n else np.nan,
                         "shortfall": short, "note": note})
    columns = ["axis", "value", "available", "available_share", "requested", "target", "target_share", "picked",
               "picked_share", "deviation", "shortfall", "note"]
    return pd.DataFrame.from_records(rows, columns=columns)


def deviations(report: pd.DataFrame) -> pd.Series:
    """Largest ``|picked_share - target_share|`` per axis of a :func:`balance_report`."""
    return report.assign(d=report["deviation"].abs()).groupby("axis", sort=False)["d"].max().rename("max_deviation")


def as_axes(balance_by: Any) -> list[str]:
    """``balance_by`` as a list of column names."""
    if isinstance(balance_by, str):
        return [balance_by]
    try:
        axes = [str(a) if not isinstance(a, str) else a for a in balance_by]
    except TypeError:
        raise DataexploreError(f"balance_by must be a column name or a list of them, got {balance_by!r}") from None
    return axes
