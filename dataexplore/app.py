"""The application layer: :func:`explore` runs the whole pipeline (load, embed, project, show) and
wires the exports the widget offers (queries, labeling batches) into it.

Imports every layer below it; nothing but :mod:`dataexplore.cli` imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .core.errors import DataexploreError
from .core.io import safe_name
from .core.selection import Selection
from .embedding import embed
from .labeling import FORMAT_LABELS, export_boxes, export_labeling
from .projection import project
from .sources import is_fiftyone
from .widget import explorer as _widget
from .widget.explorer import Exporter


def default_exporters(queries: dict[str, Any] | None = None,
                      suggestions: Callable[[], Any] | None = None, objects: Any = None) -> dict[str, Exporter]:
    """What the export menu of :class:`Explorer` offers: a query, and each labeling format.

    On a map of objects (``objects``: the :class:`~dataexplore.core.objects.Objects` its points are
    crops of) the labeling formats are box tasks: the images holding the selected objects, with all
    their boxes (predictions pre-annotated), as :func:`~dataexplore.labeling.export_boxes` writes them.

    Parameters
    ----------
    queries : dict, optional
        Where the query exporter keeps each query it saves, by name.
    suggestions : callable, optional
        Returns the labels to pre-annotate a labeling batch with (a Series keyed by sample id, e.g.
        the ``suggestions`` of the :func:`~dataexplore.label_errors` result shown on the map), or
        ``None``. Used when the export is not given ``predictions`` itself.
    objects : Objects, optional
        The boxes of a map of objects.

    Returns
    -------
    dict of str to Exporter
    """
    store = {} if queries is None else queries

    def save_query(selection: Selection, folder: Path, name: str, *, overwrite: bool = False) -> Path:
        query = selection.to_query(name)
        path = query.save(folder / f"{safe_name(name)}.dxq", overwrite=overwrite)
        store[name] = query
        return path

    def labeling(what: str):
        def run(selection: Selection, folder: Path, name: str, *, overwrite: bool = False, **kwargs) -> Path:
            if kwargs.get("predictions") is None and suggestions is not None:
                kwargs["predictions"] = suggestions()
            return export_labeling(selection, folder / f"{safe_name(name)}-{what}", format=what, name=name,
                                   overwrite=overwrite, **kwargs)
        return run

    def boxes(what: str):
        def run(selection: Selection, folder: Path, name: str, *, overwrite: bool = False, **kwargs) -> Path:
            chosen = objects.table["id"].isin(set(map(str, selection.ids)))
            images = list(dict.fromkeys(objects.table.loc[chosen, "image_id"]))  # in the map's order
            return export_boxes(objects, folder / f"{safe_name(name)}-{what}-boxes", format=what, images=images,
                                name=name, overwrite=overwrite, **kwargs)
        return run

    if objects is not None:
        return {"query": Exporter("Query", save_query),
                **{what: Exporter(f"{FORMAT_LABELS[what]} boxes", boxes(what)) for what in ("label-studio", "coco")}}
    return {"query": Exporter("Query", save_query),
            **{what: Exporter(label, labeling(what)) for what, label in FORMAT_LABELS.items()}}


class Explorer(_widget.Explorer):
    __doc__ = _widget.Explorer.__doc__

    def __init__(self, xy: Any, *, exporters: dict[str, Exporter] | None = None, **kwargs):
        #: Queries saved by the export menu (or :meth:`export`), by name.
        self.queries: dict[str, Any] = {}
        if exporters is None:  # a shown result that suggests labels (label errors) pre-annotates the batches
            exporters = default_exporters(self.queries, suggestions=lambda: getattr(self.shown, "suggestions", None),
                                          objects=getattr(kwargs.get("samples"), "objects", None))
        super().__init__(xy, exporters=exporters, **kwargs)

    def select_images(self) -> Selection:
        """On a map of objects: widen the selection to every object of the images the selected ones are in
        (all boxes of an image, after clicking one of them).

        Raises
        ------
        DataexploreError
            On a map of images (its table has no ``image_id``).
        """
        if "image_id" not in self.table.columns:
            raise DataexploreError("select_images works on a map of objects (dx.explore(objects)); "
                                   "this map's points are images")
        images = self.table["image_id"].astype(str).to_numpy()
        chosen = set(images[np.asarray(self.selection.indices, np.int64)])
        return self.select(list(np.asarray(self.ids)[np.isin(images, list(chosen))]))


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
