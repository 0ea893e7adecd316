"""Detection datasets in: COCO JSON, YOLO folders, Label Studio exports and FiftyOne ``Detections``
become :class:`~dataexplore.core.objects.Objects`, one row per box, in pixels.

:func:`load_objects` is the one entry point; it tells the format from the source. What each format
becomes:

========================  ==============================  ==========================================
format                    image ids                       extra columns
========================  ==============================  ==========================================
COCO JSON                 the COCO image id, as text      images: ``coco_id``, ``file_name``;
                                                          boxes: ``coco_id``, ``coco_ann_id`` (ground
                                                          truth), ``coco_category_id``, ``iscrowd``,
                                                          ``area``
YOLO folder               the image's path below          boxes: ``yolo_class``
                          ``images/``
Label Studio JSON export  the task id, as text            images: ``task_id``, ``url``; boxes:
                                                          ``region_id``, ``rotation``
FiftyOne collection       the sample id                   boxes: ``field``; object ids are the
                                                          detections' ids
========================  ==============================  ==========================================

Every file is untrusted input: a file of the wrong shape is one :class:`~dataexplore.SourceError`
naming it; one bad entry is one row of :attr:`Objects.problems <dataexplore.core.objects.Objects>`
with its reason, the action taken and ``where`` it was read (``file:line`` for YOLO,
``file:annotations[i]`` for COCO), and the rest loads. Reasons a reader adds to those of
:func:`~dataexplore.core.objects.check_boxes` (not a number, zero size, unknown image, outside the
image, extends past it, prediction without a score):

- *unknown category* (a COCO ``category_id`` or a YOLO class not among the named classes);
- *path outside the images folder* (a ``file_name`` such as ``../../etc/passwd``; never opened);
- *malformed annotation* / *malformed line* (the entry is not a box at all);
- *rotated box, its axis-aligned bounds kept* and *polygon, its bounding box kept* (converted);
- an image whose size cannot be read (missing or broken file, where the size is needed): its boxes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.errors import SourceError
from ..core.objects import COLUMNS, PROBLEM_COLUMNS, Objects
from ..core.samples import Samples
from .detection_formats import Read, problem, read_coco, read_fiftyone, read_json, read_label_studio, read_yolo
from .load import is_fiftyone

#: The formats and the keyword arguments of :func:`load_objects` each one reads.
FORMATS: dict[str, frozenset[str]] = {
    "coco": frozenset({"images", "predictions"}),
    "yolo": frozenset({"images", "predictions", "classes"}),
    "label-studio": frozenset({"images"}),
    "fiftyone": frozenset({"ground_truth_field", "predictions_field"}),
}
_ALIASES = {"label_studio": "label-studio", "labelstudio": "label-studio", "ultralytics": "yolo"}
_ACCEPTED = ("a COCO annotations JSON file, a YOLO folder (images/ and labels/), a Label Studio JSON export "
             "or a FiftyOne dataset or view")


def load_objects(source: Any, *, images: str | os.PathLike[str] | None = None,
                 predictions: str | os.PathLike[str] | None = None, format: str = "auto",
                 classes: Sequence[str] | None = None, ground_truth_field: str | None = "ground_truth",
                 predictions_field: str | None = None, name: str = "") -> Objects:
    """Read the boxes of a detection dataset: ground truth, predictions with scores, or both.

    Parameters
    ----------
    source
        One of:

        - a COCO annotations file (``images`` with ``id``, ``file_name``, ``width``, ``height``;
          ``categories``; ``annotations`` with ``bbox`` ``[x, y, w, h]`` in pixels, ``category_id``,
          ``iscrowd``, ``area``);
        - a YOLO folder: ``images/`` and ``labels/`` mirroring each other (Ultralytics' layout, e.g.
          ``images/train/a.jpg`` and ``labels/train/a.txt``), or label files beside the images. Each
          line is ``class cx cy w h`` (ground truth) or ``class cx cy w h score`` (a prediction),
          normalised to 0..1; a segmentation polygon becomes its bounding box. Class names come
          from ``classes``, else ``data.yaml``'s ``names``, else ``classes.txt``, else the class
          numbers. Image sizes are read from the file headers (EXIF rotation applied, as the
          images are decoded);
        - a Label Studio "JSON" export: a list of tasks with ``data.image`` and
          ``rectanglelabels`` results in ``annotations`` (ground truth) and ``predictions`` (their
          ``score``, or the prediction's). Boxes are in percent of ``original_width`` and
          ``original_height``; a rotated box becomes its axis-aligned bounds (a problem row says so);
          cancelled annotations are skipped. Image URLs (``/data/local-files/?d=...``,
          ``/data/upload/...``) are found in ``images`` by file name; the URL is kept in ``url``;
        - a FiftyOne dataset or view with ``fo.Detections`` fields (relative ``[x, y, w, h]``; image
          sizes from ``sample.metadata``, computed when missing);
        - ``"fashion-scenes[:train|test[:N]]"``: scenes composed offline from real Fashion-MNIST
          items, with exact boxes (:func:`~dataexplore.sources.scenes.fashion_scenes`).
    images : path, optional
        The folder image paths are relative to: COCO's ``file_name`` (default: the JSON file's
        folder), Label Studio's file names (default: the JSON file's folder), YOLO's images
        (default: ``source/images``, or ``source`` itself). No path outside it is opened.
    predictions : path, optional
        COCO: a results file (a list of ``{image_id, category_id, bbox, score}``). YOLO: a second
        folder of label files, every box a prediction (e.g. ``runs/detect/predict/labels``, matched
        to images by relative path, else by file name).
    format : {"auto", "coco", "yolo", "label-studio", "fiftyone"}
        ``"auto"`` decides from the source: a folder is YOLO, a JSON list of tasks Label Studio, a
        JSON object with ``annotations`` (or ``images`` and ``categories``) COCO, a FiftyOne
        collection FiftyOne.
    classes : sequence of str, optional
        YOLO class names, by class number.
    ground_truth_field, predictions_field : str, optional
        FiftyOne ``Detections`` fields (``None``: not read).
    name : str
        A short description; default from the source.

    Returns
    -------
    Objects
        Boxes in pixels (``x``, ``y`` top-left, ``w``, ``h``), ``label``, ``score`` (NaN for ground
        truth) and ``kind``; the images as :class:`~dataexplore.core.samples.Samples` with
        ``filepath``, ``width`` and ``height``; every box set aside in ``problems``.

    Raises
    ------
    dataexplore.SourceError
        If the source is none of the formats, a file is not of its format's shape (the message
        names the file), or an argument does not apply to the format.

    Examples
    --------
    >>> import json, tempfile, pathlib, dataexplore as dx
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> coco = {"images": [{"id": 7, "file_name": "a.jpg", "width": 640, "height": 480}],
    ...         "categories": [{"id": 1, "name": "person"}],
    ...         "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 20, 100, 200],
    ...                          "iscrowd": 0, "area": 20000.0},
    ...                         {"id": 2, "image_id": 7, "category_id": 9, "bbox": [0, 0, 5, 5]}]}
    >>> _ = (folder / "instances.json").write_text(json.dumps(coco))
    >>> obj = dx.load_objects(folder / "instances.json")
    >>> obj.table[["image_id", "x", "y", "w", "h", "label", "kind"]].values.tolist()
    [['7', 10.0, 20.0, 100.0, 200.0, 'person', 'ground_truth']]
    >>> obj.problems[["reason", "where"]].values.tolist()
    [['unknown category', 'instances.json:annotations[1]']]
    """
    from .scenes import is_scenes_spec, load_scenes

    if isinstance(source, str) and is_scenes_spec(source):  # "fashion-scenes:train:500", composed offline
        return load_scenes(source)
    fmt, data = _detect(source, format)
    given = {arg for arg, value in (("images", images), ("predictions", predictions), ("classes", classes),
                                    ("predictions_field", predictions_field)) if value is not None}
    if ground_truth_field != "ground_truth":
        given.add("ground_truth_field")
    if given - FORMATS[fmt]:
        raise SourceError(f"{', '.join(sorted(given - FORMATS[fmt]))} does not apply to a {fmt} source "
                          f"(it reads {', '.join(sorted(FORMATS[fmt]))})")
    if fmt == "fiftyone":
        read = read_fiftyone(source, ground_truth_field, predictions_field)
    else:
        path = Path(source).expanduser()
        folder = Path(images).expanduser() if images is not None else None
        if folder is not None and not folder.is_dir():
            raise SourceError(f"images folder not found: {folder}")
        if fmt == "coco":
            read = read_coco(path, data, folder or path.parent, predictions)
        elif fmt == "yolo":
            read = read_yolo(path, folder, predictions, classes)
        else:
            read = read_label_studio(path, data, folder or path.parent)
    return assemble(read, name)


def _detect(source: Any, format: str) -> tuple[str, Any]:
    """The format of ``source`` and, for a JSON file, its parsed content."""
    fmt = _ALIASES.get(format, format)
    if fmt != "auto" and fmt not in FORMATS:
        raise SourceError(f"unknown detection format {format!r}: one of 'auto', {', '.join(map(repr, FORMATS))}")
    if is_fiftyone(source) or (hasattr(source, "match_tags") and hasattr(source, "count")):
        if fmt not in ("auto", "fiftyone"):
            raise SourceError(f"a FiftyOne collection is read with format='fiftyone', not {format!r}")
        return "fiftyone", None
    if fmt == "fiftyone":
        raise SourceError(f"format='fiftyone' needs a FiftyOne dataset or view, got {type(source).__name__}")
    if not isinstance(source, (str, os.PathLike)):
        raise SourceError(f"cannot read boxes from a {type(source).__name__}: expected {_ACCEPTED}")
    path = Path(source).expanduser()
    if path.is_dir():
        if fmt in ("auto", "yolo"):
            return "yolo", None
        raise SourceError(f"a {fmt} source is a JSON file, got the folder {path}")
    if not path.is_file():
        raise SourceError(f"source not found: {os.fspath(source)!r} (expected {_ACCEPTED})")
    if fmt == "yolo":
        raise SourceError(f"a YOLO source is a folder (images/ and labels/), got the file {path}")
    data = read_json(path)
    if fmt != "auto":
        return fmt, data
    if isinstance(data, list) and all(isinstance(t, dict) and "data" in t for t in data):
        return "label-studio", data
    if isinstance(data, dict) and ("annotations" in data or {"images", "categories"} <= set(data)):
        return "coco", data
    if isinstance(data, list) and data and all(isinstance(r, dict) and "bbox" in r for r in data):
        raise SourceError(f"{path} is a COCO results file (predictions): pass the annotations file as the source "
                          "and this one as predictions=")
    raise SourceError(f"{path} is neither a COCO annotations file nor a Label Studio JSON export "
                      f"(expected {_ACCEPTED})")


def assemble(read: Read, name: str = "") -> Objects:
    """The :class:`Objects` of a reader's rows: images set aside take their boxes with them."""
    rejected = {im["id"]: (im["_reason"], im.get("_where")) for im in read.images if im.get("_reason")}
    image_rows = [{k: v for k, v in im.items() if not k.startswith("_")} for im in read.images
                  if not im.get("_reason")]
    problems, rows, had_boxes = list(read.problems), [], set()
    for box in read.boxes:
        if box["image_id"] in rejected:
            had_boxes.add(box["image_id"])
            problems.append(problem(rejected[box["image_id"]][0], box["where"], image_id=box["image_id"],
                                    kind=box["kind"], label=box["label"], box=[box[c] for c in "xywh"]))
        else:
            rows.append(box)
    for image_id, (reason, where) in rejected.items():
        if image_id not in had_boxes:
            problems.append(problem(reason, where, image_id=image_id))
    images = _frame(image_rows, ["id", "filepath", "width", "height"], read.int_columns)
    table = _frame(rows, [*(c for c in COLUMNS if c != "id"), "where"], read.int_columns)
    images[["width", "height"]] = images[["width", "height"]].astype(np.float64)
    table[["x", "y", "w", "h", "score"]] = table[["x", "y", "w", "h", "score"]].astype(np.float64)
    found = pd.DataFrame(problems, columns=list(PROBLEM_COLUMNS))
    samples = Samples(images, name=name or read.name, provenance=read.provenance)
    return Objects(table, samples, problems=found, name=name or read.name)


def _frame(rows: list[dict], first: list[str], int_columns: Sequence[str]) -> pd.DataFrame:
    """Rows as a table with at least the columns ``first``, in front; the integer columns exact (nullable
    ``Int64``, so ids survive a round trip to pycocotools and a prediction's missing annotation id is <NA>)."""
    frame = pd.DataFrame(rows)
    for column in first:
        if column not in frame.columns:
            frame[column] = None
    for column in int_columns:
        if column in frame.columns:
            frame[column] = pd.array([row.get(column) for row in rows], dtype="Int64")
    return frame[[*first, *(c for c in frame.columns if c not in first)]]
