"""Distances in blocks of query rows, so that no n x n matrix is ever held in memory."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ._validation import Metric

#: Query rows per block: a block holds ``_CHUNK_SIZE x n_reference`` float64 distances
#: (2048 x 50,000 cells is about 0.8 GB). Tests lower it to exercise the blocking.
_CHUNK_SIZE = 2048

_P = {"l1": 1.0, "l2": 2.0}


def cdist(query: np.ndarray, reference: np.ndarray, metric: Metric) -> np.ndarray:
    """Exact float64 distances of shape (n_query, n_reference), one pair at a time.

    Uses :func:`torch.cdist` (multi-threaded on CPU) without the matrix-product shortcut for
    Euclidean distances: that shortcut is faster but rounds equal pairs of points to
    slightly different distances, which would break exact ties.
    """
    out = torch.cdist(
        torch.from_numpy(np.ascontiguousarray(query, dtype=np.float64)),
        torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float64)),
        p=_P[metric],
        compute_mode="donot_use_mm_for_euclid_dist",
    )
    return out.numpy()


def distance_blocks(
    query: np.ndarray, reference: np.ndarray, metric: Metric
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, distances)`` for consecutive blocks of query rows.

    ``distances`` has shape (block_rows, n_reference) and holds the distances of query rows
    ``start : start + block_rows`` to every reference row, so memory is
    O(``_CHUNK_SIZE`` x n_reference). Each distance depends only on its own pair of rows, so
    equal pairs of points get bitwise-equal distances wherever they sit.
    """
    chunk = max(1, int(_CHUNK_SIZE))
    for start in range(0, len(query), chunk):
        yield start, cdist(query[start : start + chunk], reference, metric)
