"""Boxes out to labelers and back: rectangle tasks for Label Studio, a COCO file for any box tool.

::

    folder = dx.export_boxes(objects, "batches/worst", images=worst_slice)   # Label Studio tasks
    corrections = dx.import_boxes("project-7-at-2026-11-30.json", objects)  # kept/moved/.../deleted
    ground_truth = corrections.apply(objects)                               # with provenance

**What is sent.** The work is on *images*: every image holding a box of ``objects`` (or the
images given), each with its boxes as pre-annotations for the annotator to correct. Those *sent*
boxes are the predictions when ``predictions=True`` and ``objects`` holds any (an image the
detector found nothing in is sent with none: the annotator draws what was missed); otherwise the
ground truth (so ground-truth boxes are pre-annotations when there are no predictions, or with
``predictions=False`` to have the ground truth reviewed). The choice is recorded in the files
(``dx_boxes``), so :func:`import_boxes` compares with the same boxes.

**What is written** (atomically, into a new folder; see :func:`dataexplore.core.io.replace_dir`):

- ``manifest.csv``: one row per sent box (``object_id``, ``image_id``, ``file_name``, ``image``,
  ``width``, ``height``, ``kind``, ``label``, ``score``, ``x``, ``y``, ``w``, ``h``) and one row, with
  an empty ``object_id``, per image sent without boxes;
- Label Studio: ``tasks.json``, one task per image: ``data.image`` (the image as Label Studio
  reaches it, as for :func:`~dataexplore.labeling.export_labeling`), ``data.dx_image_id``,
  ``data.dx_boxes``, and the sent boxes as ``predictions[0].result``: ``rectanglelabels`` in
  *percent* of ``original_width`` / ``original_height``, each result's ``id`` the object id (Label
  Studio copies it into the annotation made from the pre-annotation, so an edited box comes back
  matched by id; a box redrawn from scratch is matched by overlap), each box's
  ``score`` and the prediction's ``score`` (the mean of its boxes', for predictions);
  ``config.xml`` (an image with ``<RectangleLabels>`` over the classes); ``instructions.md``;
- COCO: ``annotations.json`` (``images`` with ``width``, ``height``, ``dx_id``; ``categories``;
  the sent boxes as ``annotations`` with ``bbox``, ``area``, ``iscrowd``, ``dx_object_id``;
  ``info.dx_boxes``), ``predictions.json`` (a COCO results file: every predicted box of those
  images with its ``score`` and ``dx_object_id``, whenever there are some; so
  ``predictions=False`` gives ground truth and predictions ready for ``pycocotools``'
  ``COCO(...).loadRes(...)``) and ``instructions.md``.

Images held in memory are written as PNG under ``images/``. Labels, ids and names are untrusted
text: the XML config quotes every attribute, the Markdown escapes HTML, file names are sanitised.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError, SourceError
from ..core.ids import rows_of
from ..core.objects import GROUND_TRUTH, PREDICTION, Objects
from ..sources.detection_formats import read_json
from . import box_formats as fmt, label_studio
from .batch import LabelBatch
from .box_corrections import BoxCorrections, compare
from .box_formats import rectangle_config

#: Formats :func:`export_boxes` writes and :func:`import_boxes` reads.
BOX_FORMATS = ("label-studio", "coco")
KIND = "box labeling batch"

__all__ = ["BOX_FORMATS", "BoxCorrections", "export_boxes", "import_boxes", "rectangle_config", "sent_kind"]


def sent_kind(objects: Objects, predictions: bool = True) -> str:
    """The kind of box sent to annotators: ``"prediction"`` if ``predictions`` and there are any, else
    ``"ground_truth"``."""
    has = bool((objects.table["kind"] == PREDICTION).any())
    return PREDICTION if predictions and has else GROUND_TRUTH


def export_boxes(objects: Objects, folder: str | os.PathLike, *, format: str = "label-studio", images: Any = None,
                 predictions: bool = True, classes: Sequence[str] | None = None, name: str | None = None,
                 instructions: str = "", document_root: str | None = None, url_prefix: str | None = None,
                 overwrite: bool = False) -> Path:
    """Write the images holding ``objects`` as box labeling work, their boxes as pre-annotations.

    Parameters
    ----------
    objects : Objects
        The boxes (ground truth and/or predictions); see the module docs for which are sent.
    folder : path
        The batch folder; an existing one is replaced only with ``overwrite=True`` (and only if
        dataexplore wrote it and nobody added files to it).
    format : {"label-studio", "coco"}
    images : sequence of image ids, or Objects, optional
        The images to send, in this order (e.g. the images of a failure slice: pass its Objects).
        Default: every image with a box, in the images' order.
    predictions : bool
        Send the predicted boxes (when there are any); ``False`` sends the ground truth.
    classes : sequence of str, optional
        The labels annotators may choose; default every label of ``objects``. Must include the
        labels of the sent boxes (COCO: predicted boxes of other labels are left out of
        ``predictions.json``).
    name : str, optional
        What the batch is (default: the objects' name).
    instructions : str
        Extra guidance for annotators, added to ``instructions.md``.
    document_root, url_prefix : str, optional
        How Label Studio reaches the images, as for :func:`~dataexplore.labeling.export_labeling`.
    overwrite : bool

    Returns
    -------
    pathlib.Path
        The batch folder.

    Examples
    --------
    >>> import numpy as np, pandas as pd, tempfile, dataexplore as dx
    >>> from dataexplore.core.objects import Objects
    >>> imgs = dx.load(np.zeros((2, 40, 80), np.uint8))
    >>> obj = Objects(pd.DataFrame({"image_id": ["0", "1"], "x": [8, 4], "y": [4, 0], "w": [20, 8], "h": [10, 8],
    ...                             "label": ["bag", "shoe"], "score": [0.9, 0.4], "kind": "prediction"}), imgs)
    >>> folder = export_boxes(obj, tempfile.mkdtemp() + "/batch")
    >>> task = json.loads((folder / "tasks.json").read_text())[0]
    >>> task["data"]["dx_image_id"], task["predictions"][0]["result"][0]["value"]
    ('0', {'x': 10.0, 'y': 10.0, 'width': 25.0, 'height': 25.0, 'rotation': 0, 'rectanglelabels': ['bag']})
    """
    if not isinstance(objects, Objects):
        raise DataexploreError(f"export_boxes needs Objects (dx.load_objects), got {type(objects).__name__}")
    if format not in BOX_FORMATS:
        raise DataexploreError(f"format must be one of {', '.join(BOX_FORMATS)}, got {format!r}")
    from ..core.io import replace_dir

    ids = _image_ids(objects, images)
    kind = sent_kind(objects, predictions)
    table = objects.table[objects.table["image_id"].isin(set(ids))]
    sent = table[table["kind"] == kind]
    labels = [str(c) for c in classes] if classes is not None else objects.labels
    if len(set(labels)) != len(labels) or not labels:
        raise DataexploreError(f"classes must be distinct and not empty, got {labels[:10]}")
    unknown = sorted(set(sent["label"]) - set(labels))
    if unknown:
        raise DataexploreError(f"the sent boxes have labels {unknown[:5]} that are not among the classes")
    name = name or objects.name or "boxes"
    final = Path(folder).expanduser().resolve()
    rows = rows_of(objects.images.ids, ids)
    image_table = objects.images.table.iloc[rows].reset_index(drop=True)
    batch = LabelBatch(table=image_table, samples=objects.images, rows=rows, classes=labels, name=name,
                       predictions=pd.Series([None] * len(ids), dtype=object),
                       scores=pd.Series(np.nan, index=image_table.index))
    unsized = image_table.loc[~np.isfinite(image_table[["width", "height"]].astype(float)).all(axis=1), "id"]
    if len(unsized):  # Objects reads missing sizes from the files; these had no readable file
        raise DataexploreError(f"{len(unsized)} images have no width and height and no readable file "
                               f"(e.g. {unsized.iloc[0]!r}): their boxes cannot be sent in pixels or percent")
    sizes = {i: (int(round(w)), int(round(h))) for i, w, h in zip(image_table["id"], image_table["width"].astype(float),
                                                                   image_table["height"].astype(float))}

    def fill(tmp: Path) -> None:
        import shutil

        written = batch.image_files(tmp / "images")
        for p in written:  # images inside the folder being replaced would go with it: keep copies
            if Path(p).is_relative_to(final):
                (tmp / Path(p).relative_to(final)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(p, tmp / Path(p).relative_to(final))
        paths = [str(final / Path(p).relative_to(tmp)) if Path(p).is_relative_to(tmp) else p for p in written]
        urls, root = label_studio.image_urls(paths, document_root, url_prefix if format == "label-studio" else None)
        files = [Path(os.path.relpath(p, root)).as_posix() for p in paths]
        fmt.write_manifest(tmp, ids, files, paths, sizes, sent)
        if format == "label-studio":
            fmt.write_json(tmp / "tasks.json", fmt.tasks_json(ids, urls, sizes, sent, kind, name))
            (tmp / "config.xml").write_text(rectangle_config(labels, name), encoding="utf-8")
        else:
            doc, results = fmt.coco_files(ids, files, sizes, sent, table, labels, kind, name)
            fmt.write_json(tmp / "annotations.json", doc)
            if results:
                fmt.write_json(tmp / "predictions.json", results)
        (tmp / "instructions.md").write_text(fmt.instructions_md(format, name, len(ids), len(sent), kind, labels, root,
                                                                 paths, url_prefix, instructions), encoding="utf-8")

    return replace_dir(final, fill, overwrite=overwrite, kind=KIND)


def import_boxes(path: str | os.PathLike, objects: Objects, *, iou: float = 0.5, keep_iou: float = 0.95,
                 kind: str | None = None, format: str = "auto") -> BoxCorrections:
    """Read the boxes annotators returned and compare them, image by image, with the boxes sent.

    Parameters
    ----------
    path : path
        Label Studio's JSON export of the project (tasks with ``annotations``), or a COCO
        annotations file written back by a tool (a batch folder: its ``annotations.json``).
    objects : Objects
        The objects the batch was exported from.
    iou : float
        A returned box without the id of a sent box is paired with the sent box it overlaps most,
        if their IoU is at least this.
    keep_iou : float
        A paired box whose IoU with its sent box is at least this is not *moved*.
    kind : {"prediction", "ground_truth"}, optional
        Which boxes of ``objects`` were sent; default what the file records (Label Studio: the
        tasks' ``dx_boxes``; COCO: ``info.dx_boxes`` or the annotations' ``dx_kind``), else as
        :func:`export_boxes` decides by default.
    format : {"auto", "label-studio", "coco"}

    Returns
    -------
    BoxCorrections
        Every box kept, moved, relabelled, added, deleted or in an image not annotated, with the
        annotator and time (see :mod:`~dataexplore.labeling.box_corrections` for the rules).

    Raises
    ------
    dataexplore.SourceError
        For a file that is missing, not JSON, not of the expected shape, or about none of the
        objects' images (one line naming the file).

    Examples
    --------
    >>> corrections = dx.import_boxes("project-7-at-2026-11-30.json", objects)  # doctest: +SKIP
    >>> corrections.table.query("status == 'moved'")  # doctest: +SKIP
    """
    if not isinstance(objects, Objects):
        raise DataexploreError(f"import_boxes needs the Objects the boxes were sent from, got {type(objects).__name__}")
    for label, value in (("iou", iou), ("keep_iou", keep_iou)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise DataexploreError(f"{label} must be a number in (0, 1], got {value!r}")
    if kind not in (None, GROUND_TRUTH, PREDICTION):
        raise DataexploreError(f"kind must be {GROUND_TRUTH!r} or {PREDICTION!r}, got {kind!r}")
    if format not in ("auto", *BOX_FORMATS):
        raise DataexploreError(f"format must be auto, {' or '.join(BOX_FORMATS)}, got {format!r}")
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "annotations.json"
    if not path.is_file():
        raise SourceError(f"boxes file not found: {path}")
    doc = read_json(path)
    images = objects.images.table
    if format == "label-studio" or (format == "auto" and isinstance(doc, list)):
        if not isinstance(doc, list):
            raise SourceError(f"{path} is not a Label Studio JSON export (a list of tasks)")
        sizes = dict(zip(images["id"], zip(images["width"].astype(float), images["height"].astype(float))))
        returned = fmt.read_label_studio(doc, path, sizes)
    elif format == "coco" or (format == "auto" and isinstance(doc, dict)):
        returned = fmt.read_coco(doc, path, set(images["id"]), fmt.manifest_files(path.parent))
    else:
        raise SourceError(f"{path} is neither a Label Studio JSON export nor a COCO annotations file")
    if not returned.images:
        raise SourceError(f"{path}: none of its images are among the objects' images" if returned.problems
                          else f"{path} holds no images or tasks")
    recorded = returned.kind if returned.kind in (GROUND_TRUTH, PREDICTION) else None
    return compare(returned, objects, kind=kind or recorded or sent_kind(objects), iou=float(iou),
                   keep_iou=float(keep_iou), source=str(path))


def _image_ids(objects: Objects, images: Any) -> list[str]:
    """The ids of the images to send, in order, each once."""
    if images is None:
        with_boxes = set(objects.table["image_id"])
        ids = [i for i in objects.images.ids if i in with_boxes]
    else:
        if isinstance(images, Objects):
            images = images.table["image_id"]
        elif isinstance(images, (str, int)):
            images = [images]
        ids = list(dict.fromkeys(str(i) for i in images))
        rows_of(objects.images.ids, ids, message="image id {id!r} is not among the objects' images "
                                                 "({count} unknown ids in all)")
    if not ids:
        raise DataexploreError("nothing to export: no image holds a box")
    return ids
