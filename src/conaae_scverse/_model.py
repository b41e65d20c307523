"""The user-facing Con-AAE model class."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import anndata as ad
import numpy as np
import pandas as pd
import torch
from scipy import sparse
from torch.utils.data import DataLoader

from . import _data, _persistence
from ._compat import AnnDataLoader, Trainer, parse_device_args
from ._constants import MODALITIES, OUTPUT_KEYS
from ._module import ConAAEModule, LossWeights
from ._neighbors import nearest_neighbors, one_to_one_matching
from ._training_plan import ConAAETrainingPlan, UnpairedLoader

if TYPE_CHECKING:
    from mudata import MuData

logger = logging.getLogger(__name__)

Modality = Literal["rna", "atac"]
InputTransform = Literal["auto", "log1p", "none"]
_DEFAULT_HIDDEN = (256, 128)
_TARGET_STEPS = 3000  # default number of training steps, see `ConAAE.train`


class ConAAE:
    """Contrastive cycle adversarial autoencoders for RNA + ATAC alignment :cite:`Wang2023`.

    One autoencoder per modality maps cells into a shared latent space. A discriminator on the
    latents (or an MMD penalty) aligns the two modalities, latent cycle-consistency ties the
    autoencoders together, a batch-hard triplet loss pulls same-label cells together across
    modalities (or, without labels, keeps each cell close to a noisy view of itself) and a
    linear classifier on the latent predicts labels. The two modalities need not share cells.

    Wang, X., Hu, Z., Yu, T., Wang, Y., Wang, R., Wei, Y., Shu, J., Ma, J. & Li, Y.
    *Con-AAE: contrastive cycle adversarial autoencoders for single-cell multi-omics alignment
    and integration.* Bioinformatics Advances 3, vbad001 (2023).

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
        seed: int = 0,
        _registry: Mapping[str, Any] | None = None,
    ):
        self.init_params_ = {
            "n_latent": n_latent,
            "n_hidden": n_hidden if isinstance(n_hidden, str) else [int(h) for h in n_hidden],
            "alignment": alignment,
            "contrastive": contrastive,
            "loss_weights": dict(loss_weights or {}),
            "margin": margin,
            "augmentation_noise": augmentation_noise,
            "latent_batch_norm": latent_batch_norm,
            "dropout": dropout,
            "input_transform": (
                input_transform if isinstance(input_transform, str) else dict(input_transform)
            ),
            "seed": seed,
        }
        _validate_hyperparameters(self.init_params_)
        setup = _data.recall_setup(mdata)
        if setup is None:
            msg = (
                "This MuData has not been set up. Call "
                "`ConAAE.setup_mudata(mdata, rna_mod=..., atac_mod=..., labels_key=...)` first."
            )
            raise ValueError(msg)
        self.mdata = mdata
        self.setup_ = setup
        adatas = {
            MODALITIES.RNA: mdata.mod[setup.rna_mod],
            MODALITIES.ATAC: mdata.mod[setup.atac_mod],
        }
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

        self.modalities_: dict[str, _data.ModalityData] = {
            mod: _data.build_modality(
                mod,
                adatas[mod],
                matrices[mod],
                _data.label_codes(adatas[mod], setup.labels_key, categories),
            )
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
                mean, std = _data.feature_moments(matrices[mod], log1p=log1p[mod])
                self.module.set_feature_moments(
                    mod, torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
                )
        self.module.eval()
        self.is_trained_ = False
        self.history_: dict[str, pd.DataFrame] = {}
        self.n_train_calls_ = 0
        self.train_indices_: dict[str, np.ndarray] = {}
        self.validation_indices_: dict[str, np.ndarray] = {}

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
        if anchor_key is not None:
            _data.anchor_pairs(adatas[rna_mod], adatas[atac_mod], anchor_key, rna_mod, atac_mod)
        _data.remember_setup(
            mdata,
            _data.SetupArgs(rna_mod, atac_mod, rna_layer, atac_layer, labels_key, anchor_key),
        )

    # ------------------------------------------------------------------ training
    def train(
        self,
        max_epochs: int | None = None,
        *,
        batch_size: int = 256,
        lr: float = 1e-3,
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

        Parameters
        ----------
        max_epochs
            Passes over the larger modality. Default: about 3,000 minibatch steps, i.e.
            ``clip(3000 / steps_per_epoch, 20, 500)`` epochs.
        batch_size
            Cells per minibatch of each modality (the paper uses 32; larger batches give the
            triplet mining and the discriminator more cells to compare and train faster).
        lr
            Learning rate of the autoencoders, classifier and discriminator.
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
            ``n_steps_discriminator`` (k1 autoencoder steps per k2 discriminator steps).
        **trainer_kwargs
            Other keyword arguments of :class:`scvi.train.Trainer` (e.g. ``strategy``,
            ``enable_progress_bar``).
        """
        _check_fraction("train_size", train_size)
        if validation_size is not None:
            _check_fraction("validation_size", validation_size, allow_zero=True)
            if train_size + validation_size > 1 + 1e-9:
                msg = "train_size + validation_size must be at most 1."
                raise ValueError(msg)
        for name, value in (("batch_size", batch_size), ("max_epochs", max_epochs)):
            if value is not None and (not isinstance(value, int | np.integer) or value < 1):
                msg = f"{name} must be a positive integer, got {value!r}."
                raise ValueError(msg)
        if not (isinstance(lr, int | float) and lr > 0 and math.isfinite(lr)):
            msg = f"lr must be a positive number, got {lr!r}."
            raise ValueError(msg)
        seed = self.init_params_["seed"] + 1000 * self.n_train_calls_ if seed is None else seed
        rng = np.random.default_rng(seed)

        train_idx, val_idx = {}, {}
        for mod, data in self.modalities_.items():
            perm = rng.permutation(data.n_obs)
            n_train = max(1, int(round(train_size * data.n_obs)))
            n_val = data.n_obs - n_train if validation_size is None else int(
                round(validation_size * data.n_obs)
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
            logger.info("Using minibatches of %d cells (fewer training cells than batch_size).", effective_bs)
        train_loaders = [
            self._loader(mod, train_idx[mod], effective_bs, shuffle=True) for mod in MODALITIES
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

        accelerator, devices, device = parse_device_args(accelerator, devices, return_device="torch")
        trainer_kwargs.setdefault("enable_progress_bar", True)
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
            self.module, lr=lr, n_epochs_warmup=n_epochs_warmup, **dict(plan_kwargs or {})
        )
        self.module.train()
        with torch.random.fork_rng(devices=_cuda_devices(device)):
            torch.manual_seed(seed)
            try:
                trainer.fit(plan, UnpairedLoader(train_loaders), val_loader)
            finally:
                self.module.eval()
                self.to_device(device)
        self._append_history(trainer)
        self.n_train_calls_ += 1
        self.is_trained_ = True
        self.trainer = trainer

    def _loader(self, mod: str, indices: np.ndarray, batch_size: int, *, shuffle: bool):
        # drop_last keeps BatchNorm away from a last minibatch of a single cell.
        return AnnDataLoader(
            self.modalities_[mod].manager,
            indices=indices,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(indices) > batch_size,
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
            range(len(pairs)), batch_size=bs, shuffle=True, drop_last=len(pairs) > bs,
            collate_fn=collate,
        )

    def _append_history(self, trainer) -> None:
        history = getattr(trainer.logger, "history", None) or {}
        offset = 0
        if self.history_:
            offset = max(int(df.index.max()) + 1 for df in self.history_.values() if len(df))
        for key, frame in history.items():
            frame = frame.copy()
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
        with torch.inference_mode():
            for start in range(0, matrix.shape[0], batch_size):
                rows = np.arange(start, min(start + batch_size, matrix.shape[0]))
                x = _dense_rows(matrix, rows).to(device)
                out[rows] = self.module.encode(x, modality).cpu().numpy()
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
        z, names = {}, {}
        for mod in MODALITIES:
            matrix, names[mod] = self._inference_matrix(mdata, mod)
            z[mod] = self._encode(matrix, mod, 4096)
        out = {}
        for mod, other in ((MODALITIES.RNA, MODALITIES.ATAC), (MODALITIES.ATAC, MODALITIES.RNA)):
            if method == "one_to_one":
                idx, dist = one_to_one_matching(z[mod], z[other], metric=metric)
            elif method == "nearest":
                idx, dist = nearest_neighbors(z[mod], z[other], k=1, metric=metric)
                idx, dist = idx[:, 0], dist[:, 0]
            else:
                msg = f"method must be 'nearest' or 'one_to_one', got {method!r}."
                raise ValueError(msg)
            out[mod] = pd.DataFrame(
                {
                    OUTPUT_KEYS.MATCH: np.asarray(names[other])[idx],
                    OUTPUT_KEYS.MATCH_DISTANCE: dist.astype(np.float32),
                },
                index=names[mod],
            )
        return out

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
        target = self.mdata if mdata is None else mdata
        matches = self.match_cells(mdata, method=match, metric=metric)
        for mod in MODALITIES:
            adata = target.mod[self.setup_.mod_name(mod)]
            matrix, _ = self._inference_matrix(mdata, mod)
            z = self._encode(matrix, mod, 4096)
            adata.obsm[OUTPUT_KEYS.LATENT] = z
            if self.label_categories_:
                with torch.inference_mode():
                    logits = self.module.classify(torch.as_tensor(z, device=self.device))
                    probs = torch.softmax(logits, dim=1).cpu().numpy()
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
        for mod in MODALITIES:
            mod_name = self.setup_.mod_name(mod)
            matrix, names = self._inference_matrix(mdata, mod)
            z = self._encode(matrix, mod, 4096)
            latents.append(z)
            obs = pd.DataFrame(
                {"modality": mod_name, "cell": np.asarray(names, dtype=str)},
                index=[f"{mod_name}:{n}" for n in names],
            )
            key = self.setup_.labels_key
            source = target.mod[mod_name].obs
            if key is not None:
                obs[key] = (
                    source[key].astype("object").to_numpy() if key in source else np.nan
                )
            if self.label_categories_:
                with torch.inference_mode():
                    logits = self.module.classify(torch.as_tensor(z, device=self.device))
                obs[OUTPUT_KEYS.LABEL] = np.asarray(self.label_categories_, dtype=object)[
                    logits.argmax(dim=1).cpu().numpy()
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

        Parameters
        ----------
        dir_path
            Target directory; it must not exist unless ``overwrite=True``.
        overwrite
            Replace an existing directory.
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
        """
        return _persistence.load_model(cls, dir_path, mdata, accelerator=accelerator)

    # ------------------------------------------------------------------ misc
    @property
    def history(self) -> dict[str, pd.DataFrame]:
        """Every logged loss term per epoch, ``{name: DataFrame}`` (``*_train``, ``*_validation``)."""
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


def _dense_rows(matrix, rows: np.ndarray) -> torch.Tensor:
    block = matrix[rows]
    if sparse.issparse(block):
        block = block.toarray()
    return torch.as_tensor(np.asarray(block, dtype=np.float32))


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
    missing = expected.difference(got)
    msg = (
        f"Modality {mod_name!r} has {len(got)} features but the model was trained on "
        f"{len(expected)} ({len(missing)} of them missing, e.g. {list(missing[:3])}). Use data "
        "with exactly the training features, in the same order."
    )
    raise ValueError(msg)


def _resolve_log1p(transform, mod: str, matrix, mod_name: str) -> bool:
    choice = transform.get(mod, transform.get(mod_name, "auto")) if isinstance(
        transform, Mapping
    ) else transform
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
    low_ok = value >= 0 if allow_zero else value > 0
    if not (isinstance(value, int | float) and low_ok and value <= 1):
        msg = f"{name} must be in {'[0, 1]' if allow_zero else '(0, 1]'}, got {value!r}."
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
    ):
        if params[name] not in allowed:
            msg = f"{name} must be one of {allowed}, got {params[name]!r}."
            raise ValueError(msg)
    known = set(LossWeights().to_dict())
    for key, value in params["loss_weights"].items():
        if key not in known:
            msg = f"Unknown loss weight {key!r}; known terms: {sorted(known)}."
            raise ValueError(msg)
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            msg = f"Loss weight {key!r} must be a finite number >= 0, got {value!r}."
            raise ValueError(msg)
    for name in ("margin", "augmentation_noise"):
        value = params[name]
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            msg = f"{name} must be a finite number >= 0, got {value!r}."
            raise ValueError(msg)
    if not 0 <= params["dropout"] < 1:
        msg = f"dropout must be in [0, 1), got {params['dropout']!r}."
        raise ValueError(msg)

