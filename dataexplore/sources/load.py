"""Every image source into :class:`~dataexplore.core.samples.Samples`: folders, tables, path lists,
arrays, FiftyOne collections and dataset strings (``"fashion-mnist:test:2000"``)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.crops import crops
from ..core.errors import SourceError
from ..core.io import is_missing
from ..core.objects import Objects
from ..core.samples import IMAGE_EXTENSIONS, Samples


def load(source: Any, *, ids: Sequence[str] | None = None, label_from_folder: bool = True,
         follow_links: bool = False) -> Samples:
    """Turn any supported image source into :class:`Samples`.

    Parameters
    ----------
    source
        One of:

        - a folder path: every image file below it (recursive, sorted); ids are the paths
          relative to the folder; ``label`` is the parent folder name (``label_from_folder``);
          symbolic links: see ``follow_links``;
        - a ``.csv`` / ``.parquet`` path: a table with a ``filepath`` column (relative paths
          are resolved against the table's folder);
        - ``"fashion-mnist[:train|test[:N]]"``: the first N images of that split, with labels;
        - a list of image paths: ids are the paths as given;
        - a :class:`pandas.DataFrame` with a ``filepath`` column (an ``id`` column is used if present);
        - a uint8 array ``N×H×W`` or ``N×H×W×C``: ids ``"0" .. "N-1"`` unless ``ids`` is given;
        - a FiftyOne dataset or view: sample ids, ``filepath`` and ``ground_truth`` labels;
        - an existing :class:`Samples` (returned as is);
        - :class:`~dataexplore.core.objects.Objects`: the crops of its boxes
          (:func:`~dataexplore.core.crops.crops`, so ``dx.embed(objects)`` embeds objects).
    ids : sequence of str, optional
        Ids for array or path-list sources (must be unique and of the same length).
    label_from_folder : bool
        For folders: take ``label`` from each image's parent folder (when images sit in subfolders).
    follow_links : bool
        For folders. ``False`` (default): links to folders are not entered, and links to files are
        kept only when the file they point at lies inside the folder; every link left out is listed
        in ``samples.provenance["skipped_links"]`` and a warning says how many. ``True``: links are
        followed wherever they point, each real folder is entered once (a link back to a folder
        above cannot loop) and a file in a linked folder that was already found elsewhere is not
        added again; links to single files always count as samples of their own. Either way
        ``samples.provenance["via_link"]`` lists the ids of files that came through a link.

    Returns
    -------
    Samples

    Raises
    ------
    dataexplore.SourceError
        If the source does not exist, is empty, has duplicate ids or mismatched lengths.

    Examples
    --------
    >>> import dataexplore as dx
    >>> s = dx.load("fashion-mnist:test:100")  # doctest: +SKIP
    >>> s.table.label.value_counts()  # doctest: +SKIP
    """
    if isinstance(source, Objects):  # boxes in images: their crops (core.crops)
        return crops(source)
    if isinstance(source, Samples):
        return source
    if is_fiftyone(source):
        return _from_fiftyone(source)
    if isinstance(source, pd.DataFrame):
        return _from_frame(source, base=None, name="DataFrame")
    if isinstance(source, np.ndarray):
        table = pd.DataFrame({"id": _ids_or_range(ids, len(source))})
        return Samples(table, images=source, name=f"array{tuple(source.shape)}")
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        from .datasets import is_dataset_spec, load_dataset

        if is_dataset_spec(text):
            return load_dataset(text)
        path = Path(text).expanduser()
        if path.is_dir():
            return _from_folder(path, label_from_folder, follow_links)
        if path.suffix.lower() in (".csv", ".parquet", ".pq"):
            if not path.exists():
                raise SourceError(f"table not found: {path}")
            return _from_frame(_read_table(path), base=path.parent, name=str(path))
        if not path.exists():
            raise SourceError(
                f"source not found: {text!r} (expected a folder, a .csv/.parquet table, "
                "or 'fashion-mnist[:train|test[:N]]')"
            )
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return _from_paths([text], ids, name=text)
        raise SourceError(f"unsupported source file {text!r}: expected a folder or a .csv/.parquet table")
    if isinstance(source, (list, tuple)):
        if len(source) and not all(isinstance(p, (str, os.PathLike)) for p in source):
            raise SourceError("a list source must contain only file paths")
        return _from_paths([os.fspath(p) for p in source], ids, name=f"{len(source)} paths")
    raise SourceError(f"unsupported source type {type(source).__name__}")


def _from_folder(root: Path, label_from_folder: bool, follow_links: bool = False) -> Samples:
    found, skipped = _scan_folder(root, follow_links)
    if not found:
        raise SourceError(f"no image files found under {root}"
                          + (f" ({len(skipped)} symbolic links skipped; pass follow_links=True to follow them)"
                             if skipped else ""))
    if skipped:
        warnings.warn(f"{len(skipped)} symbolic link(s) under {root} were not followed (e.g. {skipped[0]['path']!r}: "
                      f"{skipped[0]['reason']}); pass follow_links=True to follow them, "
                      "samples.provenance['skipped_links'] lists them", UserWarning, stacklevel=3)
    rel = [r for r, _, _ in found]
    table = pd.DataFrame({"id": rel, "filepath": [str(root / r) for r in rel]})
    if label_from_folder and any("/" in r for r in rel):
        table["label"] = [r.rsplit("/", 2)[-2] if "/" in r else None for r in rel]
    provenance = {"kind": "folder", "root": str(root), "follow_links": follow_links,
                  "via_link": [r for r, _, linked in found if linked], "skipped_links": skipped}
    return Samples(table, name=str(root), provenance=provenance)


def _scan_folder(root: Path, follow_links: bool) -> tuple[list[tuple[str, str, bool]], list[dict]]:
    """Image files under ``root``: (relative path, real path, reached through a link), sorted by
    relative path; and the links left out with the reason.

    Without ``follow_links`` no folder link is entered and a file link counts only when its target
    is inside ``root``. With it, each real folder is entered once (so links to ``..`` cannot loop)
    and a file inside a linked folder is dropped when the same real file was found already.
    """
    real_root = os.path.realpath(root)
    entered = {real_root}
    files: list[tuple[str, str, bool, bool]] = []  # path, real path, linked, inside a linked folder
    skipped: list[dict] = []
    stack = [(str(root), "", False)]
    while stack:
        folder, prefix, through_link = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:  # an unreadable folder holds nothing we can read
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{prefix}{entry.name}"
            is_link = entry.is_symlink()
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                real = os.path.realpath(entry.path)
                if is_link and not follow_links:
                    skipped.append({"path": rel, "reason": "link to a folder"})
                elif is_link and (real in entered or _is_within(os.path.realpath(folder), real)):
                    skipped.append({"path": rel, "reason": "link to a folder already scanned or above it (a loop)"})
                else:
                    entered.add(real)
                    subfolders.append((entry.path, f"{rel}/", through_link or is_link))
                continue
            if Path(entry.name).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            real = os.path.realpath(entry.path)
            if is_link and not os.path.exists(real):
                skipped.append({"path": rel, "reason": "broken link"})
                continue
            if is_link and not follow_links and not _is_within(real, real_root):
                skipped.append({"path": rel, "reason": "link to a file outside the folder"})
                continue
            files.append((rel, real, through_link or is_link, through_link))
        stack.extend(reversed(subfolders))
    files.sort(key=lambda f: f[0].split("/"))  # by path components, as Path objects sort
    # a file found inside a linked folder is dropped when the same real file is found otherwise (or
    # earlier in a linked folder): folder links are how copies and loops arise. File links are
    # deliberate (one image filed under two classes) and each stays a sample of its own.
    own = {real for _, real, _, in_linked_folder in files if not in_linked_folder}
    seen: set[str] = set()
    out = []
    for rel, real, linked, in_linked_folder in files:
        if in_linked_folder and (real in own or real in seen):
            continue
        seen.add(real)
        out.append((rel, real, linked))
    return out, skipped


def _is_within(path: str, folder: str) -> bool:
    """Whether real path ``path`` is ``folder`` or lies below it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet table source, with one :class:`SourceError` for a file that cannot be read."""
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path, encoding="utf-8")
        return pd.read_parquet(path)
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SourceError(f"{path} is not a readable CSV file ({str(exc)[:200]})") from None
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise SourceError(f"{path} is not a readable table ({str(exc)[:200]})") from None


def _from_paths(paths: list[str], ids: Sequence[str] | None, name: str) -> Samples:
    if ids is not None and len(ids) != len(paths):
        raise SourceError(f"mismatched lengths: {len(ids)} ids for {len(paths)} paths")
    table = pd.DataFrame({"id": list(ids) if ids is not None else paths, "filepath": paths})
    return Samples(table, name=name)


def _from_frame(frame: pd.DataFrame, base: Path | None, name: str) -> Samples:
    if "filepath" not in frame.columns:
        raise SourceError(f"table {name} needs a 'filepath' column; it has {list(frame.columns)}")
    table = frame.copy()
    if base is not None:
        table["filepath"] = [
            p if is_missing(p) or os.path.isabs(str(p)) else str(base / str(p)) for p in table["filepath"]
        ]
    if "id" not in table.columns:
        table.insert(0, "id", frame["filepath"].astype(str))
    return Samples(table, name=name)


def is_fiftyone(obj: Any) -> bool:
    return type(obj).__module__.startswith("fiftyone.") and hasattr(obj, "values")


def _from_fiftyone(view: Any) -> Samples:
    """Read ids, file paths and classification labels from a FiftyOne collection (lazy import)."""
    ids = view.values("id")
    table = pd.DataFrame({"id": ids, "filepath": view.values("filepath")})
    schema = view.get_field_schema()
    label_field = next((f for f in ("ground_truth", "label") if f in schema), None)
    if label_field is not None:
        try:
            table["label"] = view.values(f"{label_field}.label")
        except Exception:  # not a Classification field: keep the samples, skip labels
            pass
    name = getattr(view, "dataset_name", None) or getattr(view, "name", "fiftyone")
    return Samples(table, name=f"fiftyone:{name}")


def _ids_or_range(ids: Sequence[str] | None, n: int) -> list[str]:
    if ids is None:
        return [str(i) for i in range(n)]
    if len(ids) != n:
        raise SourceError(f"mismatched lengths: {len(ids)} ids for {n} images")
    return [str(i) for i in ids]


