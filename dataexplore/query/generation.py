"""The :class:`GenerationRequest`: a gap in the data turned into prompts a generator can run.

A coverage gap, a missing concept, a failure slice or a query describes images the data lacks. A
request says what to generate (text prompts in the words of the gap, negative prompts from the
covered concepts nearest to it, how many images per prompt, seeds), shows what is meant (exemplar
images) and keeps what is needed to judge the result later without the original data: the model
identity, the gap's vectors and a sample of covered (reference) vectors around it
(:func:`dataexplore.check_generated`). It is saved as a folder::

    sandals.dxg/
        request.json              prompts, counts, words, ids, model identity, provenance
        gap_vectors.npy           the gap members' vectors (float32, at most max_gap rows)
        reference_vectors.npy     covered vectors: the gap's nearest ones and a random sample
        exemplar_vectors.npy      the exemplars' vectors
        exemplar_images.npy       their pixels (uint8), when the images were in memory
        gap_images.npy            pixels of the first gap members (uint8, small in-memory images only)

and exported as JSONL (:meth:`GenerationRequest.to_jsonl`, one prompt per line) and as a ready
script for ``diffusers`` (:meth:`GenerationRequest.to_diffusers_script`). The words come from
:mod:`dataexplore.query.generation_words`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import DataexploreError, SourceError
from .jsonsafe import read_meta, rounded as _rounded

FORMAT = "dataexplore.generation/1"
_FLOATS = ("gap_vectors", "reference_vectors", "exemplar_vectors")
#: Largest request.json read, and the most rows / width of a saved array.
MAX_JSON_BYTES = 32 * 2**20
MAX_ROWS, MAX_WIDTH = 200_000, 16384


@dataclass(eq=False)
class GenerationRequest:
    """What to generate to fill a gap, and what the result will be checked against.

    Build one with ``gap.to_generation(n=...)`` on a coverage, concept or failure-slice result or
    a :class:`~dataexplore.Query`, or with :func:`dataexplore.generation_request`.

    Attributes
    ----------
    name : str
    version : int
        The request's own version (bump it when you edit the prompts; JSONL lines carry it).
    kind : str
        ``"coverage gap"``, ``"missing concept"``, ``"failure slice"`` or ``"query"``.
    n : int
        Images asked for, split over the prompts (``prompts[i]["n"]`` sums to it).
    prompts : list of dict
        ``prompt``, ``negative_prompt``, ``n``, ``seed``, ``concept``, ``weight`` (share of the gap
        members the concept describes best).
    concepts, attributes, negatives : list of str
        The gap's concepts, the concepts that set it apart from its covered neighbours, and the
        covered concepts nearest to it (what it is not).
    model : dict
        Identity of the CLIP model the vectors come from; the check embeds with the same one.
    gap_ids, gap_vectors
        Gap members (a random subsample of at most ``max_gap``) and their vectors.
    reference_ids, reference_vectors, reference_labels
        Covered samples near the gap plus a random sample of the reference; labels where known.
    exemplars, exemplar_vectors, exemplar_paths, exemplar_images
        The gap's most central members: ids, vectors, file paths (None for in-memory images) and
        pixels (uint8, when in memory).
    gap_images : numpy.ndarray or None
        Pixels of the first ``len(gap_images)`` gap members (small in-memory images only): real
        images of the gap that the duplicate check calibrates on and compares with.
    source : dict
        What it was made from (``analysis``, ``group``, ``description``) and ``created``.

    Examples
    --------
    >>> cov = dx.coverage(train_without_sandals, production)  # doctest: +SKIP
    >>> req = cov.to_generation(0, n=200)  # doctest: +SKIP
    >>> req.prompts[0]["prompt"], req.prompts[0]["negative_prompt"]  # doctest: +SKIP
    ('a photo of a sandal', 'sneaker, ankle boot, bag')
    >>> req.save("sandals.dxg"); req.to_jsonl("sandals.jsonl")  # doctest: +SKIP
    >>> dx.check_generated(dx.load_generation("sandals.dxg"), generated_pixels)  # doctest: +SKIP
    measure : dict
        The coverage measure's settings: ``k`` (neighbours), ``expected`` (share of reference
        neighbours expected where covered) and ``near`` (the first ``near`` reference rows are the
        gap's nearest; the rest a random sample).
    """

    name: str
    kind: str
    n: int
    prompts: list
    model: dict
    gap_ids: list
    gap_vectors: np.ndarray
    reference_ids: list
    reference_vectors: np.ndarray
    reference_labels: list = field(default_factory=list)
    concepts: list = field(default_factory=list)
    attributes: list = field(default_factory=list)
    negatives: list = field(default_factory=list)
    exemplars: list = field(default_factory=list)
    exemplar_vectors: np.ndarray | None = None
    exemplar_paths: list = field(default_factory=list)
    exemplar_images: np.ndarray | None = None
    gap_images: np.ndarray | None = None
    source: dict = field(default_factory=dict)
    measure: dict = field(default_factory=dict)
    version: int = 1
    seed: int = 0

    def __repr__(self) -> str:
        lines = [f"<GenerationRequest {self.name!r} v{self.version}: {self.n} images of a {self.kind}, "
                 f"model={self.model.get('name', '?')!r}, {len(self.gap_ids)} gap / {len(self.reference_ids)} "
                 "reference vectors>"]
        lines += [f"  {p['n']:>5} x {p['prompt']!r} (not: {p['negative_prompt']!r})" for p in self.prompts]
        return "\n".join(lines)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GenerationRequest):
            return NotImplemented
        if self.to_dict() != other.to_dict():
            return False
        mine, theirs = self._arrays(), other._arrays()
        return mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in mine)

    # ---- exports ------------------------------------------------------------------------------
    def lines(self) -> list[dict]:
        """One JSON-ready record per prompt: what :meth:`to_jsonl` writes."""
        return [{"prompt": p["prompt"], "negative_prompt": p["negative_prompt"], "n": int(p["n"]),
                 "seed": int(p["seed"]), "prompt_index": i, "concept": p.get("concept", ""),
                 "request": self.name, "version": self.version, "gap": self.source.get("group", self.name),
                 "exemplars": list(self.exemplars), "model": self.model.get("name", "")}
                for i, p in enumerate(self.prompts)]

    def to_jsonl(self, path: str | os.PathLike) -> Path:
        """Write the prompts as JSON Lines: ``prompt``, ``negative_prompt``, ``n``, ``seed``,
        ``prompt_index``, ``concept``, ``request``, ``version``, ``gap``, ``exemplars`` (ids), ``model``.

        Any generation service can run it; :meth:`to_diffusers_script` writes one for ``diffusers``.

        Examples
        --------
        >>> req.to_jsonl("sandals.jsonl")  # doctest: +SKIP
        """
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in self.lines()),
                        encoding="utf-8")
        return path

    def to_diffusers_script(self, path: str | os.PathLike, *, model_id: str = "stabilityai/sd-turbo",
                            jsonl: str | os.PathLike | None = None) -> Path:
        """Write a Python script that runs this request's JSONL with ``diffusers`` (not a dependency).

        The script needs ``diffusers`` and ``torch`` where it runs. It reads the JSONL (written next
        to the script as ``<script>.jsonl`` unless ``jsonl`` names one), generates each line's
        ``n`` images with ``AutoPipelineForText2Image`` and saves them as
        ``<out>/p<prompt_index>-<k>.png``, the names :func:`dataexplore.check_generated` maps back to
        prompts. Run it as ``python script.py --out generated/ [--model-id ...] [--device cuda]``.

        Examples
        --------
        >>> req.to_diffusers_script("generate_sandals.py", model_id="runwayml/stable-diffusion-v1-5")  # doctest: +SKIP
        >>> # then, where diffusers is installed: python generate_sandals.py --out generated/
        >>> dx.check_generated(req, "generated/")  # doctest: +SKIP
        """
        from .generation_script import script_text

        path = Path(path).expanduser()
        lines = Path(jsonl).expanduser() if jsonl is not None else path.with_suffix(".jsonl")
        self.to_jsonl(lines)
        rel = lines.name if lines.parent.resolve() == path.parent.resolve() else str(lines.resolve())
        path.write_text(script_text(model_id, rel, self.name), encoding="utf-8")
        return path

    # ---- saving -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Everything but the arrays, as JSON-ready values (what ``request.json`` holds)."""
        return _rounded({"format": FORMAT, "name": self.name, "version": self.version, "kind": self.kind,
                         "n": self.n, "seed": self.seed, "prompts": self.prompts, "model": self.model,
                         "concepts": self.concepts, "attributes": self.attributes, "negatives": self.negatives,
                         "gap_ids": self.gap_ids, "reference_ids": self.reference_ids,
                         "reference_labels": self.reference_labels, "exemplars": self.exemplars,
                         "exemplar_paths": self.exemplar_paths, "source": self.source,
                         "measure": self.measure})

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {k: np.asarray(getattr(self, k), np.float32) for k in _FLOATS if getattr(self, k) is not None}
        for key in ("exemplar_images", "gap_images"):
            if getattr(self, key) is not None:
                out[key] = np.asarray(getattr(self, key), np.uint8)
        return out

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the request folder atomically (see the module docs); reload with :func:`load_generation`."""
        from ..core.io import replace_dir

        def fill(tmp: Path) -> None:
            (tmp / "request.json").write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False)
                                              + "\n", encoding="utf-8")
            for key, arr in self._arrays().items():
                np.save(tmp / f"{key}.npy", arr, allow_pickle=False)

        return replace_dir(path, fill, overwrite=overwrite, kind="generation request")


def load_generation(path: str | os.PathLike) -> GenerationRequest:
    """Read a request folder written by :meth:`GenerationRequest.save`, checking everything first.

    The JSON's keys and types, the arrays' dtypes and shapes (from their headers, before loading),
    finite vectors, prompt counts that sum to ``n``: anything wrong is one
    :class:`~dataexplore.SourceError` naming the file and the problem. Nothing is unpickled.

    Examples
    --------
    >>> req = dx.load_generation("sandals.dxg")  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    meta_path = path / "request.json"
    meta = read_meta(path, "request.json", "request", FORMAT, MAX_JSON_BYTES, title="generation request")

    def fail(key: str, want: str) -> SourceError:
        return SourceError(f"{meta_path}: {key!r} must be {want}, got {str(meta.get(key))[:40]!r}")

    def text(key: str) -> str:
        if not isinstance(meta.get(key), str):
            raise fail(key, "text")
        return meta[key]

    def count(key: str, low: int = 0) -> int:
        v = meta.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise fail(key, f"a whole number >= {low}")
        return v

    def texts(key: str, nullable: bool = False) -> list:
        v = meta.get(key, [])
        ok = (str, type(None)) if nullable else (str,)
        if not isinstance(v, list) or not all(isinstance(x, ok) for x in v):
            raise fail(key, "a list of text")
        return v

    for key in ("model", "source", "measure"):
        if not isinstance(meta.get(key, {}), dict):
            raise fail(key, "an object")
    n = count("n")
    prompts = meta.get("prompts")
    if not isinstance(prompts, list) or not prompts:
        raise fail("prompts", "a non-empty list")
    for p in prompts:
        good = isinstance(p, dict) and isinstance(p.get("prompt"), str) and p["prompt"].strip() \
            and isinstance(p.get("negative_prompt", ""), str) \
            and all(isinstance(p.get(k), int) and not isinstance(p.get(k), bool) and p[k] >= 0 for k in ("n", "seed"))
        if not good:
            raise SourceError(f"{meta_path}: each prompt needs a non-empty 'prompt' and whole numbers 'n' and "
                              f"'seed', got {str(p)[:80]}")
    if sum(p["n"] for p in prompts) != n:
        raise SourceError(f"{meta_path}: the prompts ask for {sum(p['n'] for p in prompts)} images, 'n' says {n}")
    gap_ids, ref_ids, exemplars = texts("gap_ids"), texts("reference_ids"), texts("exemplars")
    arrays = _read_arrays(path, {"gap_vectors": len(gap_ids), "reference_vectors": len(ref_ids),
                                 "exemplar_vectors": len(exemplars), "exemplar_images": len(exemplars),
                                 "gap_images": -len(gap_ids)})
    for key in ("gap_vectors", "reference_vectors"):
        if key not in arrays:
            raise SourceError(f"{path}: {key}.npy is missing")
    measure = meta.get("measure", {})
    k, expected, near = (measure.get(x) for x in ("k", "expected", "near"))
    good = (isinstance(k, int) and not isinstance(k, bool) and k >= 1 and isinstance(near, int)
            and not isinstance(near, bool) and 0 <= near <= len(ref_ids) and isinstance(expected, (int, float))
            and not isinstance(expected, bool) and 0 < expected < 1)
    if not good:
        raise SourceError(f"{meta_path}: 'measure' needs whole numbers 'k' >= 1 and 'near' (at most the reference "
                          f"rows) and 'expected' between 0 and 1, got {str(measure)[:80]}")
    ref_labels, paths = texts("reference_labels"), texts("exemplar_paths", nullable=True)
    if ref_labels and len(ref_labels) != len(ref_ids):
        raise SourceError(f"{meta_path}: {len(ref_labels)} reference labels for {len(ref_ids)} reference ids")
    if paths and len(paths) != len(exemplars):
        raise SourceError(f"{meta_path}: {len(paths)} exemplar paths for {len(exemplars)} exemplars")
    return GenerationRequest(
        name=text("name"), kind=text("kind"), n=n, prompts=prompts, model=meta.get("model", {}), gap_ids=gap_ids,
        gap_vectors=arrays["gap_vectors"], reference_ids=ref_ids, reference_vectors=arrays["reference_vectors"],
        reference_labels=ref_labels, concepts=texts("concepts"), attributes=texts("attributes"),
        negatives=texts("negatives"), exemplars=exemplars, exemplar_vectors=arrays.get("exemplar_vectors"),
        exemplar_paths=paths, exemplar_images=arrays.get("exemplar_images"), gap_images=arrays.get("gap_images"),
        source=meta.get("source", {}), measure=measure,
        version=count("version", 1), seed=count("seed"))


def _read_arrays(folder: Path, rows: dict[str, int]) -> dict[str, np.ndarray]:
    """The request's .npy files, dtype and shape checked from the header before any data is read."""
    out: dict[str, np.ndarray] = {}
    for key, n_rows in rows.items():
        file = folder / f"{key}.npy"
        if not file.is_file():
            continue
        try:
            with open(file, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                if version not in ((1, 0), (2, 0)):
                    raise SourceError(f"{file}: unsupported array format {version}")
                header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                    else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = header(fh, max_header_size=10_000)
                images = key.endswith("_images")
                good = (dtype == np.uint8 and len(shape) in (3, 4)) if images else \
                    (dtype.kind == "f" and dtype.itemsize <= 8 and len(shape) == 2 and 1 <= shape[1] <= MAX_WIDTH)
                if not good or fortran or not shape or shape[0] > MAX_ROWS or (images and max(shape[1:]) > 4096):
                    raise SourceError(f"{file}: expected {'uint8 images' if images else 'a 2-D float array'}, "
                                      f"got {dtype} {shape}")
                if shape[0] != n_rows and not (n_rows < 0 and shape[0] <= -n_rows):  # negative: at most
                    raise SourceError(f"{file}: {shape[0]:,} rows for {n_rows:,} ids in request.json")
                expected = fh.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                if os.path.getsize(file) != expected:  # checked before numpy reserves memory for the header's shape
                    raise SourceError(f"{file}: {os.path.getsize(file):,} bytes where its header says {expected:,}")
                fh.seek(0)
                arr = np.lib.format.read_array(fh, allow_pickle=False)
        except SourceError:
            raise
        except Exception as exc:  # truncated or crafted files: numpy and OS errors alike
            raise SourceError(f"{file} is not a readable array ({type(exc).__name__}: {str(exc)[:160]})") from None
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
            if not np.isfinite(arr).all():
                raise SourceError(f"{file} holds NaN or infinite values")
        out[key] = arr
    shapes = {out[k].shape[1:] for k in ("exemplar_images", "gap_images") if k in out}
    if len(shapes) > 1:
        raise SourceError(f"{folder}: exemplar and gap images differ in shape {sorted(shapes)}")
    widths = {out[k].shape[1] for k in _FLOATS if k in out}
    if len(widths) > 1:
        raise SourceError(f"{folder}: its vectors have different widths {sorted(widths)}")
    return out


def generation_request(thing: Any, n: int = 100, **kwargs: Any) -> GenerationRequest:
    """A :class:`GenerationRequest` from a coverage, concept or failure-slice result or a query.

    The same as ``thing.to_generation(n=n, **kwargs)``; see those methods for what each takes
    (which group or concept; ``reference=`` for a query).

    Examples
    --------
    >>> cov = dx.coverage(train, production)  # doctest: +SKIP
    >>> req = dx.generation_request(cov, n=200)  # the worst gap  # doctest: +SKIP
    >>> req.save("gap1.dxg"); req.to_jsonl("gap1.jsonl")  # doctest: +SKIP
    """
    make = getattr(thing, "to_generation", None)
    if make is None:
        raise DataexploreError(f"a generation request is made from a coverage gap, a missing concept, a failure "
                               f"slice or a query, got {type(thing).__name__}")
    return make(n=n, **kwargs)


__all__ = ["GenerationRequest", "generation_request", "load_generation"]
