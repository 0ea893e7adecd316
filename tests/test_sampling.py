"""A labeling budget spent well: diverse, typical, uncertain and balanced picks on real Fashion-MNIST
embeddings (fashion-tiny), checked for what a user would see: more of the data covered, the least
certain rows first, even counts along the axes asked for, and one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist, pdist

import dataexplore as dx
from dataexplore.analysis.sampling import Sample, sample
from dataexplore.core.errors import DataexploreError
from dataexplore.core.selection import Selection, as_selection


@pytest.fixture(scope="module")
def emb(embedding_cache):
    return dx.embed("fashion-mnist:test:2000", progress=False, cache_dir=embedding_cache)


@pytest.fixture(scope="module")
def positions(emb):
    return pd.Series(np.arange(len(emb)), index=emb.ids)


@pytest.fixture(scope="module")
def probabilities(emb):
    """A real model's class probabilities: logistic regression on the pixels of the other half."""
    from sklearn.linear_model import LogisticRegression

    x = emb.samples.images.reshape(len(emb.samples.images), -1)[emb.rows].astype(np.float32) / 255
    y = emb.table["label_id"].to_numpy()
    half = np.arange(len(y)) % 2 == 0
    model = LogisticRegression(C=0.05, max_iter=200).fit(x[half], y[half])
    return model.predict_proba(x)


def brightness(emb) -> np.ndarray:
    return emb.samples.images.reshape(len(emb.samples.images), -1)[emb.rows].mean(1)


def nearest_other(x: np.ndarray) -> np.ndarray:
    d = cdist(x, x)
    np.fill_diagonal(d, np.inf)
    return d.min(1)


def rows(s: Sample, positions) -> np.ndarray:
    return positions[s.ids].to_numpy()


# ---- diverse ---------------------------------------------------------------------------------------
def test_diverse_picks_cover_more_classes_and_clusters_than_random_and_are_spread(emb, positions):
    from sklearn.cluster import KMeans

    x, labels = emb.vectors, emb.table["label"].to_numpy()
    clusters = KMeans(30, n_init=3, random_state=0).fit_predict(x)
    picks = rows(sample(emb, 10, "diverse", progress=False), positions)
    randoms = [rows(sample(emb, 10, "random", seed=s, progress=False), positions) for s in range(20)]
    assert len(set(labels[picks])) >= np.mean([len(set(labels[r])) for r in randoms]) + 2
    assert len(set(clusters[picks])) >= max(len(set(clusters[r])) for r in randoms)
    # spread: the closest two diverse picks are farther apart than the closest two of any random draw
    assert pdist(x[picks]).min() > max(pdist(x[r]).min() for r in randoms)


def test_diverse_picks_keep_away_from_the_labelled_set_and_leave_it_out(emb, positions):
    labelled = emb.subset(np.flatnonzero(emb.table["label"].isin(["Sneaker", "Sandal", "Ankle boot"])))
    s = sample(emb, 30, "diverse", already=labelled, progress=False)
    r = sample(emb, 30, "random", already=labelled, progress=False)
    assert not set(s.ids) & set(labelled.ids) and not set(r.ids) & set(labelled.ids)
    assert len(s.candidates) == len(emb) - len(labelled)
    # a diverse batch does not spend the budget next to what is labelled already
    near = cdist(emb.vectors[rows(s, positions)], labelled.vectors).min(1)
    near_random = cdist(emb.vectors[rows(r, positions)], labelled.vectors).min(1)
    assert np.median(near) > np.median(near_random)
    assert (s.table["label"].isin(["Sneaker", "Sandal", "Ankle boot"])).mean() < 0.15
    # the same by ids: the labelled samples are items here, so their ids are enough
    by_ids = sample(emb, 30, "diverse", already=list(labelled.ids), progress=False)
    assert not set(by_ids.ids) & set(labelled.ids)


def test_typical_picks_lie_where_the_data_is_dense(emb, positions):
    from dataexplore.analysis.neighbors import knn

    dist, _ = knn(emb.vectors, k=10)
    density = -dist.mean(1)  # closer neighbours: a denser region
    typical = rows(sample(emb, 20, "typical", progress=False), positions)
    diverse = rows(sample(emb, 20, "diverse", progress=False), positions)
    randoms = [np.median(density[rows(sample(emb, 20, "random", seed=s, progress=False), positions)])
               for s in range(10)]
    assert np.median(density[typical]) > max(randoms) > np.median(density[diverse])
    assert len(set(emb.table["label"].to_numpy()[typical])) >= 8  # and spread over the classes


# ---- uncertain -------------------------------------------------------------------------------------
def test_uncertain_picks_the_lowest_margin_rows(emb, probabilities):
    top2 = np.sort(probabilities, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    s = sample(emb, 25, "uncertain", probabilities=probabilities, progress=False)
    assert set(s.ids) == set(emb.ids[np.argsort(margin, kind="stable")[:25]])
    assert s.table["margin"].is_monotonic_increasing  # least certain first
    # the same probabilities as a DataFrame indexed by id, in another order
    frame = pd.DataFrame(probabilities, index=emb.ids).iloc[::-1]
    assert sample(emb, 25, "uncertain", probabilities=frame, progress=False).ids.tolist() == s.ids.tolist()
    entropy = sample(emb, 25, "uncertain", probabilities=probabilities, uncertainty="entropy", progress=False)
    assert entropy.table["entropy"].is_monotonic_decreasing


def test_uncertain_diverse_is_uncertain_and_more_spread_than_uncertainty_alone(emb, positions, probabilities):
    plain = sample(emb, 20, "uncertain", probabilities=probabilities, progress=False)
    spread = sample(emb, 20, "uncertain-diverse", probabilities=probabilities, progress=False)
    # each pick's distance to the nearest other pick: uncertainty alone takes near-copies of one confusion
    assert nearest_other(emb.vectors[rows(spread, positions)]).mean() > \
        1.3 * nearest_other(emb.vectors[rows(plain, positions)]).mean()
    top2 = np.sort(probabilities, axis=1)[:, -2:]
    margin = pd.Series(top2[:, 1] - top2[:, 0], index=emb.ids)
    assert margin[spread.ids].max() <= np.quantile(margin, 0.15)  # still among the least certain


# ---- balanced --------------------------------------------------------------------------------------
def test_balance_by_label_and_a_numeric_column_gives_even_counts_and_names_what_it_cannot_fill(emb):
    meta = pd.DataFrame({"brightness": brightness(emb)}, index=emb.ids)
    s = sample(emb, 100, "diverse", balance_by=["label", "brightness"], metadata=meta, progress=False)
    counts = s.table["label"].value_counts()
    assert len(counts) == 10 and counts.max() - counts.min() <= 1
    assert s.table["brightness bucket"].value_counts().max() - s.table["brightness bucket"].value_counts().min() <= 1
    assert (s.deviations() <= 0.011).all()
    before = emb.table["label"].value_counts(normalize=True)
    report = s.report.set_index(["axis", "value"])
    assert np.allclose(report.loc["label", "available_share"].reindex(before.index), before)
    assert len(s.unfilled) == 0
    # keep only 4 sandals: the sandal bucket cannot get its tenth and the report says so
    few = emb.subset(np.flatnonzero((emb.table["label"] != "Sandal").to_numpy()
                                    | (np.cumsum(emb.table["label"] == "Sandal") <= 4).to_numpy()))
    s = sample(few, 100, "uncertain", balance_by=["label", "brightness"], metadata=meta,
               probabilities=np.full((len(few), 10), 0.1), progress=False)
    short = s.unfilled.set_index("value")
    assert list(short.index) == ["Sandal"] and short.loc["Sandal", "picked"] == 4
    assert short.loc["Sandal", "note"] == "only 4 candidates"
    counts = s.table["label"].value_counts().drop("Sandal")
    assert counts.min() >= 10 and counts.max() - counts.min() <= 1  # the rest shared equally


def test_balance_along_three_axes_with_a_skewed_one(emb):
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({"camera": rng.choice(["phone", "dslr", "webcam"], len(emb), p=[0.8, 0.15, 0.05]),
                         "time": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, len(emb)), "D")},
                        index=emb.ids)
    s = sample(emb, 90, "typical", balance_by=["label", "camera", "time"], bins={"time": 3}, metadata=meta,
               progress=False)
    assert set(s.table["camera"].value_counts()) == {30}
    assert s.table["time bucket"].nunique() == 3 and s.table["time bucket"].value_counts().max() <= 31
    assert (s.deviations() <= 0.02).all()
    assert s.report["axis"].unique().tolist() == ["label", "camera", "time"]
    fig = s.plot()
    assert [t.name for t in fig.data] == ["candidates (before)", "picked (after)", "target"]


# ---- inputs and the result -------------------------------------------------------------------------
def test_a_selection_is_sampled_within_and_the_result_selects_on_its_map(emb, positions):
    inside = np.flatnonzero(emb.table["label"].isin(["Shirt", "T-shirt/top"]).to_numpy())
    sel = as_selection(emb.ids, inside, embeddings=emb)
    s = sample(sel, 15, "diverse", progress=False)
    assert set(s.ids) <= set(emb.ids[inside]) and len(s.candidates) == len(inside)
    picked = s.selection()
    assert isinstance(picked, Selection) and picked.embeddings is emb
    assert sorted(picked.ids) == sorted(s.ids)
    assert set(s.map_values().dropna().index) == set(s.ids)
    assert s.map_values("picked").sum() == 15 and s.map_values().min() == 1
    assert s.groups()["name"].iloc[0] == "picked" and list(s.group_ids(0)) == list(s.ids)
    # a selection without its embeddings says what to pass
    with pytest.raises(DataexploreError, match="embeddings="):
        sample(as_selection(emb.ids, inside), 5)
    assert sample(as_selection(emb.ids, inside), 5, embeddings=emb, progress=False).ids.tolist() == \
        s.ids[:5].tolist()


def test_a_search_result_is_sampled_within(emb):
    from dataexplore.query.search import search

    query = as_selection(emb.ids, np.flatnonzero((emb.table["label"] == "Bag").to_numpy())[:20],
                         embeddings=emb).to_query("bags", describe=False)
    found = search(query, emb, top=300, progress=False)
    s = sample(found, 12, "diverse", balance_by="match", progress=False)
    assert set(s.ids) <= set(found.ids)
    assert "meta_score" in s.table.columns and "score" in s.table.columns  # the search score kept apart


def test_same_seed_same_picks(emb, probabilities):
    for strategy in ("diverse", "typical", "random", "uncertain-diverse"):
        a = sample(emb, 30, strategy, probabilities=probabilities, seed=3, progress=False)
        b = sample(emb, 30, strategy, probabilities=probabilities, seed=3, progress=False)
        assert a.ids.tolist() == b.ids.tolist(), strategy
    assert sample(emb, 30, "random", seed=4, progress=False).ids.tolist() != \
        sample(emb, 30, "random", seed=3, progress=False).ids.tolist()


def test_asking_for_more_than_there_is_returns_everything_with_a_note(emb):
    small = emb.subset(np.arange(40))
    with pytest.warns(UserWarning, match="there are 40 candidates"):
        s = sample(small, 100, "diverse", progress=False)
    assert len(s) == 40 and sorted(s.ids) == sorted(small.ids) and "asked for 100" in s.note


@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "smart"}, "unknown strategy 'smart'"),
    ({"strategy": "uncertain"}, "needs probabilities="),
    ({"strategy": "uncertain", "probabilities": np.full((10, 10), 0.1)}, "must be 2000 rows"),
    ({"strategy": "uncertain", "probabilities": np.full(2000, 0.1)}, "got shape (2000,)"),
    ({"strategy": "uncertain", "probabilities": np.full((2000, 3), 5.0)}, "not logits"),
    ({"balance_by": ["label", "camera"]}, "no column 'camera' to balance by"),
    ({"n": 0}, "n must be a positive integer"),
    ({"already": ["not-an-id"]}, "already= names sample id 'not-an-id'"),
])
def test_bad_input_is_one_clear_line(emb, kwargs, message):
    args = {"n": 10, **kwargs}
    with pytest.raises(DataexploreError) as info:
        sample(emb, progress=False, **args)
    assert message in str(info.value) and "\n" not in str(info.value)
