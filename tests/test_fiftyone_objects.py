"""Boxes to FiftyOne and back through CVAT: Objects as fo.Detections, a CVAT run on the images of selected
objects, and the corrected boxes compared with the ones sent.

FiftyOne runs in a process of its own with its own database folder (tests/test_fiftyone.py imports
fiftyone in this process with another one), once for the module: the script below does every
FiftyOne step and prints what it saw as JSON, and each test checks one part of it.

There is no CVAT server here. The run goes through FiftyOne's real ``annotate`` and
``load_annotations`` with a stand-in registered under the backend name ``"cvat"``: it uploads the
boxes of the label field (with their FiftyOne label ids, as CVAT's backend does) to a JSON file,
the script edits that file as an annotator would (moves, relabels, deletes, redraws, adds), and
FiftyOne merges the answer back into the dataset exactly as it merges CVAT's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import dataexplore as dx
from dataexplore.core.errors import DataexploreError
from dataexplore.core.objects import Objects
from dataexplore.sources.scenes import fashion_scenes

FAKE_CVAT = textwrap.dedent('''
    """A stand-in for FiftyOne's CVAT backend: the "server" is a JSON file of boxes per sample."""
    import json, os
    import fiftyone.core.labels as fol
    import fiftyone.utils.annotations as foua

    SERVER = os.environ["FAKE_CVAT_SERVER"]


    class FakeCVATBackendConfig(foua.AnnotationBackendConfig):
        def __init__(self, name, label_schema, media_field="filepath", url=None, username=None, password=None,
                     **kwargs):
            super().__init__(name, label_schema, media_field=media_field, **kwargs)
            self.url, self.username, self._password = url, username, password


    class FakeCVATBackend(foua.AnnotationBackend):
        supported_media_types = ["image"]
        supported_label_types = ["detections"]
        supported_scalar_types = []
        supported_attr_types = ["text"]
        supports_keyframes = False
        supports_video_sample_fields = False
        requires_label_schema = True

        def recommend_attr_tool(self, name, value):
            return {"type": "text"}

        def requires_attr_values(self, attr_type):
            return False

        def upload_annotations(self, samples, anno_key, launch_editor=False):
            (field, info), = self.config.label_schema.items()
            tasks, id_map = {}, {}
            for sample in samples.select_fields(field):
                dets = sample[field].detections if sample[field] is not None else []
                tasks[sample.id] = [{"id": d.id, "label": d.label, "bounding_box": list(d.bounding_box),
                                     "attributes": sorted(k for k, _ in d.iter_attributes())} for d in dets]
                id_map[sample.id] = [d.id for d in dets]
            with open(SERVER, "w") as f:
                json.dump({"field": field, "schema": info, "tasks": tasks}, f)
            return FakeCVATResults(samples, self.config, anno_key, {field: id_map}, backend=self)

        def download_annotations(self, results):
            with open(SERVER) as f:
                server = json.load(f)
            out = {}
            for sid, boxes in server["tasks"].items():
                out[sid] = {}
                for b in boxes:
                    det = fol.Detection(label=b["label"], bounding_box=b["bounding_box"])
                    if b.get("id"):  # a box the annotator kept, moved or relabelled keeps its label id
                        det.id = b["id"]
                    out[sid][det.id] = det
            return {server["field"]: {"detections": out}}


    class FakeCVATResults(foua.AnnotationResults):
        pass
''')

SCRIPT = textwrap.dedent('''
    import json, os, sys
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from PIL import Image

    import fiftyone as fo
    import dataexplore as dx
    from dataexplore.core.objects import Objects
    from dataexplore.core.samples import Samples
    from dataexplore.core.selection import as_selection
    from dataexplore.sources.scenes import fashion_scenes

    tmp = Path(sys.argv[1])
    fo.annotation_config.backends["cvat"] = {"config_cls": "fakecvat.FakeCVATBackendConfig"}
    out = {}


    def error(call):
        try:
            call()
        except dx.DataexploreError as exc:
            return str(exc)
        return None


    def by_dx_id(ds, field):
        """FiftyOne detection id -> dx_object_id, and sample id -> dx_image_id."""
        ids = [i for per in ds.values(f"{field}.detections.id") for i in per or []]
        dx_ids = [i for per in ds.values(f"{field}.detections.dx_object_id") for i in per or []]
        return dict(zip(ids, dx_ids)), dict(zip(ds.values("id"), ds.values("dx_image_id")))


    def rows(objects):
        t = objects.table
        return t[["id", "image_id", "x", "y", "w", "h", "label", "kind", "score"]].fillna(-1).values.tolist()


    # --- 1. in-memory scenes (real Fashion-MNIST items) with predictions: round trip -------------------
    scenes = fashion_scenes("test", 5)
    gt = scenes.table
    pred = gt.iloc[::2].copy()
    pred["id"] = pred["id"].str.replace("ground_truth", "prediction")
    pred["kind"], pred["score"] = "prediction", np.linspace(0.3, 0.9, len(pred))
    pred["x"] = pred["x"] + 1.25
    pred.loc[pred.index[0], "x"] = 90.0  # extends past the 96-pixel canvas: kept as given
    objects = Objects(pd.concat([gt, pred], ignore_index=True), scenes.images)
    ds = dx.fiftyone.to_fiftyone(objects, name="scenes", image_dir=tmp / "png")
    back = dx.load_objects(ds, predictions_field="predictions")
    gt_map, image_map = by_dx_id(ds, "ground_truth")
    mapped = [[r[0], image_map[r[1]], *r[2:]] for r in rows(back)]  # the objects keep their ids
    first = ds.first()
    out["round_trip"] = {
        "sent": rows(objects), "back": mapped, "problems": back.problems[["reason", "action"]].values.tolist(),
        "paths": ds.values("filepath"), "image_ids": ds.values("dx_image_id"),
        "sizes": [ds.values("metadata.width"), ds.values("metadata.height")],
        "pixels_equal": [bool(np.array_equal(np.asarray(Image.open(p)), objects.images.images[i]))
                         for i, p in enumerate(ds.values("filepath"))],
        "first_box": first.predictions.detections[0].bounding_box,
        "first_confidence": [d.confidence for d in first.ground_truth.detections],
        "info": ds.info["dataexplore"]["objects"],
        "name_taken": error(lambda: dx.fiftyone.to_fiftyone(objects, name="scenes")),
    }
    ds.persistent = False

    # --- 2. a CVAT run on the images of selected objects, corrected, loaded back ------------------------
    image_a, image_b = objects.images.ids[1], objects.images.ids[3]
    rows_ab = np.flatnonzero(objects.table["image_id"].isin([image_a, image_b]).to_numpy())
    selection = as_selection(objects.ids, rows_ab[[0, 2, -1]], shape="lasso")  # objects of both images
    classes = sorted(set(objects.table["label"])) + ["Umbrella"]
    req = dx.fiftyone.cvat_boxes_request(ds, selection, anno_key="fix_boxes", classes=classes,
                                         url="http://cvat.local:8080", username="ana", password="hunter2")
    out["request"] = {"kwargs": req.kwargs, "images": sorted(req.view.values("dx_image_id")),
                      "code": req.code(), "repr": repr(req)}
    req.run()
    server_path = Path(os.environ["FAKE_CVAT_SERVER"])
    server = json.loads(server_path.read_text())
    sent = {gt_map[b["id"]]: b for boxes in server["tasks"].values() for b in boxes}
    out["uploaded"] = {"images": sorted(image_map[s] for s in server["tasks"]), "boxes": sorted(sent),
                       "attributes": server["schema"]["attributes"]}
    sample_a, sample_b = (next(s for s, i in image_map.items() if i == x) for x in (image_a, image_b))
    boxes_a = server["tasks"][sample_a]
    a = {gt_map[b["id"]]: b for b in boxes_a}
    moved, relabelled, deleted, redrawn = (f"{image_a}/ground_truth/{k}" for k in range(4))
    a[moved]["bounding_box"][0] += 0.1
    new_label = "Bag" if a[relabelled]["label"] != "Bag" else "Coat"
    a[relabelled]["label"] = new_label
    boxes_a.remove(a[deleted])
    a[redrawn].pop("id")  # deleted and drawn again at the same place: a new label id, no dx_object_id
    server["tasks"][sample_b].append({"label": "Umbrella", "bounding_box": [0.05, 0.05, 0.2, 0.25]})
    server_path.write_text(json.dumps(server))
    ds.load_annotations("fix_boxes")
    corrections = dx.fiftyone.boxes_from_fiftyone(req.view, objects)
    by_run = dx.fiftyone.boxes_from_fiftyone(ds, objects, anno_key="fix_boxes")
    whole = dx.fiftyone.boxes_from_fiftyone(ds, objects)
    fixed = corrections.apply(objects)
    columns = ["status", "object_id", "image_id", "matched_by", "old_label", "new_label", "new_x", "new_y", "new_w",
               "new_h", "annotator"]
    out["corrections"] = {
        "edits": {"moved": moved, "relabelled": relabelled, "deleted": deleted, "redrawn": redrawn,
                  "new_label": new_label, "moved_box": a[moved]["bounding_box"]},
        "table": corrections.table[columns].astype(object).where(corrections.table[columns].notna(), None)
        .values.tolist(),
        "images": corrections.images[["image_id", "status", "sent", "returned"]].values.tolist(),
        "kind": corrections.kind, "source": corrections.source, "problems": len(corrections.problems),
        "by_run": by_run.table[columns].astype(object).where(by_run.table[columns].notna(), None).values.tolist(),
        "whole": whole.summary().to_dict(), "whole_images": len(whole.images),
        "fixed_a": fixed.in_image(image_a)[["id", "x", "y", "w", "h", "label", "provenance", "correction"]]
        .values.tolist(),
        "fixed_other": fixed.in_image(objects.images.ids[0])["provenance"].tolist(),
        "predictions": dx.fiftyone.boxes_from_fiftyone(ds, objects, label_field="predictions").summary().to_dict(),
        "predictions_kind": dx.fiftyone.boxes_from_fiftyone(ds, objects, label_field="predictions").kind,
    }

    # --- 3. more ways to select; Objects given directly; what is refused ----------------------------------
    subset = objects.subset(np.flatnonzero((objects.table["image_id"] == objects.images.ids[4]).to_numpy()))
    req_subset = dx.fiftyone.cvat_boxes_request(ds, subset, anno_key="by_subset")
    req_images = dx.fiftyone.cvat_boxes_request(ds, [objects.images.ids[0], objects.images.ids[2]],
                                                anno_key="by_images", label_field="predictions")
    req_objects = dx.fiftyone.cvat_boxes_request(objects, [objects.ids[-1]], anno_key="from_objects")
    out["select"] = {
        "subset": req_subset.view.values("dx_image_id"), "subset_classes": req_subset.kwargs["classes"],
        "field_labels": sorted(ds.distinct("ground_truth.detections.label")),
        "images": sorted(req_images.view.values("dx_image_id")), "images_field": req_images.kwargs["label_field"],
        "objects": req_objects.view.values("dx_image_id"), "objects_classes": req_objects.kwargs["classes"],
        "objects_dataset": req_objects.view.dataset_name,
        "objects_files": [str(Path(p).relative_to(os.environ["FIFTYONE_DEFAULT_DATASET_DIR"]))
                          for p in req_objects.view.values("filepath")],
        "unknown": error(lambda: dx.fiftyone.cvat_boxes_request(ds, ["nope", objects.ids[0], "nada"], anno_key="k")),
        "empty": error(lambda: dx.fiftyone.cvat_boxes_request(ds, [], anno_key="k")),
        "used_key": error(lambda: dx.fiftyone.cvat_boxes_request(ds, [objects.ids[0]], anno_key="fix_boxes")),
        "no_field": error(lambda: dx.fiftyone.boxes_from_fiftyone(ds, objects, label_field="boxes")),
        "not_detections": error(lambda: dx.fiftyone.boxes_from_fiftyone(ds, objects, label_field="dx_image_id")),
        "foreign": error(lambda: dx.fiftyone.boxes_from_fiftyone(ds, fashion_scenes("train", 2))),
    }

    # --- 4. image files added to an existing dataset, matched by filepath ---------------------------------
    folder = tmp / "files"
    folder.mkdir()
    canvases = fashion_scenes("train", 3).images.images
    files = []
    for k, (h, w) in enumerate([(96, 80), (70, 96), (96, 96)]):
        files.append(str(folder / f"img{k}.png"))
        Image.fromarray(canvases[k][:h, :w]).save(files[-1])
    images = Samples(pd.DataFrame({"id": ["a", "b", "c"], "filepath": files, "width": [80.0, 96.0, 96.0],
                                   "height": [96.0, 70.0, 96.0]}))
    boxes = pd.DataFrame({"image_id": ["a", "a", "b", "c"], "x": [10.0, 70.0, 3.5, 0.0], "y": [20.0, 5.0, 60.0, 0.0],
                          "w": [30.0, 20.0, 40.0, 96.0], "h": [40.0, 30.0, 20.0, 96.0],
                          "label": ["Bag", "Coat", "Shirt", "Bag"], "kind": "ground_truth"})
    on_files = Objects(boxes, images)
    user = fo.Dataset("user-dataset")
    user.add_samples([fo.Sample(filepath=p) for p in files[:2]] + [fo.Sample(filepath=str(tmp / "other.png"))])
    missing_one = error(lambda: dx.fiftyone.to_fiftyone(on_files, dataset=user))
    user.add_sample(fo.Sample(filepath=files[2], metadata=fo.ImageMetadata(width=96, height=96)))
    returned = dx.fiftyone.to_fiftyone(on_files, dataset=user)
    loaded = dx.load_objects(user.exists("ground_truth"))
    gt_map, image_map = by_dx_id(user, "ground_truth")
    again = error(lambda: dx.fiftyone.to_fiftyone(on_files, dataset=user))
    dx.fiftyone.to_fiftyone(on_files, dataset=user, overwrite=True)
    bad_size = fo.Dataset("bad-size")
    bad_size.add_samples([fo.Sample(filepath=p, metadata=fo.ImageMetadata(width=50, height=50)) for p in files])
    in_memory = error(lambda: dx.fiftyone.to_fiftyone(objects, dataset=user))
    out["files"] = {
        "same_dataset": returned is user, "missing_one": missing_one, "again": again,
        "back": [[r[0], image_map[r[1]], *r[2:]] for r in rows(loaded)], "sent": rows(on_files),
        "problems": [[image_map[i], r] for i, r in loaded.problems[["image_id", "reason"]].values.tolist()],
        "sizes": [user.values("metadata.width"), user.values("metadata.height")],
        "image_ids": user.values("dx_image_id"), "count": user.count("ground_truth.detections"),
        "after_overwrite": user.count("ground_truth.detections"),
        "bad_size": error(lambda: dx.fiftyone.to_fiftyone(on_files, dataset=bad_size)),
        "in_memory": in_memory,
    }
    for d in (ds, user, bad_size, req_objects.view._dataset):
        d.delete()
    print(json.dumps(out))
''')


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The script's findings: one FiftyOne process (one MongoDB start) for the whole module."""
    if importlib.util.find_spec("fiftyone") is None:  # not importorskip: importing it here would break
        pytest.skip("fiftyone is not installed")  # tests/test_fiftyone.py's database folder
    tmp = tmp_path_factory.mktemp("fiftyone-objects")
    (tmp / "fakecvat.py").write_text(FAKE_CVAT)
    env = {k: v for k, v in os.environ.items() if k != "FIFTYONE_DATABASE_URI"}
    env.update({"FIFTYONE_DATABASE_DIR": str(tmp / "db"), "FIFTYONE_DO_NOT_TRACK": "true",
                "FIFTYONE_DATABASE_VALIDATION": "false", "FIFTYONE_SHOW_PROGRESS_BARS": "false",
                "FIFTYONE_DEFAULT_DATASET_DIR": str(tmp / "fiftyone"), "FAKE_CVAT_SERVER": str(tmp / "server.json"),
                "PYTHONPATH": os.pathsep.join([str(tmp), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)})
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["tmp"] = str(tmp)
    return out


def by_id(rows: list[list]) -> dict[str, list]:
    return {r[0]: r[1:] for r in rows}


@pytest.mark.slow
def test_objects_round_trip_through_fiftyone_with_the_same_boxes_and_ids(run):
    rt = run["round_trip"]
    sent, back = by_id(rt["sent"]), by_id(rt["back"])
    assert set(back) == set(sent) and len(rt["back"]) == len(rt["sent"]) == 25 + 13
    for oid, (image_id, *box, label, kind, score) in sent.items():
        b_image, *b_box, b_label, b_kind, b_score = back[oid]
        assert (b_image, b_label, b_kind) == (image_id, label, kind), oid
        np.testing.assert_allclose(b_box, box, rtol=0, atol=1e-6, err_msg=oid)
        assert b_score == pytest.approx(score, abs=1e-12), oid
    # the prediction at x=90 of a 96-pixel canvas is written as given and read back the same
    assert rt["first_box"][0] == pytest.approx(90 / 96) and rt["first_box"][0] + rt["first_box"][2] > 1
    assert rt["problems"] == [["extends past the image", "kept"]]
    assert rt["first_confidence"] == [None] * len(rt["first_confidence"])  # ground truth has no confidence
    # in-memory canvases became PNG files in image_dir, pixel for pixel, with their sizes and ids
    scenes = fashion_scenes("test", 5)
    assert rt["paths"] == [os.path.join(run["tmp"], "png", f"{i}.png") for i in scenes.images.ids]
    assert rt["pixels_equal"] == [True] * 5
    assert rt["image_ids"] == list(scenes.images.ids) and rt["sizes"] == [[96] * 5, [96] * 5]
    assert rt["info"] == {"ground_truth": "ground_truth", "predictions": "prediction"}
    assert "named 'scenes' exists: pass overwrite=True" in rt["name_taken"]


@pytest.mark.slow
def test_a_cvat_boxes_request_holds_exactly_the_selected_images_and_the_detections_arguments(run):
    req = run["request"]
    scenes = fashion_scenes("test", 5)
    image_a, image_b = scenes.images.ids[1], scenes.images.ids[3]
    classes = sorted(set(scenes.table["label"])) + ["Umbrella"]
    assert req["images"] == [image_a, image_b]
    assert req["kwargs"] == {"anno_key": "fix_boxes", "backend": "cvat", "label_field": "ground_truth",
                             "label_type": "detections", "classes": classes, "url": "http://cvat.local:8080",
                             "username": "ana", "password": "hunter2", "attributes": False}
    assert "hunter2" not in req["code"] and "hunter2" not in req["repr"]
    # what FiftyOne uploaded: the ground-truth boxes of exactly those two images, dx_object_id not shown
    up = run["uploaded"]
    assert up["images"] == [image_a, image_b] and up["attributes"] == {}
    assert up["boxes"] == sorted(scenes.table.loc[scenes.table["image_id"].isin([image_a, image_b]), "id"])

    sel = run["select"]
    assert sel["subset"] == [scenes.images.ids[4]]  # an Objects subset: the images its boxes are in
    # default classes: the labels the field holds now (after the correction: with "Umbrella")
    assert sel["subset_classes"] == sel["field_labels"] and "Umbrella" in sel["field_labels"]
    assert sel["images"] == [scenes.images.ids[0], scenes.images.ids[2]] and sel["images_field"] == "predictions"
    last_prediction_image = scenes.images.ids[4]  # the objects' last row is a prediction in the last canvas
    assert sel["objects"] == [last_prediction_image]
    assert sel["objects_classes"] == sorted(set(scenes.table["label"]))  # given Objects: the objects' labels
    assert sel["objects_files"] == [os.path.join(sel["objects_dataset"], "images", f"{last_prediction_image}.png")]
    assert sel["unknown"] == ("2 of the 3 selected ids are none of the collection's objects (dx_object_id), "
                              "images (dx_image_id) or samples (first: 'nope')")
    assert "the selection is empty" in sel["empty"]
    assert "annotation key 'fix_boxes' is already used" in sel["used_key"]
    assert "the collection has no field 'boxes'; its Detections fields: ['ground_truth', 'predictions']" in \
        sel["no_field"]
    assert "field 'dx_image_id' holds StringField values, not Detections" in sel["not_detections"]
    assert "none of the collection's samples are among the objects' images" in sel["foreign"]


@pytest.mark.slow
def test_boxes_corrected_in_cvat_come_back_moved_relabelled_deleted_and_added(run):
    c = run["corrections"]
    edits = c["edits"]
    scenes = fashion_scenes("test", 5)
    image_a, image_b = scenes.images.ids[1], scenes.images.ids[3]
    rows = c["table"]
    status = {r[1]: (r[0], r[3]) for r in rows if r[1] is not None}
    assert status.pop(edits["moved"]) == ("moved", "id")
    assert status.pop(edits["relabelled"]) == ("relabelled", "id")
    assert status.pop(edits["deleted"]) == ("deleted", None)
    assert status.pop(edits["redrawn"]) == ("kept", "iou")  # its id was lost: paired by IoU
    sent_ab = scenes.table[scenes.table["image_id"].isin([image_a, image_b])]
    assert len(status) == len(sent_ab) - 4 and set(status.values()) == {("kept", "id")}
    added = [r for r in rows if r[0] == "added"]
    assert len(added) == 1 and added[0][1] is None and added[0][2] == image_b and added[0][5] == "Umbrella"
    np.testing.assert_allclose(added[0][6:10], [0.05 * 96, 0.05 * 96, 0.2 * 96, 0.25 * 96], atol=1e-9)
    relabel = next(r for r in rows if r[1] == edits["relabelled"])
    assert relabel[5] == edits["new_label"] != relabel[4]
    moved = next(r for r in rows if r[1] == edits["moved"])
    np.testing.assert_allclose(moved[6:10], np.asarray(edits["moved_box"]) * 96, atol=1e-9)
    assert {r[10] for r in rows} == {None}  # the view alone does not say who annotated
    assert c["images"] == [[image_a, "annotated", len(sent_ab[sent_ab.image_id == image_a]),
                            len(sent_ab[sent_ab.image_id == image_a]) - 1],
                           [image_b, "annotated", len(sent_ab[sent_ab.image_id == image_b]),
                            len(sent_ab[sent_ab.image_id == image_b]) + 1]]
    assert c["kind"] == "ground_truth" and c["problems"] == 0 and c["source"] == "fiftyone:scenes:ground_truth"
    # the run's key gives the same comparison, with the CVAT user as annotator
    assert [r[:10] for r in c["by_run"]] == [r[:10] for r in rows] and {r[10] for r in c["by_run"]} == {"ana"}
    # the whole dataset: the three other images count as annotated and unchanged
    assert c["whole_images"] == 5 and c["whole"]["deleted"] == 1 and c["whole"]["added"] == 1
    assert c["whole"]["kept"] == len(scenes.table) - 3
    # applied: the corrected ground truth of image A, with provenance; image 0 untouched
    fixed = {r[0]: r for r in c["fixed_a"]}
    assert edits["deleted"] not in fixed and fixed[edits["moved"]][6:] == ["labeler:unknown", "moved"]
    np.testing.assert_allclose(fixed[edits["moved"]][1:5], np.asarray(edits["moved_box"]) * 96, atol=1e-9)
    assert fixed[edits["relabelled"]][5] == edits["new_label"]
    assert set(c["fixed_other"]) == {"original"}
    # the untouched predictions field: every box kept, and known to be predictions
    assert c["predictions_kind"] == "prediction" and c["predictions"]["kept"] == 13
    assert sum(c["predictions"].values()) == 13


@pytest.mark.slow
def test_boxes_of_image_files_are_added_to_an_existing_dataset_by_filepath(run):
    f = run["files"]
    assert f["missing_one"] == "1 of the 3 images are not samples of the collection (matched by filepath; first: " \
                               "image 'c')"
    assert f["same_dataset"] and f["count"] == 4 and f["after_overwrite"] == 4
    back, sent = by_id(f["back"]), by_id(f["sent"])
    assert set(back) == set(sent) == {"a/ground_truth/0", "a/ground_truth/1", "b/ground_truth/0", "c/ground_truth/0"}
    for oid, row in sent.items():
        assert back[oid][0] == row[0] and back[oid][5:] == row[5:]
        np.testing.assert_allclose(back[oid][1:5], row[1:5], rtol=0, atol=1e-6)
    # a/1 reaches x=90 on an 80-pixel-wide image, b/0 y=80 on a 70-pixel-high one: written as given, read back
    assert f["problems"] == [["a", "extends past the image"], ["b", "extends past the image"]]
    # metadata filled where it was missing (widths and heights not swapped), dx_image_id set; "other" untouched
    assert f["sizes"] == [[80, 96, None, 96], [96, 70, None, 96]]
    assert f["image_ids"] == ["a", "b", None, "c"]
    assert f["again"] == "3 of the 3 images already have 'ground_truth' detections: pass overwrite=True to replace them"
    assert f["bad_size"].startswith("3 images have another size in FiftyOne's metadata than in the objects "
                                    "(first: image 'a', 50x50 in FiftyOne, 80x96 in the objects)")
    assert "in-memory images cannot be matched to samples by file path" in f["in_memory"]


def test_without_fiftyone_the_error_says_what_to_install():
    code = ("import sys, numpy as np, pandas as pd, dataexplore as dx\n"
            "from dataexplore.core.objects import Objects\n"
            "import dataexplore.integrations.fiftyone\n"
            "print('imported' if 'fiftyone' in sys.modules else 'lazy')\n"
            "sys.modules['fiftyone'] = None  # as if it were not installed\n"
            "obj = Objects(pd.DataFrame({'image_id': ['0'], 'x': [1], 'y': [1], 'w': [4], 'h': [4], 'label': ['a'],\n"
            "                            'kind': 'ground_truth'}), dx.load(np.zeros((1, 8, 8), np.uint8)))\n"
            "for call in (lambda: dx.fiftyone.to_fiftyone(obj), lambda: dx.fiftyone.boxes_from_fiftyone(obj, obj)):\n"
            "    try:\n        call()\n"
            "    except dx.MissingDependencyError as e:\n        print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "lazy"
    assert lines[1] == ("dataexplore.integrations.fiftyone.to_fiftyone needs the 'fiftyone' package: "
                        "pip install dataexplore[fiftyone]")
    assert "boxes_from_fiftyone needs the 'fiftyone' package" in lines[2]


def test_what_cannot_be_written_is_refused_before_fiftyone_is_needed():
    before = "fiftyone" in sys.modules
    obj = Objects(pd.DataFrame({"image_id": ["0"], "x": [1], "y": [1], "w": [4], "h": [4], "label": ["a"],
                                "kind": "ground_truth"}), dx.load(np.zeros((1, 8, 8), np.uint8)))
    with pytest.raises(DataexploreError, match="to_fiftyone needs Objects .* got DataFrame"):
        dx.fiftyone.to_fiftyone(obj.table)
    with pytest.raises(DataexploreError, match="ground truth field must be a plain field name"):
        dx.fiftyone.to_fiftyone(obj, ground_truth_field="gt.boxes")
    with pytest.raises(DataexploreError, match="need two fields, got 'boxes' for both"):
        dx.fiftyone.to_fiftyone(obj, ground_truth_field="boxes", predictions_field="boxes")
    with pytest.raises(DataexploreError, match="'metadata' is a field FiftyOne or dataexplore uses"):
        dx.fiftyone.to_fiftyone(obj, predictions_field="metadata")
    with pytest.raises(DataexploreError, match="nothing to write: the objects have no prediction boxes"):
        dx.fiftyone.to_fiftyone(obj, ground_truth_field=None)
    with pytest.raises(DataexploreError, match="pass either dataset= or name="):
        dx.fiftyone.to_fiftyone(obj, dataset=object(), name="x")
    assert ("fiftyone" in sys.modules) == before  # nothing above imported it
