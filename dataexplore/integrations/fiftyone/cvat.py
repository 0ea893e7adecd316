"""A CVAT annotation run prepared on a selection, for the user to start."""

from __future__ import annotations

from dataclasses import dataclass, field as _field
from typing import Any, Iterable

from ...core.errors import DataexploreError
from ._collections import _check_collection, _check_field_name, _check_known, _selected_ids

_SECRET_WORDS = ("password", "token", "secret", "api_key", "apikey")


@dataclass
class AnnotationRequest:
    """An annotation run prepared for CVAT: the samples and the arguments of ``view.annotate``.

    dataexplore prepares, the user starts it (it needs a CVAT server and credentials, see
    FiftyOne's CVAT integration): ``request.run()``, or the line ``request.code()`` prints.

    Attributes
    ----------
    view : fiftyone.core.view.DatasetView
        The samples to annotate.
    kwargs : dict
        Every argument of ``view.annotate(**kwargs)``: ``anno_key``, ``backend="cvat"``,
        ``label_field``, ``label_type``, ``classes`` and any backend options.

    Examples
    --------
    >>> req = dx.fiftyone.cvat_request(dataset, ex.selection, anno_key="review_bags")  # doctest: +SKIP
    >>> print(req.code())  # doctest: +SKIP
    request.view.annotate(anno_key='review_bags', backend='cvat', label_field='ground_truth', ...)
    >>> results = req.run()  # uploads the images to CVAT  # doctest: +SKIP
    """

    view: Any
    kwargs: dict = _field(default_factory=dict)

    @property
    def anno_key(self) -> str:
        """The annotation run's key."""
        return self.kwargs["anno_key"]

    def code(self, name: str = "request") -> str:
        """The Python line that starts the run, for a request held in the variable ``name``.

        Secrets (``password``, tokens) are left out of the text: give them to FiftyOne through its
        settings (``FIFTYONE_CVAT_PASSWORD``, ...).
        """
        shown = [f"{k}={v!r}" for k, v in self.kwargs.items() if not _is_secret(k)]
        return f"{name}.view.annotate({', '.join(shown)})"

    def run(self):
        """Start the annotation run: ``view.annotate(**kwargs)``; returns FiftyOne's results."""
        return self.view.annotate(**self.kwargs)

    def __repr__(self) -> str:
        shown = {k: ("***" if _is_secret(k) else v) for k, v in self.kwargs.items()}
        return f"<AnnotationRequest {len(self.view)} samples {shown}>"


def cvat_request(collection: Any, selection: Any, *, anno_key: str, label_field: str = "ground_truth",
                 classes: Iterable[str] | None = None, label_type: str = "classification",
                 **backend_kwargs) -> AnnotationRequest:
    """Prepare a CVAT annotation run on the selected samples; the user starts it.

    Parameters
    ----------
    collection : fiftyone.core.collections.SampleCollection
    selection : Selection or sequence of str
        What to annotate: a :class:`~dataexplore.Selection` or FiftyOne sample ids.
    anno_key : str
        The annotation run's key (a valid Python identifier, not already used).
    label_field : str
        The field CVAT edits (created on load-back when new).
    classes : sequence of str, optional
        Default: the distinct labels of ``label_field`` in the whole ``collection``.
    label_type : str
        FiftyOne's label type for a new field (``"classification"``, ``"detections"``, ...).
    **backend_kwargs
        More arguments of ``view.annotate`` (``url``, ``username``, ``launch_editor``,
        ``task_assignee``, ...).

    Returns
    -------
    AnnotationRequest

    Examples
    --------
    >>> req = dx.fiftyone.cvat_request(dataset, ex.selection, anno_key="fix_labels")  # doctest: +SKIP
    >>> req.kwargs["classes"][:3]  # doctest: +SKIP
    ['Ankle boot', 'Bag', 'Coat']
    >>> req.run()  # needs a CVAT server  # doctest: +SKIP
    """
    _check_collection(collection, "dataexplore.integrations.fiftyone.cvat_request")
    ids, _ = _selected_ids(selection)
    if not isinstance(anno_key, str) or not anno_key.isidentifier():
        raise DataexploreError(f"an annotation key must be a valid Python identifier, got {anno_key!r}")
    if collection.has_annotation_run(anno_key):
        raise DataexploreError(f"annotation key {anno_key!r} is already used: pick another, or delete it with "
                               f"dataset.delete_annotation_run({anno_key!r})")
    _check_field_name(label_field, "label_field")
    _check_known(ids, collection.values("id"))
    if classes is None:
        classes = _distinct_labels(collection, label_field)
        if not classes:
            raise DataexploreError(f"no labels in {label_field!r} to offer as classes: pass classes=[...]")
    else:
        classes = [classes] if isinstance(classes, str) else list(classes)
        if not classes or not all(isinstance(c, str) and c for c in classes):
            raise DataexploreError("classes must be a non-empty list of non-empty strings")
    kwargs = {"anno_key": anno_key, "backend": "cvat", "label_field": label_field, "label_type": label_type,
              "classes": classes, **backend_kwargs}
    return AnnotationRequest(view=collection.select(ids), kwargs=kwargs)


def _distinct_labels(collection: Any, label_field: str) -> list[str]:
    schema = collection.get_field_schema()
    if label_field not in schema:
        return []
    from fiftyone.core.labels import Label

    doc = getattr(schema[label_field], "document_type", None)
    if not (isinstance(doc, type) and issubclass(doc, Label)):
        raise DataexploreError(f"field {label_field!r} holds {type(schema[label_field]).__name__} values, not labels")
    many = getattr(doc, "_LABEL_LIST_FIELD", None)  # Detections -> "detections", ...
    path = f"{label_field}.{many}.label" if many else f"{label_field}.label"
    return [str(c) for c in collection.distinct(path) if c is not None]


def _is_secret(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS)
