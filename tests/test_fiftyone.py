"""The FiftyOne round trip against a real MongoDB: embeddings, maps, tags, labels, CVAT requests.

Each test builds a FiftyOne dataset of 200 real Fashion-MNIST images written as PNG files, in a
database of its own (``FIFTYONE_DATABASE_DIR`` in a temporary folder), and deletes it afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import dataexplore as dx
from dataexplore.core.errors import DataexploreError
from dataexplore.core.selection import as_selection

N = 200


@pytest.fixture(scope="module")
def fo(tmp_path_factory):
    """fiftyone, imported with its database in a temporary folder and no usage tracking."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("FIFTYONE_DATABASE_URI", raising=False)
        mp.setenv("FIFTYONE_DATABASE_DIR", str(tmp_path_factory.mktemp("fiftyone-db")))
        mp.setenv("FIFTYONE_DO_NOT_TRACK", "true")
        mp.setenv("FIFTYONE_DATABASE_VALIDATION", "false")  # MongoDB 6.0 is "the oldest supported"
        mp.setenv("FIFTYONE_SHOW_PROGRESS_BARS", "false")
        import fiftyone

        assert fiftyone.config.database_dir == os.environ["FIFTYONE_DATABASE_DIR"], "fiftyone was imported earlier"
        yield fiftyone
        _stop_database()


def _stop_database() -> None:
    """Close FiftyOne's MongoDB clients and stop the database service it started, and wait for it to exit.
    FiftyOne leaves both to interpreter exit, where they warn ("Unclosed MongoClient", "subprocess is still
    running") and keep MongoDB running for the rest of the test run. Private API: FiftyOne has no public
    way to stop its own database."""
    from fiftyone.core.odm import database

    database._disconnect()
    service, database._db_service = database._db_service, None
    if service is not None and service.child is not None:
        child = service.child
        service.stop()  # closes the service's stdin: it stops MongoDB and exits
        child.wait(timeout=60)
    # set by FiftyOne for its subprocesses; a later test's subprocess would look for the stopped database there
    os.environ.pop("FIFTYONE_PRIVATE_DATABASE_PORT", None)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """200 Fashion-MNIST test images as PNG files, and their class names."""
    samples = dx.datasets.fashion_mnist("test", N)
    folder = tmp_path_factory.mktemp("fashion-png")
    paths = []
    for sample_id, pixels in zip(samples.ids, samples.images):
        path = folder / f"{sample_id}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths, samples.table["label"].tolist()


@pytest.fixture
def dataset(fo, images):
    paths, labels = images
    ds = fo.Dataset(f"dataexplore-test-{uuid.uuid4().hex[:12]}")
    ds.add_samples([fo.Sample(filepath=p, ground_truth=fo.Classification(label=lab)) for p, lab in zip(paths, labels)])
    yield ds
    ds.delete()


def test_without_fiftyone_the_error_says_what_to_install():
    code = ("import sys, dataexplore as dx\n"
            "import dataexplore.integrations.fiftyone\n"
            "print('imported' if 'fiftyone' in sys.modules else 'lazy')\n"
            "sys.modules['fiftyone'] = None  # as if it were not installed\n"
            "try:\n    dx.fiftyone.tag(object(), ['a'], 't')\n"
            "except dx.MissingDependencyError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[0] == "lazy"
    assert "pip install dataexplore[fiftyone]" in out.stdout


def test_a_source_that_is_not_fiftyone_is_refused(fo):
    with pytest.raises(DataexploreError, match="needs a FiftyOne dataset or view, got DataFrame"):
        dx.fiftyone.embed(pd.DataFrame({"filepath": []}))


@pytest.mark.slow
def test_explore_stores_the_vectors_and_the_second_call_reuses_them(dataset, monkeypatch):
    ex = dx.explore(dataset)
    assert len(ex) == N and list(ex.ids) == dataset.values("id")
    assert ex.table["label"].tolist() == dataset.values("ground_truth.label")
    assert ex.thumbnail(0)[:2] == b"\xff\xd8"  # the PNG files are found through their FiftyOne paths
    assert dataset.count("dataexplore_embedding") == N
    recorded = dataset.info["dataexplore"]["fields"]["dataexplore_embedding"]
    assert recorded["name"] == "fashion-tiny"
    assert recorded["weights"] == dx.load_model("fashion-tiny").identity["weights"]

    computed = dx.embed(dataset)  # the engine's own result, from its cache
    assert np.array_equal(np.stack(dataset.values("dataexplore_embedding")), computed.vectors)

    def no_compute(*args, **kwargs):
        raise AssertionError("dataexplore.embedding.local.embed must not run: the field holds the vectors")

    monkeypatch.setattr("dataexplore.embedding.local.embed", no_compute)
    emb = dx.fiftyone.embed(dataset)
    assert emb.stats == {"computed": 0, "cached": 0, "failed": 0, "reused": N}
    assert emb.model["weights"] == recorded["weights"] and emb.samples is not None
    assert np.array_equal(emb.vectors, computed.vectors) and list(emb.ids) == list(computed.ids)
    again = dx.explore(dataset)  # same vectors, so the same (cached) map
    assert np.array_equal(again.xy, ex.xy)


@pytest.mark.slow
def test_a_view_writes_only_its_samples_and_the_rest_are_computed_later(dataset):
    first = dataset.limit(50)
    emb = dx.fiftyone.embed(first)
    assert len(emb) == 50 and emb.stats["computed"] == 50
    assert dataset.count("dataexplore_embedding") == 50
    emb = dx.fiftyone.embed(dataset)  # half-filled field of the same model: the engine's cache fills the rest
    assert emb.stats["computed"] == N - 50 and emb.stats["cached"] == 50
    assert dataset.count("dataexplore_embedding") == N


@pytest.mark.slow
def test_a_field_of_another_model_is_not_mixed_up(dataset, tmp_path):
    from safetensors.torch import load_file, save_file

    dx.fiftyone.embed(dataset)
    other = tmp_path / "fashion-other"
    shutil.copytree(Path(dx.models.__file__).parent / "fashion-tiny", other)
    weights = load_file(other / "open_clip_model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] + 1
    save_file(weights, other / "open_clip_model.safetensors")
    with pytest.raises(DataexploreError) as err:
        dx.fiftyone.embed(dataset, f"local-dir:{other}")
    msg = str(err.value)
    assert "'fashion-tiny'" in msg and f"'local-dir:{other}'" in msg and "dataexplore_embedding" in msg
    emb = dx.fiftyone.embed(dataset, f"local-dir:{other}", field="other_embedding")
    assert emb.stats["computed"] == N and dataset.count("other_embedding") == N
    assert dataset.info["dataexplore"]["fields"]["other_embedding"]["arch"] == "local-dir:fashion-other"


def test_a_field_written_by_another_tool_is_used_only_when_asked(dataset):
    rng = np.random.default_rng(0)
    ids = dataset.values("id")
    vectors = rng.normal(size=(N, 16)).astype(np.float32) * 3
    dataset.set_values("clip_vec", dict(zip(ids, vectors)), key_field="id")
    with pytest.raises(DataexploreError, match="written by another tool.*model=None"):
        dx.fiftyone.embed(dataset, field="clip_vec")
    emb = dx.fiftyone.embed(dataset, model=None, field="clip_vec")
    assert emb.model == {"field": "clip_vec"} and list(emb.ids) == ids
    assert np.allclose(emb.vectors, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), atol=1e-6)
    dataset.set_values("clip_vec", {ids[3]: None}, key_field="id")
    with pytest.raises(DataexploreError, match=f"only {N - 1} of {N} samples"):
        dx.fiftyone.embed(dataset, model=None, field="clip_vec")
    with pytest.raises(DataexploreError, match="not embedding vectors"):
        dx.fiftyone.embed(dataset, model=None, field="filepath")


@pytest.mark.slow
def test_save_map_shows_the_explorers_map_in_dataset_order(dataset):
    ex = dx.explore(dataset.sort_by("filepath", reverse=True), method="pca")  # map order != dataset order
    assert list(ex.ids) == dataset.values("id")[::-1]
    results = dx.fiftyone.save_map(dataset, ex, embeddings_field="dataexplore_embedding")
    assert results.config.method == "manual" and "dataexplore" in dataset.list_brain_runs()
    stored = dataset.load_brain_results("dataexplore")
    assert list(stored.sample_ids) == dataset.values("id")
    assert np.allclose(stored.points, ex.xy[::-1])
    assert dataset.info["dataexplore"]["maps"]["dataexplore"]["embeddings_field"] == "dataexplore_embedding"

    with pytest.raises(DataexploreError, match="already exists"):
        dx.fiftyone.save_map(dataset, ex)
    proj = dx.project(dx.fiftyone.embed(dataset), method="umap")
    dx.fiftyone.save_map(dataset, proj, overwrite=True)
    stored = dataset.load_brain_results("dataexplore")
    assert np.allclose(stored.points, proj.embedding_) and not np.allclose(stored.points, ex.xy[::-1])

    part = proj.to_frame().iloc[:150]  # a map of some of the samples: the run holds just those
    dx.fiftyone.save_map(dataset, part, brain_key="part")
    stored = dataset.load_brain_results("part")
    assert list(stored.sample_ids) == list(part["id"]) and len(stored.points) == 150

    grid = np.arange(2 * N, dtype=np.float32).reshape(N, 2)  # an array is taken in the collection's order
    dx.fiftyone.save_map(dataset, grid, brain_key="grid")
    assert np.array_equal(dataset.load_brain_results("grid").points, grid)

    with pytest.raises(DataexploreError, match="not fitted yet"):
        dx.fiftyone.save_map(dataset, dx.Projection(), brain_key="other")
    with pytest.raises(DataexploreError, match="mismatched lengths: 3 points for 200 samples"):
        dx.fiftyone.save_map(dataset, np.zeros((3, 2)), brain_key="other")
    with pytest.raises(DataexploreError, match="sample id 'nope' is not in the collection"):
        dx.fiftyone.save_map(dataset, pd.DataFrame({"id": ["nope"], "x": [0.0], "y": [1.0]}), brain_key="other")
    with pytest.raises(DataexploreError, match="valid Python identifier"):
        dx.fiftyone.save_map(dataset, ex, brain_key="my map")
    assert sorted(dataset.list_brain_runs()) == ["dataexplore", "grid", "part"]  # refused calls left nothing


@pytest.mark.slow
def test_a_selection_becomes_tags_and_a_saved_view(dataset):
    ex = dx.explore(dataset, method="pca")
    bags = [i for i, lab in zip(ex.ids, ex.table["label"]) if lab == "Bag"]
    assert bags
    view = dx.fiftyone.tag(dataset, ex.select(bags), "bags", view_name="bags to review")
    assert sorted(view.values("id")) == sorted(bags)
    assert sorted(dataset.match_tags("bags").values("id")) == sorted(bags)
    assert dataset.count_sample_tags() == {"bags": len(bags)}
    saved = dataset.load_saved_view("bags to review")
    assert sorted(saved.values("id")) == sorted(bags)
    assert "selected by ids" in dataset.get_saved_view_info("bags to review")["description"]

    with pytest.raises(DataexploreError, match="exists: pass overwrite=True"):
        dx.fiftyone.tag(dataset, bags[:2], "bags", view_name="bags to review")
    with pytest.raises(DataexploreError, match="clashes with saved view 'bags to review'"):
        dx.fiftyone.tag(dataset, bags[:2], "bags", view_name="bags-to-review")
    dx.fiftyone.tag(dataset, bags[:2], "first two", view_name="bags to review", overwrite=True)
    assert sorted(dataset.load_saved_view("bags to review").values("id")) == sorted(bags[:2])

    with pytest.raises(DataexploreError, match="the selection is empty"):
        dx.fiftyone.tag(dataset, ex.select([]), "x")
    with pytest.raises(DataexploreError, match="sample id 'test-00001' is not in the collection"):
        dx.fiftyone.tag(dataset, [bags[0], "test-00001"], "x")
    with pytest.raises(DataexploreError, match="a tag must be a non-empty string"):
        dx.fiftyone.tag(dataset, bags, " ")
    with pytest.raises(DataexploreError, match="list of sample ids, got str"):
        dx.fiftyone.tag(dataset, bags[0], "x")
    assert set(dataset.distinct("tags")) == {"bags", "first two"}  # refused calls tagged nothing


def test_labels_from_an_annotation_tool_are_written_with_their_provenance(dataset):
    ids = dataset.values("id")
    labels = pd.DataFrame({
        "id": ids[:3], "label": ["Bag", "Sneaker", "Coat"], "annotator": ["ana", "ben", None],
        "annotated_at": ["2026-01-05T10:00:00+00:00", "2026-01-05T10:01:00Z", None],
        "source": "label-studio", "task": [17, 18, 19], "meta_split": "test"})  # as dx.import_labels gives
    assert dx.fiftyone.apply_labels(dataset, labels) == 3
    first = dataset[ids[0]].human_label
    assert (first.label, first.annotator, first.annotated_at, first.source, first.task) == \
        ("Bag", "ana", "2026-01-05T10:00:00+00:00", "label-studio", 17)
    assert not dataset[ids[2]].human_label.has_field("annotator")
    assert not dataset[ids[0]].human_label.has_field("meta_split")
    assert dataset.count("human_label") == 3  # only the labelled samples
    assert "human_label.annotator" in dataset.get_field_schema(flat=True)  # filterable in the App

    with pytest.raises(DataexploreError, match=f"3 of the labelled samples already have.*first: '{ids[0]}'"):
        dx.fiftyone.apply_labels(dataset, labels)
    fixed = labels.assign(label=["Bag", "Sandal", "Coat"])
    assert dx.fiftyone.apply_labels(dataset, fixed, overwrite=True) == 3
    assert dataset[ids[1]].human_label.label == "Sandal"

    with pytest.raises(DataexploreError, match="sample id 'abc' is not in the collection"):
        dx.fiftyone.apply_labels(dataset, pd.DataFrame({"id": ["abc"], "label": ["Bag"]}), field="other")
    with pytest.raises(DataexploreError, match=r"needs the columns \['label'\]"):
        dx.fiftyone.apply_labels(dataset, pd.DataFrame({"id": ids[:1]}))
    with pytest.raises(DataexploreError, match=r"unknown columns \['annotater'\]"):
        dx.fiftyone.apply_labels(dataset, pd.DataFrame({"id": ids[:1], "label": ["Bag"], "annotater": ["x"]}))
    with pytest.raises(DataexploreError, match="annotated_at must be an ISO 8601 time"):
        dx.fiftyone.apply_labels(dataset, pd.DataFrame({"id": ids[5:6], "label": ["Bag"], "annotated_at": ["yday"]}))
    with pytest.raises(DataexploreError, match="must be non-empty text"):
        dx.fiftyone.apply_labels(dataset, pd.DataFrame({"id": ids[5:6], "label": [None]}))
    with pytest.raises(DataexploreError, match="has more than one label"):
        dx.fiftyone.apply_labels(dataset, pd.DataFrame({"id": [ids[5], ids[5]], "label": ["a", "b"]}))
    with pytest.raises(DataexploreError, match="not Classifications"):
        dx.fiftyone.apply_labels(dataset, pd.DataFrame({"id": ids[5:6], "label": ["Bag"]}), field="filepath")
    assert dataset.count("human_label") == 3 and "other" not in dataset.get_field_schema()


def test_a_cvat_request_holds_the_selected_samples_and_the_annotate_arguments(dataset, fo, monkeypatch):
    ids = dataset.values("id")
    selection = as_selection(np.asarray(ids, dtype=object), [4, 1, 9], shape="lasso")
    req = dx.fiftyone.cvat_request(dataset, selection, anno_key="fix_labels", url="http://cvat.local:8080",
                                   password="hunter2")
    assert sorted(req.view.values("id")) == sorted([ids[1], ids[4], ids[9]])
    classes = sorted(set(dataset.values("ground_truth.label")))
    assert req.kwargs == {"anno_key": "fix_labels", "backend": "cvat", "label_field": "ground_truth",
                          "label_type": "classification", "classes": classes, "url": "http://cvat.local:8080",
                          "password": "hunter2"}
    assert "hunter2" not in req.code() and "hunter2" not in repr(req)

    calls = []

    def fake_annotate(view, *args, **kwargs):
        calls.append((sorted(view.values("id")), args, kwargs))
        return "results"

    monkeypatch.setattr(fo.core.view.DatasetView, "annotate", fake_annotate)
    assert req.run() == "results"
    assert calls[-1] == (sorted(req.view.values("id")), (), req.kwargs)
    eval(req.code(), {"request": req})  # the printed line makes the same call, minus the password
    assert calls[-1][2] == {k: v for k, v in req.kwargs.items() if k != "password"}
    assert req.code().startswith("request.view.annotate(anno_key='fix_labels', backend='cvat'")

    other = dx.fiftyone.cvat_request(dataset, ids[:2], anno_key="new_field", label_field="defects",
                                     classes=["hole", "stain"])
    assert other.kwargs["classes"] == ["hole", "stain"] and other.kwargs["label_field"] == "defects"
    with pytest.raises(DataexploreError, match="no labels in 'defects'.*classes="):
        dx.fiftyone.cvat_request(dataset, ids[:2], anno_key="k", label_field="defects")
    with pytest.raises(DataexploreError, match="valid Python identifier"):
        dx.fiftyone.cvat_request(dataset, ids[:2], anno_key="fix labels")
    with pytest.raises(DataexploreError, match="the selection is empty"):
        dx.fiftyone.cvat_request(dataset, [], anno_key="k")
