"""Calibrate a built-in model's concept thresholds on labelled images and store them with the model.

Run for a built-in model (the training script does this after training)::

    python -m dataexplore.language.calibration fashion-tiny --data fashion-mnist:train

It writes ``concept_calibration`` (per class phrase: the threshold only ``false_match_rate`` of
other-class images reach, and the phrase's AUROC; plus a model-level threshold for other concepts)
into the model's ``metrics.json``; :func:`dataexplore.concepts` and the group descriptions use it
(see :mod:`dataexplore.language.thresholds`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .thresholds import FALSE_MATCH_RATE, _from_labels
from .vocabulary import concept_vectors, text_model, vocabulary
from .words import concept_key


def calibrate_model(model: str, data: str, false_match_rate: float = FALSE_MATCH_RATE) -> dict:
    """The concept calibration of a built-in model on labelled ``data``, as ``metrics.json`` holds it.

    Returns ``{"false_match_rate", "data", "model_level", "concepts": {key: {"threshold", "auroc"}}}``:
    per class phrase, the threshold only ``false_match_rate`` of other-class images reach and the
    AUROC of the phrase's similarity (own class vs the rest); ``model_level`` is their median.

    Examples
    --------
    >>> cal = calibrate_model("fashion-tiny", "fashion-mnist:train")  # doctest: +SKIP
    >>> cal["concepts"]["trouser"]  # doctest: +SKIP
    {'threshold': 0.52, 'auroc': 0.999}
    """
    from ..embedding.local import embed

    emb = embed(data, model, progress=False)
    concepts = vocabulary(None, emb.table["label"], default=False)
    clip = text_model(emb)
    text = concept_vectors(clip, concepts)
    tau, fmr = np.full(len(concepts), np.nan), np.full(len(concepts), np.nan)
    auroc, source = np.full(len(concepts), np.nan), ["uncalibrated"] * len(concepts)
    keys = [concept_key(c) for c in concepts]
    _from_labels(concepts, keys, text, emb.vectors, emb.table["label"], false_match_rate, None, tau, fmr, auroc, source)
    entries = {k: {"threshold": round(float(t), 4), "auroc": round(float(a), 4)}
               for k, t, a in zip(keys, tau, auroc) if not np.isnan(t)}
    return {"false_match_rate": false_match_rate, "data": data,
            "model_level": round(float(np.median([e["threshold"] for e in entries.values()])), 4),
            "concepts": entries}


def main(argv: list[str] | None = None) -> int:
    from ..models import BUILTIN_MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(BUILTIN_MODELS))
    parser.add_argument("--data", default="fashion-mnist:train")
    parser.add_argument("--false-match-rate", type=float, default=FALSE_MATCH_RATE)
    args = parser.parse_args(argv)
    result = calibrate_model(args.model, args.data, args.false_match_rate)
    path = Path(BUILTIN_MODELS[args.model]) / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    metrics.pop("concept_threshold", None)  # the single threshold of versions before 0.2
    metrics["concept_calibration"] = result
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"{args.model}: {len(result['concepts'])} concept thresholds written to {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
