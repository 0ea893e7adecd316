"""Queries: a selection saved as a reusable artefact that finds more such images in any pool.

::

    q = ex.selection.to_query("trousers")          # or dx.Query.from_text("a photo of a sandal")
    q.save("trousers.dxq")                          # JSON + ids + arrays, diffable
    res = q.search("fashion-mnist:train", top=100)  # ranked candidates, estimated precision
    res.to_csv("candidates.csv")

or from the command line: ``dataexplore query run trousers.dxq --pool SOURCE --top 100 --out c.csv``.
"""

from .artefact import Query, load_query, make_query
from .search import SearchResult, search

__all__ = ["Query", "SearchResult", "load_query", "make_query", "search"]
