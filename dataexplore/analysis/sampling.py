"""A labeling budget spent well: which ``n`` samples to label next.

Strategies (``strategy=``), all in the embedding space of the items:

- ``"diverse"``: k-center greedy (a coreset): each pick is the candidate farthest from every
  earlier pick and from the ``already`` labelled samples, so the picks cover the space and no region
  is left far from a labelled sample. It finds the rare and the odd (outliers included).
- ``"typical"``: the most representative samples, spread: the candidates are split into ``n``
  k-means clusters (at most 1,024; k-means puts more clusters where the data are dense)
  and each cluster gives its most typical member, largest clusters first: the densest (smallest
  mean distance to its 10 nearest fellow members) of the 64 members nearest the centre. Past
  1,024 picks each cluster gives its next most typical, and so on.
- ``"uncertain"``: the smallest margin (top-1 minus top-2 of the ``probabilities`` you pass) or the
  largest entropy: the samples the model is least sure about.
- ``"uncertain-diverse"``: uncertainty spread over the space: the ``pool × n`` most uncertain
  candidates are split into ``n`` k-means clusters (at most 1,024) and the most uncertain
  of each is taken, most uncertain first; uncertainty alone tends to pick many near-copies of one
  confusion.
- ``"random"``: a seeded uniform draw (the baseline).

``balance_by=[...]`` balances the picks along several metadata axes at once, the strategy choosing
inside each cell of buckets; see :mod:`dataexplore.analysis.balance` for the buckets, the targets and
the fill rule.

**Scale.** Distances are computed in a PCA space of ``dims`` (32) float32 components fitted on at
most 20,000 candidates (``dims=None``: the full space). k-center greedy stays exact in that space
but prunes its work: the candidates are grouped into k-means cells (about 1,000 candidates each),
and after a pick only the cells that the triangle inequality says may hold a candidate now closer
to it than to every earlier pick are updated (``|c - centre| - radius`` against the cell's largest
remaining distance). Early picks touch every cell; later ones a few. BLAS runs single-threaded
while picking (thousands of small products, which threads only slow down). On two shared CPU cores
1,000 picks from one million clustered candidates of width 512 take about 5 s, 40 times less than a
plain numpy k-center (``benchmarks/sampling.py``). On vectors without any cluster structure (where no
pick is more diverse than another) the pruning saves nothing and the same pick takes about 30 s.
The projection, the k-means and the pickers live in :mod:`dataexplore.analysis.coreset`.

**Which strategy.** In the active-learning loop of ``benchmarks/loop.py`` (a pixel classifier,
a pool of 20,000) uncertainty beats random; ``"uncertain-diverse"`` was the most robust: as good as
uncertainty where uncertainty is best, and as good as random at a larger budget where uncertainty
fell behind. ``"diverse"`` alone gained no more than random there: it covers the space, which suits
a first labelling round, finding what the labelled set lacks, or curating, more than refining a model.

**More picks than candidates.** Asking for more than there are (after leaving out ``already``)
returns every candidate, in the strategy's order, with a :attr:`Sample.note` and a warning: the
order is still the answer to "what first".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..core.embeddings import Embeddings
from ..core.errors import DataexploreError
from ..core.ids import locate, rows_of
from ..core.selection import Selection, as_selection
from .balance import Axes, as_axes, balance_report, bucketize, deviations, greedy_fill
from .coreset import _KCenter, _Ordered, _ordered, _Projection
from .groups import GroupResult

STRATEGIES = ("diverse", "typical", "uncertain", "uncertain-diverse", "random")
#: PCA components the distances are computed in (None: the full space).
DIMS = 32
#: "uncertain-diverse": how many uncertain candidates per pick are spread over.
POOL = 10


class Sample(GroupResult):
    """The samples picked by :func:`sample`, in pick order.

    Attributes
    ----------
    ids : numpy.ndarray
        The picked ids, first pick first.
    table : pandas.DataFrame
        One row per pick: ``rank`` (1 = first), ``id``, ``score`` (the strategy's, see
        :attr:`score_name`), strategy columns (``margin``/``entropy``, ``cluster``, ...), the bucket
        of each binned ``balance_by`` axis (``<axis> bucket``), then the items' metadata (a column
        named like one of these is renamed ``meta_<name>``).
    report : pandas.DataFrame
        Distribution per axis bucket: candidates (``available``), picks (``picked``), the target and
        the shortfall, with shares (see :func:`dataexplore.analysis.balance.balance_report`); with no
        ``balance_by``, the ``label`` column's distribution (no target) when the items have one.
    unfilled : pandas.DataFrame
        The rows of :attr:`report` whose bucket got fewer picks than its equal share, and why.
    strategy : str
    score_name : str
        What ``score`` is: the distance to the nearest earlier pick or labelled sample at pick time
        (``diverse``), the typicality (``typical``: 1 / mean distance to the nearest members of its
        cluster), the uncertainty (``uncertain``, ``uncertain-diverse``: 1 - margin, or entropy),
        nothing (``random``).
    candidates : numpy.ndarray
        The ids sampled from (the items, less ``already``).
    note : str
        Set when fewer than ``n`` could be picked.
    """

    title = "Sample"

    def __init__(self, picked: np.ndarray, table: pd.DataFrame, groups: pd.DataFrame, members: list[np.ndarray],
                 state: "_State"):
        super().__init__(table["id"].to_numpy(dtype=object), groups, members, sources=[state.base])
        self._groups = self.table
        self.table = table
        self._state = state
        self.picked = picked
        self.strategy = state.strategy
        self.score_name = state.score_name
        self.candidates = state.ids
        self.report = state.report
        self.unfilled = state.report[state.report["shortfall"] > 0].reset_index(drop=True)
        self.note = state.note

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        head = self.table.head(8).to_string(index=False)
        return f"<Sample: {len(self)} of {len(self.candidates)} candidates by {self.strategy}>\n{head}"

    def _repr_html_(self) -> str:
        from ..core.htmlsafe import frame_html

        return frame_html(self.table.head(50), caption=f"Sample: {len(self)} of {len(self.candidates)} candidates "
                                                       f"by {self.strategy}")

    def groups(self) -> pd.DataFrame:
        """All picks (row 0), then the picks in each ``balance_by`` bucket (``axis=value``)."""
        return self._groups.copy()

    def _position(self, k: int | str) -> int:
        return GroupResult(self.ids, self._groups, self.members)._position(k)

    def exemplars(self, k: int | str = 0, size: int = 96, top: int = 8):
        """The first ``top`` picks of group ``k`` side by side, as one PIL image."""
        pos = self._position(k)
        groups = self._groups.assign(exemplars=[list(self.ids[m[:top]]) for m in self.members])
        return GroupResult(self.ids, groups, self.members, self._sources).exemplars(pos, size)

    def deviations(self) -> pd.Series:
        """Largest ``|picked share - target share|`` per balanced axis (NaN without balancing)."""
        return deviations(self.report)

    def selection(self, k: int | str | None = None, on: Any = None) -> Selection:
        """The picks (or group ``k`` of :meth:`groups`) as a :class:`~dataexplore.Selection`.

        By default it indexes the items' own ids and embeddings (the map of a Selection, the
        candidates of a search result), so it can be exported or turned into a query
        (``.to_query()``); ``on=`` an Explorer or its ids puts it on that map.

        Examples
        --------
        >>> s = sample(emb, 100)  # doctest: +SKIP
        >>> s.selection().to_query("to label")  # doctest: +SKIP
        """
        chosen = self.ids if k is None else self.group_ids(k)
        provenance = {"analysis": self.title, "strategy": self.strategy,
                      "group": "picked" if k is None else str(self._groups["name"].iloc[self._position(k)])}
        base = self._state.base
        if on is None:
            return as_selection(base.ids, rows_of(base.ids, chosen), shape="group", provenance=provenance,
                                embeddings=base)
        map_ids = np.asarray(getattr(on, "ids", on), dtype=object)
        provenance.update(getattr(on, "provenance", {}) or {})
        return as_selection(map_ids, rows_of(map_ids, chosen, missing="drop"), shape="group", provenance=provenance,
                            embeddings=getattr(on, "embeddings", None))

    def map_values(self, by: str = "rank") -> pd.Series:
        """A value per candidate, keyed by id: ``"rank"`` (pick order; not picked: no value),
        ``"picked"`` (bool) or ``"score"`` (the strategy's measure for every candidate)."""
        index = pd.Index(self.candidates, name="id")
        if by == "rank":
            rank = np.full(len(index), np.nan)
            rank[self.picked] = np.arange(1, len(self.picked) + 1)
            return pd.Series(rank, index=index, name="pick rank")
        if by == "picked":
            flag = np.zeros(len(index), bool)
            flag[self.picked] = True
            return pd.Series(flag, index=index, name="picked")
        if by == "score":
            return pd.Series(self._state.per_candidate, index=index, name=self.score_name)
        raise DataexploreError(f"map_values(by=...) must be 'rank', 'picked' or 'score', got {by!r}")

    @property
    def scores(self) -> pd.DataFrame:
        """Per candidate, indexed by id: ``picked``, ``rank`` and the strategy's measures (sortable)."""
        frame = pd.DataFrame({"picked": self.map_values("picked").to_numpy(),
                              "rank": self.map_values("rank").to_numpy()}, index=pd.Index(self.candidates, name="id"))
        for name, values in self._state.measures().items():
            frame[name] = values
        return frame

    def plot(self):
        """Share of each axis bucket among the candidates (before), the picks (after) and the target."""
        from ..core.htmlsafe import plot_text as _t
        from .plots import _go

        go = _go()
        r = self.report
        if not len(r):
            raise DataexploreError("nothing to plot: the items have no label column and no balance_by was given")
        labels = [_t(f"{a} = {v}") for a, v in zip(r["axis"], r["value"])]
        fig = go.Figure()
        fig.add_trace(go.Bar(y=labels, x=r["available_share"], orientation="h", name="candidates (before)",
                             customdata=r["available"], hovertemplate="%{y}: %{customdata} (%{x:.1%})<extra></extra>"))
        fig.add_trace(go.Bar(y=labels, x=r["picked_share"], orientation="h", name="picked (after)",
                             customdata=r["picked"], hovertemplate="%{y}: %{customdata} (%{x:.1%})<extra></extra>"))
        if r["target_share"].notna().any():
            fig.add_trace(go.Scatter(y=labels, x=r["target_share"], mode="markers", name="target",
                                     marker={"symbol": "line-ns-open", "size": 14, "color": "black"}))
        fig.update_layout(title=_t(f"{self.title} ({self.strategy}, {len(self)} picks): distribution before and after"),
                          barmode="group", xaxis_tickformat=".0%", xaxis_title="share", yaxis_autorange="reversed",
                          height=140 + 26 * len(r), margin={"l": 10, "r": 10, "t": 50, "b": 40})
        return fig


@dataclass
class _State:
    """What a :class:`Sample` keeps of the run."""

    ids: np.ndarray
    base: Embeddings
    strategy: str
    score_name: str
    per_candidate: np.ndarray
    measures: Callable[[], dict]
    report: pd.DataFrame
    note: str


def sample(items: Any, n: int, strategy: str = "diverse", *, balance_by: str | Sequence[str] | None = None,
           bins: int | dict = 4, probabilities: Any = None, uncertainty: str = "margin", already: Any = None,
           metadata: pd.DataFrame | None = None, embeddings: Embeddings | None = None, dims: int | None = DIMS,
           pool: int = POOL, seed: int = 0, progress: bool = True) -> Sample:
    """Pick ``n`` of ``items`` to label.

    Parameters
    ----------
    items : Embeddings, Selection or SearchResult
        The candidates: :class:`~dataexplore.Embeddings` (or anything
        :func:`dataexplore.embed` accepts), a :class:`~dataexplore.Selection` (its embeddings, or
        ``embeddings=``, give the vectors) or a search result (its candidates; its table's columns,
        ``score`` and ``match`` included, can be balanced by).
    n : int
        How many to pick. More than there are candidates: all of them, in order, with a note.
    strategy : {"diverse", "typical", "uncertain", "uncertain-diverse", "random"}
        See the module docs.
    balance_by : str or list of str, optional
        Columns of the items' table (or of ``metadata``) to balance the picks along, all at once.
    bins : int or dict
        Quantile buckets of numeric and datetime axes (per axis with a dict; default 4).
    probabilities : array or DataFrame, optional
        The model's class probabilities on the items, ``len(items) × classes`` in item order, or a
        DataFrame indexed by id. Needed by the uncertain strategies; otherwise shown in the table.
    uncertainty : {"margin", "entropy"}
    already : Embeddings, Selection or list of ids, optional
        Samples labelled already: left out of the candidates, and "diverse" picks away from them
        (with their vectors when they are Embeddings or a Selection with embeddings; ids are looked
        up among the items).
    metadata : DataFrame, optional
        Extra columns for the items (indexed by id, or one row per item in order).
    embeddings : Embeddings, optional
        The vectors of a Selection made without them.
    dims : int or None
        PCA components for distances (None: the full embedding space; slower).
    pool : int
        ``uncertain-diverse``: spread over the ``pool × n`` most uncertain.
    seed : int
        Same seed, same picks.
    progress : bool
        Show a progress bar for long picks.

    Returns
    -------
    Sample

    Raises
    ------
    DataexploreError
        On an unknown strategy or column, probabilities of the wrong shape, or a bad ``n``.

    Examples
    --------
    >>> import dataexplore as dx
    >>> pool = dx.embed("fashion-mnist:train:20000")  # doctest: +SKIP
    >>> s = sample(pool, 200, "diverse", balance_by=["label"])  # doctest: +SKIP
    >>> s.table.head(); s.report  # doctest: +SKIP
    >>> s.selection().to_query("next batch")  # doctest: +SKIP
    """
    if strategy not in STRATEGIES:
        raise DataexploreError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise DataexploreError(f"n must be a positive integer, got {n!r}")
    if uncertainty not in ("margin", "entropy"):
        raise DataexploreError(f"uncertainty must be 'margin' or 'entropy', got {uncertainty!r}")
    if dims is not None and (not isinstance(dims, (int, np.integer)) or isinstance(dims, bool) or dims < 1):
        raise DataexploreError(f"dims must be a positive integer or None, got {dims!r}")
    if not isinstance(pool, (int, np.integer)) or isinstance(pool, bool) or pool < 1:
        raise DataexploreError(f"pool must be a positive integer, got {pool!r}")
    it = _items(items, embeddings, metadata)
    uncertain = strategy.startswith("uncertain")
    if uncertain and probabilities is None:
        raise DataexploreError(f"strategy={strategy!r} needs probabilities= (the model's class probabilities on "
                               "the items, one row per item)")
    prob = None if probabilities is None else _probabilities(probabilities, it.ids)
    axes_names = as_axes(balance_by) if balance_by is not None else None
    unknown = [a for a in axes_names or [] if a not in it.columns]
    if unknown:
        raise DataexploreError(f"no column {unknown[0]!r} to balance by; the items' columns are {it.columns[:15]} "
                               "(metadata= adds columns)")
    done_ids, done_vectors = _already(already, it)
    keep = np.flatnonzero(~pd.Index(it.ids, dtype=object).isin(done_ids)) if len(done_ids) else np.arange(len(it.ids))
    if not len(keep):
        raise DataexploreError("nothing to sample: every item is among the already labelled ones")
    ids = it.ids[keep]
    total = len(keep)
    note = ""
    if n > total:
        note = f"asked for {n} but there are {total} candidates: all of them are returned, in {strategy} order"
        warnings.warn(note, UserWarning, stacklevel=2)
    count = int(min(n, total))
    axes: Axes | None = None
    if axes_names is not None:
        axes = bucketize(it.frame(keep, axes_names), axes_names, bins)
    elif "label" in it.columns:
        axes = bucketize(it.frame(keep, ["label"]), ["label"], bins)
    measures: dict[str, np.ndarray] = {}
    if prob is not None:
        p = prob[keep]
        margin, entropy = _margin(p), _entropy(p)
        unsure = 1 - margin if uncertainty == "margin" else entropy
        measures[uncertainty] = margin if uncertainty == "margin" else entropy
        measures["uncertainty"] = unsure
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # ships no type hints

    with threadpool_limits(1):  # thousands of small BLAS calls: threads only contend (3x slower on 2 cores)
        picked, pick_scores, picker = _pick(strategy, it, keep, count, axes if axes_names is not None else None,
                                            measures, done_vectors, dims, pool, seed, progress)
    measures.update(picker.measures())
    per_candidate, score_name = picker.per_candidate(), picker.score_name
    report = balance_report(axes, picked, balanced=axes_names is not None) if axes is not None \
        else balance_report(Axes([], np.zeros((total, 0), np.int32), [], []), picked, balanced=False)
    state = _State(ids=ids, base=it.base, strategy=strategy, score_name=score_name, per_candidate=per_candidate,
                   measures=lambda: measures, report=report, note=note)
    table = _pick_table(it, keep, picked, pick_scores, measures, axes if axes_names is not None else None)
    groups, members = _groups(table, axes if axes_names is not None else None, picked, strategy)
    return Sample(picked, table, groups, members, state)


def _pick(strategy: str, it: "_Items", keep: np.ndarray, count: int, axes: Axes | None, measures: dict,
          done_vectors: np.ndarray | None, dims: int | None, pool: int, seed: int,
          progress: bool) -> tuple[np.ndarray, np.ndarray, "_KCenter | _Ordered"]:
    """The picks (candidate positions, in order), their scores, and the strategy that made them."""
    rng = np.random.default_rng(seed)
    total = len(keep)
    picker: _KCenter | _Ordered
    if strategy in ("diverse", "typical", "uncertain-diverse"):
        project = _Projection(it.vectors, it.vector_rows(keep), dims, rng)
        z = project(it.vectors, it.vector_rows(keep))
        if strategy == "diverse":
            picker = _KCenter(z, rng, progress)
            if done_vectors is not None and len(done_vectors):
                picker.absorb(project(done_vectors, None))
        else:
            picker = _ordered(strategy, z, measures, count, pool, rng, total)
    else:
        picker = _ordered(strategy, None, measures, count, pool, rng, total)
    if axes is not None:
        scores_at: dict[int, float] = {}

        def take_in(cell: int, members: np.ndarray) -> int:
            pos, s = picker.take(members)
            scores_at[pos] = s
            return pos

        picked = greedy_fill(axes, count, take_in, progress)
        pick_scores = np.array([scores_at[p] for p in picked], np.float64)
    else:
        picked, pick_scores = picker.run(count)
    return picked, pick_scores, picker


# ---- the items ------------------------------------------------------------------------------------
@dataclass
class _Items:
    ids: np.ndarray                 # item ids (object array of str)
    vectors: np.ndarray             # the vectors the items index
    rows: np.ndarray | None         # row in ``vectors`` of each item (None: item i is row i)
    base: Embeddings                # what a selection of the picks indexes
    meta: Callable[[np.ndarray, list], pd.DataFrame]
    columns: list[str]

    def vector_rows(self, positions: np.ndarray) -> np.ndarray | None:
        if self.rows is None:
            return None if len(positions) == len(self.ids) else positions
        return self.rows[positions]

    def frame(self, positions: np.ndarray, columns: list[str] | None = None) -> pd.DataFrame:
        return self.meta(positions, columns if columns is not None else self.columns)


def _items(items: Any, embeddings: Embeddings | None, metadata: pd.DataFrame | None) -> _Items:
    if isinstance(items, Selection):
        emb = items.embeddings if items.embeddings is not None else embeddings
        if not isinstance(emb, Embeddings):
            raise DataexploreError("this selection carries no embeddings: pass embeddings= (the Embeddings of the "
                                   "map it was made on)")
        rows = rows_of(emb.ids, items.ids, message="selected sample id {id!r} is not among the embeddings "
                                                   "({count} unknown ids in all)")
        if not len(rows):
            raise DataexploreError("nothing to sample: the selection is empty")
        table, source_rows = _lazy_table(emb), emb._rows()[rows]
        it = _Items(emb.ids[rows], emb.vectors, rows, emb, lambda pos, cols: table(source_rows[pos], cols),
                    _table_columns(emb))
    elif isinstance(getattr(items, "embeddings", None), Embeddings) and isinstance(getattr(items, "table", None),
                                                                                  pd.DataFrame):
        emb, frame = items.embeddings, items.table.reset_index(drop=True)  # a search result, in rank order
        if len(frame) != len(emb):
            raise DataexploreError("a search result whose table and embeddings differ in length")

        def meta(pos: np.ndarray, cols: list) -> pd.DataFrame:
            return frame.iloc[pos][[c for c in cols if c in frame.columns]].reset_index(drop=True)

        it = _Items(emb.ids, emb.vectors, None, emb, meta, [c for c in frame.columns if c != "id"])
    else:
        from ..embedding.inputs import as_analysed

        emb = as_analysed(items)
        table = _lazy_table(emb)
        it = _Items(emb.ids, emb.vectors, None, emb, lambda pos, cols: table(emb._rows()[pos], cols),
                    _table_columns(emb))
    if metadata is not None:
        it = _with_metadata(it, metadata)
    return it


def _table_columns(emb: Embeddings) -> list[str]:
    return [c for c in (emb.samples.table.columns if emb.samples is not None else []) if c != "id"]


def _lazy_table(emb: Embeddings) -> Callable[[np.ndarray, list], pd.DataFrame]:
    """Columns of the embeddings' samples table at some source rows, without copying the whole table."""
    def get(rows: np.ndarray, cols: list) -> pd.DataFrame:
        if emb.samples is None:
            return pd.DataFrame(index=range(len(rows)))
        source = emb.samples.table
        return source.iloc[rows][[c for c in cols if c in source.columns]].reset_index(drop=True)

    return get


def _with_metadata(it: _Items, metadata: Any) -> _Items:
    if not isinstance(metadata, pd.DataFrame):
        raise DataexploreError(f"metadata= must be a pandas DataFrame, got {type(metadata).__name__}")
    frame = _aligned(metadata.drop(columns=["id"], errors="ignore"), it.ids, "metadata=")
    extra = [str(c) for c in frame.columns]
    old = it.meta

    def meta(pos: np.ndarray, cols: list) -> pd.DataFrame:
        mine = [c for c in cols if c in extra]
        out = old(pos, [c for c in cols if c not in extra])
        for c in mine:
            out[c] = frame[c].iloc[pos].to_numpy()
        return out[[c for c in cols if c in out.columns]]

    return _Items(it.ids, it.vectors, it.rows, it.base, meta, [c for c in it.columns if c not in extra] + extra)


def _aligned(frame: pd.DataFrame, ids: np.ndarray, what: str) -> pd.DataFrame:
    """``frame`` in item order: one row per item as it is (a default index), or indexed by the items' ids."""
    if isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1:
        if len(frame) != len(ids):
            raise DataexploreError(f"{what} must have one row per item ({len(ids)}) or be indexed by their ids, "
                                   f"got {len(frame)} rows")
        return frame
    index = pd.Index(np.asarray(frame.index, dtype=object).astype(str), dtype=object)
    first = ~index.duplicated()
    rows, found = locate(index[first], ids)
    if not found.all():
        raise DataexploreError(f"{what} has no row for item {ids[np.flatnonzero(~found)[0]]!r} "
                               f"({int((~found).sum())} missing in all; index it by id, or give one row per item)")
    return frame[first].iloc[rows].reset_index(drop=True)


def _already(already: Any, it: _Items) -> tuple[np.ndarray, np.ndarray | None]:
    """Ids to leave out, and vectors to keep away from (None: only the ids were given)."""
    if already is None:
        return np.zeros(0, object), None
    if isinstance(already, Embeddings):
        if already.vectors.shape[1] != it.vectors.shape[1]:
            raise DataexploreError(f"already= has vectors of width {already.vectors.shape[1]}, the items "
                                   f"{it.vectors.shape[1]}: embed both with the same model")
        return already.ids, already.vectors
    if isinstance(already, Selection) and isinstance(already.embeddings, Embeddings):
        rows = rows_of(already.embeddings.ids, already.ids)
        return already.ids, already.embeddings.vectors[rows]
    ids = np.asarray(getattr(already, "ids", already), dtype=object).astype(str)
    rows = rows_of(it.ids, ids, message="already= names sample id {id!r}, which is not among the items "
                                        "({count} unknown ids in all); pass Embeddings to use samples from elsewhere")
    return ids, it.vectors[it.rows[rows] if it.rows is not None else rows]


def _probabilities(probabilities: Any, ids: np.ndarray) -> np.ndarray:
    """Class probabilities aligned to the items (``len(ids) × classes`` float64), checked."""
    expect = f"probabilities= must be {len(ids)} rows (one per item) × 2 or more classes, or a DataFrame indexed by id"
    if isinstance(probabilities, pd.DataFrame):
        if probabilities.ndim != 2 or probabilities.shape[1] < 2:
            raise DataexploreError(f"{expect}; got shape {probabilities.shape}")
        p = _aligned(probabilities, ids, "probabilities=").to_numpy(np.float64)
    else:
        try:
            p = np.asarray(probabilities, np.float64)
        except (TypeError, ValueError):
            raise DataexploreError(f"{expect}; got {type(probabilities).__name__}") from None
    if p.ndim != 2 or p.shape[0] != len(ids) or p.shape[1] < 2:
        raise DataexploreError(f"{expect}; got shape {p.shape}")
    if not np.isfinite(p).all() or p.min() < -1e-6 or p.max() > 1 + 1e-6:
        raise DataexploreError("probabilities= must be finite numbers between 0 and 1 (class probabilities, not "
                               "logits: apply a softmax first)")
    return p


def _margin(p: np.ndarray) -> np.ndarray:
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return np.abs(top2[:, 1] - top2[:, 0])


def _entropy(p: np.ndarray) -> np.ndarray:
    q = p / np.maximum(p.sum(1, keepdims=True), 1e-12)
    return -(q * np.log(np.clip(q, 1e-12, 1))).sum(1)


# ---- the result -----------------------------------------------------------------------------------
def _pick_table(it: _Items, keep: np.ndarray, picked: np.ndarray, scores: np.ndarray, measures: dict,
                axes: Axes | None) -> pd.DataFrame:
    out = pd.DataFrame({"rank": np.arange(1, len(picked) + 1), "id": it.ids[keep[picked]], "score": scores})
    for name in ("margin", "entropy", "uncertainty", "cluster", "cluster_share"):
        if name in measures:
            out[name] = measures[name][picked]
    if axes is not None:
        for a, axis in enumerate(axes.names):
            if axes.binned[a]:
                out[f"{axis} bucket"] = axes.labels(a, picked)
    meta = it.frame(keep[picked])
    meta = meta.rename(columns={c: f"meta_{c}" for c in meta.columns if c in out.columns})
    return pd.concat([out, meta.reset_index(drop=True)], axis=1)


def _groups(table: pd.DataFrame, axes: Axes | None, picked: np.ndarray,
            strategy: str) -> tuple[pd.DataFrame, list[np.ndarray]]:
    rows = [{"name": "picked", "description": f"{len(picked)} picked by {strategy}", "count": len(picked),
             "share": 1.0}]
    members = [np.arange(len(picked))]
    if axes is not None:
        for a, axis in enumerate(axes.names):
            codes = axes.codes[picked, a]
            for v, value in enumerate(axes.values[a]):
                m = np.flatnonzero(codes == v)
                rows.append({"name": f"{axis}={value}", "description": f"picks with {axis} {value}",
                             "count": len(m), "share": len(m) / max(len(picked), 1)})
                members.append(m)
    return pd.DataFrame.from_records(rows, columns=["name", "description", "count", "share"]), members
