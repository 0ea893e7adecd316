"""Queries: a lasso on the real Fashion-MNIST map becomes an artefact that finds that class in a held-out pool."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dataexplore as dx
from conftest import browser
from dataexplore.core.errors import DataexploreError
from dataexplore.query import load_query, make_query


@pytest.fixture(scope="module")
def explorer(embedding_cache):
    """The quickstart's map: 2000 test images, embedded, projected with UMAP, in an Explorer."""
    return dx.explore("fashion-mnist:test:2000", progress=False, cache_dir=embedding_cache)


@pytest.fixture(scope="module")
def pool(embedding_cache):
    """A held-out pool: train images the map never saw."""
    return dx.embed("fashion-mnist:train:5000", progress=False, cache_dir=embedding_cache)


def lasso(ex, label: str) -> dx.Selection:
    """Draw a lasso around the core of one class's island on the map, as a user would, in map coordinates."""
    from scipy.spatial import ConvexHull

    pts = ex.xy[ex.table["label"].to_numpy() == label]
    dist = np.linalg.norm(pts - np.median(pts, axis=0), axis=1)
    core = pts[dist < np.quantile(dist, 0.8)]
    polygon = core[ConvexHull(core).vertices]
    browser(ex, {"type": "select", "shape": "lasso", "op": "replace", "polygon": polygon.tolist()}, [])
    return ex.selection


@pytest.mark.slow
@pytest.mark.parametrize("label", ["Trouser", "Sandal"])
def test_a_lassoed_class_is_retrieved_from_a_held_out_pool(explorer, pool, label):
    sel = lasso(explorer, label)
    assert sel.shape == "lasso" and len(sel) > 50
    query = sel.to_query()
    assert query.name == label and query.method == "probe"  # named after the selection's main label
    result = query.search(pool, top=100)
    precision = (result.table["label"] == label).mean()
    assert precision >= 0.9
    assert abs(result.estimated_precision - precision) < 0.15  # the estimate a user reads is honest
    assert result.table["rank"].tolist() == list(range(1, 101))
    assert result.table["score"].is_monotonic_decreasing


@pytest.mark.slow
def test_a_query_is_a_readable_diffable_artefact_that_reloads_identically(explorer, pool, tmp_path):
    sel = lasso(explorer, "Bag")
    query = sel.to_query("bags")
    path = query.save(tmp_path / "bags.dxq")
    meta = json.loads((path / "query.json").read_text())
    assert meta["name"] == "bags" and meta["n_ids"] == len(sel)
    assert meta["model"]["weights"] == explorer.embeddings.model["weights"]
    assert meta["provenance"]["dataset"]["fingerprint"] == explorer.embeddings.fingerprint
    assert meta["provenance"]["shape"] == "lasso" and len(meta["provenance"]["polygon"]) >= 3
    assert meta["provenance"]["projection"]["method"] == "umap"
    assert meta["provenance"]["labels"]["Bag"] >= 0.9 * len(sel)
    assert "Bag" in meta["concepts"][:2]  # described in words
    assert set(meta["exemplars"]) <= set(sel.ids) and len(meta["exemplars"]) == 8
    assert 0 < meta["probe"]["cv"]["precision"] <= 1 and meta["probe"]["threshold"] is not None
    assert (path / "ids.txt").read_text().split() == list(sel.ids)

    again = load_query(path)
    np.testing.assert_array_equal(again.score(pool.vectors), query.score(pool.vectors))
    pd.testing.assert_frame_equal(again.search(pool, top=50).table, query.search(pool, top=50).table)
    second = again.save(tmp_path / "copy.dxq")
    for name in ("query.json", "ids.txt"):  # stable bytes: saving twice diffs as nothing
        assert (second / name).read_bytes() == (path / name).read_bytes()


@pytest.mark.slow
def test_saving_never_overwrites_by_accident_and_never_leaves_half_a_query(explorer, tmp_path, monkeypatch):
    query = lasso(explorer, "Trouser").to_query("t")
    path = query.save(tmp_path / "t.dxq")
    before = (path / "query.json").read_bytes()
    with pytest.raises(DataexploreError, match="already exists.*overwrite=True"):
        query.save(path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        query.save(path, overwrite=True)
    assert (path / "query.json").read_bytes() == before  # the old query is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.dxq"]  # no temporary leftovers
    monkeypatch.undo()
    query.name = "renamed"
    query.save(path, overwrite=True)
    assert load_query(path).name == "renamed"


def test_small_selections_use_nearest_neighbours(embedding_cache):
    emb = dx.embed("fashion-mnist:test:400", progress=False, cache_dir=embedding_cache)
    sneakers = emb.ids[emb.table["label"].to_numpy() == "Sneaker"][:5]
    query = make_query(sneakers, emb, name="few sneakers")
    assert query.method == "knn" and query.threshold is not None
    others = emb.subset(~np.isin(emb.ids, sneakers))
    top = query.search(others, top=20)
    assert (top.table["label"].isin(["Sneaker", "Sandal", "Ankle boot"])).mean() >= 0.9
    assert np.isnan(top.estimated_precision)  # no calibration without a probe: says unknown, not a guess


@pytest.mark.slow
def test_a_text_query_finds_a_concept_that_has_no_images_yet(pool, tmp_path):
    query = dx.Query.from_text("sandal")
    import json

    shipped = json.loads((Path(dx.__file__).parent / "models" / "fashion-tiny" / "metrics.json").read_text())
    own = shipped["concept_calibration"]["concepts"]["sandal"]["threshold"]  # the concept's own threshold
    assert query.method == "text" and query.threshold == pytest.approx(own, abs=1e-4)
    result = query.search(pool, top=50)
    assert (result.table["label"] == "Sandal").mean() >= 0.8
    again = load_query(query.save(tmp_path / "sandal.dxq"))
    np.testing.assert_array_equal(again.search(pool, top=50).ids, result.ids)


def test_bad_queries_and_pools_get_one_clear_error(embedding_cache):
    emb = dx.embed("fashion-mnist:test:200", progress=False, cache_dir=embedding_cache)
    with pytest.raises(DataexploreError, match="selection is empty"):
        make_query([], emb)
    with pytest.raises(DataexploreError, match="does not know its embeddings"):
        dx.Selection(ids=np.array(["test-00001"], object), indices=np.array([1], np.uint32)).to_query()
    with pytest.raises(DataexploreError, match="not in the embeddings"):
        make_query(["nope"], emb)
    query = make_query(emb.ids[:20], emb)
    other = dx.Embeddings.from_arrays(["a", "b"], np.eye(2, 64, dtype=np.float32),
                                      model={"name": "ViT-B-32", "weights": "other"})
    with pytest.raises(DataexploreError, match="pool was embedded with another model"):
        query.search(other)
    with pytest.raises(DataexploreError, match="top must be a positive integer"):
        query.search(emb, top=0)
    with pytest.raises(DataexploreError, match="non-empty text"):
        dx.Query.from_text("  ")


def test_pool_metadata_never_clashes_with_result_columns(embedding_cache):
    emb = dx.embed("fashion-mnist:test:200", progress=False, cache_dir=embedding_cache)
    table = emb.samples.table.assign(score=1.0, rank="x")
    pool = dx.Embeddings(ids=emb.ids, vectors=emb.vectors, rows=emb.rows, model=emb.model,
                         samples=dx.Samples(table, images=emb.samples.images))
    res = make_query(emb.ids[:20], emb).search(pool, top=10)
    assert list(res.table.columns[:5]) == ["rank", "id", "score", "probability", "match"]
    assert {"meta_score", "meta_rank"} <= set(res.table.columns) and res.table.columns.is_unique
    with pytest.raises(DataexploreError, match="line break"):
        make_query(["a\nb"], dx.Embeddings.from_arrays(["a\nb", "c"], np.eye(2, dtype=np.float32))).save(
            embedding_cache / "broken.dxq")


def test_a_saved_query_that_is_damaged_says_so(tmp_path):
    from dataexplore.core.errors import SourceError

    with pytest.raises(SourceError, match="not a saved query"):
        load_query(tmp_path)
    (tmp_path / "query.json").write_text('{"format": "something-else/9"}')
    with pytest.raises(SourceError, match="unknown query format"):
        load_query(tmp_path)


@pytest.mark.slow
def test_query_run_on_the_command_line(explorer, tmp_path):
    path = lasso(explorer, "Trouser").to_query().save(tmp_path / "trousers.dxq")
    out = tmp_path / "candidates.csv"

    def run(*args):
        return subprocess.run([sys.executable, "-m", "dataexplore", "query", *args], capture_output=True, text=True,
                              env=os.environ.copy(), timeout=600)

    res = run("run", str(path), "--pool", "fashion-mnist:train:3000", "--top", "40", "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out)
    assert len(table) == 40 and (table["label"] == "Trouser").mean() >= 0.9
    assert list(table.columns[:5]) == ["rank", "id", "score", "probability", "match"]
    again = run("run", str(path), "--pool", "fashion-mnist:train:3000", "--out", str(out), "--quiet")
    assert again.returncode == 2 and "--overwrite" in again.stderr
    shown = run("show", str(path))
    assert shown.returncode == 0 and "'Trouser'" in shown.stdout and "method=probe" in shown.stdout
    text = run("text", "ankle boot", "--out", str(tmp_path / "boots.dxq"))
    assert text.returncode == 0 and (tmp_path / "boots.dxq" / "query.json").is_file()


def test_file_names_made_from_names_stay_inside_their_folder():
    from dataexplore.core.io import safe_name

    for bad in ["../../etc/passwd", "a/b\\c", "CON", ".hidden", "", "x" * 500, "T-shirt/top"]:
        name = safe_name(bad)
        assert name and "/" not in name and "\\" not in name and not name.startswith(".") and len(name) <= 100
    assert safe_name("T-shirt/top") == "T-shirt_top" and safe_name("Ankle boot") == "Ankle_boot"
    assert len(safe_name("靴" * 90).encode()) <= 180  # file systems count bytes, not characters


def test_a_shared_query_does_not_choose_local_files_to_load(tmp_path):
    """A query file names its model; a local folder or weights file named there is never loaded by itself
    (a pickled checkpoint can run code): the caller names the model instead."""
    path = dx.Query.from_text("sandal").save(tmp_path / "sandal.dxq")
    meta = json.loads((path / "query.json").read_text())
    for name, tag in (("local-dir:/tmp/elsewhere", None), ("ViT-B-32", "/tmp/weights.bin")):
        meta["model"] = {**meta["model"], "name": name, "pretrained": tag}
        (path / "query.json").write_text(json.dumps(meta))
        shared = load_query(path)
        with pytest.raises(DataexploreError, match="pass model=") as err:
            shared.search("fashion-mnist:test:50", top=5, progress=False)
        assert "\n" not in str(err.value)
    # named by the caller (and the same weights as the query's): it searches
    result = shared.search("fashion-mnist:test:50", top=5, progress=False, model="fashion-tiny")
    assert len(result.table) == 5
