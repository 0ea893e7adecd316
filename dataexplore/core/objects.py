"""Objects: the boxes in a set of images, ground truth and predictions, one row per box.

Every detection source (COCO JSON, YOLO folders, FiftyOne ``Detections``, Label Studio rectangles;
:mod:`dataexplore.sources.detections`) becomes :class:`Objects`: a table of boxes beside the
:class:`~dataexplore.core.samples.Samples` of the images they are in. Boxes are in pixels, ``x``,
``y`` the top-left corner and ``w``, ``h`` the size (COCO's convention), on images whose ``width``
and ``height`` the samples table holds.

Boxes from a file are untrusted: :func:`check_boxes` keeps the good ones and reports every other one
with its reason, so one bad box never stops a run:

- *not a number* (a coordinate is NaN or infinite), *zero or negative size*, *unknown image* (its
  image id is not among the images), *outside the image* (no overlap with it): dropped;
- *extends past the image*: kept as it is (evaluation tools such as pycocotools score the box as
  given, and clipping would change its IoU with the truth); a crop of it is black past the edge;
- *prediction without a score* (missing, not finite, or outside 0..1): dropped.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .errors import SourceError
from .ids import locate
from .samples import Samples, check_unique_ids

#: The two kinds of box.
GROUND_TRUTH, PREDICTION = "ground_truth", "prediction"
#: Columns every objects table has (sources may add more: ``iscrowd``, ``area``, attributes).
COLUMNS = ("id", "image_id", "x", "y", "w", "h", "label", "score", "kind")
#: Columns of :attr:`Objects.problems`.
PROBLEM_COLUMNS = ("image_id", "kind", "label", "x", "y", "w", "h", "reason", "action", "where")


class Objects:
    """Boxes in images: one row per ground-truth or predicted object.

    Build one with a reader of :mod:`dataexplore.sources.detections` (``dx.load_objects``).

    Parameters
    ----------
    table : pandas.DataFrame
        Columns :data:`COLUMNS` (``id`` may be missing: then ``"<image_id>/<kind>/<n>"``); more
        columns are kept.
    images : Samples
        The images; its table needs ``width`` and ``height`` (pixels) for every image with boxes.
    problems : pandas.DataFrame, optional
        Boxes a reader already set aside (columns :data:`PROBLEM_COLUMNS`); the boxes of ``table``
        that fail :func:`check_boxes` are added.
    name : str

    Attributes
    ----------
    table : pandas.DataFrame
        The kept boxes, ``id`` unique.
    images : Samples
    problems : pandas.DataFrame
        Every box dropped or kept with a warning, with its ``reason``, the ``action`` taken and ``where`` it was
        read (file and position, when the reader knows).

    Examples
    --------
    >>> import numpy as np, pandas as pd, dataexplore as dx
    >>> from dataexplore.core.objects import Objects
    >>> imgs = dx.load(np.zeros((2, 20, 30), np.uint8))
    >>> boxes = pd.DataFrame({"image_id": ["0", "0", "1"], "x": [2, 25, 1], "y": [3, 5, 1], "w": [10, 10, 0],
    ...                       "h": [5, 5, 4], "label": ["cat", "dog", "cat"], "kind": "ground_truth"})
    >>> obj = Objects(boxes, imgs)
    >>> obj.table[["id", "x", "w"]].to_dict("list")
    {'id': ['0/ground_truth/0', '0/ground_truth/1'], 'x': [2.0, 25.0], 'w': [10.0, 10.0]}
    >>> obj.problems[["image_id", "reason", "action"]].values.tolist()
    [['0', 'extends past the image', 'kept'], ['1', 'zero or negative size', 'dropped']]
    """

    def __init__(self, table: pd.DataFrame, images: Samples, problems: pd.DataFrame | None = None,
                 name: str = ""):
        missing = [c for c in COLUMNS if c not in table.columns and c not in ("id", "score")]
        if missing:
            raise SourceError(f"an objects table needs the columns {missing}")
        images = _with_sizes(images)
        table = table.reset_index(drop=True).copy()
        if "score" not in table.columns:
            table["score"] = np.nan
        if "id" not in table.columns:
            table["id"] = _default_ids(table)
        table["id"] = table["id"].astype(str)
        table["image_id"] = table["image_id"].astype(str)
        table["label"] = table["label"].astype(str)
        odd = sorted(set(table["kind"].astype(str)) - {GROUND_TRUTH, PREDICTION})
        if odd:
            raise SourceError(f"kind must be {GROUND_TRUTH!r} or {PREDICTION!r} for every box, got {odd[:3]}")
        kept, found = check_boxes(table, images.table)
        check_unique_ids(kept["id"], "object")
        order = [*COLUMNS, *[c for c in kept.columns if c not in COLUMNS]]
        self.table = kept[order].reset_index(drop=True)
        self.images = images
        before = problems if problems is not None else pd.DataFrame(columns=list(PROBLEM_COLUMNS))
        self.problems = pd.concat([p for p in (before, found) if len(p)], ignore_index=True) \
            if len(before) or len(found) else pd.DataFrame(columns=list(PROBLEM_COLUMNS))
        self.name = name or images.name

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        kinds = self.table["kind"].value_counts()
        parts = [f"{int(kinds.get(k, 0))} {k.replace('_', ' ')}" for k in (GROUND_TRUTH, PREDICTION)
                 if kinds.get(k, 0)]
        bad = f", {len(self.problems)} problem boxes" if len(self.problems) else ""
        return f"<Objects {self.name!r}: {', '.join(parts) or 'no boxes'} in {len(self.images)} images{bad}>"

    @property
    def ids(self) -> np.ndarray:
        """Object ids as an object array of str, in row order."""
        return self.table["id"].to_numpy(dtype=object)

    @property
    def labels(self) -> list[str]:
        """The classes, sorted."""
        return sorted(self.table["label"].unique().tolist())

    def boxes(self) -> np.ndarray:
        """``N×4`` float64 ``[x, y, w, h]`` in pixels, in row order."""
        return self.table[["x", "y", "w", "h"]].to_numpy(np.float64)

    def of_kind(self, kind: str) -> "Objects":
        """Only the ground truth (``"ground_truth"``) or only the predictions (``"prediction"``)."""
        if kind not in (GROUND_TRUTH, PREDICTION):
            raise SourceError(f"kind must be {GROUND_TRUTH!r} or {PREDICTION!r}, got {kind!r}")
        return self.subset(np.flatnonzero((self.table["kind"] == kind).to_numpy()))

    def ground_truth(self) -> "Objects":
        """The ground-truth boxes."""
        return self.of_kind(GROUND_TRUTH)

    def predictions(self) -> "Objects":
        """The predicted boxes."""
        return self.of_kind(PREDICTION)

    def subset(self, rows: Sequence[int] | np.ndarray) -> "Objects":
        """A new :class:`Objects` with the given rows (same images, same problems)."""
        out = Objects.__new__(Objects)
        out.table = self.table.iloc[np.asarray(rows, np.int64)].reset_index(drop=True)
        out.images, out.problems, out.name = self.images, self.problems, self.name
        return out

    def in_image(self, image_id: str) -> pd.DataFrame:
        """Every box of one image (ground truth and predictions)."""
        return self.table[self.table["image_id"] == str(image_id)]

    @classmethod
    def concat(cls, parts: Sequence["Objects"], name: str = "") -> "Objects":
        """Ground truth and predictions (or several reads) over the same images, as one table."""
        parts = list(parts)
        if not parts:
            raise SourceError("nothing to concatenate")
        first = parts[0].images
        for p in parts[1:]:
            if not np.array_equal(p.images.ids, first.ids):
                raise SourceError("objects can only be combined over the same images (same ids, same order)")
        out = cls.__new__(cls)
        out.table = pd.concat([p.table for p in parts], ignore_index=True)
        check_unique_ids(out.table["id"], "object")
        out.images = first
        probs = [p.problems for p in parts if len(p.problems)]
        out.problems = pd.concat(probs, ignore_index=True) if probs else parts[0].problems
        out.name = name or parts[0].name
        return out


def check_boxes(table: pd.DataFrame, images: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The good boxes of ``table`` (those extending past their image kept as they are) and the problems.

    ``images`` is a samples table with ``id``, ``width`` and ``height``. See the module docs for
    the reasons.
    """
    n = len(table)
    xywh = table[["x", "y", "w", "h"]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    sizes = images.set_index(images["id"].astype(str))[["width", "height"]]
    rows, found = locate(sizes.index, table["image_id"].astype(str))
    pos = np.full(n, -1, np.int64)
    pos[found] = rows
    width = np.where(pos >= 0, sizes["width"].to_numpy(np.float64)[pos], np.nan)
    height = np.where(pos >= 0, sizes["height"].to_numpy(np.float64)[pos], np.nan)
    reason = np.full(n, None, dtype=object)
    action = np.full(n, None, dtype=object)

    def mark(mask: np.ndarray, why: str, what: str = "dropped") -> None:
        new = mask & (reason == None)  # noqa: E711  (element-wise on an object array)
        reason[new], action[new] = why, what

    mark(~np.isfinite(xywh).all(1), "not a number")
    with np.errstate(invalid="ignore"):
        mark((xywh[:, 2] <= 0) | (xywh[:, 3] <= 0), "zero or negative size")
        mark(pos < 0, "unknown image")
        x0, y0 = xywh[:, 0], xywh[:, 1]
        x1, y1 = x0 + xywh[:, 2], y0 + xywh[:, 3]
        mark((x1 <= 0) | (y1 <= 0) | (x0 >= width) | (y0 >= height), "outside the image")
        if "kind" in table.columns:
            score = pd.to_numeric(table["score"], errors="coerce").to_numpy(np.float64)
            bad_score = ~np.isfinite(score) | (score < 0) | (score > 1)
            mark((table["kind"] == PREDICTION).to_numpy() & bad_score, "prediction without a score")
        past = (x0 < 0) | (y0 < 0) | (x1 > width) | (y1 > height)
    mark(past, "extends past the image", "kept")
    bad = reason != None  # noqa: E711
    problems = pd.DataFrame({
        "image_id": table["image_id"].astype(str).to_numpy()[bad],
        "kind": table["kind"].to_numpy()[bad] if "kind" in table.columns else None,
        "label": table["label"].astype(str).to_numpy()[bad],
        "x": xywh[bad, 0], "y": xywh[bad, 1], "w": xywh[bad, 2], "h": xywh[bad, 3],
        "reason": reason[bad], "action": action[bad],
        "where": table["where"].to_numpy()[bad] if "where" in table.columns else None,
    }, columns=list(PROBLEM_COLUMNS))
    kept = table.copy()
    kept[["x", "y", "w", "h"]] = xywh
    kept = kept[(action == None) | (action == "kept")]  # noqa: E711
    return kept.drop(columns=["where"], errors="ignore"), problems


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every ``[x, y, w, h]`` box of ``a`` (n×4) with every box of ``b`` (m×4): an n×m array.

    (Plain IoU; :func:`dataexplore.analysis.matching.match` computes COCO's, crowd boxes included.)

    Examples
    --------
    >>> box_iou(np.array([[0, 0, 10, 10.]]), np.array([[5, 0, 10, 10.], [0, 0, 10, 10.]])).round(3).tolist()
    [[0.333, 1.0]]
    """
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2]) - np.maximum(a[:, None, 0], b[:, 0])
    ih = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3]) - np.maximum(a[:, None, 1], b[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _default_ids(table: pd.DataFrame) -> pd.Series:
    n = table.groupby(["image_id", "kind"], sort=False).cumcount()
    return table["image_id"].astype(str) + "/" + table["kind"].astype(str) + "/" + n.astype(str)


def _with_sizes(images: Samples) -> Samples:
    """``images`` with ``width`` and ``height`` columns: from the pixels of in-memory images; for files, a
    size the table lacks (an image sent without boxes, say) is read from the file's header."""
    t = images.table
    if images.images is not None:
        if {"width", "height"} <= set(t.columns):
            return images
        t = t.copy()
        t["height"], t["width"] = images.images.shape[1], images.images.shape[2]
        return Samples(t, images=images.images, name=images.name, provenance=images.provenance)
    if not {"width", "height"} <= set(t.columns):
        raise SourceError("the images of an objects table need 'width' and 'height' columns (pixels)")
    wh = t[["width", "height"]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64, copy=True)
    missing = np.flatnonzero(~np.isfinite(wh).all(1))
    if not len(missing):
        return images
    from .images import header_size

    for row in missing:
        path = t["filepath"].iloc[row]
        size = header_size(path) if isinstance(path, str) else None
        if isinstance(size, tuple):
            wh[row] = size
    t = t.assign(width=wh[:, 0], height=wh[:, 1])
    return Samples(t, name=images.name, provenance=images.provenance)
