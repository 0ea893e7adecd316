"""How :func:`~dataexplore.analysis.sampling.sample` makes its picks in the vector space.

:mod:`dataexplore.analysis.sampling` takes the items, the probabilities and the ``balance_by`` axes
and builds the result; this module holds what works on the candidates' vectors:

- the space: :class:`_Projection`, PCA to ``dims`` float32 components fitted on at most
  ``FIT_ROWS`` candidates, in which every distance is computed;
- k-means: :func:`_assign` (each row's nearest centre, chunked), :func:`_kmeans` (Lloyd from random
  members, fitted on a subsample) and :func:`_cells` (about ``k`` cells in two levels);
- the pickers. Both answer ``take(members)`` (the next pick among some candidates, which the
  balancing fill asks for cell by cell), ``run(n)`` (the first ``n`` picks, unbalanced),
  ``per_candidate()`` (the strategy's score of every candidate), ``measures()`` (the columns the
  result shows) and ``score_name``:

  - :class:`_KCenter`: k-center greedy (``"diverse"``), exact in the projected space, its work
    pruned by cells;
  - :class:`_Ordered`, built by :func:`_ordered`: a ranking made once (``"typical"``,
    ``"uncertain"``, ``"uncertain-diverse"``, ``"random"``), each pick the best-ranked candidate
    left, with :func:`_typicality`, :func:`_rank_within` and :func:`_inverse` as helpers.

**The pruning of k-center greedy.** The candidates are grouped into k-means cells (about
``CELL_SIZE`` each, at most ``MAX_CELLS``) and stored cell by cell. Every candidate keeps its
squared distance to the nearest centre (a pick or a labelled sample), every cell the largest of
these left in it. After a pick ``c`` a cell of centre ``m`` and radius ``r`` is updated only when
``|c - m| - r`` (no member is nearer ``c`` than that) is below the cell's largest remaining distance;
otherwise the triangle inequality says none of its members came closer to a centre. The next pick is
the farthest candidate of the cell with the largest remaining distance. Early picks touch every cell;
later ones a few. The first pick, with nothing labelled, is the candidate nearest the mean.
"""

from __future__ import annotations

import numpy as np

#: Candidates the PCA and the k-means cells are fitted on, at most.
FIT_ROWS = 20_000
#: Candidates per pruning cell of k-center greedy (about), and the most cells.
CELL_SIZE, MAX_CELLS = 1000, 1024
#: Most k-means clusters of "typical" and "uncertain-diverse".
MAX_CLUSTERS = 1024
#: "typical": members nearest each cluster's centre whose density is measured, against at most
#: TYPICAL_REF members of the cluster, as the mean distance to the TYPICAL_K nearest of them.
TYPICAL_NEAR, TYPICAL_REF, TYPICAL_K = 64, 1000, 10
_CHUNK = 16384


# ---- the space ------------------------------------------------------------------------------------
class _Projection:
    """PCA to ``dims`` float32 components, fitted on at most ``FIT_ROWS`` candidates (identity when narrower)."""

    def __init__(self, vectors: np.ndarray, rows: np.ndarray | None, dims: int | None, rng: np.random.Generator):
        total = len(vectors) if rows is None else len(rows)
        self.w: np.ndarray | None = None
        if dims is None or vectors.shape[1] <= dims:
            return
        fit = np.sort(rng.choice(total, min(total, FIT_ROWS), replace=False))
        sub = vectors[fit if rows is None else rows[fit]].astype(np.float64)
        self.mean = sub.mean(0)
        _, vecs = np.linalg.eigh(np.cov(sub - self.mean, rowvar=False) if len(sub) > 1 else np.eye(sub.shape[1]))
        self.w = np.ascontiguousarray(vecs[:, ::-1][:, :dims], dtype=np.float32)
        self.shift = (self.mean @ self.w).astype(np.float32)

    def __call__(self, vectors: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        total = len(vectors) if rows is None else len(rows)
        if self.w is None:
            out = vectors if rows is None else vectors[rows]
            return np.ascontiguousarray(out, dtype=np.float32)
        z = np.empty((total, self.w.shape[1]), np.float32)
        for s in range(0, total, 65536):
            part = vectors[s:s + 65536] if rows is None else vectors[rows[s:s + 65536]]
            np.matmul(np.asarray(part, np.float32), self.w, out=z[s:s + 65536])
        z -= self.shift
        return z


def _assign(z: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centre of each row and the squared distance to it (chunked)."""
    label = np.empty(len(z), np.int64)
    d2 = np.empty(len(z), np.float32)
    half = 0.5 * (centres * centres).sum(1)
    buf = np.empty((min(_CHUNK, len(z)), len(centres)), np.float32)
    for s in range(0, len(z), _CHUNK):
        part = z[s:s + _CHUNK]
        out = buf[:len(part)]
        np.matmul(part, centres.T, out=out)
        np.subtract(half, out, out=out)  # |c|²/2 - x·c: the nearest centre has the smallest
        j = out.argmin(1)
        label[s:s + len(part)] = j
        d2[s:s + len(part)] = np.maximum(2 * out[np.arange(len(part)), j] + (part * part).sum(1), 0)
    return label, d2


def _kmeans(z: np.ndarray, k: int, rng: np.random.Generator, iters: int = 8, rows: int | None = None) -> np.ndarray:
    """k-means centres (Lloyd from random members) fitted on at most ``rows`` rows (default
    ``max(FIT_ROWS, 40 k)``)."""
    k = int(min(k, len(z)))
    rows = max(FIT_ROWS, 40 * k) if rows is None else max(rows, k)
    fit = z if len(z) <= rows else z[np.sort(rng.choice(len(z), rows, replace=False))]
    centres = fit[np.sort(rng.choice(len(fit), k, replace=False))].astype(np.float32)
    for _ in range(iters):
        label, _ = _assign(fit, centres)
        sizes = np.bincount(label, minlength=k)
        order = np.argsort(label, kind="stable")
        ok = sizes > 0
        sums = np.add.reduceat(fit[order], np.r_[0, np.cumsum(sizes)[:-1]][ok], axis=0, dtype=np.float64)
        centres[ok] = (sums / sizes[ok, None]).astype(np.float32)
    return centres


# ---- the strategies -------------------------------------------------------------------------------
class _Ordered:
    """A strategy that ranks the candidates once: each pick is the best-ranked one left."""

    def __init__(self, order: np.ndarray, score: np.ndarray, score_name: str, measures: dict | None = None):
        self.order = order
        self.priority = _inverse(order)
        self.score = np.asarray(score, np.float64)
        self.score_name = score_name
        self._measures = measures or {}

    def take(self, members: np.ndarray) -> tuple[int, float]:
        if not len(members):
            return -1, np.nan
        pos = int(members[np.argmin(self.priority[members])])
        return pos, float(self.score[pos])

    def run(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.order[:n], self.score[self.order[:n]]

    def per_candidate(self) -> np.ndarray:
        return self.score

    def measures(self) -> dict:
        return self._measures


def _ordered(strategy: str, z: np.ndarray | None, measures: dict, n: int, pool: int, rng: np.random.Generator,
             total: int) -> _Ordered:
    """The ranking of a strategy other than "diverse"."""
    if strategy == "random":
        return _Ordered(rng.permutation(total), np.full(total, np.nan), "random")
    if strategy == "uncertain":
        unsure = measures["uncertainty"]
        return _Ordered(np.argsort(-unsure, kind="stable"), unsure, "uncertainty")
    assert z is not None
    if strategy == "typical":
        k = min(n, MAX_CLUSTERS, total)
        label, d2 = _assign(z, _kmeans(z, k, rng))
        sizes = np.bincount(label, minlength=k)
        near = _rank_within(label, d2)  # 0: the member nearest its cluster's centre
        typicality = _typicality(z, label, near, rng)
        scored = np.isfinite(typicality)
        rank = np.where(scored, _rank_within(label, np.where(scored, -typicality, np.inf)), near)
        order = np.lexsort((d2, -sizes[label], rank, ~scored))
        return _Ordered(order, typicality, "typicality", {"cluster": label, "cluster_share": sizes[label] / total,
                                                          "typicality": typicality})
    unsure = measures["uncertainty"]
    top = np.argsort(-unsure, kind="stable")[:min(total, pool * n)]
    k = min(n, MAX_CLUSTERS, len(top))
    label, _ = _assign(z[top], _kmeans(z[top], k, rng))
    rank = _rank_within(label, -unsure[top])
    cluster = np.full(total, -1)
    cluster[top] = label
    order_top = top[np.lexsort((-unsure[top], rank))]
    rest = np.setdiff1d(np.arange(total), top, assume_unique=True)
    rest = rest[np.argsort(-unsure[rest], kind="stable")]
    return _Ordered(np.r_[order_top, rest], unsure, "uncertainty", {"cluster": cluster})


def _typicality(z: np.ndarray, label: np.ndarray, near: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``1 / mean distance to the TYPICAL_K nearest members of the cluster`` for the TYPICAL_NEAR members
    of each cluster nearest its centre (NaN for the others), against at most TYPICAL_REF members."""
    out = np.full(len(z), np.nan)
    order = np.argsort(label, kind="stable")
    for members in np.split(order, np.cumsum(np.bincount(label))[:-1]):
        if len(members) < 2:
            out[members] = np.inf if len(members) else out[members]
            continue
        cand = members[near[members] < TYPICAL_NEAR]
        ref = members if len(members) <= TYPICAL_REF else \
            np.union1d(cand, rng.choice(members, TYPICAL_REF, replace=False))
        a, b = z[cand], z[ref]
        d = np.sqrt(np.maximum((a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :], 0))
        k = min(TYPICAL_K, len(ref) - 1)
        nearest = np.partition(d, k, axis=1)[:, 1:k + 1]  # column 0: itself, at distance 0
        out[cand] = 1.0 / (nearest.mean(1) + 1e-9)
    return out


def _rank_within(label: np.ndarray, key: np.ndarray) -> np.ndarray:
    """0 for the member of each label with the smallest ``key``, 1 for the next, ..."""
    order = np.lexsort((key, label))
    starts = np.r_[0, np.cumsum(np.bincount(label))[:-1]]
    rank = np.empty(len(label), np.int64)
    rank[order] = np.arange(len(label)) - starts[label[order]]
    return rank


def _inverse(order: np.ndarray) -> np.ndarray:
    out = np.empty(len(order), np.int64)
    out[order] = np.arange(len(order))
    return out


def _cells(z: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """About ``k`` k-means cells in two levels (``sqrt(k)`` coarse cells, each split in proportion to
    its size), so assigning N rows costs ``N × 2·sqrt(k)`` distances instead of ``N × k``."""
    if k <= 1:
        return np.zeros(len(z), np.int64)
    top = int(np.ceil(np.sqrt(k)))
    coarse, _ = _assign(z, _kmeans(z, top, rng, iters=4, rows=40 * top))
    label = np.empty(len(z), np.int64)
    offset = 0
    for members in np.split(np.argsort(coarse, kind="stable"), np.cumsum(np.bincount(coarse))[:-1]):
        if not len(members):
            continue
        part = z[members]
        fine = max(1, int(round(k * len(members) / len(z))))
        sub = _assign(part, _kmeans(part, fine, rng, iters=4, rows=40 * fine))[0] if fine > 1 \
            else np.zeros(len(part), np.int64)
        label[members] = offset + sub
        offset += fine
    return label


class _KCenter:
    """k-center greedy in ``z`` with the work pruned by cells (see the module docs)."""

    score_name = "distance"

    def __init__(self, z: np.ndarray, rng: np.random.Generator, progress: bool = True):
        total = len(z)
        label = _cells(z, int(np.clip(total // CELL_SIZE, 1, MAX_CELLS)), rng)
        k = int(label.max()) + 1 if total else 1
        self.order = np.argsort(label, kind="stable")     # cell order -> candidate
        self.where = _inverse(self.order)                 # candidate -> cell order
        self.z = np.ascontiguousarray(z[self.order])
        self.sq = (self.z * self.z).sum(1)
        label = label[self.order]
        sizes = np.bincount(label, minlength=k)
        self.starts = np.r_[0, np.cumsum(sizes)].astype(np.int64)
        self.cell = label
        self.centres = np.stack([self.z[s:e].mean(0) if e > s else np.zeros(z.shape[1], np.float32)
                                 for s, e in zip(self.starts[:-1], self.starts[1:])]).astype(np.float32)
        self.radius = np.zeros(k)
        for c in np.flatnonzero(sizes):
            s, e = self.starts[c], self.starts[c + 1]
            self.radius[c] = np.sqrt(max(float(((self.z[s:e] - self.centres[c]) ** 2).sum(1).max()), 0.0))
        self.nonempty = sizes > 0
        self.mind = np.full(total, np.inf, np.float32)   # squared distance to the nearest centre; -1 = picked
        self.cellmax = np.where(self.nonempty, np.inf, -1.0)
        self.central = np.argmin(((self.z - self.z.mean(0)) ** 2).sum(1)) if total else 0
        self.progress = progress
        self.empty = True

    def absorb(self, points: np.ndarray, block: int = 256) -> None:
        """Make ``points`` centres: every candidate's distance to its nearest centre shrinks."""
        points = np.ascontiguousarray(points, np.float32)
        for s in range(0, len(points), block):
            self._update(points[s:s + block])
        self.empty = self.empty and not len(points)

    def _update(self, c: np.ndarray) -> None:
        csq = (c * c).sum(1)
        dc = np.sqrt(np.maximum((self.centres ** 2).sum(1)[:, None] - 2 * self.centres @ c.T + csq[None, :], 0))
        near = (dc - self.radius[:, None]) < self.cellmax[:, None]
        near &= self.nonempty[:, None]
        cells = np.flatnonzero(near.any(1))
        for run in np.split(cells, np.flatnonzero(np.diff(cells) != 1) + 1) if len(cells) else []:
            use = near[run].any(0)  # consecutive cells are one slice of the candidates
            s, e = int(self.starts[run[0]]), int(self.starts[run[-1] + 1])
            for a in range(s, e, _CHUNK):
                self._lower(a, min(a + _CHUNK, e), c[use], csq[use])
            top = np.maximum.reduceat(self.mind[s:e], self.starts[run] - s).astype(np.float64)
            self.cellmax[run] = np.where(top >= 0, np.sqrt(np.maximum(top, 0)), -1.0)

    def _lower(self, s: int, e: int, c: np.ndarray, csq: np.ndarray) -> None:
        if len(c) == 1:
            d2 = self.sq[s:e] - 2 * (self.z[s:e] @ c[0]) + csq[0]
        else:
            d2 = (self.sq[s:e, None] - 2 * (self.z[s:e] @ c.T) + csq[None, :]).min(1)
        np.maximum(d2, 0, out=d2)  # rounding: a copy of a centre is at 0, never below (-1 marks the picks)
        np.minimum(self.mind[s:e], d2, out=self.mind[s:e])

    def _pick(self, q: int) -> float:
        """Make cell-order position ``q`` a centre; returns its distance to the nearest earlier one."""
        before = float(self.mind[q])
        self.mind[q] = -1.0
        self._update(self.z[q:q + 1])
        j = self.cell[q]
        s, e = self.starts[j], self.starts[j + 1]
        top = float(self.mind[s:e].max())
        self.cellmax[j] = np.sqrt(top) if top >= 0 else -1.0
        self.empty = False
        return float(np.sqrt(max(before, 0.0))) if np.isfinite(before) else np.nan

    def take(self, members: np.ndarray | None) -> tuple[int, float]:
        """The next pick among ``members`` (candidate positions; None: all): the farthest from every centre."""
        if members is not None:
            if not len(members):
                return -1, np.nan
            where = self.where[members]
            if self.empty:
                q = int(where[np.argmin(((self.z[where] - self.z[self.central]) ** 2).sum(1))])
            else:
                q = int(where[np.argmax(self.mind[where])])
        elif self.empty:
            q = int(self.central)
        else:
            j = int(np.argmax(self.cellmax))
            q = int(self.starts[j] + np.argmax(self.mind[self.starts[j]:self.starts[j + 1]]))
        return int(self.order[q]), self._pick(q)

    def run(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        from tqdm.auto import tqdm

        picks, scores = np.empty(n, np.int64), np.empty(n)
        for i in tqdm(range(n), desc="diverse pick", unit="pick", disable=not self.progress or n < 500, leave=False):
            picks[i], scores[i] = self.take(None)
        return picks, scores

    def per_candidate(self) -> np.ndarray:
        """Each candidate's distance to its nearest pick or labelled sample (0 for the picks), in candidate order."""
        d = np.sqrt(np.maximum(self.mind, 0)).astype(np.float64)
        d[~np.isfinite(d)] = np.nan
        return d[self.where]

    def measures(self) -> dict:
        return {"distance": self.per_candidate()}
