"""One protocol between kernel and browser: the TypeScript definitions (js/src/protocol.ts) and the
Python ones (dataexplore/widget/protocol.py) agree, requests are checked, and a map saved as HTML
answers the same requests as the kernel does (a replay through its LocalModel, in node)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import get_args, get_type_hints

import numpy as np
import pandas as pd
import pytest

import dataexplore as dx
from conftest import browser, recording
from dataexplore.widget import protocol
from dataexplore.widget.share import _payload

JS = Path(__file__).resolve().parent.parent / "js"


def typescript_interfaces() -> dict[str, dict[str, bool]]:
    """``{interface: {field: optional}}`` from protocol.ts."""
    text = (JS / "src" / "protocol.ts").read_text(encoding="utf-8")
    found = {}
    for name, body in re.findall(r"export interface (\w+) \{\n(.*?)\n\}", text, flags=re.S):
        fields = {}
        for line in body.splitlines():
            m = re.match(r"\s*(\w+)(\?)?:", line)
            if m:
                fields[m.group(1)] = bool(m.group(2))
        found[name] = fields
    return found


def typescript_union(name: str) -> list[str]:
    text = (JS / "src" / "protocol.ts").read_text(encoding="utf-8")
    body = re.search(rf"export type {name} = (.*?);", text, flags=re.S).group(1)
    return sorted(t.strip() for t in body.split("|"))


def python_interfaces() -> dict[str, dict[str, bool]]:
    found = {}
    for name in dir(protocol):
        obj = getattr(protocol, name)
        if isinstance(obj, type) and issubclass(obj, dict) and hasattr(obj, "__required_keys__"):
            found[name] = {k: k in obj.__optional_keys__ for k in get_type_hints(obj)}
    return found


def test_typescript_and_python_define_the_same_messages_and_fields():
    ts, py = typescript_interfaces(), python_interfaces()
    assert ts.keys() == py.keys(), \
        f"only in TypeScript: {ts.keys() - py.keys()}, only in Python: {py.keys() - ts.keys()}"
    for name in ts:
        assert ts[name] == py[name], f"{name}: TypeScript {ts[name]} != Python {py[name]}"
    for union in ("Request", "Message"):
        assert typescript_union(union) == sorted(t.__name__ for t in get_args(getattr(protocol, union)))
    text = (JS / "src" / "protocol.ts").read_text(encoding="utf-8")
    for kind, spec in {**protocol.REQUESTS, **protocol.MESSAGES}.items():  # the same `type` tag on both sides
        assert re.search(rf'export interface {spec.__name__} \{{\n  type: "{kind}";', text), spec.__name__


def test_the_agreement_check_sees_a_field_added_on_one_side(monkeypatch):
    real = (JS / "src" / "protocol.ts").read_text(encoding="utf-8")
    changed = real.replace("export interface HoverRequest {\n", "export interface HoverRequest {\n  extra?: number;\n")
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: changed)
    assert typescript_interfaces()["HoverRequest"] != python_interfaces()["HoverRequest"]


@pytest.mark.parametrize("bad, says", [
    ([], "not an object"),
    ({"type": "launch"}, "unknown message type"),
    ({"type": "hover", "id": 3, "row": 1}, "request id"),
    ({"type": "hover", "id": "v:1", "row": -1}, "non-negative"),
    ({"type": "hover", "id": "v:1", "row": True}, "non-negative"),
    ({"type": "select", "id": "v:1", "shape": "star", "op": "replace"}, "shape"),
    ({"type": "select", "id": "v:1", "shape": "lasso", "op": "xor", "polygon": [[0, 0], [1, 0], [0, 1]]}, "operation"),
    ({"type": "select", "id": "v:1", "shape": "lasso", "op": "add", "polygon": [[0, 0], [1, 0]]}, "3 to 400"),
    ({"type": "select", "id": "v:1", "shape": "box", "op": "add", "polygon": [[0, 0], [1, "a"], [0, 1]]}, "numbers"),
    ({"type": "page", "id": "v:1", "page": 1.5}, "bad page"),
    ({"type": "export", "id": "v:1", "name": "x", "what": "query", "overwrite": 1}, "overwrite"),
])
def test_bad_requests_get_one_line_saying_what_is_wrong(bad, says):
    with pytest.raises(ValueError, match=says):
        protocol.parse_request(bad)


def test_messages_outside_the_protocol_are_caught_before_they_leave():
    with pytest.raises(protocol.ProtocolError, match="unknown"):
        protocol.check_outgoing({"type": "tooltip", "reply_to": "v:1", "row": 1, "lines": [], "mime": "x",
                                 "html": "<b>"})
    with pytest.raises(protocol.ProtocolError, match="missing"):
        protocol.check_outgoing({"type": "panel", "total": 1})
    with pytest.raises(protocol.ProtocolError):
        protocol.check_outgoing({"type": "eval"})


# ---- the saved map answers as the kernel does ---------------------------------------------------
def _replay_in_node(ex, requests, tmp_path) -> list[list[dict]]:
    esbuild, node = JS / "node_modules" / ".bin" / "esbuild", shutil.which("node")
    if not esbuild.exists() or node is None:
        pytest.fail("this test runs the widget's LocalModel in node: install node and run `cd js && npm ci` "
                    "(bash .ci/setup does it)")
    bundle = tmp_path / "replay.mjs"
    subprocess.run([str(esbuild), str(JS / "test" / "replay.ts"), "--bundle", "--platform=node", "--format=esm",
                    f"--outfile={bundle}", "--log-level=warning"], check=True)
    raw = _unpack(_payload(ex, False, 64, "replay"))
    head_len = int.from_bytes(raw[:4], "little")
    header = json.loads(raw[4:4 + head_len])
    feed = {"data": header, "xy": ex.xy.ravel().tolist(), "codes": ex.color_codes.tolist(), "requests": requests}
    out = subprocess.run([node, str(bundle)], input=json.dumps(feed), capture_output=True, text=True, check=True,
                         timeout=60)
    return [[{**m["msg"], "_buffers": [base64.b64decode(b) for b in m["buffers"]]} for m in json.loads(line)]
            for line in out.stdout.splitlines()]


def _unpack(payload: str) -> bytes:
    import gzip

    return gzip.decompress(base64.b64decode(payload))


def _answers(messages) -> list:
    """What a view shows from a list of messages: selection rows, the panel page, tooltips, points."""
    shown = []
    for m in messages:
        buffers = m.pop("_buffers")
        if m["type"] == "selection":
            shown.append(("selection", m["total"], np.frombuffer(buffers[0], np.uint32).tolist()))
        elif m["type"] == "panel":
            shown.append(("panel", m["total"], m["page"], m["pages"], m["titles"], m["xy"],
                          sorted(map(tuple, m["counts"])), np.frombuffer(buffers[0], np.uint32).tolist()))
        elif m["type"] == "tooltip":
            shown.append(("tooltip", m["reply_to"], m["row"], m["lines"]))
        elif m["type"] == "points":
            shown.append(("points", m["reply_to"], m["total"], buffers[0], buffers[1]))
        else:
            shown.append((m["type"],))
    return shown


def test_a_map_saved_as_html_answers_every_request_as_the_kernel_does(tmp_path):
    rng = np.random.default_rng(3)
    n = 300
    xy = rng.normal(size=(n, 2)).astype(np.float32)
    labels = pd.Categorical(rng.choice(["coat", "bag", "sandal"], n))
    ex = dx.Explorer(xy, ids=[f"img-{i}" for i in range(n)], table=pd.DataFrame({"label": labels}), color="label")
    t = np.linspace(0, 2 * np.pi, 400, endpoint=False)  # a 400-vertex jagged lasso, the most the browser sends
    lasso = np.c_[np.cos(t), np.sin(t)] * (1 + 0.3 * rng.random((400, 1)))
    requests = [
        {"type": "ready", "id": "v:1"},
        {"type": "select", "id": "v:2", "shape": "lasso", "op": "replace", "polygon": lasso.tolist()},
        {"type": "page", "id": "v:3", "page": 1},
        {"type": "select", "id": "v:4", "shape": "class", "op": "add", "category": 1},
        {"type": "page", "id": "v:5", "page": 99},
        {"type": "select", "id": "v:6", "shape": "point", "op": "subtract", "row": int(ex.selection.indices[0])
         if len(ex.selection) else 7},
        {"type": "select", "id": "v:7", "shape": "box", "op": "subtract",
         "polygon": [[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]},
        {"type": "hover", "id": "v:8", "row": 5},
        {"type": "select", "id": "v:9", "shape": "point", "op": "replace", "row": n},  # out of range: nothing
        {"type": "select", "id": "v:10", "shape": "class", "op": "add", "category": 9},  # no such class: nothing
        {"type": "select", "id": "v:11", "shape": "point", "op": "add", "row": 299},
        {"type": "select", "id": "v:12", "shape": "clear", "op": "replace"},
    ]
    sent = recording(ex)
    kernel = []
    for request in requests:
        sent.clear()
        browser(ex, request)
        kernel.append(_answers([{**c, "_buffers": [bytes(b) for b in bufs]} for c, bufs in sent]))
    saved = [_answers(messages) for messages in _replay_in_node(ex, requests, tmp_path)]
    assert len(saved) == len(requests)
    for request, want, got in zip(requests, kernel, saved):
        assert got == want, f"after {request['type']} {request.get('shape', '')}: the saved map answered differently"
    assert any(len(a) > 1 and a[0][0] == "selection" and a[0][1] > 24 for a in kernel)  # pages were exercised
