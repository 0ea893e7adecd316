"""The :class:`Query`: a selection turned into a reusable, versionable artefact.

A query remembers what was selected (ids, lasso polygon, the map and model it was made on), what
it looks like (centroid, medoid exemplars, the concepts that describe it), and how to find more
of it (a retrieval probe with a calibrated threshold). It is saved as a folder::

    trousers.dxq/
        query.json    everything readable: provenance, description, threshold, calibration
        ids.txt       the selected sample ids, one per line
        arrays.npz    selected vectors, centroid, probe weights, text vector

The text files are written with sorted keys and rounded numbers, so saving the same query twice
gives the same bytes and ``git diff`` shows what changed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError, SourceError
from ..core.ids import rows_of
from . import probe as _probe
from .jsonsafe import now as _now, read_meta, rounded as _rounded

FORMAT = "dataexplore.query/1"
_ARRAYS = ("vectors", "centroid", "coef", "text_vector")


@dataclass(eq=False)
class Query:
    """A saved selection that finds more such images in any pool.

    Build one with :meth:`Selection.to_query <dataexplore.Selection.to_query>`, :func:`make_query`
    or :meth:`from_text`; run it with :meth:`search`; keep it with :meth:`save` / :func:`load_query`.

    Attributes
    ----------
    name : str
    method : {"probe", "knn", "text"}
        ``"probe"``: a linear probe of selected vs. the rest of the map, with a threshold chosen on
        out-of-fold scores and a calibration curve for estimated precision; ``"knn"``: similarity
        to the nearest selected images (selections of fewer than 10); ``"text"``: similarity to a
        text prompt.
    model : dict
        Identity of the CLIP model the query lives in; a pool must be embedded with the same one.
    ids : numpy.ndarray
        The selected sample ids (empty for text queries).
    description : str
        The concepts that set the selection apart from the rest of its map, in words.
    exemplars : list of str
        Ids of the medoids: the selected images closest to the selection's centre.
    threshold : float or None
        Scores at or above it count as "such an image".
    provenance : dict
        ``dataset`` (name, fingerprint, size), ``projection`` parameters, ``polygon``, ``shape``,
        ``labels`` (label counts of the selection when known), ``classes`` (the label classes of
        the map it was made on: labeling exports of its search results offer them), ``created``.

    Examples
    --------
    >>> import dataexplore as dx
    >>> ex = dx.explore("fashion-mnist:test:2000")  # doctest: +SKIP
    >>> q = ex.selection.to_query("trousers")       # after a lasso  # doctest: +SKIP
    >>> q.save("trousers.dxq")                      # doctest: +SKIP
    >>> q.search("fashion-mnist:train:10000", top=100).table.head()  # doctest: +SKIP
    """

    name: str
    method: str
    model: dict
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, object))
    vectors: np.ndarray | None = None
    centroid: np.ndarray | None = None
    probe: dict = field(default_factory=dict)
    description: str = ""
    concepts: list = field(default_factory=list)
    exemplars: list = field(default_factory=list)
    text: str | None = None
    text_vector: np.ndarray | None = None
    provenance: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        what = f"text {self.text!r}" if self.method == "text" else f"{len(self)} selected"
        return (f"<Query {self.name!r}: {what}, method={self.method}, model={self.model.get('name', '?')!r}, "
                f"description={self.description!r}>")

    @property
    def threshold(self) -> float | None:
        return self.probe.get("threshold")

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def from_text(cls, text: str, model: str = "fashion-tiny", pretrained: str | None = None, *,
                  name: str | None = None, threshold: float | str | None = "auto") -> "Query":
        """A query for a concept that has no images yet, e.g. a missing concept: ``"a photo of a sandal"``.

        Parameters
        ----------
        text : str
            A noun phrase (put into CLIP's prompt templates) or a full sentence (used as is).
        model, pretrained : str
            The CLIP model; pools are embedded with it.
        threshold : "auto", float or None
            Cosine similarity above which an image counts as a match; ``"auto"`` uses the concept's
            calibrated threshold when the model ships one (see :mod:`dataexplore.language.thresholds`),
            else the model's typical threshold, else none.

        Examples
        --------
        >>> q = dx.Query.from_text("sandal")  # doctest: +SKIP
        >>> q.search("fashion-mnist:train:5000", top=50)  # doctest: +SKIP
        """
        from ..language.thresholds import concept_thresholds
        from ..language.vocabulary import concept_vectors
        from ..models import load_model

        if not isinstance(text, str) or not text.strip():
            raise DataexploreError("a text query needs a non-empty text")
        clip = load_model(model, pretrained)
        vector = concept_vectors(clip, [text])[0]
        if threshold == "auto":  # the concept's own shipped threshold, else the model's typical one
            cal = concept_thresholds(clip, [text], vector[None], np.zeros((0, len(vector)), np.float32))
            threshold = None if cal.source[0] == "uncalibrated" else float(cal.threshold[0])
        elif threshold is not None and not (isinstance(threshold, (int, float)) and -1 <= threshold <= 1):
            raise DataexploreError(f"threshold must be 'auto', None or a cosine in [-1, 1], got {threshold!r}")
        identity = dict(clip.identity, name=clip.name, pretrained=clip.pretrained, key=clip.key)
        return cls(name=name or text.strip(), method="text", model=identity, text=text.strip(), text_vector=vector,
                   probe=_rounded({"method": "text", "threshold": threshold}),
                   description=text.strip(), concepts=[text.strip()], provenance={"created": _now()})

    # ---- running ------------------------------------------------------------------------------
    def score(self, vectors: np.ndarray) -> np.ndarray:
        """Scores of L2-normalised ``vectors`` of this query's model; higher is more alike."""
        vectors = np.asarray(vectors, np.float32)
        held = self.text_vector if self.method == "text" else self.vectors
        if held is None:
            raise DataexploreError(f"this {self.method} query holds no vectors to score with")
        width = held.shape[-1]
        if vectors.ndim != 2 or vectors.shape[1] != width:
            raise DataexploreError(f"vectors of width {vectors.shape[-1]} cannot be scored by a query of width "
                                   f"{width}: embed them with the query's model")
        return _probe.score(self.probe, vectors, exemplars=self.vectors, text=self.text_vector)

    def search(self, pool: Any, top: int | None = 100, **kwargs):
        """Rank the images of ``pool`` by this query; see :func:`dataexplore.query.search`."""
        from .search import search

        return search(self, pool, top=top, **kwargs)

    def to_generation(self, n: int = 100, *, reference: Any = None, **kwargs):
        """A :class:`~dataexplore.query.generation.GenerationRequest` for ``n`` more such images.

        Parameters
        ----------
        n : int
        reference : Embeddings
            The covered samples to set the selection apart from (e.g. the map's or the training
            set's embeddings; the query's own ids are left out).

        Examples
        --------
        >>> req = q.to_generation(100, reference=train)  # doctest: +SKIP
        """
        from ..core.embeddings import Embeddings
        from .generation_words import request_from

        if self.vectors is None or not len(self.ids):
            raise DataexploreError("a text query has no images to describe or check generations against: search a "
                                   "pool with it and make a request from what it finds")
        if not isinstance(reference, Embeddings):
            raise DataexploreError("query.to_generation needs reference= (Embeddings of the covered data, e.g. the "
                                   "map's)")
        outside = ~np.isin(reference.ids, self.ids.astype(str))
        gap = Embeddings(ids=self.ids, vectors=self.vectors, model=dict(self.model))
        source = {"analysis": "Query", "group": self.name, "description": self.description}
        return request_from(gap, reference.subset(outside), n=n, kind="query", words=list(self.concepts[:1]),
                            source=source, **{"name": self.name, **kwargs})

    # ---- saving -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Everything but the arrays, as JSON-ready values (what ``query.json`` holds)."""
        probe = {k: v for k, v in self.probe.items() if k != "coef"}
        return _rounded({"format": FORMAT, "name": self.name, "method": self.method, "model": self.model,
                         "description": self.description, "concepts": list(self.concepts),
                         "exemplars": list(self.exemplars), "text": self.text, "n_ids": len(self.ids),
                         "probe": probe, "provenance": self.provenance})

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the query folder atomically; an existing one is replaced only with ``overwrite=True``.

        Examples
        --------
        >>> q.save("queries/trousers.dxq")  # doctest: +SKIP
        """
        from ..core.io import replace_dir

        broken = next((i for i in self.ids if str(i).splitlines() not in ([str(i)], [])), None)
        if broken is not None:
            raise DataexploreError(f"sample id {broken!r} contains a line break: it cannot be saved in ids.txt")
        arrays = {"vectors": self.vectors, "centroid": self.centroid, "coef": self.probe.get("coef"),
                  "text_vector": self.text_vector}

        def fill(tmp: Path) -> None:
            (tmp / "query.json").write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False)
                                            + "\n", encoding="utf-8")
            (tmp / "ids.txt").write_text("".join(f"{i}\n" for i in self.ids), encoding="utf-8")
            np.savez(tmp / "arrays.npz", allow_pickle=False,
                     **{k: np.asarray(v, np.float32) for k, v in arrays.items() if v is not None})

        return replace_dir(path, fill, overwrite=overwrite, kind="query")


#: Largest vector width a saved query may hold (CLIP models use 512-1024).
MAX_WIDTH = 16384
#: Largest query.json read (a query's provenance and calibration take a few hundred KB at most).
MAX_JSON_BYTES = 32 * 2**20


def load_query(path: str | os.PathLike) -> Query:
    """Read a query folder written by :meth:`Query.save`.

    A query folder may come from anyone (it is meant to be shared), so everything in it is checked
    before use: the JSON's types and keys, the arrays' shapes and sizes (read from their headers
    before any data is loaded), finite numbers everywhere. Anything else is one
    :class:`~dataexplore.SourceError` naming the file and the problem; nothing is unpickled.

    Examples
    --------
    >>> q = dx.load_query("queries/trousers.dxq")  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    meta_path = path / "query.json"
    meta = read_meta(path, "query.json", "query", FORMAT, MAX_JSON_BYTES)
    check = _Checker(meta_path)
    name = check.text(meta, "name")
    method = check.choice(meta, "method", ("probe", "knn", "text"))
    model = check.mapping(meta, "model", {})
    probe = {k: v for k, v in check.mapping(meta, "probe", {}).items() if k != "coef"}  # weights: arrays.npz only
    provenance = check.mapping(meta, "provenance", {})
    description = check.text(meta, "description", "")
    concepts = check.texts(meta, "concepts")
    exemplars = check.texts(meta, "exemplars")
    text = check.text(meta, "text", None)
    n_ids = check.count(meta, "n_ids")
    ids_path = path / "ids.txt"
    try:
        ids = ids_path.read_text(encoding="utf-8").splitlines() if ids_path.is_file() else []
    except UnicodeDecodeError as exc:
        raise SourceError(f"{ids_path} is not UTF-8 text ({exc.reason})") from None
    if n_ids is not None and len(ids) != n_ids:
        raise SourceError(f"{path}: ids.txt has {len(ids)} ids, query.json says {n_ids}")
    arrays = _read_arrays(path / "arrays.npz", len(ids))
    width = {a.shape[-1] for a in arrays.values()}
    if len(width) > 1:
        raise SourceError(f"{path / 'arrays.npz'}: its arrays have different widths {sorted(width)}")
    if "coef" in arrays:
        probe["coef"] = arrays["coef"]
    _check_probe(probe, method, meta_path, "vectors" in arrays)
    if method in ("probe", "knn") and "vectors" not in arrays:
        raise SourceError(f"{path}: arrays.npz with the selected vectors is missing")
    if method == "text" and "text_vector" not in arrays:
        raise SourceError(f"{path}: a text query needs its text_vector in arrays.npz")
    return Query(name=name, method=method, model=model, ids=np.asarray(ids, dtype=object),
                 vectors=arrays.get("vectors"), centroid=arrays.get("centroid"), probe=probe,
                 description=description, concepts=concepts, exemplars=exemplars, text=text,
                 text_vector=arrays.get("text_vector"), provenance=provenance)


class _Checker:
    """Type checks of a query.json's fields, each failure one SourceError naming the file and key."""

    def __init__(self, where: Path):
        self.where = where

    def fail(self, key: str, want: str, got: Any) -> SourceError:
        return SourceError(f"{self.where}: {key!r} must be {want}, got {type(got).__name__}")

    def text(self, meta: dict, key: str, default: Any = ...) -> Any:
        if key not in meta and default is not ...:
            return default
        value = meta.get(key)
        if value is None and default is None:
            return None
        if not isinstance(value, str):
            raise self.fail(key, "text", value)
        return value

    def choice(self, meta: dict, key: str, options: tuple) -> str:
        value = self.text(meta, key)
        if value not in options:
            raise SourceError(f"{self.where}: {key!r} must be one of {', '.join(options)}, got {value!r:.40}")
        return value

    def mapping(self, meta: dict, key: str, default: dict) -> dict:
        value = meta.get(key, default)
        if not isinstance(value, dict):
            raise self.fail(key, "an object", value)
        return value

    def texts(self, meta: dict, key: str) -> list:
        value = meta.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "a list of text", value)
        return value

    def count(self, meta: dict, key: str) -> int | None:
        value = meta.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(key, "a count", value)
        return value


def _read_arrays(path: Path, n_ids: int) -> dict[str, np.ndarray]:
    """The arrays of ``arrays.npz``, shapes and sizes checked from their headers before loading."""
    import zipfile

    if not path.is_file():
        return {}
    want = {"vectors": 2, "centroid": 1, "coef": 1, "text_vector": 1}
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            names = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
            for key, member in names.items():
                if key not in want:
                    continue
                with zf.open(member) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version not in ((1, 0), (2, 0)):
                        raise SourceError(f"{path}: {key} has an unsupported array format {version}")
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, fortran, dtype = read_header(fh, max_header_size=10_000)
                if dtype.kind != "f" or dtype.itemsize > 8 or len(shape) != want[key] or fortran:
                    raise SourceError(f"{path}: {key} must be a {want[key]}-D float array, got {dtype} {shape}")
                rows = shape[0] if key == "vectors" else 1
                if key == "vectors" and rows != n_ids:
                    raise SourceError(f"{path}: {rows:,} vectors for {n_ids:,} ids in ids.txt")
                if not 1 <= shape[-1] <= MAX_WIDTH:
                    raise SourceError(f"{path}: {key} has width {shape[-1]:,}, expected 1 to {MAX_WIDTH:,}")
                with zf.open(member) as fh:
                    arr = np.lib.format.read_array(fh, allow_pickle=False)
                arr = np.asarray(arr, np.float32)
                if not np.isfinite(arr).all():
                    raise SourceError(f"{path}: {key} holds NaN or infinite values")
                out[key] = arr
    except SourceError:
        raise
    except Exception as exc:  # a damaged or crafted archive: zlib, zipfile, numpy header errors alike
        raise SourceError(f"{path} is not a readable arrays file ({type(exc).__name__}: {str(exc)[:200]})") from None
    return out


def _check_probe(probe: dict, method: str, where: Path, has_vectors: bool) -> None:
    """The probe settings a query scores with: the right kinds of numbers, all finite."""

    def number(key: str, optional: bool = False) -> None:
        value = probe.get(key)
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise SourceError(f"{where}: probe {key!r} must be a finite number, got {value!r:.40}")

    if probe.get("method", method) != method:
        raise SourceError(f"{where}: the probe's method {probe.get('method')!r} is not the query's {method!r}")
    probe["method"] = method
    number("threshold", optional=True)
    if method == "probe":
        if "coef" not in probe:
            raise SourceError(f"{where}: a probe query needs its weights (coef in arrays.npz)")
        number("intercept")
    if method == "knn":
        k = probe.get("k", 1)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise SourceError(f"{where}: probe 'k' must be a positive integer, got {k!r:.40}")
        probe["k"] = k
    cal = probe.get("calibration")
    if cal is not None:
        if not isinstance(cal, dict):
            raise SourceError(f"{where}: probe 'calibration' must be an object")
        xs, ys = cal.get("score", []), cal.get("precision", [])
        ok = isinstance(xs, list) and isinstance(ys, list) and len(xs) == len(ys) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in xs + ys)
        if not ok or list(xs) != sorted(xs):
            raise SourceError(f"{where}: probe 'calibration' must hold two equally long lists of finite numbers, "
                              "scores ascending")


def make_query(selection: Any, embeddings: Any = None, *, name: str | None = None, describe: bool = True,
               random_state: int = 0) -> Query:
    """Turn a selection into a :class:`Query` against the embeddings of the map it was made on.

    Parameters
    ----------
    selection : Selection or sequence of str
        The selected samples (a :class:`~dataexplore.Selection`, or ids).
    embeddings : Embeddings, optional
        The map's embeddings; default: the ones the selection came from (set by the explorer).
    name : str, optional
        Default: the selection's most common label, else ``"query"``.
    describe : bool
        Name the selection with the concepts that set it apart (needs the model's text tower).

    Raises
    ------
    DataexploreError
        For an empty selection, unknown ids, or missing embeddings.

    Examples
    --------
    >>> q = make_query(ex.selection, name="trousers")  # doctest: +SKIP
    """
    from ..core.embeddings import Embeddings, medoids

    emb = embeddings if embeddings is not None else getattr(selection, "embeddings", None)
    if emb is None:
        raise DataexploreError("this selection does not know its embeddings: pass embeddings= (the map's Embeddings)")
    if not isinstance(emb, Embeddings):
        raise DataexploreError(f"embeddings must be dataexplore.Embeddings, got {type(emb).__name__}")
    ids = np.asarray(getattr(selection, "ids", selection), dtype=object).astype(str)
    if len(ids) == 0:
        raise DataexploreError("the selection is empty: select some points before making a query")
    pos = rows_of(emb.ids, ids, message="{count} selected ids are not in the embeddings, e.g. {id!r}: pass the "
                  "embeddings of the map the selection was made on")
    inside = np.zeros(len(emb), bool)
    inside[pos] = True
    positives, negatives = emb.vectors[pos], emb.vectors[~inside]
    method = _probe.check_probe_input(positives, negatives)
    fitted = (_probe.fit_probe(positives, negatives, random_state) if method == "probe" else _probe.fit_knn(positives))
    fitted = {k: v if k == "coef" else _rounded(v) for k, v in fitted.items()}  # as saved: reloads score the same
    centre = positives.mean(axis=0)
    centre = centre / max(float(np.linalg.norm(centre)), 1e-12)
    table = emb.table.iloc[pos]
    labels = {}
    if "label" in table.columns:
        labels = {str(k): int(v) for k, v in table["label"].astype(str).value_counts().head(10).items()}
    classes = sorted(str(c) for c in pd.unique(emb.table["label"].dropna().astype(str))) \
        if "label" in emb.table.columns else []
    concepts = _describe(emb, positives) if describe else []
    polygon = getattr(selection, "polygon", None)
    prov = dict(getattr(selection, "provenance", {}) or {})
    provenance = {
        "created": _now(),
        "dataset": {"name": getattr(emb.samples, "name", "") or prov.get("source", ""), "size": len(emb),
                    "fingerprint": emb.fingerprint},
        "projection": prov.get("projection"),
        "shape": getattr(selection, "shape", "ids"),
        "polygon": None if polygon is None else np.asarray(polygon, np.float64).tolist(),
        "labels": labels,
        "classes": classes,
    }
    default_name = next(iter(labels), "query")
    return Query(name=name or default_name, method=method, model=dict(emb.model), ids=ids, vectors=positives,
                 centroid=centre.astype(np.float32), probe=fitted, description=", ".join(concepts[:3]),
                 concepts=concepts, exemplars=[str(i) for i in ids[medoids(positives, 8)]], provenance=provenance)


def _describe(emb, positives: np.ndarray) -> list[str]:
    from ..language.vocabulary import Describer, text_model, vocabulary

    clip = text_model(emb)
    if clip is None:
        return []
    labels = emb.table["label"] if "label" in emb.table.columns else None
    return Describer(emb.vectors, clip, vocabulary(None, labels), labels=labels).top(positives, 5)
