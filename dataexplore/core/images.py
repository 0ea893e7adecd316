"""Robust image decoding: every way a real-world image file can be odd, handled in one place.

:func:`decode` turns file bytes or an in-memory array into an 8-bit RGB :class:`PIL.Image.Image`
or raises :class:`DecodeError` with a short human-readable reason. The embedding engine
catches that error per image, so one bad file never stops a long run.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Largest image (in pixels) that is decoded; bigger ones are reported as failures.
#: Pillow's own bomb limit is 89.5 Mpx; we keep the same order of magnitude.
DEFAULT_MAX_PIXELS = 100_000_000


class DecodeError(Exception):
    """One image could not be decoded; ``str(error)`` is the reason shown to the user.

    ``transient`` is true when the cause may not recur (an I/O error while reading, a file that
    vanished during the run, too little memory): such failures are reported but never cached.
    """

    def __init__(self, reason: str, *, transient: bool = False):
        super().__init__(reason)
        self.transient = transient


#: Rows converted per step when scaling high-bit-depth images to 8 bits (bounds the temporaries).
_CONVERT_PIXELS = 1 << 20


def decode_conditions(max_pixels: int, decoder: str = "pil") -> dict:
    """What a decode failure depends on besides the file: the limit, the decoder and its version.

    The embedding cache stores each failure with these and serves it only under the same ones.

    Examples
    --------
    >>> sorted(decode_conditions(5000))
    ['decoder', 'max_pixels', 'pillow']
    """
    import PIL

    return {"max_pixels": int(max_pixels), "decoder": str(decoder), "pillow": PIL.__version__}


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
        at least this large (much faster for large photos; the model resizes anyway). For
        16/32-bit images, shrink by a whole factor (box filter) after the 8-bit conversion, keeping
        both sides at least this large, so the RGB copy is small: peak memory then stays near 3
        bytes per pixel of the file's image instead of 5.

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
    except MemoryError:
        raise DecodeError("out of memory while decoding (not cached: tried again next run)", transient=True) from None
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
        ImageOps.exif_transpose(img, in_place=True)  # in place: no second copy of a large image
        return _to_rgb(img, draft_size)
    except DecodeError:
        raise
    except MemoryError:
        raise DecodeError("out of memory while decoding (not cached: tried again next run)", transient=True) from None
    except Exception as exc:
        raise DecodeError(f"truncated or corrupt image data ({exc})") from None


def _to_rgb(img: Image.Image, draft_size: int | None = None) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _high_depth_to_rgb(img, draft_size)
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


def _high_depth_to_rgb(img: Image.Image, draft_size: int | None = None) -> Image.Image:
    """16- and 32-bit grayscale to 8-bit RGB, a band of rows at a time.

    A whole-image float copy would cost 8-16 bytes per pixel (a 99-Mpx 16-bit PNG of 0.2 MB on disk
    then peaks near 2 GB); converting bands into one uint8 buffer keeps the peak at the decoded
    image (2 or 4 bytes per pixel) plus one byte per pixel. The RGB result adds 4 bytes per pixel
    (Pillow stores RGB padded to 4 bytes), unless ``draft_size`` lets the gray image shrink first. 16-bit data maps
    ``v -> round(v / 257)``; 32-bit data is scaled by 65535 when it exceeds 255, else by 255.
    """
    width, height = img.size
    step = max(1, _CONVERT_PIXELS // max(width, 1))
    sixteen = img.mode.startswith("I;16")
    scale = 1.0 / 257.0
    if not sixteen:
        hi = 0.0
        for top in range(0, height, step):
            band = np.asarray(img.crop((0, top, width, min(height, top + step))))
            if band.size:
                peak = np.nanmax(band) if img.mode == "F" else band.max()
                hi = max(hi, float(peak) if np.isfinite(peak) else 0.0)
        scale = 255.0 / (65535.0 if hi > 255 else 255.0)
    out = np.empty((height, width), np.uint8)
    for top in range(0, height, step):
        stop = min(height, top + step)
        band = np.asarray(img.crop((0, top, width, stop)), dtype=np.float32) * np.float32(scale)
        np.nan_to_num(band, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        np.clip(np.rint(band, out=band), 0, 255, out=band)
        out[top:stop] = band
    img.close()  # frees the high-bit-depth pixels before the RGB copy is made
    gray = Image.frombuffer("L", (width, height), out, "raw", "L", 0, 1)  # shares `out`, no copy
    factor = min(width, height) // draft_size if draft_size else 1
    if factor >= 2:
        gray = gray.reduce(factor)
        del out
    return gray.convert("RGB")


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


_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
             "lanczos": Image.Resampling.LANCZOS, "nearest": Image.Resampling.NEAREST}


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
    img.thumbnail((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def header_size(path: str | os.PathLike[str]) -> tuple[int, int] | str:
    """``(width, height)`` as the decoder shows the image (EXIF rotation applied), read from the file
    header without decoding the pixels; or the reason it cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                orientation = img.getexif().get(0x0112, 1)
    except FileNotFoundError:
        return "image file not found"
    except Image.DecompressionBombError:
        return "image too large (decompression bomb guard)"
    except Exception as exc:  # Pillow raises many types for broken headers
        return f"unreadable image ({type(exc).__name__})"
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)
