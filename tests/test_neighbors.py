"""Cross-modal nearest neighbours and one-to-one matching."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from conaae_scverse._neighbors import nearest_neighbors, one_to_one_matching

_SCIPY_METRIC = {"l1": "cityblock", "l2": "euclidean"}


@pytest.mark.parametrize("metric", ["l1", "l2"])
@pytest.mark.parametrize("k", [1, 3])
def test_exact_matches_brute_force(metric, k):
    rng = np.random.default_rng(0)
    query = rng.normal(size=(37, 5))
    reference = rng.normal(size=(23, 5))
    idx, dist = nearest_neighbors(
        query, reference, k=k, metric=metric, method="exact", chunk_size=8
    )
    assert idx.shape == dist.shape == (37, k)
    full = cdist(query, reference, _SCIPY_METRIC[metric])
    expected_idx = np.argsort(full, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_allclose(dist, np.take_along_axis(full, expected_idx, axis=1), rtol=1e-5)
    assert (np.diff(dist, axis=1) >= 0).all()


def test_l1_and_l2_differ():
    # the metric is really used: a case where the two metrics pick different neighbours
    query = np.array([[0.0, 0.0]])
    reference = np.array([[3.0, 0.0], [2.0, 2.0]])  # l1: 3 vs 4; l2: 3 vs 2.83
    assert nearest_neighbors(query, reference, metric="l1")[0][0, 0] == 0
    assert nearest_neighbors(query, reference, metric="l2")[0][0, 0] == 1


def test_k_larger_than_reference():
    rng = np.random.default_rng(1)
    idx, _ = nearest_neighbors(rng.normal(size=(4, 2)), rng.normal(size=(3, 2)), k=10)
    assert idx.shape == (4, 3)
    assert (np.sort(idx, axis=1) == np.arange(3)).all()


def test_unknown_metric():
    with pytest.raises(ValueError, match="metric must be 'l1' or 'l2'"):
        nearest_neighbors(np.zeros((2, 2)), np.zeros((2, 2)), metric="cosine")
    with pytest.raises(ValueError, match="metric must be 'l1' or 'l2'"):
        one_to_one_matching(np.zeros((2, 2)), np.zeros((2, 2)), metric="cosine")


def test_approximate_agrees_with_exact():
    # Well-separated clusters with small within-cluster spread: an easy case. One metric only
    # (l1, the default): each metric costs pynndescent tens of seconds of numba compilation.
    metric = "l1"
    rng = np.random.default_rng(2)
    centres = rng.normal(scale=10.0, size=(10, 6))
    reference = centres[np.arange(400) % 10] + rng.normal(size=(400, 6))
    query = reference[rng.choice(400, size=150, replace=False)] + 0.05 * rng.normal(size=(150, 6))
    exact, _ = nearest_neighbors(query, reference, metric=metric, method="exact")
    approx, approx_dist = nearest_neighbors(
        query, reference, metric=metric, method="approximate", random_state=0
    )
    assert approx.shape == (150, 1)
    assert (approx[:, 0] == exact[:, 0]).mean() > 0.9
    recomputed = cdist(query, reference, _SCIPY_METRIC[metric])[np.arange(150), approx[:, 0]]
    np.testing.assert_allclose(approx_dist[:, 0], recomputed, rtol=1e-4)


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_one_to_one_is_optimal(metric):
    rng = np.random.default_rng(3)
    query = rng.normal(size=(12, 3))
    reference = rng.normal(size=(12, 3))
    matched, dist = one_to_one_matching(query, reference, metric=metric)
    assert sorted(matched) == list(range(12))  # a permutation
    cost = cdist(query, reference, _SCIPY_METRIC[metric])
    rows, cols = linear_sum_assignment(cost)
    assert cost[np.arange(12), matched].sum() == pytest.approx(cost[rows, cols].sum())
    np.testing.assert_allclose(dist, cost[np.arange(12), matched], rtol=1e-5)
    # and better than greedy nearest neighbours, which here is not a permutation
    nearest = cost.argmin(axis=1)
    assert len(set(nearest)) < 12


def test_one_to_one_recovers_a_shuffled_copy():
    rng = np.random.default_rng(4)
    reference = rng.normal(size=(30, 4))
    perm = rng.permutation(30)
    matched, dist = one_to_one_matching(reference[perm] + 1e-3, reference)
    np.testing.assert_array_equal(matched, perm)
    assert dist.max() < 0.01


def test_one_to_one_errors(monkeypatch):
    with pytest.raises(ValueError, match="needs equally many cells"):
        one_to_one_matching(np.zeros((3, 2)), np.zeros((4, 2)))
    import conaae_scverse._neighbors as neighbors_module

    monkeypatch.setattr(neighbors_module, "ONE_TO_ONE_LIMIT", 5)
    with pytest.raises(ValueError, match="it is limited to 5 cells"):
        one_to_one_matching(np.zeros((6, 2)), np.zeros((6, 2)))
