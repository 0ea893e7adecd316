"""A map as one self-contained HTML file: opens from disk without a kernel, lasso included.

:func:`to_html` writes the widget's own bundle and stylesheet inline, with the map's data packed as
one gzip-compressed, base64-encoded binary payload (float32 coordinates, uint16 colour codes, ids
and tooltip columns, optional JPEG thumbnails). In the file, the same widget runs against a local
stand-in for the kernel: pan, zoom, hover, lasso, box, click and legend selection work, and the
viewer can download the selected ids as CSV or JSON. Send it to a colleague; no Python needed.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import DataexploreError

MAX_THUMBNAILS = 50_000


def to_html(explorer: Any, path: str | os.PathLike, *, thumbnails: bool = False, thumbnail_size: int = 64,
            title: str | None = None, overwrite: bool = False) -> Path:
    """Write ``explorer``'s map to ``path`` as one HTML file that works without a kernel.

    Parameters
    ----------
    explorer : Explorer
        The map to share (its points, colours, ids and tooltip columns; not its selection).
    path : path
        The ``.html`` file to write (atomically).
    thumbnails : bool
        Embed a JPEG thumbnail per point for hover and the selection grid (at most 50,000 points;
        about 1-2 KB each).
    thumbnail_size : int
        Longest side of the thumbnails in pixels.
    title : str, optional
        Page title (default: the dataset's name).
    overwrite : bool
        Replace an existing file; without it an existing file is an error.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    DataexploreError
        For a map with more than ``explorer.max_points`` points: the file has no kernel to refine
        a sample as you zoom or to select exactly among all points, so share a subsample instead.

    Examples
    --------
    >>> ex = dx.explore("fashion-mnist:test")  # doctest: +SKIP
    >>> ex.to_html("fashion-map.html", thumbnails=True)  # doctest: +SKIP
    """
    from ..core.io import atomic_write

    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise DataexploreError(f"the file must end in .html, got {path.name}")
    if path.exists() and not overwrite:
        raise DataexploreError(f"{path} exists; pass overwrite=True to replace it")
    n = len(explorer.xy)
    limit = getattr(explorer, "max_points", None)
    if limit is not None and n > limit:  # the file has no kernel to refine a sample or select exactly
        raise DataexploreError(
            f"{n:,} points is more than a map saved as HTML can hold (max_points={limit:,}): the file draws "
            "every point and selects in the browser, with no kernel to send a sample that refines as you "
            "zoom. Share a subsample: keep = np.sort(np.random.default_rng(0).choice(len(ex), 1_000_000, "
            "replace=False)); dx.Explorer(ex.xy[keep], ids=ex.ids[keep], table=ex.table.iloc[keep], "
            "color=...).to_html(path)")
    if thumbnails and n > MAX_THUMBNAILS:
        raise DataexploreError(f"{n:,} points is too many to embed thumbnails (at most {MAX_THUMBNAILS:,}); "
                               "use thumbnails=False")
    title = title or str(explorer.provenance.get("source") or "dataexplore map")
    payload = _payload(explorer, thumbnails, thumbnail_size, title)
    static = Path(__file__).parent / "static"
    page = _PAGE.format(title=html.escape(title), css=(static / "explorer.css").read_text(),
                        bundle=json.dumps((static / "explorer.js").read_text()).replace("</", "<\\/"),
                        payload=payload, n=f"{n:,}")
    return atomic_write(path, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))


def _payload(explorer, thumbnails: bool, size: int, title: str) -> str:
    """``[u32 header length][header JSON][buffers]``, gzip-compressed, base64."""
    n = len(explorer.xy)
    columns = {c: explorer.table[c].astype(str).where(explorer.table[c].notna(), "").tolist()
               for c in explorer.tooltip_fields}
    parts = {"xy": np.ascontiguousarray(explorer.xy, np.float32).tobytes(),
             "codes": np.ascontiguousarray(explorer.color_codes, np.uint16).tobytes()}
    if thumbnails:
        images = [explorer.thumbnail(i, size) for i in range(n)]
        offsets = np.zeros(n + 1, np.uint32)
        offsets[1:] = np.cumsum([len(b) for b in images])
        parts["thumb_offsets"] = offsets.tobytes()
        parts["thumb_bytes"] = b"".join(images)
    buffers, blob, at = {}, [], 0
    for name, data in parts.items():
        pad = (-at) % 4  # typed arrays need aligned offsets
        blob.append(b"\0" * pad)
        at += pad
        buffers[name] = [at, len(data)]
        blob.append(data)
        at += len(data)
    header = json.dumps({"n": n, "height": int(explorer.height), "title": title,
                         "color_info": explorer.color_info, "ids": [str(i) for i in explorer.ids],
                         "columns": columns, "buffers": buffers}).encode()
    header += b" " * ((-len(header)) % 4)
    raw = len(header).to_bytes(4, "little") + header + b"".join(blob)
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="dataexplore">
<title>{title}</title>
<style>
body {{ margin: 16px; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; }}
h1 {{ font-size: 16px; margin: 0 0 8px; }}
.dx-note {{ color: #666; margin-bottom: 8px; }}
{css}
</style>
</head>
<body>
<h1>{title}</h1>
<div class="dx-note">{n} points · drag to lasso (Box and Pan in the toolbar), wheel to zoom, hover for details ·
made with dataexplore; works offline, no kernel needed</div>
<div id="dx-root"></div>
<noscript>This map needs JavaScript.</noscript>
<script type="application/octet-stream" id="dx-payload">{payload}</script>
<script type="module">
const bundle = {bundle};
const url = URL.createObjectURL(new Blob([bundle], {{ type: "text/javascript" }}));
const mod = await import(url);
URL.revokeObjectURL(url);
const root = document.getElementById("dx-root");
try {{
  await mod.standalone(root, document.getElementById("dx-payload").textContent.trim());
}} catch (err) {{
  root.textContent = "dataexplore: this map could not be opened: " + err;
  throw err;
}}
</script>
</body>
</html>
"""
