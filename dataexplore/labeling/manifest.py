"""The plain CSV manifest every labeling export writes, and reading labels from a CSV."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import SourceError
from .batch import LabelBatch


def write(batch: LabelBatch, folder: Path, paths: list[str], document_root: str) -> None:
    """``manifest.csv``: ``id``, ``file_name`` (relative to the document root), ``image`` (absolute path),
    ``prediction``, ``score``, an empty ``label`` column for annotators, and the metadata as ``meta_*``."""
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
    table.to_csv(folder / "manifest.csv", index=False)


def read(path: Path, label_column: str = "label", id_column: str | None = None) -> pd.DataFrame:
    """Labels from a CSV with an id column (``dx_id`` or ``id``) and a label column; empty labels are skipped."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
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
