"""Label-error candidates on real Fashion-MNIST (2,000 test images) with planted label flips."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import dataexplore as dx
from dataexplore.analysis.label_errors import label_errors
from dataexplore.core.errors import DataexploreError

FLIPS = 100
#: Look-alike pair planted one way: samples truly SANDAL labeled SNEAKER.
SANDAL, SNEAKER = "Sandal", "Sneaker"


@pytest.fixture(scope="module")
def emb(embedding_cache):
    return dx.embed("fashion-mnist:test:2000", progress=False, cache_dir=embedding_cache)


@pytest.fixture(scope="module")
def uniform(emb):
    """100 labels (5 %) flipped to a random other class: (noisy labels by id, flipped ids, true labels)."""
    rng = np.random.default_rng(7)
    labels = emb.table["label"].astype(str).to_numpy(dtype=object)
    classes = sorted(set(labels))
    flipped = rng.choice(len(emb), FLIPS, replace=False)
    noisy = labels.copy()
    for i in flipped:
        noisy[i] = rng.choice([c for c in classes if c != labels[i]])
    return pd.Series(noisy, index=emb.ids), emb.ids[flipped], pd.Series(labels, index=emb.ids)


@pytest.fixture(scope="module")
def result(emb, uniform):
    return label_errors(emb, uniform[0], progress=False)


def test_planted_flips_rank_at_the_top_with_their_true_label_suggested(result, uniform):
    noisy, flipped, truth = uniform
    top = result.scores.head(FLIPS)
    assert top["id"].isin(flipped).mean() >= 0.85  # precision at the number of flips
    assert (result.scores["score"].diff().dropna() <= 0).all() and result.scores["rank"].tolist()[:3] == [1, 2, 3]
    caught = top[top["id"].isin(flipped)]
    assert (caught["suggested"].to_numpy() == truth[caught["id"]].to_numpy()).mean() >= 0.85
    assert (caught["label"].to_numpy() == noisy[caught["id"]].to_numpy()).all()  # the given label, not the truth
    # how many are flagged follows the expected number of wrong labels, not a fixed top-k
    flagged = result.candidates()
    assert 0.7 * FLIPS <= len(flagged) <= 1.5 * FLIPS
    assert len(flagged) == round(result.expected_errors)
    assert flagged["id"].isin(flipped).mean() >= 0.7 and np.isin(flipped, flagged["id"]).mean() >= 0.8
    assert result.threshold == flagged["score"].min()
    assert result.suggestions.index.tolist() == flagged["id"].tolist()
    assert result.suggestions.tolist() == flagged["suggested"].tolist()
    assert result.summary().startswith(f"{len(flagged)} label-error candidates of 2000 samples")


def test_lookalike_flips_form_the_top_group_and_the_noise_matrix_names_the_pair(emb):
    labels = emb.table["label"].astype(str).to_numpy(dtype=object)
    sandals = np.flatnonzero(labels == SANDAL)
    flipped = np.random.default_rng(3).choice(sandals, 40, replace=False)
    noisy = labels.copy()
    noisy[flipped] = SNEAKER
    res = label_errors(emb, pd.Series(noisy, index=emb.ids), progress=False)
    top = res.groups().iloc[0]
    assert top["name"] == f"{SNEAKER} → {SANDAL}" and top["label"] == SNEAKER and top["suggested"] == SANDAL
    members = res.group_ids(0)
    assert np.isin(members, emb.ids[flipped]).mean() >= 0.8 and np.isin(emb.ids[flipped], members).mean() >= 0.7
    assert res.noise.loc[SANDAL, SNEAKER] == res.noise.loc[SANDAL].drop(SANDAL).max()  # the planted direction
    assert res.noise_rates[SNEAKER] == res.noise_rates.max()


def test_the_real_labels_flag_few_and_far_fewer_than_planted_noise(emb, result):
    clean = label_errors(emb, progress=False)
    flagged = int(clean.scores["is_candidate"].sum())
    assert flagged <= 0.03 * len(emb)
    assert flagged < 0.5 * result.scores["is_candidate"].sum()
    assert (np.diag(clean.noise.to_numpy()) > 0.9).all()


def test_each_sample_carries_its_neighbours_and_their_labels_as_evidence(result, uniform, emb):
    noisy = uniform[0]
    first = result.scores.iloc[0]
    assert len(first["neighbours"]) == 5 and first["id"] not in first["neighbours"]
    assert first["neighbour_labels"] == [noisy[i] for i in first["neighbours"]]
    assert first["neighbour_labels"].count(first["suggested"]) >= 3 and first["agreement"] <= 0.2
    evidence = result.neighbours(first["id"])
    assert list(evidence.columns) == ["id", "label", "similarity", "score", "truly"] and len(evidence) == result.k
    assert evidence["id"].tolist()[:5] == first["neighbours"]
    assert (evidence["similarity"].diff().dropna() <= 1e-6).all()
    assert (evidence["truly"] == first["suggested"]).mean() >= 0.6


def test_map_values_selection_and_plot(result, emb):
    values = result.map_values()
    assert values.index.tolist() == list(emb.ids) and values.between(0, 1).all()
    pairs = result.map_values("pair")
    assert pairs.notna().sum() == result.scores["is_candidate"].sum()
    assert set(pairs.dropna()) == set(result.groups()["name"])
    sel = result.selection(0)
    assert sorted(sel.ids) == sorted(result.group_ids(0)) and sel.embeddings is not None
    assert len(result.candidate_selection()) == result.scores["is_candidate"].sum()
    fig = result.plot()
    assert fig.data[0].type == "bar" and len(fig.data[0].y) == min(20, len(result))
    with pytest.raises(DataexploreError, match="'score', 'pair' or 'suggested'") as err:
        result.map_values("colour")
    assert "\n" not in str(err.value)


def test_bad_label_column_and_bad_probabilities_fail_in_one_line(emb, uniform):
    for call, words in [(lambda: label_errors(emb, "lable", progress=False), "no metadata column 'lable'"),
                        (lambda: label_errors(emb, "label", probabilities=np.ones((3, 10)), progress=False),
                         "must be 2000 × 10"),
                        (lambda: label_errors(emb, pd.Series(["Bag"] * len(emb), index=emb.ids), progress=False),
                         "at least two classes"),
                        (lambda: label_errors(emb, uniform[0].iloc[:100], progress=False), "no value for sample")]:
        with pytest.raises(DataexploreError, match=words) as err:
            call()
        assert "\n" not in str(err.value)


def test_own_model_probabilities_by_class_name_replace_the_probe(emb, uniform):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    noisy, flipped, _ = uniform
    probs = cross_val_predict(LogisticRegression(max_iter=1000), emb.vectors, noisy.to_numpy(), cv=5,
                              method="predict_proba")
    classes = sorted(noisy.unique())
    frame = pd.DataFrame(probs, index=emb.ids, columns=classes)[classes[::-1]]  # any column order, by name
    res = label_errors(emb, noisy, probabilities=frame, progress=False)
    assert res.scores.head(FLIPS)["id"].isin(flipped).mean() >= 0.8
    with pytest.raises(DataexploreError, match="no column for class"):
        label_errors(emb, noisy, probabilities=frame.drop(columns=[classes[0]]), progress=False)


def test_a_candidate_group_exports_for_review_pre_annotated_with_the_suggestions(result, tmp_path):
    folder = dx.export_labeling(result.selection(0), tmp_path / "review", format="label-studio",
                                predictions=result.suggestions)
    tasks = json.loads((folder / "tasks.json").read_text())
    ids = [t["data"]["dx_id"] for t in tasks]
    assert sorted(ids) == sorted(result.group_ids(0))
    suggested = result.groups()["suggested"].iloc[0]
    assert all(t["predictions"][0]["result"][0]["value"]["choices"] == [suggested] for t in tasks)
    # the source table holds the true labels here (the noise was planted): the pre-annotations are mostly right
    assert np.mean([t["data"]["meta_label"] == suggested for t in tasks]) >= 0.8
