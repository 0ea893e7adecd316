"""Talking to a Label Studio server for :mod:`.live`: the SDK's client, our own authenticated requests, and
every failure turned into one :class:`~dataexplore.core.errors.DataexploreError` naming the server.

The token never appears in an error: only the server's URL and what it answered.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import unquote, urljoin, urlsplit

from ..core.errors import DataexploreError

URL_ENV, TOKEN_ENV = "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"
ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
LOCAL_FILES = "/data/local-files/?d="
SERVING_HINT = (" (start Label Studio with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and "
                f"{ROOT_ENV} set to a folder above the batch's images)")


def http_client() -> Any:
    """The HTTP connection pool of one push or pull (tests swap in a mock transport here)."""
    import httpx

    return httpx.Client(timeout=120, follow_redirects=True)


@dataclass
class Server:
    """One connection to a server: the SDK's client, our HTTP pool, and the token (for :meth:`auth`)."""

    client: Any
    base: str  # the URL as shown to the user, no trailing slash
    http: Any
    token: str = field(repr=False)

    @property
    def root(self) -> str:
        """The base URL ending in "/", so that relative paths join *under* a sub-path (https://host/ls/)."""
        return self.base + "/"

    def auth(self) -> str:
        """The ``Authorization`` header the SDK sends: a fresh access token for a personal access token
        (a JWT refresh token), the token itself for a legacy token."""
        import jwt

        try:
            jwt.decode(self.token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return f"Token {self.token}"
        answer = self.http.post(urljoin(self.root, "api/token/refresh/"), json={"refresh": self.token})
        access = _json(answer).get("access") if answer.status_code == 200 else None
        if not isinstance(access, str):
            raise DataexploreError(f"Label Studio at {self.base} refused the access token (HTTP {answer.status_code}): "
                                   "use a personal access token from Account & Settings > Personal Access Token")
        return f"Bearer {access}"


def _json(answer: Any) -> dict:
    try:
        out = answer.json()
    except (ValueError, UnicodeDecodeError):
        return {}
    return out if isinstance(out, dict) else {}


def resolve(url: str | None, token: str | None) -> tuple[str, str]:
    """The server's URL (no trailing slash) and the token, from the arguments or the environment."""
    url = url or os.environ.get(URL_ENV)
    token = token or os.environ.get(TOKEN_ENV)
    if not url or not token:
        raise DataexploreError(f"which Label Studio? pass url= and token= or set {URL_ENV} and {TOKEN_ENV} "
                               "(a personal access token from Account & Settings)")
    import httpx

    base = url.strip().rstrip("/")
    try:
        parsed = httpx.URL(base)
        urlsplit(base)
    except (httpx.InvalidURL, ValueError) as exc:
        raise DataexploreError(f"{base!r} is not a URL Label Studio can be reached at ({exc}): "
                               "pass url='http://host:port'") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DataexploreError(f"{base!r} is not a URL Label Studio can be reached at (no http:// or https:// "
                               "and host): pass url='http://host:port'")
    return base, token


@contextlib.contextmanager
def connect(url: str | None, token: str | None, doing: str) -> Iterator[Server]:
    """The SDK's client on its own HTTP connection pool (closed afterwards), inside :func:`server_errors`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from label_studio_sdk import LabelStudio
    except ImportError:
        raise DataexploreError("Label Studio push/pull needs the label-studio-sdk package: "
                               'pip install "dataexplore[labelstudio]"') from None
    base, token = resolve(url, token)
    with server_errors(base, doing), http_client() as http:
        # the SDK joins normal calls by concatenation but refreshes the access token with urljoin(base_url,
        # "api/token/refresh/"): without the trailing "/", https://host/ls would refresh at https://host/api/...
        yield Server(LabelStudio(base_url=base + "/", api_key=token, httpx_client=http), base, http, token)


@contextlib.contextmanager
def server_errors(base: str, doing: str) -> Iterator[None]:
    """Turn whatever the server or the network says into one clear line."""
    import httpx
    import pydantic
    from label_studio_sdk.core.api_error import ApiError

    not_ls = f"{base} did not answer the {doing} like a Label Studio server"
    try:
        with warnings.catch_warnings():  # the SDK still uses pydantic-1 style APIs; not the user's business
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    except ApiError as exc:
        raise DataexploreError(f"Label Studio at {base} refused the {doing}: {said(exc)}") from None
    except httpx.InvalidURL as exc:
        raise DataexploreError(f"{base!r} is not a URL Label Studio can be reached at ({exc}): "
                               "pass url='http://host:port'") from None
    except httpx.HTTPError as exc:
        reason = " ".join(str(exc).split())[:200] or "no answer"
        raise DataexploreError(f"cannot reach Label Studio at {base} for the {doing}: {type(exc).__name__}: "
                               f"{reason} (is the server running?)") from None
    except json.JSONDecodeError:
        raise DataexploreError(f"{not_ls} (not JSON): check the URL") from None
    except pydantic.ValidationError:
        raise DataexploreError(f"{not_ls} (JSON without the fields Label Studio sends): check the URL") from None


def said(exc: Any) -> str:
    """What the server said in an :class:`ApiError`, on one line, with what to do for the usual cases."""
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
        hint = SERVING_HINT
    return f"HTTP {status}: {text}{hint}"


def check_served(server: Server, image: str) -> None:
    """Fetch one image back through the server, as the annotator's browser does: local-files serving off,
    another document root, or a login page instead of the file shows here."""
    rel = unquote(image[len(LOCAL_FILES):])
    answer = server.http.get(urljoin(server.root, "data/local-files/"), params={"d": rel},
                             headers={"Authorization": server.auth()})
    kind = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    if answer.status_code != 200 or not kind.startswith("image/"):
        got = f"HTTP {answer.status_code}" + (f", {kind or 'no content type'}" if answer.status_code == 200 else "")
        raise DataexploreError(f"Label Studio at {server.base} does not serve the batch's images ({got} for {rel}): "
                               f"start it with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and {ROOT_ENV} set to "
                               "the document root the tasks use (pass it as document_root=)")


def find(client: Any, project: int | str | None, title: str | None, base: str) -> tuple[int, str] | None:
    """The project ``project`` (an int is an id, a str always a title), else the one titled ``title``;
    None if there is none."""
    if isinstance(project, bool) or (project is not None and not isinstance(project, (int, str))):
        raise DataexploreError(f"project must be an id, a title or what push returned, got {type(project).__name__}")
    if isinstance(project, int):
        got = client.projects.get(project)
        return int(got.id), str(got.title)
    wanted = project if project is not None else title
    matches = [p for p in client.projects.list(title=wanted) if p.title == wanted]
    if len(matches) > 1:
        raise DataexploreError(f"Label Studio at {base} has {len(matches)} projects titled {wanted!r}: "
                               f"pass project=<id> (one of {sorted(int(p.id) for p in matches)})")
    if not matches and project is not None:
        hint = f" (pass the id as an int, {int(project)}, for project #{int(project)})" if project.isdigit() else ""
        raise DataexploreError(f"Label Studio at {base} has no project titled {project!r}{hint}")
    return (int(matches[0].id), str(matches[0].title)) if matches else None


def export(client: Any, pid: int) -> list[dict]:
    """Every task of the project with its annotations (Label Studio's JSON export)."""
    raw = b"".join(client.projects.exports.download_sync(pid, export_type="JSON", download_all_tasks=True))
    try:
        tasks = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataexploreError(f"project {pid}'s export is not JSON: {raw[:120]!r}") from None
    if not isinstance(tasks, list):
        raise DataexploreError(f"project {pid}'s export is not a list of tasks")
    return tasks


def name_annotators(client: Any, tasks: list[dict]) -> None:
    """Give each annotation's ``completed_by`` the annotator's e-mail. Listing users needs rights a
    non-admin may lack: then the e-mail the export itself carries (``completed_by`` as an object) is kept."""
    from label_studio_sdk.core.api_error import ApiError

    try:
        users = {int(u.id): str(u.email or u.username or u.id) for u in client.users.list()}
    except ApiError as exc:
        if exc.status_code not in (401, 403):
            raise
        users = {}
    for task in tasks:
        for ann in task.get("annotations") or []:
            who = ann.get("completed_by")
            if isinstance(who, int) and who in users:
                ann["completed_by"] = {"id": who, "email": users[who]}
            elif isinstance(who, dict) and isinstance(who.get("id"), int) and who["id"] in users \
                    and not who.get("email"):
                ann["completed_by"] = {**who, "email": users[who["id"]]}
