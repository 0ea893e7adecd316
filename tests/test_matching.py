"""Matching predictions to ground truth: the verdicts equal pycocotools' ``COCOeval.evaluateImg`` box
for box on random COCO-like data, and the evidence columns and per-image rates are right on a
hand-made scene."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest

from dataexplore.analysis import matching
from dataexplore.analysis.matching import match
from dataexplore.core.errors import DataexploreError
from dataexplore.core.objects import Objects
from dataexplore.core.samples import Samples

LABELS = ["bag", "cat", "dog"]  # COCO category ids 1, 2, 3 (sorted, as class-agnostic ties need)
W, H = 200.0, 150.0


def _box(rng, x, y, w, h):
    """A box jittered by up to ``rng``'s scale, kept inside the image with a positive size."""
    x = float(np.clip(round(x, 2), 0, W - 2))
    y = float(np.clip(round(y, 2), 0, H - 2))
    return [x, y, float(np.clip(round(w, 2), 1, W - x)), float(np.clip(round(h, 2), 1, H - y))]


def random_scenes(seed: int, n_images: int = 14, crowded: int = 25):
    """COCO-like ground truth and detections: overlapping boxes, duplicate ground truth (IoU ties),
    scores in tenths (score ties), crowd boxes, look-alike classes, images without ground truth or
    without predictions, and one image with ``crowded`` predictions of one class."""
    rng = np.random.default_rng(seed)
    gts, dts = [], []
    for img in range(1, n_images + 1):
        image_gts = []
        if img % 5 != 0:                                       # every 5th image: no ground truth
            for _ in range(rng.integers(1, 8)):
                w, h = rng.uniform(8, 70), rng.uniform(8, 60)
                crowd = rng.random() < 0.12
                if crowd:
                    w, h = w * 1.8, h * 1.8
                box = _box(rng, rng.uniform(0, W - w), rng.uniform(0, H - h), w, h)
                image_gts.append({"image_id": img, "label": LABELS[rng.integers(3)], "bbox": box,
                                  "iscrowd": int(crowd)})
                if rng.random() < 0.15:                        # an exact duplicate: equal IoU
                    image_gts.append(dict(image_gts[-1], bbox=list(box)))
        gts += image_gts
        if img % 5 == 1:                                       # no predictions
            continue
        for g in image_gts:
            for _ in range(rng.integers(0, 4)):
                x, y, w, h = g["bbox"]
                s = rng.uniform(0, 0.35)
                box = _box(rng, x + rng.normal(0, s * w), y + rng.normal(0, s * h), w * rng.uniform(1 - s, 1 + s),
                           h * rng.uniform(1 - s, 1 + s))
                label = g["label"] if rng.random() < 0.75 else LABELS[rng.integers(3)]
                dts.append({"image_id": img, "label": label, "bbox": box, "score": rng.integers(1, 11) / 10})
        for _ in range(rng.integers(0, 5)):                    # background detections
            w, h = rng.uniform(5, 50), rng.uniform(5, 50)
            dts.append({"image_id": img, "label": LABELS[rng.integers(3)],
                        "bbox": _box(rng, rng.uniform(0, W - w), rng.uniform(0, H - h), w, h),
                        "score": rng.integers(1, 11) / 10})
    crowded_img = n_images + 1
    for k in range(3):
        gts.append({"image_id": crowded_img, "label": "cat", "bbox": _box(rng, 20 + 50 * k, 40, 40, 40),
                    "iscrowd": 0})
    for _ in range(crowded):
        x, y = 20 + 50 * rng.integers(3) + rng.normal(0, 4), 40 + rng.normal(0, 4)
        dts.append({"image_id": crowded_img, "label": "cat", "bbox": _box(rng, x, y, 40, 40),
                    "score": rng.integers(1, 11) / 10})
    return crowded_img, gts, dts


def as_objects(n_images: int, gts: list[dict], dts: list[dict], cat: dict | None = None) -> Objects:
    ids = [str(i) for i in range(1, n_images + 1)]
    images = Samples(pd.DataFrame({"id": ids, "filepath": [f"{i}.jpg" for i in ids], "width": W, "height": H}))
    rows = [{"id": f"g{k}", "image_id": str(g["image_id"]), "label": g["label"], "score": np.nan,
             "kind": "ground_truth", "iscrowd": g["iscrowd"], **dict(zip("xywh", g["bbox"]))}
            for k, g in enumerate(gts, 1)]
    rows += [{"id": f"d{k}", "image_id": str(d["image_id"]), "label": d["label"], "score": d["score"],
              "kind": "prediction", "iscrowd": 0, **dict(zip("xywh", d["bbox"]))} for k, d in enumerate(dts, 1)]
    frame = pd.DataFrame(rows)
    if cat is not None:  # read from COCO files: the category ids come along
        frame["coco_category_id"] = frame["label"].map(cat)
    objects = Objects(frame, images)
    assert len(objects) == len(rows) and not len(objects.problems)   # nothing clipped: same boxes as COCO's
    return objects


def coco_verdicts(n_images, gts, dts, iou, max_det, agnostic, cat=None):
    """{object id: (status, partner id)} from pycocotools' evaluateImg, ids as in :func:`as_objects`."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cat = cat or {name: k for k, name in enumerate(LABELS, 1)}
    dataset = {
        "images": [{"id": i, "width": W, "height": H} for i in range(1, n_images + 1)],
        "categories": [{"id": k, "name": name} for name, k in cat.items()],
        "annotations": [{"id": k, "image_id": g["image_id"], "category_id": cat[g["label"]], "bbox": g["bbox"],
                         "area": g["bbox"][2] * g["bbox"][3], "iscrowd": g["iscrowd"]} for k, g in enumerate(gts, 1)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes([{"image_id": d["image_id"], "category_id": cat[d["label"]], "bbox": d["bbox"],
                          "score": d["score"]} for d in dts])
        ev = COCOeval(gt, dt, "bbox")
        ev.params.iouThrs = np.array([iou])
        ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
        ev.params.maxDets = [max_det]
        ev.params.useCats = 0 if agnostic else 1
        ev.evaluate()
    out = {f"d{k}": ("ignored", None) for k in range(1, len(dts) + 1)}   # beyond maxDets: not evaluated
    for e in ev.evalImgs:
        if e is None:
            continue
        for k, did in enumerate(e["dtIds"]):
            m, ignore = int(e["dtMatches"][0, k]), bool(e["dtIgnore"][0, k])
            status = "ignored" if ignore else "true positive" if m else "false positive"
            out[f"d{did}"] = (status, f"g{m}" if m else None)
        for k, gid in enumerate(e["gtIds"]):
            m, ignore = int(e["gtMatches"][0, k]), bool(e["gtIgnore"][k])
            out[f"g{gid}"] = ("ignored" if ignore else "found" if m else "missed", f"d{m}" if m else None)
    return out


def ours(result) -> dict:
    t = result.objects
    return dict(zip(t["id"], zip(t["status"], t["match_id"])))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("iou", [0.5, 0.75])
def test_verdicts_equal_pycocotools(seed, iou):
    crowded_img, gts, dts = random_scenes(seed)
    objects = as_objects(crowded_img, gts, dts)
    max_det = 10                                               # the crowded image has more than that
    result = match(objects, iou=iou, max_detections=max_det)
    expected = coco_verdicts(crowded_img, gts, dts, iou, max_det, agnostic=False)
    assert ours(result) == expected
    # the data exercise every rule
    statuses = pd.Series([s for s, _ in expected.values()]).value_counts()
    assert {"found", "missed", "true positive", "false positive", "ignored"} <= set(statuses.index)
    t = result.objects.set_index("id")
    assert (t.loc[[i for i, (s, m) in expected.items() if s == "ignored" and m], "kind"] == "prediction").any()
    assert t.loc[[f"d{k}" for k, d in enumerate(dts, 1) if d["image_id"] == crowded_img], "iou"].isna().any()
    # the IoU with the partner is pycocotools' own
    from pycocotools import mask as mask_utils

    tp = t[t["status"] == "true positive"]
    boxes = t[["x", "y", "w", "h"]]
    for did, row in tp.head(40).iterrows():
        want = mask_utils.iou([boxes.loc[did].tolist()], [boxes.loc[row["match_id"]].tolist()], [0])[0, 0]
        assert row["iou"] == want


@pytest.mark.parametrize("seed", [4, 5])
def test_verdicts_equal_pycocotools_class_agnostic_and_default_max(seed):
    crowded_img, gts, dts = random_scenes(seed, crowded=130)  # > 100 predictions on one image
    objects = as_objects(crowded_img, gts, dts)
    for agnostic in (False, True):
        result = match(objects, iou=0.5, class_agnostic=agnostic)
        assert ours(result) == coco_verdicts(crowded_img, gts, dts, 0.5, 100, agnostic)


def test_chunked_pairs_give_the_same_verdicts(monkeypatch):
    crowded_img, gts, dts = random_scenes(7)
    objects = as_objects(crowded_img, gts, dts)
    whole = match(objects, iou=0.5, max_detections=10).objects
    monkeypatch.setattr(matching, "PAIR_CHUNK", 7)
    chunked = match(objects, iou=0.5, max_detections=10).objects
    pd.testing.assert_frame_equal(whole, chunked)
    assert ours(match(objects, iou=0.5, max_detections=10)) == coco_verdicts(crowded_img, gts, dts, 0.5, 10, False)


def scene() -> Objects:
    """Image a: a found cat and its duplicate, a dog predicted as a cat, a loose cat box (IoU 0.5
    exactly), a crowd of bags absorbing two predictions, a stray bag; b: a cat nobody found;
    c: a dog prediction on an empty image; d: nothing."""
    images = Samples(pd.DataFrame({"id": list("abcd"), "filepath": [f"{i}.jpg" for i in "abcd"],
                                   "width": 100, "height": 100}))
    rows = [  # id, image, label, kind, x, y, w, h, score, iscrowd
        ("g1", "a", "cat", "ground_truth", 0, 0, 20, 20, None, 0),
        ("g2", "a", "dog", "ground_truth", 50, 50, 20, 20, None, 0),
        ("g3", "a", "cat", "ground_truth", 0, 60, 30, 30, None, 0),
        ("g4", "a", "bag", "ground_truth", 60, 0, 40, 40, None, 1),
        ("g5", "b", "cat", "ground_truth", 10, 10, 30, 30, None, 0),
        ("p1", "a", "cat", "prediction", 1, 1, 20, 19, 0.9, 0),
        ("p2", "a", "cat", "prediction", 0, 0, 20, 20, 0.8, 0),
        ("p3", "a", "cat", "prediction", 50, 50, 20, 20, 0.7, 0),
        ("p4", "a", "cat", "prediction", 10, 60, 30, 30, 0.6, 0),
        ("p5", "a", "bag", "prediction", 62, 2, 10, 10, 0.5, 0),
        ("p6", "a", "bag", "prediction", 70, 10, 10, 10, 0.4, 0),
        ("p7", "a", "bag", "prediction", 90, 90, 5, 5, 0.3, 0),
        ("p8", "c", "dog", "prediction", 5, 5, 10, 10, 0.9, 0),
    ]
    table = pd.DataFrame(rows, columns=["id", "image_id", "label", "kind", "x", "y", "w", "h", "score", "iscrowd"])
    return Objects(table, images)


def test_hand_made_statuses_partners_and_confusions():
    t = match(scene(), iou=0.5).objects.set_index("id")
    got = t[["status", "match_id", "confused_with"]].to_dict("index")
    assert {k: tuple(v.values()) for k, v in got.items()} == {
        "g1": ("found", "p1", None),
        "g2": ("missed", None, "cat"),           # a look-alike was predicted on it
        "g3": ("found", "p4", None),
        "g4": ("ignored", "p6", None),           # crowd: the last prediction it absorbed
        "g5": ("missed", None, None),            # no box at all
        "p1": ("true positive", "g1", None),
        "p2": ("false positive", None, None),    # a duplicate of p1
        "p3": ("false positive", None, "dog"),
        "p4": ("true positive", "g3", None),
        "p5": ("ignored", "g4", None),
        "p6": ("ignored", "g4", None),
        "p7": ("false positive", None, None),
        "p8": ("false positive", None, None),
    }
    assert t.loc["p1", "iou"] == pytest.approx(361 / 419)
    assert t.loc["p2", "iou"] == 1.0                        # the duplicate overlaps g1 perfectly
    assert t.loc["p4", "iou"] == 0.5 and t.loc["g3", "iou"] == 0.5
    assert t.loc["p5", "iou"] == 1.0                        # inside the crowd box: intersection / own area
    assert t.loc["g2", "iou"] == 0.0 and t.loc["p7", "iou"] == 0.0

    strict = match(scene(), iou=0.75).objects.set_index("id")
    assert strict.loc["g3", ["status", "iou"]].tolist() == ["missed", 0.5]      # the box was there, too loose
    assert strict.loc["p4", ["status", "iou"]].tolist() == ["false positive", 0.5]

    agnostic = match(scene(), class_agnostic=True).objects.set_index("id")
    assert agnostic.loc["p3", ["status", "match_id", "confused_with"]].tolist() == ["true positive", "g2", "dog"]
    assert agnostic.loc["g2", ["status", "confused_with"]].tolist() == ["found", "cat"]


def test_hand_made_per_image_and_per_class_rates():
    result = match(scene())
    images = result.images
    assert images.index.tolist() == list("abcd")
    assert images.loc["a", ["ground_truth", "predictions", "true_positives", "false_positives", "ignored",
                            "missed"]].tolist() == [4, 7, 2, 3, 2, 1]
    assert images.loc["a", "precision"] == pytest.approx(2 / 5) and images.loc["a", "recall"] == pytest.approx(2 / 3)
    assert images.loc["b", "recall"] == 0 and np.isnan(images.loc["b", "precision"])
    assert images.loc["c", "precision"] == 0 and np.isnan(images.loc["c", "recall"])
    assert images.loc["d", ["ground_truth", "predictions"]].tolist() == [0, 0]
    assert images.loc["d", ["precision", "recall"]].isna().all()

    summary = result.summary()
    assert summary.index.tolist() == ["bag", "cat", "dog", "(all)"]
    assert summary.loc["cat", ["true_positives", "false_positives", "missed"]].tolist() == [2, 2, 1]
    assert summary.loc["cat", "precision"] == 0.5 and summary.loc["cat", "recall"] == pytest.approx(2 / 3)
    assert summary.loc["bag", "ignored"] == 2 and np.isnan(summary.loc["bag", "recall"])
    assert summary.loc["(all)", ["ground_truth", "predictions"]].tolist() == [5, 8]
    assert summary.loc["(all)", "precision"] == pytest.approx(1 / 3) and summary.loc["(all)", "recall"] == 0.5

    correct = result.correct
    assert correct.to_dict() == {"g1": True, "g2": False, "g3": True, "g5": False, "p1": True, "p2": False,
                                 "p3": False, "p4": True, "p7": False, "p8": False}


def test_max_detections_and_score_ties_keep_table_order():
    images = Samples(pd.DataFrame({"id": ["a"], "filepath": ["a.jpg"], "width": 50, "height": 50}))
    table = pd.DataFrame({"id": ["g", "p1", "p2", "p3"], "image_id": "a", "x": [0, 0, 0, 0], "y": 0,
                          "w": [10, 10, 10, 10], "h": 10, "label": "cat", "score": [np.nan, 0.5, 0.5, 0.9],
                          "kind": ["ground_truth"] + ["prediction"] * 3})
    t = match(Objects(table, images), max_detections=2).objects.set_index("id")
    assert t["status"].to_dict() == {"g": "found", "p1": "false positive", "p2": "ignored", "p3": "true positive"}
    assert np.isnan(t.loc["p2", "iou"]) and t.loc["p2", "match_id"] is None


def test_only_ground_truth_or_only_predictions():
    objects = scene()
    gt = match(objects.ground_truth())
    assert set(gt.objects["status"]) == {"missed", "ignored"}
    assert (gt.objects["iou"] == 0).all()
    assert gt.images["recall"].fillna(0).eq(0).all() and gt.images["precision"].isna().all()
    pred = match(objects.predictions())
    assert set(pred.objects["status"]) == {"false positive"}
    assert pred.objects["match_id"].isna().all() and pred.objects["confused_with"].isna().all()
    assert not pred.correct.any() and len(pred.correct) == 8
    empty = match(objects.subset([]))
    assert len(empty.objects) == 0 and empty.images["predictions"].sum() == 0
    assert empty.summary().index.tolist() == ["(all)"] and empty.summary().loc["(all)", "ground_truth"] == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"iou": 0}, "iou must be a number in \\(0, 1\\]"), ({"iou": 1.5}, "iou must"), ({"iou": float("nan")}, "iou must"),
    ({"iou": "0.5"}, "iou must"), ({"max_detections": 0}, "max_detections must be an integer >= 1"),
    ({"max_detections": 2.5}, "max_detections must"), ({"max_detections": True}, "max_detections must"),
])
def test_bad_settings_raise_one_clear_error(kwargs, message):
    with pytest.raises(DataexploreError, match=message):
        match(scene(), **kwargs)
    with pytest.raises(DataexploreError, match="needs an Objects"):
        match(scene().table)


@pytest.mark.parametrize("seed", [0, 1])
def test_class_agnostic_ties_follow_coco_category_ids_not_names(seed):
    """COCO's ids need not be alphabetical (person=1, bicycle=2): equal scores of two classes are taken in
    category-id order, as pycocotools concatenates them."""
    crowded, gts, dts = random_scenes(seed)
    cat = {name: k for k, name in enumerate(reversed(LABELS), 1)}
    expected = coco_verdicts(crowded, gts, dts, 0.5, 10, True, cat=cat)
    assert ours(match(as_objects(crowded, gts, dts, cat=cat), max_detections=10, class_agnostic=True)) == expected
