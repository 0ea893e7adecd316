"""Detection sources: COCO JSON, YOLO folders, Label Studio exports and FiftyOne Detections become one
objects table with exact pixel boxes, and every bad box is reported with its reason while the rest loads.

Every fixture is written here, in a temporary folder, with real PNG/JPEG files of known sizes.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dataexplore.core.errors import SourceError
from dataexplore.core.images import decode
from dataexplore.sources.detections import load_objects


def image(path: Path, width: int, height: int, **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(width * height).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, **save)
    return path


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def reasons(obj) -> dict[str, str]:
    """``where`` -> ``reason`` of every problem row."""
    return dict(zip(obj.problems["where"], obj.problems["reason"]))


# --- COCO ---------------------------------------------------------------------------------------

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}]


@pytest.fixture
def coco(tmp_path):
    image(tmp_path / "imgs" / "a.png", 64, 48)
    image(tmp_path / "imgs" / "sub" / "b.png", 100, 80)
    gt = {"images": [{"id": 101, "file_name": "a.png", "width": 64, "height": 48},
                     {"id": 202, "file_name": "sub/b.png", "width": 100, "height": 80}],
          "categories": CATEGORIES,
          "annotations": [
              {"id": 5, "image_id": 101, "category_id": 1, "bbox": [1.5, 2.25, 20.0, 30.5], "iscrowd": 0,
               "area": 500.0},
              {"id": 6, "image_id": 202, "category_id": 3, "bbox": [10, 20, 30, 40], "iscrowd": 1, "area": 999.0},
              {"id": 7, "image_id": 202, "category_id": 1, "bbox": [50, 5, 12.5, 7.75], "iscrowd": 0, "area": 90.0}]}
    results = [{"image_id": 101, "category_id": 1, "bbox": [2.0, 3.0, 19.0, 29.0], "score": 0.875},
               {"image_id": 202, "category_id": 3, "bbox": [11.0, 19.0, 30.0, 41.0], "score": 0.5}]
    return (write_json(tmp_path / "ann" / "instances.json", gt), write_json(tmp_path / "ann" / "results.json", results),
            tmp_path / "imgs")


def test_coco_ground_truth_and_results_load_with_exact_boxes_labels_and_scores(coco):
    gt_path, results_path, folder = coco
    obj = load_objects(gt_path, predictions=results_path, images=folder)
    t = obj.table
    assert t[["image_id", "x", "y", "w", "h", "label", "kind"]].values.tolist() == [
        ["101", 1.5, 2.25, 20.0, 30.5, "person", "ground_truth"],
        ["202", 10.0, 20.0, 30.0, 40.0, "car", "ground_truth"],
        ["202", 50.0, 5.0, 12.5, 7.75, "person", "ground_truth"],
        ["101", 2.0, 3.0, 19.0, 29.0, "person", "prediction"],
        ["202", 11.0, 19.0, 30.0, 41.0, "car", "prediction"]]
    assert t["score"].iloc[3:].tolist() == [0.875, 0.5] and t["score"].iloc[:3].isna().all()
    assert t["iscrowd"].tolist() == [0, 1, 0, 0, 0] and t["area"].iloc[:3].tolist() == [500.0, 999.0, 90.0]
    assert t["coco_ann_id"].iloc[:3].tolist() == [5, 6, 7] and t["coco_ann_id"].iloc[3:].isna().all()
    assert t["coco_id"].tolist() == [101, 202, 202, 101, 202] and t["coco_category_id"].tolist() == [1, 3, 1, 1, 3]
    assert t["id"].is_unique and len(obj.problems) == 0
    imgs = obj.images.table
    assert list(obj.images.ids) == ["101", "202"] and imgs["coco_id"].tolist() == [101, 202]
    assert imgs["filepath"].tolist() == [str(folder / "a.png"), str(folder / "sub" / "b.png")]
    assert imgs[["width", "height"]].values.tolist() == [[64, 48], [100, 80]]
    assert obj.labels == ["car", "person"] and len(obj.predictions()) == 2


def test_coco_images_default_to_the_json_folder_and_the_columns_round_trip_to_pycocotools(coco, tmp_path):
    pycocotools_coco = pytest.importorskip("pycocotools.coco")
    gt_path, _, _ = coco
    obj = load_objects(gt_path)
    assert obj.images.table["filepath"].tolist() == [str(gt_path.parent / "a.png"), str(gt_path.parent / "sub/b.png")]
    gt = obj.ground_truth().table
    rebuilt = {"images": [{"id": int(r.coco_id), "file_name": r.file_name, "width": int(r.width),
                           "height": int(r.height)} for r in obj.images.table.itertuples()],
               "categories": CATEGORIES,
               "annotations": [{"id": int(r.coco_ann_id), "image_id": int(r.coco_id),
                                "category_id": int(r.coco_category_id), "bbox": [r.x, r.y, r.w, r.h],
                                "iscrowd": int(r.iscrowd), "area": r.area} for r in gt.itertuples()]}
    original = pycocotools_coco.COCO(str(gt_path))
    again = pycocotools_coco.COCO(str(write_json(tmp_path / "again.json", rebuilt)))
    assert again.anns == original.anns and again.imgs == original.imgs


def test_each_bad_coco_entry_is_a_problem_with_its_reason_and_the_rest_loads(tmp_path):
    image(tmp_path / "a.png", 64, 48)
    image(tmp_path / "b.png", 32, 16)
    gt = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                     {"id": 2, "file_name": "../../../../../../etc/passwd", "width": 10, "height": 10},
                     {"id": 3, "file_name": "/etc/hosts", "width": 10, "height": 10},
                     {"id": 4, "file_name": "b.png"},      # no size: read from the file's header
                     {"id": 5, "file_name": "gone.png"}],  # no size and no file
          "categories": CATEGORIES,
          "annotations": [
              {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]},          # good
              {"id": 2, "image_id": 1, "category_id": 1, "bbox": [float("nan"), 2, 3, 4]},
              {"id": 3, "image_id": 1, "category_id": 1, "bbox": [5, 5, 0, 4]},
              {"id": 4, "image_id": 1, "category_id": 1, "bbox": [100, 100, 5, 5]},
              {"id": 5, "image_id": 99, "category_id": 1, "bbox": [1, 2, 3, 4]},
              {"id": 6, "image_id": 1, "category_id": 42, "bbox": [1, 2, 3, 4]},
              {"id": 7, "image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4]},
              {"id": 8, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]},
              "not an annotation",
              {"id": 10, "image_id": 1, "category_id": 3, "bbox": [60, 40, 10, 10]},  # past the edge: kept as given
              {"id": 11, "image_id": 4, "category_id": 3, "bbox": [30, 0, 2, 16]}]}
    results = [{"image_id": 1, "category_id": 3, "bbox": [4, 4, 8, 8], "score": 0.9},  # good
               {"image_id": 7, "category_id": 3, "bbox": [4, 4, 8, 8], "score": 0.9},
               {"image_id": 1, "category_id": 8, "bbox": [4, 4, 8, 8], "score": 0.9},
               {"image_id": 1, "category_id": 3, "bbox": [4, 4, 8, 8], "score": 1.5}]
    obj = load_objects(write_json(tmp_path / "gt.json", gt), predictions=write_json(tmp_path / "res.json", results))
    assert reasons(obj) == {
        "gt.json:annotations[1]": "not a number",
        "gt.json:annotations[2]": "zero or negative size",
        "gt.json:annotations[3]": "outside the image",
        "gt.json:annotations[4]": "unknown image",
        "gt.json:annotations[5]": "unknown category",
        "gt.json:annotations[6]": "path outside the images folder",
        "gt.json:annotations[7]": "malformed annotation (bbox is not [x, y, w, h])",
        "gt.json:annotations[8]": "malformed annotation (not an object)",
        "gt.json:annotations[9]": "extends past the image",
        "gt.json:images[2]": "path outside the images folder",  # no box: the image itself is the row
        "gt.json:images[4]": "no width and height in the file, and image file not found",
        "res.json:[1]": "unknown image",
        "res.json:[2]": "unknown category",
        "res.json:[3]": "prediction without a score",
    }
    assert obj.table[["x", "y", "w", "h", "label", "kind"]].values.tolist() == [
        [1.0, 2.0, 3.0, 4.0, "person", "ground_truth"], [60.0, 40.0, 10.0, 10.0, "car", "ground_truth"],
        [30.0, 0.0, 2.0, 16.0, "car", "ground_truth"], [4.0, 4.0, 8.0, 8.0, "car", "prediction"]]
    assert list(obj.images.ids) == ["1", "4"]  # the images naming paths outside the folder are left out
    assert obj.images.table[["width", "height"]].values.tolist() == [[64, 48], [32, 16]]
    traversal = obj.problems[obj.problems["where"] == "gt.json:annotations[6]"].iloc[0]
    assert (traversal["image_id"], traversal["label"], traversal["action"]) == ("2", "person", "dropped")


@pytest.mark.parametrize("content, message", [
    ("{not json", "gt.json is not valid JSON"),
    ('{"images": {}, "categories": [], "annotations": []}', "gt.json is not a COCO annotations file"),
    ('{"images": [{"id": "one", "file_name": "a.png"}], "categories": [], "annotations": []}',
     r"gt.json: images\[0\] needs an integer 'id'"),
    ('{"images": [], "categories": [{"id": 1}], "annotations": []}', r"gt.json: categories\[0\] needs"),
    ('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}]', "COCO results file .*predictions="),
    ('{"something": "else"}', "neither a COCO annotations file nor a Label Studio JSON export"),
])
def test_a_json_file_of_the_wrong_shape_is_one_clear_error_naming_it(tmp_path, content, message):
    (tmp_path / "gt.json").write_text(content)
    with pytest.raises(SourceError, match=message):
        load_objects(tmp_path / "gt.json")


def test_an_unknown_source_or_an_argument_that_does_not_apply_is_one_clear_error(tmp_path, coco):
    with pytest.raises(SourceError, match="expected a COCO annotations JSON file, a YOLO folder .*FiftyOne"):
        load_objects(42)
    with pytest.raises(SourceError, match="source not found: .*expected a COCO"):
        load_objects(tmp_path / "nothing.json")
    with pytest.raises(SourceError, match="unknown detection format 'voc'"):
        load_objects(coco[0], format="voc")
    with pytest.raises(SourceError, match="classes does not apply to a coco source"):
        load_objects(coco[0], classes=["a"])
    with pytest.raises(SourceError, match="a YOLO source is a folder"):
        load_objects(coco[0], format="yolo")
    with pytest.raises(SourceError, match="is not a COCO results file"):
        load_objects(coco[0], predictions=write_json(tmp_path / "r.json", {"results": 1}))


# --- YOLO ---------------------------------------------------------------------------------------

@pytest.fixture
def yolo(tmp_path):
    root = tmp_path / "dataset"
    image(root / "images" / "train" / "a.png", 200, 100)
    image(root / "images" / "val" / "b.png", 50, 40)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n\n0 0.25 0.75 0.5 0.5 0.75\n")
    (root / "labels" / "val" / "b.txt").write_text("0 0.1 0.2 0.2 0.4\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames:\n  0: cat\n  1: dog\n")
    return root


def test_yolo_normalised_boxes_become_exact_pixels_with_the_data_yaml_names(yolo):
    obj = load_objects(yolo)
    assert obj.table[["image_id", "x", "y", "w", "h", "label", "kind", "yolo_class"]].values.tolist() == [
        ["train/a.png", 80.0, 30.0, 40.0, 40.0, "dog", "ground_truth", 1],      # (0.5 - 0.1) * 200, (0.5 - 0.2) * 100
        ["train/a.png", 0.0, 50.0, 100.0, 50.0, "cat", "prediction", 0],        # six numbers: a score
        ["val/b.png", 0.0, 0.0, 10.0, 16.0, "cat", "ground_truth", 0]]
    assert obj.table["score"].iloc[1] == 0.75 and math.isnan(obj.table["score"].iloc[0])
    assert obj.images.table[["id", "width", "height"]].values.tolist() == [["train/a.png", 200, 100],
                                                                          ["val/b.png", 50, 40]]
    assert obj.images.table["filepath"].tolist() == [str(yolo / "images/train/a.png"), str(yolo / "images/val/b.png")]
    assert len(obj.problems) == 0 and obj.images.provenance["classes"] == {0: "cat", 1: "dog"}


def test_yolo_class_names_from_the_argument_or_classes_txt_else_the_class_numbers(yolo):
    (yolo / "data.yaml").unlink()
    assert load_objects(yolo).table["label"].tolist() == ["1", "0", "0"]
    (yolo / "classes.txt").write_text("person\nbicycle\n")
    assert load_objects(yolo).table["label"].tolist() == ["bicycle", "person", "person"]
    assert load_objects(yolo, classes=["x", "y"]).table["label"].tolist() == ["y", "x", "x"]


def test_a_second_folder_of_yolo_labels_holds_the_predictions(yolo, tmp_path):
    predict = tmp_path / "runs" / "detect" / "predict" / "labels"  # Ultralytics writes <stem>.txt, flat
    predict.mkdir(parents=True)
    (predict / "a.txt").write_text("1 0.5 0.5 0.1 0.2 0.625\n0 0.5 0.5 0.1 0.2\n")
    obj = load_objects(yolo, predictions=predict)
    preds = obj.predictions().table
    assert preds[["image_id", "x", "y", "w", "h", "label", "score"]].values.tolist()[-1] == [
        "train/a.png", 90.0, 40.0, 20.0, 20.0, "dog", 0.625]
    assert reasons(obj) == {f"{predict}/a.txt:2": "prediction without a score (save them: Ultralytics' save_conf=True)"}


def test_each_bad_yolo_line_is_a_problem_at_its_file_and_line_and_the_rest_loads(yolo):
    (yolo / "labels" / "train" / "a.txt").write_text("\n".join([
        "1 0.5 0.5 0.2 0.4",          # 1: good
        "0 0.5 0.5",                  # 2: too few numbers
        "cat 0.5 0.5 0.1 0.1",        # 3: not numbers
        "0.5 0.5 0.5 0.1 0.1",        # 4: class not a whole number
        "0 nan 0.5 0.1 0.1",          # 5: NaN
        "0 0.5 0.5 0 0.1",            # 6: zero width
        "0 1.5 1.5 0.1 0.1",          # 7: outside the image
        "7 0.5 0.5 0.1 0.1",          # 8: class 7 of 2 names
        "0 0.1 0.1 0.3 0.3 2.0",      # 9: a score above 1
        "0 0.25 0.25 0.75 0.25 0.5 0.5",  # 10: a polygon (3 points): its bounds
    ]))
    (yolo / "labels" / "train" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (yolo / "images" / "train" / "broken.png").write_bytes(b"not a png")
    (yolo / "labels" / "train" / "broken.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (yolo / "labels" / "val" / "b.txt").write_bytes(b"0 0.5 0.5 0.1 0.1 \xff\n")
    obj = load_objects(yolo)
    where = "labels/train/a.txt"
    assert reasons(obj) == {
        f"{where}:2": "malformed line (3 values; expected class cx cy w h [score])",
        f"{where}:3": "malformed line (not numbers)",
        f"{where}:4": "malformed line (the class is not a whole number)",
        f"{where}:5": "not a number",
        f"{where}:6": "zero or negative size",
        f"{where}:7": "outside the image",
        f"{where}:8": "unknown category",
        f"{where}:9": "prediction without a score",
        f"{where}:10": "polygon, its bounding box kept",
        "labels/train/orphan.txt:1": "unknown image",
        "labels/train/broken.txt:1": "unreadable image (UnidentifiedImageError)",
        "labels/val/b.txt": "unreadable label file (not UTF-8 text)",
    }
    assert obj.table[["image_id", "x", "y", "w", "h", "label"]].values.tolist() == [
        ["train/a.png", 80.0, 30.0, 40.0, 40.0, "dog"], ["train/a.png", 50.0, 25.0, 100.0, 25.0, "cat"]]
    assert list(obj.images.ids) == ["train/a.png", "val/b.png"]  # the broken image is left out, with its box


def test_yolo_image_sizes_follow_the_exif_rotation_the_decoder_applies(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: shown 30 wide and 80 high
    path = image(tmp_path / "images" / "r.jpg", 80, 30, exif=exif)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "r.txt").write_text("0 0.5 0.5 1 1\n")
    obj = load_objects(tmp_path)
    assert decode(path.read_bytes()).size == (30, 80)
    assert obj.images.table[["width", "height"]].values.tolist() == [[30, 80]]
    assert obj.table[["x", "y", "w", "h"]].values.tolist() == [[0.0, 0.0, 30.0, 80.0]]


def test_the_same_scene_from_coco_and_from_yolo_gives_the_same_boxes(tmp_path):
    rng = np.random.default_rng(0)
    sizes = {"s0.png": (640, 427), "s1.png": (333, 517), "s2.png": (97, 61)}
    coco = {"images": [], "categories": [{"id": i, "name": n} for i, n in enumerate(["bag", "shoe", "shirt"])],
            "annotations": []}
    for k, (file_name, (width, height)) in enumerate(sizes.items()):
        image(tmp_path / "images" / file_name, width, height)
        coco["images"].append({"id": k, "file_name": file_name, "width": width, "height": height})
        lines = []
        for _ in range(6):
            w, h = rng.uniform(1, width / 2), rng.uniform(1, height / 2)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            cls = int(rng.integers(3))
            coco["annotations"].append({"id": len(coco["annotations"]), "image_id": k, "category_id": cls,
                                        "bbox": [x, y, w, h], "iscrowd": 0, "area": w * h})
            lines.append(f"{cls} {(x + w / 2) / width!r} {(y + h / 2) / height!r} {w / width!r} {h / height!r}")
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / "labels" / file_name.replace(".png", ".txt")).write_text("\n".join(lines))
    (tmp_path / "classes.txt").write_text("bag\nshoe\nshirt\n")
    from_coco = load_objects(write_json(tmp_path / "instances.json", coco), images=tmp_path / "images")
    from_yolo = load_objects(tmp_path)
    key = {str(k): f for k, f in enumerate(sizes)}  # COCO ids are image ids, YOLO's are file names
    assert [key[i] for i in from_coco.table["image_id"]] == from_yolo.table["image_id"].tolist()
    assert from_coco.table["label"].tolist() == from_yolo.table["label"].tolist()
    assert len(from_coco) == 18 and np.abs(from_coco.boxes() - from_yolo.boxes()).max() < 1e-6
    assert from_yolo.images.table[["width", "height"]].values.tolist() == [list(s) for s in sizes.values()]


# --- Label Studio -------------------------------------------------------------------------------

def rectangle(x, y, w, h, label, rotation=0, **extra):
    return {"id": f"r{x}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": 200, "original_height": 100, "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": rotation, "rectanglelabels": [label]},
            **extra}


@pytest.fixture
def label_studio(tmp_path):
    image(tmp_path / "photos" / "a.png", 200, 100)
    image(tmp_path / "photos" / "sub" / "b.png", 200, 100)
    tasks = [
        {"id": 11, "data": {"image": "/data/upload/3/0a1b2c3d-a.png"},
         "annotations": [{"id": 1, "result": [rectangle(10, 20, 30, 40, "Car"), rectangle(50, 10, 10, 20, "Car",
                                                                                           rotation=90)]},
                         {"id": 2, "was_cancelled": True, "result": [rectangle(1, 1, 1, 1, "Bus")]}],
         "predictions": [{"id": 4, "score": 0.5, "result": [rectangle(12, 20, 30, 40, "Car"),
                                                            rectangle(70, 0, 10, 10, "Bus", score=0.9)]}]},
        {"id": 12, "data": {"image": "/data/local-files/?d=sub/b.png"},
         "annotations": [{"id": 3, "result": [rectangle(0, 0, 100, 100, "Bus"),
                                              {"type": "polygonlabels", "value": {"points": [[0, 0], [1, 1]]}},
                                              {"type": "choices", "value": {"choices": ["day"]}}]}]},
        {"id": 13, "data": {"image": "/data/local-files/?d=../../../../etc/passwd"}, "annotations": []},
    ]
    return write_json(tmp_path / "export.json", tasks), tmp_path / "photos"


def test_label_studio_percent_boxes_become_exact_pixels_and_a_rotated_box_its_bounds(label_studio):
    export, photos = label_studio
    obj = load_objects(export, images=photos)
    assert obj.table[["image_id", "x", "y", "w", "h", "label", "kind"]].values.tolist() == [
        ["11", 20.0, 20.0, 60.0, 40.0, "Car", "ground_truth"],   # 10 % of 200, 20 % of 100, ...
        ["11", 80.0, 10.0, 20.0, 20.0, "Car", "ground_truth"],   # 20 x 20 px at (100, 10), turned 90 degrees clockwise
        ["11", 24.0, 20.0, 60.0, 40.0, "Car", "prediction"],
        ["11", 140.0, 0.0, 20.0, 10.0, "Bus", "prediction"],
        ["12", 0.0, 0.0, 200.0, 100.0, "Bus", "ground_truth"]]
    assert obj.table["score"].tolist()[2:4] == [0.5, 0.9]  # the prediction's score, or the result's own
    assert obj.table["rotation"].tolist()[:2] == [0.0, 90.0]
    rows = {(r.reason, r.action) for r in obj.problems.itertuples()}
    assert rows == {("rotated box, its axis-aligned bounds kept", "converted"), ("not a rectangle (polygonlabels)",
                                                                                "skipped")}
    imgs = obj.images.table
    assert imgs["id"].tolist() == ["11", "12", "13"] and imgs["task_id"].tolist() == [11, 12, 13]
    assert imgs["url"].tolist()[0] == "/data/upload/3/0a1b2c3d-a.png"
    assert imgs["filepath"].tolist()[:2] == [str(photos / "a.png"), str(photos / "sub" / "b.png")]
    assert pd.isna(imgs["filepath"].iloc[2])  # "?d=../../../../etc/passwd" is never looked up outside the folder
    assert imgs[["width", "height"]].values.tolist()[:2] == [[200, 100], [200, 100]]


def test_a_label_studio_file_of_the_wrong_shape_is_one_clear_error(tmp_path):
    with pytest.raises(SourceError, match="x.json is not a Label Studio JSON export"):
        load_objects(write_json(tmp_path / "x.json", [{"data": {}}, 5]), format="label-studio")


# --- FiftyOne -----------------------------------------------------------------------------------

FIFTYONE_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import fiftyone as fo
    from dataexplore.sources.detections import load_objects

    a, b = sys.argv[1], sys.argv[2]
    ds = fo.Dataset()
    ds.add_samples([
        fo.Sample(filepath=a, ground_truth=fo.Detections(detections=[
            fo.Detection(label="cat", bounding_box=[0.1, 0.2, 0.25, 0.5]),
            fo.Detection(label="dog", bounding_box=[0.5, 0.5, 0.0, 0.1])]),
            predictions=fo.Detections(detections=[fo.Detection(label="cat", bounding_box=[0.1, 0.25, 0.25, 0.5],
                                                               confidence=0.8)])),
        fo.Sample(filepath=b, ground_truth=fo.Detections(detections=[
            fo.Detection(label="dog", bounding_box=[0.0, 0.0, 1.0, 1.0])])),
    ])
    obj = load_objects(ds, predictions_field="predictions")  # no metadata yet: it is computed
    only_gt = load_objects(ds.limit(1))
    try:
        load_objects(ds, ground_truth_field="nothing")
        error = None
    except Exception as exc:
        error = str(exc)
    print(json.dumps({
        "sample_ids": ds.values("id"), "detection_ids": ds.values("ground_truth.detections.id"),
        "prediction_ids": ds.values("predictions.detections.id"),
        "images": obj.images.table[["id", "filepath", "width", "height"]].values.tolist(),
        "boxes": obj.table[["id", "image_id", "x", "y", "w", "h", "label", "kind", "score"]].fillna(-1).values.tolist(),
        "problems": obj.problems[["image_id", "reason", "where"]].values.tolist(),
        "only_gt": len(only_gt), "error": error}))
    ds.delete()
""")


@pytest.mark.slow
def test_fiftyone_detections_round_trip_with_their_ids_and_pixel_boxes(tmp_path):
    if importlib.util.find_spec("fiftyone") is None:  # not importorskip: tests/test_fiftyone.py must import it first
        pytest.skip("needs fiftyone")
    a, b = image(tmp_path / "a.png", 40, 30), image(tmp_path / "b.png", 25, 50)
    env = {"FIFTYONE_DATABASE_DIR": str(tmp_path / "fiftyone-db"), "FIFTYONE_DO_NOT_TRACK": "true",
           "FIFTYONE_DATABASE_VALIDATION": "false", "FIFTYONE_SHOW_PROGRESS_BARS": "false"}
    # a process of its own: tests/test_fiftyone.py imports fiftyone with its own database folder
    env = {**{k: v for k, v in os.environ.items() if k != "FIFTYONE_DATABASE_URI"}, **env}
    run = subprocess.run([sys.executable, "-c", FIFTYONE_SCRIPT, str(a), str(b)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    sa, sb = out["sample_ids"]
    (cat, dog), (dog_b,) = out["detection_ids"]
    assert out["images"] == [[sa, str(a), 40, 30], [sb, str(b), 25, 50]]
    assert out["boxes"] == [
        [cat, sa, 4.0, 6.0, 10.0, 15.0, "cat", "ground_truth", -1],
        [dog_b, sb, 0.0, 0.0, 25.0, 50.0, "dog", "ground_truth", -1],
        [out["prediction_ids"][0][0], sa, 4.0, 7.5, 10.0, 15.0, "cat", "prediction", 0.8]]
    assert out["problems"] == [[sa, "zero or negative size", f"{sa}:ground_truth[1]"]] and dog not in {cat, dog_b}
    assert out["only_gt"] == 1  # the first sample's ground truth: its good box
    assert "no Detections field 'nothing'" in out["error"] and "['ground_truth', 'predictions']" in out["error"]
