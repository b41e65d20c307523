"""The user-facing Con-AAE model class."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import anndata as ad
import numpy as np
import pandas as pd
import torch

from . import _data, _persistence, _registration
from ._constants import MODALITIES
from ._hyperparameters import DEFAULT_HIDDEN, Hyperparameters
from ._inference import InferenceMixin
from ._label_prior import LabelPrior
from ._link_consistency import fit_link_targets
from ._mapping import MappingMixin
from ._model_inputs import code_cells, input_settings, scale_atac_under_links_prior
from ._module import ConAAEModule
from ._projection import fit_input_statistics
from ._training import TrainingMixin

if TYPE_CHECKING:
    from mudata import MuData

logger = logging.getLogger(__name__)

InputTransform = Literal["auto", "log1p", "normalize_log1p", "none"]


class ConAAE(TrainingMixin, InferenceMixin, MappingMixin):
    """Contrastive cycle adversarial autoencoders for RNA + ATAC alignment (Wang et al. 2023).

    One autoencoder per modality maps cells into a shared latent space. A discriminator on the
    latents (or an MMD penalty) aligns the two modalities, latent cycle-consistency ties the
    autoencoders together, a batch-hard triplet loss pulls same-label cells together across
    modalities (or, without labels, keeps each cell close to a noisy view of itself) and a
    linear classifier on the latent predicts labels. The two modalities need not share cells.

    Wang, X., Hu, Z., Yu, T., Wang, Y., Wang, R., Wei, Y., Shu, J., Ma, J. & Li, Y.
    *Con-AAE: contrastive cycle adversarial autoencoders for single-cell multi-omics alignment
    and integration.* Bioinformatics 39(4), btad162 (2023). doi:10.1093/bioinformatics/btad162

    Parameters
    ----------
    mdata
        MuData registered with :meth:`setup_mudata`.
    n_latent
        Dimension of the shared latent space (the paper uses 50).
    n_hidden
        Widths of the encoder hidden layers, shared by both modalities (decoders mirror
        them), or ``"paper"`` for the paper's recipe: three hidden layers as wide as the input
        and one of 100 units. The default (256, 128) keeps the first layer small for wide
        inputs; the paper's rule would give 100k x 100k weights for 100k peaks.
    alignment
        ``"adversarial"`` (least-squares GAN discriminator, the paper), ``"mmd"`` (Gaussian
        kernel MMD between the two latents) or ``"none"``.
    contrastive
        ``"auto"``: batch-hard triplet on labels when ``labels_key`` was registered, else
        self-supervised (each cell's positive is a noise-augmented view of itself).
        ``"supervised"`` or ``"self_supervised"`` force one.
    loss_weights
        Weights of the loss terms by name (``reconstruction``, ``adversarial``, ``cycle``,
        ``contrastive``, ``classifier``, ``anchor``, ``mmd``, ``sample_mixing``,
        ``link_anchor``, ``link_consistency``, ``depth_invariance``); missing names keep the
        paper's defaults (10, 10, 10, 10, 1, 0.1, 10) and, for our own terms, 1 for
        ``sample_mixing`` (with several samples in a modality, see ``batch_key`` of
        :meth:`setup_mudata`, cells of one label are pulled together across samples by a
        label-conditional MMD), 10 for ``link_anchor`` (the anchor loss on pairs that the
        ``"links"`` label prior infers, see ``label_prior``) and 10 for ``link_consistency``
        (with ``gene_links``: the RNA that each ATAC cell's latent decodes to should
        correlate, gene by gene, with the cell's own gene activity; it moves the ATAC latents,
        never the RNA decoder). ``depth_invariance`` is 10 under the ``"links"`` label prior
        and off (0) otherwise: with a weight, each modality of counts also encodes its cells'
        counts binomially thinned to 20-100 %, and their latents are pulled onto those of the
        full counts, so that sequencing depth cannot place a cell (a modality fed as features
        is thinned afresh at every step; a projected one, see ``n_input_components``, once per
        model, each cell's thinned counts projected as its own counts are). It helps where
        the shallowest cells of the unlabelled modality would otherwise gather on one
        population, and hurts where depth itself tells the populations apart (see the
        README's "Sequencing depth"). Under the links prior it comes with the ATAC counts
        scaled per cell (``input_transform``): against the links prior alone, the pair raised
        ATAC label accuracy on muon's PBMC data and a held-out BMMC donor and lowered FOSCTTM
        on PBMC and the simulations with coordinates (``benchmarks/vs_scglue.py``,
        ``benchmarks/label_transfer.py``, ``benchmarks/wide.py``); ``{"depth_invariance":
        0}`` with ``input_transform="log1p"`` gives the model without them. A weight of 0
        switches a term off.
    margin
        Triplet margin alpha.
    augmentation_noise
        Noise level (standard deviations of standardised features) of the augmented views.
    latent_batch_norm
        Standardise each modality's latent (non-affine BatchNorm at the encoder output).
    dropout
        Dropout rate of the hidden layers.
    input_transform
        How raw values enter the networks, for both modalities or per modality as a dict:
        ``"log1p"`` then per-feature standardisation (for counts), ``"normalize_log1p"``:
        each cell's counts scaled first to the median total of the training cells (what
        ``sc.pp.normalize_total`` then ``sc.pp.log1p`` do; depth then no longer places a
        cell), ``"none"`` for standardisation only (already normalised values), or
        ``"auto"``: log1p when the values are non-negative integers, and for the ATAC counts
        under the ``"links"`` label prior ``normalize_log1p`` (see ``depth_invariance``).
        Reconstruction is measured on the standardised values (MSE, as the paper), or on their
        scores when projected (next).
    n_input_components
        How many principal axes of its standardised features a wide modality enters the
        networks as (the PCA that ``sc.pp.scale`` then ``sc.pp.pca`` would give, fitted once
        on up to 20,000 of its cells); the decoder then reconstructs these scores, and a
        training step costs the same for 1k or 100k features. ``"auto"`` (default): 100 axes
        for a modality with more than 5,000 features (whole transcriptomes, peak matrices);
        narrower ones (selected genes, reduced peaks) enter whole, where the networks can
        weigh low-variance features that carry the labels. An integer k: k axes for every
        modality with more than k features; 0: no projection (the paper's model). The axes
        are saved with the model, so new cells are projected the same way.
    label_prior
        What tells the populations of a modality without any label apart, when the other
        modality has labels (and no anchors are given): ``"links"``, RNA expression against
        ATAC gene activity from the ``gene_links`` of :meth:`setup_mudata` in a
        canonical-correlation space, as Seurat v3 transfers labels; ``"ot"``, a
        Gromov-Wasserstein coupling of the two modalities' cell-cell geometries, as SCOT
        aligns cells (for data without peak coordinates); ``"auto"`` (default), ``"links"``
        when links were registered, else ``"ot"``; ``"none"``, no prior (the paper's model).
        The prior gives every cell of the unlabelled modality a probability over the labels
        (``model.label_prior_``); cells whose largest probability reaches
        ``prior_confidence`` train as if labelled with it (pseudo-labels). The ``"links"``
        prior also finds anchors, as Seurat v3 does: an RNA and an ATAC cell that are mutual
        nearest neighbours in the canonical-correlation space and agree on the label
        (``model.anchor_pairs_``). The anchor loss pulls their latents together, which aligns
        cells within populations, not only populations (weight ``link_anchor`` of
        ``loss_weights``). Nothing of the user's data changes.
    prior_confidence
        Smallest prior probability that makes a pseudo-label, in [0, 1].
    pseudo_label_epochs
        Share of the epochs of each :meth:`train` call, from its start, in which the
        pseudo-labels train as labels, in (0, 1]; for the rest of the call the unlabelled
        modality trains without them. ``1`` (default) keeps them for the whole call. Releasing
        them half-way (0.5) changed ATAC label accuracy by less than a point on the
        scGLUE benchmarks (``benchmarks/vs_scglue.py --methods conaae_links
        conaae_links_release``): the cells stay where the pseudo-labels put them.
    pseudo_label_loss
        What holds the pseudo-labelled cells to their labels. ``"contrastive"``: the paper's
        weights; the triplet term lines populations up across the modalities but packs each
        one tight, which misplaces cells within it. ``"classifier"``: the share of the
        unlabelled modality with a pseudo-label moves that share of the contrastive weight to
        the classifier, which keeps a cell on its label's side without packing; a weak prior
        (few pseudo-labels) keeps the triplet that lines the populations up. ``"auto"``
        (default): ``"classifier"`` with the links prior, whose pseudo-labels come from gene
        activity, and ``"contrastive"`` with the OT prior, whose pseudo-labels come from the
        geometry alone and need the triplet's help (on sci-CAR and the paper's simulation the
        classifier did worse there).
    seed
        Seed of the weight initialisation and, unless overridden, of training.

    Examples
    --------
    >>> import conaae_scverse as ca
    >>> mdata = ca.datasets.simulate(n_cells=1200)
    >>> ca.ConAAE.setup_mudata(mdata, labels_key="batch")
    >>> model = ca.ConAAE(mdata)
    >>> model.train(max_epochs=20)
    >>> model.write_results()
    >>> mdata["rna"].obsm["X_conaae"].shape
    (1200, 50)
    """

    def __init__(
        self,
        mdata: MuData,
        *,
        n_latent: int = 50,
        n_hidden: Sequence[int] | Literal["paper"] = DEFAULT_HIDDEN,
        alignment: Literal["adversarial", "mmd", "none"] = "adversarial",
        contrastive: Literal["auto", "supervised", "self_supervised"] = "auto",
        loss_weights: Mapping[str, float] | None = None,
        margin: float = 0.3,
        augmentation_noise: float = 0.5,
        latent_batch_norm: bool = True,
        dropout: float = 0.0,
        input_transform: InputTransform | Mapping[str, InputTransform] = "auto",
        n_input_components: int | Literal["auto"] = "auto",
        label_prior: Literal["auto", "links", "ot", "none"] = "auto",
        prior_confidence: float = 0.8,
        pseudo_label_epochs: float = 1.0,
        pseudo_label_loss: Literal["auto", "contrastive", "classifier"] = "auto",
        seed: int = 0,
    ):
        hyperparameters = Hyperparameters(
            n_latent=n_latent,
            n_hidden=n_hidden,
            alignment=alignment,
            contrastive=contrastive,
            loss_weights=loss_weights,
            margin=margin,
            augmentation_noise=augmentation_noise,
            latent_batch_norm=latent_batch_norm,
            dropout=dropout,
            input_transform=input_transform,
            n_input_components=n_input_components,
            label_prior=label_prior,
            prior_confidence=prior_confidence,
            pseudo_label_epochs=pseudo_label_epochs,
            pseudo_label_loss=pseudo_label_loss,
            seed=seed,
        )
        self._build(mdata, hyperparameters)

    @classmethod
    def _restore(cls, mdata: MuData, saved: _persistence.SavedModel) -> ConAAE:
        """Rebuild a saved model (settings and weights) without running ``__init__``."""
        model = cls.__new__(cls)
        model._build(mdata, saved.hyperparameters, saved)
        return model

    def _build(
        self,
        mdata: MuData,
        hyperparameters: Hyperparameters,
        saved: _persistence.SavedModel | None = None,
        *,
        query: bool = False,
    ) -> None:
        """Register the data and build the networks.

        ``saved``: restore what was saved; ``query``: a model of new samples mapped onto
        ``saved`` (:meth:`load_query_data`), which fits its own label prior.
        """
        self.hyperparameters_ = params = hyperparameters
        registry = None if saved is None else saved.settings
        _data.check_mudata(mdata)
        registration = _registration.recall_registration(mdata)
        if registration is None:
            msg = (
                "This MuData has not been set up. Call "
                "`ConAAE.setup_mudata(mdata, rna_mod=..., atac_mod=..., labels_key=...)` first."
            )
            raise ValueError(msg)
        registration.check_current(mdata)
        self.mdata = mdata
        self.setup_ = setup = registration.setup
        settings = input_settings(registration, params, registry)
        # A query's unlabelled samples need the label prior as much as a new model's do.
        coded = code_cells(
            registration,
            settings,
            params,
            fit_prior=(registry is None or query) and setup.anchor_key is None,
        )
        prior_source = getattr(coded.prior, "source", None)
        if registry is None:
            settings = scale_atac_under_links_prior(settings, registration, params, prior_source)
        categories, samples = settings.categories, settings.samples
        log1p, n_components = settings.log1p, settings.n_components
        n_reference, n_shared = settings.n_reference, settings.n_shared
        self.label_categories_ = categories
        self.batch_categories_ = samples
        self.log1p_ = log1p
        self.cell_total_ = settings.cell_total
        self.n_components_ = n_components
        self.label_prior_: LabelPrior | None = coded.prior
        self.prior_modality_: str | None = coded.prior_modality
        self.modalities_: dict[str, _data.ModalityData] = coded.modalities
        matrices = {mod: data.matrix for mod, data in registration.modalities.items()}
        weights = params.loss_weight_values(coded.pseudo_labelled, prior_source)
        if prior_source == "links" and registry is None:
            logger.info(
                "Links prior: ATAC counts %s, depth_invariance weight %g (input_transform='log1p' "
                "and loss_weights={'depth_invariance': 0} switch both off).",
                "scaled per cell" if settings.cell_total[MODALITIES.ATAC] else "not scaled",
                weights.depth_invariance,
            )
        self.anchor_pairs_ = registration.anchor_pairs
        link_anchors = getattr(self.label_prior_, "anchors", None)
        anchors_from_links = (
            self.anchor_pairs_ is None
            and link_anchors is not None
            and len(link_anchors) > 1
            and weights.link_anchor > 0
        )
        if anchors_from_links:
            self.anchor_pairs_ = link_anchors
        self.link_targets_ = (
            fit_link_targets(
                registration.gene_links, matrices, registration.adatas, log1p, params.seed
            )
            if weights.link_consistency > 0 and (registry is None or query)
            else None
        )
        contrastive_mode = params.contrastive_mode(categories, weights, setup.labels_key)
        hidden = {
            mod: params.hidden_widths(n_components[mod] or self.modalities_[mod].n_vars)
            for mod in MODALITIES
        }
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params.seed)
            self.module = ConAAEModule(
                self.modalities_[MODALITIES.RNA].n_vars,
                self.modalities_[MODALITIES.ATAC].n_vars,
                hidden_rna=hidden[MODALITIES.RNA],
                hidden_atac=hidden[MODALITIES.ATAC],
                n_latent=params.n_latent,
                n_labels=len(categories),
                log1p_rna=log1p[MODALITIES.RNA],
                log1p_atac=log1p[MODALITIES.ATAC],
                cell_total_rna=settings.cell_total[MODALITIES.RNA],
                cell_total_atac=settings.cell_total[MODALITIES.ATAC],
                n_batches_rna=n_reference[MODALITIES.RNA],
                n_batches_atac=n_reference[MODALITIES.ATAC],
                n_query_batches_rna=max(0, len(samples[MODALITIES.RNA]) - n_reference["rna"]),
                n_query_batches_atac=max(0, len(samples[MODALITIES.ATAC]) - n_reference["atac"]),
                n_shared_input_batches_rna=n_shared[MODALITIES.RNA],
                n_shared_input_batches_atac=n_shared[MODALITIES.ATAC],
                n_components_rna=n_components[MODALITIES.RNA],
                n_components_atac=n_components[MODALITIES.ATAC],
                alignment=params.alignment,
                contrastive=contrastive_mode,
                weights=weights,
                anchors_from_links=anchors_from_links,
                margin=params.margin,
                augmentation_noise=params.augmentation_noise,
                latent_batch_norm=params.latent_batch_norm,
                dropout=params.dropout,
            )
        if registry is None:
            fit_input_statistics(
                self.module,
                matrices,
                log1p,
                n_components,
                setup.mod_name,
                params.seed,
                settings.cell_total,
            )
        self.is_trained_ = False
        self._latent_cache = None  # (n_train_calls_, embeddings of the training data)
        self._training_data = None  # the modalities as the networks read them (see train)
        self._thinned_training_scores = None  # projected modalities' thinned counts (train)
        self.history_: dict[str, pd.DataFrame] = {}
        self.n_train_calls_ = 0
        # Softening of each modality's label logits, fitted after training (_calibration).
        self.label_temperature_: dict[str, float] = dict.fromkeys(MODALITIES, 1.0)
        self.train_indices_: dict[str, np.ndarray] = {}
        self.validation_indices_: dict[str, np.ndarray] = {}
        if saved is not None and saved.state:
            _persistence.load_weights(self.module, saved)
            self.is_trained_ = saved.settings.get("is_trained", True)
            self.n_train_calls_ = saved.settings.get("n_train_calls", 0)
            saved_temperature = saved.settings.get("label_temperature", {})
            self.label_temperature_.update({m: float(t) for m, t in saved_temperature.items()})
            self.history_ = saved.history
        self.module.eval()

    # ------------------------------------------------------------------ setup
    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        *,
        rna_mod: str = "rna",
        atac_mod: str = "atac",
        rna_layer: str | None = None,
        atac_layer: str | None = None,
        labels_key: str | None = None,
        anchor_key: str | None = None,
        gene_links: ad.AnnData | None = None,
        batch_key: str | None = None,
    ) -> None:
        """Register the RNA and ATAC modalities of a MuData for :class:`ConAAE`.

        Checks the data once (modalities, values, labels, anchors, links) and registers each
        modality with its own :class:`~scvi.data.AnnDataManager`; every model built on
        ``mdata`` then reuses that registration. Nothing is written into ``mdata``: the
        registration is remembered for this object. After replacing or subsetting a modality
        or its matrix, call it again (building a model says so).

        Parameters
        ----------
        mdata
            MuData holding both modalities. Their cells may be the same (paired, e.g. 10x
            Multiome) or different (unpaired); pairing is never inferred from row order.
        rna_mod, atac_mod
            Names of the two modalities in ``mdata.mod``.
        rna_layer, atac_layer
            Layer holding the data of each modality; ``None`` uses ``.X``. Dense or sparse
            (CSR or CSC; sparse data are never densified as a whole), raw counts or normalised
            values (see ``input_transform`` of :class:`ConAAE`).
        labels_key
            Optional ``.obs`` column with cell labels (cell type or batch). It may exist in one
            modality only (label transfer); NaN marks unlabelled cells. The categories are the
            union over both modalities.
        anchor_key
            Explicit paired supervision (the anchor loss), off by default. ``"obs_names"`` pairs
            cells with equal obs_names in both modalities; any other value names a column of
            the RNA modality's ``.obs`` holding each cell's known ATAC partner (NaN if none).
        gene_links
            Peak-gene links, an AnnData of peaks x genes from
            :func:`conaae_scverse.pp.link_peaks_to_genes`. When one modality has no labels,
            they tell which of its populations is which (``label_prior`` of
            :class:`ConAAE`); they are not saved with the model.
        batch_key
            Optional ``.obs`` column naming each cell's sample (donor, library, time point),
            in one or both modalities; every cell of a modality that has the column needs a
            value. Each modality's samples are its own categories (RNA and ATAC samples are
            different experiments even when their names agree). With more than one sample in
            a modality, its encoder and decoder are conditioned on the sample, so that the
            shared latent keeps the biology and not the sample. Saved with the model; cells
            of a sample the model was not trained on are refused, with an error that says so.

        Examples
        --------
        >>> ConAAE.setup_mudata(mdata, rna_mod="rna", atac_mod="atac", labels_key="cell_type")
        """
        _registration.register(
            mdata,
            _data.SetupArgs(
                rna_mod, atac_mod, rna_layer, atac_layer, labels_key, anchor_key, batch_key
            ),
            gene_links,
        )

    # ------------------------------------------------------------------ misc
    @property
    def history(self) -> dict[str, pd.DataFrame]:
        """Every logged loss term per epoch, ``{name: DataFrame}`` (``*_train``, ``*_validation``).

        Entries of an interrupted epoch are not kept (see :meth:`train`).
        """
        return self.history_

    @property
    def is_trained(self) -> bool:
        """Whether :meth:`train` has completed at least once."""
        return self.is_trained_

    @property
    def device(self) -> torch.device:
        """Device of the model's weights."""
        return next(self.module.parameters()).device

    def to_device(self, device: str | torch.device) -> None:
        """Move the model to ``device``."""
        self.module.to(device)

    def __repr__(self) -> str:
        sizes = {m: (d.n_obs, d.n_vars) for m, d in self.modalities_.items()}
        return (
            f"ConAAE(rna={self.setup_.rna_mod!r} {sizes['rna']}, atac={self.setup_.atac_mod!r} "
            f"{sizes['atac']}, n_latent={self.module.n_latent}, labels="
            f"{len(self.label_categories_)}, alignment={self.module.alignment!r}, "
            f"trained={self.is_trained_})"
        )
