"""Labeling exports and their round trips: what leaves as a batch comes back as labels on the right samples."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

import dataexplore as dx
from dataexplore.core.errors import DataexploreError, SourceError
from dataexplore.core.selection import as_selection
from dataexplore.labeling import LabelConflictWarning
from dataexplore.query import make_query


@pytest.fixture(scope="module")
def emb(tmp_path_factory):
    return dx.embed("fashion-mnist:test:400", progress=False, cache_dir=tmp_path_factory.mktemp("labeling-cache"))


@pytest.fixture(scope="module")
def result(emb):
    """The top 40 candidates of a 'Trouser' query over the other test images."""
    trousers = emb.ids[emb.table["label"].to_numpy() == "Trouser"]
    query = make_query(trousers[:25], emb, name="Trouser")
    return query.search(emb, top=40)


def annotate_label_studio(tasks: list, truth: dict) -> list:
    """What Label Studio's JSON export holds after two annotators worked on ``tasks``:
    task ids, one annotation per task (the ground truth, as a careful annotator would give), an earlier
    cancelled annotation on the first task, and the last task skipped."""
    out = []
    for i, task in enumerate(tasks[:-1]):
        label = truth[task["data"]["dx_id"]]
        who = {"id": 1 + i % 2, "email": f"annotator{1 + i % 2}@example.com"}
        ann = [{"id": 100 + i, "completed_by": who, "was_cancelled": False, "ground_truth": False,
                "created_at": f"2026-11-23T10:{i % 60:02d}:00.000000Z", "updated_at": f"2026-11-23T10:{i % 60:02d}:30Z",
                "lead_time": 2.5, "task": i + 1, "project": 3,
                "result": [{"id": f"r{i}", "type": "choices", "from_name": "label", "to_name": "image",
                            "origin": "manual", "value": {"choices": [label]}}]}]
        if i == 0:
            ann.insert(0, {"id": 99, "completed_by": who, "was_cancelled": True, "created_at": "2026-11-23T09:00:00Z",
                           "result": [{"type": "choices", "from_name": "label", "to_name": "image",
                                       "value": {"choices": ["Bag"]}}]})
        out.append({"id": i + 1, "data": task["data"], "annotations": ann, "predictions": task.get("predictions", []),
                    "meta": {}, "created_at": "2026-11-23T08:00:00Z", "project": 3})
    last = tasks[-1]
    out.append({"id": len(tasks), "data": last["data"], "annotations": [], "predictions": []})
    return out


def truth_of(emb) -> dict:
    return dict(zip(emb.ids, emb.table["label"].astype(str)))


def test_label_studio_round_trip_keeps_ids_labels_provenance_and_metadata(emb, result, tmp_path):
    folder = dx.export_labeling(result, tmp_path / "batch", format="label-studio", predictions="Trouser")
    tasks = json.loads((folder / "tasks.json").read_text())
    assert len(tasks) == 40 and [t["data"]["dx_id"] for t in tasks] == list(result.ids)
    first = tasks[0]
    assert first["data"]["image"].startswith("/data/local-files/?d=")
    image = folder / first["data"]["image"].split("?d=")[1]
    assert image.is_file() and image.parent == folder / "images"  # the URL resolves under the documented root
    assert first["predictions"][0]["result"][0]["value"]["choices"] == ["Trouser"]
    assert 0 <= first["predictions"][0]["score"] <= 1
    config = ET.fromstring((folder / "config.xml").read_text())
    assert [c.get("value") for c in config.iter("Choice")] == sorted(emb.table["label"].unique())
    assert config.find("Image").get("value") == "$image"
    text = (folder / "instructions.md").read_text()
    assert f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={folder}\n" in text and "config.xml" in text
    assert f"storage with the absolute path `{folder / 'images'}`" in text  # strictly inside the root, as LS demands

    export = tmp_path / "project-3-at-2026-11-23.json"
    export.write_text(json.dumps(annotate_label_studio(tasks, truth_of(emb))))
    labels = dx.import_labels(export)
    assert list(labels.columns[:6]) == ["id", "label", "annotator", "annotated_at", "source", "task"]
    assert len(labels) == 39  # the skipped task brings nothing back
    assert labels["label"].tolist() == [truth_of(emb)[i] for i in labels["id"]]  # the cancelled "Bag" lost
    assert set(labels["annotator"]) == {"annotator1@example.com", "annotator2@example.com"}
    assert (labels["source"] == "label-studio").all() and labels["task"].tolist() == list(range(1, 40))
    assert (labels["meta_split"] == "test").all()

    labelled = dx.apply_labels(emb, labels)
    table = labelled.table.set_index("id")
    assert table.loc[labels["id"], "human_label"].tolist() == labels["label"].tolist()
    assert table["human_label"].notna().sum() == 39
    assert table.loc[labels["id"].iloc[0], "human_label_annotator"] == labels["annotator"].iloc[0]
    assert (table["label"] == emb.table.set_index("id")["label"]).all()  # other metadata untouched
    np.testing.assert_array_equal(labelled.vectors, emb.vectors)


def test_a_label_studio_project_with_another_field_name_says_so(emb, result, tmp_path):
    folder = dx.export_labeling(result, tmp_path / "b", predictions="Trouser")
    tasks = annotate_label_studio(json.loads((folder / "tasks.json").read_text()), truth_of(emb))
    for task in tasks:
        for ann in task["annotations"]:
            for res in ann["result"]:
                res["from_name"] = "category"
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    with pytest.raises(SourceError, match="no answers under the field 'label'.*'category'"):
        dx.import_labels(tmp_path / "export.json")
    assert len(dx.import_labels(tmp_path / "export.json", field="category")) == 39


def test_label_studio_json_min_and_url_prefix(emb, result, tmp_path):
    folder = dx.export_labeling(result, tmp_path / "b", predictions="Trouser", url_prefix="https://data.example/fm")
    tasks = json.loads((folder / "tasks.json").read_text())
    assert tasks[0]["data"]["image"] == f"https://data.example/fm/images/{result.ids[0]}.png"
    minimal = [{"id": i + 1, "image": t["data"]["image"], "dx_id": t["data"]["dx_id"], "label": "Trouser",
                "annotator": "a@example.com", "annotation_id": i, "created_at": "2026-11-23T10:00:00Z"}
               for i, t in enumerate(tasks)]
    (tmp_path / "min.json").write_text(json.dumps(minimal))
    labels = dx.import_labels(tmp_path / "min.json")
    assert labels["id"].tolist() == list(result.ids) and (labels["label"] == "Trouser").all()


def test_coco_round_trip_and_matching_by_file_name(emb, result, tmp_path):
    folder = dx.export_labeling(result, tmp_path / "coco", format="coco", predictions="Trouser")
    doc = json.loads((folder / "annotations.json").read_text())
    assert len(doc["images"]) == 40 and doc["images"][0]["width"] == 28 and doc["images"][0]["height"] == 28
    assert {c["name"] for c in doc["categories"]} == set(emb.table["label"])
    assert all("score" in a for a in doc["annotations"])  # pre-annotations are predictions, with scores
    assert len(dx.import_labels(folder / "annotations.json")) == 0  # so an unlabelled batch brings back nothing
    # the annotators' tool writes their labels: plain annotations, no score
    cat = {c["name"]: c["id"] for c in doc["categories"]}
    truth = truth_of(emb)
    doc["annotations"] = [{"id": i + 1, "image_id": img["id"], "category_id": cat[truth[img["dx_id"]]], "bbox": [],
                           "area": 0, "iscrowd": 0} for i, img in enumerate(doc["images"])]
    (folder / "annotations.json").write_text(json.dumps(doc))
    labels = dx.import_labels(folder / "annotations.json")
    assert labels["id"].tolist() == list(result.ids)
    assert labels["label"].tolist() == [truth[i] for i in result.ids] and (labels["source"] == "coco").all()
    # another tool re-exported it without our dx_id: the batch's manifest still maps file names to ids
    for img in doc["images"]:
        del img["dx_id"]
    (folder / "from-cvat.json").write_text(json.dumps(doc))
    again = dx.import_labels(folder / "from-cvat.json")
    assert again["id"].tolist() == labels["id"].tolist()


def test_csv_manifest_round_trip(emb, result, tmp_path):
    folder = dx.export_labeling(result, tmp_path / "csv", format="csv")
    manifest = pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)
    assert manifest["id"].tolist() == list(result.ids) and (manifest["label"] == "").all()
    assert all((folder / f).is_file() for f in manifest["file_name"])
    truth = truth_of(emb)
    manifest.loc[:9, "label"] = [truth[i] for i in manifest["id"][:10]]
    manifest.loc[:9, "annotator"] = "lab-1"
    manifest.to_csv(folder / "manifest.csv", index=False)
    labels = dx.import_labels(folder)  # the batch folder itself
    assert labels["id"].tolist() == list(result.ids[:10]) and (labels["annotator"] == "lab-1").all()
    assert labels["label"].tolist() == [truth[i] for i in result.ids[:10]]


def test_image_files_on_disk_are_referenced_not_copied(photo_folder, tmp_path):
    samples = dx.load(photo_folder)
    folder = dx.export_labeling(samples, tmp_path / "batch", format="label-studio", classes=["animal", "thing"])
    assert not (folder / "images").exists()
    tasks = json.loads((folder / "tasks.json").read_text())
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=photos/animals/chelsea.jpg"
    assert f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={photo_folder.parent}\n" in (folder / "instructions.md").read_text()
    assert "predictions" not in tasks[0]


def test_exports_are_atomic_and_never_overwrite_by_accident(result, tmp_path, monkeypatch):
    from dataexplore.labeling import label_studio

    folder = dx.export_labeling(result, tmp_path / "b")
    before = (folder / "tasks.json").read_bytes()
    with pytest.raises(DataexploreError, match="already exists.*overwrite=True"):
        dx.export_labeling(result, folder)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(label_studio, "labeling_config", crash)
    with pytest.raises(OSError, match="disk full"):
        dx.export_labeling(result, folder, overwrite=True)
    assert (folder / "tasks.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.jpg").write_bytes(b"...")
    (tmp_path / "mine" / "manifest.csv").write_text("id,filepath\n")  # even one that looks like a batch
    with pytest.raises(DataexploreError, match="not a labeling batch dataexplore wrote"):
        dx.export_labeling(result, tmp_path / "mine", overwrite=True)  # a user's folder is never replaced
    assert (tmp_path / "mine" / "precious.jpg").is_file()


def test_re_exporting_a_batch_over_itself_keeps_the_images_it_points_to(emb, tmp_path):
    folder = dx.export_labeling(emb.subset(np.arange(5)), tmp_path / "b", format="csv")
    again = dx.embed(folder / "images", progress=False)  # a user embeds the batch's own image files
    dx.export_labeling(again, folder, format="label-studio", classes=["x"], overwrite=True)
    tasks = json.loads((folder / "tasks.json").read_text())
    assert len(tasks) == 5 and all((folder / t["data"]["image"].split("?d=")[1]).is_file() for t in tasks)


def test_ids_that_are_not_file_names_become_safe_image_names(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (4, 8, 8), dtype=np.uint8)
    samples = dx.load(pixels, ids=["../../escape", "a/b", "CON", "a_b"])
    folder = dx.export_labeling(samples, tmp_path / "x", format="csv", classes=["x"])
    files = sorted(p.name for p in (folder / "images").iterdir())
    assert files == ["_CON.png", "a_b-2.png", "a_b.png", "escape.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]  # nothing escaped the batch folder


def test_label_names_are_escaped_in_the_config(emb, tmp_path):
    odd = ['Shoe "high" & <heel>', "T-shirt/top"]
    folder = dx.export_labeling(emb.subset([0, 1]), tmp_path / "b", classes=odd)
    values = [c.get("value") for c in ET.fromstring((folder / "config.xml").read_text()).iter("Choice")]
    assert values == odd


def test_bad_batches_and_labels_get_one_clear_error(emb, result, tmp_path):
    with pytest.raises(DataexploreError, match="selection is empty"):
        dx.export_labeling(as_selection(emb.ids, [], embeddings=emb), tmp_path / "e")
    stranger = as_selection(np.r_[emb.ids[:2], ["not-on-this-map"]], [0, 2], embeddings=emb)
    with pytest.raises(DataexploreError, match="'not-on-this-map', which its embeddings do not have"):
        dx.export_labeling(stranger, tmp_path / "e")  # never the last image in its place
    assert not (tmp_path / "e").exists()
    with pytest.raises(DataexploreError, match="format must be one of"):
        dx.export_labeling(result, tmp_path / "e", format="yolo")
    with pytest.raises(DataexploreError, match="not among the classes"):
        dx.export_labeling(result, tmp_path / "e", classes=["Bag"], predictions="Trouser")
    with pytest.raises(SourceError, match="labels file not found"):
        dx.import_labels(tmp_path / "nope.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(SourceError, match="neither CSV nor valid JSON"):
        dx.import_labels(tmp_path / "junk.json")
    twice = pd.DataFrame({"id": [emb.ids[1], emb.ids[1]], "label": ["Bag", "Coat"]})
    with pytest.warns(LabelConflictWarning, match="conflicting labels.*Bag vs Coat"):
        applied = dx.apply_labels(emb, twice)
    assert applied.table["human_label"].iloc[1] == "Coat"  # no times: the later row of an id wins, said aloud
    labels = pd.DataFrame({"id": ["not-a-sample"], "label": ["Bag"]})
    with pytest.raises(DataexploreError, match="not among the samples.*not-a-sample"):
        dx.apply_labels(emb, labels)
    first = pd.DataFrame({"id": [emb.ids[0]], "label": ["Bag"]})
    labelled = dx.apply_labels(emb, first)
    with pytest.raises(DataexploreError, match="already have another 'human_label'.*overwrite=True"):
        dx.apply_labels(labelled, first.assign(label="Coat"))
    assert dx.apply_labels(labelled, first.assign(label="Coat"), overwrite=True).table["human_label"].iloc[0] == "Coat"
