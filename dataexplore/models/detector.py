"""A real, simple object detector: bright connected regions, each crop named zero-shot by CLIP.

:class:`ComponentDetector` finds objects the way a first detector for objects on a plain
background is often written, and fails the way such a detector fails:

1. **background**: per image, the median ``m`` and the robust spread ``s = 1.4826 · MAD`` of
   the grayscale pixels (at least 1 grey level); pixels above ``m + threshold · s`` are
   foreground;
2. **regions**: the foreground is closed with a 3×3 square (so one item's texture does not break
   it into pieces), split into 8-connected components (``scipy.ndimage.label``), and every
   component of at least ``min_area`` pixels becomes a box (the component's bounding box);
3. **class**: a square around each box (its longer side, plus ``margin``) is cut out, the
   background level subtracted and the brightest pixel stretched to white, resized to the CLIP
   model's input and classified zero-shot against the class prompts (the template average the
   built-in model was trained with); ``score`` is the softmax probability of the chosen class.
   The square already gives the box context along its shorter side; ``fashion-tiny`` learned
   items that fill their 28×28 frame, and on the scenes of :mod:`dataexplore.sources.scenes` its
   accuracy on ground-truth crops falls from 0.85 without margin to 0.60 with 10% (0.39 with 20%).

What follows from that, by construction: items whose pixels touch become one component, so one
box covers both (a wrong box, and a missed item); faint items barely above the background fall
under the threshold or break into pieces too small to keep (missed); and classes that look alike
at low resolution (shirt, T-shirt, pullover, coat) are confused by the classifier.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError
from ..core.objects import PREDICTION, PROBLEM_COLUMNS, Objects, box_iou
from ..core.samples import Samples

#: Robust-sigma factors tried by :meth:`ComponentDetector.fit` when given ground truth.
THRESHOLD_GRID = (2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0)
_MAD_TO_SIGMA = 1.4826


class ComponentDetector:
    """Threshold against the background, connected components, zero-shot CLIP label per box.

    Parameters
    ----------
    model : str
        CLIP model for the crops (see :func:`dataexplore.models.load_model`).
    pretrained : str, optional
        Its weights, for an open_clip architecture name.
    classes : sequence of str, optional
        Class names to choose from; default the ten Fashion-MNIST classes. Each is said in the
        model's prompt templates by its phrase (``"T-shirt/top"`` -> ``"t-shirt"``) or, for other
        names, as written.
    threshold : float
        Foreground = pixels above the image's median by more than this many robust sigmas.
        :meth:`fit` with ground truth replaces it by the best of ``thresholds``.
    thresholds : sequence of float, optional
        What :meth:`fit` tries (default :data:`THRESHOLD_GRID`).
    min_area : int
        Smallest component, in pixels, that becomes a box.
    margin : float
        Context added on each side of the square crop before classifying it, as a share of the
        box's longer side (0: the square just holds the box; see the module notes).
    iou : float
        IoU at which :meth:`fit` counts a box as found.
    batch_size : int
        Crops per forward pass.
    device : str
        ``"auto"`` (cuda, then mps, then cpu) or a torch device.

    Attributes
    ----------
    threshold_ : float
        The threshold in use after :meth:`fit`.
    fit_scores_ : pandas.DataFrame
        ``threshold``, ``precision``, ``recall``, ``f1`` per tried threshold (empty when fitted
        without ground truth).
    classes_ : list of str
    prompts_ : list of str
        The phrase each class is said by.
    text_vectors_ : numpy.ndarray
        ``len(classes_)×D`` normalised class vectors.
    clip_ : ClipModel

    Examples
    --------
    >>> from dataexplore.sources.scenes import fashion_scenes
    >>> from dataexplore.models.detector import ComponentDetector
    >>> scenes = fashion_scenes("test", n=20)  # doctest: +SKIP
    >>> det = ComponentDetector().fit(scenes)  # doctest: +SKIP
    >>> pred = det.predict(scenes)  # doctest: +SKIP
    >>> pred.table[["image_id", "label", "score"]].head(2)  # doctest: +SKIP
    """

    def __init__(self, model: str = "fashion-tiny", pretrained: str | None = None,
                 classes: Sequence[str] | None = None, threshold: float = 5.0,
                 thresholds: Sequence[float] | None = None, min_area: int = 40, margin: float = 0.0,
                 iou: float = 0.5, batch_size: int = 256, device: str = "auto"):
        self.model = model
        self.pretrained = pretrained
        self.classes = classes
        self.threshold = threshold
        self.thresholds = thresholds
        self.min_area = min_area
        self.margin = margin
        self.iou = iou
        self.batch_size = batch_size
        self.device = device

    def get_params(self) -> dict:
        """The ``__init__`` settings (and nothing else)."""
        return {k: getattr(self, k) for k in ("model", "pretrained", "classes", "threshold", "thresholds",
                                                "min_area", "margin", "iou", "batch_size", "device")}

    def fit(self, objects: Objects | None = None, *, progress: bool = False) -> "ComponentDetector":
        """Load the model and the class prompts; with ground truth, pick the threshold.

        Parameters
        ----------
        objects : Objects, optional
            Ground-truth boxes and their images. The threshold of ``thresholds`` whose boxes
            match the ground truth best (F1 at ``iou``, classes ignored: the threshold only
            decides where the boxes are) becomes ``threshold_``. Without it, ``threshold``.
        progress : bool

        Returns
        -------
        self
        """
        from . import load_model
        from .device import pick_device

        if self.min_area < 1 or not 0 <= self.margin <= 2 or not 0 < self.iou <= 1:
            raise DataexploreError("min_area must be >= 1, margin between 0 and 2, iou in (0, 1]")
        self.classes_ = list(self.classes) if self.classes is not None else _default_classes()
        if not self.classes_:
            raise DataexploreError("a detector needs at least one class")
        self.prompts_ = [_phrase(c) for c in self.classes_]
        self.clip_ = load_model(self.model, self.pretrained, device=pick_device(self.device))
        self.text_vectors_ = _class_vectors(self.clip_, self.prompts_)
        self.threshold_ = float(self.threshold)
        self.fit_scores_ = pd.DataFrame(columns=["threshold", "precision", "recall", "f1"])
        if objects is not None:
            self.threshold_, self.fit_scores_ = self._fit_threshold(objects.ground_truth(), progress)
        return self

    def predict(self, images: Samples | Objects, *, progress: bool = False) -> Objects:
        """Boxes, labels and scores for every image.

        Parameters
        ----------
        images : Samples or Objects
            The images (an Objects' own images when given Objects, so ground truth and
            predictions combine with :meth:`Objects.concat`).
        progress : bool
            A progress bar over the images.

        Returns
        -------
        Objects
            ``kind="prediction"`` boxes with ``score`` (softmax probability of ``label``) and
            ``area`` (pixels of the component). Images that cannot be read are listed in
            ``problems`` (reason ``"image not read: ..."``) and have no boxes.
        """
        if not hasattr(self, "threshold_"):
            raise DataexploreError("call fit() before predict(): fit() loads the model (ground truth is optional)")
        samples = images.images if isinstance(images, Objects) else images
        if not isinstance(samples, Samples):
            raise DataexploreError(f"predict needs Samples or Objects, got {type(samples).__name__}")
        rows: list[dict] = []
        crops: list[np.ndarray] = []
        problems: list[dict] = []
        sizes = np.full((len(samples), 2), np.nan)  # width, height of each image read
        for row in _bar(range(len(samples)), progress, "detecting"):
            image_id = str(samples.ids[row])
            try:
                gray = _grayscale(samples.read(row))
            except Exception as exc:  # one unreadable image never stops a run
                problems.append({"image_id": image_id, "kind": PREDICTION, "label": "", "reason":
                                 f"image not read: {exc}", "action": "skipped", "where": image_id})
                continue
            sizes[row] = gray.shape[1], gray.shape[0]
            level, boxes, areas = self._components(gray, self.threshold_)
            for n, (box, area) in enumerate(zip(boxes, areas)):
                rows.append({"id": f"{image_id}/{PREDICTION}/{n}", "image_id": image_id, "x": box[0],
                             "y": box[1], "w": box[2], "h": box[3], "area": int(area)})
                crops.append(_crop(gray, box, level, self.margin))
        labels, scores = self._classify(crops, progress)
        table = pd.DataFrame(rows, columns=["id", "image_id", "x", "y", "w", "h", "area"])
        table["label"] = [self.classes_[i] for i in labels]
        table["score"] = scores
        table["kind"] = PREDICTION
        found = pd.DataFrame(problems, columns=list(PROBLEM_COLUMNS))
        if samples.images is None and not {"width", "height"} <= set(samples.table.columns):
            table_ = samples.table.assign(width=sizes[:, 0], height=sizes[:, 1])  # files: sizes as read
            samples = Samples(table_, name=samples.name, provenance=samples.provenance)
        return Objects(table, samples, problems=found, name=f"{samples.name} detections".strip())

    # -- the three steps -------------------------------------------------------------------------

    def _components(self, gray: np.ndarray, threshold: float) -> tuple[float, np.ndarray, np.ndarray]:
        """Background level, ``K×4`` boxes (x, y, w, h) and pixel counts of the kept components."""
        from scipy import ndimage

        level, fore = foreground(gray, threshold)
        fore = ndimage.binary_closing(fore, np.ones((3, 3), bool), border_value=0)
        labelled, count = ndimage.label(fore, np.ones((3, 3), int))
        if not count:
            return level, np.zeros((0, 4)), np.zeros(0, np.int64)
        areas = np.bincount(labelled.ravel(), minlength=count + 1)[1:]
        boxes = []
        for k, sl in enumerate(ndimage.find_objects(labelled)):
            if sl is not None and areas[k] >= self.min_area:
                ys, xs = sl
                boxes.append((xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start, areas[k]))
        arr = np.asarray(boxes, np.float64).reshape(-1, 5)
        return level, arr[:, :4], arr[:, 4].astype(np.int64)

    def _classify(self, crops: list[np.ndarray], progress: bool) -> tuple[np.ndarray, np.ndarray]:
        import torch
        from PIL import Image

        clip = self.clip_
        labels, scores = [], []
        text = torch.as_tensor(self.text_vectors_, device=clip.device)
        scale = float(clip.model.logit_scale.detach().exp()) if hasattr(clip.model, "logit_scale") else 100.0
        steps = range(0, len(crops), self.batch_size)
        with torch.inference_mode():
            for start in _bar(steps, progress and len(crops) > self.batch_size, "classifying"):
                batch = torch.stack([clip.preprocess(Image.fromarray(c, "L").convert("RGB"))
                                     for c in crops[start:start + self.batch_size]]).to(clip.device)
                feats = torch.nn.functional.normalize(clip.model.encode_image(batch).float(), dim=-1)
                prob = torch.softmax(scale * feats @ text.T, dim=-1)
                top = prob.max(dim=-1)
                labels.append(top.indices.cpu().numpy())
                scores.append(top.values.cpu().numpy().astype(np.float64))
        if not labels:
            return np.zeros(0, np.int64), np.zeros(0)
        return np.concatenate(labels), np.clip(np.concatenate(scores), 0.0, 1.0)

    def _fit_threshold(self, truth: Objects, progress: bool) -> tuple[float, pd.DataFrame]:
        samples = truth.images
        grid = [float(t) for t in (self.thresholds if self.thresholds is not None else THRESHOLD_GRID)]
        if not grid:
            raise DataexploreError("thresholds is empty: give at least one value to try")
        by_image = {k: g[["x", "y", "w", "h"]].to_numpy(np.float64)
                    for k, g in truth.table.groupby("image_id", sort=False)}
        counts = np.zeros((len(grid), 3))  # matched, predicted, true
        for row in _bar(range(len(samples)), progress, "fitting threshold"):
            try:
                gray = _grayscale(samples.read(row))
            except Exception:  # an unreadable image says nothing about the threshold
                continue
            gt = by_image.get(str(samples.ids[row]), np.zeros((0, 4)))
            for i, t in enumerate(grid):
                _, boxes, _ = self._components(gray, t)
                counts[i] += (match_count(gt, boxes, self.iou), len(boxes), len(gt))
        precision = counts[:, 0] / np.maximum(counts[:, 1], 1)
        recall = counts[:, 0] / np.maximum(counts[:, 2], 1)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        scores = pd.DataFrame({"threshold": grid, "precision": precision, "recall": recall, "f1": f1})
        return grid[int(np.argmax(f1))], scores


def foreground(gray: np.ndarray, threshold: float) -> tuple[float, np.ndarray]:
    """The background level (median) and the pixels above it by ``threshold`` robust sigmas.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.full((8, 8), 20, np.uint8); img[2:4, 2:4] = 90
    >>> level, mask = foreground(img, 5.0)
    >>> level, int(mask.sum())
    (20.0, 4)
    """
    values = gray.astype(np.float64)
    level = float(np.median(values))
    sigma = max(_MAD_TO_SIGMA * float(np.median(np.abs(values - level))), 1.0)
    return level, values > level + threshold * sigma


def match_count(truth: np.ndarray, pred: np.ndarray, iou: float = 0.5) -> int:
    """How many boxes of ``pred`` match one box of ``truth`` each at ``iou`` or more (greedy, best IoU first).

    Boxes are ``K×4`` ``[x, y, w, h]``; classes are not looked at.

    Examples
    --------
    >>> import numpy as np
    >>> match_count(np.array([[0, 0, 10, 10], [20, 20, 5, 5]]), np.array([[1, 0, 10, 10]]))
    1
    """
    if not len(truth) or not len(pred):
        return 0
    m = box_iou(truth, pred)
    found = 0
    while True:
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        if m[i, j] < iou:
            return found
        found += 1
        m[i, :] = -1
        m[:, j] = -1


def _default_classes() -> list[str]:
    from ..sources.datasets import FASHION_MNIST_CLASSES

    return list(FASHION_MNIST_CLASSES)


def _phrase(name: str) -> str:
    from ..sources.datasets import FASHION_MNIST_CLASSES, FASHION_MNIST_PHRASES

    known = dict(zip(FASHION_MNIST_CLASSES, FASHION_MNIST_PHRASES))
    return known.get(name, name.strip())


def _class_vectors(clip, phrases: list[str]) -> np.ndarray:
    """One normalised vector per class: its prompts in every template the built-in model learned, averaged."""
    from . import embed_prompts
    from .train_fashion_tiny import TEMPLATES

    vecs = embed_prompts(clip, [t.format(p) for p in phrases for t in TEMPLATES])
    vecs = vecs.reshape(len(phrases), len(TEMPLATES), -1).mean(1)
    return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


def _grayscale(data: Any) -> np.ndarray:
    """A readable image as a 2-D uint8 array (decoded and converted to luminance when needed)."""
    if isinstance(data, np.ndarray) and data.ndim == 2 and data.dtype == np.uint8:
        return data
    from ..core.images import decode

    return np.asarray(decode(data).convert("L"))


def _crop(gray: np.ndarray, box: np.ndarray, level: float, margin: float) -> np.ndarray:
    """A square around ``box`` (its longer side plus ``margin`` on each side), background removed,
    brightest pixel stretched to 255; outside the image counts as background."""
    x, y, w, h = (float(v) for v in box)
    side = int(np.ceil(max(w, h) * (1 + 2 * margin)))
    left, top = int(round(x + w / 2 - side / 2)), int(round(y + h / 2 - side / 2))
    out = np.full((side, side), level)
    H, W = gray.shape
    sy0, sx0 = max(top, 0), max(left, 0)
    sy1, sx1 = min(top + side, H), min(left + side, W)
    out[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = gray[sy0:sy1, sx0:sx1]
    out = np.clip(out - level, 0, None)
    peak = out.max()
    if peak > 0:
        out *= 255.0 / peak
    return np.rint(out).astype(np.uint8)


def _bar(iterable, enabled: bool, desc: str):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc)
