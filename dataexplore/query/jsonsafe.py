"""JSON-ready values for saved artefacts (queries, generation requests): times and rounded numbers."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np


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
