"""Data-quality results on the map: shown, selected, and exported (label errors come pre-annotated)."""

import json

import numpy as np
import pytest

import dataexplore as dx
from conftest import browser, recording


@pytest.fixture(scope="module")
def emb(embedding_cache):
    return dx.embed("fashion-mnist:test:2000", progress=False, cache_dir=embedding_cache)


@pytest.fixture(scope="module")
def noisy(emb):
    """The labels with 20 sneakers filed as sandals."""
    labels = emb.table["label"].astype(object).to_numpy().copy()
    flipped = np.flatnonzero(labels == "Sneaker")[:20]
    labels[flipped] = "Sandal"
    return labels, set(emb.ids[flipped])


@pytest.fixture
def ex(emb, tmp_path):
    xy = np.random.default_rng(0).normal(size=(len(emb), 2)).astype(np.float32)
    return dx.Explorer(xy, ids=emb.ids, table=emb.table, samples=emb.samples, rows=emb.rows, embeddings=emb,
                       export_dir=tmp_path / "exports")


def test_a_label_error_pair_clicked_on_the_map_exports_with_the_suggested_labels(ex, emb, noisy, tmp_path):
    labels, flipped = noisy
    errs = dx.label_errors(emb, label=labels, progress=False)
    sent = recording(ex)
    ex.show(errs)
    msg = [c for c, _ in sent if c["type"] == "groups"][-1]
    assert msg["title"] == "Label errors" and msg["rows"][0][0] == "Sandal → Sneaker"
    assert ex.color_info["kind"] == "numeric"  # the score
    browser(ex, {"type": "select", "shape": "group", "group": 0, "op": "replace"}, [])
    assert len(set(ex.selection.ids) & flipped) >= 15
    folder = ex.export("sneakers filed as sandals", "label-studio")
    tasks = json.loads((folder / "tasks.json").read_text())
    assert len(tasks) == len(ex.selection)
    assert {t["predictions"][0]["result"][0]["value"]["choices"][0] for t in tasks} == {"Sneaker"}


def test_an_export_without_a_label_error_result_shown_has_no_pre_annotations(ex, emb):
    ex.show(dx.outliers(emb, progress=False))
    ex.select_group(0)
    folder = ex.export("odd ones", "label-studio")
    tasks = json.loads((folder / "tasks.json").read_text())
    assert tasks and all(not t.get("predictions") for t in tasks)


def test_outlier_scores_colour_the_map_by_the_score_asked_for(ex, emb):
    odd = dx.outliers(emb, progress=False)
    sent = recording(ex)
    ex.show(odd, by="uniqueness")
    assert [c for c, _ in sent if c["type"] == "groups"][-1]["title"] == odd.title
    assert ex.color_info["kind"] == "numeric" and "uniqueness" in ex.color_info["name"]


def test_a_sample_is_shown_as_its_picks_and_selected_from_the_list(ex, emb):
    picks = dx.sample(emb, 25, "diverse", balance_by=["label"], progress=False)
    recording(ex)
    ex.show(picks)
    ex.select_group(0)
    assert set(ex.selection.ids) == set(picks.ids) and len(ex.selection) == 25
