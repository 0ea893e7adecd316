"""Outliers, uniqueness and representativeness on real Fashion-MNIST embeddings with real odd images
planted among them: scikit-image photos, scikit-learn's handwritten digits, a clump of near-identical
crops of one photo."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import dataexplore as dx
from dataexplore.analysis.outliers import outliers
from dataexplore.core.errors import DataexploreError
from dataexplore.core.selection import as_selection

N = 2000


def _gray28(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        img = (img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    return np.asarray(Image.fromarray(img).resize((28, 28), Image.Resampling.LANCZOS))


def _digits(n: int) -> np.ndarray:
    """The first ``n`` of scikit-learn's 8×8 handwritten digits, MNIST-like: 20×20 on a black 28×28."""
    from sklearn.datasets import load_digits

    out = np.zeros((n, 28, 28), np.uint8)
    for i, d in enumerate(load_digits().images[:n]):
        small = Image.fromarray((d * 255 / 16).astype(np.uint8)).resize((20, 20), Image.Resampling.BICUBIC)
        out[i, 4:24, 4:24] = np.asarray(small)
    return out


def _embed(images: np.ndarray, prefix: str, cache) -> dx.Embeddings:
    ids = [f"{prefix}-{i}" for i in range(len(images))]
    return dx.embed(dx.load(images, ids=ids), progress=False, cache_dir=cache)


@pytest.fixture(scope="module")
def fashion(embedding_cache):
    return dx.embed(f"fashion-mnist:test:{N}", progress=False, cache_dir=embedding_cache)


@pytest.fixture(scope="module")
def odd(photos, embedding_cache):
    """Five whole photos and five handwritten digits, as 28×28 grayscale images, embedded."""
    images = np.concatenate([np.stack([_gray28(p) for p in photos.values()]), _digits(5)])
    return _embed(images, "odd", embedding_cache)


@pytest.fixture(scope="module")
def clump(photos, embedding_cache):
    """Eight near-identical crops of the camera photo (shifted by up to 24 of 512 pixels)."""
    rng = np.random.default_rng(0)
    cam = photos["camera"]
    side = min(cam.shape) - 24
    crops = [cam[y:y + side, x:x + side] for y, x in rng.integers(0, 25, (8, 2))]
    return _embed(np.stack([_gray28(c) for c in crops]), "clump", embedding_cache)


@pytest.fixture(scope="module")
def mixed(fashion, odd):
    return dx.Embeddings.concat([fashion, odd])


@pytest.fixture(scope="module")
def result(mixed):
    return outliers(mixed, progress=False)


def _ranks(res, ids) -> np.ndarray:
    rank = res.scores["outlier"].rank(ascending=False).to_numpy()
    return rank[np.isin(res.ids, ids)]


def test_planted_photos_and_digits_rank_at_the_top_and_are_flagged(result, odd, mixed):
    from sklearn.metrics import roc_auc_score

    ranks = _ranks(result, odd.ids)
    assert np.median(ranks) <= 0.05 * len(mixed)  # half of them in the top 5 %
    assert roc_auc_score(np.isin(result.ids, odd.ids), result.scores["outlier"]) > 0.9
    flagged = result.scores.set_index("id")["flagged"]
    normal = flagged.drop(odd.ids)
    assert normal.mean() <= 0.03  # few ordinary images flagged (fpr=0.01 asks for about 1 %)
    assert flagged[odd.ids].mean() >= 5 * normal.mean()
    # the flagged ones are listed as groups, highest mean score first, every flagged sample once
    table = result.groups()
    assert list(table.columns[:3]) == ["name", "description", "count"]
    assert table["mean_outlier"].is_monotonic_decreasing
    assert sorted(np.concatenate(result.members).tolist()) == np.flatnonzero(flagged.to_numpy()).tolist()
    assert set(result.flagged) == set(flagged.index[flagged])


def test_a_clump_of_near_identical_outliers_is_found_as_one_group(fashion, clump):
    data = dx.Embeddings.concat([fashion, clump])
    res = outliers(data, progress=False)
    assert res.k == 21  # 1 % of the set
    assert np.median(_ranks(res, clump.ids)) <= 0.05 * len(data)
    # with a few neighbours only, the crops vouch for each other and look ordinary
    few = outliers(data, k=5, progress=False)
    assert np.median(_ranks(few, clump.ids)) > 0.2 * len(data)
    # asked for a longer list, the flagged crops come as one group of their own
    longer = outliers(data, fpr=0.05, progress=False)
    assert longer.scores.set_index("id")["flagged"][clump.ids].sum() >= 5
    holding = [i for i, m in enumerate(longer.members) if np.isin(longer.ids[m], clump.ids).any()]
    assert len(holding) == 1 and longer.table["name"].iloc[holding[0]].startswith("outlier group")
    assert set(longer.group_ids(holding[0])) <= set(clump.ids)


def test_against_a_reference_the_target_is_scored_and_calibrated_on_it(fashion, odd, clump):
    reference = fashion.subset(np.arange(N // 2))
    target = dx.Embeddings.concat([fashion.subset(np.arange(N // 2, N)), odd, clump])
    res = outliers(target, reference=reference, progress=False)
    assert res.k == 10 and list(res.ids) == list(target.ids)
    assert len(res.reference_scores) == N // 2 and set(res.reference_scores.index) == set(reference.ids)
    assert res.threshold == pytest.approx(np.quantile(res.reference_scores, 0.99))
    planted = np.r_[odd.ids, clump.ids]
    assert np.median(_ranks(res, planted)) <= 0.03 * len(target)
    flagged = res.scores.set_index("id")["flagged"]
    assert flagged[planted].mean() >= 0.4
    assert flagged.drop(planted).mean() <= 0.03
    # the clump is not in the pool, so even k=10 finds it, and it is one group of its own: the camera
    # images (the whole photo, planted with the others, joins its crops)
    assert flagged[clump.ids].sum() >= 4
    holding = [i for i, m in enumerate(res.members) if np.isin(res.ids[m], clump.ids).any()]
    assert len(holding) == 1 and set(res.group_ids(holding[0])) <= set(clump.ids) | {odd.ids[4]}


def test_the_three_scores_are_in_range_sortable_and_mean_what_they_say(fashion, odd, result):
    s = result.scores
    assert list(s.columns) == ["id", "outlier", "uniqueness", "representativeness", "flagged"]
    assert (s["outlier"] > 0).all() and s["uniqueness"].between(0, 1).all()
    assert s["representativeness"].between(0, 1).all()
    assert 0.8 < s["outlier"].median() < 1.25 and abs(s["uniqueness"].median() - 0.5) < 0.02
    top = s.sort_values("outlier", ascending=False).head(10)
    assert top["outlier"].is_monotonic_decreasing and len(top) == 10
    by_id = s.set_index("id")
    assert by_id.loc[odd.ids, "uniqueness"].median() > 0.75  # unlike anything else
    assert by_id.loc[odd.ids, "representativeness"].median() < by_id["representativeness"].median()
    # an exact copy is not unique; the most representative samples are ordinary ones
    copy = dx.Embeddings.from_arrays(np.append(fashion.ids, "copy-of-0"), np.r_[fashion.vectors, fashion.vectors[:1]])
    with_copy = outliers(copy, progress=False).scores.set_index("id")
    assert with_copy.loc["copy-of-0", "uniqueness"] < 0.01 and with_copy.loc[fashion.ids[0], "uniqueness"] < 0.1
    hubs = s.sort_values("representativeness", ascending=False).head(20)
    assert not hubs["flagged"].any() and hubs["outlier"].max() < s["outlier"].median()


def test_map_values_by_each_score_and_an_unknown_one_fails_in_one_line(result, mixed):
    for by in ("outlier", "uniqueness", "representativeness"):
        values = result.map_values(by)
        assert isinstance(values, pd.Series) and values.name == by and list(values.index) == list(mixed.ids)
        assert np.issubdtype(values.dtype, np.floating)
    assert result.map_values().name == "outlier"
    with pytest.raises(DataexploreError) as err:
        result.map_values("density")
    assert "\n" not in str(err.value) and "uniqueness" in str(err.value)


def test_on_the_map_by_the_chosen_score(result, mixed):
    xy = np.random.default_rng(0).normal(size=(len(mixed), 2)).astype(np.float32)
    ex = dx.Explorer(xy, ids=mixed.ids, table=mixed.table)
    ex.show(result, by="uniqueness")
    assert ex.color_info["kind"] == "numeric" and ex.color_info["name"] == "uniqueness"
    assert float(ex.color_info["max"]) == pytest.approx(result.scores["uniqueness"].max(), abs=1e-3)
    ex.select_group(0)
    assert set(ex.selection.ids) == set(result.group_ids(0))


def test_selections_and_the_plot(result, odd):
    everything = result.selection()
    assert set(everything.ids) == set(result.flagged) and everything.provenance["analysis"] == "Outliers"
    assert everything.embeddings is not None  # it can become a query
    first = result.selection(0)
    assert set(first.ids) == set(result.group_ids(0))
    fig = result.plot()
    assert len(fig.data) == 1 and any("threshold" in (a.text or "") for a in fig.layout.annotations)


def test_a_selection_is_analysed_on_its_own(result):
    again = outliers(result.selection(), progress=False)
    assert set(again.ids) == set(result.flagged) and len(again.scores) == len(result.flagged)


def test_bad_input_fails_with_one_line(mixed, fashion):
    cases = [
        lambda: outliers(mixed, fpr=0, progress=False),
        lambda: outliers(mixed, k=0, progress=False),
        lambda: outliers(mixed, local_weight=2, progress=False),
        lambda: outliers(mixed, reference=dx.Embeddings.from_arrays(["a", "b", "c", "d"], np.eye(4, dtype=np.float32)),
                         progress=False),
        lambda: outliers(fashion.subset([0, 1]), progress=False),
        lambda: outliers(as_selection(list(fashion.ids), [0, 1, 2]), progress=False),
    ]
    for case in cases:
        with pytest.raises(DataexploreError) as err:
            case()
        assert "\n" not in str(err.value)
