"""Atomic file writes and checked reads shared by results and caches."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Callable

from .errors import SourceError


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
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
    return pq.read_table(path, columns=columns)


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
                kind: str) -> Path:
    """Build a folder with ``fill(tmp_dir)`` beside ``path``, then move it into place.

    Readers never see a half-written folder: on any error the temporary folder is removed and an
    existing ``path`` is untouched. The folder gets a marker file (:data:`MARKER`) naming its
    ``kind``; with ``overwrite=True`` an existing folder is replaced only when it carries the
    marker of the same kind, so a user's own folder is never deleted.
    """
    import json
    import shutil

    from .errors import DataexploreError

    path = check_writable(path, overwrite)
    if path.exists() and written_kind(path) != kind:
        raise DataexploreError(f"{path} exists and is not a {kind} dataexplore wrote: refusing to replace it, "
                               "choose another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name[:40]}.", suffix=".tmp"))
    old = None
    try:
        fill(tmp)
        (tmp / MARKER).write_text(json.dumps({"kind": kind}) + "\n", encoding="utf-8")
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
    if old is not None and old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    elif old is not None:
        old.unlink()
    return path


def written_kind(path: Path) -> str | None:
    """The kind of folder dataexplore wrote at ``path`` (its marker), or ``None``."""
    import json

    try:
        return json.loads((Path(path) / MARKER).read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return None


_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
