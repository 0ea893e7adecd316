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

import numpy as np

from .selection import points_in_polygon

SEED = 0x9E3779B9
_M32 = np.uint64(0xFFFFFFFF)
_CHUNK = 1 << 20  # rows per pass when scanning all points (bounds the temporaries)
_MARGIN = 1e-3  # in cells: a cell closer than this to the outline is tested point by point


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
        self._exact_cells = cell > 0 and _MARGIN * cell > 1e-9 * max(mag, cell)

    # ---- the index -----------------------------------------------------------------------------
    def _uv(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
        a, b = self.start[first], self.start[last + 1]
        order = self.order
        return np.concatenate([order[i:j] for i, j in zip(a.tolist(), b.tolist()) if j > i] or
                              [np.zeros(0, np.uint32)])

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
        p = self.xy[edge]
        ok = (p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)
        return self._finish(inside, edge, ok)

    def polygon(self, polygon: np.ndarray) -> np.ndarray:
        """Rows inside ``polygon`` (even-odd rule), sorted (uint32): exactly
        ``np.flatnonzero(points_in_polygon(xy, polygon))``, found through the grid."""
        poly = np.asarray(polygon, dtype=np.float64)
        if len(poly) < 3 or not len(self.xy):
            return np.zeros(0, np.uint32)
        if not self._exact_cells:
            return np.flatnonzero(points_in_polygon(self.xy, poly)).astype(np.uint32)
        g, m = self.size, _MARGIN
        pu, pv = self._uv(poly[:, 0], poly[:, 1])
        c0, c1 = max(0, math.floor(pu.min() - m)), min(g - 1, math.floor(pu.max() + m))
        r0, r1 = max(0, math.floor(pv.min() - m)), min(g - 1, math.floor(pv.max() + m))
        if c0 > c1 or r0 > r1:
            return np.zeros(0, np.uint32)
        near = self._outline_cells(pu, pv)
        # cells no edge comes near are wholly in or out: decide by their centres (scanline parity)
        au, av = pu, pv
        bu, bv = np.roll(pu, -1), np.roll(pv, -1)
        flat = av != bv
        au, av, bu, bv = au[flat], av[flat], bu[flat], bv[flat]
        cols = np.arange(c0, c1 + 1)
        centre = cols + 0.5
        whole_in = np.zeros((r1 - r0 + 1, len(cols)), bool)
        for i, r in enumerate(range(r0, r1 + 1)):
            y = r + 0.5
            cross = (av > y) != (bv > y)
            xs = np.sort(au[cross] + (y - av[cross]) * (bu[cross] - au[cross]) / (bv[cross] - av[cross]))
            whole_in[i] = (len(xs) - np.searchsorted(xs, centre, side="right")) % 2 == 1
        cells = np.arange(r0, r1 + 1)[:, None] * g + cols[None, :]
        is_near = near[r0:r1 + 1, c0:c1 + 1]
        inside = self._rows_of(cells[whole_in & ~is_near])
        edge = self._rows_of(cells[is_near])
        ok = points_in_polygon(self.xy[edge], poly)  # the same rule, point by point, near the outline
        return self._finish(inside, edge, ok)

    def _outline_cells(self, pu: np.ndarray, pv: np.ndarray) -> np.ndarray:
        """``size × size`` mask of the cells within the margin of some polygon edge."""
        g, m = self.size, _MARGIN
        near = np.zeros((g, g), bool)
        au, av, bu, bv = pu, pv, np.roll(pu, -1), np.roll(pv, -1)
        # clip every edge to the grid (plus a cell) so a huge polygon costs no more than the grid
        t0, t1 = np.zeros(len(au)), np.ones(len(au))
        du, dv = bu - au, bv - av
        for p, q in ((-du, au + 1), (du, g + 1 - au), (-dv, av + 1), (dv, g + 1 - av)):
            with np.errstate(divide="ignore", invalid="ignore"):
                t = q / p
            t0 = np.where(p < 0, np.maximum(t0, t), t0)
            t1 = np.where(p > 0, np.minimum(t1, t), t1)
            t1 = np.where((p == 0) & (q < 0), -1.0, t1)  # parallel and outside
        keep = t0 <= t1
        au, av, du, dv, t0, t1 = au[keep], av[keep], du[keep], dv[keep], t0[keep], t1[keep]
        if not len(au):
            return near
        # cut each clipped edge into pieces at most half a cell long; mark the cells of each piece's box
        span = np.maximum(np.abs(du), np.abs(dv)) * (t1 - t0)
        k = np.maximum(1, np.ceil(span / 0.5)).astype(np.int64)
        ends = np.cumsum(k)
        first = 0
        while first < len(k):  # edges in batches of about a million pieces
            last = max(first + 1, int(np.searchsorted(ends, ends[first] - k[first] + _CHUNK, side="right")))
            kk = k[first:last]
            e = first + np.repeat(np.arange(len(kk)), kk)
            j = np.arange(len(e)) - np.repeat(np.cumsum(kk) - kk, kk)
            s0 = t0[e] + (t1[e] - t0[e]) * (j / k[e])
            s1 = t0[e] + (t1[e] - t0[e]) * ((j + 1) / k[e])
            ua, ub = au[e] + du[e] * s0, au[e] + du[e] * s1
            va, vb = av[e] + dv[e] * s0, av[e] + dv[e] * s1
            ulo = np.clip(np.floor(np.minimum(ua, ub) - m), 0, g - 1).astype(np.int64)
            uhi = np.clip(np.floor(np.maximum(ua, ub) + m), 0, g - 1).astype(np.int64)
            vlo = np.clip(np.floor(np.minimum(va, vb) - m), 0, g - 1).astype(np.int64)
            vhi = np.clip(np.floor(np.maximum(va, vb) + m), 0, g - 1).astype(np.int64)
            for cu in (ulo, uhi):
                for cv in (vlo, vhi):
                    near[cv, cu] = True
            first = last
        return near

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
