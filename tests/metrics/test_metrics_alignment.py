from __future__ import annotations

import _metric_oracles as oracle
import numpy as np
import pandas as pd
import pytest

from conaae_scverse.metrics import (
    chance_recall_at_k,
    foscttm,
    foscttm_per_cell,
    recall_at_k,
    recall_at_k_curve,
)

# --- hand-computed cases -------------------------------------------------------------


def test_recall_hand_computed_1d():
    # x = 0, 1, 5, 9; partners y = 1, 0, 5, 9.
    # x0=0: partner at 1, y1=0 is closer -> 1 closer row; x1=1: partner at 1 (y1=0),
    # y0=1 at 0 is closer -> 1; x2, x3: partner at distance 0 -> 0.
    x = np.array([[0.0], [1.0], [5.0], [9.0]])
    y = np.array([[1.0], [0.0], [5.0], [9.0]])
    assert recall_at_k(x, y, k=1) == 0.5
    assert recall_at_k(x, y, k=2) == 1.0
    assert recall_at_k_curve(x, y, ks=(1, 2, 3)) == {1: 0.5, 2: 1.0, 3: 1.0}


def test_recall_l1_and_l2_differ_by_hand():
    # x0=(0,0), partner y0=(1.5,1.5): l1 3.0, l2 2.12; y1=(2.5,0): l1 2.5, l2 2.5.
    # -> with l1 y1 is closer (miss at k=1), with l2 the partner is nearest (hit).
    # x1=(10,10), partner y1: l1 17.5, l2 12.5; y0: l1 17, l2 12.02 -> miss with both.
    x = np.array([[0.0, 0.0], [10.0, 10.0]])
    y = np.array([[1.5, 1.5], [2.5, 0.0]])
    assert recall_at_k(x, y, k=1, metric="l1") == 0.0
    assert recall_at_k(x, y, k=1, metric="l2") == 0.5
    assert recall_at_k(x, y, k=2, metric="l1") == 1.0


def test_recall_ties_are_pessimistic():
    # x == y, but y0 and y1 coincide: the partner of x0 ties with y1 -> not a hit at k=1.
    x = np.array([[0.0], [0.0], [5.0]])
    assert recall_at_k(x, x, k=1) == pytest.approx(1 / 3)
    assert recall_at_k(x, x, k=2) == 1.0


def test_foscttm_hand_computed():
    # x = 0, 1, 3 and y = 1, 0, 3: for x0 one of the two other y rows (y1=0) is closer,
    # likewise for x1 (y0=1); x2 matches exactly. Symmetric in the other direction.
    x = np.array([[0.0], [1.0], [3.0]])
    y = np.array([[1.0], [0.0], [3.0]])
    fx, fy = foscttm_per_cell(x, y)
    np.testing.assert_array_equal(fx, [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(fy, [0.5, 0.5, 0.0])
    assert foscttm(x, y) == pytest.approx(1 / 3)


def test_foscttm_ties_are_pessimistic():
    # Two coincident points: each has one of two other rows at the true match's distance.
    x = np.array([[0.0], [0.0], [5.0]])
    fx, fy = foscttm_per_cell(x, x)
    np.testing.assert_array_equal(fx, [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(fy, [0.5, 0.5, 0.0])


def test_chance_recall():
    assert chance_recall_at_k(100, 10) == 0.1
    assert chance_recall_at_k(4, 1) == 0.25
    assert chance_recall_at_k(5, 50) == 1.0


# --- reference points: collapsed, perfect, random ------------------------------------


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_collapsed_embedding_scores_badly(metric):
    n = 30
    x = np.ones((n, 4))
    for k in (1, 5, 10, n - 1):
        assert recall_at_k(x, x, k=k, metric=metric) == 0.0
        assert recall_at_k(x, x, k=k, metric=metric) <= chance_recall_at_k(n, k)
    assert recall_at_k(x, x, k=n, metric=metric) == 1.0
    assert foscttm(x, x, metric=metric) == 1.0


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_perfect_embedding(rng, metric):
    x = rng.normal(size=(100, 5))
    assert recall_at_k(x, x, k=1, metric=metric) == 1.0
    assert foscttm(x, x, metric=metric) == 0.0
    assert recall_at_k(x, x + 1e-6, k=1, metric=metric) == 1.0


def test_random_embedding_is_near_chance(rng):
    n = 500
    x, y = rng.normal(size=(n, 8)), rng.normal(size=(n, 8))
    assert foscttm(x, y) == pytest.approx(0.5, abs=0.04)
    curve = recall_at_k_curve(x, y, ks=(10, 50))
    assert curve[10] == pytest.approx(chance_recall_at_k(n, 10), abs=0.02)
    assert curve[50] == pytest.approx(chance_recall_at_k(n, 50), abs=0.04)


def test_recall_and_foscttm_track_noise(rng):
    x = rng.normal(size=(300, 6))
    close, far = x + 0.05 * rng.normal(size=x.shape), x + 1.0 * rng.normal(size=x.shape)
    assert recall_at_k(x, close, k=5) > recall_at_k(x, far, k=5)
    assert foscttm(x, close) < foscttm(x, far) < 0.5


# --- oracle checks against full distance matrices ----------------------------------


@pytest.mark.parametrize("metric", ["l1", "l2"])
@pytest.mark.parametrize("rounded", [False, True])
def test_matches_brute_force_with_chunking(rng, small_chunks, metric, rounded):
    n = 53  # 8 blocks of 7 rows, the last one partial
    x, y = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    if rounded:  # many exact ties and duplicate rows
        x, y = np.round(x), np.round(y)
    ks = (1, 2, 5, 10, 52, 53, 60)
    expected = {k: oracle.recall(x, y, k, metric) for k in ks}
    assert recall_at_k_curve(x, y, ks=ks, metric=metric) == expected
    assert recall_at_k(x, y, k=5, metric=metric) == expected[5]
    assert foscttm(x, y, metric=metric) == pytest.approx(oracle.foscttm(x, y, metric))
    fx, fy = foscttm_per_cell(x, y, metric=metric)
    np.testing.assert_allclose(fx, oracle.closer_counts(x, y, metric) / (n - 1))
    np.testing.assert_allclose(fy, oracle.closer_counts(y, x, metric) / (n - 1))


def test_agrees_with_scot_without_ties(rng):
    x, y = rng.normal(size=(60, 4)), rng.normal(size=(60, 4))
    y[:30] = x[:30] + 0.1 * rng.normal(size=(30, 4))
    assert foscttm(x, y) == pytest.approx(oracle.scot_foscttm(x, y))


def test_distance_blocks_stay_small(block_shapes):
    n = 40
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    recall_at_k(x, y, k=3)
    foscttm(x, y)
    assert block_shapes, "no distance block was computed"
    assert max(rows for rows, _ in block_shapes) <= 7
    assert all(cols == n for _, cols in block_shapes)


def test_accepts_array_likes():
    x = [[0.0, 1.0], [2.0, 3.0], [5.0, 5.0]]
    assert recall_at_k(x, pd.DataFrame(x), k=1) == 1.0
    assert foscttm(np.asarray(x, dtype=np.float32), x) == 0.0


def test_curve_matches_single_k(rng):
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(40, 2))
    curve = recall_at_k_curve(x, y, ks=[1, 3, 7], metric="l2")
    assert curve == {k: recall_at_k(x, y, k=k, metric="l2") for k in (1, 3, 7)}


# --- errors ---------------------------------------------------------------------------


def test_input_errors():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="must be 2-D"):
        recall_at_k(np.zeros(4), x)
    with pytest.raises(ValueError, match="same number of columns"):
        recall_at_k(x, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="equally many rows"):
        foscttm(x, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        recall_at_k(x, np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="NaN or infinite"):
        foscttm(np.full((4, 2), np.inf), x)
    with pytest.raises(ValueError, match="converting it to float failed"):
        recall_at_k([["a", "b"]], [["c", "d"]])
    with pytest.raises(ValueError, match="is empty"):
        recall_at_k(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="at least 2 pairs"):
        foscttm(np.zeros((1, 2)), np.zeros((1, 2)))


def test_argument_errors():
    x = np.eye(3)
    with pytest.raises(ValueError, match="metric must be 'l1'"):
        recall_at_k(x, x, metric="cosine")
    with pytest.raises(ValueError, match="metric must be 'l1'"):
        foscttm(x, x, metric="L2")
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            recall_at_k(x, x, k=bad)
    with pytest.raises(ValueError, match="ks is empty"):
        recall_at_k_curve(x, x, ks=())
    with pytest.raises(ValueError, match="each k in ks must be a positive integer"):
        recall_at_k_curve(x, x, ks=(1, 0))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        chance_recall_at_k(0, 1)
