"""One label per sample when an export holds several: the latest annotation wins, conflicts are said.

A sample can come back more than once: two Label Studio tasks for the same image, a CSV with a
repeated row, a COCO file with two annotations for one image, two exports concatenated. The rule,
everywhere labels are read or applied:

- the row with the latest ``annotated_at`` wins (times are parsed, so ``...Z`` and ``+00:00`` compare
  right); rows without a readable time count as older than any row with one; among rows with equal
  times the later one in the file wins;
- when the rows of one sample disagree on the label, that is a *conflict*: every conflict is listed
  in ``labels.attrs["conflicts"]`` (a list of ``{"id", "kept", "labels" (in time order), "rows"}``;
  ``pd.DataFrame(labels.attrs["conflicts"])`` makes it a table) and a :class:`LabelConflictWarning`
  names the samples, so no disagreement between annotators is resolved silently.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd


class LabelConflictWarning(UserWarning):
    """Several labels disagreed for the same sample; the latest was kept (see :mod:`.conflicts`)."""


def annotation_times(values: pd.Series) -> pd.Series:
    """``annotated_at`` values as UTC timestamps (``NaT`` where missing or unreadable)."""
    text = values.astype(object).where(values.notna(), None).map(lambda v: None if v is None else str(v))
    return pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")


def latest_per_sample(labels: pd.DataFrame, where: str = "labels") -> pd.DataFrame:
    """One row per ``id``: the latest annotation; conflicts in ``.attrs["conflicts"]`` and a warning.

    Parameters
    ----------
    labels : pandas.DataFrame
        ``id``, ``label`` and optionally ``annotated_at`` (other columns are kept).
    where : str
        What the labels came from, for the warning (a file name).

    Returns
    -------
    pandas.DataFrame
        The kept rows, in the order of their first appearance.

    Examples
    --------
    >>> t = pd.DataFrame({"id": ["a", "a"], "label": ["Sneaker", "Bag"],
    ...                   "annotated_at": ["2026-11-02T10:00:00Z", "2026-11-01T09:00:00Z"]})
    >>> import warnings
    >>> with warnings.catch_warnings(record=True):
    ...     out = latest_per_sample(t)
    >>> out["label"].tolist(), out.attrs["conflicts"][0]["labels"]
    (['Sneaker'], ['Bag', 'Sneaker'])
    """
    frame = labels.reset_index(drop=True)
    if not len(frame) or not frame["id"].duplicated().any():
        frame.attrs["conflicts"] = []
        return frame
    times = annotation_times(frame["annotated_at"]) if "annotated_at" in frame.columns else \
        pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    known = times.notna().to_numpy()
    naive = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[ns]")
    stamp = np.where(known, naive.astype(np.int64), np.iinfo(np.int64).min)
    order = np.lexsort((np.arange(len(frame)), stamp, frame["id"].astype(str).to_numpy()))
    ids = frame["id"].astype(str).to_numpy()[order]
    last = np.r_[ids[1:] != ids[:-1], True]  # the last row of each id in (id, time, file order)
    kept_rows = np.sort(order[last])
    out = frame.iloc[kept_rows].reset_index(drop=True)
    conflicts = []
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    for a, b in zip(starts, np.r_[starts[1:], len(ids)]):
        if b - a < 2:
            continue
        rows = order[a:b]
        seen = [str(v) for v in frame["label"].iloc[rows]]
        if len(set(seen)) > 1:
            conflicts.append({"id": ids[a], "kept": seen[-1], "labels": seen, "rows": int(b - a)})
    out.attrs["conflicts"] = conflicts  # plain values, so frames with them still concatenate
    if conflicts:
        named = ", ".join(f"{c['id']!r} ({' vs '.join(dict.fromkeys(c['labels']))})" for c in conflicts[:3])
        more = f" and {len(conflicts) - 3} more" if len(conflicts) > 3 else ""
        warnings.warn(f"{where}: {len(conflicts)} sample(s) have conflicting labels: {named}{more}; the latest "
                      "annotation of each was kept (see labels.attrs['conflicts'])", LabelConflictWarning,
                      stacklevel=3)
    return out
