"""Cross-modal nearest neighbours without an n x n distance matrix."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch
from scvi.utils import track

logger = logging.getLogger(__name__)

Metric = Literal["l1", "l2"]
_P = {"l1": 1.0, "l2": 2.0}
#: Above this many query x reference pairs, "auto" switches to approximate search.
EXACT_LIMIT = 50_000 * 50_000
#: Largest problem for one-to-one matching (the assignment needs the full cost matrix).
ONE_TO_ONE_LIMIT = 5_000
#: Long loops (at least this many blocks) show a progress bar.
PROGRESS_MIN_BLOCKS = 20


def _check_metric(metric: str) -> None:
    if metric not in _P:
        msg = f"metric must be 'l1' or 'l2', got {metric!r}."
        raise ValueError(msg)


def nearest_neighbors(
    query: np.ndarray,
    reference: np.ndarray,
    *,
    k: int = 1,
    metric: Metric = "l1",
    method: Literal["auto", "exact", "approximate"] = "auto",
    chunk_size: int = 2048,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Find the ``k`` nearest reference rows of every query row.

    Parameters
    ----------
    query
        Array of shape (n_query, d).
    reference
        Array of shape (n_reference, d).
    k
        Number of neighbours.
    metric
        ``"l1"`` (Manhattan, as the Con-AAE paper) or ``"l2"`` (Euclidean).
    method
        ``"exact"`` computes distances in blocks of ``chunk_size`` query rows (memory
        O(chunk_size x n_reference)); ``"approximate"`` uses pynndescent; ``"auto"`` is exact
        up to 50k x 50k cells.
    chunk_size
        Query rows per block of the exact search.
    random_state
        Seed of the approximate search.

    Returns
    -------
    Indices and distances, each of shape (n_query, k), nearest first.
    """
    _check_metric(metric)
    query = np.ascontiguousarray(query, dtype=np.float32)
    reference = np.ascontiguousarray(reference, dtype=np.float32)
    k = min(k, len(reference))
    if method == "auto":
        method = "exact" if len(query) * len(reference) <= EXACT_LIMIT else "approximate"
    if method == "approximate":
        return _approximate(query, reference, k=k, metric=metric, random_state=random_state)
    ref = torch.from_numpy(reference)
    indices = np.empty((len(query), k), dtype=np.int64)
    distances = np.empty((len(query), k), dtype=np.float32)
    starts = range(0, len(query), chunk_size)
    for start in track(
        starts, description="Matching cells", disable=len(starts) < PROGRESS_MIN_BLOCKS
    ):
        block = torch.from_numpy(query[start : start + chunk_size])
        dist = torch.cdist(block, ref, p=_P[metric])
        values, idx = torch.topk(dist, k, dim=1, largest=False)
        indices[start : start + len(block)] = idx.numpy()
        distances[start : start + len(block)] = values.numpy()
    return indices, distances


def _approximate(query, reference, *, k, metric, random_state):
    from pynndescent import NNDescent

    logger.info(
        "Approximate nearest neighbours (pynndescent): indexing %d cells, querying %d.",
        len(reference),
        len(query),
    )

    index = NNDescent(
        reference,
        metric="manhattan" if metric == "l1" else "euclidean",
        n_neighbors=max(k, 15),
        random_state=random_state,
        low_memory=True,
        n_jobs=-1,  # all cores: building the index dominates matching on large data
    )
    indices, distances = index.query(query, k=k)
    return indices.astype(np.int64), distances.astype(np.float32)


def one_to_one_matching(
    query: np.ndarray, reference: np.ndarray, *, metric: Metric = "l1"
) -> tuple[np.ndarray, np.ndarray]:
    """Match each query row to a distinct reference row, minimising the total distance.

    Parameters
    ----------
    query, reference
        Arrays of equal shape (n, d), n at most 5,000 (the assignment needs all n x n costs).
    metric
        ``"l1"`` or ``"l2"``.

    Returns
    -------
    Matched reference index and distance for every query row, each of shape (n,).
    """
    from scipy.optimize import linear_sum_assignment

    _check_metric(metric)
    if len(query) != len(reference):
        msg = (
            f"One-to-one matching needs equally many cells in both modalities, got "
            f"{len(query)} and {len(reference)}. Use match='nearest' instead."
        )
        raise ValueError(msg)
    if len(query) > ONE_TO_ONE_LIMIT:
        msg = (
            f"One-to-one matching of {len(query)} cells needs an n x n cost matrix; it is limited "
            f"to {ONE_TO_ONE_LIMIT} cells. Use match='nearest' for larger data."
        )
        raise ValueError(msg)
    cost = torch.cdist(
        torch.as_tensor(query, dtype=torch.float64),
        torch.as_tensor(reference, dtype=torch.float64),
        p=_P[metric],
    ).numpy()
    rows, cols = linear_sum_assignment(cost)
    matched = np.empty(len(query), dtype=np.int64)
    matched[rows] = cols
    return matched, cost[np.arange(len(query)), matched].astype(np.float32)
