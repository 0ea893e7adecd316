"""Labeling: send a selection or a query's candidates to annotators, and bring their labels back.

::

    dx.export_labeling(result, "batches/trousers", format="label-studio", predictions="Trouser")
    labels = dx.import_labels("project-1-at-2026-11-23.json")   # id, label, annotator, annotated_at, ...
    samples = dx.apply_labels(samples, labels)                   # a human_label column with provenance

Every export folder holds ``manifest.csv`` (the batch: ids, image paths, predictions, metadata) and
the format's own files: Label Studio ``tasks.json`` + ``config.xml`` + ``instructions.md``; COCO
``annotations.json``; CSV only the manifest, whose empty ``label`` column annotators fill. Images
held in memory (e.g. Fashion-MNIST) are written as PNG files under ``images/``. CVAT goes through
FiftyOne's annotation API: see :func:`dataexplore.integrations.fiftyone.cvat_request`.

Boxes (detection datasets, :class:`~dataexplore.core.objects.Objects`) go out as rectangle tasks and come
back as corrections matched to the boxes they correct (:mod:`dataexplore.labeling.boxes`)::

    dx.export_boxes(objects.subset(worst), "batches/faint", format="label-studio")  # predictions pre-annotated
    fixes = dx.import_boxes("project-2-at-2026-12-06.json", objects)   # kept, moved, relabelled, added, deleted
    truth = fixes.apply(objects)                                        # corrected ground truth, with provenance

Or with no files to carry: push a batch folder to a running Label Studio and pull the finished work back
(:mod:`dataexplore.labeling.live`, needs ``label-studio-sdk``)::

    project = dx.labeling.push(folder, url="http://localhost:8080", token=PAT)
    labels = dx.labeling.pull(project)                                 # what import_labels returns
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError, SourceError
from ..core.ids import rows_of
from ..core.io import is_missing
from . import coco, label_studio, manifest
from .batch import LABEL_COLUMNS, LabelBatch, as_batch
from .boxes import BoxCorrections, export_boxes, import_boxes
from .conflicts import LabelConflictWarning, latest_per_sample
from .live import LiveProject, pull, push

#: The labeling formats by key, with the name a menu shows.
FORMAT_LABELS = {"label-studio": "Label Studio", "coco": "COCO", "csv": "CSV manifest"}
FORMATS = tuple(FORMAT_LABELS)

__all__ = ["FORMATS", "FORMAT_LABELS", "LABEL_COLUMNS", "BoxCorrections", "LabelBatch", "LabelConflictWarning",
           "LiveProject", "apply_labels", "as_batch", "export_boxes", "export_labeling", "import_boxes",
           "import_labels", "pull", "push"]


def export_labeling(items: Any, folder: str | os.PathLike, format: str = "label-studio", *,
                    classes: Sequence[str] | None = None, predictions: Any = None, name: str | None = None,
                    description: str = "", instructions: str = "", document_root: str | None = None,
                    url_prefix: str | None = None, overwrite: bool = False) -> Path:
    """Write a labeling batch for ``items`` into ``folder`` (atomically).

    Parameters
    ----------
    items
        A selection, a search result, Embeddings, Samples or a DataFrame (see :func:`as_batch`).
    folder : path
        The batch folder; an existing one is replaced only with ``overwrite=True``.
    format : {"label-studio", "coco", "csv"}
    classes, predictions, name, description
        See :func:`as_batch`.
    instructions : str
        Extra guidance for annotators, added to ``instructions.md`` (Label Studio).
    document_root : str, optional
        The folder image paths are made relative to (default: the images' common folder).
    url_prefix : str, optional
        Label Studio: serve images from ``<url_prefix>/<path relative to document_root>``
        instead of Label Studio's local-files storage.
    overwrite : bool

    Returns
    -------
    pathlib.Path
        The batch folder.

    Examples
    --------
    >>> import dataexplore as dx
    >>> dx.export_labeling(ex.selection, "batches/odd-shoes", format="label-studio")  # doctest: +SKIP
    """
    if format not in FORMATS:
        raise DataexploreError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    from ..core.io import replace_dir

    batch = as_batch(items, classes=classes, predictions=predictions, name=name, description=description)
    final = Path(folder).expanduser().resolve()

    def fill(tmp: Path) -> None:
        import shutil

        written = batch.image_files(tmp / "images")
        for p in written:  # images inside the folder being replaced would go with it: keep copies
            if Path(p).is_relative_to(final):
                (tmp / Path(p).relative_to(final)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, tmp / Path(p).relative_to(final))
        paths = [str(final / Path(p).relative_to(tmp)) if Path(p).is_relative_to(tmp) else p for p in written]
        _, root = label_studio.image_urls(paths, document_root, None)
        manifest.write(batch, tmp, paths, root)
        if format == "label-studio":
            label_studio.write(batch, tmp, paths, document_root=root, url_prefix=url_prefix, instructions=instructions)
        elif format == "coco":
            coco.write(batch, tmp, paths, [_size(p) for p in written], root)

    return replace_dir(final, fill, overwrite=overwrite, kind="labeling batch", check_existing=_no_labels_lost)


def _no_labels_lost(folder: Path) -> None:
    """Refuse to replace a batch whose ``manifest.csv`` has labels filled in: they are someone's work."""
    path = folder / "manifest.csv"
    if not path.is_file():
        return
    try:
        table = manifest.read_csv_text(path)
    except SourceError:
        raise DataexploreError(f"{path} cannot be read, so dataexplore cannot tell whether it holds labels: "
                               "refusing to replace the batch; move it away or choose another folder") from None
    done = int((table["label"].str.strip() != "").sum()) if "label" in table.columns else 0
    if done:
        raise DataexploreError(f"{path} has {done} label(s) filled in: refusing to replace the batch; import them "
                               "with dx.import_labels, move the folder away, or choose another folder")


def import_labels(path: str | os.PathLike, format: str = "auto", *, label_column: str = "label",
                  field: str = "label") -> pd.DataFrame:
    """Read labels back from a Label Studio export (JSON, JSON-MIN or CSV), a COCO file or a CSV.

    Parameters
    ----------
    path : path
        The exported file. A batch folder works too (its ``manifest.csv`` with the ``label``
        column filled in).
    format : {"auto", "label-studio", "coco", "csv"}
        ``"auto"`` tells them apart by content.
    label_column : str
        CSV only: the column holding the labels.
    field : str
        Label Studio only: the ``name`` of the ``<Choices>`` control (``"label"`` in our configs).

    Returns
    -------
    pandas.DataFrame
        ``id``, ``label``, ``annotator``, ``annotated_at``, ``source``, ``task`` and the samples'
        exported metadata as ``meta_*``, one row per labelled sample. A sample labelled more than
        once keeps its latest annotation; disagreements are listed in ``.attrs["conflicts"]`` and
        a :class:`~dataexplore.labeling.conflicts.LabelConflictWarning` names them.

    Raises
    ------
    dataexplore.SourceError
        For a file that is missing, not UTF-8, or not of the expected shape (naming the file and
        the problem).

    Examples
    --------
    >>> labels = dx.import_labels("project-3-at-2026-11-23-10-12.json")  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "manifest.csv"
    if not path.is_file():
        raise SourceError(f"labels file not found: {path}")
    if format != "auto" and format not in FORMATS:
        raise DataexploreError(f"format must be auto, label-studio, coco or csv, got {format!r}")
    if format == "csv" or (format == "auto" and path.suffix.lower() == ".csv"):
        return _checked(manifest.read(path, label_column), path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise SourceError(f"{path} is neither CSV nor valid JSON ({str(exc)[:200]})") from None
    if format == "coco" or (format == "auto" and isinstance(doc, dict) and "annotations" in doc):
        return _checked(coco.read(doc, path), path)
    if format in ("label-studio", "auto") and isinstance(doc, list):
        return _checked(label_studio.read(doc, path, field), path)
    raise SourceError(f"{path} is not a {format if format != 'auto' else 'Label Studio, COCO or CSV'} labels file")


def apply_labels(data: Any, labels: pd.DataFrame, column: str = "human_label", *, overwrite: bool = False):
    """Samples (or Embeddings) with imported ``labels`` in ``column``, plus provenance columns.

    Adds ``<column>``, ``<column>_annotator``, ``<column>_at``, ``<column>_source`` and
    ``<column>_task``; samples without a label get missing values. Every labelled id must be one
    of the samples; a sample that already has a different value in ``column`` is only relabelled
    with ``overwrite=True``.

    Examples
    --------
    >>> samples = dx.apply_labels(samples, dx.import_labels("export.json"))  # doctest: +SKIP
    >>> samples.table["human_label"].value_counts()  # doctest: +SKIP
    """
    from ..core.embeddings import Embeddings
    from ..core.samples import Samples

    samples = data.samples if isinstance(data, Embeddings) else data
    if not isinstance(samples, Samples):
        raise DataexploreError("apply_labels needs Samples or Embeddings that know their samples")
    missing = [c for c in ("id", "label") if c not in labels.columns]
    if missing:
        raise DataexploreError(f"labels need columns {missing}: use dx.import_labels() to read them")
    labels = latest_per_sample(labels.assign(id=labels["id"].astype(str)), "apply_labels")
    labels = labels.set_index(labels["id"].rename(None))
    table = samples.table.copy()
    pos = rows_of(table["id"], labels.index, message="{count} labelled ids are not among the samples, e.g. {id!r}")
    new = {column: "label", f"{column}_annotator": "annotator", f"{column}_at": "annotated_at",
           f"{column}_source": "source", f"{column}_task": "task"}
    if column in table.columns and not overwrite:
        old = table[column].iloc[pos].to_numpy(dtype=object)
        clash = np.array([o is not None and not pd.isna(o) and str(o) != str(n)
                          for o, n in zip(old, labels["label"])], bool)
        if clash.any():
            raise DataexploreError(f"{int(clash.sum())} samples already have another {column!r}, e.g. "
                                   f"{labels.index[clash][0]!r}: pass overwrite=True to replace them")
    for dest, src in new.items():
        if dest not in table.columns:
            table[dest] = pd.Series([None] * len(table), dtype=object)
        else:
            table[dest] = table[dest].astype(object)
        if src in labels.columns:
            values = labels[src].to_numpy(dtype=object)
            table.loc[table.index[pos], dest] = [None if is_missing(v) else (str(v) if dest != column else v)
                                                 for v in values]
    out = Samples(table, images=samples.images, name=samples.name)
    if isinstance(data, Embeddings):
        return Embeddings(ids=data.ids, vectors=data.vectors, rows=data.rows, samples=out, model=data.model,
                          failures=data.failures, stats=dict(data.stats))
    return out


def _checked(labels: pd.DataFrame, path: Path) -> pd.DataFrame:
    if labels["id"].isna().any():
        raise SourceError(f"{path}: a labelled row has no sample id")
    labels["id"] = labels["id"].astype(str)
    labels["label"] = labels["label"].astype(object)
    return latest_per_sample(labels.reset_index(drop=True), path.name)


def _size(path: str) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size
