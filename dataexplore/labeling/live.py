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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, unquote

from ..core.errors import DataexploreError, SourceError
from ..core.io import csv_value

URL_ENV, TOKEN_ENV = "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"
ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
LOCAL_FILES = "/data/local-files/?d="

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
        An existing project (its id or title) to update. Default: the project titled ``title``,
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
    with _connect(url, token, "push") as (client, base):
        existing = _find(client, project, title or folder.name, base)
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
                _check_served(client, base, tasks[0]["data"]["image"])
            present = {_key(t) for t in _export(client, pid)} if existing is not None else set()
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
         field: str = "label", save_to: str | os.PathLike | None = None, **box_options: Any):
    """The finished annotations of a Label Studio project, as :func:`~dataexplore.labeling.import_labels`
    (or, for rectangle tasks, :func:`~dataexplore.labeling.import_boxes`) returns them.

    Parameters
    ----------
    project : LiveProject, int or str
        What :func:`push` returned, or a project id or title on the server.
    objects : Objects, optional
        Rectangle batches: the objects the batch was exported from (required for those).
    url, token : str, optional
        Default: the project's server (for a LiveProject), else ``$LABEL_STUDIO_URL``; ``$LABEL_STUDIO_API_KEY``.
    field : str
        The ``<Choices>`` control holding the class (classification batches).
    save_to : path, optional
        Also keep the project's JSON export (annotators as e-mail addresses) in this file.
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
        url = url or project.url
        project = project.id
    with _connect(url, token, "pull") as (client, base):
        found = _find(client, project, None, base)
        if found is None:
            raise DataexploreError(f"Label Studio at {base} has no project {project!r}")
        pid = found[0]
        tasks = _export(client, pid)
        users = {int(u.id): str(u.email or u.username or u.id) for u in client.users.list()}
    for task in tasks:
        for ann in task.get("annotations") or []:
            who = ann.get("completed_by")
            if isinstance(who, int) and who in users:
                ann["completed_by"] = {"id": who, "email": users[who]}
    boxes = any("dx_image_id" in (t.get("data") or {}) for t in tasks)
    if boxes and objects is None:
        raise DataexploreError(f"project {pid} holds rectangle tasks: pass the Objects the batch was exported "
                               "from, dx.labeling.pull(project, objects)")
    with contextlib.ExitStack() as stack:
        if save_to is None:
            path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dx-ls-"))) / f"project-{pid}.json"
        else:
            path = Path(save_to).expanduser()
        path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
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
    out, paths = [], []
    for task in tasks:
        url = str(task["data"].get("image", ""))
        if not url.startswith(LOCAL_FILES):
            raise DataexploreError(f"{folder}: task {_key(task)!r} mixes an image URL with local files")
        path = (exported / unquote(url[len(LOCAL_FILES):])).resolve()
        if not path.is_relative_to(root) or path.parent == root:
            raise DataexploreError(f"image {path} is not inside a folder under the document root {root}: start "
                                   f"Label Studio with {ROOT_ENV} set to a folder above the batch's images "
                                   "(and pass it as document_root=)")
        paths.append(str(path))
        out.append({**task, "data": {**task["data"], "image": LOCAL_FILES + quote(path.relative_to(root).as_posix())}})
    return os.path.commonpath([os.path.dirname(p) for p in paths]), out


def _check_served(client: Any, base: str, image: str) -> None:
    """Fetch one image back through the server: local-files serving off, or another document root, shows here."""
    rel = unquote(image[len(LOCAL_FILES):])
    try:  # the SDK's own authenticated HTTP client (access token refreshed as needed)
        answer = client._client_wrapper.httpx_client.request("data/local-files/", method="GET", params={"d": rel})
    except AttributeError:  # another SDK layout: nothing to check with
        return
    if answer.status_code != 200:
        raise DataexploreError(f"Label Studio at {base} does not serve the batch's images (HTTP "
                               f"{answer.status_code} for {rel}): start it with "
                               f"LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and {ROOT_ENV} set to the "
                               "document root the tasks use (pass it as document_root=)")


def _key(task: dict) -> str:
    data = task.get("data") or {}
    return str(data.get("dx_id", data.get("dx_image_id", data.get("image"))))


def _normal(config: Any) -> str:
    return "".join(str(config or "").split())


# ---- the server -----------------------------------------------------------------------------------
@contextlib.contextmanager
def _connect(url: str | None, token: str | None, doing: str) -> Iterator[tuple[Any, str]]:
    """The SDK's client on its own HTTP connection pool (closed afterwards), inside :func:`_server`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from label_studio_sdk import LabelStudio
    except ImportError:
        raise DataexploreError("Label Studio push/pull needs the label-studio-sdk package: "
                               'pip install "dataexplore[labelstudio]"') from None
    import httpx

    url = url or os.environ.get(URL_ENV)
    token = token or os.environ.get(TOKEN_ENV)
    if not url or not token:
        raise DataexploreError(f"which Label Studio? pass url= and token= or set {URL_ENV} and {TOKEN_ENV} "
                               "(a personal access token from Account & Settings)")
    base = url.rstrip("/")
    with httpx.Client(timeout=120, follow_redirects=True) as http, _server(base, doing):
        yield LabelStudio(base_url=base, api_key=token, httpx_client=http), base


@contextlib.contextmanager
def _server(base: str, doing: str) -> Iterator[None]:
    """Turn whatever the server or the network says into one clear line."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        with warnings.catch_warnings():  # the SDK still uses pydantic-1 style APIs; not the user's business
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    except ApiError as exc:
        raise DataexploreError(f"Label Studio at {base} refused the {doing}: {_said(exc)}") from None
    except httpx.HTTPError as exc:
        reason = " ".join(str(exc).split())[:200] or "no answer"
        raise DataexploreError(f"cannot reach Label Studio at {base} for the {doing}: {type(exc).__name__}: "
                               f"{reason} (is the server running?)") from None
    except json.JSONDecodeError:
        raise DataexploreError(f"{base} did not answer the {doing} like a Label Studio server (not JSON): "
                               "check the URL") from None


def _said(exc: Any) -> str:
    body, status = exc.body, exc.status_code
    detail = body
    if isinstance(body, dict):
        detail = body.get("validation_errors") or body.get("detail") or body.get("message") or body
    text = " ".join(json.dumps(detail, ensure_ascii=False)[:300].split()) if not isinstance(detail, str) \
        else " ".join(detail.split())[:300]
    hint = ""
    if status == 401:
        hint = (" (use a personal access token from Account & Settings > Personal Access Token; legacy tokens "
                "work only where the organization enables them)")
    elif "local" in text.lower() and ("root" in text.lower() or "serving" in text.lower()):
        hint = (" (start Label Studio with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and "
                "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT set to a folder above the batch's images)")
    return f"HTTP {status}: {text}{hint}"


def _find(client: Any, project: int | str | None, title: str | None, base: str) -> tuple[int, str] | None:
    """The project ``project`` (an id or title), else the one titled ``title``; None if there is none."""
    if isinstance(project, bool) or (project is not None and not isinstance(project, (int, str))):
        raise DataexploreError(f"project must be an id, a title or what push returned, got {type(project).__name__}")
    if isinstance(project, int) or (isinstance(project, str) and project.isdigit()):
        got = client.projects.get(int(project))
        return int(got.id), str(got.title)
    wanted = project if project is not None else title
    matches = [p for p in client.projects.list(title=wanted) if p.title == wanted]
    if len(matches) > 1:
        raise DataexploreError(f"Label Studio at {base} has {len(matches)} projects titled {wanted!r}: "
                               f"pass project=<id> (one of {sorted(int(p.id) for p in matches)})")
    if not matches and project is not None:
        raise DataexploreError(f"Label Studio at {base} has no project titled {project!r}")
    return (int(matches[0].id), str(matches[0].title)) if matches else None


def _export(client: Any, pid: int) -> list[dict]:
    """Every task of the project with its annotations (Label Studio's JSON export)."""
    raw = b"".join(client.projects.exports.download_sync(pid, export_type="JSON", download_all_tasks=True))
    try:
        tasks = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataexploreError(f"project {pid}'s export is not JSON: {raw[:120]!r}") from None
    if not isinstance(tasks, list):
        raise DataexploreError(f"project {pid}'s export is not a list of tasks")
    return tasks
