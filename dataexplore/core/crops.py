"""Object crops as samples: what the embedding engine reads when it embeds the boxes of :class:`Objects`.

A crop is the object's box plus a context margin, made square:

- the box is grown by ``margin`` × its longer side on every side (default :data:`MARGIN` = 0: the
  square alone already shows what is beside a long box). More context helps a photo CLIP tell a
  small object by its surroundings, and hurts a model trained on tight product shots: ``fashion-tiny``
  names ground-truth crops of composed scenes right 0.85 of the time at margin 0, 0.74 at 0.05 and
  0.60 at 0.1 (measured on :func:`~dataexplore.sources.scenes.fashion_scenes`);
- the grown box is squared around its centre (the shorter side extended to the longer), so the
  model's resize-and-centre-crop never cuts the object off;
- the square is cut from the image; what falls past the image's edge is black.

:class:`CropSamples` is a :class:`~dataexplore.core.samples.Samples` whose rows are the objects:
``read(row)`` returns the crop's pixels, decoded from its image. The last few decoded images are kept,
and the engines read the crops grouped by image (:meth:`CropSamples.read_order`), so each image is
decoded once for all its boxes. Content keys, and with them the embedding cache,
are derived from the image's content key and the whole-pixel square cut (:func:`crop_key`): a second
run reads no pixels of an image whose crops are all cached, a moved or renamed image keeps its crops'
vectors, and a changed image or box computes again. A crop whose image does not have the size its
boxes were drawn on, or whose square is more than :data:`MAX_SIDE` times the image, fails with the
reason.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from .errors import SourceError
from .ids import rows_of
from .images import DEFAULT_MAX_PIXELS, DecodeError, decode
from .samples import Samples

#: Context around a box, as a share of its longer side on every side.
MARGIN = 0.0
#: Decoded images kept while crops are read (per reader).
KEEP_DECODED = 8
#: A crop square may be at most this many times its image's longer side (a box from a file that asks for
#: more is a failure with its reason, not an allocation of gigabytes).
MAX_SIDE = 4


class CropSamples(Samples):
    """The crops of a set of objects, one row each (see the module docs); build with :func:`crops`.

    Attributes
    ----------
    table : pandas.DataFrame
        The objects table (``id`` = object id) with the image's ``filepath`` where it has one, and the
        image's metadata carried along, each column of the images table with ``image_`` before its
        name (``image_width``, ``image_camera``, ...), so a map of objects colours and filters by
        camera, time or scene as well as by class and box.
    parent : Samples
        The images the crops are cut from.
    parent_rows : numpy.ndarray
        Row in ``parent`` of each crop's image.
    squares : numpy.ndarray
        ``N×3`` float64: the crop square's left, top and side in pixels.
    sizes : numpy.ndarray
        ``len(parent)×2`` float64: each image's declared width and height (NaN where unknown).
    margin : float
    objects : Objects or None
        The objects the crops are of (what a map of them exports as boxes); ``None`` in :meth:`slim` copies.
    """

    def __init__(self, objects: Any, margin: float = MARGIN, max_pixels: int = DEFAULT_MAX_PIXELS):
        if not (isinstance(margin, (int, float)) and 0 <= margin <= 2):
            raise SourceError(f"margin must be a share of the box from 0 to 2, got {margin!r}")
        parent = objects.images
        table = objects.table.copy()
        self.parent_rows = rows_of(parent.ids, table["image_id"].to_numpy(dtype=object))
        for column in parent.table.columns:  # the image's metadata, carried along
            if column != "id" and f"image_{column}" not in table.columns:
                table[f"image_{column}"] = parent.table[column].to_numpy()[self.parent_rows]
        if "filepath" in parent.table.columns:
            table["filepath"] = parent.table["filepath"].to_numpy(dtype=object)[self.parent_rows]
        self.table = table.reset_index(drop=True)
        self.images = None
        self.name = f"crops of {objects.name}" if objects.name else "object crops"
        self.provenance = {"kind": "object crops", "margin": float(margin)}
        self.parent, self.margin, self.max_pixels = parent, float(margin), int(max_pixels)
        self.objects = objects
        self.squares = squares(objects.boxes(), self.margin)
        t = parent.table  # the size each image's boxes were drawn on (NaN where unknown), read per crop
        self.sizes = t[["width", "height"]].to_numpy(np.float64) if {"width", "height"} <= set(t.columns) \
            else np.full((len(t), 2), np.nan)
        self._decoded: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # decoding processes get their own memory of decoded images
        state = dict(self.__dict__)
        state["_decoded"], state["_lock"] = OrderedDict(), None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def read(self, row: int) -> np.ndarray:
        """The crop's pixels (``S×S×3`` uint8, ``S`` the square's side in image pixels).

        Raises
        ------
        dataexplore.core.images.DecodeError
            When the crop's image cannot be read or decoded (its reason).
        """
        left, top, side = pixel_square(self.squares[row])
        parent = int(self.parent_rows[row])
        declared = self.sizes[parent]
        if np.isfinite(declared).all() and side > MAX_SIDE * declared.max():
            raise DecodeError(f"box far larger than its image ({side} px square for a "
                              f"{int(declared[0])}×{int(declared[1])} image)")
        image = self._image(parent)
        if np.isfinite(declared).all() and (image.shape[1], image.shape[0]) != (int(declared[0]), int(declared[1])):
            raise DecodeError(f"image is {image.shape[1]}×{image.shape[0]}, its boxes assume "
                              f"{int(declared[0])}×{int(declared[1])}")
        return cut(image, left, top, side)

    def read_order(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` in the order to read them: grouped by image (stable), so each image is decoded once."""
        rows = np.asarray(rows, np.int64)
        return rows[np.argsort(self.parent_rows[rows], kind="stable")]

    def in_context(self, row: int, size: int = 128) -> np.ndarray:
        """The crop beside its whole image with the box drawn: ``size × 2·size × 3`` uint8 (what a map's
        hover shows). The image is fitted into its half; the box is outlined in yellow, the image's
        other boxes in grey."""
        from PIL import Image, ImageDraw

        parent = int(self.parent_rows[row])
        image = Image.fromarray(self._image(parent))
        scale = size / max(image.size)
        fitted = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                              Image.Resampling.BILINEAR)
        right = Image.new("RGB", (size, size))
        ox, oy = (size - fitted.width) // 2, (size - fitted.height) // 2
        right.paste(fitted, (ox, oy))
        draw = ImageDraw.Draw(right)
        boxes = self.table[["x", "y", "w", "h"]].to_numpy(np.float64)
        for other in np.flatnonzero(self.parent_rows == parent):
            if other != row:
                _outline(draw, boxes[other], scale, ox, oy, (150, 150, 150))
        _outline(draw, boxes[row], scale, ox, oy, (255, 210, 0))
        left = Image.fromarray(self.read(row)).resize((size, size), Image.Resampling.BILINEAR)
        out = Image.new("RGB", (2 * size, size))
        out.paste(left, (0, 0))
        out.paste(right, (size, 0))
        return np.asarray(out)

    def subset(self, rows: Sequence[int] | np.ndarray) -> "CropSamples":
        out = CropSamples.__new__(CropSamples)
        out.__setstate__(self.__getstate__())
        rows = np.asarray(rows, np.int64)
        out.table = self.table.iloc[rows].reset_index(drop=True)
        out.parent_rows, out.squares = self.parent_rows[rows], self.squares[rows]
        out.objects = None if self.objects is None else self.objects.subset(rows)
        return out

    def slim(self) -> "CropSamples":
        """What reading needs and no more (ids, images, squares): for shipping to decoding workers."""
        out = self.subset(np.arange(len(self)))
        out.table, out.objects = out.table[["id"]], None
        return out

    def keys_from(self, parent_keys: Sequence[str | None]) -> list[str | None]:
        """Each crop's content key from its image's (``None`` where the image's is unknown)."""
        return [None if parent_keys[p] is None else crop_key(parent_keys[p], sq, self.sizes[p])
                for p, sq in zip(self.parent_rows, self.squares)]

    def _image(self, row: int) -> np.ndarray:
        with self._lock:
            hit = self._decoded.get(row)
            if hit is not None:
                self._decoded.move_to_end(row)
                return hit
        img = np.asarray(decode(self.parent.read(row), max_pixels=self.max_pixels))
        with self._lock:
            self._decoded[row] = img
            while len(self._decoded) > KEEP_DECODED:
                self._decoded.popitem(last=False)
        return img


def _outline(draw: Any, box: np.ndarray, scale: float, ox: int, oy: int, colour: tuple) -> None:
    x, y, w, h = (float(v) * scale for v in box)
    draw.rectangle([ox + x, oy + y, ox + x + max(w, 1) - 1, oy + y + max(h, 1) - 1], outline=colour,
                   width=2 if w > 8 else 1)


def crops(objects: Any, margin: float = MARGIN) -> CropSamples:
    """The crops of ``objects`` (:class:`~dataexplore.core.objects.Objects`) as samples to embed.

    ``dx.embed(objects)`` embeds ``crops(objects)``; call this for another ``margin``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, dataexplore as dx
    >>> from dataexplore.core.objects import Objects
    >>> img = np.zeros((1, 40, 60), np.uint8); img[0, 10:20, 5:25] = 200
    >>> obj = Objects(pd.DataFrame({"image_id": ["0"], "x": [5], "y": [10], "w": [20], "h": [10],
    ...                             "label": ["box"], "kind": "ground_truth"}), dx.load(img))
    >>> c = crops(obj, margin=0.1)
    >>> c.squares.tolist(), c.read(0).shape
    ([[3.0, 3.0, 24.0]], (24, 24, 3))
    """
    if isinstance(objects, CropSamples):
        return objects
    if not (hasattr(objects, "boxes") and hasattr(objects, "images")):
        raise SourceError(f"crops need Objects (boxes in images), got {type(objects).__name__}")
    return CropSamples(objects, margin)


def squares(boxes: np.ndarray, margin: float) -> np.ndarray:
    """``N×3`` [left, top, side] of each ``[x, y, w, h]`` box grown by ``margin`` and made square."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    side = np.maximum(boxes[:, 2], boxes[:, 3]) * (1 + 2 * margin)
    cx, cy = boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
    return np.c_[cx - side / 2, cy - side / 2, side]


def cut(image: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    """The ``side×side`` square of ``image`` (H×W×3) at (left, top); black past the image's edges."""
    out = np.zeros((side, side, image.shape[2]), np.uint8)
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + side, w), min(top + side, h)
    if x1 > x0 and y1 > y0:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = image[y0:y1, x0:x1]
    return out


def pixel_square(square: np.ndarray) -> tuple[int, int, int]:
    """The whole-pixel square a crop cuts: ``(left, top, side)`` of a ``[left, top, side]`` float square."""
    left, top, side = (float(v) for v in square)
    return int(np.floor(left)), int(np.floor(top)), max(1, int(round(side)))


def crop_key(image_key: str, square: np.ndarray, size: Sequence[float] = (np.nan, np.nan)) -> str:
    """The content key of one crop: its image's key, the whole-pixel square cut from it and the image size
    its boxes were drawn on, hashed (two boxes that cut the same pixels share a key; the margin is in the
    square already; boxes read with another image size are computed, and checked, again)."""
    left, top, side = pixel_square(square)
    text = f"crop|{image_key}|{left},{top},{side}|{size[0]}x{size[1]}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


__all__ = ["CropSamples", "MARGIN", "crop_key", "crops", "cut", "pixel_square", "squares"]
