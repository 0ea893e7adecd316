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

from ..errors import SourceError
from .batch import LabelBatch


def write(batch: LabelBatch, folder: Path, paths: list[str], sizes: list[tuple[int, int]],
          document_root: str) -> None:
    """Write ``annotations.json``: predictions (if any) become annotations with their ``score``."""
    import os

    categories = [{"id": i + 1, "name": c, "supercategory": ""} for i, c in enumerate(batch.classes)]
    cat_id = {c["name"]: c["id"] for c in categories}
    images, annotations = [], []
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
    """Labels from a COCO-style JSON document (the last annotation of each image wins).

    Annotations with a ``score`` are model predictions (as in COCO result files, and as this module
    writes pre-annotations), not labels: they are skipped.
    """
    for key in ("images", "categories", "annotations"):
        if not isinstance(doc.get(key), list):
            raise SourceError(f"{path}: not a COCO file (no '{key}' list)")
    names = {c.get("id"): str(c.get("name")) for c in doc["categories"]}
    by_image = {img.get("id"): img for img in doc["images"]}
    lookup = _manifest_ids(path) if any("dx_id" not in img for img in doc["images"]) else {}
    rows = {}
    for ann in doc["annotations"]:
        if "score" in ann:
            continue
        img = by_image.get(ann.get("image_id"))
        if img is None:
            raise SourceError(f"{path}: annotation {ann.get('id')} points at unknown image {ann.get('image_id')}")
        if ann.get("category_id") not in names:
            raise SourceError(f"{path}: annotation {ann.get('id')} has unknown category {ann.get('category_id')}")
        dx_id = img.get("dx_id") or lookup.get(img.get("file_name"))
        if dx_id is None:
            raise SourceError(f"{path}: image {img.get('file_name')!r} has no dx_id and is not in manifest.csv")
        meta = {f"meta_{k}": v for k, v in (img.get("meta") or {}).items()}
        when = ann.get("updated_at") or ann.get("created_at") or ann.get("annotated_at")
        rows[dx_id] = {"id": dx_id, "label": names[ann["category_id"]], "annotator": ann.get("annotator"),
                       "annotated_at": when, "source": "coco", "task": ann.get("id"), **meta}
    meta_cols = sorted({k for r in rows.values() for k in r if k.startswith("meta_")})
    return pd.DataFrame(list(rows.values()), columns=["id", "label", "annotator", "annotated_at", "source", "task",
                                                       *meta_cols])


def _manifest_ids(path: Path) -> dict:
    manifest = path.parent / "manifest.csv"
    if not manifest.is_file():
        return {}
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    if "file_name" not in table.columns or "id" not in table.columns:
        return {}
    return dict(zip(table["file_name"], table["id"]))
