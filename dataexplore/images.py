"""Robust image decoding: every way a real-world image file can be odd, handled in one place.

:func:`decode` turns file bytes or an in-memory array into an 8-bit RGB :class:`PIL.Image.Image`
or raises :class:`DecodeError` with a short human-readable reason. The embedding engine
catches that error per image, so one bad file never stops a long run.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Largest image (in pixels) that is decoded; bigger ones are reported as failures.
#: Pillow's own bomb limit is 89.5 Mpx; we keep the same order of magnitude.
DEFAULT_MAX_PIXELS = 100_000_000


class DecodeError(Exception):
    """One image could not be decoded; ``str(error)`` is the reason shown to the user."""


def decode(
    data: bytes | np.ndarray,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
) -> Image.Image:
    """Decode one image into 8-bit RGB.

    Parameters
    ----------
    data : bytes or numpy.ndarray
        Encoded file content, or pixels as ``H×W`` / ``H×W×C`` (C in 1, 3, 4) uint8 array.
    max_pixels : int
        Images with more pixels than this are rejected before their pixel data is read
        (decompression-bomb guard).
    draft_size : int, optional
        For JPEG, let the decoder downscale by a power of two while keeping both sides
        at least this large (much faster for large photos; the model resizes anyway).

    Returns
    -------
    PIL.Image.Image
        An RGB image, EXIF orientation applied, transparency composited on white,
        16-bit data scaled to 8 bits, first frame of animations.

    Raises
    ------
    DecodeError
        With the reason, e.g. ``"empty file"`` or ``"not an image (cannot identify format)"``.
    """
    if isinstance(data, np.ndarray):
        return _from_array(data)
    if len(data) == 0:
        raise DecodeError("empty file")
    try:
        with warnings.catch_warnings():
            # we apply our own size limit below; Pillow's warning would only be noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise DecodeError("not an image (cannot identify format)") from None
    except Image.DecompressionBombError:
        raise DecodeError("image too large (decompression bomb guard)") from None
    except Exception as exc:  # Pillow raises many types for broken headers
        raise DecodeError(f"corrupt image header ({type(exc).__name__}: {exc})") from None
    width, height = img.size
    if width <= 0 or height <= 0:
        raise DecodeError(f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        raise DecodeError(
            f"image too large ({width}x{height} = {width * height:,} pixels > limit {max_pixels:,})"
        )
    try:
        if draft_size and img.format == "JPEG":
            img.draft("RGB", (draft_size, draft_size))
        img.load()
        img = ImageOps.exif_transpose(img)
        return _to_rgb(img)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"truncated or corrupt image data ({exc})") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img)
        if mode == "F" or mode == "I":
            # 32-bit data: scale the observed range, 16-bit PNGs often land here
            arr = arr.astype(np.float64)
            hi = 65535.0 if arr.max() > 255 else 255.0
            arr = np.clip(arr / hi * 255.0, 0, 255)
        else:
            arr = arr.astype(np.float64) / 257.0
        return Image.fromarray(np.round(arr).astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode == "P":
        return img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    # L, 1, CMYK, YCbCr, LAB, HSV: Pillow converts these correctly
    return img.convert("RGB")


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.dtype != np.uint8:
        raise DecodeError(f"array image must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        return Image.fromarray(arr, "L").convert("RGB")
    if arr.ndim == 3 and arr.shape[2] == 1:
        return Image.fromarray(arr[:, :, 0], "L").convert("RGB")
    if arr.ndim == 3 and arr.shape[2] == 3:
        return Image.fromarray(np.ascontiguousarray(arr), "RGB")
    if arr.ndim == 3 and arr.shape[2] == 4:
        return _to_rgb(Image.fromarray(np.ascontiguousarray(arr), "RGBA"))
    raise DecodeError(f"array image must be HxW or HxWxC with C in (1, 3, 4), got shape {arr.shape}")


_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS,
             "nearest": Image.NEAREST}


def resize_center_crop(img: Image.Image, size: int, interpolation: str = "bicubic") -> Image.Image:
    """Resize the shortest side to ``size`` and centre-crop to ``size×size`` in one resampling pass.

    Gives the same pixels (to within uint8 rounding) as torchvision's ``Resize(size)`` followed by
    ``CenterCrop(size)`` on a PIL image, which is what CLIP preprocessing does, but resamples only
    the region that survives the crop: about a third less work for a 3:2 photo. Small images are
    upsampled the same way.
    """
    w, h = img.size
    if (w, h) == (size, size):
        return img
    if interpolation not in _RESAMPLE:
        raise ValueError(f"unsupported interpolation {interpolation!r}")
    # torchvision's output size for Resize(int): the short side becomes size, the long side truncates
    nw, nh = (int(size * w / h), size) if w >= h else (size, int(size * h / w))
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    sx, sy = w / nw, h / nh
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    return img.resize((size, size), _RESAMPLE[interpolation], box=box)


def thumbnail(data: bytes | np.ndarray, size: int = 128, quality: int = 85) -> bytes:
    """A JPEG thumbnail (longest side at most ``size``) of one image's raw content."""
    img = decode(data, draft_size=size)
    img.thumbnail((size, size), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
