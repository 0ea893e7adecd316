"""The Explorer widget: a WebGL map in the notebook whose selections are Python values at once.

The widget only displays and forwards: coordinates, colours and selections come from the compute
core (:mod:`dataexplore.embedding.local`, :mod:`dataexplore.projection`, :mod:`dataexplore.core.selection`);
the browser sends selection shapes and the kernel computes exact rows.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence

import anywidget
import numpy as np
import pandas as pd
import traitlets

from ..core.errors import DataexploreError
from ..core.ids import rows_of
from ..core.selection import RowIds, Selection, as_selection, combine

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
POINT_CHUNK = 500_000  # points per message: 4 MB of float32 xy + 1 MB of codes (+ 2 MB of row ids)
INDEX_CHUNK = 2_000_000  # selected rows per message: 8 MB, under the 10 MB websocket cap
BITS_CHUNK = 8_000_000  # bytes of a selection bitset per message
PAGE_SIZE = 24
MAX_POLYGON = 400  # vertices: what the front end sends at most (it simplifies longer lassos)
MAX_POINTS = 2_000_000  # larger maps are drawn as a sample and a density layer that refine on zoom
LOD_POINTS = 1_000_000  # points the browser holds at once for such maps
VIEW_DENSITY = 512  # density cells per side sent with a zoomed-in view


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
    selection = traitlets.Instance(Selection, allow_none=False)

    def __init__(self, xy: Any, *, ids: Sequence[str] | None = None, table: pd.DataFrame | None = None,
                 samples: Any = None, rows: Any = None, color: Any = None, tooltip: Sequence[str] = (),
                 height: int = 560, provenance: dict | None = None, embeddings: Any = None,
                 export_dir: str | Path = "dataexplore-exports", max_points: int = MAX_POINTS,
                 lod_points: int = LOD_POINTS, **kwargs):
        if hasattr(xy, "embedding_"):  # a fitted Projection
            embeddings = getattr(xy, "embeddings_", None) if embeddings is None else embeddings
            ids = xy.ids_ if ids is None else ids
            provenance = {**(provenance or {}), "projection": xy.get_params()}
            xy = xy.embedding_
        xy = np.ascontiguousarray(np.asarray(xy, dtype=np.float32))
        if xy.ndim != 2 or xy.shape[1] != 2 or (len(xy) == 0 and xy.size):
            raise DataexploreError(f"map coordinates must be N×2, got shape {xy.shape}")
        if not np.isfinite(xy).all():
            raise DataexploreError(f"map coordinates contain NaN or inf at row {int(np.flatnonzero(~np.isfinite(xy).all(1))[0])}")
        n = len(xy)
        if len(xy) >= 2**32:
            raise DataexploreError("at most 2**32 - 1 points")
        for name, value in (("max_points", max_points), ("lod_points", lod_points)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise DataexploreError(f"{name} must be a positive integer, got {value!r}")
        lod = n > max_points
        if ids is None:  # a big map's ids "0".."N-1" are made only when read
            ids = RowIds(n) if lod else np.arange(n).astype(str).astype(object)
        else:
            ids = np.asarray(ids, dtype=object)
        if len(ids) != n:
            raise DataexploreError(f"mismatched lengths: {len(ids)} ids for {n} points")
        if table is None:
            table = pd.DataFrame(index=pd.RangeIndex(n)) if isinstance(ids, RowIds) else pd.DataFrame({"id": ids})
        if len(table) != n:
            raise DataexploreError(f"mismatched lengths: {len(table)} table rows for {n} points")
        if embeddings is not None and (len(embeddings) != n or not np.array_equal(embeddings.ids, ids)):
            raise DataexploreError("embeddings must be aligned to the map's points (same ids in the same order)")
        super().__init__(height=height, **kwargs)
        self.embeddings = embeddings
        self.export_dir = Path(export_dir)
        self.queries: dict[str, Any] = {}
        self.xy = xy
        self.ids = ids
        self.table = table.reset_index(drop=True)
        self.samples = samples
        self._rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.max_points, self.lod_points = int(max_points), int(min(lod_points, max_points))
        self._lod = lod
        self._grid: Any = None  # the lod.PointGrid of a big map, made when first needed
        self._overview: np.ndarray | None = None
        self._shown = np.zeros(0, np.uint32)  # rows the browser was last sent (big maps), for which view
        self._shown_seq, self._shown_client = -1, ""
        self.tooltip_fields = [c for c in ["label", *tooltip] if c in self.table.columns and c != "id"]
        self.provenance = dict(provenance or {})
        self._saved: dict[str, Selection] = {}
        self._thumbs: OrderedDict[int, bytes] = OrderedDict()
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
        n = len(self.xy)
        if no_value not in ("class", "grey"):
            raise DataexploreError("no_value must be 'class' or 'grey'")
        self._result_colored = False  # show() sets it again when the colours are a result's
        if color is None:
            self._codes = np.zeros(n, dtype=np.uint16)
            self.color_info = {"kind": "none"}
        else:
            name = color if isinstance(color, str) else \
                str(color.name) if isinstance(color, pd.Series) and color.name is not None else "value"
            if isinstance(color, str):
                if color not in self.table.columns:
                    raise DataexploreError(f"no column {color!r} to colour by; columns: {list(self.table.columns)}")
                values = self.table[color]
            else:
                values = color.reset_index(drop=True) if isinstance(color, pd.Series) else pd.Series(np.asarray(color))
                if len(values) != n:
                    raise DataexploreError(f"mismatched lengths: {len(values)} colour values for {n} points")
            if pd.api.types.is_float_dtype(values) or (pd.api.types.is_integer_dtype(values)
                                                       and values.nunique() > 32):  # few integers: classes
                v = values.to_numpy(dtype=np.float64, na_value=np.nan)
                finite = np.isfinite(v)
                lo, hi = (float(np.min(v[finite])), float(np.max(v[finite]))) if finite.any() else (0.0, 1.0)
                scaled = np.where(finite, (v - lo) / ((hi - lo) or 1.0), 0.0)
                self._codes = np.where(finite, np.round(scaled * 255), 256).astype(np.uint16)
                self.color_info = {"kind": "numeric", "name": name, "min": _short(lo), "max": _short(hi),
                                   "no_value": int((~finite).sum()), "no_value_code": 256}
            else:
                try:  # natural order for numbers (2 before 10), text order otherwise
                    codes, cats = pd.factorize(values, sort=True)
                except TypeError:  # mixed types
                    codes, cats = pd.factorize(values.astype(str), sort=True)
                cats = [str(c) for c in cats]
                missing = int((codes < 0).sum())
                if missing and no_value == "class":  # missing values get a class of their own, last
                    codes = np.where(codes < 0, len(cats), codes)
                    cats.append("(missing)")
                    missing = 0
                if len(cats) > 65534:
                    raise DataexploreError(f"{len(cats)} categories is more than a map can colour (65534)")
                codes = np.where(codes < 0, len(cats), codes)  # no value: one past the last class, grey
                self._codes = codes.astype(np.uint16)
                counts = np.bincount(codes, minlength=len(cats))[:len(cats)]
                self.color_info = {"kind": "categorical", "name": name, "categories": cats,
                                   "counts": counts.tolist(), "no_value": missing, "no_value_code": len(cats)}
        if not self._lod:
            self.send({"type": "colors"}, buffers=[self._codes.tobytes()])
        elif self._shown_seq >= 0:  # the browser holds a sample: its colours, for the set it holds
            self.send({"type": "colors", "seq": self._shown_seq, "client": self._shown_client},
                      buffers=[self._codes[self._shown].tobytes()])

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
            self.set_color(_aligned(result.map_values(by) if by is not None else result.map_values(), lookup),
                           no_value="grey")
        elif self._result_colored:  # the colours of the result shown before would mislead
            self.set_color(None)
        self._groups, self._group_names = groups, table["name"].astype(str).tolist()
        self._result, self._result_colored = result, bool(color)
        columns = [c for c in table.columns if c != "exemplars" and not table[c].map(_is_list).any()]
        cells = [[_cell(c, table[c].iloc[k]) for c in columns] for k in range(len(table))]
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
        self._set_selection(self._group_selection(int(k), self._groups[int(k)], None), group=int(k))
        return self.selection

    def _group_selection(self, k: int, rows: np.ndarray, op: str | None) -> Selection:
        provenance = {**self.provenance, "analysis": str(getattr(self._result, "title", "")),
                      "group": self._group_names[k]}
        if op in (None, "replace"):
            return self._selection(rows, shape="group", provenance=provenance)
        return self._selection(combine(self.selection.indices, rows, op), shape="combined")

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
        """Save the current selection as a query or a labeling batch (what the export menu does).

        Parameters
        ----------
        name : str
            The query's or batch's name; the file name is made safe from it.
        what : {"query", "label-studio", "coco", "csv"}
            ``"query"`` writes ``<folder>/<name>.dxq`` (see :class:`~dataexplore.Query`) and keeps
            the query in :attr:`queries`; the others write a labeling batch folder
            ``<folder>/<name>-<format>`` (see :func:`dataexplore.export_labeling`).
        folder : path, optional
            Default: :attr:`export_dir`.
        overwrite : bool
            Replace an existing query or batch of that name.
        **kwargs
            Passed to :func:`~dataexplore.export_labeling` (``classes``, ``predictions``, ...).

        Returns
        -------
        pathlib.Path

        Examples
        --------
        >>> ex.export("odd shoes", "label-studio")  # doctest: +SKIP
        PosixPath('dataexplore-exports/odd_shoes-label-studio')
        """
        from ..core.io import safe_name

        if not isinstance(name, str) or not name.strip():
            raise DataexploreError("give the export a name")
        name = name.strip()
        folder = Path(folder) if folder is not None else self.export_dir
        if what == "query":
            query = self.selection.to_query(name)
            path = query.save(folder / f"{safe_name(name)}.dxq", overwrite=overwrite)
            self.queries[name] = query
            return path
        from ..labeling import FORMATS, export_labeling

        if what not in FORMATS:
            raise DataexploreError(f"what must be 'query' or one of {', '.join(FORMATS)}, got {what!r}")
        return export_labeling(self.selection, folder / f"{safe_name(name)}-{what}", format=what, name=name,
                               overwrite=overwrite, **kwargs)

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

    # ---- kernel <-> browser ------------------------------------------------------------------
    def _on_message(self, _widget, content: Any, buffers: list) -> None:
        try:
            if not isinstance(content, dict):
                raise ValueError("message is not an object")
            kind = content.get("type")
            if kind == "ready":
                if self._lod:
                    self._send_overview(_client(content.get("client")))
                else:
                    self._send_points()
                if self._groups_msg is not None:
                    self.send(self._groups_msg)
                self._send_selection()
                self._index().order  # sort by cell now, while the browser draws: the first lasso is quick
            elif kind == "view":
                self._send_view(content)
            elif kind == "select":
                self._select_from_browser(content)
            elif kind == "hover":
                self._send_tooltip(_row(content.get("row"), len(self.xy)))
            elif kind == "export":
                self._export_from_browser(content)
            elif kind == "page":
                page = content.get("page")
                if not isinstance(page, int) or isinstance(page, bool):
                    raise ValueError(f"bad page {page!r}")
                self._page = page
                self._send_panel()
            else:
                raise ValueError(f"unknown message type {kind!r}")
        except (ValueError, TypeError) as exc:
            log.warning("dataexplore: ignored a message from the browser: %s", exc)

    def _export_from_browser(self, content: dict) -> None:
        name, what, overwrite = content.get("name"), content.get("what"), content.get("overwrite", False)
        if not isinstance(name, str) or not isinstance(what, str) or not isinstance(overwrite, bool):
            raise ValueError("an export needs a name, what to export and overwrite true/false")
        reply = {"type": "exported", "what": what, "name": name}
        try:
            path = self.export(name, what, overwrite=overwrite)
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

    def _select_from_browser(self, content: dict) -> None:
        shape, op = content.get("shape"), content.get("op", "replace")
        if op not in ("replace", "add", "subtract"):
            raise ValueError(f"bad selection operation {op!r}")
        polygon = None
        if shape in ("lasso", "box"):
            polygon = _polygon(content.get("polygon"))
            new = self._index().polygon(polygon)  # the grid index at every size: exact, and quick for any lasso
        elif shape == "point":
            new = [_row(content.get("row"), len(self.xy))]
        elif shape == "class":
            cats = self.color_info.get("categories") or []
            cat = _row(content.get("category"), len(cats))
            new = np.flatnonzero(self._codes == cat)
        elif shape == "group":
            k = _row(content.get("group"), len(self._groups))
            self._set_selection(self._group_selection(k, self._groups[k], op), group=k if op == "replace" else -1)
            return
        elif shape == "clear":
            new, op = [], "replace"
        else:
            raise ValueError(f"unknown selection shape {shape!r}")
        rows = combine(self.selection.indices, new, op)
        made = shape if op == "replace" else "combined"
        self._set_selection(self._selection(rows, polygon=polygon if op == "replace" else None, shape=made))

    def _selection(self, rows: Any, *, shape: str, polygon: Any = None, provenance: dict | None = None) -> Selection:
        return as_selection(self.ids, rows, polygon=polygon, shape=shape, embeddings=self.embeddings,
                            provenance=self.provenance if provenance is None else provenance)

    def _set_selection(self, selection: Selection, group: int = -1) -> None:
        self._page = 0
        self._active_group = group
        self.selection = selection
        self._send_selection()

    def _send_points(self) -> None:
        n = len(self.xy)
        for start in range(0, max(n, 1), POINT_CHUNK):
            stop = min(n, start + POINT_CHUNK)
            self.send({"type": "points", "offset": start, "count": stop - start, "total": n, "final": stop >= n},
                      buffers=[self.xy[start:stop].tobytes(), self._codes[start:stop].tobytes()])

    def _send_selection(self) -> None:
        self._seq += 1
        idx = self.selection.indices
        n = len(self.xy)
        if self._lod and len(idx) * 4 > (n + 7) // 8:  # a bitset of all N points is smaller than the rows
            mask = np.zeros(n, bool)
            mask[idx] = True
            bits = np.packbits(mask, bitorder="little")
            for start in range(0, len(bits), BITS_CHUNK):
                stop = min(len(bits), start + BITS_CHUNK)
                self.send({"type": "selection", "format": "bits", "offset": start, "count": stop - start,
                           "bytes": len(bits), "n": n, "total": len(idx), "final": stop >= len(bits),
                           "seq": self._seq, "group": self._active_group}, buffers=[bits[start:stop].tobytes()])
            self._send_panel()
            return
        for start in range(0, max(len(idx), 1), INDEX_CHUNK):
            stop = min(len(idx), start + INDEX_CHUNK)
            fmt = {"format": "rows", "n": n} if self._lod else {}
            self.send({"type": "selection", "offset": start, "count": stop - start, "total": len(idx),
                       "final": stop >= len(idx), "seq": self._seq, "group": self._active_group, **fmt},
                      buffers=[idx[start:stop].tobytes()])
        self._send_panel()

    def _send_panel(self) -> None:
        idx = self.selection.indices
        pages = max(1, math.ceil(len(idx) / PAGE_SIZE))
        self._page = min(max(self._page, 0), pages - 1)
        shown = idx[self._page * PAGE_SIZE:(self._page + 1) * PAGE_SIZE]
        counts = []
        if "label" in self.table.columns and len(idx):
            labels = self.table["label"].iloc[idx.astype(np.int64)]
            if isinstance(labels.dtype, pd.CategoricalDtype):  # count codes, not millions of strings
                vc = labels.value_counts(dropna=False)
                vc = vc[vc > 0]
            else:
                vc = labels.astype(str).value_counts()
            counts = [[str(k), int(v)] for k, v in vc.head(20).items()]
        thumbs = [self.thumbnail(int(r)) for r in shown]
        titles = [str(self.ids[int(r)]) for r in shown]
        self.send({"type": "panel", "total": int(len(idx)), "page": self._page, "pages": pages, "counts": counts,
                   "titles": titles, "xy": self.xy[shown.astype(np.int64)].tolist(), "mime": "image/jpeg"},
                  buffers=[shown.astype(np.uint32).tobytes(), *thumbs])

    # ---- big maps: a sample and a density layer that refine as the view changes ----------------
    def _index(self):
        if self._grid is None:
            from ..core.geometry import PointGrid

            self._grid = PointGrid(self.xy)
        return self._grid

    def _send_overview(self, client: str) -> None:
        """The map's extent, the density of all points and the overview sample (to view ``client``)."""
        from ..core.geometry import first_by_rank

        grid = self._index()
        if self._overview is None:
            self._overview = first_by_rank(np.arange(len(self.xy), dtype=np.uint32), self.lod_points)
        self.send({"type": "lod", "total": len(self.xy), "bounds": list(grid.bounds), "budget": self.lod_points,
                   "size": grid.size, "client": client}, buffers=[grid.counts.tobytes()])
        self._send_sample(self._overview, seq=0, rect=None, inside=len(self.xy), client=client)

    def _send_view(self, content: dict) -> None:
        """Answer the browser's view: up to ``lod_points`` points inside ``rect``, all when they fit,
        else the first by sampling rank (so the points of a wider view that fall inside stay)."""
        from ..core.geometry import first_by_rank

        if not self._lod:
            raise ValueError("views are asked for only on maps drawn as a sample")
        seq, rect, client = content.get("seq"), content.get("rect"), _client(content.get("client"))
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise ValueError(f"bad view number {seq!r}")
        if rect is not None:
            rect = _rect(rect)
        grid = self._index()
        bx0, by0, bx1, by1 = grid.bounds
        if rect is None or (rect[0] <= bx0 and rect[1] <= by0 and rect[2] >= bx1 and rect[3] >= by1):
            if self._overview is None:
                self._overview = first_by_rank(np.arange(len(self.xy), dtype=np.uint32), self.lod_points)
            self._send_sample(self._overview, seq=seq, rect=rect, inside=len(self.xy), client=client)
            return
        inside = grid.box(*rect)
        if len(inside) <= self.lod_points:
            self._send_sample(inside, seq=seq, rect=rect, inside=len(inside), client=client)
            return
        # a sample again: send the density of the view so what it misses still shows
        cx0, cy0, cx1, cy1 = max(rect[0], bx0), max(rect[1], by0), min(rect[2], bx1), min(rect[3], by1)
        if (cx1 - cx0) * (cy1 - cy0) < 0.25 * (bx1 - bx0) * (by1 - by0):
            counts = grid.density(cx0, cy0, cx1, cy1, size=VIEW_DENSITY, rows=inside)
            self.send({"type": "density", "seq": seq, "rect": [cx0, cy0, cx1, cy1], "size": VIEW_DENSITY,
                       "client": client}, buffers=[counts.tobytes()])
        self._send_sample(first_by_rank(inside, self.lod_points), seq=seq, rect=rect, inside=len(inside), client=client)

    def _send_sample(self, rows: np.ndarray, *, seq: int, rect: list | None, inside: int, client: str) -> None:
        """Points ``rows`` (coordinates, colour codes, row ids) in chunks; they replace what the browser held."""
        self._shown, self._shown_seq, self._shown_client = rows, seq, client
        total = len(rows)
        head = {"type": "points", "lod": True, "n": len(self.xy), "seq": seq, "rect": rect, "inside": int(inside),
                "complete": total == inside, "total": total, "client": client}
        for start in range(0, max(total, 1), POINT_CHUNK):
            stop = min(total, start + POINT_CHUNK)
            part = rows[start:stop]
            self.send({**head, "offset": start, "count": stop - start, "final": stop >= total},
                      buffers=[self.xy[part].tobytes(), self._codes[part].tobytes(), part.tobytes()])

    def _send_tooltip(self, row: int) -> None:
        lines = [["id", str(self.ids[row])]]
        lines += [[c, str(self.table[c].iloc[row])] for c in self.tooltip_fields]
        thumb = self.thumbnail(row)
        self.send({"type": "tooltip", "row": row, "lines": lines, "mime": "image/jpeg"},
                  buffers=[thumb] if thumb else [])

    def thumbnail(self, row: int, size: int = 128) -> bytes:
        """JPEG thumbnail of point ``row`` (b"" when there are no images or it cannot be decoded)."""
        if row in self._thumbs:
            self._thumbs.move_to_end(row)
            return self._thumbs[row]
        data = b""
        if self.samples is not None:
            from ..core.images import thumbnail

            try:
                data = thumbnail(self.samples.read(row if self._rows is None else int(self._rows[row])), size)
            except Exception as exc:  # a thumbnail must never break the widget
                log.info("no thumbnail for row %d: %s", row, exc)
        self._thumbs[row] = data
        if len(self._thumbs) > 4096:
            self._thumbs.popitem(last=False)
        return data


def _aligned(values: Any, ids: pd.Index) -> pd.Series:
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


def _row(value: Any, n: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < n:
        raise ValueError(f"row {value!r} out of range 0..{n - 1}")
    return value


def _client(value: Any) -> str:
    """The id a view of the widget gives itself (views of one widget share the kernel's messages)."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("a view's client id is a short string")
    return value


def _rect(value: Any) -> list[float]:
    """A view rectangle ``[x0, y0, x1, y1]`` from the browser (finite, x0 <= x1, y0 <= y1)."""
    if not isinstance(value, list) or len(value) != 4 or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ValueError("a view is [x0, y0, x1, y1]")
    x0, y0, x1, y1 = (float(v) for v in value)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 < x0 or y1 < y0:
        raise ValueError(f"bad view {value!r}")
    return [x0, y0, x1, y1]


def _polygon(value: Any) -> np.ndarray:
    if not isinstance(value, list) or not 3 <= len(value) <= MAX_POLYGON:
        raise ValueError(f"a polygon needs 3 to {MAX_POLYGON} [x, y] vertices")
    try:
        poly = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("polygon vertices must be numbers") from None
    if poly.ndim != 2 or poly.shape[1] != 2 or not np.isfinite(poly).all():
        raise ValueError("polygon vertices must be finite [x, y] pairs")
    return poly


def _short(x: float) -> str:
    return f"{x:.4g}"


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _cell(column: str, value: Any) -> str:
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
