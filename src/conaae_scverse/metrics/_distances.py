"""Distances in blocks of query rows, so that no n x n matrix is ever held in memory."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.spatial.distance import cdist

from ._validation import Metric

#: Query rows per block: a block holds ``_CHUNK_SIZE x n_reference`` float64 distances
#: (2048 x 50,000 cells is about 0.8 GB). Tests lower it to exercise the blocking.
_CHUNK_SIZE = 2048

_SCIPY_METRIC = {"l1": "cityblock", "l2": "euclidean"}


def distance_blocks(
    query: np.ndarray, reference: np.ndarray, metric: Metric
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, distances)`` for consecutive blocks of query rows.

    ``distances`` has shape (block_rows, n_reference) and holds the distances of query rows
    ``start : start + block_rows`` to every reference row. Each distance is computed on its
    own pair of rows, so equal pairs of points always get bitwise-equal distances.
    """
    chunk = max(1, int(_CHUNK_SIZE))
    name = _SCIPY_METRIC[metric]
    for start in range(0, len(query), chunk):
        yield start, cdist(query[start : start + chunk], reference, metric=name)
