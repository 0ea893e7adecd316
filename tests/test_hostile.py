"""Hostile and careless input: each test replays one attack or accident from the audit (issue 12)
and checks what the user sees: no script runs, nothing hangs, nothing stale or wrong is served,
no annotator's work is lost, every bad file is one clear error."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import dataexplore as dx
from conftest import browser
from dataexplore.core.errors import DataexploreError, SourceError
from dataexplore.labeling import LabelConflictWarning
from dataexplore.widget import protocol as protocol_mod

HOSTILE = '<img src=x onerror="alert(1)">'
SCRIPT = "<script>alert('x')</script>"


class _Tags(HTMLParser):
    """Every tag and attribute name in an HTML fragment."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [a for a, _ in attrs]


def _no_markup_survives(html: str) -> None:
    parser = _Tags()
    parser.feed(html)
    assert not {"img", "script", "iframe", "svg", "a"} & set(parser.tags), parser.tags
    assert not [a for a in parser.attrs if a.startswith("on")]
    assert HOSTILE not in html and SCRIPT not in html


@pytest.fixture(scope="module")
def hostile_emb(tmp_path_factory):
    """300 real Fashion-MNIST images whose labels and ids carry markup."""
    cache = tmp_path_factory.mktemp("hostile-cache")
    samples = dx.load("fashion-mnist:test:300")
    table = samples.table.copy()
    table["label"] = table["label"].replace({"Trouser": HOSTILE, "Bag": SCRIPT})
    table.loc[:4, "id"] = [f"{SCRIPT}{i}" for i in range(5)]
    hostile = dx.Samples(table, images=samples.images, name=HOSTILE)
    return dx.embed(hostile, progress=False, cache_dir=cache)


# ---- 1. script injection --------------------------------------------------------------------
def test_no_html_fragment_lets_a_hostile_name_label_or_description_run(hostile_emb, tmp_path):
    emb = hostile_emb
    ok = emb.table["label"].to_numpy() != HOSTILE  # every "trouser" is a failure: a hostile slice
    results = [dx.failures(emb, correct=ok), dx.clusters(emb, n_clusters=4),
               dx.concepts(emb, prompts=[HOSTILE, "a photo of a bag"]),
               dx.coverage(emb.subset(np.flatnonzero(ok)), emb)]
    clusters = results[1]
    clusters.rename({0: HOSTILE, 1: SCRIPT})
    for res in results:
        _no_markup_survives(res._repr_html_())
        fig = json.dumps(res.plot().to_plotly_json(), default=str)
        assert "<img" not in fig and "<script" not in fig, type(res).__name__
    assert HOSTILE in clusters.groups()["name"].tolist()  # the text itself is kept, shown as text

    query = dx.Query.from_text("a photo of a bag")
    folder = query.save(tmp_path / "q.dxq")
    meta = json.loads((folder / "query.json").read_text())
    meta["name"] = HOSTILE  # a shared query folder whose name is a script
    (folder / "query.json").write_text(json.dumps(meta))
    shared = dx.load_query(folder)
    result = shared.search(emb, top=10)
    _no_markup_survives(result._repr_html_())
    assert "&lt;img src=x" in result._repr_html_()


# ---- 2. symbolic links ----------------------------------------------------------------------
def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


def _load_within(seconds: float, *args, **kwargs):
    out: dict = {}

    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out["samples"] = dx.load(*args, **kwargs)
        out["warnings"] = [str(w.message) for w in caught]

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "dx.load(folder) did not finish: a symbolic-link loop"
    return out["samples"], out["warnings"]


def test_symlink_loops_do_not_hang_copy_or_leak_files_from_outside(tmp_path):
    root = tmp_path / "data"
    _png(root / "cats" / "a.png", 10)
    _png(root / "dogs" / "b.png", 20)
    _png(tmp_path / "private" / "secret.png", 30)
    os.symlink("..", root / "cats" / "up")  # two links to ".." used to hang os.walk(followlinks=True)
    os.symlink("..", root / "dogs" / "up")
    os.symlink(tmp_path / "private", root / "elsewhere")
    os.symlink(tmp_path / "private" / "secret.png", root / "cats" / "leak.png")
    os.symlink(root / "dogs" / "b.png", root / "cats" / "b-again.png")  # a link inside the folder: kept

    samples, said = _load_within(20, root)
    assert sorted(samples.ids) == ["cats/a.png", "cats/b-again.png", "dogs/b.png"]
    assert samples.provenance["via_link"] == ["cats/b-again.png"]
    skipped = {s["path"]: s["reason"] for s in samples.provenance["skipped_links"]}
    assert skipped == {"cats/up": "link to a folder", "dogs/up": "link to a folder",
                       "elsewhere": "link to a folder", "cats/leak.png": "link to a file outside the folder"}
    assert len(said) == 1 and "4 symbolic link(s)" in said[0] and "follow_links=True" in said[0]

    followed, _ = _load_within(20, root, follow_links=True)
    # loops are entered never; elsewhere/secret.png is the file cats/leak.png already links to
    assert sorted(followed.ids) == ["cats/a.png", "cats/b-again.png", "cats/leak.png", "dogs/b.png"]
    assert followed.provenance["via_link"] == ["cats/b-again.png", "cats/leak.png"]


# ---- 3. decode failures are retried when their conditions change; transient ones are never cached
def test_a_refused_image_is_decoded_once_the_limit_is_raised(tmp_path):
    _png(tmp_path / "big" / "x.png", 50)
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "big" / "x.png")  # 10,000 pixels
    small = dx.embed(tmp_path / "big", max_pixels=5000, progress=False)
    assert small.stats["failed"] == 1 and "limit 5,000" in small.failures.reason[0]
    assert dx.embed(tmp_path / "big", max_pixels=5000, progress=False).stats == {"computed": 0, "cached": 1,
                                                                                 "failed": 1}
    raised = dx.embed(tmp_path / "big", progress=False)
    assert raised.stats == {"computed": 1, "cached": 0, "failed": 0} and len(raised) == 1


def test_out_of_memory_and_io_errors_are_reported_but_never_cached(tmp_path, monkeypatch):
    from dataexplore.core import samples as samples_mod
    from dataexplore.embedding import batches

    for i in range(3):
        _png(tmp_path / "imgs" / f"{i}.png", 40 * i)
    real_decode, real_open = batches.decode, open
    opened: dict[str, int] = {}

    def decode_oom(data, **kw):
        img = real_decode(data, **kw)
        if np.asarray(img)[0, 0, 0] == 40:
            raise MemoryError
        return img

    def flaky_open(path, *a, **kw):  # the read of 2.png fails (each file is read once: hashed as decoded)
        opened[str(path)] = opened.get(str(path), 0) + 1
        if str(path).endswith("2.png") and opened[str(path)] == 1:
            raise OSError(5, "Input/output error")
        return real_open(path, *a, **kw)

    with monkeypatch.context() as patched:
        patched.setattr(batches, "decode", decode_oom)
        patched.setattr(samples_mod, "open", flaky_open, raising=False)
        first = dx.embed(tmp_path / "imgs", progress=False)
    reasons = dict(zip(first.failures.id, first.failures.reason))
    assert reasons["1.png"].startswith("out of memory") and "Input/output error" in reasons["2.png"]
    assert all(count == 1 for count in opened.values())  # read once, not once to hash and once to decode
    second = dx.embed(tmp_path / "imgs", progress=False)
    assert second.stats == {"computed": 2, "cached": 1, "failed": 0}


# ---- 4. conflicting labels: latest wins and the conflict is said ------------------------------
def test_conflicting_labels_keep_the_latest_annotation_and_are_reported(tmp_path):
    tasks = [
        {"id": 1, "data": {"dx_id": "shoe-1"}, "annotations": [
            {"completed_by": {"email": "ann@x"}, "updated_at": "2026-11-20T10:00:00Z",
             "result": [{"from_name": "label", "to_name": "image", "value": {"choices": ["Sneaker"]}}]}]},
        {"id": 2, "data": {"dx_id": "shoe-1"}, "annotations": [
            {"completed_by": {"email": "bob@x"}, "updated_at": "2026-11-19T10:00:00Z",
             "result": [{"from_name": "label", "to_name": "image", "value": {"choices": ["Bag"]}}]}]},
        {"id": 3, "data": {"dx_id": "shoe-2"}, "annotations": [
            {"updated_at": "2026-11-19T10:00:00Z",
             "result": [{"from_name": "label", "to_name": "image", "value": {"choices": ["Bag"]}}]}]},
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    with pytest.warns(LabelConflictWarning, match="'shoe-1' \\(Bag vs Sneaker\\)"):
        labels = dx.import_labels(path)
    assert dict(zip(labels.id, labels.label)) == {"shoe-1": "Sneaker", "shoe-2": "Bag"}
    assert labels.set_index("id").loc["shoe-1", "annotator"] == "ann@x"
    assert labels.attrs["conflicts"] == [{"id": "shoe-1", "kept": "Sneaker", "labels": ["Bag", "Sneaker"], "rows": 2}]
    both = pd.concat([labels, labels])  # two exports of one project, concatenated: still one label each
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # resolved once: no second warning
        assert dx.apply_labels(dx.load(np.zeros((2, 4, 4), np.uint8), ids=["shoe-1", "shoe-2"]),
                               both).table["human_label"].tolist() == ["Sneaker", "Bag"]

    csv = tmp_path / "labels.csv"
    pd.DataFrame({"id": ["a", "a", "b"], "label": ["Coat", "Shirt", "Coat"],
                  "annotated_at": ["2026-11-21T09:00:00+00:00", "2026-11-20T09:00:00+00:00", ""]}).to_csv(csv,
                                                                                                   index=False)
    with pytest.warns(LabelConflictWarning, match="'a'"):
        assert dict(zip(*dx.import_labels(csv)[["id", "label"]].T.values)) == {"a": "Coat", "b": "Coat"}

    coco = {"images": [{"id": 1, "file_name": "x.png", "dx_id": "x"}], "categories": [{"id": 1, "name": "Coat"},
            {"id": 2, "name": "Shirt"}], "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "updated_at": "2026-11-22T00:00:00Z"},
            {"id": 2, "image_id": 1, "category_id": 2, "updated_at": "2026-11-01T00:00:00Z"}]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    with pytest.warns(LabelConflictWarning):
        assert dx.import_labels(tmp_path / "coco.json")["label"].tolist() == ["Coat"]


# ---- 5. no unsigned pickle is ever loaded from the projection cache ---------------------------
class _Exploit:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_planted_pickle_in_the_projection_cache_never_runs(tmp_path, cache_dir):
    import hashlib
    import pickle

    vectors = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    dx.project(vectors, method="pca")
    [npz] = list((cache_dir / "projections").glob("*.npz"))
    marker = tmp_path / "pwned"
    blob = pickle.dumps(_Exploit(str(marker)))
    npz.with_suffix(".pkl").write_bytes(blob)  # whoever can write the shared cache folder...
    with np.load(npz) as data:  # ...can also recompute any plain digest beside it
        fields = {k: data[k] for k in data.files}
    fields["model_digest"] = hashlib.blake2b(blob, digest_size=16).hexdigest()
    np.savez(npz, **fields)
    again = dx.project(vectors, method="pca")
    assert again.from_cache_
    placed = again.transform(vectors[:5])
    assert not marker.exists()
    np.testing.assert_allclose(placed, again.embedding_[:5], atol=1e-4)  # refitted, same map


def test_a_signed_model_is_reused_by_transform_without_refitting(monkeypatch):
    from dataexplore import projection

    vectors = np.random.default_rng(1).normal(size=(60, 8)).astype(np.float32)
    dx.project(vectors, method="pca")
    fits = []
    real_fit = projection._fit
    monkeypatch.setattr(projection, "_fit", lambda *a: fits.append(1) or real_fit(*a))
    cached = dx.project(vectors, method="pca")
    cached.transform(vectors[:3])
    assert cached.from_cache_ and fits == []


# ---- 6. the shell line in instructions.md is quoted --------------------------------------------
def test_the_document_root_line_is_safe_to_paste_into_a_shell(tmp_path):
    odd = tmp_path / "my images $(touch pwned)"
    for i in range(2):
        _png(odd / "imgs" / f"{i}.png", i)
    batch = dx.export_labeling(dx.load(odd / "imgs"), tmp_path / "batch", classes=["x"])
    line = next(x for x in (batch / "instructions.md").read_text().splitlines()
                if "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=" in x)
    out = subprocess.run(["bash", "-c", f'{line}\nprintf %s "$LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"'],
                         cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout == str(odd) and not (tmp_path / "pwned").exists()


# ---- 7. high-bit-depth images decode within a few bytes per pixel ------------------------------
def test_a_large_16_bit_png_decodes_in_bounded_memory(tmp_path):
    h, w = 4000, 6000  # 24 Mpx, 16-bit: 48 MB decoded
    ramp = (np.arange(w, dtype=np.uint32) * 65535 // w).astype(np.uint16)
    Image.fromarray(np.broadcast_to(ramp, (h, w)).copy()).save(tmp_path / "deep.png")
    script = f"""
import resource, sys
from dataexplore.core.images import decode
data = open({str(tmp_path / 'deep.png')!r}, 'rb').read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
img = decode(data, draft_size=int(sys.argv[1])) if sys.argv[1] != "0" else decode(data)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(img.size[0], img.size[1], img.mode, (after - before) * 1024 / ({h} * {w}))
"""
    per_pixel = {}
    for draft in (224, 0):  # as the embedding engine decodes (the model input size), and full size
        out = subprocess.run([sys.executable, "-c", script, str(draft)], capture_output=True, text=True,
                             check=True).stdout.split()
        assert out[2] == "RGB" and (out[:2] == ["6000", "4000"]) == (draft == 0)
        per_pixel[draft] = float(out[3])
    # before: 19 bytes per pixel (float64 copies); the RGB result alone takes 4 (Pillow pads RGB)
    assert per_pixel[224] < 4.5 and per_pixel[0] < 6.5, per_pixel


# ---- 8. untrusted files are one clear error ---------------------------------------------------
@pytest.fixture(scope="module")
def saved_query(tmp_path_factory):
    emb = dx.embed("fashion-mnist:test:200", progress=False, cache_dir=tmp_path_factory.mktemp("q-cache"))
    from dataexplore.core.selection import as_selection

    sel = as_selection(emb.ids, np.flatnonzero(emb.table["label"].to_numpy() == "Trouser"), embeddings=emb)
    return sel.to_query("trousers", describe=False).save(tmp_path_factory.mktemp("q") / "t.dxq"), emb


def _copy(folder: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, dest))


@pytest.mark.parametrize("change", [
    lambda m: m.update(name=["not", "text"]),
    lambda m: m.update(method=7),
    lambda m: m.pop("method"),
    lambda m: m.update(probe="oops"),
    lambda m: m["probe"].update(intercept="x"),
    lambda m: m["probe"].update(calibration={"score": [0, 1], "precision": [0.5]}),
    lambda m: m.update(concepts=[{"a": 1}]),
    lambda m: m.update(n_ids="ten"),
    lambda m: m["probe"].update(coef=["a"], method="probe") or m.update(method="text"),
])
def test_crafted_query_json_is_one_source_error(saved_query, tmp_path, change):
    folder = _copy(saved_query[0], tmp_path / "q.dxq")
    meta = json.loads((folder / "query.json").read_text())
    change(meta)
    (folder / "query.json").write_text(json.dumps(meta))
    with pytest.raises(SourceError, match="query.json"):
        dx.load_query(folder)


def test_deep_json_huge_arrays_and_nan_weights_are_refused(saved_query, tmp_path):
    folder = _copy(saved_query[0], tmp_path / "deep.dxq")
    (folder / "query.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SourceError, match="query.json"):
        dx.load_query(folder)

    folder = _copy(saved_query[0], tmp_path / "big.dxq")
    with np.load(folder / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    buf = io.BytesIO()  # a header that promises 1M vectors for the query's few ids (632 MB if real)
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (1_000_000, 128)})
    import zipfile

    with zipfile.ZipFile(folder / "arrays.npz", "w") as zf:
        zf.writestr("vectors.npy", buf.getvalue() + b"\0" * 4096)
        for k, v in arrays.items():
            if k != "vectors":
                inner = io.BytesIO()
                np.save(inner, v)
                zf.writestr(f"{k}.npy", inner.getvalue())
    with pytest.raises(SourceError, match="1,000,000 vectors for"):
        dx.load_query(folder)

    folder = _copy(saved_query[0], tmp_path / "flipped.dxq")
    np.savez_compressed(folder / "arrays.npz", **arrays)
    blob = bytearray((folder / "arrays.npz").read_bytes())
    for at in range(60, len(blob) - 200, 97):  # damage inside the compressed streams
        blob[at] ^= 0x55
    (folder / "arrays.npz").write_bytes(bytes(blob))
    with pytest.raises(SourceError, match="arrays.npz"):
        dx.load_query(folder)

    folder = _copy(saved_query[0], tmp_path / "nan.dxq")
    arrays["coef"] = np.full_like(arrays["coef"], np.nan)
    np.savez(folder / "arrays.npz", **arrays)
    with pytest.raises(SourceError, match="NaN"):
        dx.load_query(folder)


def test_the_cli_prints_one_line_for_a_crafted_query(saved_query, tmp_path):
    folder = _copy(saved_query[0], tmp_path / "c.dxq")
    (folder / "query.json").write_text(json.dumps({"format": "dataexplore.query/1", "name": 3}))
    out = subprocess.run([sys.executable, "-m", "dataexplore", "query", "show", str(folder)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("dataexplore: error: ")
    assert "'name' must be text" in out.stderr


def test_crafted_parquet_embeddings_are_one_source_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cases = {
        "strings": pa.table({"id": ["a", "b"], "embedding": [["x", "y"], ["z", "w"]]}),
        "zero-width": pa.table({"id": ["a", "b"], "embedding": pa.array([[], []], pa.list_(pa.float32()))}),
        "ragged": pa.table({"id": ["a", "b"], "embedding": pa.array([[1.0], [1.0, 2.0]], pa.list_(pa.float32()))}),
        "nan": pa.table({"id": ["a"], "embedding": pa.array([[float("nan")]], pa.list_(pa.float32()))}),
        "dup": pa.table({"id": ["a", "a"], "embedding": pa.array([[1.0], [2.0]], pa.list_(pa.float32()))}),
    }
    for name, table in cases.items():
        pq.write_table(table, tmp_path / f"{name}.parquet")
        with pytest.raises(SourceError, match=f"{name}.parquet"):
            dx.Embeddings.load(tmp_path / f"{name}.parquet")
    good = pa.table({"id": ["a"], "embedding": pa.array([[1.0]], pa.list_(pa.float32()))})
    pq.write_table(good.replace_schema_metadata({"dataexplore.model": "{not json"}), tmp_path / "meta.parquet")
    with pytest.raises(SourceError, match="metadata is not valid JSON"):
        dx.Embeddings.load(tmp_path / "meta.parquet")


def test_crafted_label_files_are_one_source_error(tmp_path):
    def task(value):
        return [{"id": 1, "data": {"dx_id": "a"},
                 "annotations": [{"result": [{"from_name": "label", "to_name": "image", "value": value}]}]}]

    cases = {
        "choices-string.json": task({"choices": "Sneaker"}),  # used to become the label "S"
        "value-list.json": task(["Sneaker"]),
        "annotations-dict.json": [{"data": {"dx_id": "a"}, "annotations": {"x": 1}}],
        "min-number.json": [{"dx_id": "a", "label": 5}],
        "coco-strings.json": {"images": ["x"], "categories": [], "annotations": []},
        "coco-name-list.json": {"images": [{"id": 1, "file_name": ["x"]}], "categories": [{"id": 1, "name": "a"}],
                                "annotations": [{"id": 1, "image_id": 1, "category_id": 1}]},
    }
    for name, doc in cases.items():
        (tmp_path / name).write_text(json.dumps(doc))
        with pytest.raises(SourceError, match=name):
            dx.import_labels(tmp_path / name)
    (tmp_path / "latin1.csv").write_bytes("id,label\na,Chaussure d\xe9t\n".encode("latin-1"))
    with pytest.raises(SourceError, match="not UTF-8"):
        dx.import_labels(tmp_path / "latin1.csv")
    (tmp_path / "latin1.json").write_bytes('[{"dx_id": "a", "label": "d\xe9t"}]'.encode("latin-1"))
    with pytest.raises(SourceError, match="latin1.json"):
        dx.import_labels(tmp_path / "latin1.json")


def test_crafted_table_sources_and_a_shared_signing_key(tmp_path, monkeypatch, caplog):
    (tmp_path / "t.csv").write_bytes("filepath,label\nx.png,d\xe9t\n".encode("latin-1"))
    with pytest.raises(SourceError, match="t.csv is not UTF-8"):
        dx.load(tmp_path / "t.csv")
    (tmp_path / "t.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(SourceError, match="t.parquet is not a readable table"):
        dx.load(tmp_path / "t.parquet")
    from dataexplore.projection import signing_key

    key = tmp_path / "shared.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)  # others could read it, and so forge signatures
    monkeypatch.setenv("DATAEXPLORE_KEY_FILE", str(key))
    with caplog.at_level("WARNING"):
        assert signing_key() is None
    assert "chmod 600" in caplog.text
    key.chmod(0o600)
    assert signing_key() == key.read_bytes()


# ---- 9. overwriting a batch never discards an annotator's work --------------------------------
def test_overwrite_refuses_a_batch_with_labels_or_foreign_files(tmp_path):
    samples = dx.load(np.zeros((3, 8, 8), np.uint8))
    folder = dx.export_labeling(samples, tmp_path / "batch", format="csv", classes=["a", "b"])
    manifest = pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)
    manifest.loc[0, "label"] = "a"
    manifest.to_csv(folder / "manifest.csv", index=False)
    with pytest.raises(DataexploreError, match="1 label\\(s\\) filled in"):
        dx.export_labeling(samples, folder, format="csv", classes=["a", "b"], overwrite=True)
    assert pd.read_csv(folder / "manifest.csv", dtype=str)["label"].iloc[0] == "a"  # still there

    fresh = dx.export_labeling(samples, tmp_path / "b2", format="csv", classes=["a"])
    (fresh / "project-1-export.json").write_text("[]")  # an annotator saved their export here
    with pytest.raises(DataexploreError, match="did not write.*project-1-export.json"):
        dx.export_labeling(samples, fresh, format="csv", classes=["a"], overwrite=True)
    assert (fresh / "project-1-export.json").exists()

    target = dx.export_labeling(samples, tmp_path / "real", format="csv", classes=["a"])
    os.symlink(target, tmp_path / "link")
    dx.export_labeling(samples, tmp_path / "link", format="csv", classes=["a"], overwrite=True)
    assert (tmp_path / "link").is_symlink() and (tmp_path / "link" / "manifest.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b2", "batch", "link", "real"]  # no .old-PID left


# ---- 10. spreadsheet formulas in labels ------------------------------------------------------
def test_formula_like_cells_are_text_in_the_manifest_and_read_back_as_written(tmp_path):
    evil = '=HYPERLINK("http://x.invalid","click")'
    samples = dx.load(np.zeros((2, 8, 8), np.uint8), ids=["+cmd|' /C calc'!A0", "ok"])
    folder = dx.export_labeling(samples, tmp_path / "b", format="csv", classes=[evil, "-1"], predictions=evil)
    import csv

    with open(folder / "manifest.csv", newline="") as fh:
        cells = [cell for row in csv.reader(fh) for cell in row]  # what a spreadsheet sees in each cell
    assert evil in {c.lstrip("'") for c in cells} and "+cmd|' /C calc'!A0" in {c.lstrip("'") for c in cells}
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@"))]
    table = pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)
    table["label"] = ["'" + evil, "''-1"]  # an annotator's text that itself starts with a quote survives too
    table.to_csv(folder / "manifest.csv", index=False)
    labels = dx.import_labels(folder)
    assert labels["label"].tolist() == [evil, "'-1"] and labels["id"].iloc[0] == "+cmd|' /C calc'!A0"


# ---- 11. the kernel accepts no larger polygon than the browser sends, and answers fast --------
def test_oversized_polygons_are_ignored_and_a_400_vertex_lasso_is_exact(caplog):
    from dataexplore.core.selection import points_in_polygon

    rng = np.random.default_rng(0)
    xy = rng.normal(size=(20_000, 2)).astype(np.float32)
    ex = dx.Explorer(xy)
    ex.send = lambda *a, **k: None
    t = np.linspace(0, 2 * np.pi, protocol_mod.MAX_POLYGON, endpoint=False)
    r = 1 + 0.3 * np.sin(7 * t) + 0.05 * rng.normal(size=len(t))
    lasso = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    browser(ex, {"type": "select", "shape": "lasso", "polygon": lasso.tolist(), "op": "replace"}, [])
    np.testing.assert_array_equal(ex.selection.indices, np.flatnonzero(points_in_polygon(xy, lasso)))
    # an independent reference: plain even-odd ray casting, point by point, on a sample of points
    sample = rng.choice(len(xy), 400, replace=False)
    edges = list(zip(lasso, np.roll(lasso, -1, axis=0)))
    chosen = set(ex.selection.indices.tolist())
    for i in sample:
        x, y = float(xy[i, 0]), float(xy[i, 1])
        inside = False
        for (ax, ay), (bx, by) in edges:
            if (ay > y) != (by > y) and x < ax + (y - ay) * (bx - ax) / (by - ay):
                inside = not inside
        assert inside == (i in chosen)
    before = ex.selection
    huge = np.concatenate([lasso, lasso[:1] * 0.5]).tolist()  # one vertex more than the front end sends
    with caplog.at_level("WARNING"):
        browser(ex, {"type": "select", "shape": "lasso", "polygon": huge, "op": "replace"}, [])
    assert ex.selection is before and "3 to 400" in caplog.text


# ---- 12. file-hash memo rows carry a checksum ---------------------------------------------------
def test_swapped_memo_rows_are_detected_and_the_files_hashed_again(tmp_path, cache_dir):
    _png(tmp_path / "m" / "a.png", 0)
    Image.fromarray((np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)).save(tmp_path / "m" / "b.png")
    truth = dx.embed(tmp_path / "m", progress=False)
    with sqlite3.connect(cache_dir / "filehashes.sqlite") as conn:
        (pa, ha), (pb, hb) = conn.execute("SELECT path, hash FROM memo ORDER BY path").fetchall()
        conn.execute("UPDATE memo SET hash = ? WHERE path = ?", (hb, pa))
        conn.execute("UPDATE memo SET hash = ? WHERE path = ?", (ha, pb))
    again = dx.embed(tmp_path / "m", progress=False)
    assert again.stats["cached"] == 2
    np.testing.assert_array_equal(again.vectors, truth.vectors)  # not each other's vectors
