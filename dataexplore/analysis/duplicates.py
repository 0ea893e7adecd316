"""Duplicates within a set and leaks between sets: exact copies, near copies, grouped and ranked.

How a pair of images becomes a duplicate (:func:`duplicates`):

1. **Exact copies** share a content hash: the one the embedding cache keys images by
   (:func:`dataexplore.embedding.cache.content_keys`: file bytes, or pixel bytes of in-memory images),
   or, for embeddings without their images, bit-identical vectors. Each set of exact copies is
   searched as one image.
2. **Near copies in the embedding**: every pair whose cosine reaches the model's threshold, found in
   one exact pass over the pairwise similarities in blocks (:func:`~dataexplore.analysis.copies.pairs_above`;
   memory linear in the number of images), at most ``k`` per image (the most similar).
3. **Near copies in the pixels** (``pixels=``): the same for the pixel descriptor of
   :mod:`~dataexplore.analysis.copies` (a small DCT of a grayscale thumbnail, mirror-aware).

**Thresholds are calibrated per model and per dataset** (unless ``threshold=`` is given): up to
``calibration`` of the user's own images are copied the ways datasets get copies (JPEG re-encoding,
resizing, cropping, mirroring, brightness, an overlay: :func:`~dataexplore.analysis.copies.synthetic_copy`);
the copies are embedded with the same model (through :func:`dataexplore.embed`, not cached) and
their similarity to their originals is set against the similarity of the sampled images to their
nearest other images (:func:`~dataexplore.analysis.copies.threshold_from`): per copy family, the
similarity that keeps 95 % of its copies; the families whose copies stand out from a typical nearest
neighbour count, the lowest of theirs is the threshold, raised where needed until at most 1 % (pixels:
20 %) of the sampled images' nearest others pass it. The copies' similarities are cached per model,
sample and seed (``<cache>/duplicates/``). The pixel threshold is found the same way. Without images,
or without a model to embed copies with, the embedding threshold falls back to the larger of 0.95 and
the 99th percentile of the nearest-other cosine (a guess, and said so). What was done, the thresholds
and the share of copies of each family they keep are on the result (:attr:`Duplicates.calibration`).

With ``pixels="auto"`` the pixel evidence is used when the images are at hand (in memory, or at most
:data:`AUTO_PIXELS` files) and the embedding alone is not enough: its calibration keeps fewer than 90 %
of the copies (a small or class-level model such as ``fashion-tiny`` places different garments of one
cut closer together than an image and its copies), or there was no model to calibrate it with.

**Groups**: images joined by duplicate pairs, split so that no group is a chain: the image with the
most duplicates (ties: the higher similarities, then source order) takes all of them that are still
free, then the next, so every member is a duplicate of its group's centre. Groups are ranked by size,
then by their lowest similarity. With two sets only pairs across the sets join images, and only groups
holding images of both are kept: leaks.

**Which image is kept** (:meth:`Duplicates.keep`): in each group the image with the most pixels (read
from the file header; in-memory images all tie), then the larger file, then the first in source order.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.embeddings import Embeddings
from ..core.errors import DataexploreError
from . import copies
from .copies import Calibration
from .groups import GroupResult, top_labels

#: With ``pixels="auto"``, the most image files read for the pixel evidence.
AUTO_PIXELS = 200_000


class Duplicates(GroupResult):
    """Groups of duplicate images, or leaks between two sets (see :func:`duplicates`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per group, largest first: ``name``, ``description``, ``count``, ``similarity``
        (lowest embedding cosine of a member to its group's centre), ``pixel_similarity`` (same, for
        the pixel descriptor; NaN where not used), ``exact`` (members that are exact copies of
        another member), ``sets`` (members per set), ``keep`` (id of the kept image), ``top_labels``,
        ``exemplars`` (ids, the kept one first).
    pairs : pandas.DataFrame
        Every duplicate pair inside a group: ``id_a``, ``id_b``, ``set_a``, ``set_b``, ``similarity``,
        ``pixel_similarity``, ``exact`` (bool), ``evidence`` (``"exact"``, ``"embedding"``,
        ``"pixels"`` or ``"embedding+pixels"``), ``group``.
    scores : pandas.DataFrame
        Per analysed image (indexed by id): ``set``, ``group`` (name or None), ``role`` (``"kept"``,
        ``"copy"``, ``"leak"`` or None) and ``nearest`` (cosine to its nearest other image).
    threshold : float
        The embedding cosine threshold used.
    calibration : Calibration
        How the thresholds were obtained.
    names : tuple of str
        The set names (one, or two for leaks).
    """

    title = "Duplicates"
    pairs: pd.DataFrame
    scores: pd.DataFrame
    threshold: float
    calibration: Calibration
    names: tuple
    _sizes: list
    _kept: np.ndarray

    def __repr__(self) -> str:
        return super().__repr__() + f"\nthresholds: {self.calibration.note}"

    def map_values(self, by: str = "role") -> pd.Series:
        """Per image: its role (``"kept"``/``"copy"``, or ``"leak in <set>"``) or, with
        ``by="group"``, its group's name; images in no group have no value (grey on a map)."""
        if by not in ("role", "group"):
            raise DataexploreError(f"map_values(by=...) must be 'role' or 'group', got {by!r}")
        if by == "group":
            return self.scores["group"].rename("duplicate group")
        role = self.scores["role"]
        if len(self.names) > 1:
            role = role.where(role.isna(), "leak in " + self.scores["set"].astype(str))
        return role.rename("duplicates")

    def keep(self, which: int | str = 0) -> np.ndarray:
        """Boolean mask over one analysed set: what to keep so that no duplicate is left.

        Within one set: every image in no group, and one per group (the module's rule), so
        ``emb.subset(result.keep())`` de-duplicates. With two sets (leaks): the mask over set
        ``which`` (its position or name; the first by default) without any of its images in a leak
        group, so ``train.subset(result.keep())`` removes from train what leaked into test.

        Examples
        --------
        >>> dup = dx.duplicates(emb)  # doctest: +SKIP
        >>> clean = emb.subset(dup.keep())  # doctest: +SKIP
        """
        pos = self.names.index(which) if isinstance(which, str) and which in self.names else which
        if not isinstance(pos, (int, np.integer)) or isinstance(pos, bool) or not 0 <= pos < len(self.names):
            raise DataexploreError(f"keep() takes a set position or name among {list(self.names)}, got {which!r}")
        start = int(sum(self._sizes[:pos]))
        return self._kept[start:start + self._sizes[pos]].copy()

    def plot(self, top: int = 20):
        """Size of each group, coloured by its lowest similarity (plotly Figure)."""
        from .plots import group_bars

        t = self.table.head(top)
        return group_bars(t, color=t["similarity"], colorscale="Viridis", colorbar="similarity", text=t["sets"],
                          unit="images", title=f"{self.title} ({self.calibration.note})")


def duplicates(data: Any, other: Any = None, *, threshold: float | None = None, pixels: bool | str = "auto",
               k: int = 10, names: Sequence[str] | None = None, model: str = "fashion-tiny",
               calibration: int = copies.CALIBRATION, backend: str = "auto", cache_dir: Any = None,
               progress: bool = True, random_state: int = 0) -> Duplicates:
    """Find exact and near duplicates in ``data``, or leaks between ``data`` and ``other``.

    Parameters
    ----------
    data, other
        :class:`~dataexplore.Embeddings`, a :class:`~dataexplore.Selection` or search result that
        carries embeddings, a saved embeddings file, or a source to embed with ``model``. With
        ``other`` (e.g. ``duplicates(train, test)``) only groups spanning both sets are reported.
    threshold : float, optional
        Embedding cosine at or above which two images are near copies. Default: calibrated (module
        docs). Giving it skips the calibration and the pixel evidence (unless ``pixels=True``).
    pixels : bool or "auto"
        Also compare images by pixel descriptor (needs the images); ``"auto"``: see the module docs.
    k : int
        Most near copies kept per image and evidence (the most similar ones).
    names : pair of str, optional
        Names of the two sets; default: their ``split`` values when each has one (``"train"``,
        ``"test"``), else ``"first"`` and ``"second"``.
    model : str
        Model for sources that still need embedding.
    calibration : int
        Images copied to calibrate the thresholds.
    backend : {"auto", "exact", "faiss", "pynndescent"}
        Nearest-neighbour backend of the calibration (the pair search itself is exact).
    cache_dir : path, optional
        Cache root (content hashes, calibrations).
    progress : bool
        Show progress bars for the slow steps.
    random_state : int

    Returns
    -------
    Duplicates

    Raises
    ------
    dataexplore.DataexploreError
        For empty sets, sets from different models, a threshold outside (0, 1], or a bad ``k``.

    Examples
    --------
    >>> import dataexplore as dx
    >>> emb = dx.embed("fashion-mnist:test")  # doctest: +SKIP
    >>> dup = dx.duplicates(emb)  # doctest: +SKIP
    >>> dup.groups()[["name", "description", "count", "similarity"]]  # doctest: +SKIP
    >>> clean = emb.subset(dup.keep())  # one image per group  # doctest: +SKIP
    >>> leaks = dx.duplicates(dx.embed("fashion-mnist:train"), emb)  # doctest: +SKIP
    >>> leaks.pairs.head()  # doctest: +SKIP
    """
    from ..embedding.inputs import check_same_model

    if threshold is not None and not (isinstance(threshold, (int, float)) and 0 < float(threshold) <= 1):
        raise DataexploreError(f"threshold must be a cosine in (0, 1], got {threshold!r}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise DataexploreError(f"k must be a positive whole number, got {k!r}")
    if pixels not in (True, False, "auto"):
        raise DataexploreError(f"pixels must be True, False or 'auto', got {pixels!r}")
    sets = [_embeddings(data, model)] + ([_embeddings(other, model)] if other is not None else [])
    if len(sets) > 1:
        check_same_model(*sets)
    pooled = _Pooled(sets, _names(sets, names), random_state)
    keys = pooled.content_keys(cache_dir)
    _, first, exact_class = np.unique(keys, return_index=True, return_inverse=True)
    reps = np.sort(first)  # one position per distinct content, in source order
    rep_of = np.searchsorted(reps, first[exact_class])  # position -> index of its representative in reps
    if len(reps) < 2:
        cal = copies.Calibration("given", 1.0, note="nothing to compare: a single distinct image")
        return _result(pooled, exact_class, rep_of, reps, np.full(len(reps), np.nan), [], cal)
    vectors = pooled.vectors[reps]
    sample = copies.calibration_sample(pooled, reps, calibration, random_state)
    probe = sample if len(sample) else np.sort(np.random.default_rng([random_state, 2]).choice(
        len(reps), min(len(reps), 2000), replace=False))
    nearest_probe = copies.nearest_other(vectors, probe, backend)
    cal = copies.calibrate_embedding(pooled, keys, reps, nearest_probe, sample, threshold, cache_dir)
    found, nearest = copies.pairs_above(vectors, cal.embedding_threshold, cap=int(k), progress=progress,
                                        desc="embedding pairs")
    weak = cal.method == "fallback" or cal.recall.get("all", 1.0) < 0.9  # the embedding alone misses copies
    use_pixels = pixels is True or (pixels == "auto" and threshold is None and weak and pooled.has_images(reps)
                                     and pooled.readable(reps))
    edges = [_edges(found, "embedding")]
    if use_pixels:
        if not pooled.has_images(reps):
            raise DataexploreError("pixels=True needs the images: these embeddings do not say where their images are")
        edges.append(_edges(copies.pixel_pairs(pooled, reps, sample, cal, int(k), backend, progress), "pixels"))
    return _result(pooled, exact_class, rep_of, reps, nearest, edges, cal)


# --- inputs -----------------------------------------------------------------------------------------


def _embeddings(data: Any, model: str) -> Embeddings:
    """Embeddings of an analysis input: Embeddings, Selection/search result with embeddings, or a source."""
    from ..embedding.inputs import as_analysed

    if isinstance(data, Embeddings):
        emb = data
    elif isinstance(getattr(data, "embeddings", None), Embeddings) and hasattr(data, "indices"):  # a Selection
        whole = data.embeddings
        emb = whole if len(whole) == len(data.indices) else whole.subset(np.asarray(data.indices, np.int64))
    elif isinstance(getattr(data, "embeddings", None), Embeddings):  # a search result
        emb = data.embeddings
    elif data is None:
        raise DataexploreError("duplicates() needs embeddings or images, got None")
    else:
        emb = as_analysed(data, model)
    if len(emb) == 0:
        raise DataexploreError("nothing to analyse: the set is empty (no sample has an embedding)")
    emb.check_finite()
    return emb


def _names(sets: list, names: Sequence[str] | None) -> tuple:
    if names is not None:
        names = tuple(str(n) for n in ([names] if isinstance(names, str) else names))
        if len(names) != len(sets) or len(set(names)) != len(names):
            raise DataexploreError(f"names must be {len(sets)} different set names, got {list(names)}")
        return names
    if len(sets) == 1:
        return ("data",)
    splits = [e.table["split"].dropna().unique() if "split" in e.table.columns else [] for e in sets]
    if all(len(s) == 1 for s in splits) and len({str(s[0]) for s in splits}) == len(sets):
        return tuple(str(s[0]) for s in splits)
    return ("first", "second")


class _Pooled:
    """The analysed sets side by side: ids (made unique by a set prefix where they collide), vectors, set
    of each position, and where each image is."""

    def __init__(self, sets: list, names: tuple, random_state: int = 0):
        self.sets, self.names, self.random_state = sets, names, random_state
        self._copies: dict = {}
        self.sizes = [len(e) for e in sets]
        self.set_of = np.repeat(np.arange(len(sets)), self.sizes)
        self.local = np.concatenate([np.arange(n) for n in self.sizes])
        ids = np.concatenate([e.ids for e in sets])
        if len(sets) > 1 and len(pd.unique(ids)) < len(ids):
            ids = np.concatenate([np.array([f"{name}:{i}" for i in e.ids], dtype=object)
                                  for e, name in zip(sets, names)])
        self.ids = ids.astype(object)
        self.vectors = np.concatenate([e.vectors for e in sets]).astype(np.float32)
        self.labels = pd.concat([e.table["label"] if "label" in e.table.columns else pd.Series([None] * len(e))
                                 for e in sets], ignore_index=True)

    def content_keys(self, cache_dir: Any) -> np.ndarray:
        """A content key per position: the file/pixel hash where the images are known, else the vector's."""
        from ..embedding.cache import FileHashes, cache_root, content_keys

        out = []
        for emb in self.sets:
            keys: list = [None] * len(emb)
            if emb.samples is not None:
                memo = None if emb.samples.images is not None else FileHashes(cache_root(cache_dir))
                try:
                    found, _ = content_keys(emb.samples.subset(emb._rows()), memo)
                    keys = list(found)
                finally:
                    if memo is not None:
                        memo.close()
            vec = np.ascontiguousarray(emb.vectors, dtype="<f4")
            out += [k if k is not None else "v" + hashlib.blake2b(vec[i].tobytes(), digest_size=16).hexdigest()
                    for i, k in enumerate(keys)]
        return np.asarray(out, dtype=object)

    def has_images(self, positions: np.ndarray) -> bool:
        return all(self.sets[s].samples is not None for s in np.unique(self.set_of[positions]))

    def readable(self, positions: np.ndarray) -> bool:
        """In memory, or few enough files to decode for pixel evidence."""
        files = sum(int((self.set_of[positions] == s).sum()) for s in range(len(self.sets))
                    if self.sets[s].samples is not None and self.sets[s].samples.images is None)
        return files <= AUTO_PIXELS

    def images(self, positions: np.ndarray) -> list:
        """Decoded pixels (``H×W`` or ``H×W×3`` uint8) of some positions."""
        from ..core.images import DecodeError, decode

        out: list[np.ndarray | None] = []
        for p in positions:
            emb = self.sets[self.set_of[p]]
            row = int(emb._rows()[self.local[p]])
            if emb.samples.images is not None:
                img = np.asarray(emb.samples.images[row])
                if img.ndim == 3:  # H×W×C: RGB, or the only channel
                    img = img[..., :3] if img.shape[2] >= 3 else img[..., 0]
                out.append(img)
                continue
            try:
                out.append(np.asarray(decode(emb.samples.read(row), draft_size=256)))
            except DecodeError:
                out.append(None)
        return out

    def synthetic(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Originals and one synthetic copy per family of each, at one common shape (made once):
        ``(originals, copies, family)``, ``copies[j]`` a copy of ``originals[j // len(FAMILIES)]``."""
        key = tuple(int(p) for p in positions)
        if key not in self._copies:
            self._copies[key] = copies.copies_of(self.images(positions), np.random.default_rng([self.random_state, 1]))
        return self._copies[key]

    def thumbnails(self, positions: np.ndarray, progress: bool) -> np.ndarray:
        out = np.zeros((len(positions), copies.SIZE, copies.SIZE), np.uint8)
        for s, emb in enumerate(self.sets):
            mine = np.flatnonzero(self.set_of[positions] == s)
            if len(mine):
                rows = emb._rows()[self.local[positions[mine]]]
                out[mine] = copies.thumbnails(emb.samples, rows, progress=progress)
        return out


# --- groups -----------------------------------------------------------------------------------------


def _edges(found: np.ndarray, evidence: str) -> pd.DataFrame:
    """``a``, ``b`` (indices into reps, ``a < b``) and the similarity named ``evidence``."""
    return pd.DataFrame({"a": found[:, 0].astype(np.int64), "b": found[:, 1].astype(np.int64),
                         evidence: found[:, 2]})


def _stars(n: int, pairs: pd.DataFrame) -> list[np.ndarray]:
    """Split the duplicate graph on ``n`` nodes into stars (see the module docs); node lists, centre first."""
    if not len(pairs):
        return []
    a, b = pairs["a"].to_numpy(), pairs["b"].to_numpy()
    weight = pairs["weight"].to_numpy()
    nb: list[list] = [[] for _ in range(n)]
    for x, y, w in zip(a, b, weight):
        nb[x].append((y, w))
        nb[y].append((x, w))
    degree = np.array([len(v) for v in nb])
    strength = np.array([sum(w for _, w in v) for v in nb])
    order = np.lexsort((np.arange(n), -strength, -degree))
    free = degree > 0
    groups = []
    for c in order:
        if not free[c]:
            continue
        members = [y for y, _ in sorted(nb[c], key=lambda t: -t[1]) if free[y]]
        if not members:
            continue
        free[c] = False
        free[members] = False
        groups.append(np.array([c] + members, np.int64))
    return groups


def _result(data: _Pooled, exact_class, rep_of, reps, nearest, edges: list, cal: copies.Calibration) -> Duplicates:
    """Group the duplicate pairs (indices into ``reps``) and build the result."""
    pairs = pd.DataFrame({"a": pd.Series(dtype=np.int64), "b": pd.Series(dtype=np.int64)})
    for e in edges:
        pairs = pairs.merge(e, on=["a", "b"], how="outer")
    for col in ("embedding", "pixels"):
        if col not in pairs.columns:
            pairs[col] = np.nan
    va, vb = data.vectors[reps[pairs["a"].to_numpy(np.int64)]], data.vectors[reps[pairs["b"].to_numpy(np.int64)]]
    pairs["cosine"] = np.einsum("nd,nd->n", va, vb) if len(pairs) else np.zeros(0)
    pairs["weight"] = pairs["cosine"] + pairs["pixels"].fillna(0)
    if len(data.sizes) > 1:  # leaks: only pairs across the sets join images
        side = data.set_of[reps]
        pairs = pairs[side[pairs["a"].to_numpy(np.int64)] != side[pairs["b"].to_numpy(np.int64)]]
    stars = _stars(len(reps), pairs)
    order = np.argsort(rep_of, kind="stable")
    members_of = dict(zip(*_split_sorted(rep_of[order], order)))  # rep index -> its positions
    in_star = {int(x) for g in stars for x in g}
    stars += [np.array([r], np.int64) for r, m in members_of.items() if len(m) > 1 and r not in in_star]
    groups = []
    for star in stars:
        positions = np.sort(np.concatenate([members_of[int(r)] for r in star]))
        if len(data.sizes) > 1 and len(np.unique(data.set_of[positions])) < len(data.sizes):
            continue  # leaks only: a group inside one set is not reported
        groups.append((star, positions))
    lookup = dict(zip(zip(pairs["a"].tolist(), pairs["b"].tolist()),
                      zip(pairs["cosine"].tolist(), pairs["pixels"].tolist(), pairs["embedding"].tolist())))
    return _build(data, exact_class, rep_of, reps, nearest, lookup, groups, cal)


def _split_sorted(values: np.ndarray, order: np.ndarray) -> tuple[list, list]:
    uniq, starts = np.unique(values, return_index=True)
    return [int(u) for u in uniq], np.split(order, starts[1:])


def _build(data: _Pooled, exact_class, rep_of, reps, nearest, lookup, groups, cal) -> Duplicates:
    n = len(data.ids)
    leaks = len(data.sizes) > 1
    scored = []
    for star, positions in groups:
        links = [_link(lookup, star[0], r) for r in star[1:]]
        low = min((c for c, _, _ in links), default=1.0)
        scored.append((-len(positions), -low, int(positions[0]), star, positions, links))
    scored.sort(key=lambda t: t[:3])
    kept = np.ones(n, bool)
    group_of = np.full(n, None, dtype=object)
    role = np.full(n, None, dtype=object)
    records, members, pair_rows = [], [], []
    for gi, (_, _, _, star, positions, links) in enumerate(scored):
        name = f"group {gi + 1}"
        keeper = _keeper(data, positions)
        n_exact = int(len(positions) - len(np.unique(exact_class[positions])))
        counts = [(data.names[s], int((data.set_of[positions] == s).sum())) for s in range(len(data.sizes))]
        sets = ", ".join(f"{k} {v}" for k, v in counts if v)
        kept[positions] = False
        if leaks:
            description, role[positions] = "leak: " + sets, "leak"
        else:
            kept[keeper] = True
            role[positions], role[keeper] = "copy", "kept"
            near = len(positions) - 1 - n_exact
            kinds = " and ".join(x for x in (f"{n_exact} exact" * bool(n_exact), f"{near} near" * bool(near)) if x)
            description = f"original + {kinds} cop{'ies' if len(positions) > 2 else 'y'}"
        group_of[positions] = name
        pix = [p for _, p, _ in links if not np.isnan(p)]
        order = np.r_[keeper, positions[positions != keeper]]
        records.append({"name": name, "description": description, "count": len(positions),
                        "similarity": min((c for c, _, _ in links), default=1.0),
                        "pixel_similarity": min(pix) if pix else np.nan, "exact": n_exact, "sets": sets,
                        "keep": data.ids[keeper], "top_labels": top_labels(data.labels, positions),
                        "exemplars": list(data.ids[order[:4]])})
        members.append(positions)
        centre = reps[star[0]]
        for r in star:  # each near copy with the centre, each exact copy with its twin
            found: list[tuple] = [(centre, reps[r], *_link(lookup, star[0], r))] if r != star[0] else []
            found += [(reps[r], p, 1.0, np.nan, "exact") for p in positions[rep_of[positions] == r] if p != reps[r]]
            pair_rows += [(data.ids[a], data.ids[b], data.names[data.set_of[a]], data.names[data.set_of[b]], cos, px,
                           evidence == "exact", evidence, name) for a, b, cos, px, evidence in found]
    columns = ["name", "description", "count", "similarity", "pixel_similarity", "exact", "sets", "keep",
               "top_labels", "exemplars"]
    result = Duplicates(data.ids, pd.DataFrame.from_records(records, columns=columns), members, sources=data.sets)
    if leaks:
        result.title = f"Leaks between {data.names[0]} and {data.names[1]}"
    result.pairs = pd.DataFrame(pair_rows, columns=["id_a", "id_b", "set_a", "set_b", "similarity",
                                                    "pixel_similarity", "exact", "evidence", "group"])
    near = np.asarray(nearest, np.float32)[rep_of]
    twins = np.bincount(exact_class, minlength=exact_class.max() + 1)[exact_class] > 1
    result.scores = pd.DataFrame({"set": np.asarray(data.names, dtype=object)[data.set_of], "group": group_of,
                                  "role": role, "nearest": np.where(twins, 1.0, near)},
                                 index=pd.Index(data.ids, name="id"))
    result.threshold = cal.embedding_threshold
    result.calibration = cal
    result.names = data.names
    result._sizes = list(data.sizes)
    result._kept = kept
    return result


def _link(lookup: dict, x: int, y: int) -> tuple[float, float, str]:
    """Embedding cosine, pixel similarity and evidence of the pair of representatives ``x``, ``y``."""
    cosine, pixels, embedding = lookup[(min(int(x), int(y)), max(int(x), int(y)))]
    evidence = "+".join(name for name, v in (("embedding", embedding), ("pixels", pixels)) if not np.isnan(v))
    return float(cosine), float(pixels), evidence


def _keeper(data: _Pooled, positions: np.ndarray) -> int:
    """The member to keep: most pixels, then largest file, then first in source order."""
    best, best_key = int(positions[0]), None
    for p in positions:
        emb = data.sets[data.set_of[p]]
        key: tuple = (0, 0)
        if emb.samples is not None and emb.samples.images is None:
            key = _file_size(emb.samples, int(emb._rows()[data.local[p]]))
        key = key + (-int(p),)
        if best_key is None or key > best_key:
            best, best_key = int(p), key
    return best


def _file_size(samples, row: int) -> tuple[int, int]:
    import os

    from PIL import Image

    path = samples.table.at[row, "filepath"]
    try:
        with Image.open(path) as img:
            pixels = img.size[0] * img.size[1]
        return pixels, os.path.getsize(path)
    except (OSError, ValueError, TypeError):
        return 0, 0
