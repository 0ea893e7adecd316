"""Coverage gaps, missing concepts, failure slices and clusters, proven on planted cases in real data.

Fashion-MNIST embedded with ``fashion-tiny``: we remove most of one class from a reference set,
or make a model's errors concentrate in a visually coherent subset, and check that the analyses
find exactly that, in words a user would read.
"""

import numpy as np
import pandas as pd
import pytest

import dataexplore as dx
from dataexplore.analysis import knn, wilson
from dataexplore.core.errors import DataexploreError


@pytest.fixture(scope="module")
def test_set(embedding_cache):
    return dx.embed("fashion-mnist:test:6000", progress=False, cache_dir=embedding_cache)


@pytest.fixture(scope="module")
def train_set(embedding_cache):
    return dx.embed("fashion-mnist:train:12000", progress=False, cache_dir=embedding_cache)


def labels_of(emb) -> np.ndarray:
    return emb.table["label"].astype(str).to_numpy()


def without_most_of(emb, label, keep_share=0.03, seed=0) -> dx.Embeddings:
    lab = labels_of(emb)
    keep = (lab != label) | (np.random.default_rng(seed).random(len(lab)) < keep_share)
    return emb.subset(keep)


def precision_recall(found_ids, planted_ids) -> tuple[float, float]:
    found, planted = set(found_ids), set(planted_ids)
    hit = len(found & planted)
    return hit / max(len(found), 1), hit / max(len(planted), 1)


# ---- (a) coverage ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_top_coverage_gap_is_the_class_the_reference_lacks(train_set, test_set):
    reference = without_most_of(train_set, "Sandal")
    cov = dx.coverage(reference, test_set)
    top = cov.groups().iloc[0]
    sandals = test_set.ids[labels_of(test_set) == "Sandal"]
    precision, recall = precision_recall(cov.group_ids(0), sandals)
    # regions grow past their cores to hold mixed gaps together (recall), at a little precision here
    assert precision >= 0.85 and recall >= 0.8, (precision, recall, cov)
    assert top["top_labels"].startswith("Sandal") and "Sandal" in top["description"]
    assert top["score"] > 0.6 and top["neighbour_share"] < top["expected_share"] / 3
    # the score itself ranks the gap: sandals score far higher than the rest of the target
    lab = pd.Series(labels_of(test_set), index=test_set.ids)
    by_label = cov.scores.groupby(lab.reindex(cov.scores.index).to_numpy()).mean()
    assert by_label.idxmax() == "Sandal" and by_label.drop("Sandal").max() < 0.3
    assert len(cov.redundant) == 0  # nothing was planted on the other side
    sel = cov.selection(0)
    assert isinstance(sel, dx.Selection) and sel.shape == "group" and len(sel) == top["count"]
    assert sel.provenance["group"] == "gap 1"


@pytest.mark.slow
def test_a_class_missing_from_the_target_makes_the_reference_region_redundant(train_set, test_set):
    target = without_most_of(test_set, "Trouser", keep_share=0.0)
    cov = dx.coverage(train_set, target)
    trousers = train_set.ids[labels_of(train_set) == "Trouser"]
    precision, recall = precision_recall(cov.redundant.group_ids(0), trousers)
    assert precision >= 0.9 and recall >= 0.8, (precision, recall, cov.redundant)
    assert cov.redundant.groups().iloc[0]["top_labels"].startswith("Trouser")


def test_coverage_of_two_samples_from_one_distribution_finds_no_gap(test_set):
    half = np.arange(len(test_set)) % 2 == 0
    cov = dx.coverage(test_set.subset(half), test_set.subset(~half))
    assert len(cov) == 0 and len(cov.redundant) == 0
    assert cov.scores.median() < 0.2


def test_coverage_warns_when_one_set_is_too_small_to_tell_gaps_from_chance(test_set):
    with pytest.warns(UserWarning, match="subsample the larger set"):
        dx.coverage(test_set.subset(np.arange(60)), test_set)


def test_coverage_refuses_sets_from_different_models(test_set):
    other = dx.Embeddings(ids=test_set.ids[:50], vectors=test_set.vectors[:50],
                          model={**test_set.model, "weights": "another-model"})
    with pytest.raises(DataexploreError, match="different models"):
        dx.coverage(test_set, other)
    with pytest.raises(DataexploreError, match="different widths"):
        dx.coverage(test_set, np.ones((10, 7), np.float32))


# ---- (b) failure slices ---------------------------------------------------------------------------
def planted_errors(emb, inside, rate_inside=0.6, rate_outside=0.08, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wrong = np.where(inside, rng.random(len(emb)) < rate_inside, rng.random(len(emb)) < rate_outside)
    return ~wrong


@pytest.mark.parametrize("planted", [("Bag",), ("Sandal", "Sneaker")], ids=["one class", "two classes"])
def test_the_top_failure_slice_recovers_where_errors_were_planted(test_set, planted):
    inside = np.isin(labels_of(test_set), planted)
    correct = planted_errors(test_set, inside)
    fs = dx.failures(test_set, correct=correct)
    precision, recall = precision_recall(fs.group_ids(0), test_set.ids[inside])
    assert precision >= 0.8 and recall >= 0.8, (precision, recall, fs)
    top = fs.groups().iloc[0]
    assert top["low"] > fs.error_rate and top["low"] <= top["error_rate"] <= top["high"]
    assert top["error_share"] > 0.3 and top["lift"] > 3
    assert any(p in top["description"] for p in planted)  # named in words
    assert len(top["exemplars"]) == 4 and set(top["exemplars"]) <= set(fs.group_ids(0))
    assert (fs.map_values("correct") == "wrong").sum() == (~correct).sum()


def test_a_slice_shows_its_exemplar_images(test_set):
    inside = labels_of(test_set) == "Bag"
    fs = dx.failures(test_set, correct=planted_errors(test_set, inside))
    sheet = fs.exemplars(0, size=64)
    assert sheet.size == (4 * 64 + 3 * 4, 64)
    first = np.asarray(sheet)[:, :64].mean(axis=2)
    medoid = test_set.samples.read(int(test_set.rows[list(test_set.ids).index(fs.groups()["exemplars"][0][0])]))
    assert abs(first.mean() - np.asarray(medoid, float).mean()) < 10  # the medoid's pixels, scaled up
    bare = dx.failures(dx.Embeddings(ids=test_set.ids, vectors=test_set.vectors, model=test_set.model),
                       correct=planted_errors(test_set, inside))
    with pytest.raises(DataexploreError, match="no exemplar images"):
        bare.exemplars(0)


def test_errors_spread_evenly_give_no_slice(test_set):
    correct = np.random.default_rng(3).random(len(test_set)) > 0.1
    assert len(dx.failures(test_set, correct=correct)) == 0


def test_failures_accept_a_loss_column_and_ids(test_set):
    inside = labels_of(test_set) == "Bag"
    rng = np.random.default_rng(2)
    loss = np.where(inside, rng.gamma(4, 1, len(inside)), rng.gamma(1, 1, len(inside)))
    shuffled = pd.Series(loss, index=test_set.ids).sample(frac=1, random_state=0)  # by id, any order
    fs = dx.failures(test_set, loss=shuffled)
    precision, _ = precision_recall(fs.group_ids(0), test_set.ids[inside])
    assert precision >= 0.8 and fs.groups().iloc[0]["mean_loss"] > loss.mean()


def test_failures_explain_bad_input(test_set):
    with pytest.raises(DataexploreError, match="exactly one"):
        dx.failures(test_set)
    with pytest.raises(DataexploreError, match="one value per sample"):
        dx.failures(test_set, correct=[True, False])
    with pytest.raises(DataexploreError, match="no failures"):
        dx.failures(test_set, correct=np.ones(len(test_set), bool))
    with pytest.raises(DataexploreError, match="no value for sample"):
        dx.failures(test_set, correct=pd.Series([True], index=[test_set.ids[0]]))
    with pytest.raises(DataexploreError, match="booleans"):
        dx.failures(test_set, correct=np.full(len(test_set), 0.5))
    with pytest.raises(DataexploreError, match="no metadata column"):
        dx.failures(test_set, correct="is_right")


# ---- (c) concepts ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_concept_coverage_flags_the_dropped_class_as_missing(train_set, test_set):
    reference = without_most_of(train_set, "Sandal")
    cc = dx.concepts(reference, ["sandal", "high heel shoe"], other=test_set, names=("train", "test"))
    assert cc.threshold_source in ("labels", "model") and 0 < cc.threshold < 1
    assert cc.missing() == ["sandal"]  # the prompt and the label "Sandal" are one concept
    row = cc.groups().set_index("name").loc["sandal"]
    assert row["share_test"] > 0.08 and row["ratio"] < 0.25
    assert cc.groups().set_index("name").loc["Bag", "status"] == "covered"
    # each concept is a group of the images that match it
    bags = cc.group_ids("Bag")
    # (2 % of other images pass any concept's threshold by design: the excess counts correct for them)
    assert (pd.Series(labels_of(test_set), index=test_set.ids).reindex(bags).dropna() == "Bag").mean() > 0.8
    # a missing concept becomes a text query that finds it in a pool
    query = cc.to_query("sandal")
    own = cc.groups().set_index("name").loc["sandal", "threshold"]
    assert query.method == "text" and query.threshold == pytest.approx(own, abs=1e-5)
    found = query.search(test_set, top=100)
    assert (found.table["label"] == "Sandal").mean() >= 0.8


def test_one_set_lists_concepts_it_has_no_images_of(test_set):
    cc = dx.concepts(test_set, {"a car": "car", "Trouser": "trousers"}, default_vocabulary=False)
    status = cc.groups().set_index("name")["status"]
    assert list(status.index) == ["Trouser", "a car"]  # default_vocabulary=False: exactly the prompts given
    # fashion-tiny never learned "car": it says so instead of counting a generic text vector's matches
    assert status["a car"] == "unknown to the model" and status["Trouser"] == "present"
    assert cc.missing() == []
    with pytest.raises(DataexploreError, match="does not name one|not name"):
        dx.concepts(np.asarray(test_set.vectors[:20]))


def test_threshold_calibration_lets_few_wrong_concepts_through(test_set):
    from dataexplore.language.vocabulary import concept_key, concept_vectors, text_model, vocabulary

    names = vocabulary(None, test_set.table["label"], default=False)
    clip = text_model(test_set)
    text = concept_vectors(clip, names)
    cal = dx.analysis.concept_thresholds(clip, names, text, test_set.vectors, test_set.table["label"],
                                         false_match_rate=0.05)
    assert set(cal.source) == {"labels"} and cal.known.all()
    sim = test_set.vectors @ text.T
    keys = np.array([concept_key(v) for v in labels_of(test_set)])
    for i, name in enumerate(names):  # each concept's own threshold lets 5 % of other-class images through
        other = keys != concept_key(name)
        assert abs((sim[other, i] >= cal.threshold[i]).mean() - 0.05) < 0.003


# ---- clusters ---------------------------------------------------------------------------------------
def test_clusters_are_named_in_words_and_can_be_renamed(test_set):
    cl = dx.clusters(test_set)
    table = cl.groups()
    assert 6 <= len(cl) <= 30 and table["count"].sum() == len(test_set)
    assert table["name"].is_unique and (table["description"] != "").all()
    # most clusters are dominated by one class and named after it
    named_after_top_label = [r.top_labels.split(" ")[0].lower() in r.description.lower()
                             for r in table.itertuples()]
    assert np.mean(named_after_top_label) >= 0.6, table
    first = table["name"].iloc[0]
    cl.rename({0: "my cluster"})
    assert cl.groups()["name"].iloc[0] == "my cluster"
    assert (cl.map_values() == "my cluster").sum() == table["count"].iloc[0]
    assert first not in set(cl.map_values())
    with pytest.raises(DataexploreError, match="unique"):
        cl.rename({1: "my cluster"})
    with pytest.raises(DataexploreError, match="no group named"):
        cl.group_ids("no such cluster")
    assert len(dx.clusters(test_set, n_clusters=3)) == 3
    assert len(dx.clusters(test_set.subset(np.arange(5)))) == 2  # a handful of images still works


def test_a_group_selects_the_same_samples_on_any_map(test_set):
    cl = dx.clusters(test_set, n_clusters=5)
    shuffled = np.random.default_rng(0).permutation(test_set.ids)
    sel = cl.selection(2, on=shuffled)
    assert set(sel.ids) == set(cl.group_ids(2)) and (shuffled[sel.indices] == sel.ids).all()


def test_two_sets_on_one_map_keep_their_images_and_labels(train_set, test_set):
    both = dx.Embeddings.concat([train_set.subset(np.arange(100)), test_set.subset(np.arange(50))])
    assert len(both) == 150 and both.table["split"].tolist() == ["train"] * 100 + ["test"] * 50
    row = int(both.rows[120])  # a test image: its pixels come from the test split
    np.testing.assert_array_equal(both.samples.read(row), test_set.samples.read(int(test_set.rows[20])))
    with pytest.raises(dx.SourceError, match="different models"):
        dx.Embeddings.concat([train_set, dx.Embeddings.from_arrays(["x"], np.ones((1, 128), np.float32),
                                                                   model={"weights": "other"})])
    with pytest.raises(dx.SourceError, match="duplicate"):
        dx.Embeddings.concat([test_set, test_set])


# ---- building blocks --------------------------------------------------------------------------------
def test_wilson_interval_matches_known_values():
    low, high = wilson(np.array([0, 5, 10]), np.array([10, 10, 10]))
    np.testing.assert_allclose(low, [0.0, 0.2366, 0.7225], atol=1e-4)
    np.testing.assert_allclose(high, [0.2775, 0.7634, 1.0], atol=1e-4)


@pytest.mark.parametrize("backend", ["exact", pytest.param("pynndescent", marks=pytest.mark.slow)])
def test_knn_finds_the_true_neighbours(test_set, backend):
    x = test_set.vectors[:3000]
    d, i = knn(x, k=10, backend=backend)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    truth = np.argsort(-sim, axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i, truth)])
    assert recall >= (0.999 if backend == "exact" else 0.9)
    assert (i != np.arange(len(x))[:, None]).all()  # never its own neighbour
    assert (np.diff(d, axis=1) >= -1e-6).all()
    dq, iq = knn(x[:5], x, k=1, backend=backend)
    assert (iq[:, 0] == np.arange(5)).all() and np.allclose(dq, 0, atol=1e-5)


def test_plots_show_the_measured_numbers(test_set):
    inside = labels_of(test_set) == "Bag"
    fs = dx.failures(test_set, correct=planted_errors(test_set, inside))
    fig = fs.plot()
    bar = fig.data[0]
    np.testing.assert_allclose(bar.x, fs.groups()["error_rate"].to_numpy())
    np.testing.assert_allclose(np.asarray(bar.error_x.arrayminus), (fs.groups()["error_rate"] - fs.groups()["low"]))
    cc = dx.concepts(test_set, ["sandal"], default_vocabulary=False)
    fig = cc.plot()
    assert list(fig.data[0].y) == cc.groups()["name"].tolist()
    np.testing.assert_allclose(fig.data[0].x, cc.groups()["share_data"].to_numpy())
