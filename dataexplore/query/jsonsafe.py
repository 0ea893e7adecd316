"""JSON for saved artefacts (queries, generation requests): times and rounded numbers written, and the
artefact's JSON file read back with its size, encoding, type and format checked."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import SourceError


def now() -> str:
    """The current UTC time, to the second, in ISO format."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def rounded(value: Any) -> Any:
    """JSON-ready copy with floats rounded to 6 significant digits and numpy scalars unwrapped."""
    if isinstance(value, dict):
        return {str(k): rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [rounded(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (np.floating, float)):
        return float(f"{float(value):.6g}")
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def read_meta(folder: Path, file: str, what: str, fmt: str, max_bytes: int, *, title: str | None = None) -> dict:
    """The JSON object ``folder/file`` of a saved ``what`` (e.g. "query"; ``title`` where a folder
    that is none is called otherwise), checked to be at most ``max_bytes``, UTF-8 JSON, an object and
    of format ``fmt``; one :class:`SourceError` otherwise."""
    meta_path = folder / file
    if not meta_path.is_file():
        raise SourceError(f"{folder} is not a saved {title or what} (no {file})")
    if meta_path.stat().st_size > max_bytes:
        raise SourceError(f"{meta_path} is {meta_path.stat().st_size:,} bytes: too large for a {what}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise SourceError(f"{meta_path} is not valid UTF-8 JSON ({str(exc)[:200]})") from None
    if not isinstance(meta, dict):
        raise SourceError(f"{meta_path} must hold a JSON object, got {type(meta).__name__}")
    if meta.get("format") != fmt:
        raise SourceError(f"{folder}: unknown {what} format {meta.get('format')!r} (this version reads {fmt})")
    return meta
