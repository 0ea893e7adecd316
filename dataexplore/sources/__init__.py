"""Sources: everything that turns images somewhere into :class:`~dataexplore.core.samples.Samples`.

Imports only :mod:`dataexplore.core`.
"""

from .load import is_fiftyone, load

__all__ = ["load", "is_fiftyone"]
