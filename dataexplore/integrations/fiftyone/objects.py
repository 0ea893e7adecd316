"""Boxes to FiftyOne and back: :class:`~dataexplore.core.objects.Objects` as ``fo.Detections``, a CVAT
run on the images of selected objects, and the returned boxes compared with the ones sent.

::

    dataset = dx.fiftyone.to_fiftyone(objects, name="scenes")                 # samples + Detections
    req = dx.fiftyone.cvat_boxes_request(dataset, ex.selection, anno_key="fix_boxes")
    req.run()                                                                  # needs a CVAT server
    # ... annotators correct the boxes in CVAT ...
    dataset.load_annotations("fix_boxes")
    corrections = dx.fiftyone.boxes_from_fiftyone(req.view, objects)          # kept/moved/.../deleted
    ground_truth = corrections.apply(objects)

**How a box is written.** Each box becomes an ``fo.Detection`` with ``label``, ``bounding_box``
(``[x, y, w, h]`` relative to the image: the pixel box divided by the image's ``width`` and
``height`` from ``objects.images``), ``confidence`` (predictions only) and the attribute
``dx_object_id`` (the object's id). A box extending past its image is written as it is (FiftyOne
allows it). Each sample gets ``metadata`` (an ``fo.ImageMetadata`` with that width and height) and
the text field ``dx_image_id`` (the image's id in ``objects``). ``dataset.info["dataexplore"]["objects"]``
records which field holds which kind of box.

**How boxes come back.** CVAT edits the boxes of ``label_field``; ``dataset.load_annotations``
merges its answer into that field, keeping the FiftyOne id (and so the ``dx_object_id``) of every
box the annotator kept, moved or relabelled, dropping the deleted ones and adding new ones without
a ``dx_object_id``. :func:`boxes_from_fiftyone` reads the field and pairs the boxes with the ones
sent, by ``dx_object_id`` first, then by IoU, with the rules of
:mod:`dataexplore.labeling.box_corrections` (the same as a Label Studio or COCO import).

``fiftyone`` is imported on first use: ``pip install dataexplore[fiftyone]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...core.errors import DataexploreError, require
from ...core.objects import GROUND_TRUTH, PREDICTION, Objects
from ...labeling.box_corrections import BoxCorrections, compare
from ...labeling.box_formats import Returned
from ._collections import INSTALL, _check_collection, _check_field_name, _dataset, _info, _selected_ids
from .cvat import AnnotationRequest, cvat_request

#: The detection attribute holding the object id, and the sample field holding the image id.
OBJECT_ID, IMAGE_ID = "dx_object_id", "dx_image_id"

__all__ = ["IMAGE_ID", "OBJECT_ID", "boxes_from_fiftyone", "cvat_boxes_request", "to_fiftyone"]


def to_fiftyone(objects: Objects, dataset: Any = None, *, name: str | None = None,
                ground_truth_field: str | None = "ground_truth", predictions_field: str | None = "predictions",
                image_dir: str | os.PathLike[str] | None = None, overwrite: bool = False) -> Any:
    """The images of ``objects`` as FiftyOne samples with their boxes in ``fo.Detections`` fields.

    Parameters
    ----------
    objects : Objects
        The boxes (ground truth and/or predictions) and their images; every image becomes a sample
        (an image without boxes gets empty ``Detections``).
    dataset : fiftyone.core.collections.SampleCollection, optional
        An existing dataset or view to add the fields to instead: its samples are matched to the
        images by ``filepath`` (every image must be found, and its size must agree with the
        sample's ``metadata`` where that is set; missing metadata is filled in).
    name : str, optional
        The new dataset's name (default: FiftyOne's next free default name). Not with ``dataset``.
        The dataset is not persistent: set ``dataset.persistent = True`` to keep it (an annotation
        run lasts longer than a session).
    ground_truth_field, predictions_field : str or None
        The ``Detections`` fields for the ground truth and the predictions (``None``: that kind is
        not written). A kind without any box is not written either.
    image_dir : path, optional
        Where in-memory images are written as PNG files (``<safe image id>.png``), since a FiftyOne
        sample is a file. Default: ``<fo.config.default_dataset_dir>/<dataset name>/images``.
        Images that are files keep their paths.
    overwrite : bool
        Replace a dataset of the same ``name``; with ``dataset``, replace the values the matched
        samples already have in the fields.

    Returns
    -------
    fiftyone.core.dataset.Dataset
        The new dataset, or ``dataset`` itself.

    Raises
    ------
    dataexplore.DataexploreError
        Bad field names, a dataset name already in use, images not found in ``dataset`` (how many,
        and the first), sizes that disagree with its metadata, fields of another type, or values
        that would be replaced without ``overwrite``.

    Examples
    --------
    >>> objects = dx.load_objects("fashion-scenes:test:20")  # doctest: +SKIP
    >>> ds = dx.fiftyone.to_fiftyone(objects, name="scenes")  # doctest: +SKIP
    >>> ds.first().ground_truth.detections[0].dx_object_id  # doctest: +SKIP
    'test-scene-00000/ground_truth/0'
    >>> dx.load_objects(ds).boxes()  # the same pixel boxes, under FiftyOne's ids  # doctest: +SKIP
    """
    feature = "dataexplore.integrations.fiftyone.to_fiftyone"
    if not isinstance(objects, Objects):
        raise DataexploreError(f"to_fiftyone needs Objects (dx.load_objects), got {type(objects).__name__}")
    fields = _fields(objects, ground_truth_field, predictions_field)
    if dataset is not None:
        if name is not None or image_dir is not None:
            raise DataexploreError("name and image_dir are for a new dataset: pass either dataset= or name=")
        fo = _check_collection(dataset, feature)
        return _add_to(fo, dataset, objects, fields, overwrite)
    fo = require("fiftyone", feature, INSTALL)
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise DataexploreError(f"a dataset name must be non-empty text, got {name!r}")
        if fo.dataset_exists(name) and not overwrite:
            raise DataexploreError(f"a FiftyOne dataset named {name!r} exists: pass overwrite=True to replace it, "
                                   "or dataset=fo.load_dataset(...) to add the boxes to its samples")
    else:
        from fiftyone.core.dataset import get_default_dataset_name

        name = get_default_dataset_name()
    from ...core.io import safe_name

    folder = Path(image_dir).expanduser() if image_dir is not None else \
        Path(fo.config.default_dataset_dir) / safe_name(name) / "images"
    paths = _image_files(objects, folder)
    table = objects.images.table
    sizes = table[["width", "height"]].to_numpy(np.float64)
    per_field = {f: _detections(fo, objects, kind) for f, kind in fields.items()}
    samples = []
    for row, (image_id, path) in enumerate(zip(objects.images.ids, paths)):
        values = {f: fo.Detections(detections=dets.get(image_id, [])) for f, dets in per_field.items()}
        samples.append(fo.Sample(filepath=path, metadata=_metadata(fo, sizes[row]), **{IMAGE_ID: str(image_id)},
                                 **values))
    ds = fo.Dataset(name, overwrite=overwrite)
    ds.add_samples(samples, dynamic=True)
    _record(ds, fields)
    return ds


def cvat_boxes_request(objects_or_collection: Any, selection: Any, *, anno_key: str,
                       label_field: str = "ground_truth", classes: Any = None,
                       **backend_kwargs: Any) -> AnnotationRequest:
    """Prepare a CVAT run that corrects the boxes of the images of the selected objects; the user starts it.

    Parameters
    ----------
    objects_or_collection : Objects or fiftyone.core.collections.SampleCollection
        A collection made by :func:`to_fiftyone` (or with its ``dx_object_id`` / ``dx_image_id``);
        or ``Objects``, written first to a new dataset by ``to_fiftyone(objects)`` (the request's
        ``view`` holds it).
    selection : Selection, Objects or sequence of str
        What to annotate: the images of the selected objects. A :class:`~dataexplore.Selection` or a
        list of object ids (e.g. from the object map), of image ids, or of FiftyOne sample ids; or
        an ``Objects`` (e.g. a failure slice: the images its boxes are in).
    anno_key : str
        The annotation run's key (a valid Python identifier, not already used).
    label_field : str
        The ``Detections`` field CVAT edits: its boxes are the ones sent (``"predictions"`` to have
        a detector's boxes corrected).
    classes : sequence of str, optional
        The labels annotators may choose; default every label of the objects (given ``Objects``),
        else the labels of ``label_field`` in the collection.
    **backend_kwargs
        More arguments of ``view.annotate`` (``url``, ``username``, ``launch_editor``, ...). By
        default ``attributes=False``: ``dx_object_id`` is not shown to annotators (FiftyOne keeps
        it on every box they edit, through its label ids).

    Returns
    -------
    AnnotationRequest
        ``view`` the selected images, ``kwargs`` with ``backend="cvat"`` and
        ``label_type="detections"``.

    Raises
    ------
    dataexplore.DataexploreError
        An empty selection, ids that are none of the collection's objects, images or samples (how
        many, and the first), and the errors of :func:`~dataexplore.integrations.fiftyone.cvat_request`.

    Examples
    --------
    >>> ds = dx.fiftyone.to_fiftyone(objects)  # doctest: +SKIP
    >>> req = dx.fiftyone.cvat_boxes_request(ds, ex.selection, anno_key="fix_boxes")  # doctest: +SKIP
    >>> req.kwargs["label_type"], len(req.view)  # doctest: +SKIP
    ('detections', 12)
    >>> req.run()  # needs a CVAT server  # doctest: +SKIP
    """
    if isinstance(objects_or_collection, Objects):
        if classes is None:
            classes = objects_or_collection.labels
        collection = to_fiftyone(objects_or_collection)
    else:
        collection = objects_or_collection
        _check_collection(collection, "dataexplore.integrations.fiftyone.cvat_boxes_request")
    sample_ids = _selected_samples(collection, selection)
    backend_kwargs.setdefault("attributes", False)
    return cvat_request(collection, sample_ids, anno_key=anno_key, label_field=label_field, classes=classes,
                        label_type="detections", **backend_kwargs)


def boxes_from_fiftyone(collection: Any, objects: Objects, *, label_field: str = "ground_truth",
                        iou: float = 0.5, keep_iou: float = 0.95, kind: str | None = None,
                        anno_key: str | None = None) -> BoxCorrections:
    """Compare the boxes of ``label_field`` (after ``load_annotations``) with the boxes sent from ``objects``.

    Parameters
    ----------
    collection : fiftyone.core.collections.SampleCollection
        The annotated samples: the request's ``view``, ``dataset.load_annotation_view(anno_key)``,
        or any collection made by :func:`to_fiftyone` (every sample in it counts as annotated).
        Samples are matched to the images by ``dx_image_id``, else by sample id (objects read from
        FiftyOne), else by ``filepath``.
    objects : Objects
        The objects the boxes were sent from (before the correction).
    label_field : str
        The ``Detections`` field CVAT edited.
    iou : float
        A returned box without the ``dx_object_id`` of a sent box is paired with the sent box it
        overlaps most, if their IoU is at least this.
    keep_iou : float
        A paired box whose IoU with its sent box is at least this is not *moved*.
    kind : {"ground_truth", "prediction"}, optional
        Which boxes of ``objects`` were sent; default what :func:`to_fiftyone` recorded for
        ``label_field``, else the kind of the objects whose ids the field holds, else ground truth.
    anno_key : str, optional
        An annotation run of the collection: only its samples are read, and its CVAT ``username``
        (when recorded) is the ``annotator`` of every box.

    Returns
    -------
    BoxCorrections
        Every box kept, moved, relabelled, added or deleted (see
        :mod:`~dataexplore.labeling.box_corrections`); ``corrections.apply(objects)`` gives the
        corrected ground truth. Boxes that are not boxes are in ``problems``.

    Raises
    ------
    dataexplore.DataexploreError
        For a collection that is not FiftyOne, a field that is not ``Detections``, or no sample among
        the objects' images.

    Examples
    --------
    >>> dataset.load_annotations("fix_boxes")  # doctest: +SKIP
    >>> corrections = dx.fiftyone.boxes_from_fiftyone(req.view, objects)  # doctest: +SKIP
    >>> corrections.summary().to_dict()  # doctest: +SKIP
    {'kept': 40, 'moved': 3, 'relabelled': 1, 'moved+relabelled': 0, 'added': 2, 'deleted': 1, 'not annotated': 0}
    """
    fo = _check_collection(collection, "dataexplore.integrations.fiftyone.boxes_from_fiftyone")
    if not isinstance(objects, Objects):
        raise DataexploreError(f"boxes_from_fiftyone needs the Objects the boxes were sent from, got "
                               f"{type(objects).__name__}")
    for label, value in (("iou", iou), ("keep_iou", keep_iou)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise DataexploreError(f"{label} must be a number in (0, 1], got {value!r}")
    if kind not in (None, GROUND_TRUTH, PREDICTION):
        raise DataexploreError(f"kind must be {GROUND_TRUTH!r} or {PREDICTION!r}, got {kind!r}")
    _check_field_name(label_field, "label_field")
    annotator = None
    if anno_key is not None:
        if not collection.has_annotation_run(anno_key):
            raise DataexploreError(f"the collection has no annotation run {anno_key!r}")
        annotator = getattr(collection.get_annotation_info(anno_key).config, "username", None)
        collection = collection.load_annotation_view(anno_key)
    schema = collection.get_field_schema()
    if label_field not in schema:
        raise DataexploreError(f"the collection has no field {label_field!r}; its Detections fields: "
                               f"{_detection_fields(schema) or 'none'}")
    if getattr(schema[label_field], "document_type", None) is not fo.Detections:
        raise DataexploreError(f"field {label_field!r} holds {type(schema[label_field]).__name__} values, not "
                               "Detections")
    returned = _returned(collection, objects, label_field, annotator)
    if not returned.images:
        raise DataexploreError("none of the collection's samples are among the objects' images (matched by "
                               f"{IMAGE_ID}, sample id or filepath): pass the objects the boxes were sent from")
    if kind is None:
        kind = _info(_dataset(fo, collection)).get("objects", {}).get(label_field) or \
            _kind_of(objects, [b["region_id"] for b in returned.boxes])
    name = getattr(collection, "dataset_name", None) or "fiftyone"
    return compare(returned, objects, kind=kind, iou=float(iou), keep_iou=float(keep_iou),
                   source=f"fiftyone:{name}:{label_field}")


# --- writing -----------------------------------------------------------------------------------

def _fields(objects: Objects, ground_truth_field: str | None, predictions_field: str | None) -> dict[str, str]:
    """The fields to write (field -> kind): named, distinct, and only for kinds that have boxes."""
    named = {kind: f for kind, f in ((GROUND_TRUTH, ground_truth_field), (PREDICTION, predictions_field))
             if f is not None}
    for kind, f in named.items():
        _check_field_name(f, f"{kind.replace('_', ' ')} field")
        if f in ("filepath", "metadata", "id", "tags", IMAGE_ID):
            raise DataexploreError(f"{f!r} is a field FiftyOne or dataexplore uses for something else")
    if len(set(named.values())) < len(named):
        raise DataexploreError(f"the ground truth and the predictions need two fields, got {ground_truth_field!r} "
                               "for both")
    kinds = set(objects.table["kind"])
    fields = {f: kind for kind, f in named.items() if kind in kinds}
    if not fields:
        raise DataexploreError("nothing to write: the objects have no " +
                               " and no ".join(k.replace("_", " ") for k in named) + " boxes" if named
                               else "name a ground_truth_field or a predictions_field")
    return fields


def _image_files(objects: Objects, folder: Path) -> list[str]:
    """An absolute path per image: its own file, or a PNG written under ``folder`` for in-memory pixels."""
    from ...labeling.batch import LabelBatch

    images = objects.images
    n = len(images)
    batch = LabelBatch(table=images.table, samples=images, rows=np.arange(n), classes=[],
                       predictions=pd.Series([None] * n, dtype=object), scores=pd.Series(np.nan, index=range(n)))
    return batch.image_files(folder)


def _detections(fo: Any, objects: Objects, kind: str) -> dict[str, list]:
    """Each image's boxes of one kind as ``fo.Detection`` (relative box, ``dx_object_id``, confidence)."""
    table = objects.table[objects.table["kind"] == kind]
    sizes = objects.images.table.set_index("id")[["width", "height"]].astype(np.float64)
    wh = sizes.loc[table["image_id"]].to_numpy()
    rel = table[["x", "y", "w", "h"]].to_numpy(np.float64) / np.hstack([wh, wh])
    out: dict[str, list] = {}
    for n, (oid, image_id, label, score) in enumerate(zip(table["id"], table["image_id"], table["label"],
                                                          table["score"])):
        extra = {"confidence": float(score)} if kind == PREDICTION else {}
        out.setdefault(str(image_id), []).append(
            fo.Detection(label=str(label), bounding_box=[float(v) for v in rel[n]], **extra, **{OBJECT_ID: str(oid)}))
    return out


def _metadata(fo: Any, size: np.ndarray) -> Any:
    return fo.ImageMetadata(width=int(round(size[0])), height=int(round(size[1])))


def _add_to(fo: Any, collection: Any, objects: Objects, fields: dict[str, str], overwrite: bool) -> Any:
    """Write the fields into the samples of ``collection`` matched by file path."""
    table = objects.images.table
    if "filepath" not in table.columns or objects.images.images is not None:
        raise DataexploreError("in-memory images cannot be matched to samples by file path: call "
                               "to_fiftyone(objects) without dataset= to make a dataset of them")
    ours = [None if not isinstance(p, str) else os.path.abspath(os.path.expanduser(p)) for p in table["filepath"]]
    theirs: dict[str, list[str]] = {}
    for sid, path in zip(collection.values("id"), collection.values("filepath")):
        theirs.setdefault(os.path.abspath(path), []).append(sid)
    unknown = [i for i, p in zip(objects.images.ids, ours) if p is None or p not in theirs]
    if unknown:
        raise DataexploreError(f"{len(unknown)} of the {len(table)} images are not samples of the collection "
                               f"(matched by filepath; first: image {unknown[0]!r})")
    twice = [p for p in ours if p is not None and len(theirs[p]) > 1]
    if twice:
        raise DataexploreError(f"{len(twice)} images match more than one sample of the collection (first: {twice[0]})")
    sample_ids = [theirs[p][0] for p in ours if p is not None]
    schema = collection.get_field_schema()
    for f in fields:
        if f in schema and getattr(schema[f], "document_type", None) is not fo.Detections:
            raise DataexploreError(f"field {f!r} holds {type(schema[f]).__name__} values, not Detections: "
                                   "pass another field name")
    if IMAGE_ID in schema and not isinstance(schema[IMAGE_ID], fo.core.fields.StringField):
        raise DataexploreError(f"field {IMAGE_ID!r} holds {type(schema[IMAGE_ID]).__name__} values, not the image "
                               "ids dataexplore keeps there: rename it first")
    view = collection.select(sample_ids, ordered=True)
    for f in fields:
        if f in schema and not overwrite:
            taken = view.exists(f).count()
            if taken:
                raise DataexploreError(f"{taken} of the {len(sample_ids)} images already have {f!r} detections: "
                                       "pass overwrite=True to replace them")
    sizes = table[["width", "height"]].to_numpy(np.float64)
    have_w, have_h = view.values("metadata.width"), view.values("metadata.height")
    wrong = [(i, w, h, s) for i, w, h, s in zip(objects.images.ids, have_w, have_h, sizes)
             if w is not None and h is not None and (abs(w - s[0]) > 0.5 or abs(h - s[1]) > 0.5)]
    if wrong:
        i, w, h, s = wrong[0]
        raise DataexploreError(f"{len(wrong)} images have another size in FiftyOne's metadata than in the objects "
                               f"(first: image {i!r}, {w}x{h} in FiftyOne, {s[0]:g}x{s[1]:g} in the objects)")
    missing = {sid: _metadata(fo, s) for sid, w, h, s in zip(sample_ids, have_w, have_h, sizes)
               if w is None or h is None}
    if missing:
        collection.set_values("metadata", missing, key_field="id")
    collection.set_values(IMAGE_ID, dict(zip(sample_ids, (str(i) for i in objects.images.ids))), key_field="id")
    by_image = dict(zip((str(i) for i in objects.images.ids), sample_ids))
    for f, kind in fields.items():
        dets = _detections(fo, objects, kind)
        values = {sid: fo.Detections(detections=dets.get(image_id, [])) for image_id, sid in by_image.items()}
        collection.set_values(f, values, key_field="id", dynamic=True)
    _record(_dataset(fo, collection), fields)
    return collection


def _record(dataset: Any, fields: dict[str, str]) -> None:
    """Note in ``dataset.info`` which field holds which kind of box (for :func:`boxes_from_fiftyone`)."""
    _info(dataset, create=True).setdefault("objects", {}).update(fields)
    dataset.save()


# --- selecting and reading back ------------------------------------------------------------------

def _selected_samples(collection: Any, selection: Any) -> list[str]:
    """The sample ids of the images of the selected objects (object, image or sample ids, or Objects)."""
    if isinstance(selection, Objects):
        ids = list(dict.fromkeys(str(i) for i in selection.table["image_id"]))
        if not ids:
            raise DataexploreError("the selection is empty: select some objects first")
    else:
        ids, _ = _selected_ids(selection)
    schema = collection.get_field_schema()
    sample_ids = collection.values("id")
    lookup: dict[str, str] = {}
    for f in _detection_fields(schema):
        for sid, oids in zip(sample_ids, collection.values(f"{f}.detections.{OBJECT_ID}")):
            lookup.update((str(o), sid) for o in oids or [] if o is not None)
    if IMAGE_ID in schema:
        lookup.update((str(i), sid) for i, sid in zip(collection.values(IMAGE_ID), sample_ids) if i is not None)
    lookup.update((sid, sid) for sid in sample_ids)
    unknown = [i for i in ids if i not in lookup]
    if unknown:
        raise DataexploreError(f"{len(unknown)} of the {len(ids)} selected ids are none of the collection's objects "
                               f"({OBJECT_ID}), images ({IMAGE_ID}) or samples (first: {unknown[0]!r})")
    return list(dict.fromkeys(lookup[i] for i in ids))


def _detection_fields(schema: dict) -> list[str]:
    """The names of the ``Detections`` fields of a schema, sorted."""
    return sorted(f for f, v in schema.items()
                  if getattr(getattr(v, "document_type", None), "__name__", "") == "Detections")


def _returned(collection: Any, objects: Objects, label_field: str, annotator: str | None) -> Returned:
    """The boxes of ``label_field`` in pixels, per sample matched to one of the objects' images."""
    images = objects.images.table
    known = set(images["id"])
    by_path = {os.path.abspath(p): i for i, p in zip(images["id"], images["filepath"])
               if isinstance(p, str)} if "filepath" in images.columns else {}
    sizes = dict(zip(images["id"], images[["width", "height"]].to_numpy(np.float64)))
    sample_ids, paths = collection.values("id"), collection.values("filepath")
    tagged = collection.values(IMAGE_ID) if IMAGE_ID in collection.get_field_schema() else [None] * len(sample_ids)
    columns = [collection.values(f"{label_field}.detections.{a}") for a in ("label", "bounding_box", OBJECT_ID)]
    out = Returned([], [], [])
    seen: set[str] = set()
    for sid, path, tag, labels, bboxes, oids in zip(sample_ids, paths, tagged, *columns):
        image_id = next((i for i in (tag, sid, by_path.get(os.path.abspath(path))) if i is not None and i in known),
                        None)
        if image_id is None or image_id in seen:
            out.problems.append(_problem("image not among the objects' images" if image_id is None else
                                         "image read twice (two samples of one image)", sid, image_id))
            continue
        seen.add(image_id)
        out.images.append({"image_id": image_id, "status": "annotated", "annotator": annotator,
                           "annotated_at": None, "task": sid})
        w, h = sizes[image_id]
        labels, bboxes = labels or [], bboxes or []
        oids = oids or [None] * len(labels)  # no box carries dx_object_id here: matched by overlap
        for n, (label, bbox, oid) in enumerate(zip(labels, bboxes, oids)):
            where = f"{sid}:{label_field}[{n}]"
            if label is None:
                out.problems.append(_problem("no label", where, image_id))
                continue
            box = _relative(bbox)
            out.boxes.append({"image_id": image_id, "region_id": None if oid is None else str(oid),
                              "x": box[0] * w, "y": box[1] * h, "w": box[2] * w, "h": box[3] * h,
                              "label": str(label), "annotator": annotator, "annotated_at": None, "where": where})
    return out


def _relative(bbox: Any) -> list[float]:
    """A FiftyOne ``bounding_box`` as four floats (NaN where it is not four numbers: a problem row later)."""
    ok = isinstance(bbox, (list, tuple)) and len(bbox) == 4 and \
        all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)
    return [float(v) for v in bbox] if ok else [float("nan")] * 4


def _problem(reason: str, where: str, image_id: str | None) -> dict:
    nan = float("nan")
    return {"image_id": image_id, "kind": GROUND_TRUTH, "label": None, "x": nan, "y": nan, "w": nan, "h": nan,
            "reason": reason, "action": "skipped" if reason.startswith("image") else "dropped", "where": where}


def _kind_of(objects: Objects, ids: list[str | None]) -> str:
    """The kind of the objects whose ids came back (the sent boxes); ground truth when none did."""
    kinds = objects.table.set_index("id")["kind"]
    found = kinds.reindex([i for i in ids if i is not None]).dropna()
    if len(found):
        return str(found.value_counts().index[0])
    return GROUND_TRUTH
