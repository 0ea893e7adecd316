"""Turning samples into model-ready batches: decode, resize, crop, collate, normalise.

The decoding thread (on a CPU) or worker processes (on an accelerator) read each file once, hash
those bytes when the content key is not known yet (the key then always belongs to the pixels
embedded), decode the image and resize+crop it to the model's input in one resampling pass,
producing ``3×S×S`` **uint8**. Batches cross to the device as uint8 (a quarter of the bytes of float32; pinned on
CUDA) and are normalised there in one vectorised step. With ``decode="torchvision"`` JPEG bytes
travel undecoded and are decoded on the device (nvJPEG on CUDA).

Models whose preprocessing is not "resize the short side, centre-crop" (open_clip's
``resize_mode`` other than ``"shortest"``) use their own transform per image instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Set
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.images import DecodeError, decode, resize_center_crop
from ..models import input_size
from .cache import hash_array, hash_bytes

JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass
class Batch:
    """One batch: ``pixels`` (uint8 N×3×S×S, or float N×3×S×S already normalised), their rows,
    raw JPEG bytes still to decode on the device, the rows that failed with their reason, which
    of those failures are transient (``retry``: reported, never cached), and the content keys
    hashed from the bytes that were decoded (``keys``: row -> key)."""

    rows: list = field(default_factory=list)
    pixels: Any = None
    jpeg_rows: list = field(default_factory=list)
    jpeg: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    retry: set = field(default_factory=set)
    keys: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows) + len(self.jpeg_rows) + len(self.failed)

    def drop(self, rows: set) -> None:
        """Remove ``rows`` from the batch (e.g. found in the cache under the key just hashed)."""
        import torch

        if not rows:
            return
        keep = [i for i, r in enumerate(self.rows) if r not in rows]
        if len(keep) < len(self.rows):
            self.pixels = self.pixels[torch.as_tensor(keep, dtype=torch.long)] if keep else None
            self.rows = [self.rows[i] for i in keep]
        jpeg = [(r, data) for r, data in zip(self.jpeg_rows, self.jpeg) if r not in rows]
        self.jpeg_rows, self.jpeg = [r for r, _ in jpeg], [data for _, data in jpeg]
        self.failed = {r: why for r, why in self.failed.items() if r not in rows}
        self.retry -= rows


class ImageDataset:
    """Rows of a :class:`Samples` -> ``(row, kind, tensor, key)``, or ``(row, None, reason, key)`` for a
    failure and ``(row, "retry", reason, key)`` for a transient one (out of memory, an I/O error).

    ``key`` is the content hash of the bytes read for rows in ``hash_rows``, else ``None`` (also
    when the file could not be read). :meth:`batch` decodes a range of rows straight into one
    uint8 array, the fast path for a thread.

    Parameters
    ----------
    samples : Samples
    rows : numpy.ndarray
        Which rows to produce, in order.
    preprocess_cfg : dict
        open_clip's ``size``, ``interpolation``, ``resize_mode`` (and ``mean``/``std``, used later).
    preprocess : callable
        The model's own transform, used when its resize mode is not ``"shortest"``.
    max_pixels : int
        Decompression-bomb guard.
    raw_jpeg : bool
        Pass JPEG files through undecoded (for device-side decoding).
    hash_rows : set of int
        Rows whose content key is computed here, from the bytes that are decoded.
    """

    def __init__(self, samples, rows: np.ndarray, preprocess_cfg: dict, preprocess, max_pixels: int,
                 raw_jpeg: bool = False, hash_rows: Set[int] = frozenset()):
        self.size = input_size(preprocess_cfg)
        self.interpolation = preprocess_cfg.get("interpolation", "bicubic")
        self.fused = preprocess_cfg.get("resize_mode", "shortest") == "shortest"
        self.samples, self.rows, self.preprocess = samples, rows, preprocess
        self.max_pixels, self.raw_jpeg, self.hash_rows = max_pixels, raw_jpeg, hash_rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        import torch

        row, kind, payload, key = self._load(i)
        if kind == "uint8":
            payload = torch.from_numpy(np.asarray(payload)).permute(2, 0, 1)
        return row, kind, payload, key

    def _load(self, i: int):
        """``(row, kind, payload, key)`` with a ``uint8`` payload still a PIL image of the input size."""
        import torch

        row, key = int(self.rows[i]), None
        try:
            data = self.samples.read(row)
            if row in self.hash_rows:
                key = hash_bytes(data) if isinstance(data, bytes) else hash_array(data)
            if self.raw_jpeg and isinstance(data, bytes) and data[:3] == JPEG_MAGIC:
                return row, "jpeg", torch.frombuffer(bytearray(data), dtype=torch.uint8), key
            img = decode(data, max_pixels=self.max_pixels, draft_size=self.size)
            if not self.fused:
                return row, "float", self.preprocess(img), key
            return row, "uint8", resize_center_crop(img, self.size, self.interpolation), key
        except DecodeError as exc:
            return row, "retry" if exc.transient else None, str(exc), key
        except MemoryError:
            return row, "retry", "out of memory while decoding (not cached: tried again next run)", key
        except Exception as exc:  # a broken image must never stop a long run
            return row, None, f"decode failed ({type(exc).__name__}: {exc})", key

    def batch(self, start: int, stop: int) -> Batch:
        """Rows ``start:stop`` as one :class:`Batch`, resized images copied straight into one uint8 array."""
        import torch

        if not self.fused:
            return collate([self[i] for i in range(start, stop)])
        out = np.empty((stop - start, self.size, self.size, 3), dtype=np.uint8)
        batch = Batch()
        for i in range(start, stop):
            row, kind, payload, key = self._load(i)
            if key is not None:
                batch.keys[row] = key
            if kind == "uint8":
                out[len(batch.rows)] = np.asarray(payload)
                batch.rows.append(row)
            else:
                _add(batch, row, kind, payload)
        if batch.rows:  # N×S×S×3 -> N×3×S×S, as collate stacks them
            batch.pixels = torch.from_numpy(out[: len(batch.rows)]).permute(0, 3, 1, 2).contiguous()
        return batch


def _add(batch: Batch, row: int, kind, payload) -> None:
    """Put a failure or raw JPEG bytes into ``batch``."""
    if kind is None or kind == "retry":
        batch.failed[row] = payload
        if kind == "retry":
            batch.retry.add(row)
    elif kind == "jpeg":
        batch.jpeg_rows.append(row)
        batch.jpeg.append(payload)
    else:
        raise ValueError(f"not a failure or JPEG bytes: {kind!r}")


def collate(items) -> Batch:
    """Stack decoded images, keep JPEG bytes apart, collect failures and the keys hashed."""
    import torch

    batch, pixels = Batch(), []
    for row, kind, payload, key in items:
        if key is not None:
            batch.keys[row] = key
        if kind in ("uint8", "float"):
            batch.rows.append(row)
            pixels.append(payload)
        else:
            _add(batch, row, kind, payload)
    batch.pixels = torch.stack(pixels) if pixels else None
    return batch


def to_model_input(batch: Batch, preprocess_cfg: dict, device, dtype, max_pixels: int):
    """Move a batch to ``device``, decode its JPEGs there, normalise; returns (rows, tensor or None).

    Rows whose JPEG fails to decode on the device are added to ``batch.failed``.
    """
    import torch

    non_blocking = device.type == "cuda"
    rows, parts = list(batch.rows), []
    if batch.pixels is not None:
        parts.append(batch.pixels.to(device, non_blocking=non_blocking))
    if batch.jpeg:
        good, decoded, bad = decode_jpeg_batch(batch.jpeg, batch.jpeg_rows, device, input_size(preprocess_cfg),
                                               preprocess_cfg.get("interpolation", "bicubic"), max_pixels)
        batch.failed.update(bad)
        batch.retry.update(r for r, why in bad.items() if "out of memory" in why)  # the device, not the file
        if good:
            rows += good
            parts.append(decoded)
    if not parts:
        return rows, None
    if len(parts) == 2 and parts[0].dtype != parts[1].dtype:  # model-specific float path + JPEGs
        parts = [normalize(p, preprocess_cfg) if p.dtype == torch.uint8 else p for p in parts]
    x = torch.cat(parts) if len(parts) > 1 else parts[0]
    if x.dtype == torch.uint8:
        x = normalize(x, preprocess_cfg)
    return rows, x if dtype is None else x.to(dtype)


def normalize(pixels, preprocess_cfg: dict):
    """uint8 N×3×H×W -> float32 ``(x / 255 - mean) / std``, one fused multiply-add on the device."""
    import torch

    mean = torch.tensor(preprocess_cfg["mean"], dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(preprocess_cfg["std"], dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1)
    scale = 1.0 / (255.0 * std)
    return torch.addcmul(-mean / std, pixels.float(), scale)


def decode_jpeg_batch(jpeg, rows, device, size: int, interpolation: str, max_pixels: int):
    """Decode JPEG bytes on ``device`` (nvJPEG on CUDA), then resize+crop there; uint8 N×3×S×S."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.transforms.v2 import functional as F

    target = device if device.type == "cuda" else "cpu"
    bad = {}
    with warnings.catch_warnings():
        # torchvision >= 0.29 points to TorchCodec for decoding; nvJPEG through torchvision still works
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            images = decode_jpeg(jpeg, mode=ImageReadMode.RGB, device=target, apply_exif_orientation=True)
        except RuntimeError:  # one bad file fails the whole batch: isolate it
            images = []
            for row, data in zip(rows, jpeg):
                try:
                    images.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=target,
                                              apply_exif_orientation=True))
                except RuntimeError as exc:
                    bad[row] = f"truncated or corrupt image data ({exc})"
    interp = {"bicubic": F.InterpolationMode.BICUBIC, "bilinear": F.InterpolationMode.BILINEAR}.get(
        interpolation, F.InterpolationMode.BICUBIC)
    out, out_rows = [], []
    for row, img in zip([r for r in rows if r not in bad], images):
        h, w = img.shape[-2:]
        if h * w > max_pixels:
            bad[row] = f"image too large ({w}x{h} pixels > limit {max_pixels:,})"
            continue
        img = F.resize(img.to(device, non_blocking=True), size, interpolation=interp, antialias=True)
        out.append(F.center_crop(img, [size, size]))
        out_rows.append(row)
    return out_rows, (torch.stack(out) if out else None), bad
