"""The readers behind :func:`dataexplore.sources.detections.load_objects`, one per detection format.

Each reader turns its files (or a FiftyOne collection) into a :class:`Read`: image rows, box rows in
pixels (``x``, ``y`` top-left, ``w``, ``h``) and the problem rows it found itself. A reader never
opens a path outside the images folder, never evaluates what it reads, and turns one bad entry into
one problem row; only a file of the wrong shape as a whole is a :class:`SourceError`. Boxes that are
well formed but wrong (not a number, zero size, outside their image, unknown image) are left to
:func:`dataexplore.core.objects.check_boxes`.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import parse_qs, unquote, urlparse

from ..core.errors import SourceError, require
from ..core.images import header_size
from ..core.objects import GROUND_TRUTH, PREDICTION
from .load import _scan_folder

NAN = float("nan")


@dataclass
class Read:
    """What a reader found. An image row with a ``_reason`` is set aside (with all its boxes)."""

    images: list[dict]
    boxes: list[dict]
    problems: list[dict]
    name: str
    provenance: dict = field(default_factory=dict)
    int_columns: tuple[str, ...] = ()


def problem(reason: str, where: str | None, *, image_id: Any = None, kind: str | None = None,
            label: Any = None, box: Sequence[float] = (NAN, NAN, NAN, NAN), action: str = "dropped") -> dict:
    """One row of :attr:`Objects.problems`."""
    x, y, w, h = box
    return {"image_id": None if image_id is None else str(image_id), "kind": kind,
            "label": None if label is None else str(label), "x": x, "y": y, "w": w, "h": h,
            "reason": reason, "action": action, "where": where}


def number(value: Any) -> float:
    """A JSON value as a float; NaN for anything that is not a number (``True`` included)."""
    if type(value) is float:  # the common case first: a million boxes pass here
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an integer of hundreds of digits
            return NAN
    return NAN


def is_int(value: Any) -> bool:
    """Whether a JSON value is an integer that fits an int64 column (ids are kept exact)."""
    return isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63


def sized(width: float, height: float) -> bool:
    """Whether an image size is usable: both sides finite and positive."""
    return math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0


def read_json(path: str | os.PathLike[str]) -> Any:
    """Parse a JSON file; one :class:`SourceError` naming the file if it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise SourceError(f"file not found: {os.fspath(path)}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{os.fspath(path)} is not valid JSON ({str(exc)[:200]})") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts (int_max_str_digits)
        raise SourceError(f"{os.fspath(path)} is not a readable JSON file ({str(exc)[:200]})") from None
    except RecursionError:
        raise SourceError(f"{os.fspath(path)} is nested too deeply to be a detection file") from None
    except OSError as exc:
        raise SourceError(f"cannot read {os.fspath(path)} ({exc.strerror or exc})") from None


def inside(folder: str | os.PathLike[str], relative: str, real_folder: str | None = None) -> str | None:
    """``folder/relative`` if it stays inside ``folder`` once links and ``..`` are resolved, else None.

    ``real_folder`` is ``os.path.realpath(folder)``, when the caller checks many paths."""
    try:
        root = real_folder or os.path.realpath(folder)
        path = os.path.realpath(os.path.join(root, relative))
    except (ValueError, OSError):  # an embedded NUL byte, a path too long
        return None
    if path != root and path.startswith(root.rstrip(os.sep) + os.sep):
        return os.path.normpath(os.path.join(folder, relative))
    return None


# --- COCO ---------------------------------------------------------------------------------------

def read_coco(path: Path, data: Any, images_dir: Path, predictions: Any) -> Read:
    """A COCO instances file (ground truth) and, optionally, a COCO results file (predictions)."""
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("categories"), list) or not isinstance(data.get("annotations", []), list):
        raise SourceError(f"{path} is not a COCO annotations file: it needs 'images', 'categories' and "
                          "'annotations' lists")
    cats: dict[int, str] = {}
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or not is_int(cat.get("id")) or not isinstance(cat.get("name"), str):
            raise SourceError(f"{path}: categories[{i}] needs an integer 'id' and a string 'name'")
        cats[cat["id"]] = cat["name"]
    images: list[dict] = []
    seen: set[int] = set()
    real_folder = os.path.realpath(images_dir)
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or not is_int(im.get("id")) or not isinstance(im.get("file_name"), str):
            raise SourceError(f"{path}: images[{i}] needs an integer 'id' and a string 'file_name'")
        if im["id"] in seen:
            raise SourceError(f"{path}: image id {im['id']} appears twice in 'images'")
        seen.add(im["id"])
        row = {"id": str(im["id"]), "filepath": inside(images_dir, im["file_name"], real_folder),
               "width": number(im.get("width")), "height": number(im.get("height")), "coco_id": im["id"],
               "file_name": im["file_name"], "_where": f"{path.name}:images[{i}]"}
        if row["filepath"] is None:
            row["_reason"] = "path outside the images folder"
        elif not sized(row["width"], row["height"]):  # no size in the file: the file header has it
            size = header_size(row["filepath"])
            if isinstance(size, str):
                row["_reason"] = f"no width and height in the file, and {size}"
            else:
                row["width"], row["height"] = size
        images.append(row)
    read = Read(images, [], [], name=f"coco:{path.name}", provenance={"kind": "coco", "file": str(path)},
                int_columns=("coco_id", "coco_ann_id", "coco_category_id", "iscrowd"))
    for i, ann in enumerate(data.get("annotations", [])):
        _coco_box(read, ann, cats, f"{path.name}:annotations[{i}]", GROUND_TRUTH)
    if predictions is not None:
        ppath = Path(predictions)
        results = read_json(ppath)
        if isinstance(results, dict) and isinstance(results.get("annotations"), list):
            results = results["annotations"]
        if not isinstance(results, list):
            raise SourceError(f"{ppath} is not a COCO results file: expected a list of "
                              "{image_id, category_id, bbox, score}")
        read.provenance["predictions"] = str(ppath)
        for i, res in enumerate(results):
            _coco_box(read, res, cats, f"{ppath.name}:[{i}]", PREDICTION)
    return read


def _coco_box(read: Read, ann: Any, cats: dict[int, str], where: str, kind: str) -> None:
    if not isinstance(ann, dict):
        read.problems.append(problem("malformed annotation (not an object)", where, kind=kind))
        return
    image_id, cat, bbox = ann.get("image_id"), ann.get("category_id"), ann.get("bbox")
    if not is_int(image_id):
        read.problems.append(problem("malformed annotation (no integer image_id)", where, kind=kind))
        return
    if not isinstance(bbox, list) or len(bbox) != 4:
        read.problems.append(problem("malformed annotation (bbox is not [x, y, w, h])", where, image_id=image_id,
                                     kind=kind))
        return
    box = [number(v) for v in bbox]
    if not is_int(cat) or cat not in cats:
        read.problems.append(problem("unknown category", where, image_id=image_id, kind=kind, label=cat, box=box))
        return
    row = {"image_id": str(image_id), "x": box[0], "y": box[1], "w": box[2], "h": box[3], "label": cats[cat],
           "kind": kind, "where": where, "coco_id": image_id, "coco_category_id": cat}
    if kind == GROUND_TRUTH:
        row.update(score=NAN, coco_ann_id=ann.get("id") if is_int(ann.get("id")) else None,
                   iscrowd=1 if ann.get("iscrowd") in (1, True) else 0, area=number(ann.get("area")))
    else:  # as pycocotools' loadRes fills them for box results
        row.update(score=number(ann.get("score")), iscrowd=0, area=box[2] * box[3])
    read.boxes.append(row)


# --- YOLO ---------------------------------------------------------------------------------------

def read_yolo(root: Path, images_dir: Path | None, predictions: Any, classes: Sequence[str] | None) -> Read:
    """A YOLO folder: ``images/`` and ``labels/`` mirroring each other (or labels beside the images)."""
    if images_dir is None:
        images_dir = root / "images" if (root / "images").is_dir() else root
    labels_dir = root / "labels" if (root / "labels").is_dir() else None
    names = dict(enumerate(map(str, classes))) if classes is not None else yolo_names(root, labels_dir)
    found, _ = _scan_folder(images_dir, follow_links=False)
    if not found:
        raise SourceError(f"no image files found under {images_dir} (a YOLO folder holds images/ and labels/)")
    images: list[dict] = []
    by_key: dict[str, dict] = {}  # "train/a" (the path without its extension) -> the image row
    by_stem: dict[str, list[dict]] = {}  # "a" -> the image rows
    for rel, _, _ in found:
        row: dict[str, Any] = {"id": rel, "filepath": str(images_dir / rel), "width": NAN, "height": NAN}
        size = header_size(row["filepath"])
        if isinstance(size, str):
            row["_reason"], row["_where"] = size, rel
        else:
            row["width"], row["height"] = size
        images.append(row)
        key = rel.rsplit(".", 1)[0]
        by_key.setdefault(key, row)
        by_stem.setdefault(key.rsplit("/", 1)[-1], []).append(row)
    read = Read(images, [], [], name=f"yolo:{root.name}", provenance={"kind": "yolo", "root": str(root),
                                                                      "classes": names})
    # (folder, holds predictions only, beside the images)
    sources: list[tuple[Path, bool, bool]] = [(labels_dir or images_dir, False, labels_dir is None)]
    if predictions is not None:
        if not Path(predictions).is_dir():
            raise SourceError(f"YOLO predictions must be a folder of label files, got {os.fspath(predictions)!r}")
        sources.append((Path(predictions), True, False))
        read.provenance["predictions"] = os.fspath(predictions)
    for folder, only_predictions, beside_images in sources:
        for rel in _label_files(folder):
            key = rel[:-4]
            image = by_key.get(key)
            stem = key.rsplit("/", 1)[-1]
            if image is None and only_predictions and len(by_stem.get(stem, [])) == 1:
                image = by_stem[stem][0]  # Ultralytics' predict writes <stem>.txt whatever the image's folder
            if image is None and beside_images:
                continue  # a text file beside the images that belongs to no image is not a label file
            _yolo_file(read, folder / rel, _shown(folder / rel, root), image, key, names, only_predictions)
    return read


def yolo_names(root: Path, labels_dir: Path | None) -> dict[int, str] | None:
    """Class names from ``data.yaml`` / ``dataset.yaml`` (``names``: a list or ``{index: name}``) or
    ``classes.txt`` (one per line), in the folder or its ``labels/``; None if there are none."""
    for candidate in ("data.yaml", "dataset.yaml", "data.yml"):
        path = root / candidate
        if path.is_file():
            yaml = require("yaml", "reading a YOLO data.yaml", "pyyaml")
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, yaml.YAMLError) as exc:
                raise SourceError(f"{path} is not readable YAML ({str(exc).splitlines()[0]})") from None
            names = data.get("names") if isinstance(data, dict) else None
            if isinstance(names, list) and all(isinstance(n, (str, int)) for n in names):
                return {i: str(n) for i, n in enumerate(names)}
            if isinstance(names, dict) and all(is_int(k) for k in names):
                return {k: str(v) for k, v in names.items()}
            raise SourceError(f"{path} has no 'names' list or {{index: name}} mapping of classes")
    for folder in (root, labels_dir):
        if folder is not None and (folder / "classes.txt").is_file():
            try:
                lines = (folder / "classes.txt").read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError:
                raise SourceError(f"{folder / 'classes.txt'} is not UTF-8 text") from None
            while lines and not lines[-1].strip():  # a trailing newline is not a class
                lines.pop()
            return {k: line.strip() or str(k) for k, line in enumerate(lines)}  # a blank line keeps its number
    return None


def _shown(path: Path, root: Path) -> str:
    """A label file's path as problems show it: relative to the YOLO folder when it is inside."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _label_files(folder: Path) -> list[str]:
    """Relative paths of the ``.txt`` files under ``folder`` (links that leave it are not followed)."""
    out, real_folder = [], os.path.realpath(folder)
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # links to folders: not walked
        rel_dir = os.path.relpath(dirpath, folder)
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir.replace(os.sep, '/')}/{name}"
            if name.endswith(".txt") and name != "classes.txt" and inside(folder, rel, real_folder):
                out.append(rel)
    return out


def _yolo_file(read: Read, path: Path, shown: str, image: dict | None, key: str, names: dict[int, str] | None,
               predictions: bool) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror or str(exc)
        read.problems.append(problem(f"unreadable label file ({reason})", shown,
                                     image_id=image["id"] if image is not None else key))
        return
    width, height = (image["width"], image["height"]) if image is not None else (NAN, NAN)
    image_id = image["id"] if image is not None else key
    for n, line in enumerate(text.splitlines(), 1):
        parts, where = line.split(), f"{shown}:{n}"
        if not parts:
            continue
        try:
            values = [float(p) for p in parts]
        except ValueError:
            read.problems.append(problem("malformed line (not numbers)", where, image_id=image_id))
            continue
        kind = PREDICTION if predictions or len(values) == 6 else GROUND_TRUTH
        if not values[0].is_integer() or values[0] < 0:
            read.problems.append(problem("malformed line (the class is not a whole number)", where,
                                         image_id=image_id, kind=kind))
            continue
        cls, action = int(values[0]), None
        if len(values) in (5, 6):
            cx, cy, w, h = values[1:5]
        elif len(values) >= 7 and len(values) % 2:  # a segmentation polygon: class x1 y1 x2 y2 ...
            xs, ys = values[1::2], values[2::2]
            cx, cy, w, h = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)
            action = "converted"
        else:
            read.problems.append(problem(f"malformed line ({len(values)} values; expected class cx cy w h [score])",
                                         where, image_id=image_id, kind=kind))
            continue
        box = [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]
        label = str(cls) if names is None else names.get(cls)
        if label is None:
            read.problems.append(problem("unknown category", where, image_id=image_id, kind=kind, label=cls, box=box))
        elif image is None:
            read.problems.append(problem("unknown image", where, image_id=image_id, kind=kind, label=label))
        elif kind == PREDICTION and len(values) == 5:  # Ultralytics leaves scores out unless save_conf=True
            read.problems.append(problem("prediction without a score (save them: Ultralytics' save_conf=True)",
                                         where, image_id=image_id, kind=kind, label=label, box=box))
        else:
            if action:
                read.problems.append(problem("polygon, its bounding box kept", where, image_id=image_id, kind=kind,
                                             label=label, box=box, action=action))
            read.boxes.append({"image_id": image_id, "x": box[0], "y": box[1], "w": box[2], "h": box[3],
                               "label": label, "kind": kind, "where": where,
                               "score": values[5] if len(values) == 6 else NAN, "yolo_class": cls})


# --- Label Studio -------------------------------------------------------------------------------

_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio renames uploads to "<8 hex>-<name>"


def read_label_studio(path: Path, data: Any, images_dir: Path) -> Read:
    """A Label Studio "JSON" export: a list of tasks with rectangle annotations and predictions."""
    if not isinstance(data, list) or not all(isinstance(t, dict) and isinstance(t.get("data"), dict) for t in data):
        raise SourceError(f"{path} is not a Label Studio JSON export: expected a list of tasks, each with 'data' "
                          "(export as JSON, not JSON-MIN or CSV)")
    read = Read([], [], [], name=f"label-studio:{path.name}", provenance={"kind": "label-studio", "file": str(path)},
                int_columns=("task_id",))
    seen: set[int] = set()
    for i, task in enumerate(data):
        task_id = task.get("id") if is_int(task.get("id")) else i
        if task_id in seen:
            raise SourceError(f"{path}: task id {task_id} appears twice")
        seen.add(task_id)
        url = task["data"].get("image")
        if not isinstance(url, str):
            url = next((v for v in task["data"].values() if isinstance(v, str)), None)
        where = f"{path.name}:[{i}]"
        image: dict[str, Any] = {"id": str(task_id), "filepath": _ls_file(url, images_dir) if url else None,
                                 "width": NAN, "height": NAN, "task_id": task_id, "url": url, "_where": where}
        read.images.append(image)
        for part, kind in (("annotations", GROUND_TRUTH), ("predictions", PREDICTION)):
            entries = task.get(part) or []
            for j, entry in enumerate(entries if isinstance(entries, list) else [entries]):
                if not isinstance(entry, dict) or entry.get("was_cancelled") is True:
                    continue
                results = entry.get("result")
                for k, result in enumerate(results if isinstance(results, list) else []):
                    _ls_box(read, image, result, entry, kind, f"{where}.{part}[{j}].result[{k}]")
    return read


def _ls_file(url: str, images_dir: Path) -> str | None:
    """The file in ``images_dir`` a task's image URL names, found by its path or file name."""
    parsed = urlparse(url)
    local = parse_qs(parsed.query).get("d", [""])[0]
    name = re.split(r"[\\/]", unquote(parsed.path))[-1]
    candidates = [c for c in (local, re.split(r"[\\/]", local)[-1], name, _UPLOAD_PREFIX.sub("", name)) if c]
    for candidate in candidates:
        found = inside(images_dir, candidate)
        if found and os.path.isfile(found):
            return found
    return None


def _ls_box(read: Read, image: dict, result: Any, entry: dict, kind: str, where: str) -> None:
    if not isinstance(result, dict):
        return
    rtype, value = str(result.get("type", "")), result.get("value")
    if rtype != "rectanglelabels":
        if rtype.endswith("labels"):  # another kind of region: polygons, brushes, key points
            read.problems.append(problem(f"not a rectangle ({rtype})", where, image_id=image["id"], kind=kind,
                                         action="skipped"))
        return
    labels = value.get("rectanglelabels") if isinstance(value, dict) else None
    if not isinstance(value, dict) or not isinstance(labels, list) or not labels:
        read.problems.append(problem("malformed rectangle (no value or no label)", where, image_id=image["id"],
                                     kind=kind))
        return
    width, height = number(result.get("original_width")), number(result.get("original_height"))
    if sized(width, height):
        image["width"], image["height"] = width, height
    elif not sized(image["width"], image["height"]) and image["filepath"] and not image.get("_header_read"):
        image["_header_read"] = True  # no size in the export: the file header has it
        size = header_size(image["filepath"])
        if not isinstance(size, str):
            image["width"], image["height"] = size
    width, height = image["width"], image["height"]
    label = str(labels[0])
    if not sized(width, height):
        read.problems.append(problem("image size unknown (no original_width/original_height)", where,
                                     image_id=image["id"], kind=kind, label=label))
        return
    drawn, bounds = ls_rectangle(value, width, height)
    rotation = number(value.get("rotation", 0))
    if bounds is not None:
        read.problems.append(problem("rotated box, its axis-aligned bounds kept", where, image_id=image["id"],
                                     kind=kind, label=label, box=drawn, action="converted"))
    x, y, w, h = bounds or drawn
    if len(labels) > 1:
        read.problems.append(problem(f"{len(labels)} labels on one box, the first kept", where, image_id=image["id"],
                                     kind=kind, label=label, box=(x, y, w, h), action="kept"))
    score = number(result.get("score")) if "score" in result else number(entry.get("score"))
    read.boxes.append({"image_id": image["id"], "x": x, "y": y, "w": w, "h": h, "label": label, "kind": kind,
                       "where": where, "score": score if kind == PREDICTION else NAN,
                       "region_id": result.get("id") if isinstance(result.get("id"), str) else None,
                       "rotation": rotation if math.isfinite(rotation) else 0.0})


def ls_rectangle(value: dict, width: float, height: float) -> tuple[tuple[float, float, float, float],
                                                                  tuple[float, float, float, float] | None]:
    """A Label Studio rectangle (``x``, ``y``, ``width``, ``height`` in percent of the image, ``rotation``
    clockwise in degrees around its top-left corner) in pixels: ``(the box as drawn, its axis-aligned
    bounds if it is rotated, else None)``.

    Examples
    --------
    >>> ls_rectangle({"x": 10, "y": 20, "width": 50, "height": 25}, 200, 100)
    ((20.0, 20.0, 100.0, 25.0), None)
    """
    x, y = number(value.get("x")) * width / 100, number(value.get("y")) * height / 100
    w, h = number(value.get("width")) * width / 100, number(value.get("height")) * height / 100
    rotation = number(value.get("rotation", 0))
    if not (math.isfinite(rotation) and rotation % 360):
        return (x, y, w, h), None
    c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    xs, ys = [0.0, w * c, w * c - h * s, -h * s], [0.0, w * s, w * s + h * c, h * c]
    return (x, y, w, h), (x + min(xs), y + min(ys), max(xs) - min(xs), max(ys) - min(ys))


# --- FiftyOne -----------------------------------------------------------------------------------

def read_fiftyone(view: Any, ground_truth_field: str | None, predictions_field: str | None) -> Read:
    """``fo.Detections`` fields of a FiftyOne dataset or view (boxes relative ``[x, y, w, h]`` in 0..1)."""
    schema = view.get_field_schema()
    detection_fields = sorted(f for f, v in schema.items()
                              if getattr(getattr(v, "document_type", None), "__name__", "") == "Detections")
    fields = [(f, kind) for f, kind in ((ground_truth_field, GROUND_TRUTH), (predictions_field, PREDICTION)) if f]
    for f, _ in fields:
        if f not in detection_fields:
            raise SourceError(f"the FiftyOne collection has no Detections field {f!r}; its Detections fields: "
                              f"{detection_fields or 'none'} (ground_truth_field=None or predictions_field=None: "
                              "that kind is not read)")
    if not fields:
        raise SourceError("name a ground_truth_field or a predictions_field of the FiftyOne collection")
    if ground_truth_field == predictions_field:
        raise SourceError(f"the field {ground_truth_field!r} cannot hold both the ground truth and the predictions")
    if None in view.values("metadata.width") or None in view.values("metadata.height"):
        view.compute_metadata()
    ids, paths = view.values("id"), view.values("filepath")
    widths, heights = view.values("metadata.width"), view.values("metadata.height")
    name = getattr(view, "dataset_name", None) or getattr(view, "name", "fiftyone")
    read = Read([], [], [], name=f"fiftyone:{name}", provenance={"kind": "fiftyone", "dataset": name,
                                                                 "fields": [f for f, _ in fields]})
    for sid, path, width, height in zip(ids, paths, widths, heights):
        row = {"id": sid, "filepath": path, "width": number(width), "height": number(height)}
        if not sized(row["width"], row["height"]):
            row["_reason"], row["_where"] = "image size unknown (FiftyOne could not compute its metadata)", path
        read.images.append(row)
    seen: set[str] = set()
    for f, kind in fields:
        columns = [view.values(f"{f}.detections.{attr}") for attr in ("id", "label", "bounding_box", "confidence")]
        try:  # boxes written by dataexplore (integrations.fiftyone.to_fiftyone) carry their object ids
            columns.append(view.values(f"{f}.detections.dx_object_id"))
        except Exception:  # noqa: BLE001  (no such attribute: FiftyOne's own ids)
            columns.append([None] * len(ids))
        for sid, width, height, *per_sample in zip(ids, widths, heights, *columns):
            width, height = number(width), number(height)
            listed = [c or [] for c in per_sample]
            listed[4] = listed[4] or [None] * len(listed[0])
            for i, (fo_id, label, bbox, conf, dx_id) in enumerate(zip(*listed)):
                det_id = dx_id if isinstance(dx_id, str) and dx_id and dx_id not in seen else fo_id
                seen.add(str(det_id))
                if label is None:
                    read.problems.append(problem("no label", f"{sid}:{f}[{i}]", image_id=sid, kind=kind))
                    continue
                box = [number(v) for v in bbox] if isinstance(bbox, (list, tuple)) and len(bbox) == 4 else [NAN] * 4
                read.boxes.append({"id": det_id, "image_id": sid, "x": box[0] * width, "y": box[1] * height,
                                   "w": box[2] * width, "h": box[3] * height, "label": str(label), "kind": kind,
                                   "score": number(conf) if kind == PREDICTION else NAN,
                                   "where": f"{sid}:{f}[{i}]", "field": f, "fiftyone_id": fo_id})
    return read
