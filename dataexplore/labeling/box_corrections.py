"""Boxes back from annotators, compared with the boxes that were sent: kept, moved, relabelled, added, deleted.

:func:`dataexplore.labeling.boxes.import_boxes` reads a labeling tool's file into returned boxes
(:mod:`~dataexplore.labeling.box_formats`) and :func:`compare` decides, image by image,
what the annotator did to each box:

- a returned box is paired with a sent box of its image first by **id** (the Label Studio region
  ``id`` or the COCO ``dx_object_id``, both the sent object id when the tool kept it), then by
  **IoU**: the remaining pairs with IoU >= ``iou`` are taken greedily, highest IoU first (on equal
  IoU a pair with the same label first);
- a paired box is ``"kept"`` when its box is the same (IoU with the sent box >= ``keep_iou``,
  0.95 by default, so float rounding and a tiny nudge are not moves) and its label too;
  ``"moved"`` when only the box changed; ``"relabelled"`` when only the label changed;
  ``"moved+relabelled"`` when both did. The boolean columns ``moved`` and ``relabelled`` say the
  same per flag, so ``table[table.relabelled]`` finds both kinds of relabelled boxes;
- a returned box paired with nothing is ``"added"``; a sent box of an *annotated* image paired with
  nothing is ``"deleted"``;
- an image the file holds but nobody annotated (a Label Studio task without a submitted
  annotation; a COCO image without annotations) is *not annotated*: its sent boxes get the status
  ``"not annotated"`` and are **not** deleted.

A returned box that is not a box (no numbers, zero size, outside its image) is set aside in
:attr:`BoxCorrections.problems` with its reason, by the rules of
:func:`~dataexplore.core.objects.check_boxes` (which also reports, with the action it takes, a box
extending past its image). Only a file of the wrong shape as a whole is a
:class:`~dataexplore.SourceError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError
from ..core.ids import rows_of
from ..core.objects import GROUND_TRUTH, PROBLEM_COLUMNS, Objects, box_iou, check_boxes
from .box_formats import Returned

KEPT, MOVED, RELABELLED, MOVED_RELABELLED = "kept", "moved", "relabelled", "moved+relabelled"
ADDED, DELETED, NOT_ANNOTATED = "added", "deleted", "not annotated"
#: Every status of :attr:`BoxCorrections.table`, in the order :meth:`BoxCorrections.summary` lists them.
STATUSES = (KEPT, MOVED, RELABELLED, MOVED_RELABELLED, ADDED, DELETED, NOT_ANNOTATED)
#: The statuses of boxes the annotator returned (they are the image's boxes after the correction).
RETURNED = (KEPT, MOVED, RELABELLED, MOVED_RELABELLED, ADDED)
#: Columns of :attr:`BoxCorrections.table`.
CORRECTION_COLUMNS = ("status", "object_id", "image_id", "old_label", "new_label", "old_x", "old_y", "old_w",
                      "old_h", "new_x", "new_y", "new_w", "new_h", "iou", "matched_by", "moved", "relabelled",
                      "region_id", "annotator", "annotated_at")
_BOX_COLUMNS = ("image_id", "region_id", "x", "y", "w", "h", "label", "annotator", "annotated_at", "where")


@dataclass(eq=False)
class BoxCorrections:
    """An annotator's boxes compared with the boxes sent to them (see the module docs for the rules).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per box (columns :data:`CORRECTION_COLUMNS`): ``status`` (one of :data:`STATUSES`),
        ``object_id`` (the sent box; None for an added one), ``image_id``, ``old_label`` /
        ``old_x`` .. ``old_h`` (the sent box, NaN for an added one), ``new_label`` / ``new_x`` ..
        ``new_h`` (the returned box, NaN for a deleted or not annotated one), ``iou`` between the
        two, ``matched_by`` (``"id"``, ``"iou"`` or None), the ``moved`` / ``relabelled`` flags,
        the returned ``region_id``, and the provenance: ``annotator`` and ``annotated_at`` (for a
        deleted box, those of the annotation that left it out).
    images : pandas.DataFrame
        One row per image of the file: ``image_id``, ``status`` (``"annotated"`` or
        ``"not annotated"``), ``annotator``, ``annotated_at``, ``task``, ``sent`` and ``returned``
        box counts.
    problems : pandas.DataFrame
        Returned boxes and images set aside (or converted, or kept with a warning), with
        ``reason``, ``action`` and ``where``.
    kind : str
        Which boxes of the objects were sent: ``"prediction"`` or ``"ground_truth"``.
    source : str
        The file read.
    iou, keep_iou : float
        The thresholds used.

    Examples
    --------
    >>> corrections = dx.import_boxes("project-7-at-2026-11-30.json", objects)  # doctest: +SKIP
    >>> corrections.summary()  # doctest: +SKIP
    >>> fixed = corrections.apply(objects)  # doctest: +SKIP
    """

    table: pd.DataFrame
    images: pd.DataFrame
    problems: pd.DataFrame
    kind: str
    source: str = ""
    iou: float = 0.5
    keep_iou: float = 0.95

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in self.summary().items() if n)
        annotated = int((self.images["status"] == "annotated").sum())
        return (f"<BoxCorrections {Path(self.source).name or '?'}: {annotated} of {len(self.images)} images "
                f"annotated; {counts or 'no boxes'}>")

    def _repr_html_(self) -> str:
        from ..core.htmlsafe import frame_html

        return frame_html(self.table, caption=repr(self))

    def summary(self) -> pd.Series:
        """How many boxes have each status (every status listed, zeros included).

        Examples
        --------
        >>> corrections.summary().to_dict()  # doctest: +SKIP
        {'kept': 3, 'moved': 1, 'relabelled': 1, 'moved+relabelled': 0, 'added': 1, 'deleted': 1,
         'not annotated': 2}
        """
        counts = self.table["status"].value_counts()
        return pd.Series({s: int(counts.get(s, 0)) for s in STATUSES}, name="boxes", dtype=np.int64)

    def apply(self, objects: Objects) -> Objects:
        """The corrected ground truth: the annotator's boxes where an image was annotated, the original
        ground truth elsewhere.

        Parameters
        ----------
        objects : Objects
            The objects the corrections were made on (the same images).

        Returns
        -------
        Objects
            Ground-truth boxes only (``kind`` ``"ground_truth"``, no score). In an annotated image the
            returned boxes replace every ground-truth box it had (the annotator saw the whole image):
            ``provenance`` ``"labeler:<annotator>"`` (``"labeler:unknown"`` when the file does not
            say), ``correction`` its status, ``corrects`` the sent object id (None for an added box).
            A corrected box keeps its object id when the sent boxes were ground truth; otherwise (and
            for added boxes) its id is ``"<image id>/labeler/<n>"``, so it can sit beside the
            predictions. Every other image keeps its ground truth, ``provenance`` ``"original"`` (or
            the provenance it already had).
        """
        if not isinstance(objects, Objects):
            raise DataexploreError(f"apply needs the Objects the boxes were sent from, got {type(objects).__name__}")
        known = set(objects.images.ids)
        foreign = [i for i in self.images["image_id"] if i not in known]
        if foreign:
            raise DataexploreError(f"these corrections are for other images (e.g. {foreign[0]!r} is not among the "
                                   "objects' images): apply them to the objects that were exported")
        annotated = set(self.images.loc[self.images["status"] == "annotated", "image_id"])
        gt = objects.ground_truth().table
        kept = gt[~gt["image_id"].isin(annotated)].copy()
        prior = kept["provenance"] if "provenance" in kept.columns else pd.Series(None, index=kept.index, dtype=object)
        kept["provenance"] = prior.astype(object).where(prior.notna(), "original")
        for column in ("correction", "corrects"):
            kept[column] = kept[column].astype(object) if column in kept.columns else None
        new = self.table[self.table["status"].isin(RETURNED)]
        counter: dict[str, int] = {}
        taken = set(objects.table["id"])  # a second round of review must not reuse the first round's ids
        ids = []
        for oid, image in zip(new["object_id"], new["image_id"]):
            if self.kind == GROUND_TRUTH and oid is not None:
                ids.append(oid)
            else:
                n = counter.get(image, -1) + 1
                while f"{image}/labeler/{n}" in taken:
                    n += 1
                counter[image] = n
                taken.add(f"{image}/labeler/{n}")
                ids.append(f"{image}/labeler/{n}")
        who = new["annotator"].astype(object).where(new["annotator"].notna(), "unknown")
        fixed = pd.DataFrame({"id": ids, "image_id": new["image_id"].to_numpy(), "x": new["new_x"].to_numpy(),
                              "y": new["new_y"].to_numpy(), "w": new["new_w"].to_numpy(),
                              "h": new["new_h"].to_numpy(), "label": new["new_label"].to_numpy(), "score": np.nan,
                              "kind": GROUND_TRUTH, "provenance": ["labeler:" + str(w) for w in who],
                              "correction": new["status"].to_numpy(), "corrects": new["object_id"].to_numpy()})
        table = pd.concat([kept, fixed], ignore_index=True) if len(kept) else fixed
        order = np.argsort(rows_of(objects.images.ids, table["image_id"]), kind="stable")
        return Objects(table.iloc[order], objects.images, name=f"{objects.name} (corrected)".strip())


def compare(returned: Returned, objects: Objects, *, kind: str, iou: float = 0.5, keep_iou: float = 0.95,
            source: str = "") -> BoxCorrections:
    """Pair the returned boxes with the sent ones (``objects`` of ``kind``), image by image."""
    boxes = pd.DataFrame(returned.boxes, columns=list(_BOX_COLUMNS))
    boxes["kind"], boxes["score"] = GROUND_TRUTH, np.nan
    boxes[["x", "y", "w", "h"]] = boxes[["x", "y", "w", "h"]].astype(np.float64)
    good, found = check_boxes(boxes, objects.images.table)
    problems = pd.DataFrame(returned.problems, columns=list(PROBLEM_COLUMNS))
    problems = pd.concat([p for p in (problems, found) if len(p)], ignore_index=True) if len(found) else problems
    sent = _Boxes(objects.table[objects.table["kind"] == kind].rename(columns={"id": "object_id"}))
    back = _Boxes(good)
    rows: list[dict] = []
    for image in returned.images:
        s, r = sent.of(image["image_id"]), back.of(image["image_id"])
        image["sent"], image["returned"] = len(s), len(r)
        if image["status"] == "annotated":
            rows += _pair(sent, s, back, r, image, iou, keep_iou)
        else:
            rows += [_row(NOT_ANNOTATED, sent.records[j], None, np.nan, None, {}) for j in s]
    table = _text_as_objects(pd.DataFrame(rows, columns=list(CORRECTION_COLUMNS)))
    table[["moved", "relabelled"]] = table[["moved", "relabelled"]].astype(bool)
    image_table = _text_as_objects(pd.DataFrame(returned.images, columns=["image_id", "status", "annotator",
                                                                          "annotated_at", "task", "sent", "returned"]))
    return BoxCorrections(table=table, images=image_table, problems=problems.reset_index(drop=True), kind=kind,
                          source=source, iou=iou, keep_iou=keep_iou)


class _Boxes:
    """Boxes as plain records and an ``N×4`` array, with the rows of each image."""

    def __init__(self, table: pd.DataFrame):
        table = _text_as_objects(table.reset_index(drop=True).copy())
        self.records: list[dict] = table.to_dict("records")
        self.xywh = table[["x", "y", "w", "h"]].to_numpy(np.float64)
        self.labels = table["label"].astype(str).to_numpy(dtype=object)
        self._rows = {str(k): v for k, v in table.groupby("image_id", sort=False).indices.items()}

    def of(self, image_id: str) -> np.ndarray:
        return np.asarray(self._rows.get(image_id, []), np.int64)


def _pair(sent: _Boxes, s: np.ndarray, back: _Boxes, r: np.ndarray, image: dict, iou: float,
          keep_iou: float) -> list[dict]:
    """The rows of one annotated image (sent rows ``s``, returned rows ``r``): paired by id, then greedily by IoU."""
    partner = np.full(len(r), -1, np.int64)  # position in s of each returned box's partner
    how: list[str | None] = [None] * len(r)
    where_sent = {sent.records[j]["object_id"]: k for k, j in enumerate(s)}
    taken = np.zeros(len(s), bool)
    for i, j in enumerate(r):
        k = where_sent.get(back.records[j]["region_id"], -1) if back.records[j]["region_id"] is not None else -1
        if k >= 0 and not taken[k]:
            partner[i], how[i], taken[k] = k, "id", True
    overlap = box_iou(back.xywh[r], sent.xywh[s])
    new_labels, old_labels = back.labels[r], sent.labels[s]
    pairs = sorted((-overlap[i, k], new_labels[i] != old_labels[k], int(i), int(k))
                   for i in np.flatnonzero(partner < 0) for k in np.flatnonzero(~taken) if overlap[i, k] >= iou - 1e-12)
    for _, _, i, k in pairs:
        if partner[i] < 0 and not taken[k]:
            partner[i], how[i], taken[k] = k, "iou", True
    rows = []
    for i, j in enumerate(r):
        new = back.records[j]
        if partner[i] < 0:
            rows.append(_row(ADDED, None, new, np.nan, None, image))
            continue
        old, ov = sent.records[s[partner[i]]], float(overlap[i, partner[i]])
        moved, relabelled = ov < keep_iou, str(new["label"]) != str(old["label"])
        status = {(False, False): KEPT, (True, False): MOVED, (False, True): RELABELLED,
                  (True, True): MOVED_RELABELLED}[(moved, relabelled)]
        rows.append(_row(status, old, new, ov, how[i], image))
    rows += [_row(DELETED, sent.records[s[k]], None, np.nan, None, image) for k in np.flatnonzero(~taken)]
    return rows


def _row(status: str, old: dict | None, new: dict | None, ov: float, how: str | None, image: dict) -> dict:
    nan = np.nan
    either = old if old is not None else new
    return {"status": status, "object_id": None if old is None else str(old["object_id"]),
            "image_id": str(either["image_id"]) if either is not None else None,
            "old_label": None if old is None else old["label"], "new_label": None if new is None else new["label"],
            **{f"old_{c}": nan if old is None else float(old[c]) for c in "xywh"},
            **{f"new_{c}": nan if new is None else float(new[c]) for c in "xywh"},
            "iou": ov, "matched_by": how, "moved": status in (MOVED, MOVED_RELABELLED),
            "relabelled": status in (RELABELLED, MOVED_RELABELLED),
            "region_id": None if new is None else new["region_id"],
            "annotator": new["annotator"] if new is not None else image.get("annotator"),
            "annotated_at": new["annotated_at"] if new is not None else image.get("annotated_at")}


def _text_as_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as object dtype with None where missing (pandas 3 would make them ``str`` with NaN)."""
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column]):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame
