"""The application layer: :func:`explore` runs the whole pipeline (load, embed, project, show) and
wires the exports the widget offers (queries, labeling batches) into it.

Imports every layer below it; nothing but :mod:`dataexplore.cli` imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .embedding import embed
from .projection import project
from .sources import is_fiftyone
from .widget.explorer import Explorer


def explore(source: Any, model: str = "fashion-tiny", pretrained: str | None = None, *,
            color: Any = "label", method: str = "umap", tooltip: Sequence[str] = (), height: int = 560,
            export_dir: str | Path = "dataexplore-exports", **embed_kwargs) -> Explorer:
    """Load, embed, project (all cached) and show a dataset in one line.

    Parameters
    ----------
    source
        Anything :func:`dataexplore.load` accepts. A FiftyOne dataset or view is embedded with
        :func:`dataexplore.integrations.fiftyone.embed`: the vectors are stored in a sample field and reused.
    model, pretrained
        The CLIP model (see :func:`dataexplore.embed`).
    color : str or array-like, optional
        Column to colour by (``"label"`` by default, ignored when the source has no labels).
    method : {"umap", "pca"}
    tooltip : sequence of str
        Extra metadata columns for the hover tooltip.
    height : int
        Height of the map in pixels.
    export_dir : path
        Where the widget's export menu writes queries and labeling batches.
    **embed_kwargs
        Passed to :func:`dataexplore.embed` (``device``, ``batch_size``, ``cache_dir``, ...).

    Returns
    -------
    Explorer

    Examples
    --------
    >>> import dataexplore as dx
    >>> ex = dx.explore("fashion-mnist:test", model="fashion-tiny", color="label")  # doctest: +SKIP
    """
    if is_fiftyone(source):  # vectors live in a sample field: computed once, reused afterwards
        from .integrations.fiftyone import embed as embed_fiftyone

        emb = embed_fiftyone(source, model, pretrained, **embed_kwargs)
    else:
        emb = embed(source, model, pretrained, **embed_kwargs)
    proj = project(emb, method=method)
    table = emb.table
    if isinstance(color, str) and color not in table.columns:
        color = None
    provenance = {"source": getattr(emb.samples, "name", ""), "model": emb.model, "projection": proj.get_params()}
    return Explorer(proj.embedding_, ids=emb.ids, table=table, samples=emb.samples, rows=emb.rows, color=color,
                    tooltip=tooltip, height=height, provenance=provenance, embeddings=emb, export_dir=export_dir)
