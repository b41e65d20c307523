from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from .._arguments import check_unknown_call
from .._model import ConAAE

if TYPE_CHECKING:
    from anndata import AnnData
    from mudata import MuData


def conaae(
    mdata: MuData,
    rna_mod: str = "rna",
    atac_mod: str = "atac",
    *,
    labels_key: str | None = None,
    rna_layer: str | None = None,
    atac_layer: str | None = None,
    anchor_key: str | None = None,
    gene_links: AnnData | None = None,
    batch_key: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    match: Literal["nearest", "one_to_one"] = "nearest",
    min_confidence: float | None = None,
    **train_kwargs: Any,
) -> ConAAE:
    """Set up, train and write the results of a :class:`~conaae_scverse.ConAAE` in one call.

    Writes ``.obsm["X_conaae"]``, ``.obs["conaae_match"]``, ``.obs["conaae_match_distance"]``
    and, with labels, ``.obs["conaae_label"]`` and ``.obs["conaae_label_confidence"]`` into both
    modalities, and ``.obs["conaae_prior_confidence"]`` into a modality without labels whose
    labels a prior guessed (see :meth:`~conaae_scverse.ConAAE.write_results`).

    Parameters
    ----------
    mdata
        MuData with an RNA and an ATAC modality, paired or unpaired.
    rna_mod, atac_mod
        Names of the modalities.
    labels_key
        Optional obs column with cell labels, in one or both modalities.
    rna_layer, atac_layer
        Layers to use instead of ``.X``.
    anchor_key
        Explicit paired supervision, see :meth:`~conaae_scverse.ConAAE.setup_mudata`.
    gene_links
        Peak-gene links from :func:`conaae_scverse.pp.link_peaks_to_genes`, for a modality
        without labels, see :meth:`~conaae_scverse.ConAAE.setup_mudata`.
    batch_key
        Optional obs column naming each cell's sample, in one or both modalities, see
        :meth:`~conaae_scverse.ConAAE.setup_mudata`.
    model_kwargs
        Hyperparameters of :class:`~conaae_scverse.ConAAE` (e.g. ``n_latent``).
    match
        Cell matching method, ``"nearest"`` or ``"one_to_one"``.
    min_confidence
        Label cells whose label probability is below this value ``"unknown"`` (e.g. ``0.5``),
        see :meth:`~conaae_scverse.ConAAE.predict`; ``None`` labels every cell.
    **train_kwargs
        Arguments of :meth:`~conaae_scverse.ConAAE.train` (e.g. ``max_epochs``).

    Returns
    -------
    The trained model.

    Examples
    --------
    >>> import conaae_scverse as ca
    >>> mdata = ca.datasets.simulate()
    >>> model = ca.tl.conaae(mdata, labels_key="batch", max_epochs=50)
    >>> mdata["atac"].obs["conaae_match"].head()
    """
    ConAAE.setup_mudata(
        mdata,
        rna_mod=rna_mod,
        atac_mod=atac_mod,
        rna_layer=rna_layer,
        atac_layer=atac_layer,
        labels_key=labels_key,
        anchor_key=anchor_key,
        gene_links=gene_links,
        batch_key=batch_key,
    )
    model = ConAAE(mdata, **dict(model_kwargs or {}))
    if model.label_categories_:
        # Before training, so a bad value costs nothing.
        check_unknown_call(min_confidence, "unknown", model.label_categories_)
    model.train(**train_kwargs)
    model.write_results(match=match, min_confidence=min_confidence)
    return model
