"""Sources: everything that turns images somewhere into :class:`~dataexplore.core.samples.Samples`, and
detection datasets (boxes in images) into :class:`~dataexplore.core.objects.Objects`.

Imports only :mod:`dataexplore.core`.
"""

from .detections import load_objects
from .load import is_fiftyone, load

__all__ = ["load", "load_objects", "is_fiftyone"]
