"""Atomic file writes and checked reads shared by results and caches."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Callable

from .errors import SourceError


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    Readers see the old file or the new one, never a half-written one, even if the process dies.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # the permissions a plain open() would give, not mkstemp's 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_parquet_atomic(table, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Write a :class:`pyarrow.Table` to Parquet atomically, merging ``metadata`` into its schema."""
    import pyarrow.parquet as pq

    if metadata:
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): v.encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(merged)
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def read_parquet(path: str | os.PathLike, columns: list[str]):
    """Read ``columns`` from a Parquet file, with one clear error if it is missing or malformed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"file not found: {path}")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"{path} is not a readable Parquet file ({exc})") from None
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise SourceError(f"{path} lacks column(s) {missing}; it has {schema.names}")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path} is not a readable Parquet file ({str(exc)[:200]})") from None


#: First characters that make a spreadsheet read a CSV cell as a formula (OWASP's list).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def is_missing(value: object) -> bool:
    """Whether a cell holds no value: ``None``, ``NaN``, ``pandas.NA`` or ``NaT`` (never raises).

    Examples
    --------
    >>> [is_missing(v) for v in (None, float("nan"), "", 0, "x")]
    [True, True, False, False, False]
    """
    if value is None:
        return True
    import numpy as np
    import pandas as pd

    try:
        missing = pd.isna(value)  # type: ignore[call-overload]  # isna takes any object; the stubs list types
    except (TypeError, ValueError):
        return False
    return isinstance(missing, (bool, np.bool_)) and bool(missing)  # an array or list is a value


def csv_text(value: object) -> object:
    """A CSV cell that spreadsheets show as text: strings starting like a formula get a ``'`` in front.

    ``=HYPERLINK(...)`` or ``+cmd|...`` in a label would otherwise run when a labeler opens the
    manifest in Excel or LibreOffice. Text that already starts with quotes before a formula
    character gets one more, so :func:`csv_value` gives back exactly what was written.
    Non-strings pass unchanged.

    Examples
    --------
    >>> csv_text("=1+1"), csv_text("'=1"), csv_text("Sneaker"), csv_text(3)
    ("'=1+1", "''=1", 'Sneaker', 3)
    """
    if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_START):
        return "'" + value
    return value


def csv_value(value: object) -> object:
    """The value :func:`csv_text` protected: one leading ``'`` before (quotes and) a formula
    character is removed; any other text is left as it is.

    Examples
    --------
    >>> csv_value("'=1+1"), csv_value("''=1"), csv_value("'quoted")
    ('=1+1', "'=1", "'quoted")
    """
    if isinstance(value, str) and value.startswith("'") and value.lstrip("'").startswith(FORMULA_START):
        return value[1:]
    return value


def csv_safe_frame(frame):
    """A copy of ``frame`` with :func:`csv_text` applied to every text cell and column name."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("string", "str"):
            out[col] = out[col].map(csv_text)
    out.columns = [csv_text(str(c)) for c in out.columns]
    return out


def safe_name(name: object, *, fallback: str = "unnamed", max_len: int = 100, max_bytes: int = 180) -> str:
    """``name`` (a query name, a label, a sample id) as one safe file name component.

    Letters, digits, ``-``, ``_`` and ``.`` are kept (any script's letters too); everything else,
    path separators included, becomes ``_``; no leading dots, nothing reserved on Windows, at most
    ``max_len`` characters and ``max_bytes`` bytes of UTF-8 (file systems count bytes). Distinct
    inputs can collide: callers that need uniqueness add a suffix.

    Examples
    --------
    >>> safe_name("../T-shirt/top?")
    'T-shirt_top'
    >>> safe_name("CON")
    '_CON'
    """
    text = re.sub(r"[^\w.\-]+", "_", str(name), flags=re.UNICODE).strip("._ ")[:max_len]
    while len(text.encode("utf-8")) > max_bytes:
        text = text[:-1]
    text = text.strip("._ ")
    if not text:
        return fallback
    if text.split(".")[0].upper() in _RESERVED:
        text = "_" + text
    return text


def check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """``path`` as a Path; raise :class:`DataexploreError` if it exists and ``overwrite`` is false."""
    from .errors import DataexploreError

    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise DataexploreError(f"{path} already exists: pass overwrite=True to replace it")
    return path


MARKER = ".dataexplore.json"


def replace_dir(path: str | os.PathLike, fill: Callable[[Path], None], overwrite: bool = False, *,
                kind: str, check_existing: Callable[[Path], None] | None = None) -> Path:
    """Build a folder with ``fill(tmp_dir)`` beside ``path``, then move it into place.

    Readers never see a half-written folder: on any error the temporary folder is removed and an
    existing ``path`` is untouched. The folder gets a marker file (:data:`MARKER`) naming its
    ``kind`` and every file ``fill`` wrote. With ``overwrite=True`` an existing folder is replaced
    only when it carries the marker of the same kind and holds nothing else: a file dataexplore
    did not write there (an annotator's export, notes) makes it refuse, as does
    ``check_existing(path)`` raising (e.g. a manifest with labels filled in). So a user's own
    folder or work is never deleted. A ``path`` that is a symbolic link keeps pointing where it
    did: the folder it points at is replaced.
    """
    import json
    import shutil

    from .errors import DataexploreError

    path = check_writable(path, overwrite)
    if path.is_symlink():
        path = path.resolve()
    if path.exists():
        if written_kind(path) != kind:
            raise DataexploreError(f"{path} exists and is not a {kind} dataexplore wrote: refusing to replace it, "
                                   "choose another path")
        foreign = foreign_files(path)
        if foreign:
            raise DataexploreError(f"{path} holds {len(foreign)} file(s) dataexplore did not write (e.g. "
                                   f"{foreign[0]!r}): refusing to replace it; move them away or choose another path")
        if check_existing is not None:
            check_existing(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp"))
    old = None
    try:
        fill(tmp)
        files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
        (tmp / MARKER).write_text(json.dumps({"kind": kind, "files": files}) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        if old is not None and not path.exists():
            os.replace(old, path)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None and old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    elif old is not None:
        old.unlink()
    return path


def written_kind(path: Path) -> str | None:
    """The kind of folder dataexplore wrote at ``path`` (its marker), or ``None``."""
    marker = _marker(path)
    kind = marker.get("kind") if marker else None
    return kind if isinstance(kind, str) else None


def foreign_files(path: Path) -> list[str]:
    """Files under ``path`` that its marker does not list (``[]`` for markers older than the list)."""
    marker = _marker(path) or {}
    listed = marker.get("files")
    if not isinstance(listed, list):
        return []
    known = {str(f) for f in listed} | {MARKER}
    return sorted(p.relative_to(path).as_posix() for p in Path(path).rglob("*")
                  if (p.is_file() or p.is_symlink()) and p.relative_to(path).as_posix() not in known)


def _marker(path: Path) -> dict | None:
    import json

    try:
        value = json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
