"""Calibrate a model's concept-match threshold on labelled images and store it with the model.

Run for a built-in model (the training script does this after training)::

    python -m dataexplore.analysis.calibrate fashion-tiny --data fashion-mnist:train

It writes ``concept_threshold`` (value, false-match rate, data) into the model's ``metrics.json``;
:func:`dataexplore.concepts` then uses it for ``threshold="auto"``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .concept_coverage import calibrate_threshold
from .vocabulary import concept_vectors, text_model, vocabulary


def calibrate_model(model: str, data: str, false_match_rate: float = 0.05) -> dict:
    """Embed labelled ``data`` with ``model`` and return ``{"value", "false_match_rate", "data"}``."""
    from ..engine import embed

    emb = embed(data, model)
    concepts = vocabulary(None, emb.table["label"], default=False)
    text = concept_vectors(text_model(emb), concepts)
    value = calibrate_threshold(emb.vectors, emb.table["label"], text, concepts, false_match_rate)
    return {"value": round(value, 4), "false_match_rate": false_match_rate, "data": data}


def main(argv: list[str] | None = None) -> int:
    from ..models import BUILTIN_MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(BUILTIN_MODELS))
    parser.add_argument("--data", default="fashion-mnist:train")
    parser.add_argument("--false-match-rate", type=float, default=0.05)
    args = parser.parse_args(argv)
    result = calibrate_model(args.model, args.data, args.false_match_rate)
    path = Path(BUILTIN_MODELS[args.model]) / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    metrics["concept_threshold"] = result
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"{args.model}: concept threshold {result['value']} written to {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
