"""Helpers shared by the dataset constructors."""

from __future__ import annotations

import anndata as ad
import mudata as md

from .._compat import mudata_without_pull
from .._constants import MODALITIES


def build_mudata(rna: ad.AnnData, atac: ad.AnnData, provenance: dict[str, str]) -> md.MuData:
    """Wrap two modalities in a :class:`mudata.MuData` without pulling their columns.

    Parameters
    ----------
    rna
        RNA modality, cells x genes.
    atac
        ATAC modality, cells x peaks.
    provenance
        Strings describing the dataset; stored in ``mdata.uns["dataset"]``.

    Returns
    -------
    MuData whose ``mod["rna"]`` and ``mod["atac"]`` are ``rna`` and ``atac`` themselves.
    The global ``obs`` holds no copies of the modalities' columns.
    """
    with mudata_without_pull():
        mdata = md.MuData({MODALITIES.RNA: rna, MODALITIES.ATAC: atac})
    mdata.uns["dataset"] = {key: str(value) for key, value in provenance.items()}
    return mdata
