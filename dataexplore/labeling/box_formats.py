"""The files of box labeling batches, out and back.

Out (for :func:`dataexplore.labeling.boxes.export_boxes`): Label Studio ``tasks.json`` and
``config.xml``, COCO ``annotations.json`` and ``predictions.json``, ``manifest.csv`` and
``instructions.md``. Back (for :func:`dataexplore.labeling.boxes.import_boxes`): Label Studio's JSON
export and COCO files written back by a tool. Each reader turns a file into :class:`Returned`: the
images it holds (annotated or not, with who annotated them and when) and the boxes, in pixels, of
the annotated ones. Whatever is wrong with one box is one problem row (its reason, the action
taken, ``where`` in the file); only a file of the wrong shape as a whole is a
:class:`~dataexplore.SourceError`. :func:`dataexplore.labeling.box_corrections.compare` then pairs
the boxes with the ones sent.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd

from ..core.errors import SourceError
from ..core.htmlsafe import escape
from ..core.objects import GROUND_TRUTH, PREDICTION
from ..sources.detection_formats import ls_rectangle, number
from . import label_studio
from .conflicts import annotation_times
from .label_studio import _when, _who

# --- writing -----------------------------------------------------------------------------------

def rectangle_config(classes: Sequence[str], header: str = "") -> str:
    """Label Studio's labeling config for boxes: the image and ``<RectangleLabels>`` over ``classes``.

    Every attribute is XML-quoted, so a label such as ``<script>`` stays text.

    Examples
    --------
    >>> print(rectangle_config(["a<b"]))  # doctest: +NORMALIZE_WHITESPACE
    <View>
      <Image name="image" value="$image" zoom="true" zoomControl="true"/>
      <RectangleLabels name="label" toName="image">
        <Label value="a&lt;b"/>
      </RectangleLabels>
    </View>
    """
    to, frm = label_studio.TO_NAME, label_studio.FROM_NAME
    lines = ["<View>"]
    if header:
        lines.append(f"  <Header value={quoteattr(header)}/>")
    lines.append(f'  <Image name="{to}" value="${to}" zoom="true" zoomControl="true"/>')
    lines.append(f'  <RectangleLabels name="{frm}" toName="{to}">')
    lines += [f"    <Label value={quoteattr(str(c))}/>" for c in classes]
    lines += ["  </RectangleLabels>", "</View>", ""]
    return "\n".join(lines)


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _by_image(boxes: pd.DataFrame) -> dict[str, list[dict]]:
    """Each image's boxes as plain records (``id``, ``label``, ``kind``: str; ``score``, ``x`` .. ``h``: float)."""
    out: dict[str, list[dict]] = {}
    xywh = boxes[["x", "y", "w", "h"]].to_numpy(np.float64)
    score = boxes["score"].to_numpy(np.float64)
    crowd = boxes["iscrowd"] if "iscrowd" in boxes.columns else pd.Series(0, index=boxes.index)
    area = pd.to_numeric(boxes["area"], errors="coerce") if "area" in boxes.columns else \
        pd.Series(np.nan, index=boxes.index)
    for n, (oid, image_id, label, kind) in enumerate(zip(boxes["id"], boxes["image_id"], boxes["label"],
                                                         boxes["kind"])):
        x, y, w, h = (float(v) for v in xywh[n])
        a = float(area.iloc[n]) if pd.notna(area.iloc[n]) else w * h
        out.setdefault(str(image_id), []).append({
            "id": str(oid), "image_id": str(image_id), "label": str(label), "kind": str(kind),
            "score": float(score[n]), "x": x, "y": y, "w": w, "h": h, "area": a,
            "iscrowd": 1 if pd.notna(crowd.iloc[n]) and crowd.iloc[n] == 1 else 0})
    return out


def tasks_json(ids: list[str], urls: list[str], sizes: dict, sent: pd.DataFrame, kind: str, name: str) -> list[dict]:
    """One Label Studio task per image, its sent boxes as the prediction (percent of the image)."""
    by_image = _by_image(sent)
    out = []
    for image_id, url in zip(ids, urls):
        width, height = sizes[image_id]
        task: dict[str, Any] = {"data": {label_studio.TO_NAME: url, "dx_image_id": image_id, "dx_boxes": kind}}
        boxes = by_image.get(image_id)
        if boxes is not None:
            result = []
            for b in boxes:
                res: dict[str, Any] = {
                    "id": b["id"], "type": "rectanglelabels", "from_name": label_studio.FROM_NAME,
                    "to_name": label_studio.TO_NAME, "original_width": width, "original_height": height,
                    "image_rotation": 0,
                    "value": {"x": 100 * b["x"] / width, "y": 100 * b["y"] / height, "width": 100 * b["w"] / width,
                              "height": 100 * b["h"] / height, "rotation": 0, "rectanglelabels": [b["label"]]}}
                if kind == PREDICTION:
                    res["score"] = round(b["score"], 6)
                result.append(res)
            pred: dict[str, Any] = {"model_version": f"dataexplore:{name}" if kind == PREDICTION else "ground truth",
                                    "result": result}
            if kind == PREDICTION:
                pred["score"] = round(float(np.mean([b["score"] for b in boxes])), 6)
            task["predictions"] = [pred]
        out.append(task)
    return out


def coco_files(ids: list[str], files: list[str], sizes: dict, sent: pd.DataFrame, table: pd.DataFrame,
               labels: list[str], kind: str, name: str) -> tuple[dict, list[dict]]:
    """``annotations.json`` (the sent boxes) and the COCO results of every prediction in ``table``."""
    cat = {c: i + 1 for i, c in enumerate(labels)}
    image_no = {image_id: k + 1 for k, image_id in enumerate(ids)}
    images = [{"id": image_no[i], "file_name": f, "width": sizes[i][0], "height": sizes[i][1], "dx_id": i}
              for i, f in zip(ids, files)]
    annotations: list[dict] = []
    for b in (b for boxes in _by_image(sent).values() for b in boxes):
        annotations.append({"id": len(annotations) + 1, "image_id": image_no[b["image_id"]],
                            "category_id": cat[b["label"]], "bbox": [b["x"], b["y"], b["w"], b["h"]],
                            "area": b["area"], "iscrowd": b["iscrowd"], "dx_object_id": b["id"], "dx_kind": kind})
    predicted = table[(table["kind"] == PREDICTION) & table["label"].isin(set(labels))]
    results = [{"image_id": image_no[b["image_id"]], "category_id": cat[b["label"]],
                "bbox": [b["x"], b["y"], b["w"], b["h"]], "score": round(b["score"], 6), "dx_object_id": b["id"]}
               for boxes in _by_image(predicted).values() for b in boxes]
    doc = {"info": {"description": name, "contributor": "dataexplore", "dx_boxes": kind,
                    "date_created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()},
           "licenses": [], "images": images, "categories": [{"id": i, "name": c, "supercategory": ""}
                                                            for c, i in cat.items()],
           "annotations": annotations}
    return doc, results


def write_manifest(folder: Path, ids: list[str], files: list[str], paths: list[str], sizes: dict,
                    sent: pd.DataFrame) -> None:
    from ..core.io import csv_safe_frame

    by_image = _by_image(sent)
    rows = []
    for image_id, file_name, path in zip(ids, files, paths):
        where = {"image_id": image_id, "file_name": file_name, "image": path, "width": sizes[image_id][0],
                 "height": sizes[image_id][1]}
        boxes = by_image.get(image_id)
        if boxes is None:
            rows.append({"object_id": "", **where})
        for b in boxes or []:
            rows.append({"object_id": b["id"], **where, "kind": b["kind"], "label": b["label"],
                         "score": round(b["score"], 6), **{c: b[c] for c in "xywh"}})
    columns = ["object_id", "image_id", "file_name", "image", "width", "height", "kind", "label", "score", "x", "y",
               "w", "h"]
    csv_safe_frame(pd.DataFrame(rows, columns=columns)).to_csv(folder / "manifest.csv", index=False)


def manifest_files(folder: Path) -> dict[str, str]:
    """``file_name`` (and its last part, when unique) -> image id, from a batch's ``manifest.csv``."""
    path = folder / "manifest.csv"
    if not path.is_file():
        return {}
    from ..core.io import csv_value
    from .manifest import read_csv_text

    table = read_csv_text(path).map(csv_value)
    table.columns = [csv_value(c) for c in table.columns]
    if not {"file_name", "image_id"} <= set(table.columns):
        return {}
    pairs = dict(zip(table["file_name"], table["image_id"]))
    counts = Counter(f.rsplit("/", 1)[-1] for f in pairs)
    return {**{f.rsplit("/", 1)[-1]: i for f, i in pairs.items() if counts[f.rsplit("/", 1)[-1]] == 1}, **pairs}


def _code(text: str) -> str:
    """``text`` as a Markdown code span (a fence longer than any run of backticks in it)."""
    ticks = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    return f"{ticks} {text} {ticks}"


def instructions_md(format: str, name: str, n_images: int, n_boxes: int, kind: str, labels: list[str], root: str,
                  paths: list[str], url_prefix: str | None, extra: str) -> str:
    what = "the model's predicted boxes" if kind == PREDICTION else "the current ground-truth boxes"
    common = [f"# Box labeling batch: {escape(name)}", "", *([escape(extra), ""] if extra else []),
              f"{n_images} images, {n_boxes} boxes drawn in advance: {what}. Labels: "
              f"{', '.join(escape(c) for c in labels)}.", "",
              "For every image: **keep** a right box, **move** or resize a loose one, **change the label** of a "
              "wrong one, **delete** a box around nothing, **draw** every object that has no box yet. Then submit "
              "the image, even when nothing changed: an image without a submitted annotation counts as *not "
              "annotated* and its boxes stay as they were.", ""]
    if format == "label-studio":
        access = (f"Images are served from {_code(url_prefix)}." if url_prefix else
                  "Start Label Studio so it can read the local image files:\n\n```bash\n"
                  "export LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true\n"
                  f"export LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={shlex.quote(root)}\nlabel-studio start\n```\n\n"
                  "then in the project's *Settings > Cloud Storage* add a *Local files* source storage with the "
                  f"absolute path {_code(label_studio.image_folder(paths))} and leave *Sync* off.")
        steps = ["## Set up", "", "1. Create a project; in *Settings > Labeling Interface > Code* paste `config.xml`.",
                 f"2. {access}", "3. *Import* `tasks.json`: each image opens with its boxes as a prediction.", "",
                 "## Bring the boxes back", "", "*Export* the project as **JSON** (not JSON-MIN), then in Python:"]
        file = "project-export.json"
    else:
        steps = ["## Set up", "", f"Import `annotations.json` as COCO into your tool, with the images under "
                 f"{_code(root)} (`file_name` is relative to it). `predictions.json`, when present, holds every "
                 "predicted box with its score (a COCO results file).", "",
                 "## Bring the boxes back", "", "Export the annotations as COCO, keeping `dx_id` on the images if "
                 "the tool can (else they are matched by file name through `manifest.csv`; put the file beside it), "
                 "then in Python:"]
        file = "annotations.json"
    code = ["", "```python", "import dataexplore as dx", f'corrections = dx.import_boxes("{file}", objects)',
            "corrections.summary()            # kept, moved, relabelled, added, deleted, not annotated",
            "ground_truth = corrections.apply(objects)", "```", ""]
    return "\n".join([*common, *steps, *code])


# --- reading -----------------------------------------------------------------------------------

@dataclass
class Returned:
    """What a labeling tool's file holds: its images (annotated or not), their boxes, what was set aside."""

    images: list[dict]
    boxes: list[dict]
    problems: list[dict]
    kind: str | None = None  # the kind of boxes sent, as the export recorded it


def _problem(reason: str, where: str, image_id: Any = None, label: Any = None, action: str = "dropped",
             box: tuple[float, float, float, float] = (math.nan,) * 4) -> dict:
    return {"image_id": None if image_id is None else str(image_id), "kind": GROUND_TRUTH,
            "label": None if label is None else str(label), "x": box[0], "y": box[1], "w": box[2], "h": box[3],
            "reason": reason, "action": action, "where": where}


def _id_text(value: Any) -> str | None:
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def read_label_studio(tasks: list, path: Path, sizes: dict[str, tuple[float, float]]) -> Returned:
    """Returned boxes from Label Studio's JSON export of tasks made by :func:`~.boxes.export_boxes`.

    Each task's image is its ``data.dx_image_id``; of its submitted (not cancelled) annotations the
    latest counts (``updated_at``, else ``created_at``; see :mod:`.conflicts`), with ``completed_by``
    as the annotator; of several tasks of one image (imported twice), the one annotated last.
    ``rectanglelabels`` results are boxes in percent of the image, converted with the image sizes
    ``sizes`` (image id -> width, height) and rounded to 1e-6 pixel (so a box sent and returned
    unchanged has its exact pixels again); a rotated box becomes its axis-aligned bounds (a problem
    row says so). Other result types are ignored.
    """
    out = Returned([], [], [])
    kinds = set()
    best: dict[str, tuple[tuple, Returned, str]] = {}  # per image, the task with the latest annotation
    for n, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise SourceError(f"{path}: expected a Label Studio JSON export (tasks with 'data'), item {n} is not one")
        where = f"{path.name}:[{n}]"
        image_id = _id_text(task["data"].get("dx_image_id"))
        if image_id is None:
            raise SourceError(f"{where} has no dx_image_id in its data: were these tasks made by dx.export_boxes? "
                              "(export the project as JSON, not JSON-MIN)")
        if isinstance(task["data"].get("dx_boxes"), str):
            kinds.add(task["data"]["dx_boxes"])
        annotations = task.get("annotations", [])
        if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
            raise SourceError(f"{where}: 'annotations' must be a list of objects")
        if image_id not in sizes:
            out.problems.append(_problem("image not among the objects' images", where, image_id, action="skipped"))
            continue
        entry = {"image_id": image_id, "status": "not annotated", "annotator": None, "annotated_at": None,
                 "task": task.get("id") if _id_text(task.get("id")) else None}
        part, key = Returned([entry], [], []), (False, False, pd.Timestamp(0, tz="UTC"), n)
        done = [(j, a) for j, a in enumerate(annotations) if not a.get("was_cancelled")]
        if done:
            times = annotation_times(pd.Series([_when(a.get("updated_at") or a.get("created_at"), where)
                                                for _, a in done], dtype=object))
            keys = [(True, bool(pd.notna(t)), t if pd.notna(t) else pd.Timestamp(0, tz="UTC"), n) for t in times]
            latest = max(range(len(done)), key=lambda k: keys[k][1:3] + (k,))
            j, ann = done[latest]
            key = keys[latest]
            result = ann.get("result") or []
            if not isinstance(result, list):
                raise SourceError(f"{where}.annotations[{j}]: 'result' must be a list")
            entry.update(status="annotated", annotator=_who(ann.get("completed_by")),
                         annotated_at=_when(ann.get("updated_at") or ann.get("created_at"), where))
            for k, res in enumerate(result):
                _ls_box(part, res, entry, sizes[image_id], f"{where}.annotations[{j}].result[{k}]")
        if image_id in best:  # the image was imported twice: the task annotated last counts
            older, newer = sorted([best[image_id], (key, part, where)], key=lambda kp: kp[0])
            out.problems.append(_problem("another task of the same image was annotated later", older[2], image_id,
                                         action="skipped"))
            best[image_id] = newer
        else:
            best[image_id] = (key, part, where)
    for _, part, _ in best.values():
        out.images += part.images
        out.boxes += part.boxes
        out.problems += part.problems
    out.kind = kinds.pop() if len(kinds) == 1 else None
    return out


def _ls_box(out: Returned, res: Any, image: dict, size: tuple[float, float], where: str) -> None:
    if not isinstance(res, dict) or res.get("type") != "rectanglelabels":
        if isinstance(res, dict) and str(res.get("type", "")).endswith("labels"):
            out.problems.append(_problem(f"not a rectangle ({str(res.get('type'))[:40]})", where, image["image_id"],
                                         action="skipped"))
        return
    value = res.get("value")
    labels = value.get("rectanglelabels") if isinstance(value, dict) else None
    if not isinstance(value, dict) or not isinstance(labels, list) or not labels or not isinstance(labels[0], str):
        out.problems.append(_problem("malformed rectangle (no value or no label)", where, image["image_id"]))
        return
    drawn, bounds = ls_rectangle(value, *size)
    if bounds is not None:
        out.problems.append(_problem("rotated box, its axis-aligned bounds kept", where, image["image_id"],
                                     labels[0], "converted", drawn))
    x, y, w, h = bounds or drawn
    x, y, w, h = (round(v, 6) if math.isfinite(v) else v for v in (x, y, w, h))  # no float noise from the percent
    out.boxes.append({"image_id": image["image_id"], "region_id": _id_text(res.get("id")), "x": x, "y": y, "w": w,
                      "h": h, "label": labels[0], "annotator": image["annotator"],
                      "annotated_at": image["annotated_at"], "where": where})


def read_coco(doc: Any, path: Path, known: set[str], by_file: dict[str, str]) -> Returned:
    """Returned boxes from a COCO annotations file written back by a labeling tool.

    Images are matched by their ``dx_id`` (written by :func:`~.boxes.export_boxes`), else by
    ``file_name`` (or its last part) through ``by_file`` (the batch's ``manifest.csv``). Boxes keep
    their ``dx_object_id`` when the tool kept it; annotations with a ``score`` are predictions and
    skipped. An image with at least one annotation is annotated; one with none is not annotated
    (COCO cannot tell "every box deleted" from "not looked at"). Provenance, when the tool writes it:
    ``annotator`` and ``updated_at`` / ``created_at`` / ``annotated_at`` on each annotation. The kind
    of boxes sent is ``info.dx_boxes``, else the annotations' ``dx_kind``.
    """
    if not isinstance(doc, dict):
        raise SourceError(f"{path} is not a COCO annotations file (a JSON object with images, categories, "
                          "annotations)")
    for key in ("images", "categories", "annotations"):
        if not isinstance(doc.get(key), list) or not all(isinstance(v, dict) for v in doc[key]):
            raise SourceError(f"{path}: not a COCO annotations file ('{key}' must be a list of objects)")
    names = {_id_text(c.get("id")): c.get("name") for c in doc["categories"] if isinstance(c.get("name"), str)}
    info: dict = doc["info"] if isinstance(doc.get("info"), dict) else {}
    out = Returned([], [], [], kind=info.get("dx_boxes") if isinstance(info.get("dx_boxes"), str) else None)
    images: dict[str | None, dict] = {}  # COCO image id -> our image's entry
    mine: dict[str, dict] = {}  # our image id -> its entry
    for n, img in enumerate(doc["images"]):
        where = f"{path.name}:images[{n}]"
        file_name = img.get("file_name") if isinstance(img.get("file_name"), str) else ""
        ours = _id_text(img.get("dx_id")) or by_file.get(file_name) or by_file.get(file_name.rsplit("/", 1)[-1])
        if ours is None or ours not in known:
            out.problems.append(_problem("image not among the objects' images" if ours else
                                         "image not matched (no dx_id, not in manifest.csv)", where, ours,
                                         action="skipped"))
            continue
        entry = mine.get(ours)  # an image listed twice is still one image
        if entry is None:
            entry = mine[ours] = {"image_id": ours, "status": "not annotated", "annotator": None,
                                  "annotated_at": None, "task": _id_text(img.get("id"))}
            out.images.append(entry)
        images[_id_text(img.get("id"))] = entry
    skipped = {_id_text(im.get("id")) for im in doc["images"]} - set(images)
    for n, ann in enumerate(doc["annotations"]):
        where = f"{path.name}:annotations[{n}]"
        image = images.get(_id_text(ann.get("image_id")))
        if "score" in ann or _id_text(ann.get("image_id")) in skipped:
            continue
        if image is None:
            out.problems.append(_problem("unknown image", where, ann.get("image_id")))
            continue
        who = _who(ann.get("annotator"))
        when = next((v for v in (ann.get(k) for k in ("updated_at", "created_at", "annotated_at"))
                     if isinstance(v, str)), None)
        if image["status"] == "not annotated" or (when or "") > (image["annotated_at"] or ""):
            image.update(status="annotated", annotator=who, annotated_at=when)
        bbox = ann.get("bbox")
        label = names.get(_id_text(ann.get("category_id")))
        if label is None:
            out.problems.append(_problem("unknown category", where, image["image_id"], ann.get("category_id")))
        elif not isinstance(bbox, list) or len(bbox) != 4:
            out.problems.append(_problem("malformed annotation (bbox is not [x, y, w, h])", where, image["image_id"],
                                         label))
        else:
            x, y, w, h = (number(v) for v in bbox)
            out.boxes.append({"image_id": image["image_id"], "region_id": _id_text(ann.get("dx_object_id")), "x": x,
                              "y": y, "w": w, "h": h, "label": label, "annotator": who, "annotated_at": when,
                              "where": where})
    if out.kind is None:  # the tool dropped "info": the annotations may still say what they were
        kinds = {ann.get("dx_kind") for ann in doc["annotations"] if isinstance(ann.get("dx_kind"), str)}
        out.kind = kinds.pop() if len(kinds) == 1 else None
    return out
