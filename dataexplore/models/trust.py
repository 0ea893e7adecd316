"""Which model a saved artefact may load by itself.

A query or a generation request read from a file names the embedding model its vectors came from.
The file is data from elsewhere: it must not choose files on this machine to load (a local model
folder or a weights file can hold a pickled checkpoint, and loading that can run code). Built-in
models and open_clip architectures with a named weights tag are loaded as named; anything else needs
the caller to name the model.
"""

from __future__ import annotations

import os
from typing import Any

from ..core.errors import DataexploreError
from . import BUILTIN_MODELS

_FILES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def _local(value: str) -> bool:
    return (value.startswith("local-dir:") or "/" in value or "\\" in value or value.endswith(_FILES)
            or os.path.exists(value))


def model_to_load(identity: dict[str, Any], model: str | None = None, pretrained: str | None = None, *,
                  what: str = "the file") -> tuple[str, str | None]:
    """The ``(model, pretrained)`` to embed with for an artefact whose model ``identity`` was read from
    a file: the caller's ``model`` when given, else the identity's when loading it reads no local file.

    Raises
    ------
    DataexploreError
        If the identity names no model, or a local folder or weights file (one line saying to pass
        ``model=``).
    """
    if model is not None:
        return model, pretrained
    name, tag = identity.get("name"), identity.get("pretrained")
    if not isinstance(name, str) or not name:
        raise DataexploreError(f"{what} names no embedding model: pass model= (the one its vectors came from)")
    tag = tag if isinstance(tag, str) and tag else None
    if name in BUILTIN_MODELS and tag is None:
        return name, None
    local = [v for v in (name, tag) if v is not None and _local(v)]
    if local:
        raise DataexploreError(f"{what} names a local model ({local[0]!r}); a file from elsewhere does not choose "
                               "files to load: pass model= (and pretrained=) yourself")
    return name, tag
