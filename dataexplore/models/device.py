"""Where and in which precision a model runs: device choice, compute dtype, the cast image tower."""

from __future__ import annotations

from typing import Any

from ..core.errors import DataexploreError


def pick_device(device: Any = "auto"):
    """``"auto"`` -> cuda if available, else mps, else cpu; anything else through :class:`torch.device`."""
    import torch

    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DataexploreError("device 'cuda' was asked for, but torch sees no CUDA GPU")
    return dev


def pick_precision(device, precision: str = "auto"):
    """The compute dtype for ``precision`` on ``device`` (``None`` = plain fp32)."""
    import torch

    table = {"fp32": None, "float32": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp16": torch.float16, "float16": torch.float16}
    if precision != "auto":
        if precision not in table:
            raise DataexploreError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
        return table[precision]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.bfloat16 if _cpu_has_fast_bf16() else None


def _cpu_has_fast_bf16() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def image_tower(clip, device, precision: str = "auto"):
    """The model's image encoder ready for inference on ``device``, and its dtype.

    For reduced precision a cast copy of the tower is made once and kept on ``clip``; the
    original fp32 weights stay untouched for text encoding and other precisions.
    """
    import copy

    dtype = pick_precision(device, precision)
    key = (str(device), dtype)
    tower = clip.towers.get(key)
    if tower is None:
        tower = clip.model.visual if dtype is None else copy.deepcopy(clip.model.visual).to(dtype)
        clip.towers[key] = tower.eval()
    return tower, dtype
