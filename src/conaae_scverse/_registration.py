"""Registration of a MuData for :class:`ConAAE`: checked once, remembered, fetched by models.

scvi-tools' MuData fields refuse modalities with different cells, so each modality is
registered with its own :class:`~scvi.data.AnnDataManager` (the pattern of
``scvi.external.GIMVI``); :func:`register` does it once per ``setup_mudata`` call and every
model built on the MuData fetches the result. Nothing is written into the user's MuData.
"""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from ._constants import MODALITIES
from ._data import (
    ModalityData,
    SetupArgs,
    anchor_pairs,
    batch_categories,
    batch_codes,
    build_modality,
    check_mudata,
    get_matrix,
    get_modality,
    is_backed_sparse,
    label_categories,
    label_codes,
    unlabelled_modalities,
)

if TYPE_CHECKING:
    from mudata import MuData


@dataclass(frozen=True)
class Registration:
    """What :meth:`ConAAE.setup_mudata` validated and registered, once, for a MuData.

    Models built on the MuData fetch it instead of checking and registering again.
    """

    setup: SetupArgs
    #: The registered AnnData of each internal modality ("rna", "atac").
    adatas: dict[str, ad.AnnData]
    #: The registered matrix object of each modality (``X`` or the layer), before conversion.
    sources: dict[str, Any]
    #: Each modality with its own AnnDataManager, labels coded over ``categories``.
    modalities: dict[str, ModalityData]
    categories: list[str]
    #: Sample categories of each modality (``[]``: one sample, no ``batch_key`` column).
    batch_categories: dict[str, list[str]]
    anchor_pairs: np.ndarray | None
    gene_links: ad.AnnData | None

    def check_current(self, mdata: MuData) -> None:
        """Fail if a registered modality or matrix of ``mdata`` was replaced since setup."""
        for mod, adata in self.adatas.items():
            name = self.setup.mod_name(mod)
            current = mdata.mod.get(name)
            layer = self.setup.layer(mod)
            replaced = current is not adata or current.shape != adata.shape
            if not replaced:
                matrix = current.X if layer is None else current.layers.get(layer)
                source = self.sources[mod]
                # A backed matrix is a new reader object at every access: same file, same shape.
                if is_backed_sparse(source):
                    replaced = not is_backed_sparse(matrix) or matrix.shape != source.shape
                else:
                    replaced = matrix is not source
            if replaced:
                msg = (
                    f"Modality {name!r} of this MuData changed since ConAAE.setup_mudata "
                    "(replaced, subset or given a new matrix). Call ConAAE.setup_mudata(mdata, "
                    "...) again before building a model on it."
                )
                raise ValueError(msg)


# Registrations per MuData object. Keyed by id() with a weak reference so that a MuData that
# is garbage-collected (and whose id may be reused) is never mistaken for a registered one, and
# so that nothing needs to be written into the user's object; the entry goes with the MuData.
_REGISTRATIONS: dict[int, tuple[weakref.ref, Registration]] = {}


def remember_registration(mdata: MuData, registration: Registration) -> None:
    """Record ``registration`` for ``mdata``, until ``mdata`` is garbage-collected."""
    key = id(mdata)
    if key not in _REGISTRATIONS:
        weakref.finalize(mdata, _REGISTRATIONS.pop, key, None)
    _REGISTRATIONS[key] = (weakref.ref(mdata), registration)


def recall_registration(mdata: MuData) -> Registration | None:
    """Return the registration recorded for ``mdata``, if any."""
    entry = _REGISTRATIONS.get(id(mdata))
    if entry is None or entry[0]() is not mdata:
        return None
    return entry[1]


def recall_setup(mdata: MuData) -> SetupArgs | None:
    """Return the setup arguments recorded for ``mdata``, if any."""
    registration = recall_registration(mdata)
    return None if registration is None else registration.setup


def check_gene_links(links: Any, rna: ad.AnnData, atac: ad.AnnData, atac_mod: str) -> ad.AnnData:
    """Validate peak-gene links; return them with peaks in ATAC order and RNA genes only.

    Parameters
    ----------
    links
        AnnData of shape (n_peaks, n_genes), as returned by
        :func:`conaae_scverse.pp.link_peaks_to_genes`.
    rna, atac
        The two modalities.
    atac_mod
        Name of the ATAC modality, for messages.

    Returns
    -------
    A new AnnData (peaks x genes, CSR) whose rows follow ``atac.var_names`` and whose columns
    are the linked genes present in ``rna.var_names``, in RNA order.
    """
    if not isinstance(links, ad.AnnData):
        msg = (
            f"gene_links must be an AnnData of peaks x genes, got {type(links).__name__}. "
            "Make it with `ca.pp.link_peaks_to_genes(mdata[atac_mod], annotation)`."
        )
        raise TypeError(msg)
    peaks = pd.Index(atac.var_names.astype(str))
    rows = pd.Index(links.obs_names.astype(str)).get_indexer(peaks)
    if (rows < 0).all():
        msg = (
            f"gene_links has none of the peaks of modality {atac_mod!r} (e.g. "
            f"{list(peaks[:2])}; the links have {list(links.obs_names[:2])}). Link the peaks of "
            "this modality: `ca.pp.link_peaks_to_genes(mdata[atac_mod], annotation)`."
        )
        raise ValueError(msg)
    genes = pd.Index(rna.var_names.astype(str))
    columns = pd.Index(links.var_names.astype(str)).get_indexer(genes)
    # Selection matrices put the peaks in ATAC order and the genes in RNA order.
    found_rows, found_cols = np.flatnonzero(rows >= 0), np.flatnonzero(columns >= 0)
    to_atac = sparse.csr_matrix(
        (np.ones(len(found_rows)), (found_rows, rows[found_rows])), shape=(len(peaks), links.n_obs)
    )
    to_rna = sparse.csr_matrix(
        (np.ones(len(found_cols)), (columns[found_cols], found_cols)),
        shape=(links.n_vars, len(genes)),
    )
    picked = sparse.csr_matrix(to_atac @ sparse.csr_matrix(links.X) @ to_rna, dtype=np.float32)
    linked = np.asarray((picked != 0).sum(axis=0)).ravel() > 0
    if not linked.any():
        msg = (
            "gene_links link no peak to any gene of the RNA modality. Check that the gene "
            "names of the annotation match the RNA var_names (symbols vs Ensembl IDs) and "
            "that the annotation's genome build matches the peaks'."
        )
        raise ValueError(msg)
    return ad.AnnData(
        X=picked[:, linked],
        obs=pd.DataFrame(index=peaks),
        var=pd.DataFrame(index=genes[linked]),
    )


def _batch_categories(setup: SetupArgs, adatas: dict[str, ad.AnnData]) -> dict[str, list[str]]:
    """Sample categories of each modality; the column may be in one modality only."""
    batch_key = setup.batch_key
    if batch_key is None:
        return {mod: [] for mod in MODALITIES}
    if not isinstance(batch_key, str):
        msg = f"batch_key must be a column name (str) or None, got {batch_key!r}."
        raise TypeError(msg)
    samples = {
        mod: batch_categories(adatas[mod], batch_key, setup.mod_name(mod)) for mod in MODALITIES
    }
    if not any(samples.values()):
        msg = (
            f"batch_key {batch_key!r} is in the obs of neither modality "
            f"({setup.rna_mod!r}, {setup.atac_mod!r}). Add the sample column to at least one "
            "modality, or pass batch_key=None."
        )
        raise KeyError(msg)
    return samples


def register(mdata: MuData, setup: SetupArgs, gene_links: ad.AnnData | None) -> Registration:
    """Check ``mdata`` against ``setup`` once and remember the registration.

    The body of :meth:`ConAAE.setup_mudata`: modalities, the one full scan of the values,
    label categories and codes, anchors, links, and each modality's AnnDataManager.
    """
    rna_mod, atac_mod = setup.rna_mod, setup.atac_mod
    labels_key, anchor_key = setup.labels_key, setup.anchor_key
    check_mudata(mdata)
    if rna_mod == atac_mod:
        msg = (
            f"rna_mod and atac_mod are both {rna_mod!r}; they must name two different "
            f"modalities of the MuData (available: {list(mdata.mod)})."
        )
        raise ValueError(msg)
    adatas = {
        MODALITIES.RNA: get_modality(mdata, rna_mod, "rna"),
        MODALITIES.ATAC: get_modality(mdata, atac_mod, "atac"),
    }
    # The one full scan of the values (numeric, finite): models fetch the result.
    matrices = {
        mod: get_matrix(adatas[mod], setup.layer(mod), setup.mod_name(mod)) for mod in MODALITIES
    }
    by_name = {setup.mod_name(mod): adata for mod, adata in adatas.items()}
    categories: list[str] = []
    if labels_key is not None:
        if not isinstance(labels_key, str):
            msg = f"labels_key must be a column name (str) or None, got {labels_key!r}."
            raise TypeError(msg)
        categories = label_categories(by_name, labels_key)
        unlabelled = unlabelled_modalities(by_name, labels_key)
        if unlabelled and anchor_key is None and gene_links is None:
            # Measured by benchmarks/label_transfer.py: the geometric (OT) prior can pair
            # look-alike populations wrongly where the two geometries disagree.
            msg = (
                f"labels_key {labels_key!r} has no labels in modality {unlabelled[0]!r}. "
                "Which of its populations is which then comes from the shape of the data "
                "alone (the model's label_prior='ot'), and look-alike populations can be "
                "swapped. Pass gene_links=ca.pp.link_peaks_to_genes(...) when peaks have "
                "coordinates, label a few of its cells, or pass anchor_key."
            )
            warnings.warn(msg, UserWarning, stacklevel=3)
    anchors = None
    if anchor_key is not None:
        anchors = anchor_pairs(
            adatas[MODALITIES.RNA], adatas[MODALITIES.ATAC], anchor_key, rna_mod, atac_mod
        )
    if gene_links is not None:
        gene_links = check_gene_links(
            gene_links, adatas[MODALITIES.RNA], adatas[MODALITIES.ATAC], atac_mod
        )
    samples = _batch_categories(setup, adatas)
    modalities = {
        mod: build_modality(
            mod,
            adatas[mod],
            matrices[mod],
            label_codes(adatas[mod], labels_key, categories),
            batch_codes(adatas[mod], setup.batch_key, samples[mod], setup.mod_name(mod)),
        )
        for mod in MODALITIES
    }
    registration = Registration(
        setup=setup,
        adatas=adatas,
        sources=matrices,
        modalities=modalities,
        categories=categories,
        batch_categories=samples,
        anchor_pairs=anchors,
        gene_links=gene_links,
    )
    remember_registration(mdata, registration)
    return registration
