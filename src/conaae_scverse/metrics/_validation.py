"""Input checks shared by the metrics: embeddings, metrics, neighbour counts and labels."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

# One home for the metric names and their check: the nearest-neighbour search's module.
from .._neighbors import Metric, check_metric

__all__ = ["Metric", "check_metric"]


def as_embedding(x: Any, name: str) -> np.ndarray:
    """Convert an array-like to a finite float64 array of shape (n_cells, n_dims)."""
    if sparse.issparse(x):
        x = x.toarray()
    try:
        array = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        msg = (
            f"{name} must be a numeric array of shape (n_cells, n_dims); converting it to "
            f"float failed ({err}). Pass an embedding such as adata.obsm['X_conaae']."
        )
        raise ValueError(msg) from err
    if array.ndim != 2:
        msg = (
            f"{name} must be 2-D of shape (n_cells, n_dims), got {array.ndim}-D with shape "
            f"{array.shape}. Reshape it, e.g. x.reshape(-1, 1) for a single dimension."
        )
        raise ValueError(msg)
    if array.shape[0] == 0 or array.shape[1] == 0:
        msg = (
            f"{name} is empty (shape {array.shape}); it needs at least one cell and one dimension."
        )
        raise ValueError(msg)
    if not np.isfinite(array).all():
        n_bad = int((~np.isfinite(array)).sum())
        msg = (
            f"{name} has {n_bad} NaN or infinite values. Remove or impute those cells before "
            "computing metrics."
        )
        raise ValueError(msg)
    return array


def as_embeddings(x: Any, y: Any, names: tuple[str, str] = ("x", "y")) -> tuple[np.ndarray, ...]:
    """Check two embeddings that live in the same space (equal number of columns)."""
    a, b = as_embedding(x, names[0]), as_embedding(y, names[1])
    if a.shape[1] != b.shape[1]:
        msg = (
            f"{names[0]} and {names[1]} must have the same number of columns (the dimensions of "
            f"the joint embedding), got {a.shape[1]} and {b.shape[1]}."
        )
        raise ValueError(msg)
    return a, b


def as_paired(x: Any, y: Any, *, min_cells: int = 1) -> tuple[np.ndarray, ...]:
    """Check two embeddings whose rows are pairs: equal shapes, at least ``min_cells`` rows."""
    a, b = as_embeddings(x, y)
    if a.shape[0] != b.shape[0]:
        msg = (
            f"x and y must have equally many rows (row i of x is the partner of row i of y), got "
            f"{a.shape[0]} and {b.shape[0]}. Subset both to the known pairs first, e.g. with "
            "conaae_scverse.metrics.pairs_from_mudata."
        )
        raise ValueError(msg)
    if a.shape[0] < min_cells:
        msg = f"This metric needs at least {min_cells} pairs of cells, got {a.shape[0]}."
        raise ValueError(msg)
    return a, b


def check_k(k: Any, name: str = "k") -> int:
    """Return ``k`` as an int after checking that it is a positive integer."""
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        msg = f"{name} must be a positive integer, got {k!r}."
        raise ValueError(msg)
    return int(k)


def check_ks(ks: Iterable[Any]) -> list[int]:
    """Check a non-empty collection of positive integers."""
    if isinstance(ks, Integral):
        ks = [ks]
    values = [check_k(k, "each k in ks") for k in ks]
    if not values:
        msg = "ks is empty; pass at least one neighbourhood size, e.g. ks=(1, 5, 10)."
        raise ValueError(msg)
    return values


def _as_label_series(labels: Any, n: int, name: str) -> pd.Series:
    values = np.asarray(labels, dtype=object)
    if values.ndim != 1 or len(values) != n:
        msg = (
            f"{name} must be 1-D with one label per cell ({n}), got shape {values.shape}. "
            "Pass e.g. adata.obs['cell_type']."
        )
        raise ValueError(msg)
    return pd.Series(values, dtype=object)


def shared_label_codes(
    labels_a: Any, n_a: int, labels_b: Any, n_b: int, names: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of two label vectors on a shared vocabulary; missing labels get -1."""
    a = _as_label_series(labels_a, n_a, names[0])
    b = _as_label_series(labels_b, n_b, names[1])
    codes, _ = pd.factorize(pd.concat([a, b], ignore_index=True), use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    return codes[:n_a], codes[n_a:]
