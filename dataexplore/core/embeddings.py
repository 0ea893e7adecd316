"""The :class:`Embeddings` result: vectors aligned to sample ids, with provenance."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .errors import SourceError
from .samples import check_unique_ids


@dataclass
class Embeddings:
    """L2-normalised image embeddings aligned to sample ids.

    Attributes
    ----------
    ids : numpy.ndarray
        Object array of str: the samples that have a vector, in source order.
    vectors : numpy.ndarray
        ``len(ids)×D`` float32.
    rows : numpy.ndarray
        Row of each vector in ``samples`` (int64).
    samples : Samples or None
        The source table (metadata such as ``label``), when known.
    model : dict
        Model identity: ``arch``, ``weights`` hash, ``preprocess``, ``name``, ``pretrained``, ``key``.
    failures : pandas.DataFrame
        ``id``, ``row``, ``reason`` of the samples that could not be embedded.
    stats : dict
        ``computed``, ``cached``, ``failed`` counts of the run that produced this.

    Examples
    --------
    >>> import numpy as np, dataexplore as dx
    >>> emb = dx.Embeddings.from_arrays(["a", "b"], np.eye(2, dtype=np.float32))
    >>> emb.subset([1]).ids.tolist()
    ['b']
    """

    ids: np.ndarray
    vectors: np.ndarray
    rows: np.ndarray | None = None
    samples: Any = None
    model: dict = field(default_factory=dict)
    failures: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"id": [], "row": [], "reason": []}))
    stats: dict = field(default_factory=dict)

    def __post_init__(self):
        self.ids = np.asarray([str(i) for i in self.ids], dtype=object)
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2:
            raise SourceError(f"embedding vectors must be a 2-D array, got shape {self.vectors.shape}")
        if len(self.ids) != len(self.vectors):
            raise SourceError(f"mismatched lengths: {len(self.ids)} ids but {len(self.vectors)} vectors")
        if self.rows is None:
            self.rows = np.arange(len(self.ids), dtype=np.int64)
        check_unique_ids(pd.Series(self.ids))

    def __len__(self) -> int:
        return len(self.ids)

    def _rows(self) -> np.ndarray:
        """``rows``, which ``__post_init__`` fills when it is not given."""
        assert self.rows is not None
        return self.rows

    def __repr__(self) -> str:
        d = self.vectors.shape[1] if self.vectors.ndim == 2 else 0
        return (f"<Embeddings {len(self)}×{d} model={self.model.get('name', '?')!r} "
                f"failed={len(self.failures)} stats={self.stats}>")

    @classmethod
    def from_arrays(cls, ids: Sequence[str], vectors: np.ndarray, model: dict | None = None) -> "Embeddings":
        """Wrap vectors computed elsewhere; checks lengths, duplicate ids and finiteness."""
        emb = cls(ids=np.asarray(ids, dtype=object), vectors=vectors, model=model or {})
        emb.check_finite()
        return emb

    def subset(self, keep: Any) -> "Embeddings":
        """The samples selected by a boolean mask or positions (e.g. one split), same model and source.

        Examples
        --------
        >>> train = emb.subset(emb.table["split"] == "train")  # doctest: +SKIP
        """
        keep = np.asarray(keep)
        pos = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64)
        if keep.dtype == bool and len(keep) != len(self):
            raise SourceError(f"mismatched lengths: a mask of {len(keep)} for {len(self)} embeddings")
        return Embeddings(ids=self.ids[pos], vectors=self.vectors[pos], rows=self._rows()[pos], samples=self.samples,
                          model=self.model, stats=dict(self.stats))

    @classmethod
    def concat(cls, parts: Sequence["Embeddings"]) -> "Embeddings":
        """Several embedded sets as one (e.g. train and production on one map); same model only.

        Their sources are combined with :meth:`Samples.concat`, so thumbnails and metadata keep
        working; ids must be unique across the parts.
        """
        from .samples import Samples

        parts = list(parts)
        if not parts:
            raise SourceError("nothing to concatenate")
        weights = {p.model.get("weights") for p in parts}
        dims = {p.vectors.shape[1] for p in parts}
        if len(weights) > 1 or len(dims) > 1:
            raise SourceError("embeddings from different models cannot be combined")
        samples, rows, offsets = None, None, np.zeros(len(parts), np.int64)
        if all(p.samples is not None for p in parts):
            samples = Samples.concat([p.samples for p in parts])
            offsets = np.cumsum([0] + [len(p.samples) for p in parts[:-1]])
            rows = np.concatenate([p._rows() + o for p, o in zip(parts, offsets)])
        failures = pd.concat([p.failures.assign(row=p.failures["row"].astype(np.int64) + o)
                              for p, o in zip(parts, offsets)], ignore_index=True)
        return cls(ids=np.concatenate([p.ids for p in parts]), vectors=np.concatenate([p.vectors for p in parts]),
                   rows=rows, samples=samples, model=parts[0].model, failures=failures)

    @property
    def table(self) -> pd.DataFrame:
        """Metadata rows of the embedded samples (``id`` plus e.g. ``label``), aligned to ``ids``."""
        if self.samples is None:
            return pd.DataFrame({"id": self.ids})
        return self.samples.table.iloc[self.rows].reset_index(drop=True)

    def check_finite(self) -> None:
        """Raise :class:`SourceError` naming the first sample whose vector has NaN or inf."""
        bad = ~np.isfinite(self.vectors).all(axis=1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise SourceError(
                f"embedding of sample {self.ids[first]!r} (row {first}) contains NaN or inf "
                f"({int(bad.sum())} such vectors in all)"
            )

    @property
    def fingerprint(self) -> str:
        """Hash of ids and vector bytes: keys caches of anything computed from these vectors."""
        h = hashlib.blake2b(digest_size=16)
        h.update("\0".join(self.ids).encode())
        h.update(np.ascontiguousarray(self.vectors, dtype="<f4").tobytes())
        return h.hexdigest()

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``id`` and ``embedding`` columns to Parquet, one row per sample in source order.

        Samples that failed to embed get a null ``embedding``. The model identity is stored in
        the file's metadata. The write is atomic.
        """
        import pyarrow as pa

        from .io import write_parquet_atomic

        ids, vecs = self.ids, self.vectors
        n_total = len(ids) + len(self.failures)
        dim = vecs.shape[1]
        if len(self.failures):
            order = np.concatenate([self.rows, self.failures["row"].to_numpy(np.int64)])
            all_ids = np.concatenate([ids, self.failures["id"].to_numpy(object)])
            valid = np.concatenate([np.ones(len(ids), bool), np.zeros(len(self.failures), bool)])
            full = np.concatenate([vecs, np.zeros((len(self.failures), dim), np.float32)])
            perm = np.argsort(order, kind="stable")
            all_ids, valid, full = all_ids[perm], valid[perm], full[perm]
        else:
            all_ids, valid, full = ids, np.ones(n_total, bool), vecs
        values = pa.array(np.ascontiguousarray(full, dtype=np.float32).reshape(-1))
        emb = pa.FixedSizeListArray.from_arrays(values, dim, mask=pa.array(~valid))
        table = pa.table({"id": pa.array(list(all_ids), pa.string()), "embedding": emb})
        meta = {"dataexplore.model": json.dumps(self.model, sort_keys=True, default=str)}
        return write_parquet_atomic(table, path, meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Embeddings":
        """Read a file written by :meth:`save` (or any Parquet with ``id`` and ``embedding`` columns).

        Raises
        ------
        dataexplore.SourceError
            Naming the file and the problem, for anything but text ids and lists of one width of
            finite float numbers, or model metadata that is not a JSON object.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        from .io import read_parquet

        table = read_parquet(path, ["id", "embedding"])
        meta = table.schema.metadata or {}
        try:
            model = json.loads(meta.get(b"dataexplore.model", b"{}"))
        except (ValueError, RecursionError) as exc:
            raise SourceError(f"{path}: its dataexplore.model metadata is not valid JSON ({str(exc)[:120]})") from None
        if not isinstance(model, dict):
            raise SourceError(f"{path}: its dataexplore.model metadata must be a JSON object")
        id_type, emb_type = table.schema.field("id").type, table.schema.field("embedding").type
        if pa.types.is_dictionary(id_type):  # e.g. written from a pandas categorical
            id_type = id_type.value_type
        if not (pa.types.is_string(id_type) or pa.types.is_large_string(id_type) or pa.types.is_integer(id_type)):
            raise SourceError(f"{path}: the id column must hold text, got {id_type}")
        if not (pa.types.is_list(emb_type) or pa.types.is_large_list(emb_type)
                or pa.types.is_fixed_size_list(emb_type)) or not (
                pa.types.is_floating(emb_type.value_type) or pa.types.is_integer(emb_type.value_type)):
            raise SourceError(f"{path}: the embedding column must hold lists of numbers, got {emb_type}")
        ids = np.asarray([None if i is None else str(i) for i in table.column("id").to_pylist()], dtype=object)
        if any(i is None for i in ids):
            raise SourceError(f"{path}: a row has no id")
        col = table.column("embedding").combine_chunks()
        valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        kept = col.filter(pa.array(valid))
        lengths = pc.list_value_length(kept).to_numpy(zero_copy_only=False)
        if len(set(lengths.tolist())) > 1:
            raise SourceError(f"{path}: embeddings have different lengths {sorted(set(lengths.tolist()))[:5]}")
        dim = int(lengths[0]) if len(lengths) else 0
        if len(lengths) and dim < 1:
            raise SourceError(f"{path}: the embeddings have no values (zero-width vectors)")
        flat = kept.flatten()
        if flat.null_count:
            raise SourceError(f"{path}: some embeddings hold missing values")
        vectors = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, max(dim, 1))[:, :dim]
        rows = np.flatnonzero(valid)
        bad = np.flatnonzero(~valid)
        failures = pd.DataFrame({"id": ids[bad], "row": bad.astype(np.int64),
                                 "reason": ["no embedding in file"] * len(bad)})
        try:
            emb = cls(ids=ids[valid], vectors=vectors, rows=rows, model=model, failures=failures)
            emb.check_finite()
        except SourceError as exc:
            raise SourceError(f"{path}: {exc}") from None
        return emb


def medoids(vectors: np.ndarray, n: int = 4) -> np.ndarray:
    """Positions of the ``n`` members closest to the group's mean direction (its exemplars)."""
    if len(vectors) == 0:
        return np.zeros(0, np.int64)
    centre = vectors.mean(axis=0)
    return np.argsort(-(vectors @ centre), kind="stable")[:n].astype(np.int64)
