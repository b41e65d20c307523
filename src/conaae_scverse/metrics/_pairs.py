"""Known pairs of cells between the RNA and ATAC modalities of a MuData."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._constants import TRUE_PARTNER_KEY
from .._data import get_modality, partner_indices

if TYPE_CHECKING:
    import anndata as ad
    from mudata import MuData


def _unique_index(adata: ad.AnnData, mod: str) -> pd.Index:
    names = pd.Index(adata.obs_names)
    if not names.is_unique:
        msg = (
            f"The obs_names of modality {mod!r} are not unique, so partners cannot be looked "
            f"up by name. Call mdata.mod[{mod!r}].obs_names_make_unique() (before recording "
            "the partners) or fix the names."
        )
        raise ValueError(msg)
    return names


def pairs_from_mudata(
    mdata: MuData,
    *,
    rna_mod: str = "rna",
    atac_mod: str = "atac",
    partner_key: str = TRUE_PARTNER_KEY,
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the known (RNA, ATAC) pairs of cells in a MuData.

    If the RNA modality's ``obs`` has the column ``partner_key``, it names, for each RNA cell,
    the ``obs_name`` of its partner in the ATAC modality (NaN / None if it has none): the
    bundled datasets record their true pairing this way. Partners that are not ATAC
    ``obs_names`` (e.g. filtered out) are skipped with a warning. Otherwise, or if the column
    yields no pair, RNA and ATAC cells with the same ``obs_name`` are paired (the usual
    layout of co-assay data such as SNARE-seq or 10x Multiome).

    Parameters
    ----------
    mdata
        MuData holding both modalities.
    rna_mod
        Name of the RNA modality in ``mdata.mod``.
    atac_mod
        Name of the ATAC modality in ``mdata.mod``.
    partner_key
        Column of ``mdata.mod[rna_mod].obs`` with each RNA cell's ATAC partner.

    Returns
    -------
    ``(rna_idx, atac_idx)``: two int64 arrays of shape (n_pairs,), RNA cell ``rna_idx[p]``
    (a row of ``mdata.mod[rna_mod]``) paired with ATAC cell ``atac_idx[p]``, in RNA row order.

    Examples
    --------
    >>> import anndata as ad, mudata as md, numpy as np, pandas as pd
    >>> from conaae_scverse.metrics import pairs_from_mudata
    >>> rna = ad.AnnData(np.zeros((3, 2)), obs=pd.DataFrame(index=["c1", "c2", "c3"]))
    >>> atac = ad.AnnData(np.zeros((2, 2)), obs=pd.DataFrame(index=["c3", "c1"]))
    >>> rna_idx, atac_idx = pairs_from_mudata(md.MuData({"rna": rna, "atac": atac}))
    >>> rna_idx.tolist(), atac_idx.tolist()
    ([0, 2], [1, 0])
    """
    rna = get_modality(mdata, rna_mod, "rna", needs_features=False)
    atac = get_modality(mdata, atac_mod, "atac", needs_features=False)
    _unique_index(atac, atac_mod)
    if partner_key in rna.obs.columns:
        rna_idx, atac_idx, missing = partner_indices(rna, atac, partner_key)
        if missing:
            warnings.warn(
                f"{len(missing)} partners named in column {partner_key!r} (e.g. {missing[:3]}) "
                f"are not obs_names of modality {atac_mod!r}; those RNA cells are left out of "
                "the pairs.",
                UserWarning,
                stacklevel=2,
            )
        if len(rna_idx):
            return rna_idx, atac_idx
    rna_idx, atac_idx, _ = partner_indices(rna, atac)
    if not len(rna_idx):
        msg = (
            f"No known pairs between modalities {rna_mod!r} and {atac_mod!r}: "
            f"mdata.mod[{rna_mod!r}].obs has no usable column {partner_key!r} (each RNA cell's "
            "ATAC partner obs_name) and the two modalities share no obs_names. Add that "
            "column, pass partner_key= the column that holds the partners, or give paired "
            "cells the same obs_name."
        )
        raise ValueError(msg)
    return rna_idx, atac_idx


def _obs_column(adata: ad.AnnData, key: str, mod: str) -> Any:
    if key not in adata.obs.columns:
        msg = (
            f"labels_key {key!r} is not a column of mdata.mod[{mod!r}].obs. Both modalities "
            "need it; pass labels_key= a shared label column, or None to skip label metrics."
        )
        raise KeyError(msg)
    return adata.obs[key].to_numpy()
