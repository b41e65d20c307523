"""Per-cell columns of each modality: labels, samples and known pairs, as integer codes."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

ANCHOR_BY_OBS_NAMES = "obs_names"  # anchor spec: equal obs_names in both modalities are pairs


def label_categories(adatas: dict[str, ad.AnnData], labels_key: str) -> list[str]:
    """Union of the label categories over the modalities that carry ``labels_key``."""
    carriers = {m: a for m, a in adatas.items() if labels_key in a.obs}
    if not carriers:
        msg = (
            f"labels_key {labels_key!r} is in the obs of neither modality "
            f"({', '.join(repr(m) for m in adatas)}). Add the column to at least one modality, "
            "or pass labels_key=None."
        )
        raise KeyError(msg)
    categories: list[str] = []
    for adata in carriers.values():
        column = adata.obs[labels_key]
        if isinstance(column.dtype, pd.CategoricalDtype):
            present = set(column.dropna().astype(str))
            values = [str(c) for c in column.cat.categories if str(c) in present]
        else:
            values = pd.unique(column.dropna().astype(str)).tolist()
        categories.extend(v for v in values if v not in categories)
    if not categories:
        msg = (
            f"labels_key {labels_key!r} is NaN for every cell: nothing to learn from. Fill in "
            "labels for some cells, or pass labels_key=None."
        )
        raise ValueError(msg)
    return categories


def unlabelled_modalities(adatas: dict[str, ad.AnnData], labels_key: str) -> list[str]:
    """Names of the modalities in which ``labels_key`` is missing or NaN for every cell."""
    return [
        name
        for name, adata in adatas.items()
        if labels_key not in adata.obs or adata.obs[labels_key].isna().all()
    ]


def label_codes(adata: ad.AnnData, labels_key: str | None, categories: list[str]) -> np.ndarray:
    """Integer code of each cell's label; -1 marks an unlabelled cell (NaN or no column)."""
    codes = np.full(adata.n_obs, -1, dtype=np.int64)
    if labels_key is None or labels_key not in adata.obs:
        return codes
    column = adata.obs[labels_key]
    known = column.notna().to_numpy()
    lookup = {c: i for i, c in enumerate(categories)}
    as_str = column[known].astype(str)
    unknown = sorted(set(as_str) - set(lookup))
    if unknown:
        msg = (
            f"Labels {unknown[:5]} in column {labels_key!r} were not seen when the model was set "
            f"up (known: {categories[:10]}). Use data with the registered label categories."
        )
        raise ValueError(msg)
    codes[known] = as_str.map(lookup).to_numpy(dtype=np.int64)
    return codes


def batch_categories(adata: ad.AnnData, batch_key: str | None, mod_name: str) -> list[str]:
    """Sample categories of one modality, in order; ``[]`` when it has no ``batch_key`` column.

    Every cell needs a sample: a NaN in the column is an error (unlike a missing label).
    """
    if batch_key is None or batch_key not in adata.obs:
        return []
    column = adata.obs[batch_key]
    if column.isna().any():
        msg = (
            f"batch_key {batch_key!r} is NaN for {int(column.isna().sum())} cells of modality "
            f"{mod_name!r}; every cell needs its sample. Fill it in (e.g. with the name of "
            "the experiment) before ConAAE.setup_mudata."
        )
        raise ValueError(msg)
    if isinstance(column.dtype, pd.CategoricalDtype):
        present = set(column.astype(str))
        return [str(c) for c in column.cat.categories if str(c) in present]
    return pd.unique(column.astype(str)).tolist()


def batch_codes(
    adata: ad.AnnData, batch_key: str | None, categories: list[str], mod_name: str
) -> np.ndarray:
    """Integer code of each cell's sample over ``categories`` (all 0 without samples)."""
    if not categories:
        return np.zeros(adata.n_obs, dtype=np.int64)
    if batch_key not in adata.obs:
        msg = (
            f"The model was trained with samples in column {batch_key!r} of modality "
            f"{mod_name!r}, but this data has no such column. Add it, with the model's "
            f"categories ({categories[:10]})."
        )
        raise KeyError(msg)
    column = adata.obs[batch_key].astype(object)
    lookup = {c: i for i, c in enumerate(categories)}
    as_str = column.where(column.isna(), column.astype(str))
    unknown = sorted(set(as_str.dropna()) - set(lookup), key=str)
    if unknown or column.isna().any():
        found = unknown[:5] if unknown else ["NaN"]
        msg = (
            f"Samples {found} in column {batch_key!r} of modality {mod_name!r} are not among "
            f"the model's ({categories[:10]}): the networks have no parameters for them. Train "
            "a model on data that include these samples (setup_mudata with the same "
            "batch_key), or pass cells of the model's samples."
        )
        raise ValueError(msg)
    return as_str.map(lookup).to_numpy(dtype=np.int64)


def partner_indices(
    rna: ad.AnnData, atac: ad.AnnData, column: str | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Row indices of known (RNA, ATAC) pairs, and the partner names not found in ``atac``.

    ``column``: an RNA obs column naming each RNA cell's ATAC partner (NaN if none); ``None``
    pairs cells with equal obs_names (unmatched names are then no partners, not missing ones).
    """
    atac_names = pd.Index(atac.obs_names)
    if column is None:
        atac_index = atac_names.get_indexer(pd.Index(rna.obs_names))
        rna_index = np.arange(rna.n_obs)
        missing: list[str] = []
    else:
        partners = rna.obs[column]
        known = partners.notna().to_numpy()
        rna_index = np.flatnonzero(known)
        names = partners[known].astype(str).to_numpy()
        atac_index = atac_names.get_indexer(names)
        missing = names[atac_index < 0].tolist()
    found = atac_index >= 0
    return rna_index[found].astype(np.int64), atac_index[found].astype(np.int64), missing


def anchor_pairs(
    rna: ad.AnnData, atac: ad.AnnData, anchor_key: str, rna_mod: str, atac_mod: str
) -> np.ndarray:
    """Known (rna_index, atac_index) pairs, of shape (n_pairs, 2), for the anchor loss."""
    if anchor_key == ANCHOR_BY_OBS_NAMES:
        rna_index, atac_index, _ = partner_indices(rna, atac)
        where = "shared obs_names"
    else:
        if anchor_key not in rna.obs:
            msg = (
                f"anchor_key {anchor_key!r} is not a column of mdata.mod[{rna_mod!r}].obs. It "
                f"must hold, for each RNA cell, the obs_name of its known partner in {atac_mod!r} "
                f"(NaN if unknown); or pass anchor_key={ANCHOR_BY_OBS_NAMES!r} to pair cells with "
                "equal obs_names."
            )
            raise KeyError(msg)
        rna_index, atac_index, _ = partner_indices(rna, atac, anchor_key)
        where = f"column {anchor_key!r}"
    pairs = np.stack([rna_index, atac_index], axis=1)
    if len(pairs) == 0:
        msg = (
            f"Anchor mode found no known pairs between {rna_mod!r} and {atac_mod!r} via {where}. "
            "Check the pairing, or set up without anchor_key for unpaired training."
        )
        raise ValueError(msg)
    return pairs
