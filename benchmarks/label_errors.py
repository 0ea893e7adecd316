"""Label-error candidates: planted label noise in real Fashion-MNIST, against cleanlab and FiftyOne.

What is planted. Per seed, 10,000 images drawn from the Fashion-MNIST train split (another draw per
seed) keep their real labels, except for a planted share (5 %, 10 %, 20 % of all samples) whose
label is flipped:

- ``uniform``: a random sample gets a random other class;
- ``lookalike``: class-conditional flips between look-alike classes (``planted.PAIRS``: t-shirt/
  shirt, pullover/coat, sandal/sneaker, coat/shirt, pullover/shirt, sneaker/ankle boot): a random
  sample of the seven classes in those pairs gets one of its look-alikes. The rate is still the
  share of *all* samples, so at 20 % about 29 % of those seven classes is flipped; this is the hard
  case, where the flips look like the natural confusions of the data.

Where. Two or three embedding spaces of the same images (``analysis.spaces``): ``fashion-tiny`` (the
shipped CLIP), ``pixels`` (PCA-50 of the raw pixels, L2-normalised) and, when its model is in the
cache or ``--second-clip`` is given, ``fashion-tiny-seed1`` (a second CLIP trained with another seed).

Who, in the same process on the same vectors and labels:

- ``dataexplore``: :func:`dataexplore.analysis.label_errors.label_errors` with its defaults (probe:
  5-fold logistic regression; flagged: as many as the expected number of wrong labels);
- ``cleanlab``: ``cleanlab.filter.find_label_issues`` (its default, prune by noise rate) on
  out-of-fold probabilities of the same probe, ``sklearn.model_selection.cross_val_predict`` of
  ``LogisticRegression(C=1, max_iter=1000)`` over 5 stratified folds; its ranking is
  ``cleanlab.rank.get_label_quality_scores`` (self-confidence, its default) on the same probabilities;
- ``datalab``: cleanlab's ``Datalab.find_issues(features=..., issue_types={"label": {}})`` (its own
  kNN probabilities from the features);
- ``fiftyone``: FiftyOne Brain's ``compute_mistakenness`` with the probe's predictions and
  confidences (on the first ``--fiftyone-seeds`` seeds: it needs a database round trip per case).

Measures, against the planted flips (n of them): precision@n of the ranking, AUROC of the score,
and precision, recall and F1 of the flagged set (cleanlab, Datalab and dataexplore flag; FiftyOne
only ranks), plus how often the suggested label of a flagged flip is its true class. For reference,
``oracle`` ranks by the same probe trained on the *true* labels (1 - its probability of the given
label): about as well as any score from this probe and these features can rank.

Tuning. ``PROBE_WEIGHT`` and ``SMOOTHING`` (``dataexplore/analysis/label_noise.py``), ``NEIGHBOURS``
and the flagging rule (``label_errors.py``) were chosen on seeds 100 and 101 of this same planting
(``--seeds 100,101``), never on the reported seeds 0, 1, 2; cleanlab and its probe were not tuned
(a larger ``C`` for the probe, tried on the tuning seeds, helped neither tool).

Needs ``cleanlab[datalab]`` (Datalab imports Hugging Face ``datasets``) and ``fiftyone``.

Run::

    .venv/bin/python benchmarks/label_errors.py                 # the full grid, about 10 minutes on 2 cores
    .venv/bin/python benchmarks/label_errors.py --quick         # one seed, two spaces
    .venv/bin/python benchmarks/label_errors.py --second-clip   # also the second CLIP (trains once)
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # small BLAS calls: one thread
    os.environ.setdefault(_var, "1")  # each is fastest; the same for every tool

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

import planted  # noqa: E402  (benchmarks/planted.py)

N = 10_000
RATES = (0.05, 0.1, 0.2)
KINDS = ("uniform", "lookalike")
CLASSES = 10
PARTNERS = {c: sorted({b for a, b in planted.PAIRS if a == c} | {a for a, b in planted.PAIRS if b == c})
            for c in range(CLASSES)}


def plant(y: np.ndarray, rate: float, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Noisy label ids and the mask of flipped samples (``rate`` of all samples)."""
    noisy = y.copy()
    pool = np.arange(len(y)) if kind == "uniform" else np.flatnonzero([len(PARTNERS[c]) > 0 for c in y])
    flipped = rng.choice(pool, int(round(rate * len(y))), replace=False)
    for i in flipped:
        choices = [c for c in range(CLASSES) if c != y[i]] if kind == "uniform" else PARTNERS[int(y[i])]
        noisy[i] = rng.choice(choices)
    mask = np.zeros(len(y), bool)
    mask[flipped] = True
    return noisy, mask


def measure(score: np.ndarray, truth: np.ndarray, flagged: np.ndarray | None = None,
            suggested: np.ndarray | None = None, true_labels: np.ndarray | None = None) -> dict:
    from sklearn.metrics import roc_auc_score

    n = int(truth.sum())
    order = np.argsort(-score, kind="stable")
    out = {"p_at_n": float(truth[order[:n]].mean()), "auroc": float(roc_auc_score(truth, score))}
    if flagged is not None:
        hits = int(truth[flagged].sum())
        p, r = hits / max(len(flagged), 1), hits / n
        out.update(precision=p, recall=r, f1=2 * p * r / max(p + r, 1e-12), flagged=len(flagged) / n)
        if suggested is not None and true_labels is not None:
            right = flagged[truth[flagged]]
            out["suggestion_accuracy"] = float((suggested[right] == true_labels[right]).mean()) if len(right) else 0.0
    return out


def probe(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """The fair probe for cleanlab: out-of-fold logistic-regression probabilities."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return cross_val_predict(LogisticRegression(C=1.0, max_iter=1000), x, y, method="predict_proba",
                                 cv=StratifiedKFold(5, shuffle=True, random_state=seed))


class FiftyOneRunner:
    """One FiftyOne dataset per draw of samples, in a database of its own; labels are reset per case."""

    def __init__(self):
        os.environ["FIFTYONE_DATABASE_DIR"] = tempfile.mkdtemp(prefix="fo-label-errors-")
        os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
        os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
        os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
        import fiftyone
        import fiftyone.brain

        self.fo, self.fob, self.datasets = fiftyone, fiftyone.brain, {}

    def mistakenness(self, ids: np.ndarray, noisy: np.ndarray, probs: np.ndarray) -> np.ndarray:
        fo = self.fo
        key = (len(ids), str(ids[0]), str(ids[-1]))
        if key not in self.datasets:
            ds = fo.Dataset()
            ds.add_samples([fo.Sample(filepath=f"/fashion-mnist/{i}.png") for i in ids])
            self.datasets[key] = ds
        ds = self.datasets[key]
        ds.set_values("ground_truth", [fo.Classification(label=str(c)) for c in noisy])
        ds.set_values("probe", [fo.Classification(label=str(int(p.argmax())), confidence=float(p.max()))
                                for p in probs])
        self.fob.compute_mistakenness(ds, "probe", label_field="ground_truth")
        return np.asarray(ds.values("mistakenness"), np.float64)


def run_case(space: str, emb, y: np.ndarray, kind: str, rate: float, seed: int, fo_runner) -> list[dict]:
    import cleanlab.filter
    import cleanlab.rank
    from cleanlab import Datalab

    from dataexplore.analysis.label_errors import label_errors

    rng = np.random.default_rng(seed * 1000 + int(rate * 100) + (500 if kind == "lookalike" else 0))
    noisy, truth = plant(y, rate, kind, rng)
    base = {"space": space, "kind": kind, "rate": rate, "seed": seed, "flips": int(truth.sum())}
    rows = []

    t0 = time.perf_counter()
    res = label_errors(emb, pd.Series(noisy.astype(str), index=emb.ids), progress=False, random_state=seed)
    seconds = time.perf_counter() - t0
    s = res.scores.set_index("id").reindex(emb.ids)
    rows.append({**base, "tool": "dataexplore", "seconds": seconds,
                 **measure(s["score"].to_numpy(), truth, np.flatnonzero(s["is_candidate"].to_numpy()),
                           s["suggested"].astype(int).to_numpy(), y)})

    t0 = time.perf_counter()
    probs = probe(emb.vectors, noisy, seed)
    probe_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    issues = cleanlab.filter.find_label_issues(noisy, probs, n_jobs=1)
    quality = cleanlab.rank.get_label_quality_scores(noisy, probs)
    rows.append({**base, "tool": "cleanlab", "seconds": probe_seconds + time.perf_counter() - t0,
                 **measure(1 - quality, truth, np.flatnonzero(issues), probs.argmax(1), y)})

    t0 = time.perf_counter()
    lab = Datalab(data={"label": noisy}, label_name="label", verbosity=0)
    lab.find_issues(features=emb.vectors, issue_types={"label": {}})
    found = lab.get_issues("label")
    rows.append({**base, "tool": "datalab", "seconds": time.perf_counter() - t0,
                 **measure(1 - found["label_score"].to_numpy(), truth, np.flatnonzero(found["is_label_issue"]),
                           found["predicted_label"].to_numpy(), y)})

    t0 = time.perf_counter()
    oracle = probe(emb.vectors, y, seed)  # the same probe trained on the true labels: a ceiling, not a peer
    rows.append({**base, "tool": "oracle", "seconds": time.perf_counter() - t0,
                 **measure(1 - oracle[np.arange(len(y)), noisy], truth)})

    if fo_runner is not None:
        t0 = time.perf_counter()
        m = fo_runner.mistakenness(emb.ids, noisy, probs)
        rows.append({**base, "tool": "fiftyone", "seconds": time.perf_counter() - t0, **measure(m, truth)})
    return rows


def summarise(frame: pd.DataFrame) -> str:
    """Markdown: per space, kind and rate, the mean over seeds of each tool, and dataexplore/cleanlab."""
    keys = ["space", "kind", "rate"]
    cols = ["p_at_n", "auroc", "precision", "recall", "f1", "flagged", "suggestion_accuracy", "seconds"]
    mean = frame.groupby(keys + ["tool"], sort=False)[cols].mean().reset_index()
    lines = ["| space | noise | rate | tool | P@n | AUROC | flagged P | flagged R | F1 | flagged/n | suggestion | s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in mean.iterrows():
        cells = [f"{r[c]:.3f}" if c != "seconds" and pd.notna(r[c]) else ("–" if pd.isna(r[c]) else f"{r[c]:.1f}")
                 for c in cols]
        lines.append(f"| {r['space']} | {r['kind']} | {r['rate']:.0%} | {r['tool']} | " + " | ".join(cells) + " |")
    ours = mean[mean.tool == "dataexplore"].set_index(keys)
    peer = mean[mean.tool == "cleanlab"].set_index(keys)
    ratio = (ours[["p_at_n", "auroc", "f1"]] / peer[["p_at_n", "auroc", "f1"]]).reset_index()
    lines += ["", "dataexplore / cleanlab (mean over seeds):", "",
              "| space | noise | rate | P@n | AUROC | F1 |", "|---|---|---|---|---|---|"]
    for _, r in ratio.iterrows():
        lines.append(f"| {r['space']} | {r['kind']} | {r['rate']:.0%} | {r['p_at_n']:.3f} | {r['auroc']:.3f} | "
                     f"{r['f1']:.3f} |")
    per_seed = frame.pivot_table(index=keys + ["seed"], columns="tool", values=["p_at_n", "auroc", "f1"])
    lines += ["", "cases (space × noise × rate × seed) where dataexplore is ahead of cleanlab: "
              + ", ".join(f"{m} {int((per_seed[(m, 'dataexplore')] > per_seed[(m, 'cleanlab')]).sum())}"
                          f"/{len(per_seed)}" for m in ("p_at_n", "auroc", "f1"))]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (tuning used 100,101)")
    parser.add_argument("--quick", action="store_true", help="seed 0 only, fashion-tiny and pixels")
    parser.add_argument("--second-clip", action="store_true", help="also fashion-tiny-seed1 (trains it once)")
    parser.add_argument("--fiftyone-seeds", type=int, default=1, help="FiftyOne on the first this many seeds")
    parser.add_argument("--out", type=Path, help="write every case as JSON here")
    args = parser.parse_args(argv)
    import cleanlab
    import torch

    import analysis  # benchmarks/analysis.py: the embedding spaces

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}, torch {torch.__version__}, cleanlab {cleanlab.__version__}", flush=True)
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    second = not args.quick and (args.second_clip or _second_clip_cached())
    spaces = analysis.spaces(second_clip=second)
    fo_runner = FiftyOneRunner() if args.fiftyone_seeds > 0 else None
    rows: list[dict] = []
    t_all = time.perf_counter()
    for space, (train, _test, ytr, _yte) in spaces.items():
        for s_i, seed in enumerate(seeds):
            sub = np.sort(np.random.default_rng(seed).choice(len(train), N, replace=False))
            emb, y = train.subset(sub), ytr[sub].astype(np.int64)
            for kind in KINDS:
                for rate in RATES:
                    case = run_case(space, emb, y, kind, rate, seed, fo_runner if s_i < args.fiftyone_seeds else None)
                    rows += case
                    line = "  ".join(f"{r['tool']} P@n {r['p_at_n']:.3f} auc {r['auroc']:.3f}"
                                     + (f" F1 {r['f1']:.3f}" if "f1" in r else "") for r in case)
                    print(f"{space:18s} {kind:9s} {rate:.0%} seed {seed}: {line}", flush=True)
    frame = pd.DataFrame(rows)
    print(f"\nall cases: {time.perf_counter() - t_all:.0f} s\n")
    print(summarise(frame))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


def _second_clip_cached() -> bool:
    from dataexplore.embedding.cache import cache_root

    return (cache_root() / "benchmark-models" / "fashion-tiny-seed1" / "open_clip_model.safetensors").is_file()


if __name__ == "__main__":
    sys.exit(main())
