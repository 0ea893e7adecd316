"""A selection as sample tags and, optionally, a saved view."""

from __future__ import annotations

from typing import Any

from ...core.errors import DataexploreError
from ._collections import _check_collection, _check_known, _dataset, _selected_ids


def tag(collection: Any, selection: Any, tag: str, *, view_name: str | None = None, overwrite: bool = False):
    """Tag the selected samples, and optionally save them as a named view for the FiftyOne App.

    Parameters
    ----------
    collection : fiftyone.core.collections.SampleCollection
    selection : Selection or sequence of str
        A :class:`~dataexplore.Selection` (e.g. ``explorer.selection``) or FiftyOne sample ids.
    tag : str
        The sample tag to add.
    view_name : str, optional
        Also save ``collection.select(ids)`` under this name (``dataset.load_saved_view(name)``).
    overwrite : bool
        Replace an existing saved view of that name.

    Returns
    -------
    fiftyone.core.view.DatasetView
        The selected samples.

    Raises
    ------
    dataexplore.DataexploreError
        An empty selection, an id not in the collection (the first is named), an empty tag or view
        name, or a view name already in use.

    Examples
    --------
    >>> ex.select(ids_of_bags)  # or a lasso on the map  # doctest: +SKIP
    >>> view = dx.fiftyone.tag(dataset, ex.selection, "review", view_name="bags to review")  # doctest: +SKIP
    >>> dataset.count_sample_tags()  # doctest: +SKIP
    {'review': 120}
    """
    fo = _check_collection(collection, "dataexplore.integrations.fiftyone.tag")
    ids, provenance = _selected_ids(selection)
    if not isinstance(tag, str) or not tag.strip():
        raise DataexploreError(f"a tag must be a non-empty string, got {tag!r}")
    _check_known(ids, collection.values("id"))
    dataset = _dataset(fo, collection)
    if view_name is not None:
        _check_view_name(dataset, view_name, overwrite)
    view = collection.select(ids)
    view.tag_samples(tag)
    if view_name is not None:
        how = f" by {provenance}" if provenance else ""
        dataset.save_view(view_name, view, description=f"{len(ids)} samples selected{how} in dataexplore",
                          overwrite=overwrite)
    return view


def _check_view_name(dataset: Any, name: Any, overwrite: bool) -> None:
    from fiftyone.core.utils import to_slug

    if not isinstance(name, str) or not name.strip():
        raise DataexploreError(f"a view name must be a non-empty string, got {name!r}")
    try:
        slug = to_slug(name)
    except ValueError as exc:
        raise DataexploreError(f"bad view name {name!r}: {exc}") from None
    clash = next((v for v in dataset.list_saved_views() if v == name or to_slug(v) == slug), None)
    if clash is not None and not overwrite:
        same = "exists" if clash == name else f"clashes with saved view {clash!r}"
        raise DataexploreError(f"saved view {name!r} {same}: pass overwrite=True to replace it")
