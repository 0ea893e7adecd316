"""Label Studio: tasks with pre-annotations, a labeling config, instructions; and reading its export back.

How Label Studio reaches the images (see the ``instructions.md`` each export writes):

- **local files** (default): start Label Studio with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true``
  and ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=<document root>``, add a *Local files* storage whose
  path is the images' folder (Label Studio wants it strictly inside the root, so the default root is
  that folder's parent), and import ``tasks.json``; each task's image is
  ``/data/local-files/?d=<path relative to the document root>``;
- **URLs**: ``url_prefix="https://host/images"`` makes each image ``<prefix>/<path relative to the
  document root>``, for images served by any web server or bucket.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError, SourceError
from .batch import LABEL_COLUMNS, LabelBatch
from .conflicts import annotation_times

FROM_NAME, TO_NAME = "label", "image"


def image_folder(paths: list[str]) -> str:
    """The deepest folder holding every image (what a Local files storage points at)."""
    import os

    return os.path.abspath(os.path.commonpath([os.path.dirname(p) for p in paths]))


def image_urls(paths: list[str], document_root: str | None, url_prefix: str | None) -> tuple[list[str], str]:
    """The URL of each image for Label Studio, and the document root they are relative to.

    The default root is the parent of the images' folder: Label Studio refuses a storage whose path
    equals its document root.
    """
    import os

    root = os.path.abspath(document_root or os.path.dirname(image_folder(paths)))
    rel = []
    for p in paths:
        r = os.path.relpath(p, root)
        if r.startswith(".."):
            raise DataexploreError(f"image {p} is outside the document root {root}: choose a document_root above it")
        rel.append(Path(r).as_posix())
    if url_prefix:
        return [f"{url_prefix.rstrip('/')}/{quote(r)}" for r in rel], root
    return [f"/data/local-files/?d={quote(r)}" for r in rel], root


def labeling_config(classes: list[str], header: str = "") -> str:
    """Label Studio's XML labeling config: the image and one single-choice question over ``classes``."""
    lines = ["<View>"]
    if header:
        lines.append(f"  <Header value={quoteattr(header)}/>")
    lines.append(f'  <Image name="{TO_NAME}" value="${TO_NAME}" zoom="true"/>')
    lines.append(f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInLine="true" required="true">')
    lines += [f"    <Choice value={quoteattr(c)}/>" for c in classes]
    lines += ["  </Choices>", "</View>", ""]
    return "\n".join(lines)


def tasks(batch: LabelBatch, urls: list[str], model_version: str) -> list[dict]:
    """One Label Studio task per row: the image URL and metadata in ``data``, the prediction if any."""
    out = []
    for rec, url, pred, score in zip(batch.records(), urls, batch.predictions, batch.scores):
        data = {TO_NAME: url, "dx_id": rec.pop("id"), **{f"meta_{k}": v for k, v in rec.items()}}
        task: dict[str, Any] = {"data": data}
        if pred is not None:
            p: dict[str, Any] = {"model_version": model_version,
                 "result": [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices",
                             "value": {"choices": [str(pred)]}}]}
            if not np.isnan(score):
                p["score"] = round(float(score), 6)
            task["predictions"] = [p]
        out.append(task)
    return out


def write(batch: LabelBatch, folder: Path, paths: list[str], *, document_root: str | None = None,
          url_prefix: str | None = None, instructions: str = "") -> dict:
    """Write ``tasks.json``, ``config.xml`` and ``instructions.md`` into ``folder``."""
    urls, root = image_urls(paths, document_root, url_prefix)
    header = f"{batch.name}: {batch.description}" if batch.description else batch.name
    (folder / "tasks.json").write_text(json.dumps(tasks(batch, urls, f"dataexplore:{batch.name}"), indent=1,
                                                  ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / "config.xml").write_text(labeling_config(batch.classes, header), encoding="utf-8")
    storage = image_folder(paths)
    (folder / "instructions.md").write_text(_instructions(batch, root, storage, url_prefix, instructions),
                                            encoding="utf-8")
    return {"document_root": root}


def _instructions(batch: LabelBatch, root: str, storage: str, url_prefix: str | None, extra: str) -> str:
    n_pred = int(batch.predictions.notna().sum())
    access = (f"Images are served from `{url_prefix}`." if url_prefix else
              "Start Label Studio so it can read the local image files:\n\n"
              "```bash\nexport LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true\n"
              f"export LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={shlex.quote(root)}\nlabel-studio start\n```\n\n"
              f"then in the project's *Settings > Cloud Storage* add a *Local files* source storage with the absolute "
              f"path `{storage}` and leave *Sync* off: the tasks already point at the files.")
    return "\n".join([
        f"# Labeling batch: {batch.name}", "",
        batch.description and f"Images like: **{batch.description}**.",
        extra, "",
        f"{len(batch)} images. Choose one class per image: {', '.join(batch.classes)}.",
        f"{n_pred} tasks carry a model prediction as a pre-annotation: accept it if right, change it if wrong.", "",
        "## Set up", "",
        "1. Create a project; in *Settings > Labeling Interface > Code* paste `config.xml`.",
        f"2. {access}",
        "3. *Import* `tasks.json`.", "",
        "## Bring the labels back", "",
        "*Export* the project as **JSON** (or JSON-MIN / CSV), then in Python:", "",
        "```python\nimport dataexplore as dx\nlabels = dx.import_labels(\"export.json\")        "
        "# id, label, annotator, annotated_at, source, task\nsamples = dx.apply_labels(samples, labels)\n```", "",
    ])


def read(records: list, path: Path, field: str = FROM_NAME) -> pd.DataFrame:
    """Labels from Label Studio's JSON export (full tasks with ``annotations``) or its JSON-MIN export.

    ``field`` is the ``name`` of the ``<Choices>`` control holding the class (``"label"`` in the
    configs dataexplore writes); an export whose answers are all under other names is an error
    that lists them. Within a task the latest non-cancelled annotation counts; a sample labelled
    in several tasks is resolved by :mod:`~dataexplore.labeling.conflicts` (latest wins, conflicts
    reported). Anything of the wrong shape is one :class:`SourceError` naming the file and task.
    """
    rows: list[dict] = []
    seen: set[str] = set()
    for n, task in enumerate(records):
        if not isinstance(task, dict):
            raise SourceError(f"{path}: expected a list of Label Studio tasks, item {n} is a {type(task).__name__}")
        where = f"{path}: task {task.get('id', n)!r}"
        if "annotations" in task:
            row = _from_full(task, field, seen, where)
        else:  # JSON-MIN: the task's data and the answers flattened into one object
            label = _min_choice(task.get(field), where)
            row = {"id": _text(task.get("dx_id"), where, "dx_id"), "label": label,
                   "annotator": _who(task.get("annotator")),
                   "annotated_at": _when(task.get("updated_at") or task.get("created_at"), where),
                   "task": _scalar(task.get("id")), **_meta(task, where)}
        if row is not None and row["label"] is not None:
            if row["id"] is None:
                raise SourceError(f"{where} has no dx_id in its data; were these tasks made by dataexplore?")
            rows.append(row)
    if not rows and seen - {field}:
        raise SourceError(f"{path}: no answers under the field {field!r}; the export has {sorted(seen)}: "
                          "pass field= with the name of your <Choices> control")
    meta = sorted({k for r in rows for k in r if k.startswith("meta_")})
    frame = pd.DataFrame(rows, columns=[c for c in LABEL_COLUMNS if c != "source"] + meta)
    frame.insert(4, "source", "label-studio")
    return frame


def _from_full(task: dict, field: str, seen: set, where: str) -> dict | None:
    data = task.get("data") or {}
    annotations = task.get("annotations") or []
    if not isinstance(data, dict) or not isinstance(annotations, list):
        raise SourceError(f"{where}: 'data' must be an object and 'annotations' a list")
    if not all(isinstance(a, dict) for a in annotations):
        raise SourceError(f"{where}: every annotation must be an object")
    done = [a for a in annotations if not a.get("was_cancelled")]
    times = annotation_times(pd.Series([_when(a.get("updated_at") or a.get("created_at"), where) for a in done],
                                       dtype=object))
    # latest last; annotations without a readable time count as the oldest, file order breaks ties
    order = sorted(range(len(done)), key=lambda i: (pd.notna(times.iloc[i]), times.iloc[i] if pd.notna(times.iloc[i])
                                                    else pd.Timestamp(0, tz="UTC"), i))
    for ann in (done[i] for i in reversed(order)):  # the latest annotation that answers the question
        result = ann.get("result") or []
        if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
            raise SourceError(f"{where}: an annotation's 'result' must be a list of objects")
        for res in result:
            value = res.get("value") or {}
            if not isinstance(value, dict):
                raise SourceError(f"{where}: a result's 'value' must be an object")
            choices = value.get("choices")
            if choices is None:
                continue
            choices = _choices(choices, where)
            if choices:
                seen.add(str(res.get("from_name")))
            if res.get("from_name") == field and choices:
                return {"id": _text(data.get("dx_id"), where, "dx_id"), "label": choices[0],
                        "annotator": _who(ann.get("completed_by")),
                        "annotated_at": _when(ann.get("updated_at") or ann.get("created_at"), where),
                        "task": _scalar(task.get("id")), **_meta(data, where)}
    return None


def _choices(value, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise SourceError(f"{where}: 'choices' must be a list of strings, got {type(value).__name__} {value!r:.60}")
    return value


def _min_choice(value, where: str) -> str | None:
    """A JSON-MIN answer: a string, ``{"choices": [...]}`` or a list of strings."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        choices = _choices(value.get("choices", []), where)
        return choices[0] if choices else None
    if isinstance(value, list):
        choices = _choices(value, where)
        return choices[0] if choices else None
    raise SourceError(f"{where}: a label must be text or a list of choices, got {type(value).__name__}")


def _text(value, where: str, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SourceError(f"{where}: {name} must be text, got {type(value).__name__}")
    return str(value)


def _when(value, where: str):
    if value is None or isinstance(value, str):
        return value
    raise SourceError(f"{where}: an annotation time must be text, got {type(value).__name__}")


def _scalar(value):
    plain = value is None or isinstance(value, (str, int, float)) and not isinstance(value, bool)
    return value if plain else str(value)


def _meta(data: dict, where: str) -> dict:
    out = {}
    for k, v in data.items():
        if isinstance(k, str) and k.startswith("meta_"):
            out[k] = v if v is None or isinstance(v, (str, int, float, bool)) else str(v)
    return out


def _who(value) -> str | None:
    if isinstance(value, dict):
        value = value.get("email") or value.get("username") or value.get("id")
    return None if value is None else str(value)
