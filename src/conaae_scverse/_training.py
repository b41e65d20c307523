"""Training of :class:`ConAAE`: splits, loaders, the Lightning run and recovery from stops."""

from __future__ import annotations

import inspect
import logging
import math
import signal
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from ._arguments import check_count, check_fraction, is_int, is_number, normalize_mapping
from ._compat import Trainer, parse_device_args
from ._constants import MODALITIES
from ._data import ModalityData, build_modality, is_backed_sparse
from ._data_module import ConAAEDataModule, split_cells
from ._inference import map_rows
from ._training_plan import ConAAETrainingPlan, EpochSnapshot, PseudoLabelRelease

logger = logging.getLogger(__name__)

_TARGET_STEPS = 500  # default number of training steps, see `TrainingMixin.train`
# Beyond ~128k cells per modality 20 epochs outgrow this; more steps did not help at 10k-100k
# cells and would make the training time grow with the cells (benchmarks/scale.py).
_MAX_DEFAULT_STEPS = 10_000


class TrainingMixin:
    """:meth:`train` of :class:`ConAAE`, through scvi-tools' Trainer."""

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
        :class:`~conaae_scverse.NonFiniteLossError` (a NaN or infinite loss
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
            ``clip(500 / steps_per_epoch, 20, 500)`` epochs, but no more epochs than fit in
            10,000 steps (at least one): this binds above ~128k cells per modality at the
            default ``batch_size``, so that the training time stops growing with the cells.
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
        check_fraction("train_size", train_size)
        if validation_size is not None:
            check_fraction("validation_size", validation_size, allow_zero=True)
            if train_size + validation_size > 1 + 1e-9:
                msg = "train_size + validation_size must be at most 1."
                raise ValueError(msg)
        if max_epochs is not None and (not is_int(max_epochs) or max_epochs < 1):
            msg = f"max_epochs must be a positive integer, got {max_epochs!r}."
            raise ValueError(msg)
        if not is_int(batch_size) or batch_size < 2:
            msg = (
                f"batch_size must be an integer >= 2 (BatchNorm needs at least 2 cells per "
                f"minibatch), got {batch_size!r}."
            )
            raise ValueError(msg)
        if not (is_number(lr) and lr > 0 and math.isfinite(lr)):
            msg = f"lr must be a positive number, got {lr!r}."
            raise ValueError(msg)
        check_count("early_stopping_patience", early_stopping_patience, 1)
        check_count("n_epochs_warmup", n_epochs_warmup, 0)
        if check_val_every_n_epoch is not None:
            check_count("check_val_every_n_epoch", check_val_every_n_epoch, 1)
        if seed is not None:
            check_count("seed", seed, 0)
        plan_kwargs = normalize_mapping("plan_kwargs", plan_kwargs)
        plan_args = set(inspect.signature(ConAAETrainingPlan).parameters) - {
            "module",
            "link_targets",
            "pseudo_labels",
            "thinned_scores",
        }
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
        self._latent_cache = None  # the weights are about to change
        seed = self.hyperparameters_.seed + 1000 * self.n_train_calls_ if seed is None else seed
        rng = np.random.default_rng(seed)
        mod_names = {mod: self.setup_.mod_name(mod) for mod in MODALITIES}
        train_idx, val_idx = split_cells(
            self.modalities_, train_size, validation_size, rng, mod_names
        )
        self.train_indices_, self.validation_indices_ = train_idx, val_idx

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
        data = ConAAEDataModule(
            self._network_inputs(),
            train_idx,
            val_idx,
            batch_size,
            anchor_pairs=self.anchor_pairs_,
            distributed=distributed,
            seed=seed,
        )
        has_validation = data.has_validation
        n_steps = data.steps_per_epoch
        if max_epochs is None:
            max_epochs = int(np.clip(round(_TARGET_STEPS / n_steps), 20, 500))
            if max_epochs * n_steps > _MAX_DEFAULT_STEPS:
                # Whole epochs, so that the learning-rate schedule ends where training does.
                max_epochs = max(1, _MAX_DEFAULT_STEPS // n_steps)
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
            self.module,
            lr=lr,
            n_epochs_warmup=n_epochs_warmup,
            link_targets=self.link_targets_,
            pseudo_labels=self._pseudo_label_release(max_epochs),
            thinned_scores=self._thinned_scores(),
            **plan_kwargs,
        )
        self.module.train()
        sigint_handler = signal.getsignal(signal.SIGINT)
        with torch.random.fork_rng(devices=_cuda_devices(device)):
            torch.manual_seed(seed)
            try:
                trainer.fit(plan, datamodule=data)
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
        self._calibrate_labels()

    def _pseudo_label_release(self, max_epochs: int) -> PseudoLabelRelease | None:
        """Which cells train with a pseudo-label, and until which epoch of this call."""
        share = self.hyperparameters_.pseudo_label_epochs
        if self.label_prior_ is None or share >= 1:
            return None
        # The prior's modality had no label at all: every label it trains with is a pseudo-label.
        labels = self.modalities_[self.prior_modality_].labels
        return PseudoLabelRelease(
            modality=self.prior_modality_,
            cells=torch.as_tensor(labels >= 0),
            last_epoch=max(1, round(share * max_epochs)),
        )

    def _network_inputs(self) -> dict[str, ModalityData]:
        """Return the modalities as the networks read them, computed once per model.

        A projected modality is replaced by its principal-axis scores (cells x components),
        so that minibatches never touch its wide matrix; any other is its registered data.
        """
        if self._training_data is None:
            data = dict(self.modalities_)
            for mod in MODALITIES:
                source = self.modalities_[mod]
                if not self.module.is_projected(mod):
                    if is_backed_sparse(source.matrix):
                        # Only projected modalities train from disk; a narrow one is read in.
                        logger.info("Reading modality %r into memory for training.", mod)
                        adata = source.manager.adata
                        in_memory = source.matrix.to_memory()
                        data[mod] = build_modality(
                            mod, adata, in_memory, source.labels, source.batches
                        )
                    continue
                scores = self._project(
                    mod, self.module.represent, self.module.represent_sparse, "Projecting"
                )
                adata = source.manager.adata
                names = pd.Index([f"component_{i}" for i in range(scores.shape[1])])
                data[mod] = build_modality(
                    mod, adata, scores, source.labels, source.batches, var_names=names
                )
            self._training_data = data
        return self._training_data

    def _thinned_scores(self) -> dict[str, torch.Tensor]:
        """Scores of thinned counts of each projected modality of counts, once per model.

        Only with the ``depth_invariance`` loss: a projected modality trains from its
        principal-axis scores, so its cells' counts are thinned (one draw per cell) and
        projected here, as its scores were (:meth:`_network_inputs`).
        """
        if self.module.weights.depth_invariance <= 0:
            return {}
        if getattr(self, "_thinned_training_scores", None) is None:
            device = next(self.module.parameters()).device
            generator = torch.Generator(device=device).manual_seed(self.hyperparameters_.seed)

            def thinned(x, mod):
                return self.module.thinned_scores(x, mod, generator)

            self._thinned_training_scores = {
                mod: torch.from_numpy(self._project(mod, thinned, thinned, "Projecting thinned"))
                for mod in MODALITIES
                if self.module.is_projected(mod) and self.module.is_thinnable(mod)
            }
        return self._thinned_training_scores

    def _project(self, mod: str, dense, sparse_csr_rows, action: str) -> np.ndarray:
        """Principal-axis scores of every cell of projected modality ``mod``, in row blocks."""
        return map_rows(
            self.module,
            self.modalities_[mod].matrix,
            mod,
            dense=dense,
            sparse_csr_rows=sparse_csr_rows,
            width=self.module.n_components[mod],
            batch_size=4096,
            description=f"{action} {mod.upper()} cells",
        )

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
        self._calibrate_labels()
        logger.warning(
            "Training stopped during epoch %d; the model keeps the weights and history of the "
            "%d completed epoch(s).",
            snapshot.completed_epochs + 1,
            snapshot.completed_epochs,
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
