import numpy as np
import pytest

import dataexplore as dx
from dataexplore.core.errors import DataexploreError


@pytest.fixture(scope="module")
def emb():
    return dx.embed("fashion-mnist:test:1000", model="fashion-tiny", progress=False)


def _knn_agreement(xy_query, xy_ref, lab_query, lab_ref, k=10):
    d = ((xy_query[:, None, :] - xy_ref[None, :, :]) ** 2).sum(-1)
    nn = np.argsort(d, axis=1)[:, :k]
    votes = lab_ref[nn]
    pred = np.array([max(set(v), key=list(v).count) for v in votes])
    return (pred == lab_query).mean()


@pytest.mark.slow
def test_umap_map_is_seeded_cached_and_keeps_classes_apart(emb):
    proj = dx.project(emb)
    xy = proj.embedding_
    assert xy.dtype == np.float32 and xy.shape == (1000, 2) and np.isfinite(xy).all()
    assert list(proj.ids_) == list(emb.ids) and proj.backend_ == "umap-learn" and not proj.from_cache_
    again = dx.project(emb)
    assert again.from_cache_ and np.array_equal(again.embedding_, xy)
    fresh = dx.Projection(cache=False).fit(emb)  # same seed, no cache: the same map
    np.testing.assert_allclose(fresh.embedding_, xy, atol=1e-4)
    labels = emb.table.label.to_numpy()
    assert _knn_agreement(xy, xy, labels, labels) > 0.7  # classes form regions on the map
    assert not dx.project(emb, n_neighbors=30).from_cache_  # other parameters, other map


@pytest.mark.slow
def test_transform_places_new_images_next_to_their_class(emb):
    proj = dx.project(emb)
    cached = dx.project(emb)  # coordinates from the cache; the model is reloaded for transform
    new = dx.embed("fashion-mnist:train:300", model="fashion-tiny", progress=False)
    xy_new = cached.transform(new)
    assert xy_new.dtype == np.float32 and xy_new.shape == (300, 2)
    agree = _knn_agreement(xy_new, proj.embedding_, new.table.label.to_numpy(), emb.table.label.to_numpy())
    assert agree > 0.6, agree


def test_pca_map_and_transform(emb):
    proj = dx.project(emb, method="pca")
    assert proj.embedding_.shape == (1000, 2) and proj.backend_ == "sklearn"
    np.testing.assert_allclose(proj.transform(emb.vectors[:5]), proj.embedding_[:5], atol=1e-5)
    with pytest.raises(DataexploreError, match="256 dimensions.*128"):
        proj.transform(np.ones((2, 256), np.float32))


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_tiny_and_degenerate_inputs_still_map(n):
    vecs = np.random.default_rng(0).normal(size=(n, 16)).astype(np.float32)
    for method in ("umap", "pca"):
        xy = dx.project(vecs, method=method).embedding_
        assert xy.shape == (n, 2) and np.isfinite(xy).all()
    same = np.ones((6, 16), np.float32)
    assert np.isfinite(dx.project(same, method="pca").embedding_).all()


def test_empty_and_unfitted_are_clear_errors():
    with pytest.raises(DataexploreError, match="no embeddings"):
        dx.project(np.zeros((0, 8), np.float32))
    with pytest.raises(DataexploreError, match="not fitted"):
        dx.Projection().transform(np.ones((1, 8)))
    with pytest.raises(DataexploreError, match="method must be"):
        dx.project(np.ones((3, 8)), method="tsne")


def test_damaged_projection_cache_is_recomputed(emb, cache_dir):
    proj = dx.project(emb, method="pca")
    path = proj.cache_path_
    path.write_bytes(path.read_bytes()[:100])
    again = dx.project(emb, method="pca")
    assert not again.from_cache_
    np.testing.assert_allclose(again.embedding_, proj.embedding_, atol=1e-5)


def test_saved_embeddings_project_from_file(emb, tmp_path):
    path = emb.save(tmp_path / "e.parquet")
    loaded = dx.Embeddings.load(path)
    assert list(loaded.ids) == list(emb.ids) and loaded.model["arch"] == "fashion-tiny"
    np.testing.assert_array_equal(loaded.vectors, emb.vectors)
    frame = dx.project(path, method="pca").to_frame()
    assert list(frame.columns) == ["id", "x", "y"] and len(frame) == 1000


@pytest.mark.slow
def test_a_map_past_the_sample_size_is_fitted_on_a_sample_and_says_what_that_cost(emb, monkeypatch):
    import dataexplore.projection as projection

    monkeypatch.setattr(projection, "QUALITY_SAMPLE", 400)
    proj = dx.Projection(sample=500).fit(emb)  # 1000 points: 500 fitted, 500 placed with transform
    xy = proj.embedding_
    assert xy.shape == (1000, 2) and np.isfinite(xy).all()
    report = proj.sampling_
    assert report["fitted_on"] == 500 and report["placed"] == 500
    trust = report["trustworthiness"]
    assert trust["n"] == 400 and 0.8 < trust["map"] <= 1 and 0.8 < trust["full_fit"] <= 1
    assert trust["full_fit"] - trust["map"] < 0.05  # the sample costs little on this data
    labels = emb.table.label.to_numpy()
    assert _knn_agreement(xy, xy, labels, labels) > 0.7  # placed points land among their class
    again = dx.Projection(sample=500).fit(emb)
    assert again.from_cache_ and again.sampling_ == report and np.array_equal(again.embedding_, xy)
    assert dx.Projection(sample=None).fit(emb).sampling_ is None
    with pytest.raises(DataexploreError, match="sample must be"):
        dx.Projection(sample=3).fit(emb)
