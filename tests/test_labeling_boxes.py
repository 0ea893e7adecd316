"""Boxes out to labelers and back: the images holding boxes leave as Label Studio rectangle tasks or a COCO
file, and what annotators return comes back as boxes kept, moved, relabelled, added or deleted, with who did it.

Every image is a real PNG written here; Label Studio's export is simulated the way it writes one: the tasks as
imported, each with the annotations annotators submitted (results copied from the pre-annotation, then edited).
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import dataexplore as dx
from dataexplore.core.errors import DataexploreError, SourceError
from dataexplore.core.objects import Objects
from dataexplore.labeling.boxes import export_boxes, import_boxes

SCRIPT = "<script>alert(1)</script>"
SIZES = {"a": (200, 100), "b": (120, 80), "c": (64, 64)}
GT = [("g1", "a", 10, 10, 40, 30, "cat"), ("g2", "a", 100, 20, 50, 50, "dog"), ("g3", "b", 5, 5, 30, 30, "cat"),
      ("g4", "c", 10, 10, 20, 20, "dog")]
PRED = [("p1", "a", 12, 10, 40, 30, "cat", 0.9), ("p2", "a", 100, 20, 50, 50, "dog", 0.8),
        ("p3", "a", 150, 60, 30, 30, "cat", 0.3), ("p4", "b", 5, 5, 30, 30, "cat", 0.7),
        ("p5", "b", 60, 40, 40, 30, "dog", 0.6), ("p6", "c", 10, 10, 20, 20, "dog", 0.5)]


@pytest.fixture
def objects(tmp_path) -> Objects:
    """Ground truth and predictions on three real PNG files of different sizes."""
    rows = []
    for name, (w, h) in SIZES.items():
        path = tmp_path / "imgs" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.random.default_rng(w).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        rows.append({"id": name, "filepath": str(path), "width": w, "height": h})
    table = pd.DataFrame([dict(zip(["id", "image_id", "x", "y", "w", "h", "label"], g), kind="ground_truth")
                          for g in GT] +
                         [dict(zip(["id", "image_id", "x", "y", "w", "h", "label", "score"], p), kind="prediction")
                          for p in PRED])
    return Objects(table, dx.Samples(pd.DataFrame(rows)), name="toy detector")


def annotate(tasks: list, edits: dict) -> list:
    """Label Studio's JSON export after annotators worked: ``edits[image id]`` is ``(who, when, edit)`` where
    ``edit(results)`` changes a copy of the pre-annotated results, or None for a task nobody submitted."""
    out = []
    for n, task in enumerate(tasks):
        image = task["data"]["dx_image_id"]
        annotations = [{"id": 900 + n, "completed_by": 1, "was_cancelled": True, "result": [],
                        "created_at": "2026-11-30T08:00:00Z"}]  # a skipped attempt never counts
        if edits.get(image):
            who, when, edit = edits[image]
            results = copy.deepcopy(task.get("predictions", [{}])[0].get("result", []))
            for r in results:
                r.pop("score", None)
                r["origin"] = "prediction-changed"
            annotations.append({"id": 100 + n, "completed_by": who, "was_cancelled": False, "ground_truth": False,
                                "created_at": when, "updated_at": when, "lead_time": 12.5, "task": n + 1,
                                "project": 7, "result": edit(results)})
            if image == "a":  # an older annotation by someone else: the latest one wins
                annotations.append({"id": 50, "completed_by": {"id": 9, "email": "old@example.com"},
                                    "was_cancelled": False, "created_at": "2026-11-01T08:00:00Z", "result": []})
        out.append({"id": n + 1, "data": task["data"], "annotations": annotations,
                    "predictions": task.get("predictions", []), "project": 7})
    return out


def by_id(results: list) -> dict:
    return {r["id"]: r for r in results}


# ---- Label Studio out ---------------------------------------------------------------------------
def test_label_studio_tasks_hold_the_predicted_boxes_in_exact_percent_with_their_ids(objects, tmp_path):
    folder = export_boxes(objects, tmp_path / "batch")
    tasks = json.loads((folder / "tasks.json").read_text())
    assert [t["data"]["dx_image_id"] for t in tasks] == ["a", "b", "c"]
    assert {t["data"]["dx_boxes"] for t in tasks} == {"prediction"}
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=imgs/a.png"  # beside the classification exports
    pred = tasks[0]["predictions"][0]
    assert pred["score"] == round((0.9 + 0.8 + 0.3) / 3, 6)
    results = by_id(pred["result"])
    assert list(results) == ["p1", "p2", "p3"]
    p1 = results["p1"]
    assert (p1["type"], p1["from_name"], p1["to_name"]) == ("rectanglelabels", "label", "image")
    assert (p1["original_width"], p1["original_height"], p1["score"]) == (200, 100, 0.9)
    assert p1["value"] == {"x": 100 * 12 / 200, "y": 100 * 10 / 100, "width": 100 * 40 / 200,
                           "height": 100 * 30 / 100, "rotation": 0, "rectanglelabels": ["cat"]}
    p5 = by_id(tasks[1]["predictions"][0]["result"])["p5"]["value"]
    assert [p5[k] for k in ("x", "y", "width", "height")] == [100 * 60 / 120, 100 * 40 / 80, 100 * 40 / 120,
                                                              100 * 30 / 80]
    config = ET.fromstring((folder / "config.xml").read_text())
    rect = config.find("RectangleLabels")
    assert (rect.get("name"), rect.get("toName")) == ("label", "image")
    assert [label.get("value") for label in rect.iter("Label")] == ["cat", "dog"]
    assert config.find("Image").get("value") == "$image"
    manifest = pd.read_csv(folder / "manifest.csv", dtype=str)
    assert manifest["object_id"].tolist() == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert manifest["image_id"].tolist() == ["a", "a", "a", "b", "b", "c"]
    text = (folder / "instructions.md").read_text()
    assert "config.xml" in text and "import_boxes" in text and "3 images, 6 boxes" in text


def test_ground_truth_is_the_pre_annotation_when_there_are_no_predictions(objects, tmp_path):
    for folder in (export_boxes(objects.ground_truth(), tmp_path / "gt-only"),
                   export_boxes(objects, tmp_path / "review", predictions=False)):
        tasks = json.loads((folder / "tasks.json").read_text())
        assert {t["data"]["dx_boxes"] for t in tasks} == {"ground_truth"}
        pred = tasks[0]["predictions"][0]
        assert pred["model_version"] == "ground truth" and "score" not in pred
        assert [r["id"] for r in pred["result"]] == ["g1", "g2"] and "score" not in pred["result"][0]
    # nobody changed anything: every box is kept and keeps its id
    export = annotate(tasks, {i: ("rev@example.com", "2026-11-30T12:00:00Z", lambda r: r) for i in "abc"})
    (tmp_path / "export.json").write_text(json.dumps(export))
    corrections = import_boxes(tmp_path / "export.json", objects)
    assert corrections.kind == "ground_truth"  # read from the tasks, though the objects hold predictions
    assert corrections.summary()["kept"] == 4 and corrections.summary().sum() == 4
    assert corrections.apply(objects).table["id"].tolist() == ["g1", "g2", "g3", "g4"]


def test_a_selection_of_objects_sends_only_their_images(objects, tmp_path):
    worst = objects.subset([6])  # p3, the false positive in image a
    folder = export_boxes(objects, tmp_path / "slice", images=worst)
    tasks = json.loads((folder / "tasks.json").read_text())
    assert [t["data"]["dx_image_id"] for t in tasks] == ["a"]
    assert len(tasks[0]["predictions"][0]["result"]) == 3  # every box of the image, not only the selected one
    ordered = export_boxes(objects, tmp_path / "ordered", images=["c", "a"])
    assert [t["data"]["dx_image_id"] for t in json.loads((ordered / "tasks.json").read_text())] == ["c", "a"]
    with pytest.raises(DataexploreError, match="image id 'zz' is not among the objects' images"):
        export_boxes(objects, tmp_path / "x", images=["a", "zz"])
    with pytest.raises(DataexploreError, match="already exists"):
        export_boxes(objects, folder)


def test_hostile_labels_and_ids_stay_text_in_config_tasks_and_instructions(tmp_path):
    imgs = dx.load(np.random.default_rng(0).integers(0, 255, (1, 30, 40), dtype=np.uint8), ids=['<img src=x>/..'])
    obj = Objects(pd.DataFrame({"image_id": ['<img src=x>/..'] * 2, "x": [1, 5], "y": [1, 5], "w": [10, 20],
                                "h": [10, 20], "label": [SCRIPT, 'a"&b'], "kind": "ground_truth"}), imgs)
    folder = export_boxes(obj, tmp_path / "batch $(touch pwned)", name=SCRIPT)
    config_text = (folder / "config.xml").read_text()
    config = ET.fromstring(config_text)
    assert [x.get("value") for x in config.iter("Label")] == [SCRIPT, 'a"&b']
    assert config.find("Header").get("value") == SCRIPT
    assert "<script" not in config_text
    assert "<script" not in (folder / "instructions.md").read_text()
    assert "&lt;script&gt;" in (folder / "instructions.md").read_text()
    task = json.loads((folder / "tasks.json").read_text())[0]
    assert task["predictions"][0]["result"][0]["value"]["rectanglelabels"] == [SCRIPT]
    assert sorted(p.name for p in (folder / "images").iterdir()) == ["img_src_x.png"]  # in-memory pixels as PNG
    with Image.open(folder / "images" / "img_src_x.png") as png:
        assert png.size == (40, 30)
    line = next(x for x in (folder / "instructions.md").read_text().splitlines() if "DOCUMENT_ROOT=" in x)
    out = subprocess.run(["bash", "-c", f'{line}\nprintf %s "$LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"'], cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    assert out.stdout == str(folder) and not (tmp_path / "pwned").exists()
    (tmp_path / "export.json").write_text(json.dumps(annotate([task], {'<img src=x>/..': (SCRIPT, None, lambda r: r)})))
    corrections = import_boxes(tmp_path / "export.json", obj)
    assert corrections.table["annotator"].tolist() == [SCRIPT, SCRIPT]
    assert "<script" not in corrections._repr_html_() and "<img" not in corrections._repr_html_()


# ---- Label Studio back ---------------------------------------------------------------------------
def test_label_studio_corrections_come_back_matched_with_status_and_provenance(objects, tmp_path):
    tasks = json.loads((export_boxes(objects, tmp_path / "batch") / "tasks.json").read_text())

    def edit_a(results):
        r = by_id(results)
        r["p1"]["value"]["x"] += 10  # moved 20 px to the right
        r["p2"]["value"]["rectanglelabels"] = ["cat"]  # relabelled
        added = copy.deepcopy(r["p1"])
        added.update(id="Xk29fLm0aQ", origin="manual")
        added["value"].update(x=10.0, y=50.0, width=15.0, height=30.0, rectanglelabels=["dog"])
        return [r["p1"], r["p2"], added]  # p3 deleted

    def edit_b(results):
        r = by_id(results)
        r["p5"].update(id="n3w1d")  # redrawn: the id is lost, the box overlaps p5 (IoU 0.82)
        r["p5"]["value"].update(x=100 * 64 / 120, rectanglelabels=["cat"])
        return [r["p4"], r["p5"], {"id": "t1", "type": "textarea", "from_name": "note", "to_name": "image",
                                   "value": {"text": ["blurry"]}}]

    export = annotate(tasks, {"a": ({"id": 4, "email": "ann@example.com"}, "2026-11-30T10:00:00.123Z", edit_a),
                              "b": (3, "2026-11-30T11:00:00Z", edit_b), "c": None})
    (tmp_path / "project-7-export.json").write_text(json.dumps(export))
    corrections = import_boxes(tmp_path / "project-7-export.json", objects)

    assert corrections.summary().to_dict() == {"kept": 1, "moved": 1, "relabelled": 1, "moved+relabelled": 1,
                                               "added": 1, "deleted": 1, "not annotated": 1}
    t = corrections.table
    status = dict(zip(t["object_id"].fillna("new"), t["status"]))
    assert status == {"p1": "moved", "p2": "relabelled", "new": "added", "p3": "deleted", "p4": "kept",
                      "p5": "moved+relabelled", "p6": "not annotated"}
    row = t.set_index(t["object_id"].fillna("new"))
    assert row.loc["p1", ["old_x", "new_x", "new_y", "new_w", "new_h"]].tolist() == [12.0, 32.0, 10.0, 40.0, 30.0]
    assert row.loc["p2", ["old_label", "new_label", "matched_by"]].tolist() == ["dog", "cat", "id"]
    assert row.loc["p5", ["matched_by", "moved", "relabelled", "region_id"]].tolist() == ["iou", True, True, "n3w1d"]
    assert math.isclose(row.loc["p5", "iou"], 36 * 30 / (2 * 40 * 30 - 36 * 30))
    assert row.loc["new", ["new_x", "new_y", "new_w", "new_h", "new_label", "region_id"]].tolist() == \
        [20.0, 50.0, 30.0, 30.0, "dog", "Xk29fLm0aQ"]
    assert row.loc["p3", ["annotator", "annotated_at"]].tolist() == ["ann@example.com", "2026-11-30T10:00:00.123Z"]
    assert row.loc["p4", ["annotator", "annotated_at"]].tolist() == ["3", "2026-11-30T11:00:00Z"]
    assert row.loc["p6", "annotator"] is None
    assert corrections.images.set_index("image_id")["status"].to_dict() == \
        {"a": "annotated", "b": "annotated", "c": "not annotated"}
    assert len(corrections.problems) == 0

    fixed = corrections.apply(objects)
    assert set(fixed.table["kind"]) == {"ground_truth"} and fixed.table["score"].isna().all()
    got = fixed.table[["id", "image_id", "x", "y", "w", "h", "label", "provenance", "correction", "corrects"]]
    assert got.astype(object).where(got.notna(), None).values.tolist() == [
        ["a/labeler/0", "a", 32.0, 10.0, 40.0, 30.0, "cat", "labeler:ann@example.com", "moved", "p1"],
        ["a/labeler/1", "a", 100.0, 20.0, 50.0, 50.0, "cat", "labeler:ann@example.com", "relabelled", "p2"],
        ["a/labeler/2", "a", 20.0, 50.0, 30.0, 30.0, "dog", "labeler:ann@example.com", "added", None],
        ["b/labeler/0", "b", 5.0, 5.0, 30.0, 30.0, "cat", "labeler:3", "kept", "p4"],
        ["b/labeler/1", "b", 64.0, 40.0, 40.0, 30.0, "cat", "labeler:3", "moved+relabelled", "p5"],
        ["g4", "c", 10.0, 10.0, 20.0, 20.0, "dog", "original", None, None],  # not annotated: its ground truth stays
    ]
    both = Objects.concat([fixed, objects.predictions()])  # the corrected truth sits beside the predictions
    assert len(dx.match(both).objects) == 12


def test_bad_boxes_in_an_export_are_set_aside_and_the_rest_loads(objects, tmp_path):
    tasks = json.loads((export_boxes(objects, tmp_path / "batch") / "tasks.json").read_text())

    def edit(results):
        r = by_id(results)
        r["p1"]["value"]["x"] = "NaN"  # not a number
        r["p2"]["value"] = {"x": 1}  # no label
        r["p3"]["value"].update(x=150.0)  # right of the image
        turned = copy.deepcopy(r["p3"])  # p2's box (100, 20, 50, 50) turned 90 degrees around its top-left corner
        turned.update(id="turned", value={"x": 50.0, "y": 20.0, "width": 25.0, "height": 50.0, "rotation": 90,
                                          "rectanglelabels": ["dog"]})
        return [r["p1"], r["p2"], r["p3"], turned, {"type": "polygonlabels", "value": {"points": [[1, 2]]}}, "junk"]

    (tmp_path / "export.json").write_text(json.dumps(annotate(tasks, {"a": ("x", "2026-11-30T10:00:00Z", edit)})))
    corrections = import_boxes(tmp_path / "export.json", objects)
    reasons = sorted(corrections.problems["reason"])
    assert reasons == ["malformed rectangle (no value or no label)", "not a number", "not a rectangle (polygonlabels)",
                       "outside the image", "rotated box, its axis-aligned bounds kept"]
    assert corrections.problems.set_index("reason").loc["rotated box, its axis-aligned bounds kept", "action"] == \
        "converted"
    assert corrections.summary()[["deleted", "added"]].tolist() == [3, 1]  # nothing usable came back for p1..p3
    added = corrections.table[corrections.table["status"] == "added"]
    assert added[["region_id", "new_x", "new_y", "new_w", "new_h"]].values.tolist() == [["turned", 50.0, 20.0, 50.0,
                                                                                          50.0]]


def test_an_image_imported_twice_counts_the_task_annotated_last(objects, tmp_path):
    tasks = json.loads((export_boxes(objects, tmp_path / "batch") / "tasks.json").read_text())
    export = annotate(tasks, {"b": ("new@example.com", "2026-11-30T12:00:00Z", lambda r: r)})
    again = annotate(tasks[1:2], {"b": ("old@example.com", "2026-11-29T12:00:00Z", lambda r: [])})  # deleted all
    (tmp_path / "export.json").write_text(json.dumps(again + export))
    corrections = import_boxes(tmp_path / "export.json", objects)
    assert corrections.table.query("image_id == 'b'")["status"].tolist() == ["kept", "kept"]
    assert corrections.images["image_id"].tolist() == ["b", "a", "c"]
    assert corrections.problems[["image_id", "reason", "where"]].values.tolist() == [
        ["b", "another task of the same image was annotated later", "export.json:[0]"]]


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON"),
    ('[{"id": 1}]', "expected a Label Studio JSON export"),
    ('[{"id": 1, "data": {"image": "x.png"}, "annotations": []}]', "has no dx_image_id"),
    ('[{"id": 1, "data": {"dx_image_id": "a"}, "annotations": {"result": []}}]', "'annotations' must be a list"),
    ('[{"id": 1, "data": {"dx_image_id": "zz"}, "annotations": []}]', "none of its images are among"),
    ('[{"data": {"dx_image_id": "a"}, "annotations": [{"result": {"x": 1}}]}]', "'result' must be a list"),
    ('[{"data": {"dx_image_id": "a"}, "annotations": [{"result": [], "updated_at": 5}]}]', "time must be text"),
    ('{"images": {}, "annotations": []}', "not a COCO annotations file"),
    ("[]", "holds no images or tasks"),
    ("5", "neither a Label Studio JSON export nor a COCO"),
])
def test_a_malformed_export_is_one_clear_source_error(objects, tmp_path, content, message):
    path = tmp_path / "export.json"
    path.write_text(content)
    with pytest.raises(SourceError, match=message) as err:
        import_boxes(path, objects)
    assert "\n" not in str(err.value) and "export.json" in str(err.value)
    with pytest.raises(SourceError, match="boxes file not found"):
        import_boxes(tmp_path / "missing.json", objects)


# ---- COCO ----------------------------------------------------------------------------------------
def test_coco_export_loads_in_pycocotools_with_its_predictions(objects, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    folder = export_boxes(objects, tmp_path / "coco", format="coco", predictions=False)  # ground truth to review
    gt = COCO(str(folder / "annotations.json"))
    assert sorted(img["dx_id"] for img in gt.dataset["images"]) == ["a", "b", "c"]
    assert {img["dx_id"]: (img["width"], img["height"]) for img in gt.dataset["images"]} == SIZES
    anns = gt.loadAnns(gt.getAnnIds())
    assert [(a["dx_object_id"], a["bbox"], a["area"], a["iscrowd"]) for a in anns][:2] == \
        [("g1", [10.0, 10.0, 40.0, 30.0], 1200.0, 0), ("g2", [100.0, 20.0, 50.0, 50.0], 2500.0, 0)]
    assert [gt.cats[a["category_id"]]["name"] for a in anns] == ["cat", "dog", "cat", "dog"]
    assert gt.dataset["info"]["dx_boxes"] == "ground_truth"
    dt = gt.loadRes(str(folder / "predictions.json"))
    preds = dt.loadAnns(dt.getAnnIds())
    assert [(p["dx_object_id"], p["score"]) for p in preds] == [(p[0], p[7]) for p in PRED]
    assert preds[0]["bbox"] == [12.0, 10.0, 40.0, 30.0]
    ev = COCOeval(gt, dt, "bbox")
    ev.params.maxDets = [100]
    ev.evaluate()
    assert any(e is not None for e in ev.evalImgs)
    sent = export_boxes(objects, tmp_path / "coco-pred", format="coco")  # the predictions are the boxes to correct
    doc = json.loads((sent / "annotations.json").read_text())
    assert [a["dx_object_id"] for a in doc["annotations"]] == [p[0] for p in PRED]
    assert "score" not in doc["annotations"][0]  # tools open annotations, not results, for editing


def test_coco_round_trip_with_edits_by_id_by_overlap_and_by_file_name(objects, tmp_path):
    folder = export_boxes(objects, tmp_path / "coco", format="coco", predictions=False)
    doc = json.loads((folder / "annotations.json").read_text())
    anns = {a["dx_object_id"]: a for a in doc["annotations"]}
    anns["g1"]["bbox"] = [30, 10, 40, 30]  # moved
    del anns["g2"]["dx_object_id"]  # a tool that drops unknown keys: matched by overlap
    anns["g2"]["category_id"] = next(c["id"] for c in doc["categories"] if c["name"] == "cat")
    new = {"id": 99, "image_id": anns["g1"]["image_id"], "category_id": anns["g1"]["category_id"],
           "bbox": [150, 60, 30, 30], "area": 900, "iscrowd": 0}
    doc["annotations"] = [anns["g1"], anns["g2"], new, anns["g3"]]  # g4's image left without annotations
    for a in doc["annotations"]:
        a.update(annotator="cvat-user", updated_at="2026-12-01T09:00:00Z")
    (tmp_path / "back").mkdir()
    (tmp_path / "back" / "annotations.json").write_text(json.dumps(doc))
    corrections = import_boxes(tmp_path / "back", objects)
    status = dict(zip(corrections.table["object_id"].fillna("new"), corrections.table["status"]))
    assert status == {"g1": "moved", "g2": "relabelled", "new": "added", "g3": "kept", "g4": "not annotated"}
    assert corrections.table.set_index("status").loc["relabelled", "matched_by"] == "iou"
    assert set(corrections.table["annotator"].dropna()) == {"cvat-user"}
    fixed = corrections.apply(objects).table
    assert fixed[["id", "label", "x", "provenance"]].values.tolist() == [
        ["g1", "cat", 30.0, "labeler:cvat-user"], ["g2", "cat", 100.0, "labeler:cvat-user"],
        ["a/labeler/0", "cat", 150.0, "labeler:cvat-user"], ["g3", "cat", 5.0, "labeler:cvat-user"],
        ["g4", "dog", 10.0, "original"]]

    for img in doc["images"]:  # a tool that keeps no dx_id and no info: images matched through manifest.csv
        del img["dx_id"]
        img["file_name"] = Path(img["file_name"]).name
    del doc["info"]
    (folder / "cvat-export.json").write_text(json.dumps(doc))
    again = import_boxes(folder / "cvat-export.json", objects)
    assert again.kind == "ground_truth"  # from the annotations' dx_kind
    assert again.summary().to_dict() == corrections.summary().to_dict()
    for a in doc["annotations"]:
        a.pop("dx_kind", None)
    (folder / "bare.json").write_text(json.dumps(doc))
    assert import_boxes(folder / "bare.json", objects).kind == "prediction"  # nothing recorded: the default
    bare = import_boxes(folder / "bare.json", objects, kind="ground_truth")
    assert bare.summary().to_dict() == corrections.summary().to_dict()
    (tmp_path / "back" / "lost.json").write_text(json.dumps(doc))  # no manifest beside it: nothing matches
    with pytest.raises(SourceError, match="none of its images are among the objects' images"):
        import_boxes(tmp_path / "back" / "lost.json", objects)


def test_a_second_round_of_review_adds_boxes_without_reusing_the_first_rounds_ids(objects, tmp_path):
    def add_one(results):
        extra = copy.deepcopy(results[0])
        extra.update(id="more")
        extra["value"].update(x=1.0, y=1.0, width=5.0, height=5.0)
        return results + [extra]

    tasks = json.loads((export_boxes(objects, tmp_path / "round1") / "tasks.json").read_text())
    (tmp_path / "r1.json").write_text(json.dumps(annotate(tasks, {"a": (1, "2026-12-01T10:00:00Z", add_one)})))
    round1 = import_boxes(tmp_path / "r1.json", objects).apply(objects)
    truth = Objects.concat([round1, objects.predictions()])
    tasks = json.loads((export_boxes(truth, tmp_path / "round2", predictions=False) / "tasks.json").read_text())
    (tmp_path / "r2.json").write_text(json.dumps(annotate(tasks, {"a": (2, "2026-12-02T10:00:00Z", add_one)})))
    round2 = import_boxes(tmp_path / "r2.json", truth).apply(truth)
    ids = round2.table["id"].tolist()
    assert len(ids) == len(set(ids)) and sum(i.startswith("a/labeler/") for i in ids) == 5  # 4 + one more


def test_an_image_sent_without_boxes_gets_its_size_from_its_file(objects, tmp_path):
    images = objects.images.table.copy()
    images.loc[images["id"] == "c", ["width", "height"]] = np.nan  # e.g. a Label Studio task with no boxes
    table = objects.table[objects.table["image_id"] != "c"]
    sized = Objects(table, dx.Samples(images))
    assert sized.images.table.set_index("id").loc["c", ["width", "height"]].tolist() == list(SIZES["c"])
    tasks = json.loads((export_boxes(sized, tmp_path / "b", images=["a", "c"]) / "tasks.json").read_text())
    assert [t["data"]["dx_image_id"] for t in tasks] == ["a", "c"]
