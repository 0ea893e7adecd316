"""Checking generated images against the gap they were made for, before anyone trains on them.

:func:`check_generated` embeds the images with the request's model and judges each one with what
the request carries (:class:`~dataexplore.query.generation.GenerationRequest`), so the original data
is not needed:

- **off-target**: an image whose ``k`` most similar gap members are on average less similar than its
  ``k`` most similar covered (reference) samples: it looks more like what the data has than like
  the gap (``reason`` "closer to covered"); or whose most similar gap member is less similar than
  the gap members are to their own nearest other member, at the ``floor`` quantile (``reason``
  "unlike the gap": noise, another domain);
- **duplicates**: :func:`~dataexplore.analysis.duplicates.duplicates` on the generated images pooled
  with the request's real gap images (exemplars, gap pixels; calibrated thresholds, pixel evidence
  where the embedding is weak): an image in a group with a real one copies it (``duplicate_of`` is
  the real image's id), and of a group of generated images one is kept;
- **gap coverage before/after**: the count score of :func:`~dataexplore.analysis.gaps.under_coverage`
  (0 as many covered neighbours as expected, 1 none) of each gap member against the request's
  gap's nearest reference vectors with the analysis' ``k`` and expected share (so "before" repeats
  the analysis), then against them plus the kept images; ``covered`` is the share of gap members
  scoring under :data:`~dataexplore.analysis.verdicts.UNDER_COVERED`, the cut a failure slice's
  verdict uses. Per prompt, "after" adds only that prompt's kept images.

The images kept (neither off-target nor a duplicate) are :attr:`GenerationCheck.kept`, and
:meth:`GenerationCheck.selection` makes them a :class:`~dataexplore.Selection` that exports like any other.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError
from ..core.selection import Selection, as_selection
from ..models.trust import model_to_load
from .verdicts import UNDER_COVERED

#: Gap members and reference samples averaged per side when deciding off-target.
K_SIDE = 5
#: Quantile of the gap's own nearest-member similarity under which an image is unlike the gap.
FLOOR = 0.01
_NAME = re.compile(r"p(\d+)[-_](\d+)")


class GenerationCheck:
    """What came back for a :class:`~dataexplore.query.generation.GenerationRequest` (see :func:`check_generated`).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per generated image (index ``id``): ``prompt`` (index), ``prompt_text``, ``on_target``,
        ``reason`` (why off-target, else ""), ``duplicate_of`` (id of an exemplar or kept image, else
        None), ``kept``, ``nearest_gap`` (id), ``gap_similarity``, ``nearest_reference`` (id),
        ``reference_similarity`` (mean of the ``k`` most similar on each side), ``reference_label``,
        ``x``/``y`` on the map when a projection was given.
    prompts : pandas.DataFrame
        Per prompt and a final ``all`` row: ``images``, ``off_target``, ``duplicates``, ``kept``,
        ``covered_before``, ``covered_after`` (share of gap members covered), ``score_before``,
        ``score_after`` (mean count score, lower is better covered).
    embeddings : Embeddings
        The generated images' embeddings (with their samples).
    request : GenerationRequest
    verdict : str
        The batch in words.
    """

    title = "Generated images"

    def __init__(self, request, embeddings, table: pd.DataFrame, prompts: pd.DataFrame, verdict: str):
        self.request, self.embeddings, self.table, self.prompts, self.verdict = (request, embeddings, table, prompts,
                                                                                verdict)

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        return f"<GenerationCheck {len(self)} images for {self.request.name!r}: {self.verdict}>\n" + \
            self.prompts.to_string()

    @property
    def summary(self) -> dict:
        """The whole batch's numbers (the ``all`` row of :attr:`prompts`) and the verdict."""
        return {**self.prompts.loc["all"].to_dict(), "verdict": self.verdict}

    @property
    def off_target(self) -> np.ndarray:
        """Ids of the off-target images (drop them)."""
        return self.table.index[~self.table["on_target"]].to_numpy(dtype=object)

    @property
    def duplicates(self) -> np.ndarray:
        """Ids of the images that copy an exemplar or another generated image (drop them)."""
        return self.table.index[self.table["duplicate_of"].notna()].to_numpy(dtype=object)

    @property
    def kept(self) -> np.ndarray:
        """Ids of the images to keep: on target and no duplicate."""
        return self.table.index[self.table["kept"]].to_numpy(dtype=object)

    def selection(self) -> Selection:
        """The kept images as a :class:`~dataexplore.Selection` over the generated ones (with their embeddings)."""
        return as_selection(self.embeddings.ids, np.flatnonzero(self.table["kept"].to_numpy()), shape="group",
                            provenance={"analysis": self.title, "request": self.request.name,
                                        "version": self.request.version}, embeddings=self.embeddings)

    def map_values(self) -> pd.Series:
        """``"kept"``, ``"off-target"`` or ``"duplicate"`` per generated image."""
        t = self.table
        out = np.where(~t["on_target"], "off-target", np.where(t["duplicate_of"].notna(), "duplicate", "kept"))
        return pd.Series(out, index=t.index, name="generated")

    def plot(self):
        """Kept, off-target and duplicate images per prompt, with coverage before/after (plotly Figure)."""
        from ..core.htmlsafe import plot_text as _t
        from .plots import _go

        go = _go()
        t = self.prompts.drop(index="all")
        labels = [_t(f"{i}: {p}") for i, p in zip(t.index, t["prompt"])]
        fig = go.Figure()
        for col, colour in (("kept", "#2ca02c"), ("off_target", "#d62728"), ("duplicates", "#ff7f0e")):
            fig.add_trace(go.Bar(x=t[col], y=labels, orientation="h", name=col.replace("_", "-"),
                                 marker_color=colour))
        a = self.prompts.loc["all"]
        fig.update_layout(barmode="stack", yaxis_autorange="reversed", xaxis_title="images",
                          title=_t(f"{self.request.name}: gap covered {a['covered_before']:.0%} -> "
                                   f"{a['covered_after']:.0%}; {self.verdict}"),
                          height=160 + 28 * max(len(t), 1), margin={"l": 10, "r": 10, "t": 50, "b": 40})
        return fig


def check_generated(request: Any, images: Any, *, prompts: Sequence[Any] | None = None, projection: Any = None,
                    duplicates: bool = True, k: int = K_SIDE, floor: float = FLOOR, model: str | None = None,
                    pretrained: str | None = None, cache_dir: Any = None, progress: bool = False,
                    random_state: int = 0) -> GenerationCheck:
    """Judge generated images against the gap of ``request`` (see the module docs).

    Parameters
    ----------
    request : GenerationRequest or path
        The request (or its saved folder).
    images
        ``N×H×W[×C]`` uint8 pixels, a dict ``{prompt index or text: pixels}``, a folder of the PNGs
        the request's diffusers script wrote (``p<prompt>-<k>.png``), or a list of such files.
    prompts : sequence, optional
        For pixels: the prompt (index or text) of each image. Default: all for the one prompt of a
        one-prompt request, else in the order of the request's prompts and counts when the number of
        images equals ``request.n``.
    projection : Projection, optional
        A fitted map of the same model: the images are placed on it (``x``, ``y`` in the table).
    duplicates : bool
        Look for near duplicates (among the images and of the exemplars).
    k : int
        Most similar gap members / reference samples averaged per side.
    floor : float
        Quantile of the gap members' nearest-member similarity under which an image is unlike the gap.
    model, pretrained : str, optional
        The embedding model to use; it must be the request's (its weights are compared). Default: the
        one the request names, when that is a built-in model or an open_clip architecture with a
        weights tag. A request naming a local folder or weights file is not loaded from it: a request
        is data from elsewhere and does not choose files to load; pass ``model=`` (and ``pretrained=``)
        yourself.

    Returns
    -------
    GenerationCheck

    Examples
    --------
    >>> req = dx.coverage(train, production).to_generation(0, n=200)  # doctest: +SKIP
    >>> check = dx.check_generated(req, generated_pixels, projection=proj)  # doctest: +SKIP
    >>> check.verdict, check.prompts  # doctest: +SKIP
    >>> train_more = check.selection()  # the kept images  # doctest: +SKIP
    """
    from ..embedding import embed
    from ..query.generation import GenerationRequest, load_generation

    if isinstance(request, (str, os.PathLike)):
        request = load_generation(request)
    if not isinstance(request, GenerationRequest):
        raise DataexploreError(f"check_generated needs a GenerationRequest or its folder, got {type(request).__name__}")
    name, pretrained = model_to_load(request.model, model, pretrained, what="the request")
    samples = _samples(request, images, prompts)
    model_identity = request.model
    emb = embed(samples, name, pretrained, cache_dir=cache_dir, progress=progress)
    if len(emb) < len(samples):
        raise DataexploreError(f"{len(samples) - len(emb)} generated images could not be read: "
                               f"{emb.failures['reason'].iloc[0]}")
    if model_identity.get("weights") and emb.model.get("weights") != model_identity["weights"]:
        raise DataexploreError("the request's model is not the one these images were embedded with: its weights differ")
    table = _targets(request, emb, samples.table["prompt"].to_numpy(), k, floor)
    table["duplicate_of"] = _duplicate_of(request, emb, cache_dir, random_state) if duplicates else None
    table["kept"] = table["on_target"] & table["duplicate_of"].isna()
    if projection is not None:
        xy = projection.transform(emb)
        table["x"], table["y"] = xy[:, 0], xy[:, 1]
    per = _coverage_table(request, emb.vectors, table, random_state)
    return GenerationCheck(request, emb, table, per, _verdict(per.loc["all"], request))


def _check_made_for(folder: Path, request) -> None:
    """A folder the request's script filled says what its images were made for; it must be this request."""
    from ..query.generation_script import MANIFEST

    manifest = folder / MANIFEST
    if not manifest.is_file():
        return
    try:
        made_for = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataexploreError(f"{manifest}: unreadable ({exc})") from None
    want = {"request": request.name, "version": request.version, "prompts": [p["prompt"] for p in request.prompts]}
    if not isinstance(made_for, dict) or made_for != want:
        got = made_for.get("version") if isinstance(made_for, dict) else None
        raise DataexploreError(f"{folder}: its images were made for other prompts (version {got!r} of "
                               f"{made_for.get('request') if isinstance(made_for, dict) else '?'!r}), not version "
                               f"{request.version} of {request.name!r}")


def _samples(request, images: Any, prompts: Sequence[Any] | None):
    """The generated images as Samples with a ``prompt`` column (index into the request's prompts)."""
    from ..core.samples import Samples

    texts = [p["prompt"] for p in request.prompts]

    def index(p: Any) -> int:
        if isinstance(p, (int, np.integer)) and not isinstance(p, bool) and 0 <= p < len(texts):
            return int(p)
        if isinstance(p, str) and p in texts:
            return texts.index(p)
        raise DataexploreError(f"{p!r} is not one of the request's {len(texts)} prompts (an index or its text)")

    if isinstance(images, dict):
        parts = [(index(p), np.asarray(v)) for p, v in images.items()]
        images = np.concatenate([v for _, v in parts]) if parts else np.zeros((0, 1, 1), np.uint8)
        prompts = [i for i, v in parts for _ in range(len(v))]
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim not in (3, 4) or not len(images):
            raise DataexploreError(f"generated pixels must be a non-empty N×H×W[×C] uint8 array, got {images.dtype} "
                                   f"{images.shape}")
        if prompts is None:
            counts = [int(p["n"]) for p in request.prompts] if len(request.prompts) > 1 else [len(images)]
            if len(images) != sum(counts):
                raise DataexploreError(f"{len(images)} images for a request of {sum(counts)}: say which prompt each "
                                       "image is for (prompts=[...])")
            prompts = np.repeat(np.arange(len(counts)), counts).tolist()
        if len(prompts) != len(images):
            raise DataexploreError(f"{len(prompts)} prompts for {len(images)} images")
        ids = [f"gen-{i:05d}" for i in range(len(images))]
        return Samples(pd.DataFrame({"id": ids, "prompt": [index(p) for p in prompts]}), images=images,
                       name=f"generated for {request.name}")
    if isinstance(images, (str, os.PathLike)) and Path(images).expanduser().is_dir():
        _check_made_for(Path(images).expanduser(), request)
    files = _files(images)
    rows = []
    for f in files:
        m = _NAME.search(f.stem)
        if m is None:
            raise DataexploreError(f"{f.name}: not named like the request's script names images (p<prompt>-<k>.png)")
        rows.append({"id": f.stem, "filepath": str(f), "prompt": index(int(m.group(1)))})
    return Samples(pd.DataFrame(rows), name=f"generated for {request.name}")


def _files(images: Any) -> list[Path]:
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images).expanduser()
        if not folder.is_dir():
            raise DataexploreError(f"{folder} is not a folder of generated images")
        files = sorted(p for p in folder.iterdir()
                       if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp") and not p.name.startswith("."))
    elif isinstance(images, (list, tuple)) and all(isinstance(p, (str, os.PathLike)) for p in images):
        files = [Path(p).expanduser() for p in images]
    else:
        raise DataexploreError("generated images must be uint8 pixels, a dict of them per prompt, a folder or a "
                               f"list of image files, got {type(images).__name__}")
    if not files:
        raise DataexploreError("no generated images to check")
    return files


def _top_mean(vectors: np.ndarray, pool: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each vector's ``k`` highest cosines to ``pool``, and the position of the highest."""
    sims = vectors @ pool.T
    k = min(k, pool.shape[0])
    top = -np.partition(-sims, k - 1, axis=1)[:, :k]
    return top.mean(axis=1), sims.argmax(axis=1)


def _targets(request, emb, prompt: np.ndarray, k: int, floor: float) -> pd.DataFrame:
    g, r = request.gap_vectors, request.reference_vectors
    if emb.vectors.shape[1] != g.shape[1]:
        raise DataexploreError("the generated images' vectors and the request's differ in width: not the same model")
    gap_sim, gap_at = _top_mean(emb.vectors, g, k)
    ref_sim, ref_at = _top_mean(emb.vectors, r, k)
    own = g @ g.T
    np.fill_diagonal(own, -np.inf)
    cut = float(np.quantile(own.max(axis=1), floor)) if len(g) > 1 else -1.0
    nearest = (emb.vectors @ g.T).max(axis=1)
    closer, unlike = gap_sim <= ref_sim, nearest < cut
    labels = np.asarray(request.reference_labels or [""] * len(r), dtype=object)
    return pd.DataFrame({
        "prompt": prompt, "prompt_text": [request.prompts[i]["prompt"] for i in prompt],
        "on_target": ~(closer | unlike),
        "reason": np.where(unlike, "unlike the gap", np.where(closer, "closer to covered", "")),
        "nearest_gap": np.asarray(request.gap_ids, dtype=object)[gap_at], "gap_similarity": gap_sim.round(4),
        "nearest_reference": np.asarray(request.reference_ids, dtype=object)[ref_at],
        "reference_similarity": ref_sim.round(4), "reference_label": labels[ref_at],
    }, index=pd.Index(emb.ids, name="id"))


def _duplicate_of(request, emb, cache_dir: Any, random_state: int) -> list:
    """Per generated image: the real gap image (exemplar) or kept generated image it duplicates, else None.

    The generated images are pooled with the request's real images of the gap (exemplars and gap
    pixels) when they have the same shape: the detector then calibrates on mostly real images, so
    a batch full of copies does not raise its own thresholds, and copies of real images are found.
    """
    from ..core.embeddings import Embeddings
    from ..core.samples import Samples
    from .duplicates import duplicates

    n = len(emb)
    real_ids, real_vectors, real_images = _real_images(request)
    mine = emb.samples.images
    pooled = emb
    if real_images is not None and mine is not None and real_images.shape[1:] == mine.shape[1:]:
        ids = [f"real:{i}" for i in real_ids]
        both = Samples.concat([emb.samples.subset(emb._rows()),
                               Samples(pd.DataFrame({"id": ids, "prompt": -1}), images=real_images)])
        pooled = Embeddings(ids=np.r_[emb.ids, ids], vectors=np.r_[emb.vectors, real_vectors], samples=both,
                            model=emb.model)
    if len(pooled) < 2:
        return [None] * n
    dup = duplicates(pooled, cache_dir=cache_dir, progress=False, random_state=random_state)
    out: list = [None] * n
    where = {i: j for j, i in enumerate(pooled.ids)}
    for members, keep in zip(dup.members, dup.table["keep"]):
        names = [str(x) for x in pooled.ids[members]]
        real = next((x for x in names if x.startswith("real:")), None)
        for x in names:
            j = where[x]
            if j < n and (real is not None or x != keep):
                out[j] = real[len("real:"):] if real is not None else keep
    if pooled is emb and request.exemplar_vectors is not None and len(request.exemplar_vectors):
        sims = emb.vectors @ request.exemplar_vectors.T  # no pixels to pool: the exemplars' vectors
        for row in np.flatnonzero(sims.max(axis=1) >= dup.threshold):
            out[row] = out[row] or request.exemplars[int(sims[row].argmax())]
    return out


def _real_images(request) -> tuple[list, np.ndarray | None, np.ndarray | None]:
    """Ids, vectors and pixels of the request's real gap images: exemplars, then gap members not among them."""
    ids, vectors, images = [], [], []
    if request.exemplar_images is not None:
        ids += list(request.exemplars)
        vectors.append(request.exemplar_vectors)
        images.append(request.exemplar_images)
    if request.gap_images is not None:
        m = len(request.gap_images)
        fresh = [j for j in range(m) if request.gap_ids[j] not in set(ids)]
        ids += [request.gap_ids[j] for j in fresh]
        vectors.append(request.gap_vectors[fresh])
        images.append(request.gap_images[fresh])
    if not ids or len({a.shape[1:] for a in images}) > 1:
        return [], None, None
    return ids, np.concatenate(vectors), np.concatenate(images)


def _coverage_table(request, vectors: np.ndarray, table: pd.DataFrame, random_state: int) -> pd.DataFrame:
    from .gaps import under_coverage

    m = request.measure
    ref, gap = request.reference_vectors[:m["near"]], request.gap_vectors

    kk = min(int(m["k"]), len(ref) + len(gap) - 2)  # one k for before and after: the same yardstick

    def measure(extra: np.ndarray) -> tuple[float, float]:
        if len(gap) < 2 or kk < 1:
            return float("nan"), float("nan")
        count = under_coverage(np.r_[ref, extra], gap, k=kk, global_view=False, random_state=random_state,
                               expected=m["expected"])["count"]
        return float(np.mean(count < UNDER_COVERED)), float(np.mean(count))

    before = measure(np.zeros((0, ref.shape[1]), np.float32))
    rows = {}
    kept = table["kept"].to_numpy()
    groups = [(i, table["prompt"].to_numpy() == i) for i in range(len(request.prompts))] + \
        [("all", np.ones(len(table), bool))]
    for key, mask in groups:
        after = measure(vectors[mask & kept])
        rows[key] = {"prompt": "all prompts" if key == "all" else request.prompts[key]["prompt"],
                     "asked": request.n if key == "all" else int(request.prompts[key]["n"]),
                     "images": int(mask.sum()), "off_target": int((mask & ~table["on_target"].to_numpy()).sum()),
                     "duplicates": int((mask & table["duplicate_of"].notna().to_numpy()).sum()),
                     "kept": int((mask & kept).sum()), "covered_before": round(before[0], 4),
                     "covered_after": round(after[0], 4), "score_before": round(before[1], 4),
                     "score_after": round(after[1], 4)}
    return pd.DataFrame.from_dict(rows, orient="index")


def _verdict(row: pd.Series, request) -> str:
    n, off, dup, kept = int(row["images"]), int(row["off_target"]), int(row["duplicates"]), int(row["kept"])
    gain = row["covered_after"] - row["covered_before"]
    cover = f"the gap goes from {row['covered_before']:.0%} to {row['covered_after']:.0%} covered"
    if kept < 0.1 * n:
        return f"reject: {kept or 'none'} of the {n} images usable ({off} off-target, {dup} duplicates); {cover}"
    problems = []
    if off > 0.25 * n:
        from ..language.vocabulary import phrase

        near = ", ".join(phrase(c) for c in request.negatives[:2]) or "covered data"
        problems.append(f"{off} of {n} off-target (they look like {near}, not the gap): revise the prompts")
    if dup > 0.25 * n:
        problems.append(f"{dup} of {n} duplicates: vary seeds and prompts")
    if gain <= 0.02:
        problems.append("they add little coverage")
    head = "use with care" if problems else "usable"
    return f"{head}: keep {kept} of {n}; {cover}" + ("; " + "; ".join(problems) if problems else "")
