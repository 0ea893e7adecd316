"""Label Studio, live: push a labeling batch to a running server, pull the finished annotations back.

::

    project = dx.labeling.push("batches/trousers", url="http://localhost:8080", token=PAT)
    # ... annotators label in Label Studio ...
    labels = dx.labeling.pull(project)              # what dx.import_labels returns
    fixes = dx.labeling.pull(box_project, objects)  # rectangle batches: what dx.import_boxes returns

A *batch* is a folder written by :func:`~dataexplore.labeling.export_labeling` or
:func:`~dataexplore.labeling.export_boxes` with ``format="label-studio"``: its ``config.xml`` becomes
the project's labeling config, its ``tasks.json`` (with the model's pre-annotations as
*predictions*) the tasks. Images reached through Label Studio's local-files serving get a *Local
files* storage over the batch's image folder (no sync: the tasks already point at the files), so
the server must run on this machine with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` set to a folder above the batch's images (tell :func:`push`
with ``document_root=`` or the same variable; the tasks' paths are rewritten relative to it, and one
image is fetched back through the server to prove it is served); batches exported with ``url_prefix=``
need no storage.

``url`` and ``token`` default to the environment variables ``LABEL_STUDIO_URL`` and
``LABEL_STUDIO_API_KEY``. The token is a *personal access token* (Label Studio: *Account & Settings
> Personal Access Token*), or a legacy token where the organization allows those. Talking to the
server goes through the official client, ``label-studio-sdk`` (``pip install "dataexplore[labelstudio]"``).
Any failure (server unreachable, token refused, files outside the document root, a config the
server rejects) is one :class:`~dataexplore.core.errors.DataexploreError` naming the server and
what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from ..core.errors import DataexploreError, SourceError
from ..core.io import atomic_write, csv_value
from .live_client import LOCAL_FILES, ROOT_ENV, TOKEN_ENV, URL_ENV, check_served, connect, export, find, name_annotators

__all__ = ["LiveProject", "pull", "push"]


@dataclass(frozen=True)
class LiveProject:
    """A Label Studio project a batch was pushed to.

    Attributes
    ----------
    url : str
        The server.
    id : int
        The project's id on that server.
    title : str
    added, kept : int
        Tasks imported by this push, and tasks that were already there (matched by sample or image id).
    storage : str or None
        The folder of the project's Local files storage, if the images are served that way.
    """

    url: str
    id: int
    title: str
    added: int = 0
    kept: int = 0
    storage: str | None = None

    @property
    def link(self) -> str:
        """The project's page in Label Studio."""
        return f"{self.url}/projects/{self.id}/data"

    def __str__(self) -> str:
        return f"Label Studio project {self.title!r} ({self.added} tasks added, {self.kept} kept): {self.link}"


def push(batch: str | os.PathLike, *, url: str | None = None, token: str | None = None,
         project: int | str | None = None, title: str | None = None,
         document_root: str | os.PathLike | None = None) -> LiveProject:
    """Create (or update) a Label Studio project from a batch folder and import its tasks.

    Parameters
    ----------
    batch : path
        A folder written by :func:`~dataexplore.labeling.export_labeling` or
        :func:`~dataexplore.labeling.export_boxes` with ``format="label-studio"``.
    url, token : str, optional
        The server and a personal access token; default ``$LABEL_STUDIO_URL`` and ``$LABEL_STUDIO_API_KEY``.
    project : int or str, optional
        An existing project to update: an int is its id, a str its title. Default: the project titled ``title``,
        created if there is none.
    title : str, optional
        Default: the batch folder's name.
    document_root : path, optional
        The server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` (default: that variable here, else the
        root the batch was exported with); the tasks' image paths are made relative to it. The
        first image is fetched back through the server to check that it really serves the files.

    Returns
    -------
    LiveProject
        The project, with how many tasks were added and how many were there already. Pushing the
        same batch again adds nothing: tasks are matched by sample id (``dx_id``) or image id
        (``dx_image_id``); the labeling config is updated if it changed.

    Examples
    --------
    >>> folder = dx.export_labeling(result, "batches/trousers", predictions="Trouser")  # doctest: +SKIP
    >>> project = dx.labeling.push(folder)  # doctest: +SKIP
    """
    folder = Path(batch).expanduser().resolve()
    config, tasks = _read_batch(folder)
    storage, tasks = _local_files(folder, tasks, document_root)
    with connect(url, token, "push") as server:
        client, base = server.client, server.base
        existing = find(client, project, title or folder.name, base)
        if existing is None:
            made = client.projects.create(title=title or folder.name, label_config=config,
                                          description=f"dataexplore batch {folder.name}")
            pid, name = int(made.id), str(made.title)
        else:
            pid, name = existing
        try:
            if existing is not None and _normal(client.projects.get(pid).label_config) != _normal(config):
                client.projects.update(pid, label_config=config)
            if storage is not None and not any(Path(str(s.path)).resolve() == Path(storage)
                                               for s in client.import_storage.local.list(project=pid)):
                client.import_storage.local.create(project=pid, path=storage, use_blob_urls=False,
                                                   title=f"dataexplore: {folder.name}")
            if storage is not None:
                check_served(server, tasks[0]["data"]["image"])
            present = {_key(t) for t in export(client, pid)} if existing is not None else set()
            new = [t for t in tasks if _key(t) not in present]
            if new:
                client.projects.import_tasks(pid, request=new, commit_to_project=True)
        except BaseException:
            if existing is None:  # leave no half-made project behind
                with contextlib.suppress(Exception):
                    client.projects.delete(pid)
            raise
    return LiveProject(url=base, id=pid, title=name, added=len(new), kept=len(tasks) - len(new), storage=storage)


def pull(project: LiveProject | int | str, objects: Any = None, *, url: str | None = None, token: str | None = None,
         field: str = "label", save_to: str | os.PathLike | None = None, overwrite: bool = False,
         **box_options: Any):
    """The finished annotations of a Label Studio project, as :func:`~dataexplore.labeling.import_labels`
    (or, for rectangle tasks, :func:`~dataexplore.labeling.import_boxes`) returns them.

    Parameters
    ----------
    project : LiveProject, int or str
        What :func:`push` returned, or a project on the server: an int is its id, a str its title.
    objects : Objects, optional
        Rectangle batches: the objects the batch was exported from (required for those).
    url, token : str, optional
        Default: the project's server (for a LiveProject), else ``$LABEL_STUDIO_URL``; ``$LABEL_STUDIO_API_KEY``
        (for a LiveProject on another server than ``$LABEL_STUDIO_URL``, pass ``token=``: the environment's
        token is not sent to another server).
    field : str
        The ``<Choices>`` control holding the class (classification batches).
    save_to : path, optional
        Also keep the project's JSON export (annotators as e-mail addresses) in this file (written
        atomically; an existing file is replaced only with ``overwrite=True``).
    overwrite : bool
        Replace an existing ``save_to`` file.
    **box_options
        ``iou``, ``keep_iou``, ``kind`` for :func:`~dataexplore.labeling.import_boxes`.

    Returns
    -------
    pandas.DataFrame or BoxCorrections
        Labels: ``id``, ``label``, ``annotator`` (the annotator's e-mail), ``annotated_at`` (when
        the annotation was last saved, as the server reports it), ``source``, ``task`` and the
        ``meta_*`` columns, one row per sample labelled (cancelled and skipped tasks do not count).

    Examples
    --------
    >>> labels = dx.labeling.pull(project)  # doctest: +SKIP
    >>> samples = dx.apply_labels(samples, labels)  # doctest: +SKIP
    """
    from . import import_boxes, import_labels

    if isinstance(project, LiveProject):
        env_url = (os.environ.get(URL_ENV) or "").strip().rstrip("/")
        if token is None and os.environ.get(TOKEN_ENV) and env_url != project.url.rstrip("/"):
            raise DataexploreError(f"project {project.id} is on {project.url}, not on ${URL_ENV} "
                                   f"({env_url or 'unset'}): pass that server's token= (${TOKEN_ENV} is not sent "
                                   "to another server)")
        url = url or project.url
        project = project.id
    if save_to is not None and Path(save_to).expanduser().exists() and not overwrite:
        raise DataexploreError(f"{save_to} already exists: pass overwrite=True to replace it")
    with connect(url, token, "pull") as server:
        base = server.base
        found = find(server.client, project, None, base)
        if found is None:
            raise DataexploreError(f"Label Studio at {base} has no project {project!r}")
        pid = found[0]
        tasks = export(server.client, pid)
        name_annotators(server.client, tasks)
    boxes = any("dx_image_id" in (t.get("data") or {}) for t in tasks)
    if boxes and objects is None:
        raise DataexploreError(f"project {pid} holds rectangle tasks: pass the Objects the batch was exported "
                               "from, dx.labeling.pull(project, objects)")
    with contextlib.ExitStack() as stack:
        if save_to is None:
            path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dx-ls-"))) / f"project-{pid}.json"
        else:
            path = Path(save_to).expanduser()
        text = json.dumps(tasks, ensure_ascii=False)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        if boxes:
            corrections = import_boxes(path, objects, format="label-studio", **box_options)
            return corrections if save_to else dataclasses.replace(corrections, source=f"{base}/projects/{pid}")
        return import_labels(path, format="label-studio", field=field)


# ---- the batch ------------------------------------------------------------------------------------
def _read_batch(folder: Path) -> tuple[str, list[dict]]:
    files = {name: folder / name for name in ("config.xml", "tasks.json")}
    missing = [n for n, p in files.items() if not p.is_file()]
    if missing:
        raise DataexploreError(f"{folder} is not a Label Studio batch (no {' or '.join(missing)}): write one with "
                               "dx.export_labeling(..., format='label-studio') or dx.export_boxes(...)")
    try:
        tasks = json.loads(files["tasks.json"].read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{files['tasks.json']} is not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and isinstance(t.get("data"), dict) for t in tasks):
        raise SourceError(f"{files['tasks.json']} is not a list of Label Studio tasks")
    if not tasks:
        raise DataexploreError(f"{folder} holds no tasks")
    return files["config.xml"].read_text(encoding="utf-8"), tasks


def _local_files(folder: Path, tasks: list[dict], document_root: Any) -> tuple[str | None, list[dict]]:
    """The folder a Local files storage needs (the images' common folder), and the tasks with their image
    paths made relative to the server's document root; (None, tasks) for images given as URLs."""
    if not any(str(t["data"].get("image", "")).startswith(LOCAL_FILES) for t in tasks):
        return None, tasks
    from .manifest import read_csv_text

    table = read_csv_text(folder / "manifest.csv") if (folder / "manifest.csv").is_file() else None
    if table is None or not {"image", "file_name"} <= set(table.columns) or not len(table):
        raise DataexploreError(f"{folder} has no manifest.csv with the image paths: export the batch again")
    image, rel = str(csv_value(table["image"].iloc[0])), str(csv_value(table["file_name"].iloc[0]))
    exported = Path(image[: len(image) - len(rel)] if image.endswith(rel) else os.path.dirname(image))
    root = Path(document_root or os.environ.get(ROOT_ENV) or exported).expanduser().resolve()
    paths = []
    for task in tasks:
        url = str(task["data"].get("image", ""))
        if not url.startswith(LOCAL_FILES):
            raise DataexploreError(f"{folder}: task {_key(task)!r} mixes an image URL with local files")
        paths.append((exported / unquote(url[len(LOCAL_FILES):])).resolve())
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataexploreError(f"{len(missing)} of the batch's {len(paths)} images are missing (first: {missing[0]}): "
                               "export the batch again")
    for path in paths:
        if not path.is_relative_to(root) or path.parent == root:
            raise DataexploreError(f"image {path} is not inside a folder under the document root {root}: start "
                                   f"Label Studio with {ROOT_ENV} set to a folder above the batch's images "
                                   "(and pass it as document_root=)")
    storage = _storage(folder, paths)
    return str(storage), [{**t, "data": {**t["data"], "image": LOCAL_FILES + quote(p.relative_to(root).as_posix())}}
                          for t, p in zip(tasks, paths)]


def _storage(folder: Path, paths: list[Path]) -> Path:
    """The folder the Local files storage serves *whole*: the one holding the batch's images (or holding the
    folders that hold them, as class folders do), never a wider common parent such as the home folder."""
    folders = sorted({p.parent for p in paths})
    common = Path(os.path.commonpath(folders))
    home = Path.home().resolve()
    if any(f != common and f.parent != common for f in folders) or common == home or home.is_relative_to(common):
        shown = ", ".join(str(f) for f in folders[:2]) + (f" and {len(folders) - 2} more" if len(folders) > 2 else "")
        where = f"unrelated folders ({shown})" if len(folders) > 1 else f"the home folder {common}"
        raise DataexploreError(f"{folder}: the batch's images are in {where}, and serving them would serve all of "
                               f"{common}: copy the images into one folder of their own and export again, or export "
                               "with url_prefix= and serve them yourself")
    return common


def _key(task: dict) -> str:
    data = task.get("data") or {}
    return str(data.get("dx_id", data.get("dx_image_id", data.get("image"))))


def _normal(config: Any) -> str:
    return "".join(str(config or "").split())
