"""Matching predictions to ground truth, box by box, as COCO's evaluation does.

:func:`match` decides for every box of an :class:`~dataexplore.core.objects.Objects` table holding
ground truth and predictions whether a ground-truth object was *found* or *missed* and whether a
prediction is a *true positive*, a *false positive* or *ignored*. The rules are those of
pycocotools' ``COCOeval.evaluateImg`` for boxes, and the result equals its ``dtMatches``,
``dtIgnore`` and ``gtMatches`` (``tests/test_matching.py`` checks it on random data):

- per image and per class (per image only with ``class_agnostic=True``), predictions are taken in
  order of score, highest first (ties keep the table's order: a stable sort, as pycocotools);
- only the first ``max_detections`` predictions of each image and class are evaluated (COCO's
  ``maxDets``, which ``evaluateImg`` applies per image *and category*); the rest are *ignored*;
- each prediction takes, among the ground-truth boxes not yet taken, the one with the highest IoU
  of at least ``iou`` (on equal IoU the later box in the table: in class, then table order when
  class-agnostic, as pycocotools lists categories); if there is none, it may fall on a
  *crowd* box (``iscrowd`` truthy): crowd boxes are "ignore" regions that absorb any number of
  predictions, which are then *ignored*, neither true nor false positives; a regular box is always
  preferred to a crowd box;
- IoU is pycocotools' ``maskUtils.iou`` on ``x, y, w, h`` boxes (no +1 on sizes); against a crowd
  box it is the intersection over the prediction's area.

Beyond COCO's verdicts, the result keeps the evidence a person looks at next: the IoU with the
partner or, for what is left unmatched, the best IoU with any box of the same class ("the box was
there but too loose"), and ``confused_with``: the class of an overlapping box of *another* class
("a look-alike was predicted") as opposed to no box at all.

The work is vectorised: overlapping pairs of boxes are found image by image in numpy chunks of at
most :data:`PAIR_CHUNK` box pairs, and only predictions that compete for the same ground-truth box
go through the (inherently sequential) greedy step, one short Python step each.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError
from ..core.objects import GROUND_TRUTH, PREDICTION, Objects

#: Status of a ground-truth box matched by a prediction.
FOUND = "found"
#: Status of a ground-truth box no prediction matched.
MISSED = "missed"
#: Status of a prediction matched to a ground-truth box.
TRUE_POSITIVE = "true positive"
#: Status of a prediction that matches no ground-truth box.
FALSE_POSITIVE = "false positive"
#: Status of crowd boxes, of predictions on them and of predictions beyond ``max_detections``.
IGNORED = "ignored"
#: Columns :func:`match` adds to the objects table.
MATCH_COLUMNS = ("status", "match_id", "iou", "confused_with")
#: Count and rate columns of :attr:`Matches.images` and :meth:`Matches.summary`.
COUNT_COLUMNS = ("ground_truth", "predictions", "true_positives", "false_positives", "ignored", "missed",
                 "precision", "recall")
#: Largest number of (prediction, ground truth) pairs whose IoU is computed at once.
PAIR_CHUNK = 2_000_000
#: pycocotools never asks for more than this IoU (``min(t, 1 - 1e-10)``), so that 1.0 still matches.
_IOU_CAP = 1 - 1e-10


class Matches:
    """Predictions matched to ground truth (see :func:`match`).

    Attributes
    ----------
    objects : pandas.DataFrame
        The objects table (same rows, same order) with four more columns:

        - ``status``: ``"found"`` / ``"missed"`` for ground truth, ``"true positive"`` /
          ``"false positive"`` for predictions, ``"ignored"`` for crowd boxes, for predictions that
          fell on a crowd box (``match_id`` is that box) and for predictions beyond
          ``max_detections`` (``match_id`` None, ``iou`` NaN);
        - ``match_id``: the partner's id, else None (a crowd box: the last prediction it absorbed,
          as pycocotools records it);
        - ``iou``: IoU with the partner; when unmatched, the best IoU with any box of the other
          kind and the same class (0.0 when none overlaps);
        - ``confused_with``: for a false positive, the class of the ground-truth box of another
          class it overlaps most with IoU >= the threshold; for a missed box, the same among
          predictions of another class; with ``class_agnostic=True`` also the partner's class when
          it differs. Else None.
    images : pandas.DataFrame
        One row per image of ``objects.images`` (indexed by image id), columns
        :data:`COUNT_COLUMNS`: ``ground_truth`` and ``predictions`` count every box (crowd boxes
        too), ``ignored`` the ignored predictions; ``precision`` = true positives / (true + false
        positives) and ``recall`` = found / (found + missed), NaN where nothing is counted.
    correct : pandas.Series
        Per object id, for :func:`~dataexplore.analysis.failures` (see :attr:`correct`).
    threshold : float
    max_detections : int
    class_agnostic : bool
    """

    def __init__(self, objects: pd.DataFrame, images: pd.DataFrame, threshold: float, max_detections: int,
                 class_agnostic: bool, name: str = ""):
        self.objects = objects
        self.images = images
        self.threshold = threshold
        self.max_detections = max_detections
        self.class_agnostic = class_agnostic
        self.name = name

    def __repr__(self) -> str:
        s = self.objects["status"].value_counts()
        parts = ", ".join(f"{int(s.get(k, 0))} {k}" for k in (FOUND, MISSED, TRUE_POSITIVE, FALSE_POSITIVE, IGNORED)
                          if s.get(k, 0))
        return (f"<Matches {self.name!r} at IoU {self.threshold:g}: {parts or 'no boxes'} "
                f"in {len(self.images)} images>")

    @property
    def correct(self) -> pd.Series:
        """``True`` for found ground truth and true positives, ``False`` for missed boxes and false
        positives, indexed by object id; ignored boxes are left out."""
        t = self.objects
        keep = (t["status"] != IGNORED).to_numpy()
        ok = t["status"].isin([FOUND, TRUE_POSITIVE]).to_numpy()[keep]
        return pd.Series(ok, index=pd.Index(t["id"].to_numpy()[keep], name="id"), name="correct")

    def summary(self) -> pd.DataFrame:
        """Counts, precision and recall per class (a prediction counts for its own class) and
        overall (last row, ``"(all)"``); columns :data:`COUNT_COLUMNS`."""
        per_class = _counts(self.objects, "label")
        overall = _counts(self.objects.assign(_all="(all)"), "_all").reindex(["(all)"])
        counts = [c for c in COUNT_COLUMNS if c not in ("precision", "recall")]
        overall[counts] = overall[counts].fillna(0).astype(np.int64)
        out = pd.concat([per_class, overall]) if len(per_class) else overall
        out.index.name = "label"
        return out


def match(objects: Objects, *, iou: float = 0.5, max_detections: int = 100,
          class_agnostic: bool = False) -> Matches:
    """Match predictions to ground truth per image and class, greedily by score, as COCO does.

    Parameters
    ----------
    objects : Objects
        Ground truth and predictions of the same images in one table (``Objects.concat``); an
        optional ``iscrowd`` column marks crowd ground truth. With only ground truth every box is
        missed, with only predictions every prediction is a false positive.
    iou : float
        IoU a prediction needs with a ground-truth box to match it, in (0, 1].
    max_detections : int
        Predictions evaluated per image and class (per image with ``class_agnostic``), best scores
        first; the rest are ignored. COCO's ``maxDets``.
    class_agnostic : bool
        Match boxes regardless of their class (pycocotools' ``useCats=0``).

    Returns
    -------
    Matches

    Examples
    --------
    >>> import pandas as pd
    >>> from dataexplore.core.objects import Objects
    >>> from dataexplore.core.samples import Samples
    >>> imgs = Samples(pd.DataFrame({"id": ["a"], "filepath": ["a.jpg"], "width": [100], "height": [100]}))
    >>> boxes = pd.DataFrame({
    ...     "id": ["g1", "g2", "p1", "p2"], "image_id": "a", "x": [0, 50, 2, 50], "y": [0, 50, 0, 50],
    ...     "w": [20, 20, 20, 20], "h": 20, "label": ["cat", "cat", "cat", "dog"],
    ...     "score": [None, None, 0.9, 0.8], "kind": ["ground_truth"] * 2 + ["prediction"] * 2})
    >>> m = match(Objects(boxes, imgs))
    >>> m.objects[["id", "status", "match_id", "confused_with"]].values.tolist()
    [['g1', 'found', 'p1', None], ['g2', 'missed', None, 'dog'], ['p1', 'true positive', 'g1', None], \
['p2', 'false positive', None, 'cat']]
    >>> m.images[["precision", "recall"]].values.tolist()
    [[0.5, 0.5]]
    """
    threshold, max_det = _check(objects, iou, max_detections)
    t = objects.table
    n = len(t)
    kind = t["kind"].to_numpy()
    unknown = sorted(set(pd.unique(kind)) - {GROUND_TRUTH, PREDICTION})
    if unknown:
        raise DataexploreError(f"objects of unknown kind {unknown}: expected {GROUND_TRUTH!r} or {PREDICTION!r}")
    image = pd.factorize(t["image_id"])[0].astype(np.int64)
    label_names, label = np.unique(t["label"].to_numpy(dtype=object).astype(str), return_inverse=True)
    label = label.astype(np.int64)
    group = np.zeros(n, np.int64) if class_agnostic else label
    score = t["score"].to_numpy(np.float64)
    boxes = t[["x", "y", "w", "h"]].to_numpy(np.float64)
    crowd = (kind == GROUND_TRUTH) & _truthy(t["iscrowd"] if "iscrowd" in t.columns else None, n)

    # Classes in the order pycocotools lists them: by COCO category id when the objects came from COCO
    # files, else by name.
    order = label
    if "coco_category_id" in t.columns:
        cid = pd.to_numeric(t["coco_category_id"], errors="coerce").to_numpy(np.float64)
        if np.isfinite(cid).all():
            order = cid.astype(np.int64)
    # Predictions in the order COCO takes them: per image and group, score descending, then (as
    # pycocotools concatenates categories when class-agnostic) class, then table order.
    dt = np.flatnonzero(kind == PREDICTION)
    dt = dt[np.lexsort((dt, order[dt], -score[dt], group[dt], image[dt]))]
    key = image[dt] * (len(label_names) + 1) + group[dt]
    first = np.r_[True, key[1:] != key[:-1]] if len(dt) else np.zeros(0, bool)
    starts = np.flatnonzero(first)
    rank = np.arange(len(dt)) - np.repeat(starts, np.diff(np.r_[starts, len(dt)]))
    dt = dt[rank < max_det]
    # Ground truth by image, then class and table order ("later box" wins ties, as pycocotools).
    gt = np.flatnonzero(kind == GROUND_TRUTH)
    gt = gt[np.lexsort((gt, order[gt], image[gt]))]

    d, g, ov = _overlaps(dt, gt, image, boxes, crowd[gt])   # positions into dt and gt, IoU > 0
    same = group[dt[d]] == group[gt[g]]
    cut = min(threshold, _IOU_CAP)
    partner, partner_iou = _greedy(d, g, ov, same & (ov >= cut), crowd[gt], len(dt), len(gt))

    status = np.full(n, None, dtype=object)
    match_row = np.full(n, -1, np.int64)
    # IoU with the partner; else the best with any box of the other kind in the same group.
    best = np.zeros(n)
    np.maximum.at(best, dt[d[same]], ov[same])
    np.maximum.at(best, gt[g[same]], ov[same])
    pair_iou = np.full(n, np.nan)                              # NaN: not evaluated
    pair_iou[dt], pair_iou[gt] = best[dt], best[gt]
    # predictions; those beyond max_detections stay ignored
    status[kind == PREDICTION] = IGNORED
    matched = partner >= 0
    on_crowd = np.zeros(len(dt), bool)
    on_crowd[matched] = crowd[gt[partner[matched]]]
    status[dt] = np.where(matched, np.where(on_crowd, IGNORED, TRUE_POSITIVE), FALSE_POSITIVE)
    match_row[dt[matched]] = gt[partner[matched]]
    pair_iou[dt[matched]] = partner_iou[matched]
    # ground truth: a regular box by its one partner, a crowd box by the last prediction it absorbed
    status[gt] = np.where(crowd[gt], IGNORED, MISSED)
    taker = np.full(len(gt), -1, np.int64)
    np.maximum.at(taker, partner[matched], np.flatnonzero(matched))
    found = taker >= 0
    status[gt[found & ~crowd[gt]]] = FOUND
    match_row[gt[found]] = dt[taker[found]]
    pair_iou[gt[found]] = partner_iou[taker[found]]

    has = match_row >= 0
    confused = _confusions(d, g, ov, ~same & (ov >= cut), dt, gt, label, label_names, n)
    confused[~np.isin(status, [FALSE_POSITIVE, MISSED])] = None
    if class_agnostic:
        other = has & (status != IGNORED)
        other[other] = label[match_row[other]] != label[other]
        confused[other] = label_names[label[match_row[other]]]

    ids = t["id"].to_numpy(dtype=object)
    table = t.copy()
    table["status"] = status
    # object columns keep None for "no partner" (pandas would infer a str column with NaN)
    table["match_id"] = pd.Series(np.where(has, ids[np.maximum(match_row, 0)], None), index=table.index, dtype=object)
    table["iou"] = pair_iou
    table["confused_with"] = pd.Series(confused, index=table.index, dtype=object)
    per_image = _counts(table, "image_id").reindex(pd.Index(objects.images.ids, dtype=object))
    counts = [c for c in COUNT_COLUMNS if c not in ("precision", "recall")]
    per_image[counts] = per_image[counts].fillna(0).astype(np.int64)
    per_image.index.name = "image_id"
    return Matches(table, per_image, float(iou), max_det, bool(class_agnostic), name=objects.name)


def _check(objects: Any, iou: Any, max_detections: Any) -> tuple[float, int]:
    if not isinstance(objects, Objects):
        raise DataexploreError(f"match() needs an Objects table of boxes, got {type(objects).__name__}")
    if isinstance(iou, bool) or not isinstance(iou, Real) or not 0 < float(iou) <= 1:
        raise DataexploreError(f"iou must be a number in (0, 1], got {iou!r}")
    if isinstance(max_detections, bool) or not isinstance(max_detections, Integral) or max_detections < 1:
        raise DataexploreError(f"max_detections must be an integer >= 1, got {max_detections!r}")
    return float(iou), int(max_detections)


def _truthy(values: pd.Series | None, n: int) -> np.ndarray:
    """``iscrowd`` as booleans: true, or a number other than 0; missing values are false."""
    if values is None:
        return np.zeros(n, bool)
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        return (values.fillna(0).to_numpy(np.float64) != 0)
    mapped = values.map(lambda v: 1 if v is True else 0 if v is False else v)
    return (pd.to_numeric(mapped, errors="coerce").fillna(0) != 0).to_numpy()


def _overlaps(dt: np.ndarray, gt: np.ndarray, image: np.ndarray, boxes: np.ndarray,
              gt_crowd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (prediction, ground truth) pair of one image with IoU > 0: positions into ``dt`` and
    ``gt`` (which is sorted by image) and the IoU, computed as pycocotools' ``bbIou`` does."""
    gimg = image[gt]
    lo = np.searchsorted(gimg, image[dt], "left")
    count = np.searchsorted(gimg, image[dt], "right") - lo
    ends = np.cumsum(count)
    d_parts, g_parts, iou_parts = [], [], []
    start = 0
    while start < len(dt):
        done = int(ends[start - 1]) if start else 0
        stop = max(int(np.searchsorted(ends, done + PAIR_CHUNK, "right")), start + 1)
        c = count[start:stop]
        total = int(c.sum())
        if total:
            d = np.repeat(np.arange(start, stop), c)
            offset = np.arange(total) - np.repeat(np.cumsum(c) - c, c)
            g = np.repeat(lo[start:stop], c) + offset
            value = _iou(boxes[dt[d]], boxes[gt[g]], gt_crowd[g])
            keep = value > 0
            d_parts.append(d[keep])
            g_parts.append(g[keep])
            iou_parts.append(value[keep])
        start = stop
    if not d_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(d_parts), np.concatenate(g_parts), np.concatenate(iou_parts)


def _iou(d: np.ndarray, g: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """Row-wise IoU of ``x, y, w, h`` boxes, bit for bit as pycocotools (crowd: over ``d``'s area)."""
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    inter = w * h
    da = d[:, 2] * d[:, 3]
    union = np.where(crowd, da, da + g[:, 2] * g[:, 3] - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((w > 0) & (h > 0), inter / union, 0.0)


def _greedy(d: np.ndarray, g: np.ndarray, ov: np.ndarray, candidate: np.ndarray, gt_crowd: np.ndarray,
            n_dt: int, n_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """Each prediction's partner (position into gt, -1 none) and the IoU with it.

    Predictions are in matching order (``d`` ascending = earlier). A prediction prefers regular
    boxes, then higher IoU, then the later box; a regular box goes to the first prediction that
    wants it while free, a crowd box to any number. Predictions whose candidates nobody else wants
    are decided at once; the others in a loop over predictions.
    """
    d, g, ov = d[candidate], g[candidate], ov[candidate]
    is_crowd = gt_crowd[g]
    order = np.lexsort((-g, -ov, is_crowd, d))
    d, g, ov, is_crowd = d[order], g[order], ov[order], is_crowd[order]
    partner = np.full(n_dt, -1, np.int64)
    partner_iou = np.full(n_dt, np.nan)
    if not len(d):
        return partner, partner_iou
    wanted = np.bincount(g[~is_crowd], minlength=n_gt)
    contested = np.zeros(n_dt, bool)
    contested[d[~is_crowd & (wanted[g] > 1)]] = True
    head = np.r_[True, d[1:] != d[:-1]]
    easy = head & ~contested[d]
    partner[d[easy]] = g[easy]        # the best candidate; nobody else competes for it
    partner_iou[d[easy]] = ov[easy]
    hard = contested[d]
    if hard.any():
        hd, hg, hc, hv = d[hard].tolist(), g[hard].tolist(), is_crowd[hard].tolist(), ov[hard].tolist()
        taken = bytearray(n_gt)
        current, decided = -1, False
        for k in range(len(hd)):
            if hd[k] != current:
                current, decided = hd[k], False
            if decided:
                continue
            if hc[k] or not taken[hg[k]]:  # a free box, or (regular ones exhausted) an ignore region
                if not hc[k]:
                    taken[hg[k]] = 1
                partner[current], partner_iou[current], decided = hg[k], hv[k], True
    return partner, partner_iou


def _confusions(d: np.ndarray, g: np.ndarray, ov: np.ndarray, other: np.ndarray, dt: np.ndarray, gt: np.ndarray,
                label: np.ndarray, label_names: np.ndarray, n: int) -> np.ndarray:
    """Per row, the class of the box of the other kind and another class it overlaps most
    (among ``other`` pairs), else None."""
    out = np.full(n, None, dtype=object)
    d, g, ov = d[other], g[other], ov[other]
    for mine, theirs in ((dt[d], gt[g]), (gt[g], dt[d])):
        if not len(mine):
            continue
        order = np.lexsort((-ov, mine))
        head = order[np.r_[True, mine[order][1:] != mine[order][:-1]]]
        out[mine[head]] = label_names[label[theirs[head]]]
    return out


def _counts(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """Counts of each status and the rates, grouped by ``by``."""
    s = table["status"]
    gt = table["kind"] == GROUND_TRUTH
    parts = pd.DataFrame({
        "ground_truth": gt, "predictions": ~gt, "true_positives": s == TRUE_POSITIVE,
        "false_positives": s == FALSE_POSITIVE, "ignored": (s == IGNORED) & ~gt, "missed": s == MISSED,
        "_found": s == FOUND, by: table[by]})
    out = parts.groupby(by, sort=True).sum().astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        tp, fp = out["true_positives"].to_numpy(np.float64), out["false_positives"].to_numpy(np.float64)
        found, missed = out["_found"].to_numpy(np.float64), out["missed"].to_numpy(np.float64)
        out["precision"] = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        out["recall"] = np.where(found + missed > 0, found / (found + missed), np.nan)
    return out[list(COUNT_COLUMNS)]
