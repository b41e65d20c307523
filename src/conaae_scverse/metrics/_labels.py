"""Label-based metrics: kNN label transfer, the paper's integration accuracy, calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from . import _distances
from ._validation import Metric, as_embeddings, check_k, check_metric, shared_label_codes

_SKLEARN_METRIC = {"l1": "manhattan", "l2": "euclidean"}


def label_transfer_accuracy(
    x_ref: ArrayLike,
    labels_ref: ArrayLike,
    x_query: ArrayLike,
    labels_query: ArrayLike,
    *,
    k: int = 5,
    metric: Metric = "l2",
) -> float:
    """Accuracy of transferring labels from one modality to the other by a kNN vote.

    A k-nearest-neighbour classifier (:class:`sklearn.neighbors.KNeighborsClassifier`,
    uniform weights) is fitted on the labelled reference cells and predicts a label for
    every query cell; the score is the fraction of query cells whose prediction equals
    their true label. Cells with a missing label (NaN / None) are left out: on the
    reference side they do not vote, on the query side they are not scored. ``k`` larger
    than the number of labelled reference cells is lowered to it. A tied vote goes to the
    label that appears first in ``labels_ref``; which of several reference cells tied at
    the ``k``-th distance vote is left to scikit-learn.

    Parameters
    ----------
    x_ref
        Reference embedding (e.g. RNA), shape (n_ref, d).
    labels_ref
        Labels of the reference cells, shape (n_ref,).
    x_query
        Query embedding (e.g. ATAC), shape (n_query, d).
    labels_query
        True labels of the query cells, shape (n_query,); only used for scoring.
    k
        Number of neighbours that vote.
    metric
        ``"l2"`` (Euclidean) or ``"l1"`` (Manhattan).

    Returns
    -------
    Accuracy in [0, 1] over the labelled query cells.

    Examples
    --------
    >>> import numpy as np
    >>> from conaae_scverse.metrics import label_transfer_accuracy
    >>> ref = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> query = np.array([[0.05], [4.9], [0.2]])
    >>> label_transfer_accuracy(ref, ["a", "a", "b", "b"], query, ["a", "b", "b"], k=1)
    0.6666666666666666
    """
    from sklearn.neighbors import KNeighborsClassifier

    check_metric(metric)
    k = check_k(k)
    ref, query = as_embeddings(x_ref, x_query, names=("x_ref", "x_query"))
    codes_ref, codes_query = shared_label_codes(
        labels_ref, len(ref), labels_query, len(query), names=("labels_ref", "labels_query")
    )
    ref_known, query_known = codes_ref >= 0, codes_query >= 0
    if not ref_known.any() or not query_known.any():
        side = "labels_ref" if not ref_known.any() else "labels_query"
        msg = (
            f"{side} has no labelled cells (all missing). Pass labels for at least one "
            "reference and one query cell."
        )
        raise ValueError(msg)
    knn = KNeighborsClassifier(
        n_neighbors=min(k, int(ref_known.sum())), metric=_SKLEARN_METRIC[metric]
    )
    knn.fit(ref[ref_known], codes_ref[ref_known])
    predicted = knn.predict(query[query_known])
    return float(np.mean(predicted == codes_query[query_known]))


def integration_accuracy(
    x: ArrayLike,
    labels_x: ArrayLike,
    y: ArrayLike,
    labels_y: ArrayLike,
    *,
    metric: Metric = "l1",
    one_to_one: bool = True,
) -> float:
    """Compute the Con-AAE paper's integration accuracy: do matched cells share a label.

    Follows the evaluation code of the Con-AAE authors (``conAAE.test`` in
    https://github.com/kakarotcq/Con-AAE, file ``ConAAE/conAAE.py``): the ATAC cells ``y``
    are visited in row order and each is matched to its nearest RNA cell in ``x`` that has
    not been matched yet (a greedy one-to-one matching); the score is the fraction of ATAC
    cells whose matched RNA cell carries the same label. With ``one_to_one=False`` each ATAC
    cell takes its nearest RNA cell, used or not.

    Departures from the reference code, both only matter in edge cases:

    - **Ties are counted against the embedding.** When several available RNA cells are
      equally near, one with a different label is taken if there is one (the reference
      code takes the lowest index, which scores a collapsed embedding perfectly when rows
      are in pair order). With ``one_to_one=False`` a cell counts as correct only if all
      equally-near RNA cells share its label.
    - **Missing labels.** ATAC cells without a label are matched (they still use up an RNA
      cell) but not scored; a match to an RNA cell without a label counts as wrong. ATAC
      cells left without an RNA cell, when ``y`` has more rows than ``x``, count as wrong.

    The reference code uses Euclidean distances; the paper's text, Manhattan (the default
    here). Distances are computed in blocks of ATAC rows: memory O(2048 x n_x). The greedy
    matching depends on the order of the ATAC rows, as in the reference.

    Parameters
    ----------
    x
        RNA embedding, shape (n_x, d).
    labels_x
        Labels of the RNA cells, shape (n_x,).
    y
        ATAC embedding, shape (n_y, d).
    labels_y
        Labels of the ATAC cells, shape (n_y,).
    metric
        ``"l1"`` (Manhattan) or ``"l2"`` (Euclidean).
    one_to_one
        Greedy matching without replacement (the paper's) or plain nearest neighbour.

    Returns
    -------
    Fraction in [0, 1] of labelled ATAC cells whose matched RNA cell has the same label.

    Examples
    --------
    >>> import numpy as np
    >>> from conaae_scverse.metrics import integration_accuracy
    >>> rna = np.array([[0.0], [1.0], [10.0]])
    >>> atac = np.array([[0.2], [0.4], [9.0]])
    >>> integration_accuracy(rna, ["a", "a", "b"], atac, ["a", "a", "b"])
    1.0
    >>> integration_accuracy(rna, ["a", "b", "b"], atac, ["a", "b", "b"], one_to_one=False)
    0.6666666666666666
    """
    check_metric(metric)
    ref, query = as_embeddings(x, y)
    codes_ref, codes_query = shared_label_codes(
        labels_x, len(ref), labels_y, len(query), names=("labels_x", "labels_y")
    )
    scored = codes_query >= 0
    if not scored.any():
        msg = "labels_y has no labelled cells (all missing). Pass labels for the ATAC cells."
        raise ValueError(msg)
    correct = np.zeros(len(query), dtype=bool)
    available = np.ones(len(ref), dtype=bool)
    for start, dist in _distances.distance_blocks(query, ref, metric):
        own = codes_query[start : start + len(dist)]
        if not one_to_one:
            tied = dist == dist.min(axis=1, keepdims=True)
            mismatch = tied & (codes_ref[None, :] != own[:, None])
            correct[start : start + len(dist)] = ~mismatch.any(axis=1)
            continue
        for row in range(len(dist)):
            candidates = np.flatnonzero(available)
            if len(candidates) == 0:
                break  # more ATAC than RNA cells: the rest stay unmatched (wrong)
            d = dist[row, candidates]
            nearest = candidates[d == d.min()]
            wrong = nearest[codes_ref[nearest] != own[row]]
            chosen = wrong[0] if len(wrong) else nearest[0]
            available[chosen] = False
            correct[start + row] = codes_ref[chosen] == own[row]
    return float(np.mean(correct[scored]))


def calibration_error(
    confidence: ArrayLike, correct: ArrayLike, *, n_bins: int = 10
) -> tuple[float, pd.DataFrame]:
    """Compute the expected calibration error of predicted labels and its reliability table.

    Cells are put in ``n_bins`` equal-width bins of their confidence; the error is the mean,
    weighted by bin size, of ``|accuracy - mean confidence|`` per bin (Guo et al. 2017). A
    calibrated confidence of 0.8 is right for 80 % of the cells that get it.

    Parameters
    ----------
    confidence
        Confidence of each prediction, shape (n_cells,), in [0, 1] (e.g.
        ``.obs["conaae_label_confidence"]``).
    correct
        Whether each prediction is right, shape (n_cells,).
    n_bins
        Number of confidence bins.

    Returns
    -------
    The error, in [0, 1], and a DataFrame with one row per non-empty bin: ``low``, ``high``,
    ``n_cells``, ``confidence`` (mean) and ``accuracy``.

    Examples
    --------
    >>> from conaae_scverse.metrics import calibration_error
    >>> ece, table = calibration_error([0.9, 0.9, 0.6, 0.6], [True, True, True, False])
    >>> round(ece, 3)
    0.1
    """
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    hit = np.asarray(correct).reshape(-1)
    if len(conf) != len(hit) or len(conf) == 0:
        msg = (
            f"confidence and correct must be non-empty and of equal length, got {len(conf)} "
            f"and {len(hit)}."
        )
        raise ValueError(msg)
    if not np.isfinite(conf).all() or conf.min() < 0 or conf.max() > 1:
        msg = "confidence must hold finite values in [0, 1]."
        raise ValueError(msg)
    if not isinstance(n_bins, int | np.integer) or n_bins < 1:
        msg = f"n_bins must be a positive integer, got {n_bins!r}."
        raise ValueError(msg)
    hit = hit.astype(bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = which == b
        if inside.any():
            rows.append(
                {
                    "low": edges[b],
                    "high": edges[b + 1],
                    "n_cells": int(inside.sum()),
                    "confidence": float(conf[inside].mean()),
                    "accuracy": float(hit[inside].mean()),
                }
            )
    table = pd.DataFrame(rows)
    error = float((table["n_cells"] * (table["accuracy"] - table["confidence"]).abs()).sum())
    return error / len(conf), table
