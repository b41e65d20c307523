"""Checks and access of the two modalities of a MuData, and each modality's AnnDataManager.

The managers are built on small internal AnnData objects that share the user's matrices
without copying them, so that registration (``_registration``) never writes into the user's
MuData.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import anndata as ad
import numpy as np
import pandas as pd
import torch
from scipy import sparse

from ._cell_columns import ANCHOR_BY_OBS_NAMES as ANCHOR_BY_OBS_NAMES
from ._cell_columns import anchor_pairs as anchor_pairs
from ._cell_columns import batch_categories as batch_categories
from ._cell_columns import batch_codes as batch_codes
from ._cell_columns import label_categories as label_categories
from ._cell_columns import label_codes as label_codes
from ._cell_columns import partner_indices as partner_indices
from ._cell_columns import unlabelled_modalities as unlabelled_modalities
from ._compat import AnnDataManager, LayerField, NumericalObsField
from ._constants import MODALITIES, REGISTRY_KEYS

if TYPE_CHECKING:
    from mudata import MuData

logger = logging.getLogger(__name__)

_LABEL_CODES_COLUMN = "_conaae_labels"
_BATCH_CODES_COLUMN = "_conaae_batch"
_INDEX_COLUMN = "_conaae_index"
_ROW_CHUNK = 8192


@dataclass(frozen=True)
class SetupArgs:
    """What :meth:`ConAAE.setup_mudata` recorded about a MuData."""

    rna_mod: str
    atac_mod: str
    rna_layer: str | None
    atac_layer: str | None
    labels_key: str | None
    anchor_key: str | None
    batch_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable form."""
        return asdict(self)

    def mod_name(self, modality: str) -> str:
        """Name in ``mdata.mod`` of the internal modality ``"rna"`` or ``"atac"``."""
        return self.rna_mod if modality == MODALITIES.RNA else self.atac_mod

    def layer(self, modality: str) -> str | None:
        """Return the registered layer of the internal modality (``None`` is ``X``)."""
        return self.rna_layer if modality == MODALITIES.RNA else self.atac_layer


def _check_is_mudata(mdata: Any) -> None:
    from mudata import MuData

    if not isinstance(mdata, MuData):
        msg = (
            f"Expected a mudata.MuData, got {type(mdata).__name__}. Build one with "
            "`mudata.MuData({'rna': adata_rna, 'atac': adata_atac})`."
        )
        raise TypeError(msg)


def check_mudata(mdata: Any) -> None:
    """Fail on anything that is not a MuData (in memory, or backed with CSR matrices)."""
    _check_is_mudata(mdata)


def is_backed_sparse(matrix: Any) -> bool:
    """Whether ``matrix`` is a sparse matrix on disk (anndata's backed CSR or CSC dataset)."""
    return isinstance(matrix, ad.abc.CSRDataset | ad.abc.CSCDataset)


def is_sparse(matrix: Any) -> bool:
    """Whether ``matrix`` is sparse, in memory (scipy) or on disk (backed)."""
    return sparse.issparse(matrix) or is_backed_sparse(matrix)


def row_blocks(matrix: Any, size: int = 10_000):
    """Consecutive row blocks of a dense, sparse or backed matrix (sparse blocks as CSR)."""
    for start in range(0, matrix.shape[0], size):
        yield matrix[start : start + size]


def get_modality(
    mdata: MuData, mod_name: str, role: str, *, needs_features: bool = True
) -> ad.AnnData:
    """Return the AnnData of modality ``mod_name``; fail clearly if it is missing or empty.

    ``role`` (``"rna"`` or ``"atac"``) names the argument in errors: ``rna_mod``/``atac_mod``.
    ``needs_features=False`` (the metrics, which read only obs and obsm) skips the checks of
    the modality's shape and of unique names.
    """
    _check_is_mudata(mdata)
    if not isinstance(mod_name, str):
        msg = f"`{role}_mod` must be a string naming a modality, got {mod_name!r}."
        raise TypeError(msg)
    if mod_name not in mdata.mod:
        msg = (
            f"Modality {mod_name!r} (given as `{role}_mod`) is not in the MuData; available "
            f"modalities: {list(mdata.mod)}. Pass `{role}_mod=` one of these."
        )
        raise KeyError(msg)
    adata = mdata.mod[mod_name]
    if not needs_features:
        return adata
    if adata.n_obs == 0 or adata.n_vars == 0:
        msg = (
            f"Modality {mod_name!r} has shape {adata.shape}: it needs at least one cell and one "
            "feature. Check the filtering steps that produced it."
        )
        raise ValueError(msg)
    for axis, why in (
        ("obs", "cell matches would be ambiguous"),
        ("var", "features could not be matched on new data"),
    ):
        names = getattr(adata, f"{axis}_names")
        if not names.is_unique:
            dup = names[names.duplicated()][:3].tolist()
            msg = (
                f"Modality {mod_name!r} has duplicate {axis}_names (e.g. {dup}); {why}. Make "
                f"them unique, e.g. `mdata.mod[{mod_name!r}].{axis}_names_make_unique()`."
            )
            raise ValueError(msg)
    return adata


def dense_rows(matrix, rows: np.ndarray) -> torch.Tensor:
    """Rows of a dense, sparse or backed matrix as a dense float32 tensor."""
    if is_backed_sparse(matrix):  # reads rows in file order, then restores the asked order
        order = np.argsort(rows)
        block = matrix[rows[order]][np.argsort(order)]
    else:
        block = matrix[rows]
    if sparse.issparse(block):
        block = block.toarray()
    return torch.as_tensor(np.asarray(block, dtype=np.float32))


def layer_names(adata: ad.AnnData) -> list[str]:
    """Names of the layers of ``adata``; anndata >= 0.13 also lists ``X`` as the layer None."""
    return [name for name in adata.layers if name is not None]


def get_matrix(
    adata: ad.AnnData, layer: str | None, mod_name: str
) -> np.ndarray | sparse.spmatrix:
    """``X`` or ``layers[layer]`` of ``adata``, checked to be a finite numeric 2-D matrix."""
    if layer is None:
        matrix = adata.X
        where = f"mdata.mod[{mod_name!r}].X"
        if matrix is None:
            msg = f"{where} is empty (None). Pass the layer that holds the data via `*_layer=`."
            raise ValueError(msg)
    else:
        if layer not in adata.layers:
            msg = (
                f"Layer {layer!r} is not in modality {mod_name!r}; available layers: "
                f"{layer_names(adata)}. Pass one of these, or None to use `.X`."
            )
            raise KeyError(msg)
        matrix = adata.layers[layer]
        where = f"mdata.mod[{mod_name!r}].layers[{layer!r}]"
    if is_backed_sparse(matrix):
        if not isinstance(matrix, ad.abc.CSRDataset):
            msg = (
                f"{where} is a backed CSC matrix; minibatches read rows, so store it as CSR "
                "(`adata.X = scipy.sparse.csr_matrix(adata.X)` before writing the .h5mu), or "
                "load the MuData into memory."
            )
            raise TypeError(msg)
        values = None  # scanned block by block below, never loaded whole
    elif sparse.issparse(matrix):
        values = matrix.data
    elif isinstance(matrix, np.ndarray):
        values = matrix
    elif type(matrix).__name__ == "Dataset":  # h5py: a dense matrix on disk
        msg = (
            f"{where} is a dense matrix on disk (backed); only sparse (CSR) matrices are read "
            "from disk. Store it as CSR, or load the MuData into memory (`mdata.to_memory()`)."
        )
        raise TypeError(msg)
    else:
        msg = (
            f"{where} is a {type(matrix).__name__}; expected a numpy array or a scipy sparse "
            "matrix. Convert it, e.g. with `np.asarray(...)`."
        )
        raise TypeError(msg)
    dtype = matrix.dtype
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        msg = f"{where} has dtype {dtype}; it must be numeric. Convert it with `.astype(float)`."
        raise TypeError(msg)
    if np.issubdtype(dtype, np.complexfloating):
        msg = f"{where} has complex dtype {dtype}; it must be real-valued."
        raise TypeError(msg)
    finite = (
        all(_all_finite(block.data) for block in row_blocks(matrix))
        if values is None
        else _all_finite(values)
    )
    if np.issubdtype(dtype, np.floating) and not finite:
        msg = (
            f"{where} contains NaN or infinite values. Remove or impute them (e.g. "
            "`np.nan_to_num`) before setting up the model."
        )
        raise ValueError(msg)
    return matrix


def _all_finite(values: np.ndarray) -> bool:
    flat = values.reshape(-1)
    # Chunked so that a huge dense matrix does not get a same-sized boolean copy.
    step = 1 << 24
    return all(np.isfinite(flat[i : i + step]).all() for i in range(0, flat.size, step))


def min_value(matrix: np.ndarray | sparse.spmatrix) -> float:
    """Smallest entry (implicit zeros of a sparse matrix included)."""
    if is_backed_sparse(matrix):
        return min(min_value(block) for block in row_blocks(matrix))
    if sparse.issparse(matrix):
        data_min = float(matrix.data.min()) if matrix.nnz else 0.0
        has_implicit_zero = matrix.nnz < matrix.shape[0] * matrix.shape[1]
        return min(data_min, 0.0) if has_implicit_zero else data_min
    return float(np.min(matrix))


def looks_like_counts(matrix: np.ndarray | sparse.spmatrix, *, n_check: int = 100_000) -> bool:
    """Whether the stored values are non-negative integers (checked on a sample)."""
    if is_backed_sparse(matrix):
        matrix = next(row_blocks(matrix, 1000), sparse.csr_matrix((0, 0)))
    values = matrix.data if sparse.issparse(matrix) else np.asarray(matrix).reshape(-1)
    values = values[:n_check]
    if values.size == 0:
        return True
    return bool(np.all(values >= 0) and np.all(np.equal(np.mod(values, 1), 0)))


@dataclass
class ModalityData:
    """One modality, registered with its own AnnDataManager on an internal AnnData."""

    name: str
    manager: AnnDataManager
    obs_names: pd.Index
    var_names: pd.Index
    matrix: np.ndarray | sparse.spmatrix

    @property
    def n_obs(self) -> int:
        """Number of cells."""
        return len(self.obs_names)

    @property
    def n_vars(self) -> int:
        """Number of features."""
        return len(self.var_names)

    @property
    def labels(self) -> np.ndarray:
        """Registered label codes (-1 for unlabelled), shape (n_obs,)."""
        return self.manager.adata.obs[_LABEL_CODES_COLUMN].to_numpy()

    @property
    def batches(self) -> np.ndarray:
        """Registered sample codes (0 for every cell without samples), shape (n_obs,)."""
        return self.manager.adata.obs[_BATCH_CODES_COLUMN].to_numpy()


def build_modality(
    name: str,
    adata: ad.AnnData,
    matrix,
    codes: np.ndarray,
    batches: np.ndarray | None = None,
    var_names: pd.Index | None = None,
) -> ModalityData:
    """Register one modality without touching ``adata``.

    CSC matrices are converted to CSR once, because minibatches slice rows. ``codes`` and
    ``batches`` are each cell's label and sample codes (``None``: one sample). ``var_names``
    names the columns of ``matrix`` when they are not ``adata``'s features.
    """
    if sparse.issparse(matrix) and matrix.format != "csr":
        matrix = sparse.csr_matrix(matrix)
    backed = is_backed_sparse(matrix)
    obs = pd.DataFrame(
        {
            _LABEL_CODES_COLUMN: codes,
            _BATCH_CODES_COLUMN: np.zeros(adata.n_obs, np.int64) if batches is None else batches,
            _INDEX_COLUMN: np.arange(adata.n_obs, dtype=np.int64),
        },
        index=pd.Index(adata.obs_names.astype(str)),
    )
    columns = adata.var_names if var_names is None else var_names
    # A matrix on disk stays there: the AnnDataManager gets an empty stand-in, and the
    # networks read a backed modality only through its principal-axis scores (see training).
    stand_in = sparse.csr_matrix(matrix.shape, dtype=np.float32) if backed else matrix
    internal = ad.AnnData(X=stand_in, obs=obs, var=pd.DataFrame(index=columns.astype(str)))
    manager = AnnDataManager(
        fields=[
            LayerField(REGISTRY_KEYS.X_KEY, None, is_count_data=False),
            NumericalObsField(REGISTRY_KEYS.LABELS_KEY, _LABEL_CODES_COLUMN),
            NumericalObsField(REGISTRY_KEYS.BATCH_KEY, _BATCH_CODES_COLUMN),
            NumericalObsField(REGISTRY_KEYS.INDICES_KEY, _INDEX_COLUMN),
        ],
        setup_method_args={"setup_method_name": "setup_mudata", "setup_args": {"modality": name}},
    )
    manager.register_fields(internal)
    return ModalityData(
        name=name,
        manager=manager,
        obs_names=internal.obs_names,
        var_names=internal.var_names,
        matrix=matrix if backed else internal.X,
    )


def transformed_rows(
    block: np.ndarray | sparse.spmatrix, *, log1p: bool, cell_total: float = 0.0
) -> np.ndarray | sparse.csr_matrix:
    """Return a float64 copy of rows: scaled per cell to ``cell_total`` (if > 0), log1p.

    Sparse blocks stay sparse (both steps keep zeros zero); empty cells stay zero.
    """
    if sparse.issparse(block):
        out = sparse.csr_matrix(block, dtype=np.float64, copy=True)
        out.sum_duplicates()
        values = out.data
        if cell_total:
            values *= np.repeat(total_factors(out, cell_total), np.diff(out.indptr))
    else:
        out = np.array(block, dtype=np.float64)
        values = out
        if cell_total:
            values *= total_factors(out, cell_total)[:, None]
    if log1p:
        np.log1p(np.maximum(values, 0, out=values), out=values)
    return out


def total_factors(block: np.ndarray | sparse.spmatrix, cell_total: float) -> np.ndarray:
    """Per-cell factors that scale each row's total to ``cell_total`` (0 for empty rows)."""
    totals = np.asarray(block.sum(axis=1), dtype=np.float64).ravel()
    return np.divide(cell_total, totals, out=np.zeros_like(totals), where=totals > 0)


def median_cell_total(matrix: np.ndarray | sparse.spmatrix) -> float:
    """Median total of the non-empty cells (1 if all are empty), read in row chunks.

    The total that ``sc.pp.normalize_total`` scales cells to by default.
    """
    totals = np.concatenate(
        [
            np.asarray(matrix[start : start + _ROW_CHUNK].sum(axis=1), dtype=np.float64).ravel()
            for start in range(0, matrix.shape[0], _ROW_CHUNK)
        ]
    )
    totals = totals[totals > 0]
    return float(np.median(totals)) if len(totals) else 1.0


def feature_moments(
    matrix: np.ndarray | sparse.spmatrix, *, log1p: bool, cell_total: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of :func:`transformed_rows`, in row chunks.

    Row chunks keep memory to one chunk of the matrix, never a dense copy of all of it.
    """
    n_obs, n_vars = matrix.shape
    total = np.zeros(n_vars, dtype=np.float64)
    total_sq = np.zeros(n_vars, dtype=np.float64)
    for start in range(0, n_obs, _ROW_CHUNK):
        block = transformed_rows(
            matrix[start : start + _ROW_CHUNK], log1p=log1p, cell_total=cell_total
        )
        if sparse.issparse(block):
            total += np.asarray(block.sum(axis=0)).ravel()
            block.data **= 2
            total_sq += np.asarray(block.sum(axis=0)).ravel()
        else:
            total += block.sum(axis=0)
            total_sq += (block**2).sum(axis=0)
    mean = total / n_obs
    var = np.maximum(total_sq / n_obs - mean**2, 0.0)
    return mean, np.sqrt(var)
