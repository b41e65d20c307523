from __future__ import annotations

import _metric_oracles as oracle
import numpy as np
import pandas as pd
import pytest

from conaae_scverse.metrics import integration_accuracy, label_transfer_accuracy

# --- label transfer --------------------------------------------------------------------


def test_label_transfer_hand_computed():
    ref = np.array([[0.0], [0.1], [5.0], [5.1]])
    query = np.array([[0.05], [4.9], [0.2]])
    # k=1: 0.05 -> "a" (right), 4.9 -> "b" (right), 0.2 -> "a" (truth "b": wrong)
    acc = label_transfer_accuracy(ref, ["a", "a", "b", "b"], query, ["a", "b", "b"], k=1)
    assert acc == pytest.approx(2 / 3)


def test_label_transfer_majority_vote():
    # query at 0: its 3 nearest are 0.1 ("a"), 0.2 ("b"), 0.3 ("b") -> "b" by 2 votes to 1
    ref = np.array([[0.1], [0.2], [0.3], [9.0]])
    labels = ["a", "b", "b", "a"]
    assert label_transfer_accuracy(ref, labels, [[0.0]], ["b"], k=3) == 1.0
    assert label_transfer_accuracy(ref, labels, [[0.0]], ["b"], k=1) == 0.0


def test_label_transfer_ignores_missing_labels():
    ref = np.array([[0.0], [0.1], [5.0], [5.1]])
    query = np.array([[0.05], [5.05], [0.2]])
    # the unlabelled reference cell at 0.1 does not vote; the unlabelled query is not scored
    labels_ref = pd.Categorical(["a", None, "b", "b"])
    acc = label_transfer_accuracy(ref, labels_ref, query, ["a", np.nan, "b"], k=1)
    assert acc == 0.5
    assert label_transfer_accuracy(ref, labels_ref, query, [None, "b", None], k=1) == 1.0


def test_label_transfer_k_larger_than_reference():
    ref = np.array([[0.0], [1.0]])
    assert label_transfer_accuracy(ref, ["a", "a"], [[0.3]], ["a"], k=50) == 1.0


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_label_transfer_matches_brute_force(rng, metric):
    ref, query = rng.normal(size=(80, 3)), rng.normal(size=(50, 3))
    labels_ref = np.where(ref[:, 0] > 0, "pos", "neg")
    labels_query = np.where(query[:, 0] + 0.3 * query[:, 1] > 0, "pos", "neg")
    got = label_transfer_accuracy(ref, labels_ref, query, labels_query, k=5, metric=metric)
    assert got == pytest.approx(oracle.knn_vote(ref, labels_ref, query, labels_query, 5, metric))
    assert 0.6 < got < 1.0


def test_label_transfer_errors():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="labels_ref has no labelled cells"):
        label_transfer_accuracy(x, [None, None, np.nan], x, ["a", "b", "c"])
    with pytest.raises(ValueError, match="labels_query has no labelled cells"):
        label_transfer_accuracy(x, ["a", "b", "c"], x, [None] * 3)
    with pytest.raises(ValueError, match="one label per cell"):
        label_transfer_accuracy(x, ["a", "b"], x, ["a", "b", "c"])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        label_transfer_accuracy(x, ["a"] * 3, x, ["a"] * 3, k=0)
    with pytest.raises(ValueError, match="same number of columns"):
        label_transfer_accuracy(x, ["a"] * 3, np.zeros((3, 1)), ["a"] * 3)


# --- integration accuracy ------------------------------------------------------------


def test_integration_greedy_hand_computed():
    rna = np.array([[0.0], [1.0], [10.0]])
    labels_rna = ["a", "b", "b"]
    atac = np.array([[0.2], [0.4], [9.0]])
    labels_atac = ["a", "a", "b"]
    # greedy: atac0 -> rna0 ("a", right); atac1's nearest rna0 is taken -> rna1 ("b",
    # wrong); atac2 -> rna2 (right)
    assert integration_accuracy(rna, labels_rna, atac, labels_atac) == pytest.approx(2 / 3)
    # nearest with replacement: atac1 -> rna0 ("a", right)
    assert integration_accuracy(rna, labels_rna, atac, labels_atac, one_to_one=False) == 1.0


def test_integration_depends_on_atac_order_like_the_paper():
    rna = np.array([[0.0], [3.0]])
    atac = np.array([[1.0], [0.5]])
    # atac0 (label b) takes rna0 first; atac1 (label a) gets rna1 -> both wrong
    assert integration_accuracy(rna, ["a", "b"], atac, ["b", "a"]) == 0.0
    # reversed order: atac 0.5 (a) takes rna0 (a), atac 1.0 (b) gets rna1 (b)
    assert integration_accuracy(rna, ["a", "b"], atac[::-1], ["a", "b"]) == 1.0


def test_integration_collapsed_embedding_is_not_rewarded():
    labels = np.repeat(["a", "b", "c"], 10)
    x = np.zeros((30, 2))
    # The reference code's lowest-index tie-break would score this 1.0 (pairs in row
    # order). Pessimistic ties: the "a" cells take the "b" RNA cells, the "b" cells the
    # "a" ones, and only the "c" cells are left with their own label: 1/3, the chance
    # level of three equal classes.
    assert integration_accuracy(x, labels, x, labels) == pytest.approx(1 / 3)
    # nearest with replacement: every cell has RNA cells of other labels among its ties
    assert integration_accuracy(x, labels, x, labels, one_to_one=False) == 0.0


def test_integration_perfect_embedding(rng):
    x = rng.normal(size=(40, 3))
    labels = rng.integers(0, 4, size=40)
    assert integration_accuracy(x, labels, x, labels) == 1.0
    assert integration_accuracy(x, labels, x, labels, metric="l2", one_to_one=False) == 1.0


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_integration_matches_paper_loop(rng, small_chunks, metric):
    n = 45
    rna = rng.normal(size=(n, 3))
    atac = rna + 0.8 * rng.normal(size=(n, 3))
    labels = np.where(rna[:, 0] > 0.3, "x", np.where(rna[:, 1] > 0, "y", "z"))
    got = integration_accuracy(rna, labels, atac, labels, metric=metric)
    assert got == pytest.approx(oracle.paper_integration(rna, labels, atac, labels, metric))


def test_integration_missing_labels_and_surplus_atac():
    rna = np.array([[0.0], [10.0]])
    atac = np.array([[0.1], [9.9], [10.1]])
    # atac0 -> rna0 (a, right); atac1 -> rna1 (unlabelled: wrong); atac2 unmatched (wrong)
    assert integration_accuracy(rna, ["a", None], atac, ["a", "b", "b"]) == pytest.approx(1 / 3)
    # unlabelled ATAC cells are matched but not scored
    assert integration_accuracy(rna, ["a", "b"], atac, [np.nan, "b", None]) == 1.0


def test_integration_errors():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="labels_y has no labelled cells"):
        integration_accuracy(x, ["a"] * 3, x, [None] * 3)
    with pytest.raises(ValueError, match="metric must be 'l1'"):
        integration_accuracy(x, ["a"] * 3, x, ["a"] * 3, metric="cos")
    with pytest.raises(ValueError, match="labels_x must be 1-D"):
        integration_accuracy(x, np.array([["a"] * 3]), x, ["a"] * 3)


def test_calibration_error_hand_computed():
    from conaae_scverse.metrics import calibration_error

    # Bin (0.5, 0.6]: confidence 0.6, accuracy 0.5; bin (0.8, 0.9]: 0.9 and 1.0.
    error, table = calibration_error([0.9, 0.9, 0.6, 0.6], [True, True, True, False])
    assert error == pytest.approx((2 * 0.1 + 2 * 0.1) / 4)
    assert table["n_cells"].tolist() == [2, 2]
    assert table["accuracy"].tolist() == [0.5, 1.0]
    # A calibrated predictor (accuracy equal to confidence in every bin) scores 0.
    conf = np.repeat([0.25, 0.75], 4)
    hit = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=bool)
    assert calibration_error(conf, hit)[0] == pytest.approx(0.0)
    # Always sure and always wrong: the largest error.
    assert calibration_error([1.0, 1.0], [False, False])[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("confidence", "correct", "match"),
    [
        ([0.5, 1.2], [True, False], r"confidence must hold finite values in \[0, 1\]"),
        ([0.5], [True, False], "non-empty and of equal length"),
        ([], [], "non-empty and of equal length"),
    ],
)
def test_calibration_error_rejects_bad_input(confidence, correct, match):
    from conaae_scverse.metrics import calibration_error

    with pytest.raises(ValueError, match=match):
        calibration_error(confidence, correct)
