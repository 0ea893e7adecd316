"""COCO-style JSON for image classification: images, categories, one annotation per labelled image.

COCO has no classification task of its own; the common convention, used here, is one annotation
per image with a ``category_id`` and no box. Exported files carry each image's dataexplore id as
``dx_id`` (and its metadata under ``meta``), so labels read back match the samples even when the
labeling tool renamed nothing else; files without ``dx_id`` (e.g. re-exported by another tool) are
matched on ``file_name`` through the batch's ``manifest.csv``.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import SourceError
from .batch import LabelBatch


def write(batch: LabelBatch, folder: Path, paths: list[str], sizes: list[tuple[int, int]],
          document_root: str) -> None:
    """Write ``annotations.json``: predictions (if any) become annotations with their ``score``."""
    import os

    categories = [{"id": i + 1, "name": c, "supercategory": ""} for i, c in enumerate(batch.classes)]
    cat_id = {c["name"]: c["id"] for c in categories}
    images: list[dict] = []
    annotations: list[dict] = []
    for i, (rec, path, (w, h), pred, score) in enumerate(zip(batch.records(), paths, sizes, batch.predictions,
                                                              batch.scores)):
        dx_id = rec.pop("id")
        images.append({"id": i + 1, "file_name": Path(os.path.relpath(path, document_root)).as_posix(),
                       "width": int(w), "height": int(h), "dx_id": dx_id, "meta": rec})
        if pred is not None:
            ann = {"id": len(annotations) + 1, "image_id": i + 1, "category_id": cat_id[str(pred)],
                   "iscrowd": 0, "area": 0, "bbox": []}
            if not np.isnan(score):
                ann["score"] = round(float(score), 6)
            annotations.append(ann)
    doc = {"info": {"description": f"{batch.name}: {batch.description}".rstrip(": "), "contributor": "dataexplore",
                    "date_created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()},
           "licenses": [], "images": images, "categories": categories, "annotations": annotations}
    (folder / "annotations.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def read(doc: dict, path: Path) -> pd.DataFrame:
    """Labels from a COCO-style JSON document, one row per annotation (an image annotated twice is
    resolved by :mod:`~dataexplore.labeling.conflicts`: latest wins, conflicts reported).

    Annotations with a ``score`` are model predictions (as in COCO result files, and as this module
    writes pre-annotations), not labels: they are skipped. Anything of the wrong shape is one
    :class:`SourceError` naming the file.
    """
    for key in ("images", "categories", "annotations"):
        if not isinstance(doc.get(key), list):
            raise SourceError(f"{path}: not a COCO file (no '{key}' list)")
        if not all(isinstance(item, dict) for item in doc[key]):
            raise SourceError(f"{path}: every entry of '{key}' must be an object")
    names = {_key(c.get("id")): str(c.get("name")) for c in doc["categories"]}
    by_image = {_key(img.get("id")): img for img in doc["images"]}
    lookup = _manifest_ids(path) if any("dx_id" not in img for img in doc["images"]) else {}
    rows = []
    for ann in doc["annotations"]:
        if "score" in ann:
            continue
        img = by_image.get(_key(ann.get("image_id")))
        if img is None:
            raise SourceError(f"{path}: annotation {ann.get('id')!r} points at unknown image {ann.get('image_id')!r}")
        if _key(ann.get("category_id")) not in names:
            raise SourceError(f"{path}: annotation {ann.get('id')!r} has unknown category {ann.get('category_id')!r}")
        dx_id = img.get("dx_id") or lookup.get(_key(img.get("file_name")))
        if dx_id is None:
            raise SourceError(f"{path}: image {img.get('file_name')!r} has no dx_id and is not in manifest.csv")
        if isinstance(dx_id, bool) or not isinstance(dx_id, (str, int)):
            raise SourceError(f"{path}: image {img.get('id')!r} has a dx_id that is not text")
        meta = img.get("meta") or {}
        if not isinstance(meta, dict):
            raise SourceError(f"{path}: image {img.get('id')!r} has 'meta' that is not an object")
        when = ann.get("updated_at") or ann.get("created_at") or ann.get("annotated_at")
        if when is not None and not isinstance(when, str):
            raise SourceError(f"{path}: annotation {ann.get('id')!r} has a time that is not text")
        who = ann.get("annotator")
        rows.append({"id": str(dx_id), "label": names[_key(ann["category_id"])],
                     "annotator": None if who is None else str(who), "annotated_at": when, "source": "coco",
                     "task": ann.get("id") if isinstance(ann.get("id"), (int, str)) else None,
                     **{f"meta_{k}": v if v is None or isinstance(v, (str, int, float, bool)) else str(v)
                        for k, v in meta.items()}})
    meta_cols = sorted({k for r in rows for k in r if k.startswith("meta_")})
    return pd.DataFrame(rows, columns=["id", "label", "annotator", "annotated_at", "source", "task", *meta_cols])


def _key(value):
    """An id usable as a dict key (unhashable ids from a crafted file become text)."""
    return value if isinstance(value, (str, int, float, type(None))) else repr(value)


def _manifest_ids(path: Path) -> dict:
    manifest = path.parent / "manifest.csv"
    if not manifest.is_file():
        return {}
    from ..core.io import csv_value
    from .manifest import read_csv_text

    table = read_csv_text(manifest).map(csv_value)
    table.columns = [csv_value(c) for c in table.columns]
    if "file_name" not in table.columns or "id" not in table.columns:
        return {}
    return dict(zip(table["file_name"], table["id"]))
