"""Turning samples into model-ready batches: decode, resize, crop, collate, normalise.

Workers (processes on an accelerator, threads on a CPU) decode each image and resize+crop it to
the model's input in one resampling pass, producing ``3×S×S`` **uint8**. Batches cross to the
device as uint8 (a quarter of the bytes of float32; pinned on CUDA) and are normalised there in
one vectorised step. With ``decode="torchvision"`` JPEG bytes travel undecoded and are decoded
on the device (nvJPEG on CUDA).

Models whose preprocessing is not "resize the short side, centre-crop" (open_clip's
``resize_mode`` other than ``"shortest"``) use their own transform per image instead.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..core.images import DecodeError, decode, resize_center_crop

JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass
class Batch:
    """One batch: ``pixels`` (uint8 N×3×S×S, or float N×3×S×S already normalised), their rows,
    raw JPEG bytes still to decode on the device, the rows that failed with their reason, and
    which of those failures are transient (``retry``: reported, never cached)."""

    rows: list = field(default_factory=list)
    pixels: object = None
    jpeg_rows: list = field(default_factory=list)
    jpeg: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    retry: set = field(default_factory=set)


class ImageDataset:
    """Rows of a :class:`Samples` -> ``(row, kind, tensor)``, or ``(row, None, reason)`` for a failure
    and ``(row, "retry", reason)`` for a transient one (out of memory, an I/O error).

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
    """

    def __init__(self, samples, rows: np.ndarray, preprocess_cfg: dict, preprocess, max_pixels: int,
                 raw_jpeg: bool = False):
        size = preprocess_cfg["size"]
        self.size = size if isinstance(size, int) else max(size)
        self.interpolation = preprocess_cfg.get("interpolation", "bicubic")
        self.fused = preprocess_cfg.get("resize_mode", "shortest") == "shortest"
        self.samples, self.rows, self.preprocess = samples, rows, preprocess
        self.max_pixels, self.raw_jpeg = max_pixels, raw_jpeg

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        import torch

        row = int(self.rows[i])
        try:
            data = self.samples.read(row)
            if self.raw_jpeg and isinstance(data, bytes) and data[:3] == JPEG_MAGIC:
                return row, "jpeg", torch.frombuffer(bytearray(data), dtype=torch.uint8)
            img = decode(data, max_pixels=self.max_pixels, draft_size=self.size)
            if not self.fused:
                return row, "float", self.preprocess(img)
            img = resize_center_crop(img, self.size, self.interpolation)
            return row, "uint8", torch.from_numpy(np.array(img)).permute(2, 0, 1)
        except DecodeError as exc:
            return row, "retry" if exc.transient else None, str(exc)
        except MemoryError:
            return row, "retry", "out of memory while decoding (not cached: tried again next run)"
        except Exception as exc:  # a broken image must never stop a long run
            return row, None, f"decode failed ({type(exc).__name__}: {exc})"


def collate(items) -> Batch:
    """Stack decoded images, keep JPEG bytes apart, collect failures."""
    import torch

    batch, pixels = Batch(), []
    for row, kind, payload in items:
        if kind is None or kind == "retry":
            batch.failed[row] = payload
            if kind == "retry":
                batch.retry.add(row)
        elif kind == "jpeg":
            batch.jpeg_rows.append(row)
            batch.jpeg.append(payload)
        else:
            batch.rows.append(row)
            pixels.append(payload)
    batch.pixels = torch.stack(pixels) if pixels else None
    return batch


def threaded_batches(dataset: ImageDataset, batch_size: int, threads: int):
    """Batches decoded by a thread pool (PIL releases the GIL while decoding and resizing)."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for start in range(0, len(dataset), batch_size):
            stop = min(start + batch_size, len(dataset))
            yield collate(list(pool.map(dataset.__getitem__, range(start, stop))))


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
        size = preprocess_cfg["size"]
        size = size if isinstance(size, int) else max(size)
        good, decoded, bad = decode_jpeg_batch(batch.jpeg, batch.jpeg_rows, device, size,
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
