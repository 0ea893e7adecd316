"""Embedding: CLIP vectors for images and prompts, cached on disk, on this machine or a Ray cluster.

Imports :mod:`dataexplore.core`, :mod:`dataexplore.sources` and :mod:`dataexplore.models`.
"""

from .inputs import as_analysed, check_same_model
from .local import embed, embed_text

__all__ = ["as_analysed", "check_same_model", "embed", "embed_text"]
