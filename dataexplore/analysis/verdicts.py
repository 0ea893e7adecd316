"""Why a failure slice fails: does the training data cover it?

A slice the training data hardly covers fails because the model never saw such images: collecting
more of them is what helps (the slice's query finds them in a pool). A slice the training data
covers well fails for another reason: the model confuses these images with look-alikes, or their
labels disagree; more of the same data is unlikely to help, and what does is labelling the pool
images nearest the slice on which the model is least certain.

The measure is the count score of :func:`~dataexplore.analysis.gaps.under_coverage` (0: as many
training neighbours as expected, 1: none), restricted to each slice's samples; its median decides.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Median count score from which a slice counts as under-covered by the training data.
UNDER_COVERED = 0.5

COLLECT = "under-covered in training: collect more such images"
CONFUSED = ("covered in training: more of the same data is unlikely to help; the model confuses these "
            "or their labels disagree")
ACTION_COLLECT = "search a pool with this slice's query and label what it finds (fs.recommend)"
ACTION_CONFUSED = ("label the pool images nearest this slice on which the model is least certain "
                   "(fs.recommend with the model's pool probabilities)")


def slice_verdicts(reference, evaluated, slices: list[np.ndarray], *, random_state: int = 0) -> pd.DataFrame:
    """``coverage``, ``verdict`` and ``action`` per slice (rows aligned to ``slices``).

    Examples
    --------
    >>> t = slice_verdicts(train, test, fs.members)  # doctest: +SKIP
    >>> t["verdict"].str.split(":").str[0].tolist()  # doctest: +SKIP
    ['under-covered in training', 'covered in training']
    """
    from .gaps import under_coverage

    n_ref, n_tgt = len(reference), len(evaluated)
    small = min(n_ref, n_tgt) / (n_ref + n_tgt - 1)
    k = int(np.clip(np.ceil(10 / small), 15, 100))
    rows = np.unique(np.concatenate(slices)) if slices else np.zeros(0, np.int64)
    coverage = []
    if len(rows):
        scored = under_coverage(reference.vectors, evaluated.vectors, k=min(k, n_ref + n_tgt - 2), rows=rows,
                                random_state=random_state, global_view=False)
        where = pd.Series(np.arange(len(rows)), index=rows)
        coverage = [float(np.median(scored["count"][where[s].to_numpy()])) for s in slices]
    under = np.asarray(coverage, float) >= UNDER_COVERED
    return pd.DataFrame({"coverage": np.round(coverage, 3),
                         "verdict": np.where(under, COLLECT, CONFUSED) if len(coverage) else [],
                         "action": np.where(under, ACTION_COLLECT, ACTION_CONFUSED) if len(coverage) else []})
