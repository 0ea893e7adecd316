"""Near-copy evidence and its calibration: pixel descriptors, synthetic copies and the threshold rule.

**Pixel descriptor.** A model's embedding says what an image shows: two photos of one product can be
as close there as an image and its JPEG re-encode (in a small CLIP such as ``fashion-tiny`` they are
closer). A copy keeps the picture itself, so it is also compared in pixels: every image becomes a
``SIZE×SIZE`` grayscale thumbnail and its lowest ``KEEP×KEEP`` 2-D DCT frequencies, without the mean,
scaled to unit length (a continuous cousin of the perceptual hash). Their cosine ignores brightness
and contrast and most of what re-encoding, resizing or a small overlay change; a mirror image only
flips the sign of the odd horizontal frequencies, so :func:`pixel_similarity` takes the better of
the two orientations and :func:`descriptors` can put every image in one orientation for the search.
Crops move every frequency: finding those is left to the embedding.

**Synthetic copies.** :func:`synthetic_copy` makes a copy of an image the ways datasets get them
(:data:`FAMILIES`): re-encoded as JPEG at quality 30-60, resized to 60-80 % and back, cropped by
4-11 % per side and resized back, mirrored, brightened or darkened by 15-35 %, or marked with a
semi-transparent © a quarter of the image high.

**Threshold rule** (:func:`threshold_from`): for each family, the similarity that keeps :data:`RECALL`
of its copies; a family counts when that is above the median similarity of the sampled images to
their nearest other image (its copies stand out from a typical neighbour: a class-level embedding
does not see a crop as closer than another garment of the cut, the pixel descriptor does not see an
overlay on a 28-pixel image so); the threshold is the lowest of the families that count, raised,
where needed, until at most :data:`FALSE_RATE` (embeddings) or :data:`PIXEL_FALSE_RATE` (pixels) of
the sampled images' nearest other images reach it. Duplicates already in the data count as "other"
images here, which is why the bounds are shares and not zero.

**Calibration** (the second half of this module, used by :func:`dataexplore.analysis.duplicates.duplicates`):
:class:`Calibration` records how the thresholds of a run were obtained; :func:`calibrate_embedding`
and :func:`pixel_pairs` make and measure the synthetic copies.
"""

from __future__ import annotations

import hashlib
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.errors import DataexploreError
from .neighbors import knn

#: Thumbnail side in pixels.
SIZE = 32
#: DCT frequencies kept per axis in the pixel descriptor.
KEEP = 8
#: How synthetic copies are made (see the module docs).
FAMILIES = ("jpeg", "resize", "crop", "mirror", "brightness", "overlay")
#: Share of synthetic copies a calibrated threshold keeps.
RECALL = 0.95
#: Largest share of sampled images whose nearest other image may pass a calibrated embedding threshold.
FALSE_RATE = 0.01
#: Images copied for a calibration.
CALIBRATION = 200
#: Embedding threshold without a calibration: at least this cosine.
FALLBACK = 0.95
#: The same for the pixel descriptor, which tells copies from other images by design: only a space
#: where most images look like copies of another (blank scans, say) raises its threshold.
PIXEL_FALSE_RATE = 0.2
_ODD = np.tile(np.arange(KEEP) % 2 == 1, KEEP)[1:]  # odd horizontal frequencies (the mean left out)


def thumbnails(samples: Any, rows: np.ndarray, *, progress: bool = False, threads: int = 8) -> np.ndarray:
    """``len(rows)×SIZE×SIZE`` uint8 grayscale thumbnails of ``samples`` (a :class:`~dataexplore.Samples`).

    In-memory images are resized in batches; files are decoded on a thread pool (a file that cannot
    be read gives a black thumbnail, which matches only other unreadable files).
    """
    rows = np.asarray(rows, np.int64)
    if samples.images is not None:
        return resize_arrays(np.asarray(samples.images)[rows])
    from PIL import Image
    from tqdm.auto import tqdm

    from ..core.images import DecodeError, decode

    out = np.zeros((len(rows), SIZE, SIZE), np.uint8)

    def one(i: int) -> None:
        try:
            img = decode(samples.read(int(rows[i])), draft_size=SIZE * 2)
        except DecodeError:
            return
        out[i] = np.asarray(img.convert("L").resize((SIZE, SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0))

    with ThreadPoolExecutor(max_workers=threads) as pool:  # decoding releases the GIL
        list(tqdm(pool.map(one, range(len(rows))), total=len(rows), unit="img", desc="thumbnails",
                  disable=not progress))
    return out


def resize_arrays(images: np.ndarray, batch: int = 8192) -> np.ndarray:
    """Grayscale ``SIZE×SIZE`` uint8 thumbnails of an ``N×H×W[×C]`` uint8 array (antialiased bilinear)."""
    import torch

    out = np.empty((len(images), SIZE, SIZE), np.uint8)
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(np.ascontiguousarray(images[start:start + batch])).float()
            if x.ndim == 4:  # H×W×C: luminance of RGB, the only channel of anything else
                x = x[..., :3] @ torch.tensor([0.299, 0.587, 0.114]) if x.shape[-1] >= 3 else x[..., 0]
            x = torch.nn.functional.interpolate(x[:, None], size=(SIZE, SIZE), mode="bilinear", antialias=True,
                                                align_corners=False)
            out[start:start + len(x)] = x[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def descriptors(thumbs: np.ndarray, *, canonical: bool = False) -> np.ndarray:
    """``n×(KEEP²-1)`` unit pixel descriptors of ``SIZE×SIZE`` thumbnails (float32).

    With ``canonical`` every descriptor is turned to the orientation whose first horizontal
    frequency is positive, so an image and its mirror image get (nearly) the same vector.

    Examples
    --------
    >>> t = np.random.default_rng(0).integers(0, 255, (1, SIZE, SIZE)).astype(np.uint8)
    >>> d = descriptors(np.concatenate([t, t[:, :, ::-1]]), canonical=True)
    >>> round(float(d[0] @ d[1]), 4)
    1.0
    """
    from scipy.fft import dct

    basis = dct(np.eye(SIZE), norm="ortho", axis=0)[:KEEP].astype(np.float32)
    c = (basis @ thumbs.astype(np.float32) @ basis.T).reshape(len(thumbs), -1)[:, 1:]
    if canonical:
        c[:, _ODD] *= np.where(c[:, :1] < 0, -1.0, 1.0).astype(np.float32)
    return (c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-9)).astype(np.float32)


def pixel_similarity(da: np.ndarray, db: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two descriptor arrays, the better of the two orientations of ``db``."""
    direct = np.einsum("nd,nd->n", da, db)
    mirrored = direct - 2 * np.einsum("nd,nd->n", da[:, _ODD], db[:, _ODD])
    return np.maximum(direct, mirrored)


def synthetic_copy(image: np.ndarray, family: str, rng: np.random.Generator) -> np.ndarray:
    """A copy of one ``H×W`` or ``H×W×3`` uint8 image made as ``family`` does (see the module docs).

    Examples
    --------
    >>> img = np.random.default_rng(0).integers(0, 255, (28, 28)).astype(np.uint8)
    >>> synthetic_copy(img, "mirror", np.random.default_rng(0)).tolist() == img[:, ::-1].tolist()
    True
    """
    from PIL import Image, ImageDraw, ImageEnhance

    img = Image.fromarray(np.ascontiguousarray(image))
    w, h = img.size
    if family == "jpeg":
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(30, 61)))
        out = Image.open(buf).convert(img.mode)
    elif family == "resize":
        f = rng.uniform(0.6, 0.8)
        small = img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BILINEAR)
        out = small.resize((w, h), Image.Resampling.BILINEAR)
    elif family == "crop":
        f = 1 - rng.uniform(0.04, 0.11)
        cw, ch = w * f, h * f
        x, y = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
        out = img.resize((w, h), Image.Resampling.BILINEAR, box=(x, y, x + cw, y + ch))
    elif family == "mirror":
        out = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    elif family == "brightness":
        f = rng.uniform(0.65, 0.85) if rng.random() < 0.5 else rng.uniform(1.15, 1.35)
        out = ImageEnhance.Brightness(img).enhance(f)
    elif family == "overlay":
        layer = Image.new("L", img.size, 0)
        size = max(7, min(w, h) // 4)
        x, y = rng.uniform(0.6, 0.75) * w, rng.uniform(0.6, 0.75) * h
        ImageDraw.Draw(layer).text((x, y), "©", fill=int(rng.integers(100, 150)), font_size=size)
        mark = Image.new(img.mode, img.size, 255 if img.mode == "L" else (255, 255, 255))
        out = Image.composite(mark, img, layer)
    else:
        raise ValueError(f"unknown copy family {family!r}; one of {FAMILIES}")
    return np.asarray(out, dtype=np.uint8)


def threshold_from(copies: np.ndarray, families: np.ndarray, nearest: np.ndarray,
                   false_rate: float = FALSE_RATE) -> tuple[float, list]:
    """The calibrated threshold (module docs) and the copy families it is meant to find.

    ``copies``: similarity of each synthetic copy to its original, ``families`` its family;
    ``nearest``: similarity of sampled images to their nearest other image.

    Examples
    --------
    >>> fam = np.repeat(np.array(["jpeg", "crop"]), 100)
    >>> sims = np.r_[np.linspace(0.99, 1.0, 100), np.linspace(0.5, 1.0, 100)]
    >>> t, found = threshold_from(sims, fam, np.linspace(0.6, 0.99, 100))
    >>> round(t, 4), found
    (0.9905, ['jpeg'])
    """
    copies, nearest = np.asarray(copies, np.float64), np.asarray(nearest, np.float64)
    families = np.asarray(families, dtype=object)
    typical = float(np.median(nearest)) if len(nearest) else -1.0
    lows = {f: float(np.quantile(copies[families == f], 1 - RECALL)) for f in dict.fromkeys(families.tolist())}
    handled = [f for f, low in lows.items() if low > typical]
    t = min((lows[f] for f in handled), default=1.0)
    if len(nearest):
        t = max(t, float(np.quantile(nearest, 1 - false_rate)))
    return round(min(t, 1.0), 6), handled


def pairs_above(x: np.ndarray, threshold: float, cap: int, block: int = 2048, nearest: bool = True,
                progress: bool = False, desc: str = "pairs") -> tuple[np.ndarray, np.ndarray | None]:
    """Every pair of rows of ``x`` (unit vectors) whose cosine reaches ``threshold``, at most ``cap`` per
    row (the most similar), and each row's highest cosine to another row.

    One pass over the upper triangle of ``x @ x.T`` in blocks (memory ``block × N``): no sorting of
    whole rows, so it costs about half a k-nearest-neighbour search.

    Returns
    -------
    pairs : numpy.ndarray
        ``m×3`` float64: row ``a``, row ``b`` (``a < b``), cosine.
    nearest : numpy.ndarray or None
        ``N`` float32: each row's highest cosine to another row (-1 for a single row); ``None``
        when not asked for (``nearest=False`` saves two passes over the similarities).

    Examples
    --------
    >>> x = np.array([[1, 0], [0.999, 0.0447], [0, 1]], dtype=np.float32)
    >>> pairs, nearest = pairs_above(x / np.linalg.norm(x, axis=1, keepdims=True), 0.99, cap=5)
    >>> pairs[:, :2].tolist(), [round(float(v), 3) for v in nearest]
    ([[0.0, 1.0]], [0.999, 0.999, 0.045])
    """
    import torch
    from tqdm.auto import tqdm

    n = len(x)
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    best = torch.full((n,), -1.0)
    found = []
    starts = range(0, n, block)
    with torch.inference_mode():
        for start in tqdm(starts, desc=desc, unit="block", disable=not progress or len(starts) < 4):
            q = t[start:start + block]
            sim = q @ t[start:].T  # the block's rows against themselves and every later row
            sim[:, :len(q)].masked_fill_(torch.ones(len(q), len(q), dtype=torch.bool).tril(), -2.0)
            if nearest:
                best[start:start + len(q)] = torch.maximum(best[start:start + len(q)], sim.amax(1))
                best[start:] = torch.maximum(best[start:], sim.amax(0))
            a, b = torch.nonzero(sim >= threshold, as_tuple=True)
            if cap and len(a):
                crowded = torch.nonzero(torch.bincount(a, minlength=len(q)) > cap)[:, 0]
                if len(crowded):  # a row with more than cap hits keeps its cap best
                    top = torch.topk(sim[crowded], min(cap, sim.shape[1]), dim=1)
                    ok = top.values >= threshold
                    rows = crowded[:, None].expand_as(top.indices)
                    calm = ~torch.isin(a, crowded)
                    a = torch.cat([a[calm], rows[ok]])
                    b = torch.cat([b[calm], top.indices[ok]])
            found.append(torch.stack([a + start, b + start, sim[a, b]], 1).double())
    pairs = torch.cat(found).numpy() if found else np.zeros((0, 3))
    if len(pairs) and cap:
        pairs = _cap(pairs, cap)
    return pairs, best.numpy() if nearest else None


def _cap(pairs: np.ndarray, cap: int) -> np.ndarray:
    """At most ``cap`` pairs per row (as either end), the most similar kept."""
    pairs = pairs[np.argsort(-pairs[:, 2], kind="stable")]
    ends = pairs[:, :2].astype(np.int64).ravel()  # a0, b0, a1, b1, ... in order of similarity
    before = _running_count(ends).reshape(-1, 2)
    return pairs[(before < cap).all(1)]


def _running_count(values: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions hold the same value."""
    order = np.argsort(values, kind="stable")
    sorted_vals = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_vals)) + 1]
    run = np.arange(len(values)) - np.repeat(starts, np.diff(np.r_[starts, len(values)]))
    out = np.empty(len(values), np.int64)
    out[order] = run
    return out


# --- calibration (see dataexplore.analysis.duplicates) ---------------------------------------------


@dataclass
class Calibration:
    """How the thresholds of a :func:`duplicates` run were obtained.

    Attributes
    ----------
    method : str
        ``"synthetic copies"``, ``"given"`` (``threshold=``) or ``"fallback"`` (no images or no model).
    embedding_threshold : float
        Cosine at or above which two embeddings are near copies.
    pixel_threshold : float or None
        Pixel-descriptor cosine at or above which two images are near copies (``None``: not used).
    recall, pixel_recall : dict
        Share of synthetic copies at or above each threshold, per copy family and ``"all"``.
    false_rate, pixel_false_rate : float
        Share of the sampled images whose nearest other image reaches the threshold.
    images : int
        Images copied.
    model : str
        The model's name and cache key.
    note : str
        One line on what was done.
    """

    method: str
    embedding_threshold: float
    pixel_threshold: float | None = None
    recall: dict = field(default_factory=dict)
    pixel_recall: dict = field(default_factory=dict)
    false_rate: float = float("nan")
    pixel_false_rate: float = float("nan")
    images: int = 0
    model: str = ""
    note: str = ""

    def __str__(self) -> str:
        return self.note


def nearest_other(x: np.ndarray, rows: np.ndarray, backend: str) -> np.ndarray:
    """Cosine of each of ``rows`` to its nearest other row of ``x``."""
    dist, idx = knn(x[rows], x, k=min(2, len(x)), backend=backend)
    sims = np.where(idx == rows[:, None], -np.inf, 1 - dist)
    return sims.max(1)


def calibration_sample(data: Any, reps: np.ndarray, size: int, random_state: int) -> np.ndarray:
    """Up to ``size`` distinct images with known pixels, spread over the sets (indices into ``reps``)."""
    usable = np.flatnonzero([data.sets[s].samples is not None for s in data.set_of[reps]])
    if not len(usable):
        return usable
    pick = np.random.default_rng([random_state, 0]).choice(usable, min(int(size), len(usable)), replace=False)
    return np.sort(pick)


def copies_of(images: list, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The images (``None`` left out) and one synthetic copy per family of each, at one common shape:
    ``(originals, copies, family)``, ``copies[j]`` a copy of ``originals[j // len(FAMILIES)]``."""
    from PIL import Image

    images = [im for im in images if im is not None]
    if not images:
        return np.zeros((0, 1, 1), np.uint8), np.zeros((0, 1, 1), np.uint8), np.zeros(0, object)
    if len({im.shape for im in images}) > 1:  # one shape for the model's batches: 224 px, RGB
        images = [np.asarray(Image.fromarray(im).convert("RGB").resize((224, 224), Image.Resampling.BICUBIC))
                  for im in images]
    made = [synthetic_copy(im, f, rng) for im in images for f in FAMILIES]
    return np.stack(images), np.stack(made), np.tile(np.array(FAMILIES, dtype=object), len(images))


def calibrate_embedding(data: Any, keys, reps, nearest, sample, threshold, cache_dir) -> Calibration:
    """The embedding threshold; ``nearest``: cosine of probed images (``sample`` when it has images) to
    their nearest other image."""
    model = data.sets[0].model or {}
    label = f"{model.get('name', 'unknown model')} ({model.get('key', 'no key')})"
    if threshold is not None:
        t = float(threshold)
        return Calibration("given", t, false_rate=round(float(np.mean(nearest >= t)), 4), model=label,
                           note=f"embedding cosine >= {t:.4f} (given)")
    pos, fam = _copy_similarities(data, keys[reps[sample]], reps[sample], model, cache_dir)
    if pos is None:
        t = max(FALLBACK, float(np.quantile(nearest, 0.99)))
        return Calibration("fallback", round(t, 6), false_rate=round(float(np.mean(nearest >= t)), 4), model=label,
                           note=f"embedding cosine >= {t:.4f} (fallback: no images or no model to make copies with; "
                                "the larger of 0.95 and the 99th percentile of nearest-neighbour cosines)")
    t, handled = threshold_from(pos, fam, nearest)
    recall, fr = _recall_by_family(pos, fam, t), round(float(np.mean(nearest >= t)), 4)
    return Calibration("synthetic copies", t, recall=recall, false_rate=fr, images=len(sample), model=label,
                       note=f"embedding cosine >= {t:.4f} ({_how(recall, handled, fr, len(sample))})")


def _how(recall: dict, handled: list, false_rate: float, images: int) -> str:
    found = ", ".join(f"{f} {recall[f]:.0%}" for f in FAMILIES if f in recall)
    return (f"calibrated on copies of {images} images, made for {', '.join(handled) or 'no family'}; "
            f"copies kept: {found}; {false_rate:.1%} of images' nearest others pass")


def _recall_by_family(sims: np.ndarray, families: np.ndarray, t: float) -> dict:
    out = {f: round(float(np.mean(sims[families == f] >= t)), 4) for f in FAMILIES if (families == f).any()}
    out["all"] = round(float(np.mean(sims >= t)), 4) if len(sims) else float("nan")
    return out


def _copy_similarities(data: Any, keys, positions, model: dict, cache_dir):
    """Cosine of each synthetic copy to its original in the model's embedding, and the copy families;
    ``(None, None)`` without images or a loadable model. Cached per model, sample and seed."""
    from ..embedding.cache import cache_root

    if not len(positions) or not model.get("name") or not model.get("key"):
        return None, None
    ident = json.dumps({"model": model.get("key"), "keys": sorted(map(str, keys)), "families": FAMILIES,
                        "seed": data.random_state, "version": 3})
    digest = hashlib.blake2b(ident.encode(), digest_size=12).hexdigest()
    path = cache_root(cache_dir) / "duplicates" / f"{digest}.json"
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
            return np.asarray(saved["similarities"], np.float64), np.asarray(saved["families"], dtype=object)
        except (ValueError, KeyError, OSError):
            pass
    originals, made, fam = data.synthetic(positions)
    if not len(originals):
        return None, None
    from ..embedding.local import embed

    try:
        a = embed(originals, model["name"], model.get("pretrained"), cache=False, progress=False)
        b = embed(made, model["name"], model.get("pretrained"), cache=False, progress=False)
    except DataexploreError:
        return None, None
    if a.model.get("key") != model.get("key") or len(a) != len(originals) or len(b) != len(made):
        return None, None  # the name now loads other weights (or an image failed): no calibration
    sims = np.einsum("nd,nd->n", np.repeat(a.vectors, len(FAMILIES), axis=0), b.vectors)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"similarities": sims.tolist(), "families": fam.tolist(),
                                    "model": {k: model.get(k) for k in ("name", "key", "pretrained")}}))
    except OSError:
        pass
    return sims, fam


def pixel_pairs(data: Any, reps, sample, cal: Calibration, k: int, backend, progress) -> np.ndarray:
    """Near-copy pairs by pixel descriptor (``m×3``: indices into ``reps``, similarity); fills the pixel
    part of ``cal``."""
    thumbs = data.thumbnails(reps, progress)
    desc = descriptors(thumbs)
    canon = descriptors(thumbs, canonical=True)
    nearest = nearest_other(canon, sample, backend)
    originals, made, fam = data.synthetic(reps[sample])
    if len(originals):
        d_orig = descriptors(resize_arrays(originals))
        d_made = descriptors(resize_arrays(made))
        pos = pixel_similarity(np.repeat(d_orig, len(FAMILIES), axis=0), d_made)
        t, handled = threshold_from(pos, fam, nearest, PIXEL_FALSE_RATE)
        cal.pixel_recall, fr = _recall_by_family(pos, fam, t), round(float(np.mean(nearest >= t)), 4)
        how = _how(cal.pixel_recall, handled, fr, len(originals))
    else:
        t, fr = max(0.99, float(np.quantile(nearest, 0.99))), float("nan")
        how = "fallback: no copies could be made"
    cal.pixel_threshold, cal.pixel_false_rate = t, fr
    cal.note += f"; pixel descriptor cosine >= {t:.4f} ({how})"
    found, _ = pairs_above(canon, t, cap=k, nearest=False, progress=progress, desc="pixel pairs")
    if len(found):  # the better orientation of each pair, as pixel_similarity compares them
        a, b = found[:, 0].astype(np.int64), found[:, 1].astype(np.int64)
        found[:, 2] = pixel_similarity(desc[a], desc[b])
    return found
