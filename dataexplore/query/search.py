"""Running a :class:`~dataexplore.query.Query` on a pool of images: ranked candidates with scores."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.embeddings import Embeddings
from ..core.errors import DataexploreError

RESULT_COLUMNS = ("rank", "id", "score", "probability", "match")


@dataclass(eq=False)
class SearchResult:
    """The top candidates of a pool for a query, best first.

    Attributes
    ----------
    query : Query
    table : pandas.DataFrame
        ``rank``, ``id``, ``score``, ``probability`` (estimated chance of being "such an image";
        probe queries only, else NaN), ``match`` (score at or above the query's threshold), then
        the pool's metadata columns (``label``, ``filepath``, ...; one named like a result column
        is renamed ``meta_<name>``).
    embeddings : Embeddings
        The candidates' embeddings, with their samples (images, metadata), in rank order.
    pool_size : int
        How many pool images were scored.
    expected_matches : float
        Sum of the probabilities over the whole pool: about how many such images it holds.

    Examples
    --------
    >>> res = q.search("fashion-mnist:train:10000", top=100)  # doctest: +SKIP
    >>> res.estimated_precision  # doctest: +SKIP
    0.97
    >>> res.to_csv("candidates.csv")  # doctest: +SKIP
    """

    query: Any
    table: pd.DataFrame
    embeddings: Embeddings
    pool_size: int
    expected_matches: float

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        prec = self.estimated_precision
        est = "unknown" if np.isnan(prec) else f"{prec:.0%}"
        return (f"<SearchResult {self.query.name!r}: top {len(self)} of {self.pool_size}, "
                f"{int(self.table['match'].sum())} above the threshold, estimated precision {est}>")

    def _repr_html_(self) -> str:
        from ..core.htmlsafe import frame_html

        return frame_html(self.table.head(20), caption=self.__repr__()[1:-1], max_rows=None)

    @property
    def ids(self) -> np.ndarray:
        return self.table["id"].to_numpy(dtype=object)

    @property
    def estimated_precision(self) -> float:
        """Mean probability of the candidates: the share expected to be such images (NaN if unknown)."""
        p = self.table["probability"].to_numpy(np.float64)
        return float(p.mean()) if len(p) and not np.isnan(p).all() else float("nan")

    def to_csv(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the table to CSV atomically (refuses to replace a file without ``overwrite=True``).

        Text that a spreadsheet would run as a formula gets a leading ``'`` (see
        :func:`dataexplore.core.io.csv_text`)."""
        from ..core.io import atomic_write, check_writable, csv_safe_frame

        path = check_writable(path, overwrite)
        return atomic_write(path, lambda tmp: csv_safe_frame(self.table).to_csv(tmp, index=False))


def search(query: Any, pool: Any, top: int | None = 100, *, exclude_selected: bool = True,
           matches_only: bool = False, progress: bool = True, model: str | None = None, pretrained: str | None = None,
           **embed_kwargs) -> SearchResult:
    """Rank the images of ``pool`` by ``query``.

    Parameters
    ----------
    query : Query
    pool
        :class:`~dataexplore.Embeddings` made with the query's model, or anything
        :func:`dataexplore.embed` accepts (it is embedded with the query's model, through the cache).
    top : int or None
        How many candidates to return (``None``: all).
    exclude_selected : bool
        Leave out pool images whose ids are among the query's own selected ids.
    matches_only : bool
        Return only candidates at or above the query's threshold.
    model, pretrained : str, optional
        The model to embed ``pool`` with; it must be the query's (its weights are compared). Default:
        the one the query names, when that is a built-in model or an open_clip architecture with a
        weights tag. A query naming a local folder or weights file does not choose files to load
        (a query may come from elsewhere): pass ``model=`` (and ``pretrained=``) yourself.
    **embed_kwargs
        Passed to :func:`dataexplore.embed` (``device``, ``batch_size``, ``cache_dir``, ...).

    Raises
    ------
    DataexploreError
        If the pool was embedded with another model, or ``top`` is not a positive integer.

    Examples
    --------
    >>> from dataexplore.query import search
    >>> search(q, "fashion-mnist:train", top=100).table.head()  # doctest: +SKIP
    """
    if top is not None and (not isinstance(top, (int, np.integer)) or isinstance(top, bool) or top < 1):
        raise DataexploreError(f"top must be a positive integer or None, got {top!r}")
    emb = _pool_embeddings(query, pool, progress=progress, model=model, pretrained=pretrained, **embed_kwargs)
    keep = np.ones(len(emb), bool)
    if exclude_selected and len(query.ids):
        keep = ~np.isin(emb.ids, query.ids)
    pos = np.flatnonzero(keep)
    scores = query.score(emb.vectors[pos]) if len(pos) else np.zeros(0, np.float32)
    from .probe import calibrated

    prob = calibrated(query.probe, scores)
    expected = float(np.nansum(prob)) if not np.isnan(prob).all() else float("nan")
    threshold = query.threshold
    match = scores >= threshold if threshold is not None else np.zeros(len(scores), bool)
    order = np.argsort(-scores, kind="stable")
    if matches_only:
        order = order[match[order]]
    if top is not None:
        order = order[:top]
    chosen = pos[order]
    meta = emb.table.iloc[chosen].reset_index(drop=True).drop(columns=["id"], errors="ignore")
    meta = meta.rename(columns={c: f"meta_{c}" for c in RESULT_COLUMNS if c in meta.columns})  # no clashes
    table = pd.concat([pd.DataFrame({"rank": np.arange(1, len(chosen) + 1), "id": emb.ids[chosen],
                                     "score": scores[order], "probability": prob[order], "match": match[order]}),
                       meta], axis=1)
    return SearchResult(query=query, table=table, embeddings=emb.subset(chosen), pool_size=int(len(pos)),
                        expected_matches=expected)


def _pool_embeddings(query: Any, pool: Any, *, progress: bool, model: str | None = None,
                     pretrained: str | None = None, **embed_kwargs) -> Embeddings:
    if isinstance(pool, Embeddings):
        emb = pool
    else:
        from ..embedding.inputs import as_analysed
        from ..models.trust import model_to_load

        if not query.model.get("name") and model is None:
            field = query.model.get("field")
            hint = (f"dx.fiftyone.embed(pool, model=None, field={field!r})" if field else "the pool's Embeddings")
            raise DataexploreError("this query's vectors came from elsewhere, so dataexplore cannot embed a pool "
                                   f"for it: pass {hint}")
        name, tag = model_to_load(query.model, model, pretrained, what=f"the query {query.name!r}")
        emb = as_analysed(pool, name, pretrained=tag, progress=progress, **embed_kwargs)
    check_model(query, emb)
    return emb


def check_model(query: Any, emb: Embeddings) -> None:
    """Raise one clear error when ``emb`` was not made by the query's model."""
    want, got = query.model.get("weights"), emb.model.get("weights")
    width = len(query.text_vector) if query.text_vector is not None else query.vectors.shape[1]
    if (want and got and want != got) or emb.vectors.shape[1] != width:
        raise DataexploreError(
            f"the pool was embedded with another model ({emb.model.get('name', 'unknown')}, {emb.vectors.shape[1]} "
            f"dimensions) than the query {query.name!r} ({query.model.get('name', 'unknown')}, {width} dimensions): "
            "embed the pool with the query's model, or pass the source and let search() embed it")
