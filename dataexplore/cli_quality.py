"""The data-quality commands of the ``dataexplore`` command line: ``duplicates``, ``label-errors``, ``sample``.

Each reads a source (anything ``dataexplore embed`` accepts, or its Parquet output), runs the analysis
of the same name and writes a CSV (text cells made safe for spreadsheets). Errors are
:class:`~dataexplore.DataexploreError`, printed by :func:`dataexplore.cli.main` as one line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .core.errors import DataexploreError
from .core.io import csv_safe_frame


def _check_out(path: Path, overwrite: bool, suffix: str = ".csv") -> None:
    if path.suffix.lower() != suffix:
        raise DataexploreError(f"--out must be a {suffix} file, got {path}")
    if path.exists() and not overwrite:
        raise DataexploreError(f"{path} exists; pass --overwrite to replace it")


def _table(path: Path, what: str) -> pd.DataFrame:
    """A user's .csv/.parquet table with an ``id`` column, indexed by id (as text)."""
    if not path.is_file():
        raise DataexploreError(f"{what}: no such file {path}")
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path, dtype={"id": str})
    elif path.suffix.lower() in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    else:
        raise DataexploreError(f"{what} must be a .csv or .parquet file, got {path}")
    if "id" not in frame.columns:
        raise DataexploreError(f"{what} {path} has no 'id' column (columns: {list(frame.columns)[:10]})")
    frame["id"] = frame["id"].astype(str)
    dup = frame["id"].duplicated()
    if dup.any():
        raise DataexploreError(f"{what} {path} has duplicate ids, e.g. {frame['id'][dup].iloc[0]!r}")
    return frame.set_index("id")


def _load(source: Any, args) -> Any:
    """Embeddings of ``source`` (through the cache), with ``--metadata`` columns joined to their table."""
    from .core.embeddings import Embeddings
    from .core.samples import Samples
    from .embedding.inputs import as_analysed

    emb = as_analysed(source, args.model, pretrained=args.pretrained, cache_dir=args.cache_dir,
                      progress=not args.quiet)
    if args.metadata is None:
        return emb
    extra = _table(args.metadata, "--metadata")
    table = emb.table.copy()
    table = table.drop(columns=[c for c in extra.columns if c in table.columns])
    joined = table.join(extra, on="id")
    missing = joined[extra.columns[0]].isna().sum() if len(extra.columns) else 0
    if len(extra.columns) and missing == len(joined):
        raise DataexploreError(f"--metadata {args.metadata}: none of its ids is a sample id of {source}")
    images = getattr(emb.samples, "images", None)
    if images is None and "filepath" not in joined.columns:  # vectors from a Parquet file: no images to read
        joined["filepath"] = None
    samples = Samples(joined.reset_index(drop=True), images=None if images is None else images[emb.rows],
                      name=getattr(emb.samples, "name", "") or str(source))
    return Embeddings(ids=emb.ids, vectors=emb.vectors, rows=None, samples=samples, model=emb.model)


def _write(frame: pd.DataFrame, path: Path, overwrite: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    csv_safe_frame(frame).to_csv(path, index=False)


def duplicates(args) -> int:
    from .analysis.duplicates import duplicates as find

    _check_out(args.out, args.overwrite)
    if args.keep is not None:
        _check_out(args.keep, args.overwrite)
    data = _load(args.source, args)
    other = _load(args.other, args) if args.other is not None else None
    result = find(data, other, threshold=args.threshold, progress=not args.quiet)
    members = result.scores[result.scores["group"].notna()].rename_axis("id").reset_index()
    order = {name: k for k, name in enumerate(result.table["name"])}
    members = members.sort_values("group", key=lambda g: g.map(order), kind="stable")
    _write(members, args.out, args.overwrite)
    what = "leak groups" if other is not None else "duplicate groups"
    print(f"{len(result)} {what} ({len(members)} images; {result.calibration.note}) -> {args.out}",
          file=sys.stderr)
    if args.keep is not None:
        keep = data.ids[result.keep()]
        _write(pd.DataFrame({"id": [str(i) for i in keep]}), args.keep, args.overwrite)
        print(f"{len(keep)} of {len(data)} ids to keep -> {args.keep}", file=sys.stderr)
    return 0


def _joined(value: Any) -> Any:
    return "; ".join(map(str, value)) if isinstance(value, (list, tuple, np.ndarray)) else value


def label_errors(args) -> int:
    from .analysis.label_errors import label_errors as find

    _check_out(args.out, args.overwrite)
    data = _load(args.source, args)
    result = find(data, label=args.label, progress=not args.quiet)
    table = (result.scores if args.all else result.candidates()).copy()
    for col in ("neighbours", "neighbour_labels"):  # lists of ids and labels, one cell each
        if col in table.columns:
            table[col] = table[col].map(_joined)
    _write(table, args.out, args.overwrite)
    print(f"{result.summary()} -> {args.out}", file=sys.stderr)
    return 0


def sample(args) -> int:
    from .analysis.sampling import sample as pick

    _check_out(args.out, args.overwrite)
    if args.report is not None:
        _check_out(args.report, args.overwrite)
    data = _load(args.source, args)
    probabilities = _table(args.probabilities, "--probabilities") if args.probabilities is not None else None
    already: Any = None
    if args.already is not None:
        path = Path(args.already)
        already = _table(path, "--already").index.tolist() if path.suffix.lower() == ".csv" else \
            _load(args.already, args)
    balance = [c.strip() for c in args.balance_by.split(",") if c.strip()] if args.balance_by else None
    result = pick(data, args.n, args.strategy, balance_by=balance, bins=args.bins, probabilities=probabilities,
                  already=already, seed=args.seed, progress=not args.quiet)
    _write(result.table, args.out, args.overwrite)
    note = f" ({result.note})" if result.note else ""
    print(f"picked {len(result)} of {len(result.candidates)} by {result.strategy}{note} -> {args.out}",
          file=sys.stderr)
    if args.report is not None:
        _write(result.report, args.report, args.overwrite)
        print(f"balance report -> {args.report}", file=sys.stderr)
    return 0


COMMANDS: dict[str, Callable[[Any], int]] = {"duplicates": duplicates, "label-errors": label_errors,
                                             "sample": sample}
