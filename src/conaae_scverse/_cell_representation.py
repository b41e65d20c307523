"""Each modality on its own: normalised, log-transformed, standardised, reduced."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ._data import median_cell_total, total_factors

#: Cells of each modality used to fit a representation or an OT coupling (a random subsample).
MAX_FIT_CELLS = 20_000


def median_total_factors(matrix) -> np.ndarray:
    """Per-cell factors that scale each cell's total to the median total (0 for empty cells)."""
    return total_factors(matrix, median_cell_total(matrix))


def log_normalize(matrix, *, log1p: bool) -> sparse.csr_matrix | np.ndarray:
    """Scale each cell to the median total, then log1p (counts) or leave as is."""
    if not log1p:
        return matrix.astype(np.float64) if sparse.issparse(matrix) else np.asarray(matrix, float)
    factors = median_total_factors(matrix)
    if sparse.issparse(matrix):
        out = sparse.csr_matrix(sparse.diags(factors) @ matrix, dtype=np.float64)
        np.log1p(out.data, out=out.data)
        return out
    return np.log1p(np.asarray(matrix, dtype=np.float64) * factors[:, None])


def gene_activity(atac_matrix, links, *, log1p: bool) -> tuple[sparse.csr_matrix, np.ndarray]:
    """ATAC cells x genes: peak values summed over ``links`` (peaks x genes), normalised.

    Returns the activity (:func:`log_normalize`) and the columns with any non-zero value.
    """
    activity = sparse.csr_matrix(atac_matrix, dtype=np.float64) @ sparse.csr_matrix(links)
    activity = log_normalize(sparse.csr_matrix(activity), log1p=log1p)
    return activity, np.flatnonzero(np.asarray((activity != 0).sum(axis=0)).ravel() > 0)


def standardize(x) -> np.ndarray:
    """Dense per-feature z-scores, clipped at 10 (constant features become 0)."""
    x = x.toarray() if sparse.issparse(x) else np.asarray(x, dtype=np.float64)
    std = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return np.clip(z, -10, 10, out=z)


def top_variable(x, n: int) -> np.ndarray:
    """Return the indices of the ``n`` columns of largest variance."""
    if sparse.issparse(x):
        mean = np.asarray(x.mean(axis=0)).ravel()
        var = np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean**2
    else:
        var = np.asarray(x).var(axis=0)
    return np.sort(np.argsort(-var, kind="stable")[:n])


def column_moments(x) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation (constant columns get 1), sparse or dense."""
    if sparse.issparse(x):
        mean = np.asarray(x.mean(axis=0)).ravel()
        var = np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean**2
    else:
        mean, var = x.mean(axis=0), x.var(axis=0)
    std = np.sqrt(np.maximum(var, 0.0))
    return mean, np.where(std > 0, std, 1.0)


def own_representation(matrix, *, log1p: bool, rng: np.random.Generator, n_comps: int = 30):
    """One modality on its own: normalised, log1p (counts), top variable features, PCA.

    The PCA is fitted on at most ``MAX_FIT_CELLS`` cells and applied in blocks, so memory
    stays at one dense block of the selected features, whatever the number of cells.
    """
    from sklearn.decomposition import PCA

    x = log_normalize(matrix, log1p=log1p)
    x = x[:, top_variable(x, 4000)]
    mean, std = column_moments(x)

    def standardized(rows: np.ndarray) -> np.ndarray:
        block = x[rows]
        block = block.toarray() if sparse.issparse(block) else np.asarray(block)
        return np.clip((block - mean) / std, -10, 10)

    n_cells = x.shape[0]
    n_comps = max(1, min(n_comps, n_cells - 1, x.shape[1]))
    pca = PCA(n_comps, svd_solver="randomized", random_state=int(rng.integers(2**31)))
    pca.fit(standardized(subsample(n_cells, MAX_FIT_CELLS, rng)))
    out = np.empty((n_cells, n_comps))
    for start in range(0, n_cells, MAX_FIT_CELLS):
        rows = np.arange(start, min(start + MAX_FIT_CELLS, n_cells))
        out[rows] = pca.transform(standardized(rows))
    return out


def subsample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= limit else np.sort(rng.choice(n, limit, replace=False))


def l2_rows(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)
