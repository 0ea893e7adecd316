"""Findings you can trust: planted slices, gaps and concepts on real Fashion-MNIST, recovered in two
embedding spaces ahead of the simple baselines (benchmarks/planted.py builds the cases and the
baselines; benchmarks/analysis.py runs the full grid), verdicts that say why, and no friction."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dataexplore as dx
from dataexplore.analysis.neighbors import knn
from dataexplore.core.errors import DataexploreError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import planted  # noqa: E402


@pytest.fixture(scope="module")
def test_set(embedding_cache):
    return dx.embed("fashion-mnist:test", progress=False, cache_dir=embedding_cache)


@pytest.fixture(scope="module")
def train_set(embedding_cache):
    return dx.embed("fashion-mnist:train:30000", progress=False, cache_dir=embedding_cache)


@pytest.fixture(scope="module")
def spaces(test_set):
    """The CLIP space and PCA-50 of the raw pixels (a space that owes nothing to the CLIP model)."""
    from sklearn.decomposition import PCA

    x = test_set.samples.images.reshape(len(test_set), -1).astype(np.float32) / 255
    z = PCA(50, random_state=0).fit_transform(x)
    pixels = dx.Embeddings(ids=test_set.ids, vectors=z / np.linalg.norm(z, axis=1, keepdims=True),
                           rows=test_set.rows, samples=test_set.samples)
    out = {}
    for name, emb in (("fashion-tiny", test_set), ("pixels", pixels)):
        out[name] = (emb, knn(emb.vectors, k=40)[1])
    return out


def f1(p: float, r: float) -> float:
    return 2 * p * r / max(p + r, 1e-9)


# ---- failure slices at sample resolution ---------------------------------------------------------
@pytest.mark.parametrize("space", ["fashion-tiny", "pixels"])
def test_a_planted_sub_cluster_is_the_top_slice_at_sample_resolution(spaces, space):
    emb, nbrs = spaces[space]
    y = emb.table["label_id"].to_numpy()
    rng = np.random.default_rng(5)
    subset = planted.grown(emb.vectors, y, [7], 0.25, rng, nbrs)  # a quarter of the sneakers, mostly wrong
    wrong, inside = planted.plant_errors(len(y), subset, rng)
    fs = dx.failures(emb, correct=~wrong)
    p, r = planted.precision_recall(fs.members[0], inside)
    assert p >= 0.8 and r >= 0.8, (p, r)
    pb, rb = planted.precision_recall(planted.knn_error_smoothing(wrong, nbrs), inside)
    assert f1(p, r) > f1(pb, rb)  # the kNN-smoothing baseline loses the slice's boundary samples
    assert fs.membership.loc[emb.ids[subset]].mean() > 0.7


@pytest.mark.parametrize("space", ["fashion-tiny", "pixels"])
def test_uniform_errors_give_no_slice(spaces, space):
    emb, _ = spaces[space]
    for seed in range(3):
        null = np.random.default_rng(seed).random(len(emb)) < 0.05
        assert len(dx.failures(emb, correct=~null)) == 0


@pytest.mark.slow
@pytest.mark.parametrize("space", ["fashion-tiny", "pixels"])
def test_both_slice_families_meet_the_bar_and_beat_the_best_baseline(spaces, space):
    emb, nbrs = spaces[space]
    y = emb.table["label_id"].to_numpy()
    ours, base = {"i": [], "ii": []}, {"i": [], "ii": []}
    for family, _, _, wrong, inside in planted.slice_cases(emb.vectors, y, nbrs, generators=("grown",)):
        fs = dx.failures(emb, correct=~wrong)
        ours[family].append(planted.precision_recall(fs.members[0] if len(fs) else [], inside))
        base[family].append(max((planted.precision_recall(planted.knn_error_smoothing(wrong, nbrs), inside),
                                 planted.precision_recall(planted.kmeans_cells(emb.vectors, wrong), inside)),
                                key=lambda pr: f1(*pr)))
    passes = lambda rows: sum(p >= 0.8 and r >= 0.8 for p, r in rows)  # noqa: E731
    for family in ("i", "ii"):
        # the bar: the top slice has precision and recall >= 0.8 on at least 5 of 6 seeds/classes
        assert passes(ours[family]) >= 5, (family, ours[family])
        assert passes(ours[family]) > passes(base[family])
        assert np.mean([f1(*x) for x in ours[family]]) > np.mean([f1(*x) for x in base[family]])


# ---- coverage regions that hold together -------------------------------------------------------------
def test_a_dropped_look_alike_class_comes_back_as_one_region(train_set, test_set):
    y_tr, y_te = train_set.table["label_id"].to_numpy(), test_set.table["label_id"].to_numpy()
    cov = dx.coverage(train_set.subset(y_tr != 4), test_set)  # no coats; pullovers and shirts remain
    gap = y_te == 4
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(gap, cov.gap_scores.to_numpy()) >= 0.95
    p, r = planted.precision_recall(cov.members[0], gap)
    assert p >= 0.75 and r >= 0.6, (p, r, cov)
    assert sum(gap[m].sum() for m in cov.members[1:]) < 0.1 * gap.sum()  # not shattered
    _, groups = planted.kmeans_ratio(train_set.subset(y_tr != 4).vectors, test_set.vectors)
    pb, rb = planted.precision_recall(groups[0], gap)
    assert f1(p, r) > f1(pb, rb)


def test_coverage_of_a_random_subset_flags_nothing_and_redundant_waits_until_asked(train_set, test_set, monkeypatch):
    from dataexplore.analysis import gaps

    calls = []
    real = gaps._redundancy
    monkeypatch.setattr(gaps, "_redundancy", lambda *a: calls.append(1) or real(*a))
    keep = np.random.default_rng(0).random(len(train_set)) < 0.9
    cov = dx.coverage(train_set.subset(keep), test_set)
    assert len(cov) == 0 and calls == []
    assert len(cov.redundant) == 0 and calls == [1]


# ---- concepts decided one by one --------------------------------------------------------------------
@pytest.mark.slow
def test_every_removed_class_is_flagged_missing_with_or_without_labels(train_set, test_set):
    from dataexplore.sources.datasets import FASHION_MNIST_PHRASES

    y_tr = train_set.table["label_id"].to_numpy()
    bare_test = dx.Embeddings(ids=test_set.ids, vectors=test_set.vectors, model=test_set.model)
    for c, phrase in enumerate(FASHION_MNIST_PHRASES):
        ref = train_set.subset(y_tr != c)
        bare_ref = dx.Embeddings(ids=ref.ids, vectors=ref.vectors, model=ref.model)
        for r, t in ((ref, test_set), (bare_ref, bare_test)):
            cc = dx.concepts(r, [f"a photo of a {phrase}"], other=t, default_vocabulary=False)
            assert cc.missing() == [f"a photo of a {phrase}"], (phrase, cc.groups())


@pytest.mark.slow
def test_a_model_without_calibration_or_labels_still_flags_every_removed_class(train_set, test_set, monkeypatch):
    """A user's own CLIP ships no concept calibration; without labels the sets' tails decide."""
    from dataexplore.language import thresholds
    from dataexplore.sources.datasets import FASHION_MNIST_PHRASES

    monkeypatch.setattr(thresholds, "shipped_calibration", lambda clip: {})
    y_tr = train_set.table["label_id"].to_numpy()
    bare_test = dx.Embeddings(ids=test_set.ids, vectors=test_set.vectors, model=test_set.model)
    bare_train = dx.Embeddings(ids=train_set.ids, vectors=train_set.vectors, model=train_set.model)
    for c, phrase in enumerate(FASHION_MNIST_PHRASES):
        keep = y_tr != c
        ref = dx.Embeddings(ids=train_set.ids[keep], vectors=train_set.vectors[keep], model=train_set.model)
        cc = dx.concepts(ref, [f"a photo of a {phrase}"], other=bare_test, default_vocabulary=False)
        row = cc.groups().iloc[0]
        assert row["status"] == "missing" and row["threshold_source"] == "uncalibrated-tail", (phrase, row.to_dict())
        same = dx.concepts(bare_train, [f"a photo of a {phrase}"], other=bare_test, default_vocabulary=False)
        assert same.missing() == [], (phrase, same.groups().iloc[0].to_dict())  # nothing removed: nothing missing


def test_a_prompt_its_synonym_and_the_class_name_never_split_matches(test_set):
    def count(prompts, name):
        cc = dx.concepts(test_set, prompts, default_vocabulary=False)
        return cc.groups().set_index("name").loc[name, "matches_data"]

    # spellings of one word fold into one concept ...
    cc = dx.concepts(test_set, ["trousers", "trouser", "a photo of a trouser", "Trouser"], default_vocabulary=False)
    assert cc.groups()["name"].tolist() == ["trousers"]
    # ... and each concept is decided on its own: synonyms, class names and company change nothing
    alone = count(["trousers"], "trousers")
    assert count(["Trouser"], "Trouser") == alone
    sentence = "a photo of a trousers."  # a caption the model was trained on: its own text vector, same word
    assert abs(count([sentence], sentence) - alone) <= 0.1 * alone
    assert count(["trousers", "dress", "bag", "coat", "sandal"], "trousers") == alone
    assert dx.concepts(test_set, ["trousers"]).groups().set_index("name").loc["trousers", "matches_data"] == alone


def test_descriptions_name_only_concepts_the_model_can_tell_apart(test_set):
    cl = dx.clusters(test_set, n_clusters=8)
    known = {"t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
             "ankle boot"}
    words = {w.strip().lower() for d in cl.groups()["description"] for w in d.split(",") if w.strip()}
    assert words and words <= known, words  # never "child", "dog" or "chair" for fashion-tiny


# ---- failures that say why, and the action ----------------------------------------------------------
@pytest.fixture(scope="module")
def classifier_runs(train_set, test_set):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import loop

    xtr, xte = loop.pixels(train_set.samples), loop.pixels(test_set.samples)
    ytr, yte = train_set.table["label_id"].to_numpy(), test_set.table["label_id"].to_numpy()
    out = {}
    for scenario in ("data-gap", "confusion"):
        keep, pool = loop.setup(scenario, 0, train_set, pool_size=10000, labelled=3000)
        model = loop.train_classifier(xtr[keep], ytr[keep])
        fs = dx.failures(test_set, correct=model.predict(xte) == yte, reference=train_set.subset(keep))
        probs = pd.DataFrame(model.predict_proba(xtr[pool]), index=train_set.ids[pool])
        out[scenario] = (fs, train_set.subset(pool), probs, ytr[pool])
    return out


def test_a_slice_missing_from_training_says_collect_more(classifier_runs):
    fs, pool, probs, y_pool = classifier_runs["data-gap"]
    top = fs.groups().iloc[0]
    assert top["top_labels"].startswith("Sandal") and top["verdict"].startswith("under-covered in training")
    rec = fs.recommend(0, pool, n=100, progress=False)
    picked = pd.Series(y_pool, index=pool.ids).reindex(rec.table["id"]).to_numpy()
    assert (picked == 5).mean() >= 0.8  # the query finds sandals in the pool
    assert fs.map_values("verdict").dropna().str.startswith("under-covered").any()
    # the batch is spread over the query's matches, not the 100 most typical (and most alike) ones
    ranked = fs.selection(0).to_query(describe=False).search(pool, top=None, progress=False).table
    assert not set(rec.table["id"]) <= set(ranked["id"].head(100))
    assert set(rec.table["id"]) <= set(ranked.loc[ranked["match"], "id"])

    def spread(ids):
        v = pool.subset(pool_positions(pool, ids)).vectors
        return float(np.mean(1 - v @ v.T))

    assert spread(rec.table["id"]) > 1.1 * spread(ranked["id"].head(100))


def test_a_large_batch_is_spread_over_every_part_of_the_matches_at_linear_cost(monkeypatch):
    from types import SimpleNamespace

    recommend = importlib.import_module("dataexplore.analysis.recommend")
    monkeypatch.setattr(recommend, "MAX_CLUSTERS", 4)  # a batch of 40 over 4 clusters, as 2,000 over 256
    rng = np.random.default_rng(0)
    centres = np.eye(8, dtype=np.float32)[:4] * 5
    part = np.repeat(np.arange(4), [200, 100, 60, 40])
    v = centres[part] + rng.normal(size=(400, 8)).astype(np.float32)
    found = SimpleNamespace(table=pd.DataFrame({"match": np.r_[np.ones(400, bool), np.zeros(50, bool)]}),
                            embeddings=SimpleNamespace(vectors=np.r_[v, np.zeros((50, 8), np.float32)]))
    rows = recommend._spread(found, 40)
    assert len(rows) == len(set(rows)) == 40 and rows.max() < 400  # only matches, none twice
    assert np.bincount(part[rows], minlength=4).tolist() == [20, 10, 6, 4]  # each part its share


def pool_positions(pool, ids) -> np.ndarray:
    return pd.Series(np.arange(len(pool)), index=pool.ids).reindex(list(ids)).to_numpy()


def test_a_covered_slice_says_the_model_confuses_these_and_recommends_uncertain_neighbours(classifier_runs):
    fs, pool, probs, _ = classifier_runs["confusion"]
    covered = [i for i, v in enumerate(fs.groups()["verdict"]) if v.startswith("covered")]
    assert covered, fs.groups()[["name", "top_labels", "coverage", "verdict"]]
    k = covered[0]
    with pytest.raises(DataexploreError, match="covered in training.*probabilities="):
        fs.recommend(k, pool, n=50, progress=False)
    rec = fs.recommend(k, pool, n=50, probabilities=probs, progress=False)
    assert len(rec) == 50 and rec.table["margin"].is_monotonic_increasing
    global_margin = np.sort(probs.to_numpy(), axis=1)
    assert rec.table["margin"].median() < np.median(global_margin[:, -1] - global_margin[:, -2])


def test_recommend_needs_a_reference(test_set):
    wrong = np.isin(test_set.table["label_id"].to_numpy(), [8]) & (np.random.default_rng(0).random(len(test_set)) < .8)
    fs = dx.failures(test_set, correct=~wrong)
    with pytest.raises(DataexploreError, match="reference="):
        fs.recommend(0, test_set, n=10)


# ---- no friction ---------------------------------------------------------------------------------
def test_a_slice_becomes_a_query_and_its_search_exports_with_the_map_classes(test_set, train_set, tmp_path):
    wrong = (test_set.table["label_id"].to_numpy() == 8) & (np.random.default_rng(1).random(len(test_set)) < .8)
    fs = dx.failures(test_set, correct=~wrong)
    query = fs.selection(0).to_query()  # the selection knows its embeddings
    assert query.provenance["classes"][:2] == ["Ankle boot", "Bag"]
    bare_pool = dx.Embeddings(ids=train_set.ids[:500], vectors=train_set.vectors[:500], rows=train_set.rows[:500],
                              samples=dx.Samples(train_set.samples.table.iloc[:500].drop(columns=["label"]),
                                                 images=train_set.samples.images[:500]), model=train_set.model)
    found = query.search(bare_pool, top=20)
    # the pool has no labels; before, this export needed classes=: now the query's map supplies them
    folder = dx.export_labeling(found, tmp_path / "batch", format="label-studio")
    choices = [line for line in (folder / "config.xml").read_text().splitlines() if "<Choice " in line]
    assert len(choices) == 10 and '<Choice value="Bag"/>' in "".join(choices)
