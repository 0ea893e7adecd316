"""Planted cases on real Fashion-MNIST and the simple baselines a user would write instead.

Shared by ``benchmarks/analysis.py`` (the full grid) and ``tests/test_findings.py`` (fast variants).
Every case is built in the embedding space it is evaluated in, from real images and labels:

Failure slices (``correct`` is planted; the truth is the planted set):

- family (i), a coherent sub-cluster of one class (12-35 % of it) where the model is mostly wrong
  (``p_in``, 80 %), with uniform noise elsewhere (``p_out``, 5 %). Two generators: ``grown`` (from a
  random member, the nearest same-class samples reached through the kNN graph, so it is connected)
  and ``kmeans`` (a k-means cluster of the class's samples);
- family (ii), a cluster spanning two look-alike classes (t-shirt/shirt, pullover/coat,
  sandal/sneaker, coat/shirt, pullover/shirt, sneaker/ankle boot), the same two generators;
- the null: uniform errors only.

Coverage (the reference is the train split with something removed, the target the test split):

- a dropped class, look-alike classes included (coat, shirt, pullover, t-shirt);
- a dropped sub-concept: a k-means cluster holding 1-3 % of one class;
- the null: a random 90 % of the train split.

Baselines:

- ``knn_error_smoothing``: the error rate among each sample's 20 nearest neighbours >= 0.5;
- ``kmeans_cells``: k-means cells of about 40 samples; the cells whose error rate is significantly
  above the overall rate (binomial, FDR 5 %) and at least 1.5 times it;
- ``knn_pooled_fraction``: per target sample, the share of reference samples among its k nearest
  neighbours in the union against the expected share (the count score), components of samples
  scoring >= 0.5;
- ``kmeans_ratio``: k-means cells of about 50 samples of the union; a cell's score is one minus its
  reference share over the expected share; the cells scoring >= 0.5.
"""

from __future__ import annotations

import heapq

import numpy as np

#: Look-alike class pairs of Fashion-MNIST (label ids).
PAIRS = [(0, 6), (2, 4), (5, 7), (4, 6), (2, 6), (7, 9)]
FAMILY_I_CLASSES = [1, 3, 8, 9, 0, 2]
FAMILY_I_SHARES = [0.12, 0.2, 0.35, 0.25, 0.15, 0.3]
FAMILY_II_SIZES = [150, 250, 350, 200, 300, 180]


def precision_recall(found, truth: np.ndarray) -> tuple[float, float]:
    """Precision and recall of positions ``found`` against the boolean mask ``truth``."""
    found = np.asarray(found, np.int64)
    hit = int(truth[found].sum()) if len(found) else 0
    return hit / max(len(found), 1), hit / max(int(truth.sum()), 1)


# ---- failure slices ---------------------------------------------------------------------------------
def grown(vectors, labels, classes, size, rng, nbrs, k=10) -> np.ndarray:
    """A connected sub-cluster: from a random member of ``classes`` (for two classes, one on their
    border), the samples most similar to it reached through the kNN graph among those classes."""
    members = np.flatnonzero(np.isin(labels, classes))
    allowed = np.zeros(len(labels), bool)
    allowed[members] = True
    m = int(round(size * len(members))) if size < 1 else int(size)
    seed = int(rng.choice(members))
    if len(classes) > 1:
        mix = np.array([np.mean(labels[nbrs[i, :20]] == classes[1]) for i in members])
        border = members[(mix > 0.3) & (mix < 0.7) & (labels[members] == classes[0])]
        if len(border):
            seed = int(rng.choice(border))
    sims = vectors @ vectors[seed]
    chosen, seen, heap = [seed], {seed}, []
    for j in nbrs[seed, :k]:
        if allowed[j] and j not in seen:
            heapq.heappush(heap, (-sims[j], int(j)))
            seen.add(int(j))
    while heap and len(chosen) < m:
        _, i = heapq.heappop(heap)
        chosen.append(i)
        for j in nbrs[i, :k]:
            if allowed[j] and int(j) not in seen:
                heapq.heappush(heap, (-sims[j], int(j)))
                seen.add(int(j))
    return np.array(chosen)


def kmeans_cluster(vectors, labels, classes, rng, lo, hi) -> np.ndarray | None:
    """A k-means cluster of the samples of ``classes`` holding ``lo``..``hi`` of them (for two classes,
    one holding at least a quarter of each)."""
    from sklearn.cluster import KMeans

    members = np.flatnonzero(np.isin(labels, classes))
    for n_clusters in (3, 4, 5, 6, 8, 10, 12):
        assign = KMeans(n_clusters, n_init=2, random_state=int(rng.integers(1 << 30))).fit_predict(vectors[members])
        for c in rng.permutation(n_clusters):
            chosen = members[assign == c]
            share = len(chosen) / len(members)
            mixed = min(np.mean(labels[chosen] == cl) for cl in classes) >= 0.25 if len(classes) > 1 else True
            if lo <= share <= hi and mixed:
                return chosen
    return None


def plant_errors(n, subset, rng, p_in=0.8, p_out=0.05) -> tuple[np.ndarray, np.ndarray]:
    """``wrong`` (the model's errors) and ``inside`` (the planted set) for ``n`` samples."""
    wrong = rng.random(n) < p_out
    inside = np.zeros(n, bool)
    inside[subset] = True
    wrong[inside] = rng.random(int(inside.sum())) < p_in
    return wrong, inside


def slice_cases(vectors, labels, nbrs, generators=("grown", "kmeans"), seeds=range(6), p_in=0.8, p_out=0.05):
    """``(family, generator, name, wrong, inside)`` for every planted failure slice."""
    out = []
    for gen in generators:
        for s in seeds:
            rng = np.random.default_rng(1000 * (gen == "kmeans") + 100 + s)
            cls = FAMILY_I_CLASSES[s % 6]
            sub = grown(vectors, labels, [cls], FAMILY_I_SHARES[s % 6], rng, nbrs) if gen == "grown" \
                else kmeans_cluster(vectors, labels, [cls], rng, 0.12, 0.35)
            if sub is not None:
                wrong, inside = plant_errors(len(labels), sub, rng, p_in, p_out)
                out.append(("i", gen, f"class {cls}, {len(sub)} samples", wrong, inside))
        for s in seeds:
            rng = np.random.default_rng(1000 * (gen == "kmeans") + 200 + s)
            a, b = PAIRS[s % len(PAIRS)]
            sub = grown(vectors, labels, [a, b], FAMILY_II_SIZES[s % 6], rng, nbrs) if gen == "grown" \
                else kmeans_cluster(vectors, labels, [a, b], rng, 0.05, 0.35)
            if sub is not None:
                wrong, inside = plant_errors(len(labels), sub, rng, p_in, p_out)
                out.append(("ii", gen, f"classes {a}+{b}, {len(sub)} samples", wrong, inside))
    return out


def knn_error_smoothing(wrong, nbrs, k=20, threshold=0.5) -> np.ndarray:
    """Baseline: samples whose 20 nearest neighbours fail at least half the time."""
    return np.flatnonzero(wrong[nbrs[:, :k]].mean(1) >= threshold)


def kmeans_cells(vectors, wrong, cell_size=40, alpha=0.05, min_lift=1.5, random_state=0) -> np.ndarray:
    """Baseline: the k-means cells that fail significantly more than the rest."""
    from scipy.stats import binom, false_discovery_control
    from sklearn.cluster import MiniBatchKMeans

    n_cells = max(2, len(wrong) // cell_size)
    cell = MiniBatchKMeans(n_cells, n_init=3, random_state=random_state, batch_size=4096).fit_predict(vectors)
    size = np.bincount(cell, minlength=n_cells)
    errors = np.bincount(cell, weights=wrong.astype(float), minlength=n_cells)
    base = wrong.mean()
    p = false_discovery_control(binom.sf(errors - 1, np.maximum(size, 1), base))
    failing = (size > 0) & (p <= alpha) & (errors / np.maximum(size, 1) >= min_lift * base)
    return np.flatnonzero(failing[cell])


# ---- coverage -------------------------------------------------------------------------------------------
def subconcept(train_vectors, train_labels, test_vectors, test_labels, cls, seed, clusters=50):
    """A sub-concept of class ``cls``: a k-means cluster holding 1-3 % of its train+test samples.
    Returns (train rows to drop, boolean mask of the test samples in it)."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    tr, te = np.flatnonzero(train_labels == cls), np.flatnonzero(test_labels == cls)
    assign = KMeans(clusters, n_init=1, random_state=seed).fit_predict(np.concatenate([train_vectors[tr],
                                                                                       test_vectors[te]]))
    share = np.bincount(assign, minlength=clusters) / len(assign)
    c = int(rng.choice(np.flatnonzero((share >= 0.01) & (share <= 0.03))))
    gap = np.zeros(len(test_labels), bool)
    gap[te[assign[len(tr):] == c]] = True
    return tr[assign[:len(tr)] == c], gap


def knn_pooled_fraction(reference, target, k=None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Baseline: the count score per target sample, and the components of samples scoring >= 0.5."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from dataexplore.analysis.neighbors import knn

    nr, nt = len(reference), len(target)
    p0 = nr / (nr + nt - 1)
    k = k or int(np.clip(np.ceil(10 / min(p0, 1 - p0)), 15, 100))
    _, nb = knn(target, np.concatenate([reference, target]), k=k + 1)
    own = nb == (nr + np.arange(nt))[:, None]
    nb = np.take_along_axis(nb, np.argsort(own, axis=1, kind="stable"), axis=1)[:, :k]
    score = np.clip(1 - ((nb < nr).sum(1) + p0) / ((k + 1) * p0), 0, 1)
    flagged = score >= 0.5
    rows = np.repeat(np.arange(nt), k)
    cols = nb.ravel() - nr
    ok = (cols >= 0) & flagged[rows] & flagged[np.clip(cols, 0, None)]
    graph = coo_matrix((np.ones(int(ok.sum())), (rows[ok], cols[ok])), shape=(nt, nt))
    _, comp = connected_components(graph, directed=False)
    groups = [np.flatnonzero((comp == c) & flagged) for c in np.unique(comp[flagged])]
    return score, sorted([g for g in groups if len(g) >= 10], key=len, reverse=True)


def kmeans_ratio(reference, target, cell_size=50, random_state=0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Baseline: per target sample its k-means cell's score (one minus the cell's reference share
    over the expected share); the regions are the cells scoring >= 0.5, largest first."""
    from sklearn.cluster import MiniBatchKMeans

    both = np.concatenate([reference, target])
    n_cells = max(2, len(both) // cell_size)
    cell = MiniBatchKMeans(n_cells, n_init=3, random_state=random_state, batch_size=4096).fit_predict(both)
    ref_count = np.bincount(cell[:len(reference)], minlength=n_cells)
    size = np.bincount(cell, minlength=n_cells)
    p0 = len(reference) / len(both)
    score_cell = np.clip(1 - (ref_count / np.maximum(size, 1)) / p0, 0, 1)
    tcell = cell[len(reference):]
    groups = [np.flatnonzero(tcell == c) for c in np.flatnonzero(score_cell >= 0.5)]
    union = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    return score_cell[tcell], [union] if len(union) else []
