"""Calibrate a built-in model's concept thresholds on labelled images and store them with the model.

Run for a built-in model (the training script does this after training)::

    python -m dataexplore.analysis.calibrate fashion-tiny --data fashion-mnist:train

It writes ``concept_calibration`` (per class phrase: the threshold only ``false_match_rate`` of
other-class images reach, and the phrase's AUROC; plus a model-level threshold for other concepts)
into the model's ``metrics.json``; :func:`dataexplore.concepts` and the group descriptions use it
(see :mod:`dataexplore.analysis.thresholds`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .thresholds import FALSE_MATCH_RATE, calibrate_model


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
