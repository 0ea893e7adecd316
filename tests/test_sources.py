import functools
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dataexplore as dx
from dataexplore.core.errors import SourceError
from dataexplore.sources import datasets


def test_folder_is_recursive_with_stable_ids_and_folder_labels(photo_folder):
    s = dx.load(photo_folder)
    assert list(s.ids) == ["animals/chelsea.jpg", "people/astronaut.jpg", "people/camera.png",
                           "things/coffee.png", "things/rocket.jpg"]
    assert list(s.table.label) == ["animals", "people", "people", "things", "things"]
    assert all(Path(p).is_file() for p in s.table.filepath)
    assert "label" not in dx.load(photo_folder, label_from_folder=False).table


def test_folder_without_images_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(SourceError, match="no image files"):
        dx.load(tmp_path)


def test_list_of_paths_and_dataframe_keep_metadata(photo_folder):
    paths = sorted(str(p) for p in photo_folder.rglob("*.jpg"))
    s = dx.load(paths)
    assert list(s.ids) == paths
    frame = pd.DataFrame({"filepath": paths, "weather": ["sun", "rain", "fog"], "id": ["a", "b", "c"]})
    s = dx.load(frame)
    assert list(s.ids) == ["a", "b", "c"] and list(s.table.weather) == ["sun", "rain", "fog"]


def test_csv_and_parquet_tables_resolve_relative_paths(photo_folder, tmp_path):
    frame = pd.DataFrame({"filepath": ["animals/chelsea.jpg", "things/rocket.jpg"], "split": ["a", "b"]})
    frame.to_csv(photo_folder / "index.csv", index=False)
    frame.to_parquet(photo_folder / "index.parquet")
    for name in ("index.csv", "index.parquet"):
        s = dx.load(photo_folder / name)
        assert s.read(0) == (photo_folder / "animals/chelsea.jpg").read_bytes()
        assert list(s.table.split) == ["a", "b"]


def test_arrays_gray_and_color(photos):
    gray = np.stack([photos["camera"][:64, :64]] * 3)
    color = np.stack([photos["coffee"][:32, :32]] * 2)
    assert list(dx.load(gray).ids) == ["0", "1", "2"]
    s = dx.load(color, ids=["x", "y"])
    assert list(s.ids) == ["x", "y"] and s.read(1).shape == (32, 32, 3)
    with pytest.raises(SourceError, match="uint8"):
        dx.load(color.astype(np.float32))


def test_duplicate_ids_name_the_offending_sample(photo_folder):
    frame = pd.DataFrame({"id": ["a", "b", "a"], "filepath": ["x.jpg", "y.jpg", "z.jpg"]})
    with pytest.raises(SourceError, match=r"duplicate sample id 'a' at rows 0, 2"):
        dx.load(frame)


def test_mismatched_lengths_are_one_clear_error():
    with pytest.raises(SourceError, match="mismatched lengths: 2 ids for 3 images"):
        dx.load(np.zeros((3, 8, 8), np.uint8), ids=["a", "b"])
    with pytest.raises(SourceError, match="mismatched lengths"):
        dx.load(["a.jpg", "b.jpg"], ids=["only-one"])


def test_unknown_source_explains_what_is_accepted(tmp_path):
    with pytest.raises(SourceError, match="source not found.*fashion-mnist"):
        dx.load(tmp_path / "nope")
    with pytest.raises(SourceError, match="fashion-mnist\\[:train\\|test\\[:N\\]\\]"):
        dx.load("fashion-mnist:validation")


def test_fashion_mnist_spec_reads_first_n_in_file_order():
    s = dx.load("fashion-mnist:test:50")
    assert len(s) == 50 and s.images.shape == (50, 28, 28)
    assert s.ids[0] == "test-00000" and s.ids[-1] == "test-00049"
    full = dx.datasets.fashion_mnist("test")
    assert len(full) == 10000
    np.testing.assert_array_equal(full.images[:50], s.images)
    # the first test image of Fashion-MNIST is an ankle boot, the second a pullover
    assert list(s.table.label[:2]) == ["Ankle boot", "Pullover"]
    assert set(full.table.label) == set(datasets.FASHION_MNIST_CLASSES)
    assert len(dx.load("fashion-mnist:train:7")) == 7 and dx.load("fashion-mnist:train:7").ids[0] == "train-00000"


def test_fashion_mnist_downloads_and_verifies_when_not_installed(tmp_path, monkeypatch):
    """The real download path, served from loopback: files land in data_dir and are checked."""
    served = tmp_path / "served"
    served.mkdir()
    for name in datasets._FILES:
        shutil.copy(Path(datasets.FASHION_MNIST_DIRS[0]) / name, served / name)
    (served / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b broken")  # a tampered file
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(datasets, "FASHION_MNIST_URL", f"http://127.0.0.1:{server.server_port}/")
        monkeypatch.setattr(datasets, "FASHION_MNIST_DIRS", ())
        target = tmp_path / "data"
        with pytest.raises(SourceError):
            datasets.fashion_mnist("test", n=5, data_dir=target)
        assert not (target / "t10k-labels-idx1-ubyte.gz").exists()  # nothing half-written is kept
        shutil.copy(Path("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"), served)
        s = datasets.fashion_mnist("test", n=5, data_dir=target)
        assert len(s) == 5 and (target / "t10k-images-idx3-ubyte.gz").is_file()
    finally:
        server.shutdown()
        server.server_close()


class _FakeView:
    """The slice of FiftyOne's collection API that dataexplore reads (ids, paths, labels)."""

    __module__ = "fiftyone.core.view"

    def __init__(self, paths):
        self.paths = paths
        self.dataset_name = "photos"

    def values(self, field):
        return {"id": [f"64f{i:021x}" for i in range(len(self.paths))], "filepath": self.paths,
                "ground_truth.label": ["cat"] * len(self.paths)}[field]

    def get_field_schema(self):
        return {"id": None, "filepath": None, "ground_truth": None}


def test_fiftyone_collection_becomes_samples_with_its_ids(photo_folder):
    paths = [str(p) for p in sorted(photo_folder.rglob("*.jpg"))]
    s = dx.load(_FakeView(paths))
    assert list(s.table.filepath) == paths and s.ids[0] == "64f" + "0" * 21
    assert set(s.table.label) == {"cat"} and s.name == "fiftyone:photos"
