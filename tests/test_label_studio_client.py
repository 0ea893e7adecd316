"""Label Studio push/pull against answers a real server cannot give (tests/test_label_studio_live.py has the real
one): a server under a sub-path, users hidden from a non-admin, a URL answering JSON that is not Label Studio's,
a login page served instead of an image, bad URLs, and tokens kept to their own server. Every request goes
through httpx's MockTransport, which records it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

import dataexplore as dx
import dataexplore.labeling.live_client as live_client
from dataexplore.core.errors import DataexploreError
from dataexplore.labeling import LiveProject

pytest.importorskip("label_studio_sdk")
jwt = pytest.importorskip("jwt")


def token(kind: str = "refresh", exp: float = 3600) -> str:
    """A personal access token as Label Studio issues them: a JWT refresh token (signed with some key)."""
    claims = {"token_type": kind, "exp": int(time.time() + exp), "user_id": 1}
    return jwt.encode(claims, "server-secret-key-0123456789-abcdefghijkl", algorithm="HS256")


PAT = token()
EXPORT = [{"id": 11, "data": {"dx_id": "a", "image": "/data/local-files/?d=b/images/a.png"},
           "annotations": [{"id": 1, "result": [{"from_name": "label", "to_name": "image", "type": "choices",
                                                 "value": {"choices": ["Shirt"]}}],
                            "completed_by": {"id": 5, "email": "ann@example.com", "first_name": ""},
                            "updated_at": "2026-12-01T10:00:00Z", "was_cancelled": False}]}]


class Recorder:
    """A Label Studio under https://host.example/labelstudio/ that answers only there (an app at the host root
    would get whatever is sent to /api/...)."""

    def __init__(self, *, users_status: int = 403, image: tuple[str, bytes] = ("image/png", b"\x89PNG")):
        self.requests: list[httpx.Request] = []
        self.users_status, self.image = users_status, image

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if not path.startswith("/labelstudio/"):
            return httpx.Response(404, json={"detail": "not here"})
        path = path[len("/labelstudio"):]
        if path == "/api/token/refresh/" and request.method == "POST":
            if json.loads(request.content).get("refresh") != PAT:
                return httpx.Response(401, json={"detail": "Token is invalid or expired", "code": "token_not_valid"})
            return httpx.Response(200, json={"access": token("access", 300)})
        if request.headers.get("authorization", "").split(" ")[-1] == PAT:
            return httpx.Response(401, json={"detail": "refresh token sent as access token"})
        if path == "/api/projects/7/":
            return httpx.Response(200, json={"id": 7, "title": "2026"})
        if path == "/api/projects/" and request.method == "GET":
            first = request.url.params.get("page", "1") == "1"
            return httpx.Response(200, json={"count": 1, "next": None, "previous": None,
                                              "results": [{"id": 7, "title": "2026"}] if first else []})
        if path == "/api/projects/" and request.method == "POST":
            return httpx.Response(201, json={"id": 8, "title": json.loads(request.content)["title"]})
        if path == "/api/projects/8/" and request.method == "DELETE":
            return httpx.Response(204)
        if path == "/api/storages/localfiles/":
            body = json.loads(request.content) if request.method == "POST" else None
            return httpx.Response(201, json={"id": 1, **body}) if body else httpx.Response(200, json=[])
        if path == "/api/projects/7/export":
            return httpx.Response(200, content=json.dumps(EXPORT).encode())
        if path == "/api/users/":
            return httpx.Response(self.users_status, json={"detail": "You do not have permission"})
        if path == "/data/local-files/":
            return httpx.Response(200, headers={"content-type": self.image[0]}, content=self.image[1])
        return httpx.Response(404, json={"detail": f"no {path}"})


@pytest.fixture
def server(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(live_client, "http_client",
                        lambda: httpx.Client(transport=httpx.MockTransport(recorder), follow_redirects=True))
    for key in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    return recorder


URL = "https://host.example/labelstudio"


def test_a_server_under_a_sub_path_gets_every_request_token_refresh_included(server, tmp_path):
    labels = dx.labeling.pull(7, url=URL + "/", token=PAT, save_to=tmp_path / "export.json")
    urls = [str(r.url) for r in server.requests]
    assert urls[0] == URL + "/api/token/refresh/"  # the long-lived token goes to Label Studio, not the host's root
    assert all(u.startswith(URL + "/api/") and "//api" not in u for u in urls), urls
    # listing users is forbidden to this (non-admin) token: the e-mail the export carries names the annotator
    assert labels[["id", "label", "annotator"]].values.tolist() == [["a", "Shirt", "ann@example.com"]]
    assert json.loads((tmp_path / "export.json").read_text()) == EXPORT


def test_a_title_made_of_digits_is_a_title_and_an_int_an_id(server):
    assert dx.labeling.pull("2026", url=URL, token=PAT)["label"].tolist() == ["Shirt"]
    assert any(r.url.path.endswith("/api/projects/") and r.url.params.get("title") == "2026" for r in server.requests)
    with pytest.raises(DataexploreError, match=r"no project titled '7' \(pass the id as an int, 7"):
        dx.labeling.pull("7", url=URL, token=PAT)


def test_save_to_never_replaces_a_file_unless_asked(server, tmp_path):
    kept = tmp_path / "export.json"
    kept.write_text("my notes")
    with pytest.raises(DataexploreError, match="already exists: pass overwrite=True"):
        dx.labeling.pull(7, url=URL, token=PAT, save_to=kept)
    assert kept.read_text() == "my notes" and not server.requests  # refused before asking the server
    dx.labeling.pull(7, url=URL, token=PAT, save_to=kept, overwrite=True)
    assert json.loads(kept.read_text()) == EXPORT
    assert [p.name for p in tmp_path.iterdir()] == ["export.json"]  # no temporary file left beside it


def test_the_environment_token_is_not_sent_to_another_server(server, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", "https://other.example")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", PAT)
    project = LiveProject(url=URL, id=7, title="2026")
    with pytest.raises(DataexploreError, match=r"project 7 is on https://host.example/labelstudio, not on \$LABEL_"
                                               r"STUDIO_URL \(https://other.example\): pass that server's token="):
        dx.labeling.pull(project)
    assert not server.requests
    assert dx.labeling.pull(project, token=PAT)["label"].tolist() == ["Shirt"]
    monkeypatch.setenv("LABEL_STUDIO_URL", URL + "/")  # the same server: its token from the environment is fine
    assert dx.labeling.pull(project)["label"].tolist() == ["Shirt"]


def test_a_url_answering_other_json_or_no_url_at_all_is_one_line_without_the_token(monkeypatch):
    def other_app(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "ok", "items": []})  # JSON, but not Label Studio's

    monkeypatch.setattr(live_client, "http_client",
                        lambda: httpx.Client(transport=httpx.MockTransport(other_app)))
    for url in ("https://api.example/", "http://[::1", "localhost:8080"):
        with pytest.raises(DataexploreError) as err:
            dx.labeling.pull(7, url=url, token=PAT)
        assert "\n" not in str(err.value) and PAT not in str(err.value) and url.rstrip("/") in str(err.value)
        assert ("like a Label Studio server" if "api" in url else "is not a URL Label Studio can be reached at") \
            in str(err.value)


def fake_batch(tmp_path: Path, images: list[str], make: bool = True) -> Path:
    """A batch folder as export_labeling writes it, its tasks pointing at ``images`` (relative to tmp_path)."""
    batch = tmp_path / "root" / "batch"
    batch.mkdir(parents=True)
    (batch / "config.xml").write_text('<View><Image name="image" value="$image"/>'
                                      '<Choices name="label" toName="image"><Choice value="a"/></Choices></View>')
    tasks = [{"data": {"dx_id": str(n), "image": f"/data/local-files/?d={rel}"}} for n, rel in enumerate(images)]
    (batch / "tasks.json").write_text(json.dumps(tasks))
    (batch / "manifest.csv").write_text(f"id,image,file_name\n0,{tmp_path / 'root' / images[0]},{images[0]}\n")
    for rel in images if make else ():
        (tmp_path / "root" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "root" / rel).write_bytes(b"\x89PNG")
    return batch


def test_missing_images_and_a_storage_wider_than_the_images_are_refused_before_sending(server, tmp_path):
    root = tmp_path / "root"
    batch = fake_batch(tmp_path, ["batch/images/0.png", "batch/images/1.png", "batch/images/2.png"])
    (root / "batch/images/1.png").unlink()
    (root / "batch/images/2.png").unlink()
    with pytest.raises(DataexploreError, match=rf"2 of the batch's 3 images are missing \(first: {root}/batch/im"):
        dx.labeling.push(batch, url=URL, token=PAT, document_root=root)
    # a crafted tasks.json reaching for another folder would make the storage serve their whole common parent
    crafted = fake_batch(tmp_path / "2", ["batch/images/0.png", "private/notes/secret.png"])
    with pytest.raises(DataexploreError, match=r"unrelated folders .* would serve all of .*/2/root: copy the images"):
        dx.labeling.push(crafted, url=URL, token=PAT, document_root=tmp_path / "2" / "root")
    assert not server.requests


def test_class_folders_share_one_storage_and_a_login_page_is_not_an_image(server, tmp_path):
    root = tmp_path / "root"
    batch = fake_batch(tmp_path, ["data/train/cat/0.png", "data/train/dog/1.png"])
    server.image = ("text/html; charset=utf-8", b"<html>Log in</html>")
    with pytest.raises(DataexploreError, match=r"does not serve the batch's images \(HTTP 200, text/html for "
                                               r"data/train/cat/0.png\)"):
        dx.labeling.push(batch, url=URL, token=PAT, document_root=root)
    served = [r for r in server.requests if r.url.path.endswith("/data/local-files/")]
    assert len(served) == 1 and served[0].headers["authorization"].startswith("Bearer ")
    assert served[0].headers["authorization"] != f"Bearer {PAT}"  # an access token, as the SDK sends
    storage = [json.loads(r.content) for r in server.requests if "/storages/localfiles" in r.url.path
               and r.method == "POST"]
    assert [s["path"] for s in storage] == [str(root / "data" / "train")]
