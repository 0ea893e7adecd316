"""One samples table for every kind of image source.

:func:`dataexplore.load` (in :mod:`dataexplore.sources`) turns a folder, a list of paths, a
CSV/Parquet file, a DataFrame, an array of pixels, a FiftyOne dataset or view, or a short source
string (``"fashion-mnist:test:2000"``) into :class:`Samples`: a table with one row per image, a
stable string ``id`` per row, and any metadata columns the source carried (``label``,
``filepath``, ...).
"""

from __future__ import annotations

import os
from typing import Sequence, cast

import numpy as np
import pandas as pd

from .errors import SourceError
from .images import DecodeError
from .io import is_missing

#: File extensions picked up when scanning a folder.
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .png .bmp .gif .webp .tif .tiff .ppm .pgm .pbm .pnm .ico".split()
)


class Samples:
    """A table of images with stable string ids.

    Build one with :func:`load`. Each row is one image, found either at ``table.filepath``
    or, for in-memory sources, in ``images[row]``.

    Parameters
    ----------
    table : pandas.DataFrame
        Must have a unique string column ``id``; a ``filepath`` column unless ``images`` is given.
    images : numpy.ndarray, optional
        ``N×H×W`` or ``N×H×W×C`` uint8 pixels aligned to the rows of ``table``.
    name : str
        A short description of where the samples came from.
    provenance : dict, optional
        How the rows were found. Folder sources record ``root``, ``follow_links``, ``via_link``
        (ids of the files reached through a symbolic link) and ``skipped_links`` (links left out,
        each ``{"path", "reason"}``).

    Examples
    --------
    >>> import numpy as np, dataexplore as dx
    >>> s = dx.load(np.zeros((3, 8, 8), np.uint8))
    >>> list(s.ids)
    ['0', '1', '2']
    """

    def __init__(self, table: pd.DataFrame, images: np.ndarray | None = None, name: str = "",
                 provenance: dict | None = None):
        if "id" not in table.columns:
            raise SourceError("a samples table needs an 'id' column")
        table = table.reset_index(drop=True).copy()
        table["id"] = table["id"].astype(str)
        check_unique_ids(table["id"])
        if images is None:
            if "filepath" not in table.columns:
                raise SourceError("a samples table needs a 'filepath' column or in-memory images")
            table["filepath"] = table["filepath"].map(lambda p: None if is_missing(p) else os.fspath(p))
        else:
            images = _check_images(images)
            if len(images) != len(table):
                raise SourceError(
                    f"mismatched lengths: {len(images)} images but {len(table)} table rows"
                )
        self.table = table
        self.images = images
        self.name = name
        self.provenance = dict(provenance or {})

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        kind = "in-memory images" if self.images is not None else "files"
        cols = [c for c in self.table.columns if c != "id"]
        return f"<Samples {self.name!r}: {len(self)} {kind}, columns {cols}>"

    @property
    def ids(self) -> np.ndarray:
        """Sample ids as an object array of str, in row order."""
        return self.table["id"].to_numpy(dtype=object)

    @property
    def labels(self) -> pd.Series | None:
        """The ``label`` column, if the source had labels."""
        return self.table["label"] if "label" in self.table.columns else None

    def read(self, row: int) -> bytes | np.ndarray:
        """Raw content of one image: file bytes, or the pixel array for in-memory sources.

        Raises
        ------
        dataexplore.core.images.DecodeError
            If the file is missing or unreadable (the reason is the message; an I/O error is
            ``transient``, never cached).
        """
        if self.images is not None:
            return self.images[row]
        path = cast("str | os.PathLike[str] | None", self.table.at[row, "filepath"])
        if path is None:
            raise DecodeError("no file path")
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except FileNotFoundError:  # transient: it may be back (or its key unknown) on the next run
            raise DecodeError("missing file", transient=True) from None
        except IsADirectoryError:
            raise DecodeError("path is a directory", transient=True) from None
        except OSError as exc:
            raise DecodeError(f"unreadable file ({exc.strerror or exc})", transient=True) from None

    def subset(self, rows: Sequence[int] | np.ndarray) -> "Samples":
        """A new :class:`Samples` with the given rows, in the given order."""
        rows = np.asarray(rows, dtype=np.int64)
        images = None if self.images is None else self.images[rows]
        return Samples(self.table.iloc[rows], images=images, name=self.name, provenance=self.provenance)

    @classmethod
    def concat(cls, parts: Sequence["Samples"], name: str = "") -> "Samples":
        """One table of several sources (e.g. train and production) for one map.

        Columns are united (missing values where a source lacks a column); ids must stay unique.
        All parts hold files, or all hold in-memory images of one shape.
        """
        parts = list(parts)
        if not parts:
            raise SourceError("nothing to concatenate")
        in_memory = {p.images is not None for p in parts}
        if len(in_memory) > 1:
            raise SourceError("cannot combine in-memory images with image files in one table")
        images = None
        if in_memory == {True}:
            arrays = [p.images for p in parts if p.images is not None]
            shapes = {a.shape[1:] for a in arrays}
            if len(shapes) > 1:
                raise SourceError(f"in-memory images of different shapes {sorted(shapes)} cannot be combined")
            images = np.concatenate(arrays)
        table = pd.concat([p.table for p in parts], ignore_index=True)
        provenance = {"kind": "concat", "parts": [p.provenance for p in parts]} if any(p.provenance for p in parts) \
            else {}
        return cls(table, images=images, name=name or " + ".join(p.name for p in parts if p.name),
                   provenance=provenance)


def _check_images(images: np.ndarray) -> np.ndarray:
    if images.dtype != np.uint8:
        raise SourceError(f"in-memory images must be uint8, got {images.dtype}")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3, 4)):
        raise SourceError(f"in-memory images must be N×H×W or N×H×W×C (C in 1, 3, 4), got {images.shape}")
    return images


def check_unique_ids(ids: pd.Series, what: str = "sample") -> None:
    """Raise :class:`SourceError` naming the first duplicated id and its rows (``what``: sample, object)."""
    dup = ids.duplicated(keep=False)
    if dup.any():
        first = ids[dup].iloc[0]
        rows = np.flatnonzero((ids == first).to_numpy())
        raise SourceError(
            f"duplicate {what} id {first!r} at rows {', '.join(map(str, rows[:5]))} "
            f"({int(ids.duplicated().sum())} duplicate ids in all); ids must be unique"
        )
