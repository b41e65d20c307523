"""Principal axes of a modality's standardised features, fitted once before training.

A wide modality (e.g. 100k peaks) enters the networks as its scores on the top principal
axes of the standardised features the encoder would otherwise see, as scanpy's ``scale`` then
``pca`` and scGLUE's ``use_rep`` do. The scores of all cells are computed once, so training
costs the same for 1k or 100k features; the axes are buffers of the module, saved with it, so
new cells are projected the same way.

The fit never densifies a sparse matrix: standardisation maps a zero entry of feature ``j`` to
the constant ``z0[j]``, so the standardised matrix is ``C + 1 z0^T`` with ``C`` as sparse as
the input, and every product of the randomised SVD (Halko, Martinsson & Tropp 2011) splits
into a sparse product plus a rank-one term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ._data import transformed_rows

CLIP = 10.0  # standardised values are clipped like `sc.pp.scale(max_value=10)`
_OVERSAMPLE = 10
_POWER_ITERATIONS = 4


@dataclass(frozen=True)
class Projection:
    """Top principal axes of one modality's standardised features.

    ``scores = (z @ components - score_mean) / score_scale`` for standardised rows ``z``;
    the scores of the fitted cells have mean 0 and mean variance 1 over the components (the
    axes keep their relative variances).
    """

    components: np.ndarray  # (n_features, n_components)
    score_mean: np.ndarray  # (n_components,)
    score_scale: float
    explained_variance_ratio: np.ndarray  # (n_components,), of the fitted cells' total


def standardized_zero(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Return the standardised value of a zero entry of each feature (log1p(0) = 0)."""
    return np.clip(-mean / std, -CLIP, CLIP)


def _standardized_correction(
    block: sparse.csr_matrix, mean: np.ndarray, std: np.ndarray, zero: np.ndarray, **transform
) -> sparse.csr_matrix:
    """``z - z0`` of a sparse block: non-zero only where the input is.

    ``transform``: the ``log1p`` and ``cell_total`` of :func:`._data.transformed_rows`.
    """
    block = transformed_rows(block, **transform)
    cols = block.indices
    block.data = np.clip((block.data - mean[cols]) / std[cols], -CLIP, CLIP) - zero[cols]
    return block


def _standardized_dense(
    block: np.ndarray, mean: np.ndarray, std: np.ndarray, **transform
) -> np.ndarray:
    return np.clip((transformed_rows(block, **transform) - mean) / std, -CLIP, CLIP)


def fit_projection(
    matrix: np.ndarray | sparse.spmatrix,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    log1p: bool,
    cell_total: float = 0.0,
    n_components: int,
    max_cells: int = 20_000,
    seed: int = 0,
) -> Projection:
    """Principal axes of the standardised rows of ``matrix`` by randomised SVD.

    Parameters
    ----------
    matrix
        Cells x features, dense or sparse (raw values, as registered).
    mean, std
        Per-feature moments of the (log1p-transformed) values; ``std`` has no zeros.
    log1p
        Whether values are log1p-transformed before standardisation.
    cell_total
        Total each cell is scaled to before log1p (0: no scaling).
    n_components
        Number of axes, fewer than the features.
    max_cells
        The axes are fitted on at most this many cells, drawn at random (``seed``): a few
        thousand cells pin down the top axes, and the cost then stays bounded for atlases.
    seed
        Seed of the cell subsample and of the random test matrix.
    """
    rng = np.random.default_rng(seed)
    n_obs, n_vars = matrix.shape
    rows = np.arange(n_obs) if n_obs <= max_cells else np.sort(rng.choice(n_obs, max_cells, False))
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    zero = standardized_zero(mean, std)
    transform = {"log1p": log1p, "cell_total": cell_total}
    if not isinstance(matrix, np.ndarray):  # sparse, in memory or on disk: read the rows
        corr = _standardized_correction(matrix[rows], mean, std, zero, **transform)
        shift = np.asarray(corr.mean(axis=0)).ravel()  # column means of z - z0
        total_variance = float(corr.multiply(corr).sum() / len(rows) - (shift**2).sum())
        # float32 products over CSR of the transpose: each product then walks the small
        # (cells-side) operand in cache order, several times faster than `corr @ right`.
        corr_t = corr.T.tocsr().astype(np.float32)
        del corr

        def times(right: np.ndarray) -> np.ndarray:  # (z - colmean) @ right
            return corr_t.T @ right.astype(np.float32) - shift @ right

        def times_t(left: np.ndarray) -> np.ndarray:  # (z - colmean).T @ left
            return corr_t @ left.astype(np.float32) - np.outer(shift, left.sum(axis=0))

        column_mean = zero + shift
    else:
        z = _standardized_dense(np.asarray(matrix)[rows], mean, std, **transform)
        column_mean = z.mean(axis=0)
        z -= column_mean
        total_variance = float((z**2).sum() / len(rows))

        def times(right: np.ndarray) -> np.ndarray:
            return z @ right

        def times_t(left: np.ndarray) -> np.ndarray:
            return z.T @ left

    # Randomised range finder on the cells side (the narrow one for wide inputs): only
    # (cells x l) blocks are orthonormalised.
    width = min(n_components + _OVERSAMPLE, n_vars, len(rows))
    basis = np.linalg.qr(times(rng.standard_normal((n_vars, width))))[0]
    for _ in range(_POWER_ITERATIONS):
        basis = np.linalg.qr(times(times_t(basis)))[0]
    # SVD of the small factor B = basis.T @ z through its (l x l) Gram matrix.
    factor_t = np.asarray(times_t(basis), dtype=np.float64)  # (features x l) = B.T
    eigenvalues, eigenvectors = np.linalg.eigh(factor_t.T @ factor_t)
    order = np.argsort(eigenvalues)[::-1][:n_components]
    singular = np.sqrt(np.maximum(eigenvalues[order], 0.0))
    components = factor_t @ eigenvectors[:, order] / np.maximum(singular, 1e-12)
    # Deterministic signs: the largest loading of each axis is positive.
    signs = np.sign(components[np.abs(components).argmax(axis=0), range(components.shape[1])])
    components *= np.where(signs == 0, 1.0, signs)
    variances = singular[:n_components] ** 2 / len(rows)
    return Projection(
        components=components.astype(np.float32),
        score_mean=(column_mean @ components).astype(np.float32),
        score_scale=float(np.sqrt(max(variances.mean(), 1e-12))),
        explained_variance_ratio=(variances / max(total_variance, 1e-12)).astype(np.float32),
    )


def fit_input_statistics(
    module,
    matrices: dict,
    log1p: dict,
    n_components: dict,
    mod_name,
    seed: int,
    cell_total: dict,
) -> None:
    """Set a new module's per-feature moments and, where asked, principal axes from the data.

    Parameters
    ----------
    module
        The :class:`~conaae_scverse._module.ConAAEModule` to fill.
    matrices
        The registered matrix of each modality.
    log1p
        Whether each modality holds counts.
    n_components
        Principal axes of each modality (0: none).
    mod_name
        Callable giving the user's name of a modality, for errors.
    seed
        Seed of the projection fits.
    cell_total
        Total each modality's cells are scaled to first (0: no scaling).

    Raises
    ------
    ValueError
        A modality's values are too large to standardise.
    """
    import torch

    from ._data import feature_moments

    for mod, matrix in matrices.items():
        transform = {"log1p": log1p[mod], "cell_total": cell_total[mod]}
        with np.errstate(over="ignore", invalid="ignore"):  # overflow: checked below
            mean, std = feature_moments(matrix, **transform)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            msg = (
                f"Modality {mod_name(mod)!r} has values too large to standardise (their squares "
                "overflow float64). Scale them down or log-transform them first."
            )
            raise ValueError(msg)
        module.set_feature_moments(
            mod,
            torch.as_tensor(mean, dtype=torch.float32),
            torch.as_tensor(std, dtype=torch.float32),
        )
        if n_components[mod]:
            projection = fit_projection(
                matrix,
                mean,
                np.where(std > 1e-8, std, 1.0),
                **transform,
                n_components=n_components[mod],
                seed=seed,
            )
            module.set_projection(mod, projection)
