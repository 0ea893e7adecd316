"""The Explorer widget: a WebGL map in the notebook whose selections are Python values at once.

The widget only displays and forwards: coordinates, colours and selections come from the compute
core (:mod:`dataexplore.embedding.local`, :mod:`dataexplore.projection`, :mod:`dataexplore.core.selection`);
the browser sends selection shapes and the kernel computes exact rows.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import anywidget
import numpy as np
import pandas as pd
import traitlets

from ..core.errors import DataexploreError
from ..core.ids import rows_of
from ..core.selection import RowIds, Selection, as_selection
from . import charts as charts_mod, state
from .protocol import (
    ExportRequest,
    FilterRequest,
    HoverRequest,
    PageRequest,
    ReadyRequest,
    SelectRequest,
    ViewRequest,
    parse_request,
)

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
MAX_POINTS = 2_000_000  # larger maps are drawn as a sample and a density layer that refine on zoom
LOD_POINTS = 1_000_000  # points the browser holds at once for such maps


@dataclass(frozen=True)
class Exporter:
    """One entry of the export menu: its ``label`` and ``run(selection, folder, name, overwrite=...,
    **kwargs) -> path`` that writes the selection there (the widget never writes files itself)."""

    label: str
    run: Callable[..., Path]


class Explorer(anywidget.AnyWidget):
    """A map of a dataset: pan, zoom, hover for images, lasso/box/click to select.

    Parameters
    ----------
    xy : array-like
        ``N×2`` map coordinates (or a fitted :class:`~dataexplore.Projection`).
    ids : sequence of str, optional
        Sample ids aligned to ``xy`` (default: the projection's, else ``"0".."N-1"``).
    table : pandas.DataFrame, optional
        Metadata aligned to ``xy`` (``label`` and any columns for ``color`` and ``tooltip``).
    samples : Samples, optional
        Where the images are, for thumbnails; ``rows`` maps each point to its row in ``samples``.
    rows : array-like of int, optional
    color : str or array-like, optional
        A column of ``table`` or values aligned to ``xy``: categorical values get a palette and a
        legend (click a class to select it), numbers a colour bar.
    tooltip : sequence of str, optional
        Extra ``table`` columns to show when hovering.
    height : int
        Height of the map in pixels.
    embeddings : Embeddings, optional
        The vectors behind the map, aligned to ``xy`` (default: a Projection's own); they let a
        selection become a query (:meth:`Selection.to_query`) and the export menu work.
    export_dir : path
        Where the widget's export menu writes queries and labeling batches (default
        ``dataexplore-exports`` in the working directory).
    exporters : mapping of str to Exporter, optional
        What the export menu offers, by key (the widget runs them, it writes nothing itself).
        ``dx.Explorer`` hands in queries and the labeling formats (see :mod:`dataexplore.app`);
        none here means no export menu.
    max_points : int
        Maps with more points than this are not drawn point by point: the browser gets a stable
        random sample of ``lod_points`` points and a density layer of all of them, and asks the
        kernel for the points of the view as you pan and zoom (all of them once they fit).
        Selections stay exact: lasso, box and legend classes are applied to every point here.
    lod_points : int
        How many points the browser holds at once above ``max_points`` (at most ``max_points``).

    Attributes
    ----------
    selection : Selection
        The current selection; observe it with ``explorer.observe(fn, names="selection")`` or
        :meth:`on_select`.
    filters : dict
        The filters set on the charts under the map (see :meth:`charts`), by chart name.

    Examples
    --------
    >>> import dataexplore as dx
    >>> ex = dx.explore("fashion-mnist:test", model="fashion-tiny", color="label")  # doctest: +SKIP
    >>> ex  # doctest: +SKIP
    >>> ex.selection.ids[:5]  # after a lasso  # doctest: +SKIP
    """

    _esm = STATIC / "explorer.js"
    _css = STATIC / "explorer.css"

    height = traitlets.Int(560).tag(sync=True)
    mode = traitlets.Unicode("lasso").tag(sync=True)
    color_info = traitlets.Dict().tag(sync=True)
    exports = traitlets.List(traitlets.List(traitlets.Unicode())).tag(sync=True)  # [[key, label], ...] of the menu
    selection = traitlets.Instance(Selection, allow_none=False)

    def __init__(self, xy: Any, *, ids: Sequence[str] | None = None, table: pd.DataFrame | None = None,
                 samples: Any = None, rows: Any = None, color: Any = None, tooltip: Sequence[str] = (),
                 height: int = 560, provenance: dict | None = None, embeddings: Any = None,
                 export_dir: str | Path = "dataexplore-exports", max_points: int = MAX_POINTS,
                 lod_points: int = LOD_POINTS, exporters: Mapping[str, Exporter] | None = None, **kwargs):
        if hasattr(xy, "embedding_"):  # a fitted Projection
            embeddings = getattr(xy, "embeddings_", None) if embeddings is None else embeddings
            ids = xy.ids_ if ids is None else ids
            provenance = {**(provenance or {}), "projection": xy.get_params()}
            xy = xy.embedding_
        xy = np.ascontiguousarray(np.asarray(xy, dtype=np.float32))
        if xy.ndim != 2 or xy.shape[1] != 2 or (len(xy) == 0 and xy.size):
            raise DataexploreError(f"map coordinates must be N×2, got shape {xy.shape}")
        if not np.isfinite(xy).all():
            bad = int(np.flatnonzero(~np.isfinite(xy).all(1))[0])
            raise DataexploreError(f"map coordinates contain NaN or inf at row {bad}")
        n = len(xy)
        if len(xy) >= 2**32:
            raise DataexploreError("at most 2**32 - 1 points")
        for name, value in (("max_points", max_points), ("lod_points", lod_points)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise DataexploreError(f"{name} must be a positive integer, got {value!r}")
        lod = n > max_points
        point_ids: Any  # the ids of the points in order: an object array, or RowIds made on reading
        if ids is None:  # a big map's ids "0".."N-1" are made only when read
            point_ids = RowIds(n) if lod else np.arange(n).astype(str).astype(object)
        else:
            point_ids = np.asarray(ids, dtype=object)
        if len(point_ids) != n:
            raise DataexploreError(f"mismatched lengths: {len(point_ids)} ids for {n} points")
        if table is None:
            table = pd.DataFrame(index=pd.RangeIndex(n)) if isinstance(point_ids, RowIds) \
                else pd.DataFrame({"id": point_ids})
        if len(table) != n:
            raise DataexploreError(f"mismatched lengths: {len(table)} table rows for {n} points")
        if embeddings is not None and (len(embeddings) != n or not np.array_equal(embeddings.ids, point_ids)):
            raise DataexploreError("embeddings must be aligned to the map's points (same ids in the same order)")
        super().__init__(height=height, **kwargs)
        self.embeddings = embeddings
        self.export_dir = Path(export_dir)
        self.exporters = dict(exporters or {})
        self.exports = [[key, e.label] for key, e in self.exporters.items()]
        self.xy = xy
        self.ids = point_ids
        self.table = table.reset_index(drop=True)
        self.samples = samples
        self._rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.max_points, self.lod_points = int(max_points), int(min(lod_points, max_points))
        self._lod = lod
        self._grid: Any = None  # the lod.PointGrid of a big map, made when first needed
        self._overview: np.ndarray | None = None
        self._shown = np.zeros(0, np.uint32)  # rows the browser was last sent (big maps), for which request
        self._shown_for: str | None = None
        self.tooltip_fields = [c for c in ["label", *tooltip] if c in self.table.columns and c != "id"]
        self.provenance = dict(provenance or {})
        self._saved: dict[str, Selection] = {}
        self._thumbs: OrderedDict[tuple[int, bool], bytes] = OrderedDict()
        self._page = 0
        self._seq = 0
        self.selection = self._selection([], shape="clear")
        self._codes = np.zeros(n, dtype=np.uint16)
        self._result: Any = None
        self._result_colored = False
        self._groups: list[np.ndarray] = []
        self._group_names: list[str] = []
        self._active_group = -1
        self._groups_msg: dict | None = None
        self._handlers: dict[str, Callable[[Any], None]] = {
            "ready": self._on_ready, "view": self._on_view, "select": self._on_select, "hover": self._on_hover,
            "page": self._on_page, "export": self._on_export, "filter": self._on_filter}
        self._cross: charts_mod.Crossfilter | None = None  # the linked charts under the map, if any
        self._charts_version = 0
        self.set_color(color)
        self.on_msg(self._on_message)

    # ---- public API -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.xy)

    @property
    def rows(self) -> np.ndarray:
        """Each point's row in ``samples`` (the point's own position when none were given)."""
        return np.arange(len(self.xy)) if self._rows is None else self._rows

    @property
    def shown(self) -> Any:
        """The analysis result :meth:`show` put on the map (``None`` when none is shown)."""
        return self._result

    @property
    def level_of_detail(self) -> bool:
        """True when the map has more than ``max_points`` points: the browser draws a sample that
        refines as you zoom, over a density layer of all points; selections stay exact."""
        return self._lod

    @traitlets.validate("mode")
    def _check_mode(self, proposal):
        if proposal["value"] not in ("lasso", "box", "pan"):
            raise traitlets.TraitError("mode must be 'lasso', 'box' or 'pan'")
        return proposal["value"]

    def set_color(self, color: Any, *, no_value: str = "class") -> None:
        """Colour points by a ``table`` column or by values aligned to the points (None: one colour).

        Parameters
        ----------
        color : str, array-like or None
            A ``table`` column name, or one value per point.
        no_value : {"class", "grey"}
            Missing values (None/NaN) of categorical colours become a ``(missing)`` class, or are
            drawn grey outside the legend (what :meth:`show` uses for points an analysis did not
            cover). Missing numbers are always grey and do not stretch the colour bar.
        """
        if no_value not in ("class", "grey"):
            raise DataexploreError("no_value must be 'class' or 'grey'")
        self._result_colored = False  # show() sets it again when the colours are a result's
        if color is None:
            self._codes, self.color_info = np.zeros(len(self.xy), np.uint16), {"kind": "none"}
        else:
            values, name = state.color_values(color, self.table, len(self.xy))
            self._codes, info = state.color_codes(values, name, no_value=no_value)
            self.color_info = dict(info)
        if not self._lod:
            self.send({"type": "colors"}, buffers=[self._codes.tobytes()])
        elif self._shown_for is not None:  # the browser holds a sample: its colours, for the view that asked
            self.send({"type": "colors", "sample": self._shown_for}, buffers=[self._codes[self._shown].tobytes()])

    @property
    def color_codes(self) -> np.ndarray:
        """Each point's colour code (see :attr:`color_info` for what the codes mean); read-only."""
        codes = self._codes.view()
        codes.flags.writeable = False
        return codes

    def select(self, ids: Sequence[str] | Selection | None) -> Selection:
        """Select samples by id (or restore a saved :class:`Selection`); the view shows it."""
        if ids is None:
            rows = np.zeros(0, np.uint32)
        elif isinstance(ids, Selection):
            rows = ids.indices
        else:
            rows = rows_of(self.ids, ids, message="unknown sample id {id!r} ({count} unknown ids in all)")
        self._set_selection(self._selection(rows, shape="ids"))
        return self.selection

    def show(self, result: Any, color: bool = True, by: str | None = None) -> None:
        """Show an analysis result on the map: colour by it and list its groups beside the map.

        Clicking a row of the list selects that group's points (Shift adds, Alt subtracts), like
        :meth:`select_group` does from Python. Points the result gives no value (ids missing from
        ``map_values()``, or NaN/None there) are grey "no value": not a class of the legend, and
        outside the range of the colour bar.

        Parameters
        ----------
        result : Coverage, ConceptCoverage, FailureSlices, Clusters or None
            Anything with ``groups()`` (a table with ``name``, ``description``, ``count`` and more
            columns, one row per group), ``group_ids(k)`` (the sample ids of group ``k``),
            ``map_values()`` (a Series keyed by sample id: numbers for a colour bar, text, booleans
            or integers for classes) and ``title`` (see :mod:`dataexplore.analysis`). Ids the map
            does not hold are ignored. ``None`` removes the list (and the colouring it made).
        color : bool
            Colour the points by ``result.map_values()`` (False: list the groups only, and drop the
            colours of a result shown before).
        by : str, optional
            Passed to ``map_values`` (e.g. ``"correct"`` for failure slices).

        Examples
        --------
        >>> fs = dx.failures(emb, correct=predicted == emb.table["label"])  # doctest: +SKIP
        >>> ex = dx.Explorer(dx.project(emb), table=emb.table, samples=emb.samples, rows=emb.rows)  # doctest: +SKIP
        >>> ex.show(fs)  # doctest: +SKIP
        >>> ex.select_group(0).ids[:5]  # doctest: +SKIP
        """
        if result is None:
            if self._result_colored:
                self.set_color(None)
            self._result, self._groups, self._group_names = None, [], []
            self._groups_msg = {"type": "groups", "clear": True, "title": "", "columns": [], "rows": [],
                                "on_map": []}
            self.send(self._groups_msg)
            return
        for attr in ("groups", "group_ids", "map_values"):
            if not callable(getattr(result, attr, None)):
                raise DataexploreError(f"cannot show {type(result).__name__}: it has no {attr}() method")
        table = result.groups()
        if "name" not in table.columns:
            raise DataexploreError(f"cannot show {type(result).__name__}: its groups() table has no 'name' column")
        lookup = pd.Index(self.ids.astype(str))
        groups = []
        for k in range(len(table)):  # ids the map does not hold are ignored
            rows = rows_of(lookup, result.group_ids(k), missing="drop")
            groups.append(np.unique(rows).astype(np.uint32))
        if color:
            self.set_color(state.aligned(result.map_values(by) if by is not None else result.map_values(), lookup),
                           no_value="grey")
        elif self._result_colored:  # the colours of the result shown before would mislead
            self.set_color(None)
        self._groups, self._group_names = groups, table["name"].astype(str).tolist()
        self._result, self._result_colored = result, bool(color)
        columns, cells = state.group_rows(table)
        self._active_group = -1
        self._groups_msg = {"type": "groups", "title": str(getattr(result, "title", type(result).__name__)),
                            "columns": columns, "rows": cells, "on_map": [int(len(g)) for g in self._groups]}
        self.send(self._groups_msg)

    def select_group(self, k: int) -> Selection:
        """Select group ``k`` of the shown result (row ``k`` of its list); the map shows it.

        Parameters
        ----------
        k : int
            The group's position in ``result.groups()``.

        Returns
        -------
        Selection
            The group's points on this map (shape ``"group"``; the provenance names the group
            and the analysis).

        Examples
        --------
        >>> ex.show(fs)  # doctest: +SKIP
        >>> ex.select_group(0).provenance["group"]  # doctest: +SKIP
        'slice 1'
        """
        if not self._groups:
            raise DataexploreError("no analysis result is shown: call show(result) first")
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 0 <= k < len(self._groups):
            raise DataexploreError(f"group {k!r} out of range 0..{len(self._groups) - 1}")
        self._set_selection(self._group_selection(int(k), self._groups[int(k)]), group=int(k))
        return self.selection

    def _group_selection(self, k: int, rows: np.ndarray) -> Selection:
        provenance = {**self.provenance, "analysis": str(getattr(self._result, "title", "")),
                      "group": self._group_names[k]}
        return self._selection(rows, shape="group", provenance=provenance)

    def to_html(self, path: str | Path, *, thumbnails: bool = False, title: str | None = None,
                overwrite: bool = False) -> Path:
        """Save this map as one self-contained HTML file that opens without a kernel.

        Pan, zoom, hover, lasso, box and legend selection work in the file, and the viewer can
        download the selected ids as CSV or JSON. See :func:`dataexplore.widget.share.to_html`. A map of
        more than ``max_points`` points is refused (the file has no kernel): share a subsample.

        Examples
        --------
        >>> ex.to_html("map.html", thumbnails=True)  # doctest: +SKIP
        """
        from .share import to_html

        return to_html(self, path, thumbnails=thumbnails, title=title, overwrite=overwrite)

    def on_select(self, callback: Callable[[Selection], Any]) -> None:
        """Call ``callback(selection)`` after every selection change."""
        self.observe(lambda change: callback(change["new"]), names="selection")

    def export(self, name: str, what: str = "query", *, folder: str | Path | None = None, overwrite: bool = False,
               **kwargs) -> Path:
        """Save the current selection with one of :attr:`exporters` (what the export menu does).

        Parameters
        ----------
        name : str
            The export's name; the exporter makes a safe file name from it.
        what : str
            A key of :attr:`exporters`. ``dx.Explorer`` offers ``"query"`` (writes
            ``<folder>/<name>.dxq``, see :class:`~dataexplore.Query`, and keeps the query in
            ``queries``) and the labeling formats ``"label-studio"``, ``"coco"``, ``"csv"`` (a batch
            folder ``<folder>/<name>-<format>``, see :func:`dataexplore.export_labeling`).
        folder : path, optional
            Default: :attr:`export_dir`.
        overwrite : bool
            Replace an existing export of that name.
        **kwargs
            Passed to the exporter (for labeling: ``classes``, ``predictions``, ...).

        Returns
        -------
        pathlib.Path

        Examples
        --------
        >>> ex.export("odd shoes", "label-studio")  # doctest: +SKIP
        PosixPath('dataexplore-exports/odd_shoes-label-studio')
        """
        if not isinstance(name, str) or not name.strip():
            raise DataexploreError("give the export a name")
        if what not in self.exporters:
            offered = ", ".join(self.exporters) or "nothing (no exporters were handed in)"
            raise DataexploreError(f"cannot export as {what!r}: this map exports {offered}")
        folder = Path(folder) if folder is not None else self.export_dir
        return self.exporters[what].run(self.selection, folder, name.strip(), overwrite=overwrite, **kwargs)

    def save_selection(self, name: str) -> Selection:
        """Keep the current selection under ``name`` (see :attr:`selections`)."""
        if not name or not isinstance(name, str):
            raise DataexploreError("a selection name must be a non-empty string")
        self._saved[name] = self.selection
        return self.selection

    @property
    def selections(self) -> dict[str, Selection]:
        """Saved selections by name."""
        return dict(self._saved)

    # ---- linked views ---------------------------------------------------------------------------
    def charts(self, columns: Any, *, bins: int = charts_mod.BINS, top: int = charts_mod.TOP) -> None:
        """Show one small chart per column under the map, linked to it and to each other.

        Text, booleans, categories and integers of few values get bars of their ``top`` most
        common values (then ``(other)`` and ``(missing)``); floats and integers of many values a
        histogram of ``bins`` equal bins over their finite range (missing and non-finite values
        counted apart). Every count is computed here, exactly, over all points.

        Clicking bars (Shift or Ctrl adds or removes a bar) or brushing a range of a histogram
        (the brush snaps to bin edges) sets that chart's filter. Filters of several charts combine
        (AND) and the rows passing all of them become :attr:`selection` (shape ``"filter"``; its
        provenance names the filters). While filters are set, each chart highlights the rows
        passing the *other* charts' filters (the crossfilter rule); without filters, the charts
        highlight the map's selection. A selection made on the map (lasso, box, click, legend,
        :meth:`select`) clears the filters; a chart's "×" button removes its filter, Esc all.

        Parameters
        ----------
        columns : sequence or mapping
            Each item: a ``table`` column name; a pandas Series keyed by sample id (e.g. an
            analysis result's ``map_values()``; points it lacks have no value) or indexed
            ``0..N-1``; an analysis result (its ``map_values()``); or a ``(name, values)`` pair
            aligned to the points. A mapping gives ``{name: values}``. Empty: no charts.
        bins : int
            Bins of each histogram (1 to 200).
        top : int
            Bars of each bar chart before ``(other)`` (1 to 100).

        Examples
        --------
        >>> ex = dx.explore("fashion-mnist:test", model="fashion-tiny")  # doctest: +SKIP
        >>> ex.charts(["label", ("confidence", confidence)])  # doctest: +SKIP
        >>> ex.filter("label", categories=["Bag"])  # or click the bar  # doctest: +SKIP
        >>> ex.selection.provenance["filters"]  # doctest: +SKIP
        {'label': {'categories': ['Bag']}}
        """
        made = charts_mod.make_charts(columns, self.table, self.ids, len(self.xy), bins=bins, top=top)
        old_filters = self._cross.describe() if self._cross and self._cross.filters else None
        self._cross = charts_mod.Crossfilter(made) if made else None
        self._charts_version += 1
        self._send_charts()
        if old_filters:  # the selection they made stays, as rows, and says which filters made it
            self._set_selection(self._selection(self.selection.indices, shape="combined",
                                                provenance={**self.provenance, "filters": old_filters}))

    @property
    def filters(self) -> dict[str, dict[str, list]]:
        """The charts' filters by chart name: ``{"categories": [...]}`` or ``{"range": [lo, hi]}``."""
        return self._cross.describe() if self._cross else {}

    def filter(self, chart: str | int, *, categories: Sequence[Any] | None = None,
               range: Sequence[float] | None = None) -> Selection:
        """Set (or, with neither ``categories`` nor ``range``, remove) a chart's filter, as a click
        or brush in the chart does; the selection becomes the rows passing every filter.

        Parameters
        ----------
        chart : str or int
            The chart's name (or position).
        categories : sequence, optional
            Bars of a bar chart to keep, by name (``"(other)"`` and ``"(missing)"`` included).
        range : (float, float), optional
            ``(lo, hi)`` of a histogram: keeps ``lo <= value < hi`` (and ``value == hi`` when
            ``hi`` is the largest value).

        Returns
        -------
        Selection
        """
        if self._cross is None:
            raise DataexploreError("no charts are shown: call charts([...]) first")
        self._apply_filter(*self._cross.by_name(chart, categories, range))
        return self.selection

    def clear_filters(self) -> Selection:
        """Remove every chart's filter (and so the selection they made)."""
        if self._cross is not None and self._cross.filters:
            self._set_selection(self._selection([], shape="clear"))
        return self.selection

    def _apply_filter(self, k: int, flt: charts_mod.Filter | None) -> None:
        assert self._cross is not None
        self._cross.set(k, flt)
        if not self._cross.filters:
            self._set_selection(self._selection([], shape="clear"))
            return
        provenance = {**self.provenance, "filters": self._cross.describe()}
        self._set_selection(self._selection(self._cross.rows(), shape="filter", provenance=provenance), filtered=True)

    def _send_charts(self) -> None:
        specs = [c.spec() for c in self._cross.charts] if self._cross else []
        self.send({"type": "charts", "version": self._charts_version, "charts": specs})
        self._send_chart_counts()

    def _send_chart_counts(self) -> None:
        if self._cross is not None:
            self.send(self._cross.message(self._charts_version, self.selection.indices))

    # ---- kernel <-> browser (see protocol.py) --------------------------------------------------
    def _on_message(self, _widget, content: Any, buffers: list) -> None:
        try:
            request = parse_request(content)
            self._handlers[request["type"]](request)
        except (ValueError, TypeError) as exc:
            log.warning("dataexplore: ignored a message from the browser: %s", exc)

    def _send_all(self, chunks) -> None:
        for content, buffers in chunks:
            self.send(content, buffers=buffers)

    def _on_ready(self, request: ReadyRequest) -> None:
        if self._lod:
            grid = self._index()
            self.send({"type": "lod", "reply_to": request["id"], "total": len(self.xy), "bounds": list(grid.bounds),
                       "budget": self.lod_points, "size": grid.size}, buffers=[grid.counts.tobytes()])
            self._send_view(state.ViewAnswer(self._overview_rows(), len(self.xy), None), request["id"])
        else:
            self._send_all(state.point_chunks(self.xy, self._codes, head={"reply_to": request["id"]}))
        if self._groups_msg is not None:
            self.send(self._groups_msg)
        self._send_selection()
        if self._cross is not None:
            self._send_charts()
        _ = self._index().order  # sort by cell now, while the browser draws: the first lasso is quick

    def _on_view(self, request: ViewRequest) -> None:
        if not self._lod:
            raise ValueError("views are asked for only on maps drawn as a sample")
        answer = state.view_answer(self._index(), request["rect"], self.lod_points, self._overview_rows())
        self._send_view(answer, request["id"])

    def _send_view(self, answer: state.ViewAnswer, reply_to: str) -> None:
        self._shown, self._shown_for = answer.rows, reply_to
        self._send_all(state.view_chunks(answer, self.xy, self._codes, reply_to))

    def _on_select(self, request: SelectRequest) -> None:
        op, shape = request["op"], request["shape"]
        n_categories = len(self.color_info.get("categories") or [])
        rows = state.selected_rows(request, self.selection.indices, grid=self._index(), codes=self._codes,
                                   n_categories=n_categories, groups=self._groups)
        if shape == "group":
            k = request["group"]
            selection = self._group_selection(k, rows) if op == "replace" else \
                self._selection(rows, shape="combined")
            self._set_selection(selection, group=k if op == "replace" else -1)
            return
        polygon = np.asarray(request["polygon"], np.float64) if shape in ("lasso", "box") and op == "replace" else None
        self._set_selection(self._selection(rows, polygon=polygon, shape=shape if op == "replace" else "combined"))

    def _on_hover(self, request: HoverRequest) -> None:
        row = state.within(request["row"], len(self.xy), "row")
        lines = [["id", str(self.ids[row])]] + [[c, str(self.table[c].iloc[row])] for c in self.tooltip_fields]
        thumb = self.thumbnail(row, context=True)
        self.send({"type": "tooltip", "reply_to": request["id"], "row": row, "lines": lines, "mime": "image/jpeg"},
                  buffers=[thumb] if thumb else [])

    def _on_filter(self, request: FilterRequest) -> None:
        if self._cross is None or request["version"] != self._charts_version:
            raise ValueError("a filter for charts no longer shown")
        k = state.within(request["chart"], len(self._cross.charts), "chart")
        self._apply_filter(k, charts_mod.check_filter(self._cross.charts[k], request.get("bars"), request.get("range")))

    def _on_page(self, request: PageRequest) -> None:
        self._page = request["page"]
        self._send_panel()

    def _on_export(self, request: ExportRequest) -> None:
        name, what = request["name"], request["what"]
        reply = {"type": "exported", "reply_to": request["id"], "what": what, "name": name}
        try:
            path = self.export(name, what, overwrite=request["overwrite"])
        except DataexploreError as exc:  # the user's mistake: say it in the widget
            exists = "already exists" in str(exc)
            message = f"{name!r} already exists as {what} in {self.export_dir}: Overwrite replaces it" if exists \
                else str(exc)
            self.send({**reply, "ok": False, "message": message, "exists": exists})
            return
        except Exception as exc:  # never kill the kernel's message loop; say what happened
            log.exception("dataexplore: export failed")
            self.send({**reply, "ok": False, "message": f"export failed: {exc}", "exists": False})
            return
        self.send({**reply, "ok": True, "path": str(path), "exists": False,
                   "message": f"saved {len(self.selection):,} images as {what} → {path}"})

    def _selection(self, rows: Any, *, shape: str, polygon: Any = None, provenance: dict | None = None) -> Selection:
        return as_selection(self.ids, rows, polygon=polygon, shape=shape, embeddings=self.embeddings,
                            provenance=self.provenance if provenance is None else provenance)

    def _set_selection(self, selection: Selection, group: int = -1, filtered: bool = False) -> None:
        if not filtered and self._cross is not None:  # a selection made on the map replaces the filters
            self._cross.clear()
        self._page = 0
        self._active_group = group
        self.selection = selection
        self._send_selection()
        self._send_chart_counts()

    def _send_selection(self) -> None:
        self._seq += 1
        self._send_all(state.selection_chunks(self.selection.indices, len(self.xy), lod=self._lod, seq=self._seq,
                                              group=self._active_group))
        self._send_panel()

    def _send_panel(self) -> None:
        idx = self.selection.indices
        self._page, pages, shown = state.page_of(idx, self._page)
        thumbs = [self.thumbnail(int(r)) for r in shown]
        self.send({"type": "panel", "total": int(len(idx)), "page": self._page, "pages": pages,
                   "counts": state.label_counts(self.table, idx), "titles": [str(self.ids[int(r)]) for r in shown],
                   "xy": self.xy[shown.astype(np.int64)].tolist(), "mime": "image/jpeg"},
                  buffers=[shown.astype(np.uint32).tobytes(), *thumbs])

    def _index(self):
        if self._grid is None:
            from ..core.geometry import PointGrid

            self._grid = PointGrid(self.xy)
        return self._grid

    def _overview_rows(self) -> np.ndarray:
        if self._overview is None:
            self._overview = state.overview(len(self.xy), self.lod_points)
        return self._overview

    def thumbnail(self, row: int, size: int = 128, context: bool = False) -> bytes:
        """JPEG thumbnail of point ``row`` (b"" when there are no images or it cannot be decoded).

        With ``context`` (the hover), an object's crop comes beside its whole image with the box
        drawn (:meth:`dataexplore.core.crops.CropSamples.in_context`); other points are unchanged.
        """
        key = (row, bool(context and hasattr(self.samples, "in_context")))
        if key in self._thumbs:
            self._thumbs.move_to_end(key)
            return self._thumbs[key]
        data = b""
        if self.samples is not None:
            from ..core.images import thumbnail

            source = row if self._rows is None else int(self._rows[row])
            try:
                data = thumbnail(self.samples.in_context(source, size), 2 * size) if key[1] else \
                    thumbnail(self.samples.read(source), size)
            except Exception as exc:  # a thumbnail must never break the widget
                log.info("no thumbnail for row %d: %s", row, exc)
        self._thumbs[key] = data
        if len(self._thumbs) > 4096:
            self._thumbs.popitem(last=False)
        return data
