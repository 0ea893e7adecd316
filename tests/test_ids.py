"""One id index: ids become rows in one place, and an unknown id never becomes row -1."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from dataexplore.core.errors import DataexploreError
from dataexplore.core.ids import locate, rows_of
from dataexplore.core.selection import RowIds


def test_rows_come_back_in_the_order_asked_and_unknown_ids_raise_or_drop_on_purpose():
    index = np.array(["a", "b", "c"], dtype=object)
    assert rows_of(index, ["c", "a"]).tolist() == [2, 0]
    assert rows_of(index, (i for i in ["b", "zz", "a"]), missing="drop").tolist() == [1, 0]  # a generator, read once
    with pytest.raises(DataexploreError, match=r"sample id 'zz' is not among these samples \(2 unknown ids in all\)"):
        rows_of(index, (i for i in ["zz", "a", "yy"]))
    with pytest.raises(DataexploreError, match="missing must be"):
        rows_of(index, ["a"], missing="ignore")


def test_ids_compare_as_text_and_a_map_without_ids_uses_its_row_numbers():
    assert rows_of([1, 2, 3], ["3", 1]).tolist() == [2, 0]
    rows, found = locate(RowIds(10), ["7", "10", "03", "0"])
    assert rows.tolist() == [7, 0] and found.tolist() == [True, False, False, True]


def test_no_module_turns_ids_into_rows_on_its_own():
    """Every id->row lookup goes through dataexplore.core.ids, so none can let -1 pick the last row."""
    root = Path(__file__).resolve().parent.parent / "dataexplore"
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "ids.py" and re.search(r"\.get_indexer\(", p.read_text())]
    assert offenders == []
