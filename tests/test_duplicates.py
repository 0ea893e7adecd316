"""Duplicates and leaks, proven on copies planted in real Fashion-MNIST images (embedded with fashion-tiny):
re-encoded as JPEG, mirrored, brightened, exact copies; within one set and between train and test."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import dataexplore as dx
from dataexplore.analysis.duplicates import duplicates
from dataexplore.core.errors import DataexploreError

SOURCES = [3, 17, 250, 777, 1200, 1999]  # test rows that get copies (different classes)


def jpeg(img: np.ndarray, quality: int = 40) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("L"))


def brighter(img: np.ndarray) -> np.ndarray:
    return np.clip(img.astype(np.float32) * 1.25, 0, 255).astype(np.uint8)


MAKERS = {"jpeg": jpeg, "mirror": lambda im: im[:, ::-1].copy(), "bright": brighter, "exact": lambda im: im.copy()}


def with_copies(base: dx.Embeddings, copies: dict, cache, split: str | None = None) -> dx.Embeddings:
    """``base`` plus copies of some of its images: ``copies`` maps a new id to an image."""
    ids, pixels = list(copies), np.stack(list(copies.values()))
    extra = dx.embed(dx.load(pixels, ids=ids), progress=False, cache_dir=cache)
    table = pd.DataFrame({"id": np.r_[base.samples.ids[base.rows], ids]})
    if split:
        table["split"] = split
    images = np.concatenate([base.samples.images[base.rows], pixels])
    return dx.Embeddings(ids=table["id"], vectors=np.r_[base.vectors, extra.vectors],
                         samples=dx.Samples(table, images=images), model=base.model)


@pytest.fixture(scope="module")
def test_set(embedding_cache):
    return dx.embed("fashion-mnist:test:2000", progress=False, cache_dir=embedding_cache)


@pytest.fixture(scope="module")
def planted(test_set, embedding_cache):
    images = test_set.samples.images
    copies = {f"{kind}-of-{test_set.ids[r]}": make(images[r]) for r in SOURCES for kind, make in MAKERS.items()
              if kind != "exact" or r in SOURCES[:2]}
    return with_copies(test_set, copies, embedding_cache)


@pytest.fixture(scope="module")
def found(planted):
    return duplicates(planted, progress=False)


def test_planted_copies_share_a_group_with_their_original(planted, found):
    group = found.scores["group"]
    copies = [i for i in planted.ids if "-of-" in i]
    for copy in copies:
        original = copy.split("-of-")[1]
        assert group[copy] is not None and group[copy] == group[original], (copy, found)
    # ranked by size: the originals with four copies (exact included) come first
    assert found.table["count"].is_monotonic_decreasing
    assert found.table["count"].iloc[0] == 5 and found.table["exact"].iloc[0] == 1
    top = found.groups().iloc[0]
    assert top["description"] == "original + 1 exact and 3 near copies" and top["keep"] in planted.ids[SOURCES[:2]]
    # pairs name both images, their similarity and what showed them
    pairs = found.pairs
    exact = pairs[pairs["exact"]]
    assert set(exact["id_b"]) | set(exact["id_a"]) >= {f"exact-of-{planted.ids[r]}" for r in SOURCES[:2]}
    assert set(pairs["evidence"]) <= {"exact", "embedding", "pixels", "embedding+pixels"}
    # how the thresholds were obtained is on the result
    cal = found.calibration
    assert cal.method == "synthetic copies" and cal.images == 200 and 0 < found.threshold <= 1
    assert cal.pixel_threshold is not None and "calibrated on copies of 200 images" in str(cal)
    assert "thresholds:" in repr(found)


def test_map_values_and_selection_are_keyed_by_ids(planted, found):
    roles = found.map_values()
    assert roles.index.equals(pd.Index(planted.ids, name="id"))
    original = planted.ids[SOURCES[0]]
    assert roles[original] == "kept" and roles[f"jpeg-of-{original}"] == "copy"
    assert roles.notna().sum() == sum(found.table["count"])
    by_group = found.map_values(by="group")
    assert by_group[original] == by_group[f"mirror-of-{original}"] == found.scores["group"][original]
    sel = found.selection(0)
    assert sorted(sel.ids) == sorted(found.group_ids(0))
    assert found.plot().data[0].x.tolist() == found.table["count"].head(20).tolist()


def test_keep_drops_the_copies_and_only_them(planted, found):
    clean = planted.subset(found.keep())
    assert not any("-of-" in i for i in clean.ids)  # originals come first in source order and are kept
    assert set(planted.ids[SOURCES]) <= set(clean.ids)
    assert len(clean) == len(planted) - sum(found.table["count"] - 1)  # one image of each group stays


def test_leaks_between_train_and_test_are_reported_with_their_sets(test_set, embedding_cache):
    train = dx.embed("fashion-mnist:train:3000", progress=False, cache_dir=embedding_cache)
    images = test_set.samples.images
    leaked = {f"leak-{kind}-of-{test_set.ids[r]}": MAKERS[kind](images[r]) for r in SOURCES[:4]
              for kind in ("jpeg", "mirror")}
    train_plus = with_copies(train, leaked, embedding_cache, split="train")
    leaks = duplicates(train_plus, test_set, progress=False)
    assert leaks.names == ("train", "test") and leaks.title == "Leaks between train and test"
    group = leaks.scores["group"]
    for copy in leaked:
        assert group[copy] is not None and group[copy] == group[copy.split("-of-")[1]]
    assert all("train" in s and "test" in s for s in leaks.table["sets"])  # every group spans both sets
    roles = leaks.map_values().dropna()
    assert roles[f"leak-jpeg-of-{test_set.ids[SOURCES[0]]}"] == "leak in train"
    assert roles[test_set.ids[SOURCES[0]]] == "leak in test"
    pairs = leaks.pairs
    assert (pairs["set_a"] != pairs["set_b"]).any()
    # train without what leaked into test
    kept = train_plus.subset(leaks.keep("train"))
    in_groups = set(leaks.scores.index[leaks.scores["group"].notna() & (leaks.scores["set"] == "train")])
    assert set(leaked) <= in_groups and set(train_plus.ids) - set(kept.ids) == in_groups
    assert len(leaks.keep("test")) == len(test_set)


def test_exact_copies_are_found_from_vectors_alone(test_set):
    vectors = np.r_[test_set.vectors[:300], test_set.vectors[[5, 5, 9]]]
    ids = [f"v{i}" for i in range(300)] + ["dup-a", "dup-b", "dup-c"]
    res = duplicates(dx.Embeddings.from_arrays(ids, vectors), progress=False)
    assert res.calibration.method == "fallback" and "fallback" in str(res.calibration)
    assert res.calibration.pixel_threshold is None  # no images: no pixel evidence
    group = res.scores["group"]
    assert group["v5"] == group["dup-a"] == group["dup-b"] and group["v9"] == group["dup-c"]
    assert res.pairs.set_index("id_b").loc["dup-a", "exact"]


def test_a_given_threshold_is_used_as_is(planted):
    res = duplicates(planted, threshold=0.9999, progress=False)
    assert res.calibration.method == "given" and res.threshold == 0.9999
    assert res.calibration.pixel_threshold is None
    exact = {f"exact-of-{planted.ids[r]}" for r in SOURCES[:2]}
    assert exact <= set(res.ids[np.concatenate(res.members)])


@pytest.mark.parametrize("kwargs, message", [
    ({"threshold": 1.5}, "threshold must be a cosine"),
    ({"threshold": "high"}, "threshold must be a cosine"),
    ({"k": 0}, "k must be a positive"),
    ({"pixels": "yes"}, "pixels must be"),
])
def test_bad_settings_are_one_line_errors(test_set, kwargs, message):
    with pytest.raises(DataexploreError, match=message):
        duplicates(test_set, progress=False, **kwargs)


def test_bad_inputs_are_one_line_errors(test_set):
    with pytest.raises(DataexploreError, match="different widths"):
        duplicates(test_set, dx.Embeddings.from_arrays(["a", "b"], np.eye(2, dtype=np.float32)), progress=False)
    with pytest.raises(DataexploreError, match="empty"):
        duplicates(test_set.subset(np.zeros(len(test_set), bool)), progress=False)
    with pytest.raises(DataexploreError, match="needs the images"):
        duplicates(dx.Embeddings.from_arrays(["a", "b", "c"], test_set.vectors[:3]), pixels=True, progress=False)
    with pytest.raises(DataexploreError, match="set names"):
        duplicates(test_set, test_set.subset(np.arange(5)), names=["same", "same"], progress=False)
    res = duplicates(test_set.subset(np.arange(50)), progress=False)
    with pytest.raises(DataexploreError, match="keep"):
        res.keep("nope")
    with pytest.raises(DataexploreError, match="map_values"):
        res.map_values(by="colour")
