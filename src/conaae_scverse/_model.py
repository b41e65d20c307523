"""The user-facing Con-AAE model class."""

from __future__ import annotations

import inspect
import logging
import math
import signal
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import anndata as ad
import numpy as np
import pandas as pd
import torch
from scipy import sparse
from scvi.utils import track
from torch.utils.data import DataLoader

from . import _data, _persistence
from ._compat import AnnDataLoader, Trainer, parse_device_args
from ._constants import MODALITIES, OUTPUT_KEYS
from ._label_prior import LabelPrior, fit_label_prior
from ._module import ConAAEModule, LossWeights, sparse_csr
from ._neighbors import PROGRESS_MIN_BLOCKS, nearest_neighbors, one_to_one_matching
from ._training_plan import (
    ConAAETrainingPlan,
    EpochSnapshot,
    ShardedBatchSampler,
    UnpairedLoader,
)

if TYPE_CHECKING:
    from mudata import MuData

logger = logging.getLogger(__name__)

Modality = Literal["rna", "atac"]
InputTransform = Literal["auto", "log1p", "none"]
_DEFAULT_HIDDEN = (256, 128)
LABEL_PRIORS = ("auto", "links", "ot", "none")
_TARGET_STEPS = 500  # default number of training steps, see `ConAAE.train`


class ConAAE:
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
        ``contrastive``, ``classifier``, ``anchor``, ``mmd``); missing names keep the paper's
        defaults (10, 10, 10, 10, 1, 0.1, 10). A weight of 0 switches a term off.
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
        ``"log1p"`` then per-feature standardisation (for counts), ``"none"`` for
        standardisation only (already normalised values), or ``"auto"``: log1p when the
        values are non-negative integers. Reconstruction is measured on the standardised
        values (MSE, as the paper).
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
        ``prior_confidence`` train as if labelled with it (pseudo-labels). Nothing of the
        user's data changes.
    prior_confidence
        Smallest prior probability that makes a pseudo-label, in [0, 1].
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
        n_hidden: Sequence[int] | Literal["paper"] = _DEFAULT_HIDDEN,
        alignment: Literal["adversarial", "mmd", "none"] = "adversarial",
        contrastive: Literal["auto", "supervised", "self_supervised"] = "auto",
        loss_weights: Mapping[str, float] | None = None,
        margin: float = 0.3,
        augmentation_noise: float = 0.5,
        latent_batch_norm: bool = True,
        dropout: float = 0.0,
        input_transform: InputTransform | Mapping[str, InputTransform] = "auto",
        label_prior: Literal["auto", "links", "ot", "none"] = "auto",
        prior_confidence: float = 0.8,
        seed: int = 0,
        _registry: Mapping[str, Any] | None = None,
    ):
        self.init_params_ = {
            "n_latent": n_latent,
            "n_hidden": _normalize_hidden(n_hidden),
            "alignment": alignment,
            "contrastive": contrastive,
            "loss_weights": _normalize_mapping("loss_weights", loss_weights),
            "margin": margin,
            "augmentation_noise": augmentation_noise,
            "latent_batch_norm": latent_batch_norm,
            "dropout": dropout,
            "input_transform": (
                input_transform
                if isinstance(input_transform, str)
                else _normalize_mapping("input_transform", input_transform)
            ),
            "label_prior": label_prior,
            "prior_confidence": prior_confidence,
            "seed": seed,
        }
        _validate_hyperparameters(self.init_params_)
        _data.check_mudata(mdata)
        setup = _data.recall_setup(mdata)
        if setup is None:
            msg = (
                "This MuData has not been set up. Call "
                "`ConAAE.setup_mudata(mdata, rna_mod=..., atac_mod=..., labels_key=...)` first."
            )
            raise ValueError(msg)
        self.mdata = mdata
        self.setup_ = setup
        # Checked again: the MuData may have changed since setup_mudata.
        adatas = {
            MODALITIES.RNA: _data.get_modality(mdata, setup.rna_mod, MODALITIES.RNA),
            MODALITIES.ATAC: _data.get_modality(mdata, setup.atac_mod, MODALITIES.ATAC),
        }
        if isinstance(input_transform, Mapping):
            allowed = {*MODALITIES, setup.rna_mod, setup.atac_mod}
            unknown = sorted(set(map(str, input_transform)) - allowed)
            if unknown:
                msg = (
                    f"input_transform has keys {unknown} that name no modality; use "
                    f"{sorted(allowed)}."
                )
                raise KeyError(msg)
        matrices = {
            mod: _data.get_matrix(adatas[mod], setup.layer(mod), setup.mod_name(mod))
            for mod in MODALITIES
        }
        if _registry is None:
            categories = (
                _data.label_categories(
                    {setup.mod_name(m): a for m, a in adatas.items()}, setup.labels_key
                )
                if setup.labels_key is not None
                else []
            )
            log1p = {
                mod: _resolve_log1p(input_transform, mod, matrices[mod], setup.mod_name(mod))
                for mod in MODALITIES
            }
        else:
            categories = list(_registry["label_categories"])
            log1p = dict(_registry["log1p"])
            for mod in MODALITIES:
                _check_features(adatas[mod], _registry["var_names"][mod], setup.mod_name(mod))
        self.label_categories_ = categories
        self.log1p_ = log1p

        codes = {
            mod: _data.label_codes(adatas[mod], setup.labels_key, categories) for mod in MODALITIES
        }
        self.label_prior_: LabelPrior | None = None
        self.prior_modality_: str | None = None
        if _registry is None:
            self._fit_label_prior(adatas, matrices, codes, label_prior, prior_confidence)
        self.modalities_: dict[str, _data.ModalityData] = {
            mod: _data.build_modality(mod, adatas[mod], matrices[mod], codes[mod])
            for mod in MODALITIES
        }
        self.anchor_pairs_ = (
            _data.anchor_pairs(
                adatas[MODALITIES.RNA],
                adatas[MODALITIES.ATAC],
                setup.anchor_key,
                setup.rna_mod,
                setup.atac_mod,
            )
            if setup.anchor_key is not None
            else None
        )
        contrastive_mode = contrastive
        if contrastive == "auto":
            contrastive_mode = "supervised" if categories else "self_supervised"
        weights = LossWeights(**{**LossWeights().to_dict(), **(loss_weights or {})})
        if contrastive_mode == "supervised":
            if not categories:
                msg = (
                    "contrastive='supervised' needs labels: set up with labels_key=..., or use "
                    "contrastive='self_supervised'."
                )
                raise ValueError(msg)
            if len(categories) < 2 and weights.contrastive > 0:
                msg = (
                    f"labels_key {setup.labels_key!r} has a single category "
                    f"({categories[0]!r}); the supervised contrastive loss needs at least two. "
                    "Use contrastive='self_supervised', loss_weights={'contrastive': 0}, or set "
                    "up with labels_key=None."
                )
                raise ValueError(msg)

        hidden = {
            mod: (
                [self.modalities_[mod].n_vars] * 3 + [100]
                if n_hidden == "paper"
                else list(self.init_params_["n_hidden"])
            )
            for mod in MODALITIES
        }
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.module = ConAAEModule(
                self.modalities_[MODALITIES.RNA].n_vars,
                self.modalities_[MODALITIES.ATAC].n_vars,
                hidden_rna=hidden[MODALITIES.RNA],
                hidden_atac=hidden[MODALITIES.ATAC],
                n_latent=n_latent,
                n_labels=len(categories),
                log1p_rna=log1p[MODALITIES.RNA],
                log1p_atac=log1p[MODALITIES.ATAC],
                alignment=alignment,
                contrastive=contrastive_mode,
                weights=weights,
                margin=margin,
                augmentation_noise=augmentation_noise,
                latent_batch_norm=latent_batch_norm,
                dropout=dropout,
            )
        if _registry is None:
            for mod in MODALITIES:
                with np.errstate(over="ignore", invalid="ignore"):  # overflow: checked below
                    mean, std = _data.feature_moments(matrices[mod], log1p=log1p[mod])
                if not (np.isfinite(mean).all() and np.isfinite(std).all()):
                    msg = (
                        f"Modality {setup.mod_name(mod)!r} has values too large to standardise "
                        "(their squares overflow float64). Scale them down or log-transform "
                        "them first."
                    )
                    raise ValueError(msg)
                self.module.set_feature_moments(
                    mod,
                    torch.as_tensor(mean, dtype=torch.float32),
                    torch.as_tensor(std, dtype=torch.float32),
                )
        self.module.eval()
        self.is_trained_ = False
        self.history_: dict[str, pd.DataFrame] = {}
        self.n_train_calls_ = 0
        self.train_indices_: dict[str, np.ndarray] = {}
        self.validation_indices_: dict[str, np.ndarray] = {}

    def _fit_label_prior(self, adatas, matrices, codes, source: str, min_confidence: float):
        """Pseudo-labels for a modality without any label, written into its ``codes``."""
        setup = self.setup_
        unlabelled = [mod for mod in MODALITIES if (codes[mod] < 0).all()]
        if source == "none" or not self.label_categories_ or setup.anchor_key is not None:
            return
        if len(unlabelled) != 1:
            return
        links = _data.recall_gene_links(self.mdata)
        if source == "auto":
            source = "links" if links is not None else "ot"
        if source == "links" and links is None:
            msg = (
                "label_prior='links' needs peak-gene links: make them with "
                "`links = ca.pp.link_peaks_to_genes(mdata[atac_mod], annotation)` and pass "
                "`gene_links=links` to setup_mudata; or use label_prior='ot' or 'auto'."
            )
            raise ValueError(msg)
        rna_columns = None
        if source == "links":
            rna_columns = adatas[MODALITIES.RNA].var_names.get_indexer(links.var_names)
        prior = fit_label_prior(
            source,
            matrices,
            codes,
            unlabelled=unlabelled[0],
            n_labels=len(self.label_categories_),
            log1p=self.log1p_,
            gene_links=None if links is None else links.X,
            rna_gene_columns=rna_columns,
            seed=self.init_params_["seed"],
        )
        codes[unlabelled[0]] = prior.pseudo_labels(min_confidence)
        self.label_prior_, self.prior_modality_ = prior, unlabelled[0]

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
    ) -> None:
        """Register the RNA and ATAC modalities of a MuData for :class:`ConAAE`.

        Nothing is written into ``mdata``: the registration is remembered for this object.

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

        Examples
        --------
        >>> ConAAE.setup_mudata(mdata, rna_mod="rna", atac_mod="atac", labels_key="cell_type")
        """
        _data.check_mudata(mdata)
        if rna_mod == atac_mod:
            msg = (
                f"rna_mod and atac_mod are both {rna_mod!r}; they must name two different "
                f"modalities of the MuData (available: {list(mdata.mod)})."
            )
            raise ValueError(msg)
        adatas = {
            rna_mod: _data.get_modality(mdata, rna_mod, "rna"),
            atac_mod: _data.get_modality(mdata, atac_mod, "atac"),
        }
        _data.get_matrix(adatas[rna_mod], rna_layer, rna_mod)
        _data.get_matrix(adatas[atac_mod], atac_layer, atac_mod)
        if labels_key is not None:
            if not isinstance(labels_key, str):
                msg = f"labels_key must be a column name (str) or None, got {labels_key!r}."
                raise TypeError(msg)
            _data.label_categories(adatas, labels_key)
            unlabelled = _data.unlabelled_modalities(adatas, labels_key)
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
                warnings.warn(msg, UserWarning, stacklevel=2)
        if anchor_key is not None:
            _data.anchor_pairs(adatas[rna_mod], adatas[atac_mod], anchor_key, rna_mod, atac_mod)
        if gene_links is not None:
            gene_links = _data.check_gene_links(
                gene_links, adatas[rna_mod], adatas[atac_mod], atac_mod
            )
        _data.remember_setup(
            mdata,
            _data.SetupArgs(rna_mod, atac_mod, rna_layer, atac_layer, labels_key, anchor_key),
            gene_links,
        )

    # ------------------------------------------------------------------ training
    def train(
        self,
        max_epochs: int | None = None,
        *,
        batch_size: int = 256,
        lr: float = 2e-3,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        train_size: float = 0.9,
        validation_size: float | None = None,
        early_stopping: bool = False,
        early_stopping_patience: int = 20,
        check_val_every_n_epoch: int | None = None,
        n_epochs_warmup: int = 0,
        seed: int | None = None,
        plan_kwargs: Mapping[str, Any] | None = None,
        **trainer_kwargs: Any,
    ) -> None:
        """Train the model with scvi-tools' Trainer (a GPU is used when present).

        RNA and ATAC minibatches are drawn independently, each modality shuffled on its own;
        an epoch is one pass over the larger modality.

        Every argument is checked before training starts. If training stops early, by Ctrl+C
        (KeyboardInterrupt) or by an error such as
        :class:`~conaae_scverse._training_plan.NonFiniteLossError` (a NaN or infinite loss
        term), the model is left usable: it keeps the weights of the last completed epoch
        (or its weights before this call) and the history of the completed epochs, and the
        exception is re-raised. A KeyboardInterrupt is re-raised as KeyboardInterrupt (not as
        the ``SystemExit`` Lightning turns it into), so a script stops as asked, while in a
        notebook the model can be used or trained further at once. Calling ``train`` again
        continues from the current weights and appends to :attr:`history`.

        Parameters
        ----------
        max_epochs
            Passes over the larger modality. Default: about 500 minibatch steps, i.e.
            ``clip(500 / steps_per_epoch, 20, 500)`` epochs.
        batch_size
            Cells per minibatch of each modality (the paper uses 32; larger batches give the
            triplet mining and the discriminator more cells to compare and train faster).
        lr
            Peak learning rate of the autoencoders, classifier and discriminator. By default
            it decays to 0 along a half cosine over ``max_epochs``
            (``plan_kwargs={"lr_schedule": "constant"}`` keeps it fixed). Calling ``train``
            again starts the schedule afresh.
        accelerator, devices
            Passed to the Lightning Trainer (``"auto"`` picks a GPU when present).
        train_size
            Fraction of each modality's cells used for training; the rest validates.
        validation_size
            Fraction for validation (default: all cells not used for training).
        early_stopping
            Stop when ``validation_loss`` has not improved for ``early_stopping_patience``
            epochs.
        early_stopping_patience
            Patience of early stopping, in epochs.
        check_val_every_n_epoch
            Validation frequency (default: every epoch with early stopping, else ~20 times per
            run).
        n_epochs_warmup
            Epochs of autoencoder-only training before the adversarial/MMD alignment starts.
        seed
            Seed of the splits, shuffling and noise (default: derived from the model's seed
            and the number of previous ``train`` calls, so runs are reproducible).
        plan_kwargs
            Extra arguments of the training plan: ``lr_discriminator``, ``weight_decay``
            (1e-4), ``betas`` ((0.5, 0.999)), ``n_steps_autoencoder`` and
            ``n_steps_discriminator`` (k1 autoencoder steps per k2 discriminator steps),
            ``lr_schedule`` (``"cosine"`` or ``"constant"``).
        **trainer_kwargs
            Other keyword arguments of :class:`scvi.train.Trainer` (e.g. ``strategy``,
            ``enable_progress_bar``).

        Notes
        -----
        Several processes (Lightning DDP, gloo backend on CPU): ``devices=2,
        strategy="ddp"`` from a script (Lightning re-runs the script in each worker; rank 0
        keeps the history), or ``strategy="ddp_spawn"`` from a notebook or test (workers are
        spawned; the trained weights come back to the calling process, the loss history does
        not). Each process trains on its own share of every epoch's minibatches, so an epoch
        has ``1 / devices`` as many steps per process; early stopping is disabled under DDP.
        """
        _check_fraction("train_size", train_size)
        if validation_size is not None:
            _check_fraction("validation_size", validation_size, allow_zero=True)
            if train_size + validation_size > 1 + 1e-9:
                msg = "train_size + validation_size must be at most 1."
                raise ValueError(msg)
        if max_epochs is not None and (not _is_int(max_epochs) or max_epochs < 1):
            msg = f"max_epochs must be a positive integer, got {max_epochs!r}."
            raise ValueError(msg)
        if not _is_int(batch_size) or batch_size < 2:
            msg = (
                f"batch_size must be an integer >= 2 (BatchNorm needs at least 2 cells per "
                f"minibatch), got {batch_size!r}."
            )
            raise ValueError(msg)
        if not (_is_number(lr) and lr > 0 and math.isfinite(lr)):
            msg = f"lr must be a positive number, got {lr!r}."
            raise ValueError(msg)
        _check_count("early_stopping_patience", early_stopping_patience, 1)
        _check_count("n_epochs_warmup", n_epochs_warmup, 0)
        if check_val_every_n_epoch is not None:
            _check_count("check_val_every_n_epoch", check_val_every_n_epoch, 1)
        if seed is not None:
            _check_count("seed", seed, 0)
        plan_kwargs = _normalize_mapping("plan_kwargs", plan_kwargs)
        plan_args = set(inspect.signature(ConAAETrainingPlan).parameters) - {"module"}
        for key in plan_kwargs:
            if key in ("lr", "n_epochs_warmup"):
                msg = f"Pass {key} as an argument of train ({key}=...), not in plan_kwargs."
                raise TypeError(msg)
            if key not in plan_args:
                msg = (
                    f"Unknown plan_kwargs key {key!r}; the training plan accepts "
                    f"{sorted(plan_args - {'lr', 'n_epochs_warmup'})}."
                )
                raise TypeError(msg)
        seed = self.init_params_["seed"] + 1000 * self.n_train_calls_ if seed is None else seed
        rng = np.random.default_rng(seed)

        train_idx, val_idx = {}, {}
        for mod, data in self.modalities_.items():
            perm = rng.permutation(data.n_obs)
            n_train = max(1, round(train_size * data.n_obs))
            n_val = (
                data.n_obs - n_train
                if validation_size is None
                else round(validation_size * data.n_obs)
            )
            train_idx[mod] = np.sort(perm[:n_train])
            val_idx[mod] = np.sort(perm[n_train : n_train + n_val])
            if n_train < 2:
                msg = (
                    f"Modality {self.setup_.mod_name(mod)!r} has {n_train} training cell(s); "
                    "a minibatch needs at least 2 (BatchNorm). Use more cells or a larger "
                    "train_size."
                )
                raise ValueError(msg)
        self.train_indices_, self.validation_indices_ = train_idx, val_idx

        effective_bs = min(batch_size, *(len(i) for i in train_idx.values()))
        if effective_bs < batch_size:
            logger.info(
                "Using minibatches of %d cells (fewer training cells than batch_size).",
                effective_bs,
            )
        strategy = trainer_kwargs.get("strategy")
        distributed = (isinstance(strategy, str) and "ddp" in strategy) or (
            strategy is not None and "DDP" in type(strategy).__name__
        )
        if strategy in ("ddp", "ddp_spawn", "ddp_notebook"):
            # Two backward passes per step (autoencoder, then discriminator): DDP must not
            # expect every parameter in each; the discriminator's gradients are averaged by
            # the training plan.
            from lightning.pytorch.strategies import DDPStrategy

            start = {"ddp": "popen", "ddp_spawn": "spawn", "ddp_notebook": "fork"}[strategy]
            trainer_kwargs["strategy"] = DDPStrategy(
                find_unused_parameters=True, start_method=start
            )
        if distributed:
            # The loaders shard minibatches themselves (ShardedBatchSampler); Lightning must
            # not try to re-instantiate them with its own DistributedSampler.
            trainer_kwargs.setdefault("use_distributed_sampler", False)
        train_loaders = [
            self._loader(
                mod,
                train_idx[mod],
                effective_bs,
                shuffle=True,
                distributed=distributed,
                seed=seed + i,
            )
            for i, mod in enumerate(MODALITIES)
        ]
        if self.anchor_pairs_ is not None:
            anchor_loader = self._anchor_loader(train_idx, effective_bs)
            if anchor_loader is not None:
                train_loaders.append(anchor_loader)
        has_validation = all(len(i) >= 2 for i in val_idx.values())
        val_loader = None
        if has_validation:
            val_bs = min(max(effective_bs, 512), *(len(i) for i in val_idx.values()))
            val_loader = UnpairedLoader(
                [self._loader(mod, val_idx[mod], val_bs, shuffle=False) for mod in MODALITIES]
            )

        n_steps = max(1, max(len(i) for i in train_idx.values()) // effective_bs)
        if max_epochs is None:
            max_epochs = int(np.clip(round(_TARGET_STEPS / n_steps), 20, 500))
        if check_val_every_n_epoch is None:
            check_val_every_n_epoch = 1 if early_stopping else max(1, max_epochs // 20)
        if early_stopping and not has_validation:
            msg = "early_stopping needs validation cells: use train_size < 1."
            raise ValueError(msg)

        accelerator, devices, device = parse_device_args(
            accelerator, devices, return_device="torch"
        )
        trainer_kwargs.setdefault("enable_progress_bar", True)
        # Weights as of the last completed epoch, restored if training stops with an error.
        snapshot = EpochSnapshot(self.module)
        trainer_kwargs["callbacks"] = [*(trainer_kwargs.get("callbacks") or []), snapshot]
        trainer = Trainer(
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            early_stopping=early_stopping,
            early_stopping_monitor="validation_loss",
            early_stopping_patience=early_stopping_patience,
            check_val_every_n_epoch=check_val_every_n_epoch if has_validation else None,
            **trainer_kwargs,
        )
        plan = ConAAETrainingPlan(
            self.module, lr=lr, n_epochs_warmup=n_epochs_warmup, **plan_kwargs
        )
        self.module.train()
        sigint_handler = signal.getsignal(signal.SIGINT)
        with torch.random.fork_rng(devices=_cuda_devices(device)):
            torch.manual_seed(seed)
            try:
                trainer.fit(plan, UnpairedLoader(train_loaders), val_loader)
            except BaseException as err:
                self._recover(trainer, snapshot)
                # Lightning turns Ctrl+C (KeyboardInterrupt) into sys.exit(1): give it back.
                if isinstance(err, SystemExit) and isinstance(snapshot.error, KeyboardInterrupt):
                    msg = (
                        f"Training interrupted; the model keeps the weights of its last "
                        f"completed epoch ({snapshot.completed_epochs} of {max_epochs} in this "
                        "call). Call train() again to continue."
                    )
                    raise KeyboardInterrupt(msg) from None
                raise
            finally:
                self.module.eval()
                self.to_device(device)
                _restore_sigint(sigint_handler)
        self._append_history(trainer)
        self.n_train_calls_ += 1
        self.is_trained_ = True
        self.trainer = trainer

    def _recover(self, trainer, snapshot: EpochSnapshot) -> None:
        """After a failed ``fit``: weights and history of the last completed epoch."""
        snapshot.restore()
        self.trainer = trainer
        if snapshot.completed_epochs == 0:
            logger.warning("Training stopped before the first epoch ended; weights unchanged.")
            return
        self._append_history(trainer, n_epochs=snapshot.completed_epochs)
        self.n_train_calls_ += 1
        self.is_trained_ = True
        logger.warning(
            "Training stopped during epoch %d; the model keeps the weights and history of the "
            "%d completed epoch(s).",
            snapshot.completed_epochs + 1,
            snapshot.completed_epochs,
        )

    def _loader(
        self,
        mod: str,
        indices: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool,
        distributed: bool = False,
        seed: int = 0,
    ):
        # drop_last keeps BatchNorm away from a last minibatch of a single cell.
        drop_last = shuffle and len(indices) > batch_size
        if distributed:
            # Under DDP each process takes its own share of every epoch's minibatches.
            sampler = ShardedBatchSampler(
                len(indices), batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed
            )
            dataset = self.modalities_[mod].manager.create_torch_dataset(indices=indices)
            return DataLoader(dataset, sampler=sampler, batch_size=None)
        return AnnDataLoader(
            self.modalities_[mod].manager,
            indices=indices,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
        )

    def _anchor_loader(self, train_idx: dict[str, np.ndarray], batch_size: int):
        """Minibatches of known pairs whose both cells are training cells (anchor mode only)."""
        pairs = self.anchor_pairs_
        keep = np.isin(pairs[:, 0], train_idx[MODALITIES.RNA]) & np.isin(
            pairs[:, 1], train_idx[MODALITIES.ATAC]
        )
        pairs = pairs[keep]
        if len(pairs) < 2:
            logger.warning("Fewer than 2 known pairs among the training cells: anchor loss off.")
            return None
        rna = self.modalities_[MODALITIES.RNA].matrix
        atac = self.modalities_[MODALITIES.ATAC].matrix

        def collate(rows: list[int]) -> dict[str, torch.Tensor]:
            chosen = pairs[np.asarray(rows)]
            return {
                MODALITIES.RNA: _dense_rows(rna, chosen[:, 0]),
                MODALITIES.ATAC: _dense_rows(atac, chosen[:, 1]),
            }

        bs = min(batch_size, len(pairs))
        return DataLoader(
            range(len(pairs)),
            batch_size=bs,
            shuffle=True,
            drop_last=len(pairs) > bs,
            collate_fn=collate,
        )

    def _append_history(self, trainer, n_epochs: int | None = None) -> None:
        """Append the trainer's history; with ``n_epochs``, only its first ``n_epochs``."""
        history = getattr(trainer.logger, "history", None)
        if not isinstance(history, Mapping):  # e.g. the dummy logger of DDP ranks > 0
            history = {}
        offset = 0
        if self.history_:
            offset = max(
                (int(df.index.max()) + 1 for df in self.history_.values() if len(df)), default=0
            )
        for key, frame in history.items():
            # the logger stores object columns; keep floats, as `load` gives
            frame = frame.astype(np.float64)
            if n_epochs is not None:
                frame = frame[np.asarray(frame.index) < n_epochs]
                if not len(frame):
                    continue
            frame.index = frame.index + offset
            self.history_[key] = (
                pd.concat([self.history_[key], frame]) if key in self.history_ else frame
            )

    # ------------------------------------------------------------------ inference
    def _inference_matrix(self, mdata: MuData | None, modality: str):
        if modality not in MODALITIES:
            msg = f"modality must be 'rna' or 'atac', got {modality!r}."
            raise ValueError(msg)
        if mdata is None or mdata is self.mdata:
            data = self.modalities_[modality]
            return data.matrix, data.obs_names
        _data.check_mudata(mdata)
        mod_name = self.setup_.mod_name(modality)
        adata = _data.get_modality(mdata, mod_name, modality)
        _check_features(adata, self.modalities_[modality].var_names, mod_name)
        matrix = _data.get_matrix(adata, self.setup_.layer(modality), mod_name)
        if self.log1p_[modality] and _data.min_value(matrix) < 0:
            msg = (
                f"Modality {mod_name!r} has negative values, but the model log1p-transforms "
                "its input (it was trained on counts). Pass the same kind of values it was "
                "trained on."
            )
            raise ValueError(msg)
        return matrix, adata.obs_names

    @torch.inference_mode()
    def get_latent_representation(
        self, mdata: MuData | None = None, modality: Modality = "rna", *, batch_size: int = 4096
    ) -> np.ndarray:
        """Embedding of one modality's cells in the shared latent space.

        Parameters
        ----------
        mdata
            MuData with the same features as the training data (default: the training data).
        modality
            ``"rna"`` or ``"atac"``.
        batch_size
            Cells per forward pass.

        Returns
        -------
        Array of shape (n_cells, n_latent).
        """
        matrix, _ = self._inference_matrix(mdata, modality)
        return self._encode(matrix, modality, batch_size)

    def _encode(self, matrix, modality: str, batch_size: int) -> np.ndarray:
        self.module.eval()
        device = self.device
        out = np.empty((matrix.shape[0], self.module.n_latent), dtype=np.float32)
        is_sparse = sparse.issparse(matrix)
        if not is_sparse:
            # At most ~2**24 dense values (64 MB) per block, so wide inputs (e.g. 100k
            # features) never densify thousands of rows at once.
            batch_size = max(1, min(batch_size, (1 << 24) // max(1, matrix.shape[1])))
        starts = range(0, matrix.shape[0], batch_size)
        with torch.inference_mode():
            for start in track(
                starts,
                description=f"Encoding {modality.upper()} cells",
                disable=len(starts) < PROGRESS_MIN_BLOCKS,
            ):
                rows = np.arange(start, min(start + batch_size, matrix.shape[0]))
                if is_sparse:
                    x = _sparse_rows(matrix, rows).to(device)
                    z = self.module.encode_sparse(x, modality)
                else:
                    z = self.module.encode(_dense_rows(matrix, rows).to(device), modality)
                out[rows] = z.cpu().numpy()
        return out

    @torch.inference_mode()
    def predict(
        self,
        mdata: MuData | None = None,
        modality: Modality = "rna",
        *,
        soft: bool = False,
        batch_size: int = 4096,
    ) -> np.ndarray | pd.DataFrame:
        """Predicted labels of one modality's cells, from the classifier on the latent.

        Parameters
        ----------
        mdata
            MuData with the training features (default: the training data).
        modality
            ``"rna"`` or ``"atac"``.
        soft
            Return class probabilities instead of labels.
        batch_size
            Cells per forward pass.

        Returns
        -------
        Array of shape (n_cells,) with label names, or with ``soft=True`` a DataFrame of shape
        (n_cells, n_labels) of probabilities indexed by ``obs_names``.
        """
        if not self.label_categories_:
            msg = "The model was set up without labels_key, so it cannot predict labels."
            raise ValueError(msg)
        matrix, obs_names = self._inference_matrix(mdata, modality)
        z = torch.as_tensor(self._encode(matrix, modality, batch_size), device=self.device)
        probs = torch.softmax(self.module.classify(z), dim=1).cpu().numpy()
        if soft:
            return pd.DataFrame(probs, index=obs_names, columns=self.label_categories_)
        return np.asarray(self.label_categories_, dtype=object)[probs.argmax(axis=1)]

    def match_cells(
        self,
        mdata: MuData | None = None,
        *,
        method: Literal["nearest", "one_to_one"] = "nearest",
        metric: Literal["l1", "l2"] = "l1",
    ) -> dict[str, pd.DataFrame]:
        """Match every cell to a cell of the other modality in the latent space.

        Parameters
        ----------
        mdata
            MuData with the training features (default: the training data).
        method
            ``"nearest"``: each cell's nearest cell of the other modality (exact up to 50k x
            50k cells, approximate beyond). ``"one_to_one"``: a one-to-one assignment with the
            smallest total distance (equal cell numbers, at most 5,000 cells).
        metric
            ``"l1"`` (the paper) or ``"l2"``.

        Returns
        -------
        ``{"rna": DataFrame, "atac": DataFrame}``, each indexed by that modality's obs_names
        with columns ``conaae_match`` (obs_name in the other modality) and
        ``conaae_match_distance``.
        """
        if method not in ("nearest", "one_to_one"):
            msg = f"method must be 'nearest' or 'one_to_one', got {method!r}."
            raise ValueError(msg)
        return _match_latents(self._latents(mdata), method=method, metric=metric)

    def _latents(self, mdata: MuData | None) -> dict[str, tuple[np.ndarray, pd.Index]]:
        """Each modality's embedding and obs_names, encoded once for all the outputs."""
        latents = {}
        for mod in MODALITIES:
            matrix, names = self._inference_matrix(mdata, mod)
            latents[mod] = self._encode(matrix, mod, 4096), names
        return latents

    def _label_probabilities(self, z: np.ndarray) -> np.ndarray:
        """Classifier probabilities, shape (n_cells, n_labels), of latent rows ``z``."""
        with torch.inference_mode():
            logits = self.module.classify(torch.as_tensor(z, device=self.device))
            return torch.softmax(logits, dim=1).cpu().numpy()

    def write_results(
        self,
        mdata: MuData | None = None,
        *,
        match: Literal["nearest", "one_to_one"] = "nearest",
        metric: Literal["l1", "l2"] = "l1",
    ) -> None:
        """Write embeddings, predicted labels and cell matches into each modality.

        Written keys, in ``mdata.mod[rna_mod]`` and ``mdata.mod[atac_mod]``, and nothing else:

        - ``.obsm["X_conaae"]``: latent embedding, shape (n_cells, n_latent).
        - ``.obs["conaae_label"]`` (categorical) and ``.obs["conaae_label_confidence"]``
          (classifier probability of that label), when labels were registered.
        - ``.obs["conaae_match"]``: obs_name of the matched cell of the other modality, and
          ``.obs["conaae_match_distance"]`` its latent distance.

        Parameters
        ----------
        mdata
            MuData with the training features (default: the training data).
        match
            ``"nearest"`` or ``"one_to_one"``, see :meth:`match_cells`.
        metric
            Distance of the matching, ``"l1"`` (the paper) or ``"l2"``.
        """
        if match not in ("nearest", "one_to_one"):
            msg = f"match must be 'nearest' or 'one_to_one', got {match!r}."
            raise ValueError(msg)
        target = self.mdata if mdata is None else mdata
        latents = self._latents(mdata)
        matches = _match_latents(latents, method=match, metric=metric)
        for mod in MODALITIES:
            adata = target.mod[self.setup_.mod_name(mod)]
            z, _ = latents[mod]
            adata.obsm[OUTPUT_KEYS.LATENT] = z
            if self.label_categories_:
                probs = self._label_probabilities(z)
                adata.obs[OUTPUT_KEYS.LABEL] = pd.Categorical.from_codes(
                    probs.argmax(axis=1), categories=self.label_categories_
                )
                adata.obs[OUTPUT_KEYS.LABEL_CONFIDENCE] = probs.max(axis=1).astype(np.float32)
            adata.obs[OUTPUT_KEYS.MATCH] = matches[mod][OUTPUT_KEYS.MATCH].to_numpy()
            adata.obs[OUTPUT_KEYS.MATCH_DISTANCE] = matches[mod][
                OUTPUT_KEYS.MATCH_DISTANCE
            ].to_numpy()

    def get_joint_adata(self, mdata: MuData | None = None) -> ad.AnnData:
        """One AnnData of all cells of both modalities in the shared latent space.

        Ready for ``sc.pp.neighbors(joint, use_rep="X_conaae")``, ``sc.tl.umap`` and
        ``sc.pl.umap(joint, color=["modality", ...])``.

        Parameters
        ----------
        mdata
            MuData with the training features (default: the training data).

        Returns
        -------
        AnnData with ``n_rna + n_atac`` cells (obs_names prefixed ``"<modality>:"``), obs
        columns ``modality``, ``cell`` (the original obs_name), the registered label column
        (when present) and ``conaae_label`` (when labels were registered), and
        ``.obsm["X_conaae"]``.
        """
        target = self.mdata if mdata is None else mdata
        frames, latents = [], []
        for mod, (z, names) in self._latents(mdata).items():
            mod_name = self.setup_.mod_name(mod)
            latents.append(z)
            obs = pd.DataFrame(
                {"modality": mod_name, "cell": np.asarray(names, dtype=str)},
                index=[f"{mod_name}:{n}" for n in names],
            )
            key = self.setup_.labels_key
            source = target.mod[mod_name].obs
            if key is not None:
                obs[key] = source[key].astype("object").to_numpy() if key in source else np.nan
            if self.label_categories_:
                obs[OUTPUT_KEYS.LABEL] = np.asarray(self.label_categories_, dtype=object)[
                    self._label_probabilities(z).argmax(axis=1)
                ]
            frames.append(obs)
        obs = pd.concat(frames)
        obs["modality"] = pd.Categorical(
            obs["modality"], categories=[self.setup_.rna_mod, self.setup_.atac_mod]
        )
        for column in (self.setup_.labels_key, OUTPUT_KEYS.LABEL):
            if column is not None and column in obs:
                obs[column] = pd.Categorical(
                    obs[column].astype("object").where(obs[column].notna(), None),
                    categories=self.label_categories_ or None,
                )
        joint = ad.AnnData(obs=obs)
        joint.obsm[OUTPUT_KEYS.LATENT] = np.concatenate(latents)
        return joint

    # ------------------------------------------------------------------ persistence
    def save(self, dir_path: str, *, overwrite: bool = False) -> None:
        """Save the weights and settings to a directory (atomically).

        Writes ``model.pt`` (a state dict of tensors only) and ``settings.json`` (setup,
        hyperparameters, feature names, label categories, history). The data are not saved.
        The files go into a temporary directory next to ``dir_path`` that is then renamed into
        place, so a failed save leaves ``dir_path`` as it was and no temporary files behind.

        Parameters
        ----------
        dir_path
            Target directory; it must not exist unless ``overwrite=True``.
        overwrite
            Replace an existing directory, which must be a saved model or empty (so that
            unrelated files are never deleted).

        Raises
        ------
        FileExistsError
            ``dir_path`` exists and ``overwrite`` is false, or it is not a model directory.
        """
        _persistence.save_model(self, dir_path, overwrite=overwrite)

    @classmethod
    def load(cls, dir_path: str, mdata: MuData, *, accelerator: str = "auto") -> ConAAE:
        """Load a model saved with :meth:`save` onto ``mdata``.

        No code from the directory is executed: weights are read with
        ``torch.load(weights_only=True)`` and settings from JSON.

        Parameters
        ----------
        dir_path
            Directory written by :meth:`save`.
        mdata
            MuData with the same features as the training data; set up automatically with the
            saved setup arguments if it was not set up.
        accelerator
            Where to put the model (``"auto"``: GPU when present).

        Returns
        -------
        The loaded model; it gives the same embeddings as the saved one.

        Raises
        ------
        FileNotFoundError
            ``dir_path`` or one of its two files does not exist.
        conaae_scverse._persistence.ModelFileError
            A :class:`ValueError`: a file is truncated, damaged, tampered with (e.g. a pickle
            that is not a plain tensor state dict), from another format or a newer version, or
            the weights do not fit the settings.
        ValueError
            ``mdata`` does not have the model's features.
        """
        return _persistence.load_model(cls, dir_path, mdata, accelerator=accelerator)

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


def _match_latents(
    latents: dict[str, tuple[np.ndarray, pd.Index]],
    *,
    method: Literal["nearest", "one_to_one"],
    metric: Literal["l1", "l2"],
) -> dict[str, pd.DataFrame]:
    """Each cell's match in the other modality, as returned by :meth:`ConAAE.match_cells`."""
    out = {}
    for mod, other in ((MODALITIES.RNA, MODALITIES.ATAC), (MODALITIES.ATAC, MODALITIES.RNA)):
        (z, names), (z_other, names_other) = latents[mod], latents[other]
        if method == "one_to_one":
            idx, dist = one_to_one_matching(z, z_other, metric=metric)
        else:
            idx, dist = nearest_neighbors(z, z_other, k=1, metric=metric)
            idx, dist = idx[:, 0], dist[:, 0]
        out[mod] = pd.DataFrame(
            {
                OUTPUT_KEYS.MATCH: np.asarray(names_other)[idx],
                OUTPUT_KEYS.MATCH_DISTANCE: dist.astype(np.float32),
            },
            index=names,
        )
    return out


def _dense_rows(matrix, rows: np.ndarray) -> torch.Tensor:
    block = matrix[rows]
    if sparse.issparse(block):
        block = block.toarray()
    return torch.as_tensor(np.asarray(block, dtype=np.float32))


def _sparse_rows(matrix, rows: np.ndarray) -> torch.Tensor:
    """Rows of a scipy sparse matrix as a torch CSR tensor (float32, duplicates summed)."""
    block = sparse.csr_matrix(matrix[rows], dtype=np.float32)
    block.sum_duplicates()
    return sparse_csr(
        torch.from_numpy(block.indptr.astype(np.int64)),
        torch.from_numpy(block.indices.astype(np.int64)),
        torch.from_numpy(block.data),
        size=block.shape,
    )


def _restore_sigint(handler) -> None:
    """Reinstate the SIGINT handler that Lightning replaces with SIG_IGN on Ctrl+C."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is not handler:
        signal.signal(signal.SIGINT, handler)


def _cuda_devices(device) -> list[int]:
    device = torch.device(device)
    if device.type == "cuda":
        return [device.index or 0]
    return []


def _check_features(adata: ad.AnnData, var_names: Sequence[str], mod_name: str) -> None:
    expected = pd.Index(var_names)
    got = pd.Index(adata.var_names.astype(str))
    if got.equals(expected):
        return
    if len(got) == len(expected) and set(got) == set(expected):
        msg = (
            f"Modality {mod_name!r} has the model's features in another order. Reorder them: "
            f"`mdata.mod[{mod_name!r}] = mdata.mod[{mod_name!r}][:, model_var_names]`."
        )
        raise ValueError(msg)
    missing = expected.difference(got, sort=False)
    extra = got.difference(expected, sort=False)
    msg = (
        f"Modality {mod_name!r} does not have the model's features: it has {len(got)}, the "
        f"model was trained on {len(expected)}; {len(missing)} training features missing "
        f"(e.g. {list(missing[:3])}), {len(extra)} unknown (e.g. {list(extra[:3])}). Use data "
        "with exactly the training features, in the same order."
    )
    raise ValueError(msg)


def _resolve_log1p(transform, mod: str, matrix, mod_name: str) -> bool:
    choice = (
        transform.get(mod, transform.get(mod_name, "auto"))
        if isinstance(transform, Mapping)
        else transform
    )
    if choice not in ("auto", "log1p", "none"):
        msg = f"input_transform must be 'auto', 'log1p' or 'none', got {choice!r}."
        raise ValueError(msg)
    if choice == "log1p" and _data.min_value(matrix) < 0:
        msg = (
            f"Modality {mod_name!r} has negative values, but input_transform='log1p' expects "
            "counts. Pass raw counts (e.g. rna_layer='counts') or use input_transform='none'."
        )
        raise ValueError(msg)
    if choice == "auto":
        return _data.looks_like_counts(matrix)
    return choice == "log1p"


def _check_fraction(name: str, value: float, *, allow_zero: bool = False) -> None:
    is_number = _is_number(value)
    low_ok = is_number and (value >= 0 if allow_zero else value > 0)
    if not (is_number and low_ok and value <= 1):
        msg = f"{name} must be in {'[0, 1]' if allow_zero else '(0, 1]'}, got {value!r}."
        raise ValueError(msg)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _normalize_hidden(n_hidden: Any) -> str | list[int]:
    """``n_hidden`` as ``"paper"`` or a list of ints, with a clear error for anything else."""
    if isinstance(n_hidden, str):
        return n_hidden  # checked in _validate_hyperparameters
    if not isinstance(n_hidden, Sequence | np.ndarray) or not all(_is_int(h) for h in n_hidden):
        msg = (
            f"n_hidden must be a sequence of positive integers (e.g. [256, 128]) or 'paper', "
            f"got {n_hidden!r}."
        )
        raise TypeError(msg)
    return [int(h) for h in n_hidden]


def _normalize_mapping(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        msg = f"{name} must be a dict, got {type(value).__name__} ({value!r})."
        raise TypeError(msg)
    return dict(value)


def _check_count(name: str, value: Any, minimum: int) -> None:
    """Fail unless ``value`` is an integer >= ``minimum``."""
    if not _is_int(value) or value < minimum:
        msg = f"{name} must be an integer >= {minimum}, got {value!r}."
        raise ValueError(msg)


def _validate_hyperparameters(params: dict[str, Any]) -> None:
    n_latent = params["n_latent"]
    if not isinstance(n_latent, int | np.integer) or isinstance(n_latent, bool) or n_latent < 1:
        msg = f"n_latent must be a positive integer, got {n_latent!r}."
        raise ValueError(msg)
    n_hidden = params["n_hidden"]
    if isinstance(n_hidden, str):
        if n_hidden != "paper":
            msg = f"n_hidden must be a sequence of positive integers or 'paper', got {n_hidden!r}."
            raise ValueError(msg)
    elif any(h < 1 for h in n_hidden):
        msg = f"n_hidden widths must be positive integers, got {n_hidden!r}."
        raise ValueError(msg)
    for name, allowed in (
        ("alignment", ("adversarial", "mmd", "none")),
        ("contrastive", ("auto", "supervised", "self_supervised")),
        ("label_prior", LABEL_PRIORS),
    ):
        if params[name] not in allowed:
            msg = f"{name} must be one of {allowed}, got {params[name]!r}."
            raise ValueError(msg)
    known = set(LossWeights().to_dict())
    for key, value in params["loss_weights"].items():
        if key not in known:
            msg = f"Unknown loss weight {key!r}; known terms: {sorted(known)}."
            raise ValueError(msg)
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            msg = f"Loss weight {key!r} must be a finite number >= 0, got {value!r}."
            raise ValueError(msg)
    for name in ("margin", "augmentation_noise"):
        value = params[name]
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            msg = f"{name} must be a finite number >= 0, got {value!r}."
            raise ValueError(msg)
    if not _is_number(params["dropout"]) or not 0 <= params["dropout"] < 1:
        msg = f"dropout must be a number in [0, 1), got {params['dropout']!r}."
        raise ValueError(msg)
    if not isinstance(params["latent_batch_norm"], bool | np.bool_):
        msg = f"latent_batch_norm must be True or False, got {params['latent_batch_norm']!r}."
        raise TypeError(msg)
    confidence = params["prior_confidence"]
    if not _is_number(confidence) or not 0 <= confidence <= 1:
        msg = f"prior_confidence must be a number in [0, 1], got {confidence!r}."
        raise ValueError(msg)
    if not _is_int(params["seed"]) or params["seed"] < 0:
        msg = f"seed must be a non-negative integer, got {params['seed']!r}."
        raise ValueError(msg)
    transform = params["input_transform"]
    for choice in [transform] if isinstance(transform, str) else transform.values():
        if choice not in ("auto", "log1p", "none"):
            msg = f"input_transform must be 'auto', 'log1p' or 'none', got {choice!r}."
            raise ValueError(msg)
