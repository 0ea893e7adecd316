"""What every analysis returns: ranked groups of samples, each a click away from a selection.

Coverage regions, failure slices and clusters are all "groups": a table with one row per group
(name, description, count and the analysis' own measures) and the member samples of each. The map
widget reads them through :meth:`GroupResult.groups`, :meth:`GroupResult.group_ids` and
:meth:`GroupResult.map_values`; this module never imports the widget.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..core.errors import DataexploreError
from ..core.ids import rows_of
from ..core.selection import Selection, as_selection


def wilson(successes: np.ndarray | int, n: np.ndarray | int, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (95 % by default) for a binomial rate; ``(low, high)`` arrays.

    Examples
    --------
    >>> low, high = wilson(30, 100)
    >>> round(float(low), 3), round(float(high), 3)
    (0.219, 0.396)
    """
    s = np.asarray(successes, np.float64)
    n = np.asarray(n, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, s / np.maximum(n, 1), 0.0)
        denom = 1 + z * z / np.maximum(n, 1)
        centre = (p + z * z / (2 * np.maximum(n, 1))) / denom
        half = z * np.sqrt(p * (1 - p) / np.maximum(n, 1) + z * z / (4 * np.maximum(n, 1) ** 2)) / denom
    low = np.where(n > 0, np.clip(centre - half, 0, 1), 0.0)
    high = np.where(n > 0, np.clip(centre + half, 0, 1), 1.0)
    return low, high


def members_of(labels: np.ndarray) -> list[np.ndarray]:
    """Positions of each label value >= 0 (in increasing value order), in O(N log N)."""
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    values, starts = np.unique(labels[order], return_index=True)
    parts = np.split(order, starts[1:])
    return [p.astype(np.int64) for v, p in zip(values, parts) if v >= 0]


def top_labels(labels: pd.Series | None, members: np.ndarray, n: int = 3) -> str:
    """``"Sandal 92%, Sneaker 5%"``: the most common labels among ``members``."""
    if labels is None or not len(members):
        return ""
    counts = labels.iloc[members].astype(str).value_counts()
    return ", ".join(f"{k} {v / len(members):.0%}" for k, v in counts.head(n).items())


class GroupResult:
    """Ranked groups of samples found by an analysis.

    Attributes
    ----------
    title : str
        What the groups are ("Coverage gaps", "Failure slices", "Clusters").
    ids : numpy.ndarray
        The analysed sample ids (object array of str).
    table : pandas.DataFrame
        One row per group, best first: ``name``, ``description``, ``count`` and measures.
    members : list of numpy.ndarray
        Positions into ``ids`` of each group's samples.
    """

    title = "Groups"

    def __init__(self, ids: np.ndarray, table: pd.DataFrame, members: list[np.ndarray], sources: Any = ()):
        self.ids = np.asarray(ids, dtype=object)
        self.table = table.reset_index(drop=True)
        self.members = [np.asarray(m, np.int64) for m in members]
        if len(self.table) != len(self.members):
            raise DataexploreError("a group table needs one member list per row")
        self._sources = [e for e in sources if e is not None]  # for exemplar images and selections

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        head = self.table.drop(columns=["exemplars"], errors="ignore").head(8).to_string(index=False)
        return f"<{type(self).__name__}: {len(self)} groups of {len(self.ids)} samples>\n{head}"

    def _repr_html_(self) -> str:
        from ..core.htmlsafe import frame_html

        return frame_html(self.groups(), caption=f"{self.title}: {len(self)} groups of {len(self.ids)} samples")

    def groups(self) -> pd.DataFrame:
        """The group table (a copy), one row per group, best first."""
        return self.table.copy()

    def group_ids(self, k: int | str) -> np.ndarray:
        """Sample ids in group ``k`` (its row number or its ``name``)."""
        return self.ids[self.members[self._position(k)]]

    def map_values(self) -> pd.Series:
        """A value per analysed sample for colouring a map (indexed by id)."""
        raise NotImplementedError

    def exemplars(self, k: int | str, size: int = 96):
        """The group's exemplar images (its most central members) side by side, as one PIL image.

        Examples
        --------
        >>> fs = dx.failures(emb, correct=ok)  # doctest: +SKIP
        >>> fs.exemplars(0)  # shows in the notebook  # doctest: +SKIP
        """
        from PIL import Image, ImageOps

        from ..core.images import decode

        pos = self._position(k)
        ids = list(self.table["exemplars"].iloc[pos]) if "exemplars" in self.table.columns else []
        where: dict[str, tuple] = {}
        for emb in self._sources:
            if getattr(emb, "samples", None) is None:
                continue
            rows = dict(zip(emb.ids, emb.rows))
            for i in ids:
                if i in rows and i not in where:
                    where[i] = (emb.samples, int(rows[i]))
        found = [where[i] for i in ids if i in where]
        if not found:
            raise DataexploreError("no exemplar images: these embeddings do not say where their images are")
        sheet = Image.new("RGB", (size * len(found) + 4 * (len(found) - 1), size), "white")
        for j, (samples, row) in enumerate(found):
            img = ImageOps.contain(decode(samples.read(row), draft_size=size), (size, size), Image.Resampling.BICUBIC)
            sheet.paste(img, (j * (size + 4) + (size - img.width) // 2, (size - img.height) // 2))
        return sheet

    def selection(self, k: int | str, on: Any = None) -> Selection:
        """Group ``k`` as a :class:`~dataexplore.Selection`.

        Parameters
        ----------
        k : int or str
            Row number in :meth:`groups` or the group's name.
        on : Explorer or sequence of str, optional
            The map whose rows the selection indexes (an Explorer or its ids). By default the
            indices are positions in :attr:`ids`.
        """
        pos = self._position(k)
        members = self.members[pos]
        provenance = {"analysis": self.title, "group": str(self.table["name"].iloc[pos])}
        if on is None:  # positions in `ids`: the analysed embeddings, when they are whole, come along
            return as_selection(self.ids, members, shape="group", provenance=provenance,
                                embeddings=self._analysed_embeddings())
        map_ids = np.asarray(getattr(on, "ids", on), dtype=object)
        rows = rows_of(map_ids, self.ids[members], missing="drop")
        provenance.update(getattr(on, "provenance", {}) or {})
        return as_selection(map_ids, rows, shape="group", provenance=provenance,
                            embeddings=getattr(on, "embeddings", None))

    def _analysed_embeddings(self):
        """The Embeddings whose ids are exactly :attr:`ids` (so a selection can become a query)."""
        from ..core.embeddings import Embeddings

        for emb in self._sources:
            if isinstance(emb, Embeddings) and len(emb) == len(self.ids) and np.array_equal(emb.ids, self.ids):
                return emb
        if len(self._sources) > 1 and all(isinstance(e, Embeddings) for e in self._sources):
            both = Embeddings.concat(self._sources) if len({e.model.get("weights") for e in self._sources}) == 1 \
                else None
            if both is not None and np.array_equal(both.ids, self.ids):
                return both
        return getattr(self, "embeddings", None)

    def _position(self, k: int | str) -> int:
        if isinstance(k, str):
            hits = np.flatnonzero(self.table["name"].astype(str).to_numpy() == k)
            if not len(hits):
                raise DataexploreError(f"no group named {k!r}; names: {self.table['name'].tolist()}")
            return int(hits[0])
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool) and -len(self) <= k < len(self):
            return int(k) % len(self)
        raise DataexploreError(f"group {k!r} out of range: there are {len(self)} groups")
