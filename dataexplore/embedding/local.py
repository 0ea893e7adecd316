"""The embedding entry points: :func:`embed` images and :func:`embed_text` prompts.

:func:`embed` checks its options, picks the engine from :data:`ENGINES` and hands both to
:func:`dataexplore.embedding.plan.execute`, which does what every engine shares (samples, model,
content keys, cache lookups, the result) and lets the engine compute what is missing:

- ``"local"``: :class:`~dataexplore.embedding.inprocess.LocalEngine`, this machine;
- ``"ray"``: :class:`~dataexplore.embedding.ray.RayEngine`, a Ray cluster.

Adding an engine is adding a row to :data:`ENGINES`. The engines import
:mod:`~dataexplore.embedding.plan`, never each other or this module. (This module keeps the name
it had when it held the local engine too: the CLI, the app and the FiftyOne integration call
``dataexplore.embedding.local.embed``; :func:`dataexplore.embed` is the same function.)
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import numpy as np

from ..core.embeddings import Embeddings
from ..core.errors import DataexploreError
from ..core.images import DEFAULT_MAX_PIXELS
from ..models.device import pick_device
from .inprocess import LocalEngine
from .plan import execute
from .ray import RayEngine

#: ``engine=`` name -> engine class: a dataclass implementing :class:`~dataexplore.embedding.plan.Engine`
#: that names the :func:`embed` keywords that are its own options (``OPTIONS``: keyword -> constructor
#: argument) and what to say when another engine's options are given with it (``HINT``).
ENGINES: dict[str, Any] = {"local": LocalEngine, "ray": RayEngine}


def embed(
    source: Any,
    model: str = "fashion-tiny",
    pretrained: str | None = None,
    *,
    device: Any = "auto",
    batch_size: int | None = None,
    num_workers: int | None = None,
    precision: str = "auto",
    decode: str = "pil",
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
    engine: str = "local",
    ray_address: str | None = None,
) -> Embeddings:
    """Embed images with a CLIP model, reusing every vector already in the cache.

    Parameters
    ----------
    source
        Anything :func:`dataexplore.load` accepts (folder, paths, DataFrame, array,
        ``"fashion-mnist:test:2000"``, FiftyOne view) or a :class:`Samples`.
    model, pretrained : str
        See :mod:`dataexplore.models`: ``"fashion-tiny"`` (built in, offline), or an open_clip
        architecture with a hub tag / local weights file, or a ``local-dir:`` folder.
    device : {"auto", "cuda", "mps", "cpu"} or torch.device
        ``"auto"`` picks cuda, then mps, then cpu.
    batch_size : int, optional
        Default: measured to fill the GPU on CUDA; on CPU sized to the model's input.
    num_workers : int, optional
        Decoding processes. Default: on an accelerator one per spare core (up to 8), overlapping
        decoding with the forward pass; on CPU 0, meaning this thread decodes while one thread per
        other core runs the model (see :mod:`dataexplore.embedding.inprocess`).
    precision : {"auto", "fp32", "bf16", "fp16"}
        Compute dtype of the image tower; ``"auto"`` uses bf16 where the hardware supports it
        (fp16 on older GPUs, fp32 on CPUs without bf16 instructions). Vectors are returned in fp32.
    decode : {"pil", "torchvision"}
        ``"torchvision"`` decodes JPEG files on the model's device (nvJPEG on CUDA); other
        formats still go through PIL in the workers.
    cache : bool
        Read and write the on-disk cache (see :mod:`dataexplore.embedding.cache`). Each file is
        read once: a file the cache has not seen at this path, size and time is hashed from the
        bytes that are decoded. Results are committed every couple of seconds; a killed run
        keeps what was committed.
    cache_dir : path, optional
        Cache root; default ``$DATAEXPLORE_CACHE_DIR`` or the user cache folder.
    max_pixels : int
        Images larger than this are reported as failures (decompression-bomb guard).
    progress : bool
        Show a progress bar (images/s) while computing.
    engine : {"local", "ray"}
        ``"ray"`` runs the same computation as a Ray Data pipeline across a cluster's GPUs (see
        :mod:`dataexplore.embedding.ray`, needs ``pip install dataexplore[scale]``): same ids and
        vectors, results written as Parquet shards into the same cache. ``num_workers`` and
        ``decode="torchvision"`` are local-engine options.
    ray_address : str, optional
        With ``engine="ray"``: the cluster to connect to (``"HOST:6379"``, ``"ray://HOST:10001"``,
        ``"auto"``); default: ``$RAY_ADDRESS``, else a cluster started with ``ray start`` on this
        machine, else a new local Ray.

    Returns
    -------
    Embeddings
        L2-normalised float32 vectors for the samples that decoded, in source order, with
        ``failures`` (id, row, reason) for those that did not, the model identity and
        counts of computed / cached / failed images in ``stats``.

    Examples
    --------
    >>> import dataexplore as dx
    >>> emb = dx.embed("fashion-mnist:test:1000", model="fashion-tiny")  # doctest: +SKIP
    >>> emb.vectors.shape, emb.stats  # doctest: +SKIP
    ((1000, 128), {'computed': 1000, 'cached': 0, 'failed': 0})
    >>> emb = dx.embed("fashion-mnist:test:1000", engine="ray")  # doctest: +SKIP
    """
    backend = make_engine(engine, num_workers=num_workers, decode=decode, ray_address=ray_address)
    return execute(backend, source, model, pretrained, device=device, batch_size=batch_size, precision=precision,
                   cache=cache, cache_dir=cache_dir, max_pixels=max_pixels, progress=progress)


def make_engine(name: str, **options: Any):
    """The engine ``name`` of :data:`ENGINES`, built from the :func:`embed` keywords that are its options.

    Keywords that belong to another engine must keep their defaults: one given with the wrong
    engine is an error, never silently ignored.

    Examples
    --------
    >>> make_engine("local", num_workers=2, decode="pil", ray_address=None)
    LocalEngine(num_workers=2, decode='pil')
    """
    if name not in ENGINES:
        raise DataexploreError(f"engine must be {' or '.join(map(repr, ENGINES))}, got {name!r}")
    cls = ENGINES[name]
    for owner, other in ENGINES.items():
        if other is cls:
            continue
        defaults = {f.name: f.default for f in dataclasses.fields(other)}
        given = [kw for kw, arg in other.OPTIONS.items() if kw in options and options[kw] != defaults[arg]]
        if given:
            verb = "is" if len(given) == 1 else "are"
            hint = f"; with engine={name!r} {cls.HINT}" if cls.HINT else ""
            raise DataexploreError(f"{' and '.join(given)} {verb} only used with engine={owner!r}{hint}")
    return cls(**{arg: options[kw] for kw, arg in cls.OPTIONS.items() if kw in options})


def embed_text(
    prompts: str | Sequence[str],
    model: str = "fashion-tiny",
    pretrained: str | None = None,
    *,
    device: Any = "auto",
) -> np.ndarray:
    """Embed text prompts with the same CLIP model, L2-normalised float32 ``len(prompts)×D``.

    Examples
    --------
    >>> import dataexplore as dx
    >>> t = dx.embed_text(["a photo of a sneaker", "a photo of a bag"])  # doctest: +SKIP
    >>> t.shape  # doctest: +SKIP
    (2, 128)
    """
    from ..models import embed_prompts, load_model

    return embed_prompts(load_model(model, pretrained, pick_device(device)), prompts)
