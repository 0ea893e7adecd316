"""The FiftyOne round trip: what the map finds goes back into the FiftyOne dataset it came from.

dataexplore reads a FiftyOne dataset or view like any other source (:func:`dataexplore.load`).
This module writes back, so the FiftyOne App shows the same thing as the notebook:

- :func:`embed` stores the CLIP vectors in a sample field, with the model identity in
  ``dataset.info``, and reuses them on the next call instead of recomputing;
- :func:`save_map` stores the 2-D map as a brain run, which the App's Embeddings panel shows;
- :func:`tag` turns a selection into sample tags and, optionally, a saved view;
- :func:`apply_labels` writes labels from an annotation tool as Classifications with provenance;
- :func:`cvat_request` prepares a CVAT annotation run on a selection, for the user to start;
- :func:`to_fiftyone` writes :class:`~dataexplore.core.objects.Objects` as ``fo.Detections``,
  :func:`cvat_boxes_request` prepares a CVAT run on the images of selected objects, and
  :func:`boxes_from_fiftyone` compares the boxes that come back with the ones sent.

``fiftyone`` is imported on first use: ``pip install dataexplore[fiftyone]``.
"""

from ._collections import INFO_KEY
from .cvat import AnnotationRequest, cvat_request
from .labels import apply_labels
from .maps import save_map
from .objects import boxes_from_fiftyone, cvat_boxes_request, to_fiftyone
from .tags import tag
from .vectors import embed

__all__ = ["embed", "save_map", "tag", "apply_labels", "cvat_request", "AnnotationRequest", "INFO_KEY",
           "to_fiftyone", "cvat_boxes_request", "boxes_from_fiftyone"]
