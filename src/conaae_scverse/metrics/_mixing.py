"""How well the two modalities mix in the joint embedding."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _distances
from ._validation import Metric, as_embeddings, check_k, check_metric


def modality_mixing(x: ArrayLike, y: ArrayLike, *, k: int = 15, metric: Metric = "l2") -> float:
    """Score in [0, 1] of how well RNA and ATAC cells mix in the joint embedding.

    The two embeddings are pooled (``N = n_x + n_y`` cells). For each cell, let ``f`` be the
    fraction of its ``k`` nearest neighbours in the pool (itself excluded) that come from
    the *other* modality, and ``e`` the fraction expected under perfect mixing,
    ``n_other / (N - 1)``. The cell scores ``min(f / e, 1)``; the result is the mean over all
    ``N`` cells. Fully separated modalities score 0, perfectly interleaved ones about 1.
    Mixing alone does not reward alignment: a collapsed embedding (all cells at one point)
    also scores 1, so read it together with :func:`recall_at_k` or :func:`foscttm`.

    Neighbours tied at the ``k``-th distance share the remaining places in proportion (the
    expectation under random tie-breaking), so the score does not depend on row order.
    ``k`` larger than ``N - 1`` is lowered to ``N - 1``. The search runs over blocks of
    cells: memory O(2048 x N), never N x N. The cells need not be paired.

    Parameters
    ----------
    x
        RNA embedding, shape (n_x, d).
    y
        ATAC embedding, shape (n_y, d).
    k
        Number of neighbours, a positive integer.
    metric
        ``"l2"`` (Euclidean) or ``"l1"`` (Manhattan).

    Returns
    -------
    Mixing score in [0, 1]; higher is better mixed.

    Examples
    --------
    >>> import numpy as np
    >>> from conaae_scverse.metrics import modality_mixing
    >>> x = np.array([[0.0], [0.1]])
    >>> modality_mixing(x, x + 100.0, k=1)
    0.0
    >>> modality_mixing(np.array([[0.0], [2.0]]), np.array([[1.0], [3.0]]), k=1)
    1.0
    """
    check_metric(metric)
    k = check_k(k)
    a, b = as_embeddings(x, y)
    pooled = np.concatenate([a, b])
    n_x, n_y = len(a), len(b)
    n = n_x + n_y
    k = min(k, n - 1)
    is_y = np.arange(n) >= n_x
    expected = np.where(is_y, n_x, n_y) / (n - 1)
    scores = np.empty(n, dtype=np.float64)
    for start, dist in _distances.distance_blocks(pooled, pooled, metric):
        block = slice(start, start + len(dist))
        rows = np.arange(len(dist))
        dist[rows, start + rows] = np.inf  # a cell is not its own neighbour
        radius = np.partition(dist, k - 1, axis=1)[:, k - 1][:, None]
        # the pooled columns are [x | y]: count per modality on contiguous slices
        closer_x = (dist[:, :n_x] < radius).sum(axis=1)
        closer_y = (dist[:, n_x:] < radius).sum(axis=1)
        tied_x = (dist[:, :n_x] == radius).sum(axis=1)
        tied_y = (dist[:, n_x:] == radius).sum(axis=1)
        # the cell itself (at inf) ties only when the k-th distance overflowed to inf
        self_tied = np.isinf(radius[:, 0])
        row_is_y = is_y[block]
        tied_x -= self_tied & ~row_is_y
        tied_y -= self_tied & row_is_y
        other_closer = np.where(row_is_y, closer_x, closer_y)
        other_tied = np.where(row_is_y, tied_x, tied_y)
        n_closer = closer_x + closer_y
        n_other = other_closer + (k - n_closer) * other_tied / (tied_x + tied_y)
        scores[block] = np.minimum(n_other / k / expected[block], 1.0)
    return float(scores.mean())
