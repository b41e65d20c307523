"""Brute-force reference implementations (full distance matrices) for the metric tests."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

SCIPY = {"l1": "cityblock", "l2": "euclidean"}


def closer_counts(x, y, metric):
    """Rows j != i of y at most as far from x[i] as y[i] (ties up to rounding count as closer)."""
    d = cdist(x, y, SCIPY[metric])
    true = np.diag(d)
    return (d <= (true + 1e-12 * np.abs(true))[:, None]).sum(axis=1) - 1


def recall(x, y, k, metric):
    return float(np.mean(closer_counts(x, y, metric) < k))


def foscttm(x, y, metric="l2"):
    n = len(x)
    return float(
        (closer_counts(x, y, metric).mean() + closer_counts(y, x, metric).mean()) / (2 * (n - 1))
    )


def scot_foscttm(x, y):
    """SCOT's reference definition: rank of the true match counting strictly closer rows."""

    def fracs(a, b):
        out = []
        for i in range(len(a)):
            dist = np.sqrt(((a[i] - b) ** 2).sum(axis=1))
            out.append(sorted(dist.tolist()).index(dist[i]) / (len(a) - 1))
        return np.array(out)

    return float(np.mean((fracs(x, y) + fracs(y, x)) / 2))


def mixing(x, y, k, metric="l2"):
    """Per-cell loop; neighbours tied at the k-th distance share the remaining places."""
    z = np.concatenate([x, y])
    is_y = np.r_[np.zeros(len(x), bool), np.ones(len(y), bool)]
    n = len(z)
    k = min(k, n - 1)
    d = cdist(z, z, SCIPY[metric])
    scores = []
    for i in range(n):
        others = np.delete(np.arange(n), i)
        di = d[i, others]
        other = is_y[others] != is_y[i]
        radius = np.sort(di)[k - 1]
        less, tied = di < radius, di == radius
        n_other = other[less].sum() + (k - less.sum()) * other[tied].sum() / tied.sum()
        expected = (len(x) if is_y[i] else len(y)) / (n - 1)
        scores.append(min(n_other / k / expected, 1.0))
    return float(np.mean(scores))


def paper_integration(x, labels_x, y, labels_y, metric="l2"):
    """The loop of the Con-AAE evaluation code: greedy, strict '<', lowest index wins."""
    d = cdist(y, x, SCIPY[metric])
    used = np.zeros(len(x), bool)
    correct = 0
    for i in range(len(y)):
        best, best_d = -1, np.inf
        for j in range(len(x)):
            if d[i, j] < best_d and not used[j]:
                best, best_d = j, d[i, j]
        used[best] = True
        correct += labels_x[best] == labels_y[i]
    return correct / len(y)


def knn_vote(ref, labels_ref, query, labels_query, k, metric="l2"):
    d = cdist(query, ref, SCIPY[metric])
    labels_ref = np.asarray(labels_ref)
    hits = []
    for i in range(len(query)):
        nearest = np.argsort(d[i], kind="stable")[:k]
        values, counts = np.unique(labels_ref[nearest], return_counts=True)
        hits.append(values[np.argmax(counts)] == labels_query[i])
    return float(np.mean(hits))
