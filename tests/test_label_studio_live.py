"""Label Studio, live: batches pushed to a real Label Studio server (tests/label_studio_server.py), labelled
through its API as an annotator does in its UI, and pulled back as what dx.import_labels / dx.import_boxes give.

The server runs from .venv-labelstudio (made by .ci/setup) for the whole session; its first start takes a minute
or two, so every test here is slow.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import dataexplore as dx
from dataexplore.core.errors import DataexploreError
from dataexplore.core.objects import Objects
from dataexplore.labeling import LiveProject

pytestmark = pytest.mark.slow


def tasks_of(api, project: int) -> list[dict]:
    answer = api.get("/api/tasks", params={"project": project, "fields": "all", "page_size": 1000})
    answer.raise_for_status()
    return sorted(answer.json()["tasks"], key=lambda t: t["id"])


def annotate(api, task: dict, result: list, cancelled: bool = False) -> dict:
    """Submit an annotation as the Label Studio UI does (POST /api/tasks/<id>/annotations/)."""
    answer = api.post(f"/api/tasks/{task['id']}/annotations/",
                      json={"result": result, "was_cancelled": cancelled, "lead_time": 4.2})
    assert answer.status_code == 201, answer.text
    return answer.json()


def choice(label: str) -> list:
    return [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]


@pytest.fixture(scope="module")
def annotator(label_studio):
    return label_studio.users.get("annotator@example.com") or \
        label_studio.add_user("annotator@example.com", "dx-Annotator-pass-2026")


@pytest.fixture(scope="module")
def shirts(label_studio, tmp_path_factory):
    """Ten real Fashion-MNIST test images as a classification batch under the server's document root, a
    model's predictions as pre-annotations (two of them wrong)."""
    samples = dx.load("fashion-mnist:test:10")
    truth = dict(zip(samples.ids, samples.table["label"].astype(str)))
    wrong = {samples.ids[1]: "Bag", samples.ids[4]: "Sneaker"}
    predictions = pd.Series({i: wrong.get(i, t) for i, t in truth.items()})
    folder = dx.export_labeling(samples, label_studio.document_root / "shirts" / "batch", predictions=predictions,
                                name="fashion check", description="tops and shoes")
    return folder, samples, truth, predictions


def test_push_creates_the_project_with_config_images_and_pre_annotations(label_studio, shirts, annotator):
    folder, samples, truth, predictions = shirts
    admin = label_studio.admin
    project = dx.labeling.push(folder, url=label_studio.url, token=admin.token, title="fashion check",
                               document_root=label_studio.document_root)
    assert isinstance(project, LiveProject) and (project.added, project.kept) == (10, 0)
    assert project.storage == str(folder / "images")

    with label_studio.api(annotator) as api:
        config = api.get(f"/api/projects/{project.id}").json()["label_config"]
        assert [c.get("value") for c in ET.fromstring(config).iter("Choice")] == sorted({*truth.values(), *predictions})
        tasks = tasks_of(api, project.id)
        assert [t["data"]["dx_id"] for t in tasks] == list(samples.ids)
        assert [t["predictions"][0]["result"][0]["value"]["choices"] for t in tasks] == \
            [[predictions[i]] for i in samples.ids]
        for task in tasks[:3]:  # the annotator's browser gets each image through the local-files storage
            image = api.get(task["data"]["image"])
            assert image.status_code == 200 and image.headers["content-type"] == "image/png"
            assert image.content == (folder / "images" / f"{task['data']['dx_id']}.png").read_bytes()


def test_annotations_come_back_with_label_annotator_and_time(label_studio, shirts, annotator, tmp_path):
    folder, samples, truth, _ = shirts
    admin = label_studio.admin
    project = dx.labeling.push(folder, url=label_studio.url, token=admin.token, title="fashion check",
                               document_root=label_studio.document_root)
    expected = {}
    with label_studio.api(annotator) as api, label_studio.api(admin) as lead:
        tasks = tasks_of(api, project.id)
        for n, task in enumerate(tasks[:7]):  # the annotator labels seven images correctly ...
            sample = task["data"]["dx_id"]
            if n == 0:
                annotate(api, task, choice("Bag"))  # ... the first one wrongly at first, then the lead corrects it
                done, who = annotate(lead, task, choice(truth[sample])), admin.email
            else:
                done, who = annotate(api, task, choice(truth[sample])), annotator.email
            expected[sample] = (truth[sample], who, done["updated_at"], task["id"])
        annotate(api, tasks[7], [], cancelled=True)  # skipped: no label
        # tasks[8:] are never opened

    labels = dx.labeling.pull(project, token=admin.token, save_to=tmp_path / "export.json")
    got = {r.id: (r.label, r.annotator, r.annotated_at, r.task) for r in labels.itertuples()}
    assert got == expected
    assert set(labels["source"]) == {"label-studio"}
    assert labels["meta_split"].eq("test").all()
    pd.testing.assert_frame_equal(labels, dx.import_labels(tmp_path / "export.json"))
    assert not labels.attrs.get("conflicts")  # the lead's correction is the latest: no disagreement is reported

    again = dx.labeling.pull(project.id, url=label_studio.url, token=admin.token)  # by id, no file kept
    pd.testing.assert_frame_equal(again, labels)
    applied = dx.apply_labels(samples, labels)
    assert applied.table["human_label_annotator"].tolist()[:2] == [admin.email, annotator.email]


def test_pushing_the_same_batch_again_updates_instead_of_duplicating(label_studio, shirts, tmp_path):
    folder, samples, *_ = shirts
    admin = label_studio.admin
    first = dx.labeling.push(folder, url=label_studio.url, token=admin.token, title="pushed twice",
                             document_root=label_studio.document_root)
    # a bigger batch over the same samples plus two more: only the new ones are added, to the same project
    more = dx.load("fashion-mnist:test:12")
    bigger = dx.export_labeling(more, label_studio.document_root / "shirts2" / "batch", predictions="label")
    second = dx.labeling.push(bigger, url=label_studio.url, token=admin.token, project="pushed twice",
                              document_root=label_studio.document_root)
    assert (first.added, first.kept) == (10, 0)
    assert second.id == first.id and (second.added, second.kept) == (2, 10)
    with label_studio.api(admin) as api:
        assert len(tasks_of(api, first.id)) == 12
        assert [p["title"] for p in api.get("/api/projects", params={"page_size": 100}).json()["results"]
                ].count("pushed twice") == 1


def test_a_refused_token_and_an_unreachable_server_are_one_clear_line(label_studio, shirts):
    folder = shirts[0]
    with pytest.raises(DataexploreError, match=r"HTTP 401.*personal access token") as bad:
        dx.labeling.push(folder, url=label_studio.url, token="not-a-token", document_root=label_studio.document_root)
    assert "\n" not in str(bad.value) and label_studio.url in str(bad.value)

    from label_studio_server import free_port

    with pytest.raises(DataexploreError, match=r"cannot reach Label Studio at .*is the server running") as gone:
        dx.labeling.pull(1, url=f"http://127.0.0.1:{free_port()}", token=label_studio.admin.token)
    assert "\n" not in str(gone.value)


def test_images_the_server_cannot_serve_leave_no_project_behind(label_studio, shirts, tmp_path):
    folder = shirts[0]
    admin = label_studio.admin
    # the batch's own root is not the server's document root: the image comes back 404
    with pytest.raises(DataexploreError, match=r"does not serve the batch's images \(HTTP 404"):
        dx.labeling.push(folder, url=label_studio.url, token=admin.token, title="wrong root",
                         document_root=folder)
    # images outside the server's document root are refused before anything is sent
    outside = dx.export_labeling(dx.load("fashion-mnist:test:2"), tmp_path / "elsewhere", predictions="label")
    with pytest.raises(DataexploreError, match="not inside a folder under the document root"):
        dx.labeling.push(outside, url=label_studio.url, token=admin.token, title="outside",
                         document_root=label_studio.document_root)
    with label_studio.api(admin) as api:
        titles = [p["title"] for p in api.get("/api/projects", params={"page_size": 100}).json()["results"]]
    assert "wrong root" not in titles and "outside" not in titles
    with pytest.raises(DataexploreError, match="no project titled 'never pushed'"):
        dx.labeling.pull("never pushed", url=label_studio.url, token=admin.token)


def test_a_config_the_server_rejects_is_one_line_and_leaves_no_project(label_studio, shirts, tmp_path):
    folder = shirts[0]
    bad = label_studio.document_root / "shirts" / "bad-config"  # a copy of the batch, its config broken
    bad.mkdir()
    for name in ("tasks.json", "manifest.csv"):
        (bad / name).write_bytes((folder / name).read_bytes())
    (bad / "config.xml").write_text((folder / "config.xml").read_text().replace('toName="image"', 'toName="nothing"'))
    admin = label_studio.admin
    with pytest.raises(DataexploreError, match=r"Label Studio at .* refused the push: HTTP 400") as err:
        dx.labeling.push(bad, url=label_studio.url, token=admin.token, title="bad config",
                         document_root=label_studio.document_root)
    assert "\n" not in str(err.value) and admin.token not in str(err.value)
    with label_studio.api(admin) as api:
        titles = [p["title"] for p in api.get("/api/projects", params={"page_size": 100}).json()["results"]]
    assert "bad config" not in titles


def test_a_revoked_or_forged_token_is_one_line(label_studio, shirts):
    import jwt

    user = label_studio.add_user("leaver@example.com", "dx-Leaver-pass-2026")
    with label_studio.api(user) as api:  # the user revokes their personal access token
        assert api.post("/api/token/blacklist/", json={"refresh": user.token}).status_code in (200, 204)
    claims = {**jwt.decode(user.token, options={"verify_signature": False})}
    forged = jwt.encode(claims, "not-the-server-key-but-long-enough-for-hs256", algorithm="HS256")
    for token in (user.token, forged):
        with pytest.raises(DataexploreError, match=r"refused the (push|access token).*HTTP 401") as err:
            dx.labeling.push(shirts[0], url=label_studio.url, token=token, title="revoked",
                             document_root=label_studio.document_root)
        assert "\n" not in str(err.value) and token not in str(err.value) and label_studio.url in str(err.value)


# ---- rectangles ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def photo_objects(label_studio) -> Objects:
    """Three real photographs (scikit-image) under the server's document root, with ground truth and a
    detector's boxes."""
    from skimage import data

    rows = []
    for name, image in {"cat": data.chelsea(), "coffee": data.coffee(), "rocket": data.rocket()}.items():
        path = label_studio.document_root / "photos" / "images" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        rows.append({"id": name, "filepath": str(path), "width": image.shape[1], "height": image.shape[0]})
    gt = [("g1", "cat", 120, 20, 200, 240, "animal"), ("g2", "coffee", 150, 40, 250, 250, "cup"),
          ("g3", "rocket", 220, 40, 80, 380, "rocket")]
    pred = [("p1", "cat", 100, 30, 210, 230, "animal", 0.9), ("p2", "coffee", 140, 40, 260, 250, "cup", 0.8),
            ("p3", "coffee", 20, 300, 60, 60, "animal", 0.3), ("p4", "rocket", 220, 40, 80, 380, "rocket", 0.95)]
    cols = ["id", "image_id", "x", "y", "w", "h", "label"]
    table = pd.DataFrame([dict(zip(cols, g), kind="ground_truth") for g in gt] +
                         [dict(zip([*cols, "score"], p), kind="prediction") for p in pred])
    return Objects(table, dx.Samples(pd.DataFrame(rows)), name="photo detector")


def test_rectangle_batch_round_trip_through_the_server(label_studio, photo_objects, annotator, tmp_path):
    folder = dx.export_boxes(photo_objects, label_studio.document_root / "photos" / "batch")
    admin = label_studio.admin
    project = dx.labeling.push(folder, url=label_studio.url, token=admin.token,
                               document_root=label_studio.document_root)
    assert (project.added, project.storage) == (3, str(label_studio.document_root / "photos" / "images"))
    with label_studio.api(annotator) as api:
        tasks = {t["data"]["dx_image_id"]: t for t in tasks_of(api, project.id)}
        assert sorted(r["id"] for t in tasks.values() for r in t["predictions"][0]["result"]) == \
            ["p1", "p2", "p3", "p4"]
        image = api.get(tasks["cat"]["data"]["image"])
        assert image.status_code == 200 and Image.open(__import__("io").BytesIO(image.content)).size == (451, 300)

        def accepted(image_id):  # what the UI submits after the annotator accepts the pre-annotation
            out = [dict(r) for r in tasks[image_id]["predictions"][0]["result"]]
            for r in out:
                r.pop("score", None)
                r["value"] = dict(r["value"])
            return out

        cat = accepted("cat")
        cat[0]["value"]["x"] = 120 / 451 * 100  # moved 20 px right
        done = {"cat": annotate(api, tasks["cat"], cat)}
        coffee = [r for r in accepted("coffee") if r["id"] != "p3"]  # the false detection deleted
        coffee[0]["value"]["rectanglelabels"] = ["cup"]
        done["coffee"] = annotate(api, tasks["coffee"], coffee)
        # the rocket is not annotated

    corrections = dx.labeling.pull(project, photo_objects, token=admin.token, save_to=tmp_path / "boxes.json")
    status = dict(zip(corrections.table["object_id"], corrections.table["status"]))
    assert status == {"p1": "moved", "p2": "kept", "p3": "deleted", "p4": "not annotated"}
    rows = corrections.table.set_index("object_id")
    assert rows.loc["p1", "new_x"] == pytest.approx(120.0)
    for image_id in ("cat", "coffee"):
        obj = rows[rows["image_id"] == image_id]
        assert set(obj["annotator"]) == {annotator.email}
        assert set(obj["annotated_at"]) == {done[image_id]["updated_at"]}
    assert rows.loc["p4", "annotator"] is None
    assert corrections.source == str(tmp_path / "boxes.json")
    same = dx.import_boxes(tmp_path / "boxes.json", photo_objects)
    pd.testing.assert_frame_equal(corrections.table, same.table)
    fixed = corrections.apply(photo_objects)
    assert fixed.table.set_index("image_id").loc["cat", "provenance"] == f"labeler:{annotator.email}"

    with pytest.raises(DataexploreError, match="rectangle tasks: pass the Objects"):
        dx.labeling.pull(project, token=admin.token)
    assert np.isfinite(corrections.table["iou"].dropna()).all()


def test_the_quickstart_pushes_to_a_configured_server_and_says_so(label_studio, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    folder = label_studio.document_root / "quickstart"  # the notebook's batches/ land under the server's root
    folder.mkdir()
    for key, value in {"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.admin.token,
                       "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(label_studio.document_root),
                       "DATAEXPLORE_DEMO_N": "600"}.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "live Label Studio: Label Studio project 'selection' (" in text and "offline stand-in" not in text
    assert "no finished annotations yet" in text  # nobody has labelled yet: the notebook says what to do
    with label_studio.api(label_studio.admin) as api:
        projects = {p["title"]: p for p in api.get("/api/projects", params={"page_size": 100}).json()["results"]}
        tasks = tasks_of(api, projects["selection"]["id"])
    assert len(tasks) == 30 and all(t["predictions"] for t in tasks)  # the query's top 5 % of 600, pre-annotated
