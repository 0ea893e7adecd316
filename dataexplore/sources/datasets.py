"""Built-in datasets: Fashion-MNIST, read from the Debian package or downloaded once.

Source strings: ``"fashion-mnist"`` (test split), ``"fashion-mnist:train"``,
``"fashion-mnist:test:2000"`` (the first 2000 test images in file order).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import SourceError

#: Class names in label order, as published with the dataset.
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
#: The same classes in plain words, for text prompts (what ``fashion-tiny`` was trained on).
FASHION_MNIST_PHRASES = (
    "t-shirt", "trousers", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)
FASHION_MNIST_URL = "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
#: Folders searched before downloading; the Debian package ``dataset-fashion-mnist`` fills the first.
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
# file name -> (sha256 of the *decompressed* IDX payload, payload bytes): checked after a download
_FILES = {
    "train-images-idx3-ubyte.gz": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47040016),
    "train-labels-idx1-ubyte.gz": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60008),
    "t10k-images-idx3-ubyte.gz": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7840016),
    "t10k-labels-idx1-ubyte.gz": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10008),
}
_SPEC = re.compile(r"^fashion-mnist(?::(?P<split>[a-z]+))?(?::(?P<n>\d+))?$")


def is_dataset_spec(text: str) -> bool:
    """True if ``text`` names a built-in dataset (it may still be malformed)."""
    return text == "fashion-mnist" or text.startswith("fashion-mnist:")


def load_dataset(spec: str):
    """Load a built-in dataset from its source string, e.g. ``"fashion-mnist:test:2000"``."""
    m = _SPEC.match(spec)
    if not m:
        raise SourceError(f"bad dataset source {spec!r}: use 'fashion-mnist[:train|test[:N]]'")
    n = m.group("n")
    return fashion_mnist(m.group("split") or "test", n=int(n) if n is not None else None)


def fashion_mnist(split: str = "test", n: int | None = None, *, data_dir: str | os.PathLike | None = None):
    """Fashion-MNIST (70,000 28×28 grayscale clothing images, 10 classes, MIT licence).

    Reads the Debian package's files (``apt-get install dataset-fashion-mnist``) when present,
    then ``data_dir`` / ``$DATAEXPLORE_FASHION_MNIST_DIR`` / the user cache, and otherwise
    downloads the four files once into the user cache (checked against known checksums).

    Parameters
    ----------
    split : {"train", "test"}
    n : int, optional
        Keep only the first ``n`` images of the split, in file order.
    data_dir : path, optional
        Folder holding (or receiving) the ``*-ubyte.gz`` files.

    Returns
    -------
    Samples
        In-memory ``N×28×28`` images; ids ``"test-00000"`` ...; columns ``label`` (class name),
        ``label_id`` and ``split``.

    Examples
    --------
    >>> import dataexplore as dx
    >>> s = dx.datasets.fashion_mnist("test", n=100)  # doctest: +SKIP
    >>> s.images.shape  # doctest: +SKIP
    (100, 28, 28)
    """
    from ..core.samples import Samples

    if split not in ("train", "test"):
        raise SourceError(
            f"Fashion-MNIST split must be 'train' or 'test', got {split!r} (use 'fashion-mnist[:train|test[:N]]')"
        )
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(_locate(f"{prefix}-images-idx3-ubyte.gz", data_dir))
    labels = _read_idx(_locate(f"{prefix}-labels-idx1-ubyte.gz", data_dir))
    if n is not None:
        if n < 1:
            raise SourceError(f"number of images must be >= 1, got {n}")
        images, labels = images[:n], labels[:n]
    table = pd.DataFrame(
        {
            "id": [f"{split}-{i:05d}" for i in range(len(labels))],
            "label": pd.Categorical.from_codes(labels.astype(np.int64), pd.Index(FASHION_MNIST_CLASSES)),
            "label_id": labels.astype(np.int64),
            "split": split,
        }
    )
    table["label"] = table["label"].astype(str)
    name = f"fashion-mnist:{split}" + (f":{n}" if n is not None else "")
    return Samples(table, images=images, name=name)


def _cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("dataexplore")) / "datasets" / "fashion-mnist"


def _locate(filename: str, data_dir) -> Path:
    folders = [Path(d) for d in FASHION_MNIST_DIRS]
    if data_dir is not None:
        folders.insert(0, Path(data_dir))
    if os.environ.get("DATAEXPLORE_FASHION_MNIST_DIR"):
        folders.insert(0, Path(os.environ["DATAEXPLORE_FASHION_MNIST_DIR"]))
    folders.append(_cache_dir())
    for folder in folders:
        if (folder / filename).is_file():
            return folder / filename
    target = Path(data_dir) if data_dir is not None else _cache_dir()
    return download(FASHION_MNIST_URL + filename, target / filename)


def download(url: str, dest: Path, *, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` atomically and verify it against the known checksum."""
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        expected = _FILES.get(dest.name)
        if expected is not None:
            try:
                payload = gzip.decompress(Path(tmp).read_bytes())
            except (OSError, EOFError, zlib.error):
                payload = b""
            if (hashlib.sha256(payload).hexdigest(), len(payload)) != expected:
                raise SourceError(f"downloaded {url} does not match the known checksum; not kept")
        os.replace(tmp, dest)
    except OSError as exc:
        raise SourceError(
            f"could not download {url} ({exc}); install the Debian package 'dataset-fashion-mnist' "
            "or put the four Fashion-MNIST .gz files in $DATAEXPLORE_FASHION_MNIST_DIR"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format): big-endian header, then uint8 data."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise SourceError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) != offset + int(np.prod(shape)):
        raise SourceError(f"{path} is truncated: header says {shape}, file has {len(raw) - offset} bytes")
    return np.frombuffer(bytearray(raw), dtype=np.uint8, offset=offset).reshape(shape)
