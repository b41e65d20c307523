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


def test_exact_blocks_shrink_with_a_large_reference(monkeypatch):
    # A block holds at most _BLOCK_ELEMENTS distances: here 2 query rows of 23 references.
    import conaae_scverse._neighbors as neighbors_module

    rng = np.random.default_rng(8)
    query, reference = rng.normal(size=(37, 5)), rng.normal(size=(23, 5))
    expected = nearest_neighbors(query, reference, k=2, method="exact")
    monkeypatch.setattr(neighbors_module, "_BLOCK_ELEMENTS", 50)
    blocks = []
    original_cdist = neighbors_module.torch.cdist

    def counting_cdist(a, b, p=2.0):
        blocks.append(len(a))
        return original_cdist(a, b, p=p)

    monkeypatch.setattr(neighbors_module.torch, "cdist", counting_cdist)
    got = nearest_neighbors(query, reference, k=2, method="exact")
    assert max(blocks) == 2
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1])


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
    with pytest.raises(ValueError, match=r"metric must be 'l1' \(Manhattan\) or 'l2'"):
        nearest_neighbors(np.zeros((2, 2)), np.zeros((2, 2)), metric="cosine")
    with pytest.raises(ValueError, match=r"metric must be 'l1' \(Manhattan\) or 'l2'"):
        one_to_one_matching(np.zeros((2, 2)), np.zeros((2, 2)), metric="cosine")


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_approximate_agrees_with_exact(metric):
    # Well-separated clusters with small within-cluster spread: an easy case.
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


def _clustered(n_query: int, n_reference: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(20, 10))
    reference = centres[rng.integers(0, 20, n_reference)] + rng.normal(size=(n_reference, 10))
    query = reference[rng.integers(0, n_reference, n_query)] + 0.5 * rng.normal(size=(n_query, 10))
    return query, reference


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_approximate_neighbours_are_nearly_exact(metric):
    # Overlapping clusters, many cells per coarse cluster: the inverted file must still find
    # (nearly always) the exact nearest neighbours, with exact distances, sorted.
    query, reference = _clustered(1500, 6000, seed=5)
    exact_idx, exact_dist = nearest_neighbors(query, reference, k=5, metric=metric)
    idx, dist = nearest_neighbors(query, reference, k=5, metric=metric, method="approximate")
    assert idx.shape == dist.shape == (1500, 5)
    assert (idx[:, 0] == exact_idx[:, 0]).mean() > 0.97
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(idx, exact_idx, strict=True)])
    assert overlap > 0.9
    assert (np.diff(dist, axis=1) >= 0).all()
    recomputed = np.take_along_axis(cdist(query, reference, _SCIPY_METRIC[metric]), idx, axis=1)
    np.testing.assert_allclose(dist, recomputed, rtol=1e-4)
    assert (dist[:, 0] >= exact_dist[:, 0] - 1e-4).all()  # never closer than the true nearest


def test_approximate_results_do_not_depend_on_block_size(monkeypatch):
    import conaae_scverse._neighbors as neighbors_module

    query, reference = _clustered(400, 2000, seed=6)
    expected = nearest_neighbors(query, reference, k=3, method="approximate")
    monkeypatch.setattr(neighbors_module, "_BLOCK_ELEMENTS", 500)  # many small blocks
    got = nearest_neighbors(query, reference, k=3, method="approximate")
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1])


def test_approximate_handles_fewer_references_than_probes():
    query, reference = _clustered(50, 9, seed=7)
    idx, dist = nearest_neighbors(query, reference, k=2, method="approximate")
    exact_idx, _ = nearest_neighbors(query, reference, k=2, method="exact")
    np.testing.assert_array_equal(idx, exact_idx)  # every cluster is probed: exact
    assert np.isfinite(dist).all()


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
