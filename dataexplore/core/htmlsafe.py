"""HTML that can hold untrusted text: every fragment the package renders goes through here.

Names, labels, descriptions and ids come from files, browsers and users (a shared query folder, a
label file, a column of someone's table), so none of them may reach a notebook page as markup:
``<img src=x onerror=...>`` in a query name must show as text, not run. Notebook ``_repr_html_``
output and plotly chart labels are built with these helpers, and a test renders each result with
hostile strings and checks that no tag survives.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd


def escape(value: Any) -> str:
    """``str(value)`` with ``& < > " '`` escaped: safe as HTML text and inside quoted attributes.

    Examples
    --------
    >>> escape('<img src=x onerror="alert(1)">')
    '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;'
    """
    return html.escape(str(value), quote=True)


def frame_html(frame: pd.DataFrame, *, caption: Any = None, max_rows: int | None = 30) -> str:
    """A DataFrame as an HTML table whose cells, column names and caption are all escaped text.

    Examples
    --------
    >>> out = frame_html(pd.DataFrame({"<b>": ["<script>x</script>"]}))
    >>> "<script>" in out or "<b>" in out
    False
    """
    safe = frame.copy()
    safe.columns = [str(c) for c in safe.columns]
    table = safe.to_html(index=False, escape=True, max_rows=max_rows, na_rep="")
    head = f"<p>{escape(caption)}</p>" if caption is not None else ""
    return head + table


def plot_text(value: Any) -> str:
    """Text for a plotly label, tick or hover field: plotly renders a subset of HTML tags in
    labels (``<a>``, ``<b>``, ``<br>``, ...), so ``& < >`` are escaped; plotly shows those entities
    as the characters they stand for (quotes stay as they are: plotly would show ``&quot;``).

    Examples
    --------
    >>> plot_text('<b>"bold"</b>')
    '&lt;b&gt;"bold"&lt;/b&gt;'
    """
    return html.escape(str(value), quote=False)
