"""Detection scenes composed from real Fashion-MNIST items, with exact ground-truth boxes.

No detection dataset ships with a registry package, so this module builds one that is honest
about what it is:

- **real**: every object is a real Fashion-MNIST image (a Zalando product photo reduced to
  28×28 grayscale, MIT licence) with its published class; the ``source_id`` column names which;
- **composed**: the canvas, where each item sits, its size, its brightness, the background and
  the noise are drawn here from a seeded generator. Nothing else about the items is changed.

How a canvas is drawn (``size×size`` uint8, grayscale):

1. a background: a flat dark grey level (15-70) or a smooth linear gradient around such a level
   (amplitude 10-40, random direction, never reaching black), half the canvases each;
2. 2-6 items (``items``), each resized from 28×28 to a square of 20-48 px (bilinear, antialiased
   by Pillow), its pixels below :data:`ITEM_MIN` (of 255, the resampling halo) left out;
3. each item scaled in intensity by its ``contrast``: 0.55-1.0, or 0.05-0.12 for a *faint* item
   (a share ``low_contrast`` of the items, drawn independently): dim but visible, near the level
   where a threshold against the background starts to lose them (at 0.2-0.3 a tuned threshold
   still finds about 85% of them);
4. each item placed at random with a gap of at least :data:`GAP` px to the others (made smaller,
   down to 20 px, while no free place is found; left out when none is found even then), or, for a
   share ``overlap`` of the items, pushed against an item already placed until their pixels touch
   or overlap by a few pixels (falling back to a free place when that does not fit). The item it
   is pushed against touches too, so the share of touching items is larger than ``overlap``;
5. canvas = background + the items, overlapping items combined by their maximum (so where two
   items overlap the brighter one shows, as with light objects on a dark table), + Gaussian noise
   of a per-canvas sigma in ``[noise/2, noise]``, rounded and clipped to 0-255.

Ground-truth boxes are exact: the tight bounding box of the pixels each item contributes to the
canvas (its drawn mask), not the square it was pasted in.

Source string for :func:`load_scenes`: ``"fashion-scenes"`` (test split, 500 canvases),
``"fashion-scenes:train"``, ``"fashion-scenes:test:200"``.
"""

from __future__ import annotations

import os
import re
from typing import Iterable

import numpy as np
import pandas as pd

from ..core.errors import SourceError
from ..core.objects import GROUND_TRUTH, Objects
from ..core.samples import Samples
from .datasets import FASHION_MNIST_CLASSES, FASHION_MNIST_PHRASES, fashion_mnist

#: Item sides in pixels (the 28×28 item is resized to a square of this side).
SCALE_RANGE = (20, 48)
#: Intensity factors of normal and of faint items.
CONTRAST_RANGE, FAINT_RANGE = (0.55, 1.0), (0.05, 0.12)
#: Resized item pixels below this (of 255) are not drawn: they are the resampling halo.
ITEM_MIN = 12
#: Smallest gap in pixels between the boxes of items placed apart.
GAP = 4
#: Background levels and gradient amplitudes (grey levels).
BACKGROUND_RANGE, GRADIENT_RANGE = (15.0, 70.0), (10.0, 40.0)
_SPEC = re.compile(r"^fashion-scenes(?::(?P<split>[a-z]+))?(?::(?P<n>\d+))?$")
_TRIES = 60


def is_scenes_spec(text: str) -> bool:
    """True if ``text`` names composed scenes (``"fashion-scenes[:train|test[:N]]"``)."""
    return text == "fashion-scenes" or text.startswith("fashion-scenes:")


def load_scenes(spec: str) -> Objects:
    """The scenes of a source string, e.g. ``"fashion-scenes:train:500"`` (default seed)."""
    m = _SPEC.match(spec)
    if not m:
        raise SourceError(f"bad scenes source {spec!r}: use 'fashion-scenes[:train|test[:N]]'")
    n = m.group("n")
    return fashion_scenes(m.group("split") or "test", n=int(n) if n is not None else 500)


def fashion_scenes(split: str = "train", n: int = 500, *, seed: int = 0, items: tuple[int, int] = (2, 6),
                   size: int = 96, exclude_labels: Iterable[str] = (), low_contrast: float = 0.0,
                   overlap: float = 0.0, noise: float = 4.0,
                   data_dir: str | os.PathLike | None = None) -> Objects:
    """Canvases of real Fashion-MNIST items with exact boxes: a detection set that needs no download.

    See the module documentation for what is real (the items and their classes) and what is
    composed (placement, size, contrast, background, noise).

    Parameters
    ----------
    split : {"train", "test"}
        The Fashion-MNIST split the items come from (train and test scenes share no item).
    n : int
        Number of canvases.
    seed : int
        Same seed, same arguments: the same canvases and boxes.
    items : (int, int)
        Fewest and most items per canvas (inclusive). A canvas may hold fewer when no free place
        is left.
    size : int
        Canvas side in pixels (at least 28).
    exclude_labels : iterable of str
        Classes never drawn (Fashion-MNIST class names such as ``"Bag"`` or their phrases such as
        ``"bag"``): a planted coverage gap.
    low_contrast : float
        Share of items drawn faint (contrast 0.15-0.3 instead of 0.55-1.0); 1 makes all faint.
    overlap : float
        Share of items placed touching or overlapping an item already on the canvas.
    noise : float
        Largest per-canvas noise sigma in grey levels (each canvas draws one in
        ``[noise/2, noise]``); 0 for noise-free canvases. Only the pixels depend on it: the
        same seed gives the same items and boxes whatever the noise.
    data_dir : path, optional
        Where the Fashion-MNIST files are (see :func:`~dataexplore.sources.datasets.fashion_mnist`).

    Returns
    -------
    Objects
        Ground-truth boxes (``kind="ground_truth"``, ``score`` NaN) with columns ``contrast``
        (intensity factor), ``scale`` (item side in px), ``faint`` (drawn faint), ``overlaps``
        (its box intersects another box), ``touching`` (its pixels touch or overlap another
        item's), ``area`` (drawn pixels) and ``source_id`` (the Fashion-MNIST image). Its
        ``images`` are in-memory ``n×size×size`` canvases with columns ``background`` (mean
        background level), ``background_kind`` (``"flat"`` or ``"gradient"``), ``gradient``
        (amplitude, 0 when flat), ``noise`` (sigma) and ``n_items``.

    Examples
    --------
    >>> import dataexplore as dx
    >>> from dataexplore.sources.scenes import fashion_scenes
    >>> scenes = fashion_scenes("test", n=4, low_contrast=0.5, overlap=0.3)  # doctest: +SKIP
    >>> scenes.images.images.shape  # doctest: +SKIP
    (4, 96, 96)
    >>> sorted(scenes.table.columns)[:4]  # doctest: +SKIP
    ['area', 'contrast', 'faint', 'h']
    """
    lo, hi = _check(split, n, items, size, low_contrast, overlap, noise)
    excluded = _class_names(exclude_labels)
    source = fashion_mnist(split, data_dir=data_dir)
    pool = np.flatnonzero(~source.table["label"].isin(excluded).to_numpy())
    if not len(pool):
        raise SourceError("exclude_labels leaves no class to draw")
    rng = np.random.default_rng(seed)
    canvases = np.empty((n, size, size), np.uint8)
    image_rows: list[dict] = []
    object_rows: list[dict] = []
    for i in range(n):
        image_id = f"{split}-scene-{i:05d}"
        canvas, info, objs = _compose(rng, source, pool, size, int(rng.integers(lo, hi + 1)), low_contrast,
                                      overlap, noise)
        canvases[i] = canvas
        image_rows.append({"id": image_id, **info, "n_items": len(objs)})
        object_rows += [{"image_id": image_id, **o} for o in objs]
    images = Samples(pd.DataFrame(image_rows), images=canvases, name=f"fashion-scenes:{split}:{n}",
                     provenance={"kind": "fashion-scenes", "split": split, "seed": seed, "items": [lo, hi],
                                 "size": size, "exclude_labels": sorted(excluded), "low_contrast": low_contrast,
                                 "overlap": overlap, "noise": noise})
    columns = ["image_id", "x", "y", "w", "h", "label", "kind", "contrast", "scale", "faint", "overlaps",
               "touching", "area", "source_id"]
    table = pd.DataFrame(object_rows, columns=columns)
    return Objects(table, images, name=images.name)


def _check(split, n, items, size, low_contrast, overlap, noise) -> tuple[int, int]:
    if split not in ("train", "test"):
        raise SourceError(f"scenes split must be 'train' or 'test', got {split!r}")
    if int(n) != n or n < 1:
        raise SourceError(f"number of scenes must be an integer >= 1, got {n!r}")
    try:
        lo, hi = (int(v) for v in items)
    except (TypeError, ValueError):
        raise SourceError(f"items must be two integers (fewest, most), got {items!r}") from None
    if not 1 <= lo <= hi:
        raise SourceError(f"items must satisfy 1 <= fewest <= most, got {items!r}")
    if int(size) != size or size < 28:
        raise SourceError(f"canvas size must be an integer >= 28, got {size!r}")
    for name, value in (("low_contrast", low_contrast), ("overlap", overlap)):
        if not 0.0 <= float(value) <= 1.0:
            raise SourceError(f"{name} is a share of the items, between 0 and 1; got {value!r}")
    if not 0.0 <= float(noise) <= 64:
        raise SourceError(f"noise is a sigma in grey levels between 0 and 64, got {noise!r}")
    return lo, hi


def _class_names(labels: Iterable[str]) -> set[str]:
    if isinstance(labels, str):
        labels = [labels]
    known = {c.lower(): c for c in FASHION_MNIST_CLASSES}
    known.update({p: c for p, c in zip(FASHION_MNIST_PHRASES, FASHION_MNIST_CLASSES)})
    out = set()
    for label in labels:
        name = known.get(str(label).strip().lower())
        if name is None:
            raise SourceError(f"unknown Fashion-MNIST class {label!r}; classes: {', '.join(FASHION_MNIST_CLASSES)}")
        out.add(name)
    return out


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    level = float(rng.uniform(*BACKGROUND_RANGE))
    if rng.random() < 0.5:
        return np.full((size, size), level), {"background": level, "background_kind": "flat", "gradient": 0.0}
    amplitude, angle = float(rng.uniform(*GRADIENT_RANGE)), float(rng.uniform(0, 2 * np.pi))
    amplitude = min(amplitude, (level - 2) / 0.71)  # the darkest corner stays above black
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    ramp = (xx * np.cos(angle) + yy * np.sin(angle)) / size  # -0.7 .. 0.7 at the corners
    return level + amplitude * ramp, {"background": level, "background_kind": "gradient", "gradient": amplitude}


def _item(pixels: np.ndarray, side: int) -> np.ndarray:
    """The 28×28 item resized to ``side×side`` (float), its halo below :data:`ITEM_MIN` zeroed."""
    from PIL import Image

    img = Image.fromarray(pixels, "L").resize((side, side), Image.Resampling.BILINEAR)
    out = np.asarray(img, np.float64)
    out[out < ITEM_MIN] = 0.0
    return out


def _compose(rng, source: Samples, pool: np.ndarray, size: int, k: int, low_contrast: float, overlap: float,
             noise: float) -> tuple[np.ndarray, dict, list[dict]]:
    assert source.images is not None  # in-memory by construction
    background, info = _background(rng, size)
    layer = np.zeros((size, size))
    masks: list[np.ndarray] = []  # each placed item's drawn pixels, canvas-sized
    placed: list[dict] = []
    for _ in range(k):
        row = int(pool[rng.integers(len(pool))])
        side = int(rng.integers(SCALE_RANGE[0], min(SCALE_RANGE[1], size) + 1))
        faint = bool(rng.random() < low_contrast)
        contrast = float(rng.uniform(*(FAINT_RANGE if faint else CONTRAST_RANGE)))
        against = bool(placed) and bool(rng.random() < overlap)
        item = _item(source.images[row], side)
        if not (item > 0).any():
            continue  # nothing would be drawn
        spot = _place_touching(rng, item > 0, masks, size) if against else None
        while spot is None:  # a free place; smaller and smaller while the canvas is crowded
            spot = _place_free(rng, item > 0, placed, size)
            if spot is None and side == SCALE_RANGE[0]:
                break
            if spot is None:
                side = max(SCALE_RANGE[0], side - 6)
                item = _item(source.images[row], side)
        if spot is None:
            continue  # no room left on this canvas
        top, left = spot
        mask = np.zeros((size, size), bool)
        mask[top:top + side, left:left + side] = item > 0
        layer[top:top + side, left:left + side] = np.maximum(layer[top:top + side, left:left + side],
                                                            contrast * item)
        ys, xs = np.nonzero(mask)
        masks.append(mask)
        placed.append({"x": float(xs.min()), "y": float(ys.min()), "w": float(xs.max() - xs.min() + 1),
                       "h": float(ys.max() - ys.min() + 1), "label": str(source.table.at[row, "label"]),
                       "kind": GROUND_TRUTH, "contrast": round(contrast, 4), "scale": side, "faint": faint,
                       "area": int(mask.sum()), "source_id": str(source.table.at[row, "id"])})
    sigma = float(rng.uniform(0.5, 1.0)) * noise  # drawn even without noise: same items, same boxes
    grain = rng.standard_normal((size, size)) * sigma
    canvas = np.clip(np.rint(background + layer + grain), 0, 255).astype(np.uint8)
    _mark_neighbours(placed, masks)
    return canvas, {**info, "noise": round(sigma, 4)}, placed


def _place_free(rng, mask: np.ndarray, placed: list[dict], size: int) -> tuple[int, int] | None:
    """Top-left of the item's square so its box keeps :data:`GAP` px from every placed box."""
    side = mask.shape[0]
    y0, x0, h, w = _bbox(mask)
    for _ in range(_TRIES):
        top, left = (int(v) for v in rng.integers(0, size - side + 1, 2))
        bx, by = left + x0, top + y0
        if all(bx + w + GAP <= p["x"] or p["x"] + p["w"] + GAP <= bx or
               by + h + GAP <= p["y"] or p["y"] + p["h"] + GAP <= by for p in placed):
            return top, left
    return None


def _place_touching(rng, mask: np.ndarray, masks: list[np.ndarray], size: int) -> tuple[int, int] | None:
    """Top-left of the item's square so its pixels touch (and overlap by 0-3 px) a placed item's."""
    from scipy import ndimage

    side = mask.shape[0]
    for _ in range(8):
        anchor = masks[int(rng.integers(len(masks)))]
        grown = ndimage.binary_dilation(anchor, np.ones((3, 3), bool))
        ay, ax = (float(v.mean()) for v in np.nonzero(anchor))
        my, mx = (float(v.mean()) for v in np.nonzero(mask))
        angle = float(rng.uniform(0, 2 * np.pi))
        dy, dx = np.sin(angle), np.cos(angle)
        for dist in range(size, -1, -1):  # walk towards the anchor until the pixels touch
            top, left = int(round(ay + dy * dist - my)), int(round(ax + dx * dist - mx))
            if not (0 <= top <= size - side and 0 <= left <= size - side):
                continue
            if (grown[top:top + side, left:left + side] & mask).any():
                push = int(rng.integers(0, 4))
                top2, left2 = int(round(top - dy * push)), int(round(left - dx * push))
                if 0 <= top2 <= size - side and 0 <= left2 <= size - side:
                    return top2, left2
                return top, left
    return None


def _mark_neighbours(placed: list[dict], masks: list[np.ndarray]) -> None:
    """Set ``overlaps`` (boxes intersect) and ``touching`` (pixels touch or overlap) on every item."""
    from scipy import ndimage

    grown = [ndimage.binary_dilation(m, np.ones((3, 3), bool)) for m in masks]
    for i, p in enumerate(placed):
        p["overlaps"] = any(_intersects(p, q) for j, q in enumerate(placed) if j != i)
        p["touching"] = any((grown[i] & masks[j]).any() for j in range(len(placed)) if j != i)


def _intersects(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and \
        b["y"] < a["y"] + a["h"]


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(ys.min()), int(xs.min()), int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
