"""Resolve a model name into a loaded open_clip model with a stable identity.

Anywhere dataexplore takes ``model=``/``pretrained=`` you can pass:

- ``"fashion-tiny"``: the small CLIP trained on Fashion-MNIST that ships with dataexplore
  (works offline; see ``train_fashion_tiny.py``);
- any open_clip architecture (``"ViT-B-32"``) with ``pretrained`` a hub tag
  (``"laion2b_s34b_b79k"``, downloaded once by open_clip), a local weights file
  (``.safetensors``/``.pt``/``.bin``), or ``None`` for random weights (timing only);
- ``"local-dir:/path"`` or a folder path holding ``open_clip_config.json`` and weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..core.errors import ModelError

BUILTIN_MODELS = {"fashion-tiny": Path(__file__).parent / "fashion-tiny"}

_CACHE: dict[tuple, "ClipModel"] = {}
_LOCK = threading.Lock()


@dataclass
class ClipModel:
    """A loaded CLIP model, its preprocessing, its tokenizer and its identity.

    Attributes
    ----------
    name : str
        What the user asked for (``"fashion-tiny"``, ``"ViT-B-32"``, ...).
    pretrained : str or None
        The weights tag or file, as given.
    model : torch.nn.Module
        The open_clip model, in eval mode, on ``device``.
    preprocess : callable
        PIL image -> normalised CHW float tensor (open_clip's inference transform).
    tokenizer : callable
        list of str -> token tensor.
    preprocess_cfg : dict
        ``size``, ``mean``, ``std``, ``interpolation``, ``resize_mode`` of the image transform.
    identity : dict
        ``arch``, ``weights`` (hash of the loaded parameters), ``preprocess``: what makes two
        runs produce the same vectors. ``key`` is its short hash, used by the cache.
    """

    name: str
    pretrained: str | None
    model: Any
    preprocess: Any
    tokenizer: Any
    device: Any
    preprocess_cfg: dict
    identity: dict
    key: str = field(init=False)
    towers: dict = field(default_factory=dict, repr=False)  # (device, dtype) -> image encoder

    def __post_init__(self):
        blob = json.dumps(self.identity, sort_keys=True).encode()
        self.key = hashlib.sha256(blob).hexdigest()[:20]

    @property
    def input_size(self) -> int:
        """Side of the square image the model is fed, in pixels (see :func:`input_size`)."""
        return input_size(self.preprocess_cfg)

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1]) if hasattr(self.model, "text_projection") and \
            self.model.text_projection is not None else int(self._probe_dim())

    def _probe_dim(self) -> int:
        import torch

        size = self.input_size
        with torch.inference_mode():
            return self.model.encode_image(torch.zeros(1, 3, size, size, device=self.device)).shape[-1]


def input_size(preprocess_cfg: dict) -> int:
    """Side of the square image a model is fed: open_clip's ``size``, or the larger of ``[h, w]``.

    The one place this is decided; the embedding engines resize and centre-crop every image to
    ``input_size × input_size``.

    Examples
    --------
    >>> input_size({"size": 224}), input_size({"size": [32, 32]})
    (224, 32)
    """
    size = preprocess_cfg["size"]
    return int(size) if isinstance(size, int) else int(max(size))


def load_model(model: str = "fashion-tiny", pretrained: str | None = None, device: Any = "cpu") -> ClipModel:
    """Load (once per process) an open_clip model and compute its identity.

    Parameters
    ----------
    model : str
        ``"fashion-tiny"``, an open_clip architecture name, ``"local-dir:/path"`` or a folder.
    pretrained : str, optional
        Hub tag or weights file for an architecture name; ignored for folders.
    device : str or torch.device

    Returns
    -------
    ClipModel

    Raises
    ------
    dataexplore.ModelError
        Unknown architecture, missing weights file, or weights that cannot be fetched.

    Examples
    --------
    >>> from dataexplore.models import load_model
    >>> m = load_model("fashion-tiny")  # doctest: +SKIP
    >>> m.identity["arch"]  # doctest: +SKIP
    'fashion-tiny'
    """
    import torch

    device = torch.device(device)
    cache_key = (model, pretrained, str(device))
    with _LOCK:
        if cache_key in _CACHE:
            return _CACHE[cache_key]
        loaded = _load(model, pretrained, device)
        _CACHE[cache_key] = loaded
        return loaded


def _load(name: str, pretrained: str | None, device) -> ClipModel:
    open_clip = _import_open_clip()
    arch, spec = _resolve(name, pretrained, open_clip)
    try:
        with _quiet_open_clip():
            if spec.startswith("local-dir:"):
                net, _, preprocess = open_clip.create_model_and_transforms(spec, device=device)
            else:
                net, _, preprocess = open_clip.create_model_and_transforms(spec, pretrained=pretrained, device=device)
        tokenizer = open_clip.get_tokenizer(spec)
    except ModelError:
        raise
    except Exception as exc:
        hint = ""
        if pretrained and not os.path.exists(pretrained):
            hint = " (a weights tag is downloaded from the model hub: check the network, or pass a local weights file)"
        raise ModelError(f"could not load model {name!r} with weights {pretrained!r}: {exc}{hint}") from None
    net.eval()
    pcfg = open_clip.get_model_preprocess_cfg(net)
    pcfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in pcfg.items()}
    identity = {
        "arch": arch,
        "weights": weights_fingerprint(net),
        "preprocess": {k: pcfg.get(k) for k in sorted(pcfg)},
    }
    return ClipModel(name, pretrained, net, preprocess, tokenizer, device, pcfg, identity)


def _resolve(name: str, pretrained: str | None, open_clip) -> tuple[str, str]:
    if name in BUILTIN_MODELS:
        return name, f"local-dir:{BUILTIN_MODELS[name]}"
    if name.startswith("local-dir:"):
        folder = Path(name[len("local-dir:"):]).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise ModelError(f"no open_clip_config.json in model folder {folder}")
        return f"local-dir:{folder.name}", f"local-dir:{folder}"
    if os.path.isdir(name):
        return _resolve(f"local-dir:{name}", pretrained, open_clip)
    if name not in open_clip.list_models():
        import difflib

        close = difflib.get_close_matches(name, open_clip.list_models() + list(BUILTIN_MODELS), n=3)
        raise ModelError(
            f"unknown model {name!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
            + " (see open_clip.list_models(), or 'fashion-tiny')"
        )
    if pretrained and not os.path.exists(pretrained):
        looks_like_path = any(sep in pretrained for sep in ("/", "\\")) or pretrained.endswith(
            (".safetensors", ".pt", ".bin", ".pth"))
        if looks_like_path:
            raise ModelError(f"weights file not found: {pretrained}")
        tags = open_clip.list_pretrained_tags_by_model(name)
        if pretrained not in tags:
            raise ModelError(f"unknown weights tag {pretrained!r} for {name}; known tags: {', '.join(tags) or 'none'}")
    return name, name


def weights_fingerprint(net) -> str:
    """Hash of every parameter and buffer of a model (name, dtype, shape and bytes).

    Identifies the weights actually loaded, whatever their source (hub tag, file, random init),
    so a cache can never mix vectors from different weights.
    """
    import torch

    h = hashlib.blake2b(digest_size=16)
    for key, tensor in sorted(net.state_dict().items()):
        t = tensor.detach()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def embed_prompts(clip: ClipModel, prompts: Sequence[str], batch_size: int = 256):
    """L2-normalised float32 text embeddings (numpy, ``len(prompts)×D``) for ``prompts``."""
    import numpy as np
    import torch

    if isinstance(prompts, str):
        prompts = [prompts]
    out = []
    with torch.inference_mode():
        for i in range(0, len(prompts), batch_size):
            tokens = clip.tokenizer(list(prompts[i : i + batch_size])).to(clip.device)
            feats = clip.model.encode_text(tokens).float()
            out.append(torch.nn.functional.normalize(feats, dim=-1).cpu().numpy())
    dim = out[0].shape[1] if out else 0
    return np.concatenate(out) if out else np.zeros((0, dim), np.float32)


class _quiet_open_clip:
    """open_clip logs expected things (QuickGELU hints) at warning level; keep notebooks clean."""

    def __enter__(self):
        self._logger = logging.getLogger()
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)


def _import_open_clip():
    from ..core.errors import require

    return require("open_clip", "CLIP embedding", "open-clip-torch")
