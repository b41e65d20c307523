"""Cross-modal nearest neighbours without an n x n distance matrix."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch
from scvi.utils import track

logger = logging.getLogger(__name__)

Metric = Literal["l1", "l2"]
_P = {"l1": 1.0, "l2": 2.0}  # the p of each metric's Minkowski distance
METRICS: tuple[str, ...] = tuple(_P)
#: Above this many query x reference pairs, "auto" switches to approximate search.
EXACT_LIMIT = 50_000 * 50_000
#: Largest problem for one-to-one matching (the assignment needs the full cost matrix).
ONE_TO_ONE_LIMIT = 5_000
#: Long loops (at least this many blocks) show a progress bar.
PROGRESS_MIN_BLOCKS = 20
#: Approximate search: coarse clusters probed per query, and candidates per probed cluster
#: re-ranked by the exact metric, per neighbour asked for (see `_approximate`).
_N_PROBE = 8
_SHORTLIST = 4
_BLOCK_ELEMENTS = 1 << 24  # distances held at once by the approximate search (64 MB)


def check_metric(metric: str) -> None:
    """Raise a ValueError unless ``metric`` is ``"l1"`` or ``"l2"``."""
    if metric not in METRICS:
        msg = (
            f"metric must be 'l1' (Manhattan) or 'l2' (Euclidean), got {metric!r}. "
            "Pass metric='l1' or metric='l2'."
        )
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
        ``"exact"`` computes distances in blocks of query rows (at most 2^24 distances,
        64 MB, at a time); ``"approximate"`` searches an inverted file (k-means
        clusters of the reference, the nearest 8 probed per query, candidates re-ranked by
        the exact metric): about n x 8 sqrt(n) distances instead of n x n, so 1M x 1M cells
        take minutes; ``"auto"`` is exact up to 50k x 50k cells.
    chunk_size
        Largest number of query rows per block of the exact search (fewer when the
        reference is large, so that a block holds at most 2^24 distances).
    random_state
        Seed of the approximate search.

    Returns
    -------
    Indices and distances, each of shape (n_query, k), nearest first.
    """
    check_metric(metric)
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
    # Rows per block: at most chunk_size, and few enough that a block's distances stay small.
    rows = int(np.clip(_BLOCK_ELEMENTS // max(len(ref), 1), 1, chunk_size))
    starts = range(0, len(query), rows)
    for start in track(
        starts, description="Matching cells", disable=len(starts) < PROGRESS_MIN_BLOCKS
    ):
        block = torch.from_numpy(query[start : start + rows])
        dist = torch.cdist(block, ref, p=_P[metric])
        values, idx = torch.topk(dist, k, dim=1, largest=False)
        indices[start : start + len(block)] = idx.numpy()
        distances[start : start + len(block)] = values.numpy()
    return indices, distances


def _approximate(query, reference, *, k, metric, random_state):
    """Inverted-file search: probe the nearest coarse clusters, re-rank candidates exactly.

    The reference rows are grouped into about sqrt(n) clusters by k-means. Each query row is
    compared with the rows of its ``_N_PROBE`` nearest clusters only: first by
    Euclidean distance (matrix products, fast), keeping ``_SHORTLIST * k`` candidates per
    cluster, then by the exact ``metric`` on those candidates. That costs about n x ``_N_PROBE`` x
    sqrt(n) distances instead of n x n, and every returned distance is exact.
    """
    generator = torch.Generator().manual_seed(random_state)
    ref = torch.from_numpy(reference)
    n_lists = int(np.clip(round(np.sqrt(len(ref))), 1, 4096))
    centroids = _kmeans(ref, n_lists, generator=generator)
    n_probe = min(_N_PROBE, len(centroids))
    logger.info(
        "Approximate nearest neighbours: %d reference cells in %d clusters, %d queries probing "
        "%d clusters each.",
        len(ref),
        len(centroids),
        len(query),
        n_probe,
    )
    ref_list = _nearest_centroids(ref, centroids, 1)[:, 0]
    order = torch.argsort(ref_list)
    bounds = torch.searchsorted(ref_list[order], torch.arange(len(centroids) + 1))

    queries = torch.from_numpy(query)
    probes = _nearest_centroids(queries, centroids, n_probe)  # (n_query, n_probe)
    pair_query = torch.arange(len(queries)).repeat_interleave(n_probe)
    pair_list = probes.reshape(-1)
    pair_order = torch.argsort(pair_list, stable=True)
    pair_bounds = torch.searchsorted(pair_list[pair_order], torch.arange(len(centroids) + 1))
    # Best k candidates of each (query, probed cluster) pair; merged per query at the end.
    found_dist = torch.full((len(pair_list), k), float("inf"))
    found_idx = torch.zeros((len(pair_list), k), dtype=torch.int64)
    lists = [c for c in range(len(centroids)) if pair_bounds[c + 1] > pair_bounds[c]]
    for c in track(lists, description="Matching cells", disable=len(lists) < PROGRESS_MIN_BLOCKS):
        members = order[bounds[c] : bounds[c + 1]]
        if len(members) == 0:
            continue
        block_ref = ref[members]
        n_short = min(_SHORTLIST * k, len(members))
        n_keep = min(k, n_short)
        pairs_of_list = pair_order[pair_bounds[c] : pair_bounds[c + 1]]
        step = max(1, _BLOCK_ELEMENTS // len(members))  # bounds memory on large clusters
        for first in range(0, len(pairs_of_list), step):
            pairs = pairs_of_list[first : first + step]
            block_queries = queries[pair_query[pairs]]
            euclidean = torch.cdist(block_queries, block_ref)  # matrix products: fast
            shortlist = torch.topk(euclidean, n_short, dim=1, largest=False).indices
            diff = (block_ref[shortlist] - block_queries[:, None, :]).abs_()
            dist = diff.sum(-1) if metric == "l1" else diff.pow_(2).sum(-1).sqrt_()
            values, positions = torch.topk(dist, n_keep, dim=1, largest=False)
            found_dist[pairs, :n_keep] = values
            found_idx[pairs, :n_keep] = members[torch.gather(shortlist, 1, positions)]
    found_dist = found_dist.reshape(len(queries), n_probe * k)
    found_idx = found_idx.reshape(len(queries), n_probe * k)
    values, positions = torch.topk(found_dist, k, dim=1, largest=False)
    indices = torch.gather(found_idx, 1, positions)
    return indices.numpy().astype(np.int64), values.numpy().astype(np.float32)


def _nearest_centroids(points: torch.Tensor, centroids: torch.Tensor, n: int) -> torch.Tensor:
    """Find the ``n`` nearest centroids (Euclidean) of every point, in blocks of rows."""
    out = torch.empty((len(points), n), dtype=torch.int64)
    rows = max(1, _BLOCK_ELEMENTS // len(centroids))
    for start in range(0, len(points), rows):
        block = points[start : start + rows]
        out[start : start + len(block)] = torch.topk(
            torch.cdist(block, centroids), n, dim=1, largest=False
        ).indices
    return out


def _kmeans(
    points: torch.Tensor, n_clusters: int, *, generator: torch.Generator, n_iter: int = 10
) -> torch.Tensor:
    """Centroids of Lloyd's k-means on a random sample of at most 64 points per cluster."""
    n_sample = min(len(points), 64 * n_clusters)
    sample = points[torch.randperm(len(points), generator=generator)[:n_sample]]
    centroids = sample[:n_clusters].clone()
    for _ in range(n_iter):
        assignment = _nearest_centroids(sample, centroids, 1)[:, 0]
        sums = torch.zeros_like(centroids).index_add_(0, assignment, sample)
        counts = torch.bincount(assignment, minlength=n_clusters)
        filled = counts > 0  # an empty cluster keeps its old centre
        centroids[filled] = sums[filled] / counts[filled, None].to(sums.dtype)
    return centroids


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

    check_metric(metric)
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
