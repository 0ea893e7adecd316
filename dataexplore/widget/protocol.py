"""The kernel <-> browser protocol of the Explorer, mirrored from ``js/src/protocol.ts``.

Every message is a JSON object with a ``type``; arrays travel beside it as binary buffers, in
chunks under 10 MB. ``tests/test_protocol.py`` checks that these TypedDicts and the TypeScript
interfaces name the same messages, fields and optional fields, and every message the Explorer
sends in the tests is checked against them (:func:`check_outgoing`).

One correlation mechanism serves every question a view asks: a request carries ``id`` (the view's
own prefix and a counter, ``"k3x9:12"``), and each message that answers it carries
``reply_to`` with that id, so a view takes the answers to its own questions and ignores those
meant for another view of the same widget. Commands that change shared state (``select``,
``page``) are answered by broadcasts (``selection``, ``panel``) that every view applies.

Everything from the browser is untrusted: :func:`parse_request` turns a message into a checked
request or raises :class:`ValueError` with one line saying what is wrong.
"""

import math
from typing import Any, Literal, Union, cast, get_args, get_type_hints

import numpy as np
from typing_extensions import NotRequired, TypedDict  # NotRequired: Python 3.11+; required keys right on 3.10

MAX_POLYGON = 400  # vertices: what the front end sends at most (it simplifies longer lassos)
MAX_ID = 64  # characters of a request id
MAX_BARS = 1000  # bars a chart filter names at most

Mode = Literal["lasso", "box", "pan"]
Op = Literal["replace", "add", "subtract"]
Shape = Literal["lasso", "box", "point", "class", "group", "clear"]


# ---- synced state (traits) ---------------------------------------------------------------------
class ColorInfo(TypedDict):
    kind: Literal["none", "categorical", "numeric"]
    name: NotRequired[str]
    categories: NotRequired[list[str]]
    counts: NotRequired[list[int]]
    min: NotRequired[str]
    max: NotRequired[str]
    no_value: NotRequired[int]
    no_value_code: NotRequired[int]


class WidgetState(TypedDict):
    height: int
    mode: Mode
    color_info: ColorInfo
    exports: list[list[str]]


# ---- browser -> kernel -------------------------------------------------------------------------
class ReadyRequest(TypedDict):
    type: Literal["ready"]
    id: str


class ViewRequest(TypedDict):
    type: Literal["view"]
    id: str
    rect: list[float] | None


class SelectRequest(TypedDict):
    type: Literal["select"]
    id: str
    shape: Shape
    op: Op
    polygon: NotRequired[list[list[float]]]
    row: NotRequired[int]
    category: NotRequired[int]
    group: NotRequired[int]


class HoverRequest(TypedDict):
    type: Literal["hover"]
    id: str
    row: int


class PageRequest(TypedDict):
    type: Literal["page"]
    id: str
    page: int


class ExportRequest(TypedDict):
    type: Literal["export"]
    id: str
    name: str
    what: str
    overwrite: bool


class FilterRequest(TypedDict):
    """Set chart ``chart``'s filter (charts of ``version``): ``bars`` kept, or a value ``range``;
    neither removes it."""
    type: Literal["filter"]
    id: str
    version: int
    chart: int
    bars: NotRequired[list[int]]
    range: NotRequired[list[float]]


Request = Union[ReadyRequest, ViewRequest, SelectRequest, HoverRequest, PageRequest, ExportRequest, FilterRequest]


# ---- kernel -> browser -------------------------------------------------------------------------
class LodMessage(TypedDict):
    """A map drawn as a sample: its size, extent and the density of all points (buffer: uint32 counts)."""
    type: Literal["lod"]
    reply_to: str
    total: int
    bounds: list[float]
    budget: int
    size: int


class PointsMessage(TypedDict):
    """One chunk of points (buffers: float32 xy, uint16 colour codes, and uint32 rows for a sample)."""
    type: Literal["points"]
    offset: int
    count: int
    total: int
    final: bool
    reply_to: NotRequired[str]
    lod: NotRequired[bool]
    n: NotRequired[int]
    rect: NotRequired[list[float] | None]
    inside: NotRequired[int]
    complete: NotRequired[bool]


class DensityMessage(TypedDict):
    """The density of a zoomed view whose points do not all fit (buffer: uint32 counts)."""
    type: Literal["density"]
    reply_to: str
    rect: list[float]
    size: int


class ColorsMessage(TypedDict):
    """New colour codes (buffer: uint16): for all points, or for the points of the sample that
    answered request ``sample`` (a view holding another sample asks for its own)."""
    type: Literal["colors"]
    sample: NotRequired[str]


class SelectionMessage(TypedDict):
    """One chunk of the selection (buffer: uint32 rows, or a bitset over all rows)."""
    type: Literal["selection"]
    offset: int
    count: int
    total: int
    final: bool
    seq: int
    group: int
    format: NotRequired[Literal["rows", "bits"]]
    n: NotRequired[int]
    bytes: NotRequired[int]


class PanelMessage(TypedDict):
    """A page of the selection (buffers: uint32 rows, then one JPEG per row, empty when none)."""
    type: Literal["panel"]
    total: int
    page: int
    pages: int
    counts: list[list[Any]]
    titles: list[str]
    xy: list[list[float]]
    mime: str


class TooltipMessage(TypedDict):
    """What to show on hover (buffer: a JPEG thumbnail, if any)."""
    type: Literal["tooltip"]
    reply_to: str
    row: int
    lines: list[list[str]]
    mime: str


class ExportedMessage(TypedDict):
    type: Literal["exported"]
    reply_to: str
    ok: bool
    what: str
    name: str
    message: str
    exists: bool
    path: NotRequired[str]


class GroupsMessage(TypedDict):
    type: Literal["groups"]
    title: str
    columns: list[str]
    rows: list[list[str]]
    on_map: list[int]
    clear: NotRequired[bool]


class ChartSpec(TypedDict):
    """One chart under the map: bar names (categorical) or bin edges (numeric), rows per bar over
    all rows, and (numeric) the rows without a value."""
    name: str
    kind: Literal["categorical", "numeric"]
    labels: list[str]
    edges: list[float]
    counts: list[int]
    missing: int


class ChartsMessage(TypedDict):
    """The charts under the map (none: no charts); ``version`` changes with each new set."""
    type: Literal["charts"]
    version: int
    charts: list[ChartSpec]


class ChartFilter(TypedDict):
    bars: NotRequired[list[int]]
    range: NotRequired[list[float]]


class ChartCountsMessage(TypedDict):
    """What the charts highlight: per chart, rows per bar (a histogram's last entry: no value) of
    the rows passing the other charts' filters (``mode`` "filter") or of the map's selection
    ("selection"), none ("none"); each chart's filter (``{}``: none); rows selected."""
    type: Literal["chart_counts"]
    version: int
    mode: Literal["filter", "selection", "none"]
    selected: list[list[int]]
    filters: list[ChartFilter]
    total: int


Message = Union[LodMessage, PointsMessage, DensityMessage, ColorsMessage, SelectionMessage, PanelMessage,
                TooltipMessage, ExportedMessage, GroupsMessage, ChartsMessage, ChartCountsMessage]

def _by_type(union: Any) -> dict[str, type]:
    return {get_args(get_type_hints(t)["type"])[0]: t for t in get_args(union)}


REQUESTS: dict[str, type] = _by_type(Request)
MESSAGES: dict[str, type] = _by_type(Message)


# ---- checking --------------------------------------------------------------------------------
def parse_request(content: Any) -> Request:
    """A browser message as a checked request; :class:`ValueError` saying what is wrong otherwise.

    Fields are checked for type and range where the kernel can tell without its state (a row is a
    non-negative int; the Explorer checks it against the map's size)."""
    if not isinstance(content, dict):
        raise ValueError("message is not an object")
    kind = content.get("type")
    if kind not in REQUESTS:
        raise ValueError(f"unknown message type {kind!r}")
    request_id = content.get("id", "")
    if not isinstance(request_id, str) or len(request_id) > MAX_ID:
        raise ValueError("a request id is a short string")
    out: dict[str, Any] = {"type": kind, "id": request_id}
    if kind == "view":
        out["rect"] = None if content.get("rect") is None else rect(content.get("rect"))
    elif kind == "select":
        shape, op = content.get("shape"), content.get("op", "replace")
        if shape not in get_args(Shape):
            raise ValueError(f"unknown selection shape {shape!r}")
        if op not in get_args(Op):
            raise ValueError(f"bad selection operation {op!r}")
        out.update(shape=shape, op="replace" if shape == "clear" else op)
        if shape in ("lasso", "box"):
            out["polygon"] = polygon(content.get("polygon"))
        for field, needed in (("row", "point"), ("category", "class"), ("group", "group")):
            if shape == needed:
                out[field] = index(content.get(field), field)
    elif kind == "hover":
        out["row"] = index(content.get("row"), "row")
    elif kind == "page":
        page = content.get("page")
        if not isinstance(page, int) or isinstance(page, bool):
            raise ValueError(f"bad page {page!r}")
        out["page"] = page
    elif kind == "export":
        name, what, overwrite = content.get("name"), content.get("what"), content.get("overwrite", False)
        if not isinstance(name, str) or not isinstance(what, str) or not isinstance(overwrite, bool):
            raise ValueError("an export needs a name, what to export and overwrite true/false")
        out.update(name=name, what=what, overwrite=overwrite)
    elif kind == "filter":
        out.update(version=index(content.get("version"), "version"), chart=index(content.get("chart"), "chart"))
        bars, span = content.get("bars"), content.get("range")
        if bars is not None and span is not None:
            raise ValueError("a filter keeps bars or a range, not both")
        if bars is not None:
            if not isinstance(bars, list) or len(bars) > MAX_BARS:
                raise ValueError(f"bars is a list of at most {MAX_BARS} bar numbers")
            out["bars"] = [index(b, "bar") for b in bars]
        if span is not None:
            if not isinstance(span, list) or len(span) != 2 or \
                    not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in span):
                raise ValueError("a range is [low, high]")
            lo, hi = float(span[0]), float(span[1])
            if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
                raise ValueError(f"bad range {span!r}")
            out["range"] = [lo, hi]
    return cast(Request, out)


def index(value: Any, what: str = "row") -> int:
    """A non-negative int from the browser."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} {value!r} is not a non-negative integer")
    return value


def rect(value: Any) -> list[float]:
    """A view rectangle ``[x0, y0, x1, y1]`` (finite, x0 <= x1, y0 <= y1)."""
    if not isinstance(value, list) or len(value) != 4 or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ValueError("a view is [x0, y0, x1, y1]")
    x0, y0, x1, y1 = (float(v) for v in value)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 < x0 or y1 < y0:
        raise ValueError(f"bad view {value!r}")
    return [x0, y0, x1, y1]


def polygon(value: Any) -> list[list[float]]:
    """3 to :data:`MAX_POLYGON` finite ``[x, y]`` vertices."""
    if not isinstance(value, list) or not 3 <= len(value) <= MAX_POLYGON:
        raise ValueError(f"a polygon needs 3 to {MAX_POLYGON} [x, y] vertices")
    try:
        poly = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("polygon vertices must be numbers") from None
    if poly.ndim != 2 or poly.shape[1] != 2 or not np.isfinite(poly).all():
        raise ValueError("polygon vertices must be finite [x, y] pairs")
    return poly.tolist()


class ProtocolError(Exception):
    """A message the kernel was about to send is not one the browser knows."""


def check_outgoing(content: Any) -> None:
    """Raise :class:`ProtocolError` if ``content`` is not a message of the protocol (its fields, no others).

    The Explorer calls nothing here on the hot path; the tests check every message it sends."""
    if not isinstance(content, dict) or content.get("type") not in MESSAGES:
        raise ProtocolError(f"not a protocol message: {str(content)[:200]}")
    spec: Any = MESSAGES[content["type"]]
    keys = set(content)
    missing = spec.__required_keys__ - keys
    extra = keys - spec.__required_keys__ - spec.__optional_keys__
    if missing or extra:
        raise ProtocolError(f"{content['type']!r} message: missing {sorted(missing)}, unknown {sorted(extra)}")
