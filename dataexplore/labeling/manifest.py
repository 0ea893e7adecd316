"""The plain CSV manifest every labeling export writes, and reading labels from a CSV."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import SourceError
from .batch import LabelBatch


def read_csv_text(path: Path) -> pd.DataFrame:
    """A CSV file as strings, with one clear :class:`SourceError` for a file that is not UTF-8 CSV."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise SourceError(f"{path} is not a readable CSV file ({exc})") from None


def write(batch: LabelBatch, folder: Path, paths: list[str], document_root: str) -> None:
    """``manifest.csv``: ``id``, ``file_name`` (relative to the document root), ``image`` (absolute path),
    ``prediction``, ``score``, an empty ``label`` column for annotators, and the metadata as ``meta_*``.

    Text that a spreadsheet would run as a formula (``=...``, ``+...``, ``-...``, ``@...``) is written
    with a leading ``'`` (:func:`dataexplore.core.io.csv_text`); :func:`read` removes it again."""
    from ..core.io import csv_safe_frame

    meta = pd.DataFrame(batch.records()).drop(columns=["id"])
    table = pd.DataFrame({
        "id": batch.ids,
        "file_name": [Path(os.path.relpath(p, document_root)).as_posix() for p in paths],
        "image": paths,
        "prediction": batch.predictions.to_numpy(dtype=object),
        "score": batch.scores.round(6).to_numpy(),
        "label": "",
    })
    table = pd.concat([table, meta.add_prefix("meta_")], axis=1)
    csv_safe_frame(table).to_csv(folder / "manifest.csv", index=False)


def read(path: Path, label_column: str = "label", id_column: str | None = None) -> pd.DataFrame:
    """Labels from a CSV with an id column (``dx_id`` or ``id``) and a label column; empty labels are skipped.

    Cells protected against formula injection (a leading ``'``) are read back as written."""
    from ..core.io import csv_value

    table = read_csv_text(path)
    table = table.map(csv_value)
    table.columns = [csv_value(c) for c in table.columns]
    id_column = id_column or ("dx_id" if "dx_id" in table.columns else "id")
    for col in (id_column, label_column):
        if col not in table.columns:
            raise SourceError(f"{path} has no {col!r} column; it has {list(table.columns)}")
    table = table[table[label_column].str.strip() != ""]
    out = pd.DataFrame({
        "id": table[id_column].to_numpy(dtype=object),
        "label": table[label_column].str.strip().to_numpy(dtype=object),
        "annotator": table["annotator"].replace("", None).to_numpy(dtype=object) if "annotator" in table else None,
        "annotated_at": table["annotated_at"].replace("", None).to_numpy(dtype=object)
        if "annotated_at" in table else None,
        "source": "csv",
        "task": np.arange(1, len(table) + 1),
    })
    meta = table[[c for c in table.columns if c.startswith("meta_")]].reset_index(drop=True)
    return pd.concat([out, meta], axis=1)
