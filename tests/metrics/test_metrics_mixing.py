from __future__ import annotations

import _metric_oracles as oracle
import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from conaae_scverse.metrics import modality_mixing


def test_separated_modalities_score_zero():
    x = np.array([[0.0], [0.1], [0.2]])
    assert modality_mixing(x, x + 100.0, k=2) == 0.0


def test_interleaved_modalities_score_one():
    # 0(x) 1(y) 2(x) 3(y): every nearest neighbour is from the other modality
    assert modality_mixing(np.array([[0.0], [2.0]]), np.array([[1.0], [3.0]]), k=1) == 1.0


def test_partial_mixing_hand_computed():
    # x = 0, 1 and y = 10, 11 with k=2: each cell's 2 neighbours are its own-modality twin
    # and the nearest cell of the other modality -> fraction 1/2 against an expected 2/3.
    x, y = np.array([[0.0], [1.0]]), np.array([[10.0], [11.0]])
    assert modality_mixing(x, y, k=2) == pytest.approx(0.75)


def test_ties_share_the_last_places():
    # pooled: x0=0, x1=0, y0=0, y1=5 (k=1)
    # x0: x1 and y0 tie at 0 -> 1/2 other, expected 2/3 -> 0.75; same for x1
    # y0: x0 and x1 at 0 -> 1 other, expected 2/3 -> clipped to 1
    # y1: x0, x1, y0 all at 5 -> 2/3 other, expected 2/3 -> 1
    x, y = np.array([[0.0], [0.0]]), np.array([[0.0], [5.0]])
    assert modality_mixing(x, y, k=1) == pytest.approx(0.875)


def test_collapsed_embedding_counts_as_mixed():
    x = np.zeros((10, 3))
    assert modality_mixing(x, x, k=5) == 1.0


def test_random_mixing_near_one_and_separation_monotone(rng):
    x, y = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    mixed = modality_mixing(x, y)
    assert mixed > 0.85
    assert modality_mixing(x, y + 1.5) < mixed
    assert modality_mixing(x, y + 1.5) > modality_mixing(x, y + 6.0)


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_matches_sklearn_neighbours(rng, small_chunks, metric):
    x, y = rng.normal(size=(33, 3)), rng.normal(size=(21, 3)) + 0.5
    k = 6
    z = np.concatenate([x, y])
    is_y = np.arange(len(z)) >= len(x)
    nn = NearestNeighbors(n_neighbors=k + 1, metric="manhattan" if metric == "l1" else "euclidean")
    idx = nn.fit(z).kneighbors(z, return_distance=False)[:, 1:]  # drop the cell itself
    frac_other = (is_y[idx] != is_y[:, None]).mean(axis=1)
    expected = np.where(is_y, len(x), len(y)) / (len(z) - 1)
    want = np.minimum(frac_other / expected, 1).mean()
    assert modality_mixing(x, y, k=k, metric=metric) == pytest.approx(want)


def test_matches_brute_force_with_ties(rng, small_chunks):
    x, y = np.round(rng.normal(size=(25, 2))), np.round(rng.normal(size=(18, 2)) + 0.5)
    for k in (1, 3, 10, 42, 100):
        assert modality_mixing(x, y, k=k) == pytest.approx(oracle.mixing(x, y, k))


def test_invariant_to_order_and_to_swapping(rng):
    x, y = np.round(rng.normal(size=(20, 2))), np.round(rng.normal(size=(15, 2)))
    base = modality_mixing(x, y, k=4)
    assert modality_mixing(y, x, k=4) == pytest.approx(base)
    assert modality_mixing(x[::-1], y[rng.permutation(15)], k=4) == pytest.approx(base)


def test_blocks_stay_small(block_shapes):
    rng = np.random.default_rng(1)
    modality_mixing(rng.normal(size=(20, 2)), rng.normal(size=(15, 2)), k=3)
    assert max(rows for rows, _ in block_shapes) <= 7
    assert {cols for _, cols in block_shapes} == {35}


def test_errors():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="same number of columns"):
        modality_mixing(x, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        modality_mixing(x, x, k=0)
    with pytest.raises(ValueError, match="metric must be 'l1'"):
        modality_mixing(x, x, metric="l3")
    with pytest.raises(ValueError, match="NaN or infinite"):
        modality_mixing(x, np.full((2, 2), np.nan))


def test_overflowing_distances(rng):
    # distances between +1e308 and -1e308 overflow to inf, so the k-th distance can be inf
    x = np.array([[1e308], [-1e308], [1e308]])
    y = np.array([[1e308], [-1e308]])
    for k in (1, 2, 3, 4):
        value = modality_mixing(x, y, k=k)
        assert 0.0 <= value <= 1.0
        assert value == pytest.approx(oracle.mixing(x, y, k))
