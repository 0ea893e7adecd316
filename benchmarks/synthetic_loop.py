"""The loop, closed with synthetic data: gap -> generation request -> fashion-gen -> check -> retrained model.

A classifier (multinomial logistic regression on raw pixels, as in ``benchmarks/loop.py``) is
trained on 3,000 labelled Fashion-MNIST train images with one class nearly absent (10 images) and
evaluated on the 10,000 test images ("production"). ``dx.coverage(labelled, test)`` finds the gap;
``gap.to_generation(n=G)`` makes the request; the shipped ``fashion-gen`` generator draws G images
for its prompts; ``dx.check_generated`` keeps the on-target, non-duplicate ones. The model is
retrained with, per arm:

- ``none``: nothing added;
- ``synthetic (unchecked)``: all G generated images, labelled with their prompt's concept;
- ``synthetic (checked)``: only the images the check kept;
- ``real (query)``: the same number of real images as were kept, found by the query path (the gap
  as a query, searched in an unlabeled pool of other train images) and labelled with their true
  labels (the "annotators");
- ``contaminated (unchecked / checked)``: the G images plus 150 made from the prompt of the covered
  class nearest to the gap (the request's first negative: a generator drifting to a neighbour), all
  labelled with the request's concept as a user trusting the prompts would; then only what the
  check keeps of that batch.

Reported per missing class (mean ± sd over seeds): accuracy on the missing class's test images
("slice"), overall, and on the test images of the covered class nearest the gap (the request's first
negative, where mislabelled generations do their harm), the images added and the check's numbers.

Run::

    .venv/bin/python benchmarks/synthetic_loop.py [--seeds 3] [--classes Sandal Bag] [--generate 300]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np
import pandas as pd

LABELLED = 3000
POOL = 10000
ARMS = ("none", "synthetic (unchecked)", "synthetic (checked)", "real (query)", "contaminated (unchecked)",
        "contaminated (checked)")
#: Wrong-prompt images added to the batch in the contaminated arms (a generator that drifts to a neighbour).
WRONG = 150


def pixels(emb) -> np.ndarray:
    return emb.samples.images[emb.rows].reshape(len(emb), -1).astype(np.float32) / 255.0


def fit(x, y, seed=0):
    """Multinomial logistic regression on pixels (the settings of ``benchmarks/loop.py``)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=0.05, max_iter=300, random_state=seed).fit(x, y)


def generate(gen, req) -> tuple[np.ndarray, np.ndarray]:
    """Images for each prompt of ``req`` (its counts, negatives and seeds) and each image's prompt index."""
    images, which = [], []
    for i, p in enumerate(req.prompts):
        images.append(gen.generate(p["prompt"], n=p["n"], negative=p["negative_prompt"] or None, seed=p["seed"]))
        which += [i] * p["n"]
    return np.concatenate(images), np.array(which)


def run(missing: str, seed: int, n_generate: int, train, test, gen) -> dict:
    import dataexplore as dx

    xtr, xte = pixels(train), pixels(test)
    ytr, yte = train.table["label"].astype(str).to_numpy(), test.table["label"].astype(str).to_numpy()
    order = np.random.default_rng(seed).permutation(len(train))
    pool, rest = order[:POOL], order[POOL:]
    labelled = np.r_[rest[ytr[rest] != missing][: LABELLED - 10], rest[ytr[rest] == missing][:10]]
    inside = yte == missing
    neighbour = np.zeros(len(yte), bool)  # test images of the covered class nearest the gap (set below)

    def score(x_add=None, y_add=None) -> dict:
        x, y = xtr[labelled], ytr[labelled]
        if x_add is not None and len(x_add):
            x, y = np.r_[x, x_add], np.r_[y, y_add]
        ok = fit(x, y, seed).predict(xte) == yte
        return {"slice": float(ok[inside].mean()), "overall": float(ok.mean()), "added": len(x) - len(labelled),
                "neighbour": float(ok[neighbour].mean())}

    out: dict = {"missing": missing, "seed": seed}
    t0 = time.perf_counter()
    cov = dx.coverage(train.subset(labelled), test)
    found = [k for k, top in enumerate(cov.table["top_labels"]) if str(top).startswith(missing)]
    if not found:
        return {**out, "gap": None}
    k = found[0]
    out["gap"] = {"rank": k, "size": int(cov.table["count"].iloc[k]), "labels": str(cov.table["top_labels"].iloc[k])}
    req = cov.to_generation(k, n=n_generate, seed=seed)
    neighbour[:] = np.char.lower(yte.astype(str)) == str(req.negatives[0]).lower()
    out["neighbour"] = str(req.negatives[0])
    images, which = generate(gen, req)
    check = dx.check_generated(req, images, prompts=which.tolist(), random_state=seed)
    s = check.summary
    out["check"] = {"images": len(images), "kept": int(s["kept"]), "off_target": int(s["off_target"]),
                    "duplicates": int(s["duplicates"]), "covered_before": float(s["covered_before"]),
                    "covered_after": float(s["covered_after"]), "verdict": check.verdict.split(":")[0],
                    "prompts": [p["prompt"] for p in req.prompts]}
    concept = np.array([str(req.prompts[i]["concept"]) for i in which])  # a prompt's concept is its label
    xs = images.reshape(len(images), -1).astype(np.float32) / 255.0
    kept = check.table["kept"].to_numpy()
    query = cov.selection(k).to_query(embeddings=test, describe=False)
    pool_emb = train.subset(pool)
    res = query.search(pool_emb, top=int(kept.sum()))
    rows = pool[pd.Series(np.arange(len(pool)), index=pool_emb.ids)[res.ids].to_numpy()]
    out["real_precision"] = float((ytr[rows] == missing).mean())
    out["synthetic_label_ok"] = float((concept == missing).mean())
    out["none"] = score()
    out["synthetic (unchecked)"] = score(xs, concept)
    out["synthetic (checked)"] = score(xs[kept], concept[kept])
    out["real (query)"] = score(xtr[rows], ytr[rows])
    wrong = gen.generate(f"a photo of a {req.negatives[0]}", n=WRONG, seed=seed + 100)
    dirty = np.concatenate([images, wrong])
    dirty_check = dx.check_generated(req, dirty, prompts=which.tolist() + [0] * WRONG, random_state=seed)
    dirty_kept = dirty_check.table["kept"].to_numpy()
    xd, yd = dirty.reshape(len(dirty), -1).astype(np.float32) / 255.0, np.r_[concept, [str(req.prompts[0]["concept"])]
                                                                              * WRONG]
    out["contamination"] = {"wrong_prompt": req.negatives[0], "wrong_flagged": float((~dirty_kept[-WRONG:]).mean()),
                            "good_kept": float(dirty_kept[:-WRONG].mean()), "verdict": dirty_check.verdict}
    out["contaminated (unchecked)"] = score(xd, yd)
    out["contaminated (checked)"] = score(xd[dirty_kept], yd[dirty_kept])
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def summarise(results: list[dict]) -> str:
    def ms(values) -> str:
        return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.3f}"

    lines = ["| missing class | arm | images added | slice accuracy | overall accuracy | nearest covered class "
             "accuracy |", "|---|---|---|---|---|---|"]
    for missing in dict.fromkeys(r["missing"] for r in results):
        rs = [r for r in results if r["missing"] == missing and r.get("gap")]
        for arm in ARMS:
            added = np.mean([r[arm]["added"] for r in rs])
            lines.append(f"| {missing} (n={len(rs)}) | {arm} | {added:.0f} | {ms([r[arm]['slice'] for r in rs])} | "
                         f"{ms([r[arm]['overall'] for r in rs])} | {ms([r[arm]['neighbour'] for r in rs])} |")
    lines += ["", "| missing class | generated | kept | off-target | duplicates | gap covered before → after | "
              "verdict | real-pool precision |", "|---|---|---|---|---|---|---|---|"]
    for missing in dict.fromkeys(r["missing"] for r in results):
        rs = [r for r in results if r["missing"] == missing and r.get("gap")]
        c = [r["check"] for r in rs]
        lines.append(f"| {missing} | {c[0]['images']} | {np.mean([x['kept'] for x in c]):.0f} | "
                     f"{np.mean([x['off_target'] for x in c]):.0f} | {np.mean([x['duplicates'] for x in c]):.1f} | "
                     f"{np.mean([x['covered_before'] for x in c]):.2f} → {np.mean([x['covered_after'] for x in c]):.2f}"
                     f" | {', '.join(sorted({x['verdict'] for x in c}))} | "
                     f"{np.mean([r['real_precision'] for r in rs]):.2f} |")
    lines += ["", "| missing class | wrong prompt | wrong-prompt images dropped | good images kept | verdict |",
              "|---|---|---|---|---|"]
    for missing in dict.fromkeys(r["missing"] for r in results):
        c = [r["contamination"] for r in results if r["missing"] == missing and r.get("gap")]
        lines.append(f"| {missing} | {', '.join(sorted({x['wrong_prompt'] for x in c}))} | "
                     f"{ms([x['wrong_flagged'] for x in c])} | {ms([x['good_kept'] for x in c])} | "
                     f"{'; '.join(sorted({x['verdict'].split(':')[0] for x in c}))} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--classes", nargs="+", default=["Sandal", "Bag"])
    parser.add_argument("--generate", type=int, default=300, help="images asked for per request")
    args = parser.parse_args(argv)
    import dataexplore as dx
    from dataexplore.models.generator import Generator

    train = dx.embed("fashion-mnist:train:20000", progress=False)
    test = dx.embed("fashion-mnist:test", progress=False)
    gen = Generator.load("fashion-gen", device="cpu")
    results = []
    for missing in args.classes:
        for seed in range(args.seeds):
            r = run(missing, seed, args.generate, train, test, gen)
            results.append(r)
            print(json.dumps(r), flush=True)
    print(summarise(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
