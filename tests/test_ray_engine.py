"""engine="ray": the local engine's results on a Ray Data pipeline, shared through the cache's shards.

One local Ray (2 CPUs) serves the whole module; the CLI test connects a second driver to it.
"""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import dataexplore as dx
from dataexplore.core.errors import DataexploreError, MissingDependencyError

# DataContext() sets its own deprecated fields when Ray Data first creates it (Ray 2.60)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}  # no usage report (the machine may be offline)


@pytest.fixture(scope="module")
def ray_address():
    ray = pytest.importorskip("ray")
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    ctx = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield ctx.address_info["gcs_address"]
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def shard_files(emb):
    folder = dx.cache.cache_root() / "embeddings" / emb.model["key"] / "shards"
    return sorted(p.name for p in folder.glob("*.parquet"))


def same_result(a, b):
    assert list(a.ids) == list(b.ids) and a.rows.tolist() == b.rows.tolist()
    pd.testing.assert_frame_equal(a.failures, b.failures)
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)
    assert a.model == b.model


@pytest.mark.slow
def test_files_with_failures_match_the_local_engine_and_are_reused(ray_address, photo_folder, capfd):
    from dataexplore.embedding.ray import embed

    (photo_folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    paths = sorted(str(p) for p in photo_folder.rglob("*.*")) + [str(photo_folder / "gone.jpg")]
    local = dx.embed(paths, precision="fp32", cache=False, progress=False)
    assert len(local) == 5 and sorted(local.failures.reason.str[:12]) == ["missing file", "not an image"]

    # cpus_per_actor != 1: decoding runs as separate CPU tasks, the layout used on GPU clusters
    ray_emb = embed(paths, precision="fp32", cpus_per_actor=0.5, num_actors=1, batch_size=4)
    same_result(ray_emb, local)
    assert ray_emb.stats == {"computed": 5, "cached": 0, "failed": 2, "shards": {"total": 1, "reused": 0, "written": 1}}
    assert "ray: embedded 7 images on 1 CPU embedder(s): 5 computed, 0 from cache, 2 failed" in capfd.readouterr().err
    shard = pq.read_table(dx.cache.cache_root() / "embeddings" / ray_emb.model["key"] / "shards" /
                          shard_files(ray_emb)[0]).to_pandas()
    assert len(shard) == 6 and shard.reason.notna().sum() == 1  # the missing file has no content key

    again = dx.embed(paths, precision="fp32", progress=False)
    assert again.stats == {"computed": 0, "cached": 6, "failed": 2}
    same_result(again, local)


@pytest.mark.slow
def test_arrays_match_the_local_engine_and_a_local_run_computes_nothing(ray_address):
    ray_emb = dx.embed("fashion-mnist:test:300", engine="ray", ray_address=ray_address, precision="fp32",
                       progress=False)
    local = dx.embed("fashion-mnist:test:300", precision="fp32", cache=False, progress=False)
    same_result(ray_emb, local)
    assert ray_emb.stats["computed"] == 300 and ray_emb.stats["shards"]["written"] == 1
    assert list(ray_emb.table.label[:2]) == ["Ankle boot", "Pullover"]
    assert dx.embed("fashion-mnist:test:300", progress=False).stats == {"computed": 0, "cached": 300, "failed": 0}


@pytest.mark.slow
def test_a_crashed_run_resumes_at_shard_granularity(ray_address, monkeypatch, cache_dir):
    from dataexplore.embedding import ray as ray_engine
    from dataexplore.embedding.cache import content_keys

    source = "fashion-mnist:test:300"  # shards of 64: 64, 64, 64, 64, 44 images
    write, written = ray_engine._write_shard, []

    def crash_after_two(shard, *args):
        if len(written) == 2:
            raise RuntimeError("driver crashed")
        write(shard, *args)
        written.append(shard)

    monkeypatch.setattr(ray_engine, "_write_shard", crash_after_two)
    with pytest.raises(RuntimeError, match="driver crashed"):
        ray_engine.embed(source, precision="fp32", shard_size=64, progress=False)
    monkeypatch.setattr(ray_engine, "_write_shard", write)
    done = sum(s.stop - s.start for s in written)

    resumed = ray_engine.embed(source, precision="fp32", shard_size=64, progress=False)
    assert resumed.stats == {"computed": 300 - done, "cached": done, "failed": 0,
                             "shards": {"total": 5, "reused": 2, "written": 3}}
    local = dx.embed(source, precision="fp32", cache=False, progress=False)
    same_result(resumed, local)

    # without the database, the shards are the cache: delete one and only its images are computed
    plan = ray_engine.plan_shards(content_keys(dx.load(source))[0], 64)
    folder = cache_dir / "embeddings" / resumed.model["key"]
    assert shard_files(resumed) == sorted(s.name for s in plan)
    for db in (cache_dir / "embeddings").glob(f"{resumed.model['key']}.sqlite*"):
        db.unlink()
    (folder / "shards" / plan[1].name).unlink()
    rebuilt = ray_engine.embed(source, precision="fp32", shard_size=64, progress=False)
    assert rebuilt.stats == {"computed": 64, "cached": 236, "failed": 0,
                            "shards": {"total": 5, "reused": 4, "written": 1}}
    same_result(rebuilt, local)

    # and the local engine reads them too, e.g. shards copied from a cluster into a fresh cache
    for db in (cache_dir / "embeddings").glob(f"{resumed.model['key']}.sqlite*"):
        db.unlink()
    from_shards = dx.embed(source, precision="fp32", progress=False)
    assert from_shards.stats == {"computed": 0, "cached": 300, "failed": 0}
    same_result(from_shards, local)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "dataexplore", *args], capture_output=True, text=True,
                          env={**os.environ, **RAY_ENV}, timeout=600)


@pytest.mark.slow
def test_cli_embeds_on_a_running_cluster_and_reports_an_unreachable_one(ray_address, tmp_path):
    out = tmp_path / "e.parquet"
    res = run_cli("embed", "fashion-mnist:test:300", "--engine", "ray", "--address", ray_address, "--out", str(out),
                  "--quiet")
    assert res.returncode == 0, res.stderr
    assert "embedded 300 images: 300 computed, 0 from cache, 0 failed" in res.stderr
    table = pq.read_table(out)
    assert table.num_rows == 300 and table.column("id")[0].as_py() == "test-00000"
    local = dx.embed("fashion-mnist:test:300", progress=False)
    assert local.stats["computed"] == 0  # the CLI's run filled this test's cache
    np.testing.assert_allclose(np.stack(table.column("embedding").to_pylist()), local.vectors, atol=1e-5)

    bad = run_cli("embed", "fashion-mnist:test:4", "--engine", "ray", "--address", "127.0.0.1:1", "--out", str(out))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert "cannot reach a Ray cluster at '127.0.0.1:1'" in bad.stderr and "ray start --head" in bad.stderr


def test_bad_engine_and_engine_options_are_one_clear_error():
    with pytest.raises(DataexploreError, match="engine must be 'local' or 'ray', got 'spark'"):
        dx.embed("fashion-mnist:test:4", engine="spark")
    with pytest.raises(DataexploreError, match="ray_address is only used with engine='ray'"):
        dx.embed("fashion-mnist:test:4", ray_address="head:6379")
    with pytest.raises(DataexploreError, match="options of the local engine"):
        dx.embed("fashion-mnist:test:4", engine="ray", decode="torchvision")


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install dataexplore\[scale\]"):
        dx.embed("fashion-mnist:test:4", engine="ray")


def test_local_engine_reuses_shard_files_and_sets_bad_ones_aside(cache_dir):
    """The shard format without Ray: what a cluster wrote (here by hand) is read, damaged files are not."""
    from dataexplore.core.images import DEFAULT_MAX_PIXELS
    from dataexplore.embedding.cache import content_keys, shard_dir, write_shard
    from dataexplore.embedding.plan import failure_conditions

    source = "fashion-mnist:test:20"
    truth = dx.embed(source, precision="fp32", cache=False, progress=False)
    keys = content_keys(dx.load(source))[0]
    folder = shard_dir(cache_dir, truth.model["key"])
    write_shard(folder / "good.parquet", keys[:10], truth.vectors[:10], [None] * 9 + ["not an image"],
                truth.model["key"], conditions=failure_conditions(DEFAULT_MAX_PIXELS, "pil"))
    write_shard(folder / "other-model.parquet", keys[10:], truth.vectors[10:], [None] * 10, "another-model")
    (folder / "garbage.parquet").write_bytes(b"PAR1 truncated")

    emb = dx.embed(source, precision="fp32", progress=False)
    assert emb.stats == {"computed": 10, "cached": 10, "failed": 1}
    assert emb.failures.id.tolist() == ["test-00009"] and emb.failures.reason.tolist() == ["not an image"]
    np.testing.assert_allclose(emb.vectors, np.delete(truth.vectors, 9, axis=0), atol=1e-5)
    assert sorted(p.name.split(".corrupt-")[0] for p in folder.iterdir()) == [
        "garbage.parquet", "good.parquet", "other-model.parquet"]
    assert [p.name for p in folder.glob("*.parquet")] == ["good.parquet"]
    # a failure recorded under other decode conditions (here a larger pixel limit) is tried again
    again = dx.embed(source, precision="fp32", progress=False, max_pixels=DEFAULT_MAX_PIXELS // 2)
    assert again.stats == {"computed": 1, "cached": 19, "failed": 0}


@pytest.mark.slow
def test_object_crops_on_files_match_the_local_engine(ray_address, tmp_path, monkeypatch):
    from PIL import Image

    items = dx.load("fashion-mnist:test:8").images
    rows = []
    for i in range(4):
        canvas = np.full((50, 70), 10, np.uint8)
        canvas[5:33, 3:31], canvas[15:43, 38:66] = items[2 * i], items[2 * i + 1]
        Image.fromarray(canvas).save(tmp_path / f"{i}.png")
        rows += [{"image_id": str(i), "x": 3, "y": 5, "w": 28, "h": 28, "label": "a", "kind": "ground_truth"},
                 {"image_id": str(i), "x": 38, "y": 15, "w": 28, "h": 28, "label": "b", "kind": "ground_truth"}]
    monkeypatch.chdir(tmp_path)  # relative paths: the workers must still find the images
    images = dx.load(pd.DataFrame({"id": [str(i) for i in range(4)], "filepath": [f"{i}.png" for i in range(4)],
                                   "width": 70, "height": 50}))
    objects = dx.Objects(pd.DataFrame(rows), images)
    ray_emb = dx.embed(objects, engine="ray", ray_address=ray_address, precision="fp32", progress=False,
                       cache_dir=tmp_path / "cache")
    local = dx.embed(objects, precision="fp32", cache=False, progress=False)
    same_result(ray_emb, local)
    whole = dx.embed(images, precision="fp32", cache=False, progress=False)
    assert not np.allclose(local.vectors[0], whole.vectors[0], atol=1e-3)  # crops, not the whole images
