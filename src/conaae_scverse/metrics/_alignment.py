"""Pair-level alignment metrics: recall@k and FOSCTTM."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike

from . import _distances
from ._validation import Metric, as_paired, check_k, check_ks, check_metric

#: Relative difference below which two distances are equal (rounding of float64 sums).
_TIE_TOLERANCE = 1e-12


def _closer_counts(x: np.ndarray, y: np.ndarray, metric: Metric) -> np.ndarray:
    """For each row i of x, how many rows j != i of y are at most as far as y[i].

    Ties count as closer (pessimistic), so the count is the worst rank of the true partner
    among y's rows, 0-based. Distances equal up to rounding (a relative ``_TIE_TOLERANCE``:
    the same distance summed over coordinates in another order) are ties too. Shape (n,),
    int64. Memory O(chunk x n).
    """
    counts = np.empty(len(x), dtype=np.int64)
    for start, dist in _distances.distance_blocks(x, y, metric):
        rows = np.arange(len(dist))
        true = dist[rows, start + rows]
        # the partner itself always satisfies ``<=`` (same value): subtract it
        bound = true + _TIE_TOLERANCE * np.abs(true)
        counts[start : start + len(dist)] = (dist <= bound[:, None]).sum(axis=1) - 1
    return counts


def chance_recall_at_k(n: int, k: int) -> float:
    """Recall@k of an embedding that carries no information about the pairing.

    Under the tie convention of :func:`recall_at_k`, a random embedding puts the true partner
    at a uniformly random rank among ``n`` candidates, so its expected recall is ``k / n``
    (1 once ``k >= n``).

    Parameters
    ----------
    n
        Number of pairs (candidates per query).
    k
        Neighbourhood size.

    Returns
    -------
    ``min(k, n) / n``, a float in (0, 1].

    Examples
    --------
    >>> from conaae_scverse.metrics import chance_recall_at_k
    >>> chance_recall_at_k(1000, 10)
    0.01
    """
    n = check_k(n, "n")
    k = check_k(k)
    return min(k, n) / n


def recall_at_k_curve(
    x: ArrayLike,
    y: ArrayLike,
    ks: Iterable[int] = (1, 5, 10, 20, 50),
    *,
    metric: Metric = "l1",
) -> dict[int, float]:
    """Recall@k for several ``k`` from a single pass over the distances.

    See :func:`recall_at_k` for the definition and the tie convention.

    Parameters
    ----------
    x
        RNA embedding, shape (n, d); row i is the partner of row i of ``y``.
    y
        ATAC embedding, shape (n, d).
    ks
        Positive neighbourhood sizes.
    metric
        ``"l1"`` (Manhattan) or ``"l2"`` (Euclidean).

    Returns
    -------
    Mapping from each ``k`` to its recall, a float in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from conaae_scverse.metrics import recall_at_k_curve
    >>> x = np.array([[0.0], [1.0], [5.0], [9.0]])
    >>> recall_at_k_curve(x, x[[1, 0, 2, 3]], ks=(1, 2))
    {1: 0.5, 2: 1.0}
    """
    check_metric(metric)
    ks_ = check_ks(ks)
    a, b = as_paired(x, y)
    counts = _closer_counts(a, b, metric)
    return {k: float(np.mean(counts < k)) for k in ks_}


def recall_at_k(x: ArrayLike, y: ArrayLike, k: int = 10, *, metric: Metric = "l1") -> float:
    """Fraction of RNA cells whose true ATAC partner is among their ``k`` nearest ATAC cells.

    The Con-AAE paper's alignment score. Row ``i`` of ``x`` and row ``i`` of ``y`` are true
    partners; each RNA cell ``x[i]`` queries all ``n`` ATAC cells.

    **Ties are counted against the embedding.** Let ``c_i`` be the number of ATAC cells
    ``j != i`` with ``dist(x[i], y[j]) <= dist(x[i], y[i])``: rows at exactly the partner's
    distance count as closer. Cell ``i`` is a hit when ``c_i < k``, and the recall is the
    mean over cells. A collapsed embedding (all points equal) therefore scores 0 for every
    ``k < n`` rather than a spurious 1; on continuous embeddings the convention agrees with
    any tie-breaking. ``k >= n`` always gives 1.

    Distances are computed for blocks of query rows, so memory is O(2048 x n), never n x n.
    The Con-AAE reference code queries in the other direction (ATAC cells against RNA cells):
    call ``recall_at_k(y, x, ...)`` for that.

    Parameters
    ----------
    x
        RNA embedding, shape (n, d).
    y
        ATAC embedding, shape (n, d); row i is the partner of ``x[i]``.
    k
        Neighbourhood size, a positive integer.
    metric
        ``"l1"`` (Manhattan, as in the paper's text) or ``"l2"`` (Euclidean, as in the
        paper's code).

    Returns
    -------
    Recall in [0, 1]; compare with :func:`chance_recall_at_k` (``k / n``).

    Examples
    --------
    >>> import numpy as np
    >>> from conaae_scverse.metrics import recall_at_k
    >>> x = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    >>> recall_at_k(x, x + 0.1, k=1)
    1.0
    >>> recall_at_k(np.zeros((3, 2)), np.zeros((3, 2)), k=2)
    0.0
    """
    return recall_at_k_curve(x, y, ks=(check_k(k),), metric=metric)[int(k)]


def foscttm_per_cell(
    x: ArrayLike, y: ArrayLike, *, metric: Metric = "l2"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell Fraction Of Samples Closer Than the True Match, in both directions.

    Parameters
    ----------
    x
        RNA embedding, shape (n, d), n >= 2; row i is the partner of ``y[i]``.
    y
        ATAC embedding, shape (n, d).
    metric
        ``"l2"`` (Euclidean, as SCOT) or ``"l1"``.

    Returns
    -------
    Two float arrays of shape (n,): for each ``x[i]`` the fraction of the ``n - 1`` other
    rows of ``y`` at most as far from it as ``y[i]``, and the same for each ``y[i]`` against
    the rows of ``x``. See :func:`foscttm` for the tie convention.

    Examples
    --------
    >>> import numpy as np
    >>> from conaae_scverse.metrics import foscttm_per_cell
    >>> x = np.array([[0.0], [1.0], [3.0]])
    >>> fx, fy = foscttm_per_cell(x, x[[1, 0, 2]])
    >>> fx.tolist(), fy.tolist()
    ([0.5, 0.5, 0.0], [0.5, 0.5, 0.0])
    """
    check_metric(metric)
    a, b = as_paired(x, y, min_cells=2)
    denominator = len(a) - 1
    return (
        _closer_counts(a, b, metric) / denominator,
        _closer_counts(b, a, metric) / denominator,
    )


def foscttm(x: ArrayLike, y: ArrayLike, *, metric: Metric = "l2") -> float:
    """Fraction Of Samples Closer Than the True Match (FOSCTTM), averaged over both directions.

    As defined for SCOT (Demetci et al., J. Comput. Biol. 2022): for each ``x[i]``, the
    fraction of the ``n - 1`` other rows of ``y`` that are closer to it than its true match
    ``y[i]``; likewise for each ``y[i]`` against the rows of ``x``; the result is the mean
    over all ``2n`` fractions. 0 is a perfect alignment, about 0.5 a random one.

    **Ties are counted against the embedding**: rows at exactly the true match's distance
    count as closer (SCOT's reference code counts only strictly closer rows, which scores a
    collapsed embedding 0, i.e. perfect). Here an all-equal embedding scores 1. On continuous
    embeddings both conventions agree. Memory is O(2048 x n).

    Parameters
    ----------
    x
        RNA embedding, shape (n, d), n >= 2; row i is the partner of ``y[i]``.
    y
        ATAC embedding, shape (n, d).
    metric
        ``"l2"`` (Euclidean, as SCOT) or ``"l1"``.

    Returns
    -------
    FOSCTTM in [0, 1]; lower is better.

    Examples
    --------
    >>> import numpy as np
    >>> from conaae_scverse.metrics import foscttm
    >>> x = np.array([[0.0], [1.0], [3.0]])
    >>> foscttm(x, x)
    0.0
    >>> foscttm(np.ones((4, 2)), np.ones((4, 2)))
    1.0
    """
    fx, fy = foscttm_per_cell(x, y, metric=metric)
    return float((fx.mean() + fy.mean()) / 2)
