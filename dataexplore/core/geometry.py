"""Level of detail for maps past what a browser draws point by point.

Compute core (it never imports the widget): a stable sampling order over the points, a grid index
built once that answers viewport and polygon queries exactly, and density counts on that grid.

- :func:`sample_rank` gives every row a distinct 32-bit rank (a seeded bijective mix of the row
  number), so "the first k points of a region" is well defined and a region's sample always holds
  the samples of the larger regions around it: refining never drops a point already shown.
- :class:`PointGrid` sorts the rows by grid cell. A box or polygon query takes whole cells that lie
  inside the shape, tests only the points of the cells the outline crosses with the exact rule, and
  so returns exactly what :func:`~dataexplore.core.selection.points_in_polygon` would over all points.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .selection import points_in_polygon

SEED = 0x9E3779B9
_M32 = np.uint64(0xFFFFFFFF)
_CHUNK = 1 << 20  # rows per pass when scanning all points (bounds the temporaries)
_MARGIN = 1e-3  # in cells: a cell closer than this to the outline is tested point by point
_TABLE = 1 << 22  # entries of a polygon query's own tables past which it uses the plain test


def sample_rank(rows: np.ndarray, seed: int = SEED) -> np.ndarray:
    """Sampling rank (uint32) of each row: a bijective mix of ``row ^ seed``, so no two rows tie.

    The points of a region "in sample order" are its rows sorted by this rank; the first ``k`` of
    them are that region's sample of size ``k``.

    Examples
    --------
    >>> r = sample_rank(np.arange(5))
    >>> r.dtype, len(set(r.tolist()))
    (dtype('uint32'), 5)
    """
    x = np.asarray(rows).astype(np.uint64) ^ np.uint64(seed & 0xFFFFFFFF)
    x &= _M32
    # lowbias32 (Wellons): xorshift-multiply rounds, each a bijection of 32-bit integers
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & _M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & _M32
    x ^= x >> np.uint64(16)
    return x.astype(np.uint32)


def first_by_rank(rows: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` rows of ``rows`` with the smallest :func:`sample_rank`, in rank order (uint32)."""
    rows = np.asarray(rows, dtype=np.uint32)
    ranks = sample_rank(rows)
    if len(rows) > k:
        keep = np.argpartition(ranks, k - 1)[:k] if k > 0 else np.zeros(0, np.int64)
        rows, ranks = rows[keep], ranks[keep]
    return rows[np.argsort(ranks, kind="stable")]


def _ranges(first: np.ndarray, length: np.ndarray) -> np.ndarray:
    """``concatenate([arange(f, f + n) for f, n in zip(first, length)])`` (int64), with no Python loop."""
    length = np.asarray(length, np.int64)
    ends = np.cumsum(length)
    if not len(ends) or not ends[-1]:
        return np.zeros(0, np.int64)
    return np.repeat(np.asarray(first, np.int64) - (ends - length), length) + np.arange(ends[-1])


class PointGrid:
    """A ``size × size`` grid over the bounds of ``xy`` with the rows sorted by cell.

    Parameters
    ----------
    xy : numpy.ndarray
        ``N×2`` float32 coordinates (kept by reference, not copied).
    size : int, optional
        Cells per side (default: about four points per cell, at most 1024).

    Attributes
    ----------
    bounds : tuple of float
        ``(x0, y0, x1, y1)`` of all points.
    order : numpy.ndarray
        Rows (uint32) grouped by cell (in no particular order within a cell); built on first use.

    Examples
    --------
    >>> xy = np.random.default_rng(0).random((1000, 2)).astype(np.float32)
    >>> grid = PointGrid(xy)
    >>> square = np.array([[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]])
    >>> np.array_equal(grid.polygon(square), np.flatnonzero(points_in_polygon(xy, square)))
    True
    """

    def __init__(self, xy: np.ndarray, size: int | None = None):
        self.xy = xy
        n = len(xy)
        self.size = int(size) if size else max(16, min(1024, math.ceil(math.sqrt(n / 4))))
        if n:
            lo, hi = xy.min(0).astype(np.float64), xy.max(0).astype(np.float64)
        else:
            lo, hi = np.zeros(2), np.ones(2)
        self.bounds = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
        self._lo = lo
        span = hi - lo
        self._scale = np.where(span > 0, self.size / np.where(span > 0, span, 1.0), 0.0)
        self._cell_of: np.ndarray | None = np.empty(n, np.int32)  # kept until `order` is built
        for start in range(0, n, _CHUNK):
            self._cell_of[start:start + _CHUNK] = self._cells(xy[start:start + _CHUNK])
        self.start = np.zeros(self.size * self.size + 1, np.int64)
        np.cumsum(np.bincount(self._cell_of, minlength=self.size ** 2), out=self.start[1:])
        self._order: np.ndarray | None = None
        # the cell tests need cells well above the rounding of the coordinates; otherwise test every point
        mag = float(np.abs(np.concatenate([lo, hi])).max()) if n else 1.0
        cell = float(np.min(np.where(span > 0, span, np.inf))) / self.size if (span > 0).any() else 0.0
        self._cell = cell
        self._exact_cells = cell > 0 and _MARGIN * cell > 1e-9 * max(mag, cell)

    # ---- the index -----------------------------------------------------------------------------
    def _uv(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates -> continuous cell coordinates (monotone in x and in y)."""
        u = (np.asarray(x, np.float64) - self._lo[0]) * self._scale[0]
        v = (np.asarray(y, np.float64) - self._lo[1]) * self._scale[1]
        return u, v

    def _cells(self, xy: np.ndarray) -> np.ndarray:
        u, v = self._uv(xy[:, 0], xy[:, 1])
        g = self.size
        cu = np.clip(np.floor(u), 0, g - 1).astype(np.int32)
        cv = np.clip(np.floor(v), 0, g - 1).astype(np.int32)
        return cv * g + cu

    @property
    def counts(self) -> np.ndarray:
        """Points per cell, ``size × size`` (row ``j`` is the ``j``-th band from the bottom), uint32."""
        return np.diff(self.start).astype(np.uint32).reshape(self.size, self.size)

    @property
    def order(self) -> np.ndarray:
        if self._order is None:
            assert self._cell_of is not None  # kept until the order is made from it
            self._order = np.argsort(self._cell_of).astype(np.uint32)  # within a cell any order will do
            self._cell_of = None
        return self._order

    def _rows_of(self, cells: np.ndarray) -> np.ndarray:
        """Rows (uint32) in the given cells (flat cell numbers, ascending)."""
        cells = np.asarray(cells, np.int64)
        if not len(cells):
            return np.zeros(0, np.uint32)
        # runs of consecutive cells are one slice of `order`
        breaks = np.flatnonzero(np.diff(cells) != 1) + 1
        first = cells[np.r_[0, breaks]]
        last = cells[np.r_[breaks - 1, len(cells) - 1]]
        a = self.start[first]
        return self.order[_ranges(a, self.start[last + 1] - a)]

    def _finish(self, inside: np.ndarray, edge_rows: np.ndarray, edge_in: np.ndarray) -> np.ndarray:
        """Sorted unique rows from whole cells plus the edge points that passed the exact test."""
        picked = edge_rows[edge_in]
        total = len(inside) + len(picked)
        if total > len(self.xy) // 16:  # many: a mask is cheaper than a sort
            mask = np.zeros(len(self.xy), bool)
            mask[inside] = True
            mask[picked] = True
            return np.flatnonzero(mask).astype(np.uint32)
        return np.sort(np.concatenate([inside, picked]).astype(np.uint32))

    # ---- queries -------------------------------------------------------------------------------
    def box(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        """Rows with ``x0 <= x <= x1`` and ``y0 <= y <= y1``, sorted (uint32)."""
        g = self.size
        if not len(self.xy) or x1 < x0 or y1 < y0:
            return np.zeros(0, np.uint32)
        (u0, u1), (v0, v1) = self._uv([x0, x1], [y0, y1])
        # the cell mapping is monotone, so a point's cell bounds where it can be: cells strictly
        # between the ones holding the edges are wholly inside, the rim is tested point by point
        c0, c1 = int(np.clip(math.floor(u0), 0, g - 1)), int(np.clip(math.floor(u1), 0, g - 1))
        r0, r1 = int(np.clip(math.floor(v0), 0, g - 1)), int(np.clip(math.floor(v1), 0, g - 1))
        cols, rows = np.arange(c0, c1 + 1), np.arange(r0, r1 + 1)
        col_in = (cols > u0) & (cols + 1 < u1)
        row_in = (rows > v0) & (rows + 1 < v1)
        cells = (rows[:, None] * g + cols[None, :])
        whole = row_in[:, None] & col_in[None, :]
        inside = self._rows_of(cells[whole])
        edge = self._rows_of(cells[~whole])
        p = np.take(self.xy, edge, axis=0)
        ok = (p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)
        return self._finish(inside, edge, ok)

    def polygon(self, polygon: np.ndarray) -> np.ndarray:
        """Rows inside ``polygon`` (even-odd rule), sorted (uint32): exactly
        ``np.flatnonzero(points_in_polygon(xy, polygon))``, found through the grid.

        Cells no edge comes near are wholly in or out (decided by a scanline through their centres).
        A point in a cell that an edge comes near is tested exactly against the edges near its cell
        only; the other edges that count at its height pass wholly left or right of the cell and
        count by that side (:meth:`_outline_points`). The cost follows the points near the outline
        and the edges near each of them, not points × vertices.
        """
        poly = np.asarray(polygon, dtype=np.float64)
        if len(poly) < 3 or not len(self.xy):
            return np.zeros(0, np.uint32)
        if not self._exact_for(poly):
            return np.flatnonzero(points_in_polygon(self.xy, poly)).astype(np.uint32)
        g, m = self.size, _MARGIN
        pu, pv = self._uv(poly[:, 0], poly[:, 1])
        c0, c1 = max(0, math.floor(pu.min() - m)), min(g - 1, math.floor(pu.max() + m))
        r0, r1 = max(0, math.floor(pv.min() - m)), min(g - 1, math.floor(pv.max() + m))
        if c0 > c1 or r0 > r1:
            return np.zeros(0, np.uint32)
        pairs = self._outline_pairs(pu, pv)
        if pairs is None:  # a polygon whose outline covers millions of cells: the plain test
            return np.flatnonzero(points_in_polygon(self.xy, poly)).astype(np.uint32)
        pair_edge, pair_cell = pairs
        near = np.zeros(g * g, bool)
        near[pair_cell] = True
        cells = np.arange(r0, r1 + 1)[:, None] * g + np.arange(c0, c1 + 1)[None, :]
        whole = self._centres_inside(pu, pv, r0, r1, c0, c1) & ~near[cells]
        inside = self._rows_of(cells[whole])
        edge, ok = self._outline_points(poly, pu, pv, pair_edge, pair_cell)
        return self._finish(inside, edge, ok)

    def _exact_for(self, poly: np.ndarray) -> bool:
        """Whether the cell tests hold for this polygon: cells well above the rounding of the points'
        and the polygon's coordinates (an edge's crossing is computed to about 1e-15 of them)."""
        if not self._exact_cells or not np.isfinite(poly).all():
            return False
        return 1e-12 * float(np.abs(poly).max()) < _MARGIN * self._cell

    def _centres_inside(self, pu, pv, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Even-odd parity of the centres of the cells ``r0..r1 × c0..c1``, all rows at once: every
        crossing of an edge with a row's centre line flips the cells whose centre lies left of it."""
        au, av, bu, bv = pu, pv, np.roll(pu, -1), np.roll(pv, -1)
        lo, hi = np.minimum(av, bv), np.maximum(av, bv)
        # rows r whose centre line r + 0.5 the edge crosses: lo <= r + 0.5 < hi (a row wider, then exact)
        first = np.clip(np.floor(lo - 0.5), r0, r1 + 1).astype(np.int64)
        last = np.clip(np.ceil(hi - 0.5), r0 - 1, r1).astype(np.int64)
        n = np.maximum(0, last - first + 1)
        e = np.repeat(np.arange(len(au)), n)
        r = _ranges(first, n)
        y = r + 0.5
        hit = (lo[e] <= y) & (y < hi[e])
        e, r, y = e[hit], r[hit], y[hit]
        xs = au[e] + (y - av[e]) * (bu[e] - au[e]) / (bv[e] - av[e])
        k = np.clip(np.ceil(xs - 0.5), c0, c1 + 1).astype(np.int64) - c0  # centres left of the crossing
        rows, cols = r1 - r0 + 1, c1 - c0 + 2
        flips = np.bincount((r - r0) * cols + k, minlength=rows * cols).reshape(rows, cols)
        right = np.cumsum(flips[:, ::-1], axis=1)[:, ::-1]  # crossings right of each centre
        return (right[:, 1:] & 1).astype(bool)

    def _outline_points(self, poly, pu, pv, pair_edge, pair_cell) -> tuple[np.ndarray, np.ndarray]:
        """The rows of the cells an edge comes near, and which of them are inside by the exact rule.

        :func:`~dataexplore.core.selection.points_in_polygon` counts, for a point at ``(x, y)``, the
        edges with ``min(ay, by) <= y < max(ay, by)`` whose crossing at ``y`` lies right of ``x``.
        Only edges that reach the point's row can count (the cell mapping is monotone). Cut each row
        at the heights of the vertices inside it: in each such band every edge of the row counts
        for all of the band's points or for none. An edge that counts is tested exactly where it
        comes near the point's cell; elsewhere it passes wholly left or right of the cell and is
        counted by that side, through a per-band suffix count over the columns. Same comparisons,
        same formula for the crossing: the same answer, for the points near the outline only.
        """
        g = self.size
        if not len(pair_cell):
            return np.zeros(0, np.uint32), np.zeros(0, bool)
        cells = pair_cell[np.r_[True, pair_cell[1:] != pair_cell[:-1]]]
        counts = self.start[cells + 1] - self.start[cells]
        rows = self.order[_ranges(self.start[cells], counts)]
        result = np.zeros(len(rows), bool)
        p = np.take(self.xy, rows, axis=0)  # (np.take: a tenth of the time of xy[rows] here)
        x, y = p[:, 0].astype(np.float64), p[:, 1].astype(np.float64)
        lo, hi = poly.min(0), poly.max(0)
        inbox = (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1])  # as points_in_polygon filters
        if not inbox.any():
            return rows, result
        cand = slice(None) if inbox.all() else np.flatnonzero(inbox)
        x, y = x[cand], y[cand]
        ci = np.repeat(np.arange(len(cells)), counts)[cand]  # the point's cell, as an index into cells
        prow, pcol = (cells // g)[ci], (cells % g)[ci]
        # the rows that hold candidates (they come row by row: cells ascend) and the span of y in each;
        # the spans are disjoint and ascend with the row, the mapping being monotone
        seg = np.flatnonzero(np.r_[True, prow[1:] != prow[:-1]])
        crow = prow[seg]
        ylo, yhi = np.minimum.reduceat(y, seg), np.maximum.reduceat(y, seg)
        row_i = np.full(g, -1, np.int64)
        row_i[crow] = np.arange(len(crow))
        # bands: a row cut at each vertex height above its lowest point and at most its highest
        vy = np.unique(poly[:, 1])
        at = np.minimum(np.searchsorted(yhi, vy), len(crow) - 1)  # the first row reaching up to vy
        cut = (vy <= yhi[at]) & (vy > ylo[at])
        heights, per_row = vy[cut], np.bincount(at[cut], minlength=len(crow))
        band0 = np.cumsum(per_row + 1) - (per_row + 1)  # first band of each row
        nbands = int(band0[-1] + per_row[-1] + 1)
        pband = np.searchsorted(heights, y, side="right") + row_i[prow]
        # every (edge, row) with the edge reaching the row, and the bands of the row it counts in
        ax, ay = poly[:, 0], poly[:, 1]
        bx, by = np.roll(ax, -1), np.roll(ay, -1)
        band_lo, band_hi = np.minimum(ay, by), np.maximum(ay, by)
        au, av, bu, bv = pu, pv, np.roll(pu, -1), np.roll(pv, -1)
        vmin, vmax = np.minimum(av, bv), np.maximum(av, bv)
        first = np.maximum(np.clip(np.floor(vmin), 0, g - 1).astype(np.int64), crow[0])
        last = np.minimum(np.clip(np.floor(vmax), 0, g - 1).astype(np.int64), crow[-1])
        n = np.maximum(0, last - first + 1)
        e = np.repeat(np.arange(len(poly)), n)
        r = _ranges(first, n)
        i = row_i[r]
        e, r, i = e[i >= 0], r[i >= 0], i[i >= 0]
        elo, ehi = band_lo[e], band_hi[e]
        bl = np.where(elo <= ylo[i], band0[i], np.searchsorted(heights, elo, side="right") + i)
        bh = np.where(ehi > yhi[i], band0[i] + per_row[i] + 1, np.searchsorted(heights, ehi, side="right") + i)
        live = (elo <= yhi[i]) & (ehi > ylo[i]) & (bh > bl)
        e, r, bl, bh = e[live], r[live], bl[live], bh[live]
        # where the edge passes in the row (the point of it nearest the row's middle height): right
        # of column c when c < k
        dv = bv[e] - av[e]
        t = np.clip(np.where(dv != 0, (r + 0.5 - av[e]) / np.where(dv != 0, dv, 1.0), 0.5), 0.0, 1.0)
        k = np.clip(np.ceil(au[e] + t * (bu[e] - au[e]) - 0.5), 0, g).astype(np.int64)
        # edges right of each column, counted per band
        nb = bh - bl
        if nbands * (g + 1) + int(nb.sum()) > _TABLE:  # thousands of vertices in a row: the plain test
            result[cand] = points_in_polygon(np.c_[x, y], poly)  # (the same box filter: a no-op)
            return rows, result
        flips = np.bincount(_ranges(bl, nb) * (g + 1) + np.repeat(k, nb), minlength=nbands * (g + 1))
        right = np.cumsum(flips.reshape(nbands, g + 1)[:, ::-1], axis=1)[:, ::-1]
        parity = (right[pband, pcol + 1] & 1).astype(bool)
        # edges near the point's cell: tested exactly, and their side count taken back
        key = e * g + r  # ascending: e ascends, and r within an edge
        near_key = pair_edge * g + pair_cell // g
        at = np.minimum(np.searchsorted(key, near_key), max(len(key) - 1, 0))
        hit = np.flatnonzero(key[at] == near_key) if len(key) else np.zeros(0, np.int64)
        pe, pk, pbl, pbh = pair_edge[hit], k[at[hit]], bl[at[hit]], bh[at[hit]]
        pax, pay, pdx, pdy = ax[pe], ay[pe], bx[pe] - ax[pe], by[pe] - ay[pe]
        pcount = np.bincount(np.searchsorted(cells, pair_cell[hit]), minlength=len(cells))
        pstart = np.cumsum(pcount) - pcount
        na = pcount[ci]
        ends = np.cumsum(na)
        bounds = np.searchsorted(ends, np.arange(_CHUNK, int(ends[-1]), _CHUNK))
        for j0, j1 in zip(np.r_[0, bounds].tolist(), np.r_[bounds, len(x)].tolist()):
            j = np.arange(j0, j1)
            pj = np.repeat(j, na[j])
            q = _ranges(pstart[ci[j]], na[j])
            b = pband[pj]
            on = (pbl[q] <= b) & (b < pbh[q])
            pj, q = pj[on], q[on]
            xs = pax[q] + (y[pj] - pay[q]) * pdx[q] / pdy[q]
            flip = (x[pj] < xs) != (pcol[pj] < pk[q])
            parity[j] ^= (np.bincount(pj[flip] - j0, minlength=len(j)) & 1).astype(bool)
        result[cand] = parity
        return rows, result

    def _outline_pairs(self, pu: np.ndarray, pv: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Every (edge, cell) with the edge within the margin of the cell, sorted by cell.

        Row by row: the part of an edge between the heights ``r - margin`` and ``r + 1 + margin``
        spans some width, and the cells of row ``r`` that this width, widened by the margin, meets
        are the edge's cells in that row. A cell that is not among them has the whole of that part
        of the edge more than the margin to its left or to its right. None when there would be more
        than a few million pairs."""
        g, m = self.size, _MARGIN
        au, av, bu, bv = pu, pv, np.roll(pu, -1), np.roll(pv, -1)
        du, dv = bu - au, bv - av
        vmin, vmax = np.minimum(av, bv), np.maximum(av, bv)
        first = np.clip(np.floor(vmin - m), 0, g - 1).astype(np.int64)
        last = np.clip(np.floor(vmax + m), 0, g - 1).astype(np.int64)
        n = np.where((vmax + m >= 0) & (vmin - m < g), np.maximum(0, last - first + 1), 0)
        if int(n.sum()) + float(np.minimum(np.abs(du), g).sum()) > _TABLE:
            return None
        e = np.repeat(np.arange(len(au)), n)
        r = _ranges(first, n)
        # the part of the edge inside the row's band (all of it when the edge is level)
        with np.errstate(divide="ignore", invalid="ignore"):
            ta, tb = (r - m - av[e]) / dv[e], (r + 1 + m - av[e]) / dv[e]
        level = dv[e] == 0
        t0 = np.where(level, 0.0, np.clip(np.minimum(ta, tb), 0.0, 1.0))
        t1 = np.where(level, 1.0, np.clip(np.maximum(ta, tb), 0.0, 1.0))
        ua, ub = au[e] + du[e] * t0, au[e] + du[e] * t1
        lo, hi = np.minimum(ua, ub) - m, np.maximum(ua, ub) + m
        c0 = np.clip(np.floor(lo), 0, g - 1).astype(np.int64)
        c1 = np.clip(np.floor(hi), 0, g - 1).astype(np.int64)
        n = np.where((hi >= 0) & (lo < g), c1 - c0 + 1, 0)
        cell = _ranges(r * g + c0, n)  # one run of cells per (edge, row): no pair comes twice
        edge = np.repeat(e, n)
        by_cell = np.argsort(cell, kind="stable")
        return edge[by_cell], cell[by_cell]

    def density(self, x0: float, y0: float, x1: float, y1: float, size: int = 512,
                rows: np.ndarray | None = None) -> np.ndarray:
        """Counts of points on a ``size × size`` grid over the box (uint32, row 0 at the bottom).

        ``rows``: the rows inside the box when the caller has them (:meth:`box`)."""
        rows = self.box(x0, y0, x1, y1) if rows is None else rows
        out = np.zeros(size * size, np.int64)
        sx = size / (x1 - x0) if x1 > x0 else 0.0
        sy = size / (y1 - y0) if y1 > y0 else 0.0
        for start in range(0, len(rows), _CHUNK):
            p = self.xy[rows[start:start + _CHUNK]].astype(np.float64)
            cu = np.clip(np.floor((p[:, 0] - x0) * sx), 0, size - 1).astype(np.int64)
            cv = np.clip(np.floor((p[:, 1] - y0) * sy), 0, size - 1).astype(np.int64)
            out += np.bincount(cv * size + cu, minlength=size * size)
        return out.astype(np.uint32).reshape(size, size)
