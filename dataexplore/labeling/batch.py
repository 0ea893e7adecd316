"""A labeling batch: the samples to send to annotators, with their images, predictions and classes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError
from ..core.ids import rows_of

#: Columns of an imported labels table (see :func:`dataexplore.labeling.import_labels`).
LABEL_COLUMNS = ["id", "label", "annotator", "annotated_at", "source", "task"]


@dataclass(eq=False)
class LabelBatch:
    """The rows to label, in order, and how to reach each one's image.

    Attributes
    ----------
    table : pandas.DataFrame
        ``id`` and the samples' metadata (``label``, ``filepath``, ...), one row per image.
    samples : Samples or None
        Where the images are (files or in-memory pixels); ``rows`` indexes it.
    rows : numpy.ndarray
    classes : list of str
        The label choices offered to annotators.
    predictions : pandas.Series
        Pre-annotation per row (None where there is none), aligned to ``table``.
    scores : pandas.Series
        Confidence of each prediction (NaN where unknown).
    name, description : str
        What this batch is (a query's name and description, e.g.).
    """

    table: pd.DataFrame
    samples: Any
    rows: np.ndarray
    classes: list
    predictions: pd.Series
    scores: pd.Series
    name: str = "batch"
    description: str = ""
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def ids(self) -> np.ndarray:
        return self.table["id"].to_numpy(dtype=object)

    def image_files(self, folder: Path) -> list[str]:
        """An absolute image path per row: the sample's own file, or a PNG written under ``folder``.

        In-memory images (and files that are gone) are written as ``folder/<safe id>.png``; names
        are sanitised and made unique.
        """
        from PIL import Image
        from tqdm.auto import tqdm

        from ..core.images import DecodeError
        from ..core.io import safe_name

        paths, taken = [], set()
        rows = tqdm(self.rows, desc="writing images", unit="img", disable=len(self.rows) < 2000, leave=False)
        for i, row in enumerate(rows):
            path = self.table["filepath"].iloc[i] if "filepath" in self.table.columns else None
            if isinstance(path, str) and os.path.isfile(path):
                paths.append(os.path.abspath(path))
                continue
            if self.samples is None or getattr(self.samples, "images", None) is None:
                raise DataexploreError(f"no image for sample {self.ids[i]!r}: its file {path!r} does not exist")
            try:
                pixels = self.samples.read(int(row))
            except DecodeError as exc:
                raise DataexploreError(f"no image for sample {self.ids[i]!r}: {exc}") from None
            stem = safe_name(self.ids[i])
            name, k = f"{stem}.png", 2
            while name.lower() in taken:  # case-insensitive file systems (macOS, Windows) too
                name, k = f"{stem}-{k}.png", k + 1
            taken.add(name.lower())
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(pixels).squeeze()).save(folder / name)
            paths.append(str((folder / name).resolve()))
        return paths

    def records(self) -> list[dict]:
        """Per row: ``id`` and the JSON-safe scalar metadata (no file paths, NaN as None)."""
        keep = [c for c in self.table.columns if c not in ("filepath",)]
        out = []
        for rec in self.table[keep].to_dict("records"):
            out.append({str(k): _json_scalar(v) for k, v in rec.items()})
        return out


def as_batch(items: Any, *, classes: Sequence[str] | None = None, predictions: Any = None,
             name: str | None = None, description: str = "") -> LabelBatch:
    """Whatever the user has in hand as a :class:`LabelBatch`.

    Parameters
    ----------
    items
        A :class:`~dataexplore.Selection` made in an explorer (or with embeddings), a search
        result (:class:`~dataexplore.query.SearchResult`), :class:`~dataexplore.Embeddings`,
        :class:`~dataexplore.Samples`, or a DataFrame with ``id`` and ``filepath``.
    classes : sequence of str, optional
        Label choices. Default: for a search result, the classes of the map its query was made on;
        else the ``label`` values of the whole source; plus the predictions.
    predictions : str, pandas.Series or None
        Pre-annotations: a column of the items' table, a Series keyed by sample id, or one label
        for every row (e.g. a query's name). Default: the ``prediction`` column if there is one.
    name, description : str
        Default: a query's name and description, else "batch".

    Examples
    --------
    >>> batch = as_batch(result, predictions="Trouser")  # doctest: +SKIP
    """
    from ..core.embeddings import Embeddings
    from ..core.samples import Samples
    from ..sources import load

    scores = None  # prediction confidences: a search result's probabilities (else scores)
    if hasattr(items, "query") and hasattr(items, "embeddings") and hasattr(items, "table"):  # SearchResult
        query = items.query
        name = name or query.name
        known = (getattr(query, "provenance", None) or {}).get("classes") or []
        if classes is None and known:
            preds_first = _predictions(items.table.reset_index(drop=True), predictions)
            classes = sorted({*map(str, known), *map(str, preds_first.dropna())})
        description = description or query.description
        scores = items.table["probability"].where(items.table["probability"].notna(), items.table["score"])
        items = items.embeddings
    elif hasattr(items, "indices") and hasattr(items, "ids"):  # Selection
        emb = getattr(items, "embeddings", None)
        if len(items) == 0:
            raise DataexploreError("the selection is empty: select some points before exporting them for labeling")
        if emb is None:
            raise DataexploreError("this selection does not know its images: make it in dx.explore(), or export "
                                   "embeddings.subset(...) / the Samples instead")
        items = emb.subset(rows_of(emb.ids, items.ids, message="the selection holds id {id!r}, which its embeddings "
                                   "do not have: make the selection on these embeddings' map"))
    if isinstance(items, pd.DataFrame):
        items = load(items)
    if isinstance(items, Embeddings):
        if items.samples is None:
            raise DataexploreError("these embeddings do not know their images (loaded from a file?): pass the Samples")
        samples, rows, full = items.samples, np.asarray(items.rows, np.int64), items.samples.table
        table = items.table
    elif isinstance(items, Samples):
        samples, rows, full, table = items, np.arange(len(items)), items.table, items.table
    else:
        raise DataexploreError(f"cannot export {type(items).__name__} for labeling: pass a Selection, a search "
                               "result, Embeddings, Samples or a DataFrame with id and filepath")
    if len(table) == 0:
        raise DataexploreError("nothing to export: the batch is empty")
    table = table.reset_index(drop=True)
    preds = _predictions(table, predictions)
    if classes is None:
        found = list(pd.unique(full["label"].dropna().astype(str))) if "label" in full.columns else []
        found += [p for p in pd.unique(preds.dropna().astype(str)) if p not in found]
        classes = sorted(found)
    classes = [str(c) for c in classes]
    if not classes:
        raise DataexploreError("no label classes: the samples have no 'label' column, pass classes=[...]")
    if len(set(classes)) != len(classes):
        raise DataexploreError(f"duplicate classes in {classes}")
    unknown = sorted(set(preds.dropna().astype(str)) - set(classes))
    if unknown:
        raise DataexploreError(f"predictions {unknown[:5]} are not among the classes {classes}")
    if scores is None:
        scores = pd.Series(np.nan, index=table.index)
    return LabelBatch(table=table, samples=samples, rows=rows, classes=classes, predictions=preds,
                      scores=pd.Series(np.asarray(scores, np.float64), index=table.index),
                      name=name or "batch", description=description)


def _predictions(table: pd.DataFrame, predictions: Any) -> pd.Series:
    if predictions is None:
        if "prediction" in table.columns:
            return table["prediction"].astype(object).where(table["prediction"].notna(), None)
        return pd.Series([None] * len(table), index=table.index, dtype=object)
    if isinstance(predictions, pd.Series):
        values = predictions.copy()
        values.index = values.index.astype(str)
        out = values.reindex(table["id"].astype(str)).reset_index(drop=True)
        return out.astype(object).where(out.notna(), None)
    if isinstance(predictions, str):
        if predictions in table.columns:
            col = table[predictions]
            return col.astype(object).where(col.notna(), None)
        return pd.Series([predictions] * len(table), index=table.index, dtype=object)
    raise DataexploreError("predictions must be a column name, one label, or a Series keyed by sample id")


def _json_scalar(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (str, int)):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)
