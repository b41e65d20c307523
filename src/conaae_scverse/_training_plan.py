"""Lightning training plan: autoencoder step, then discriminator step, on unpaired minibatches."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from torch.optim.lr_scheduler import LambdaLR

from ._compat import TrainingPlan
from ._constants import LOSS_KEYS, REGISTRY_KEYS
from ._data_module import ANCHOR_SAMPLE_KEYS
from ._link_consistency import LinkLookup, LinkTargets
from ._module import ConAAEModule


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite during training."""


LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class PseudoLabelRelease:
    """Cells that train with a label prior's pseudo-label, and for how long.

    Attributes
    ----------
    modality
        The modality the prior is about (``"rna"`` or ``"atac"``).
    cells
        Boolean mask over that modality's cells: those with a pseudo-label.
    last_epoch
        From this epoch (counted from 0 in each ``train`` call) they train unlabelled.
    """

    modality: str
    cells: torch.Tensor
    last_epoch: int


class ConAAETrainingPlan(TrainingPlan):
    """Two optimizers: autoencoders plus classifier, and the discriminator.

    Each minibatch first updates the autoencoders and classifier with the weighted sum of all
    terms, then (every ``n_steps_autoencoder`` autoencoder steps) makes
    ``n_steps_discriminator`` discriminator updates on the detached latents.

    Parameters
    ----------
    module
        The Con-AAE module.
    lr
        Learning rate of the autoencoders and classifier.
    lr_discriminator
        Learning rate of the discriminator (``None``: same as ``lr``).
    weight_decay
        Adam weight decay of the autoencoders.
    betas
        Adam betas of both optimizers.
    n_steps_autoencoder, n_steps_discriminator
        k1 autoencoder steps per k2 discriminator steps.
    n_epochs_warmup
        Epochs of autoencoder-only training (no adversarial or MMD term, no discriminator
        update) before the adversarial game starts.
    lr_schedule
        ``"cosine"`` decays both learning rates to 0 along a half cosine over the
        ``max_epochs`` of the Trainer, step by step; ``"constant"`` keeps them fixed (the
        paper's recipe). The decay lets 500 steps reach what 1,000 steps at a constant rate
        did (``benchmarks/sweep.py``).
    link_targets
        Gene activity targets of the ATAC cells (link consistency), or ``None``.
    pseudo_labels
        The cells whose labels are a prior's pseudo-labels, dropped from their
        ``last_epoch`` on (``pseudo_label_epochs`` of :class:`~conaae_scverse.ConAAE`), or
        ``None`` to train with the labels as registered throughout.
    thinned_scores
        Projected modalities, by name: the principal-axis scores of every cell's thinned
        counts (:meth:`ConAAEModule.thinned_scores`), for the depth invariance term.
    """

    def __init__(
        self,
        module: ConAAEModule,
        *,
        lr: float = 2e-3,
        lr_discriminator: float | None = None,
        weight_decay: float = 1e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        n_steps_autoencoder: int = 1,
        n_steps_discriminator: int = 1,
        n_epochs_warmup: int = 0,
        lr_schedule: str = "cosine",
        link_targets: LinkTargets | None = None,
        pseudo_labels: PseudoLabelRelease | None = None,
        thinned_scores: dict[str, torch.Tensor] | None = None,
    ):
        if lr_schedule not in LR_SCHEDULES:
            msg = f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}."
            raise ValueError(msg)
        super().__init__(module, lr=lr, weight_decay=weight_decay)
        self.automatic_optimization = False
        self.lr_discriminator = lr if lr_discriminator is None else lr_discriminator
        self.betas = tuple(betas)
        self.n_steps_autoencoder = n_steps_autoencoder
        self.n_steps_discriminator = n_steps_discriminator
        self.n_epochs_warmup = n_epochs_warmup
        self.lr_schedule = lr_schedule
        self.link_lookup = None
        if link_targets is not None:
            projected = module.is_projected("rna")
            self.link_lookup = LinkLookup(
                link_targets, module.rna_components if projected else None
            )
        self.pseudo_labels = pseudo_labels
        self.thinned_scores = thinned_scores or {}
        self._autoencoder_steps = 0
        self._epoch_sums: dict[str, dict[str, tuple[torch.Tensor, int]]] = {}

    @property
    def _adversarial_on(self) -> bool:
        return self.current_epoch >= self.n_epochs_warmup

    def configure_optimizers(self):
        """Adam for the autoencoders and classifier; Adam for the discriminator, if any."""
        optimizers = [
            _adam(
                self.module.autoencoder_parameters(),
                lr=self.lr,
                betas=self.betas,
                weight_decay=self.weight_decay,
            )
        ]
        if self.module.discriminator_parameters():  # none without one, or frozen
            optimizers.append(
                _adam(
                    self.module.discriminator_parameters(),
                    lr=self.lr_discriminator,
                    betas=self.betas,
                )
            )
        if self.lr_schedule == "constant":
            return optimizers
        total = max(1, int(self.trainer.estimated_stepping_batches))

        def half_cosine(step: int) -> float:
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / total)))

        # Stepped once per training step (manual optimisation): step k runs at base * f(k).
        return optimizers, [LambdaLR(optimizer, half_cosine) for optimizer in optimizers]

    def _labels(self, minibatch: dict[str, torch.Tensor], mod: str) -> torch.Tensor:
        """Label codes of a minibatch; pseudo-labels as -1 once they are released."""
        labels = minibatch[REGISTRY_KEYS.LABELS_KEY]
        release = self.pseudo_labels
        if release is None or release.modality != mod or self.current_epoch < release.last_epoch:
            return labels
        rows = minibatch[REGISTRY_KEYS.INDICES_KEY].reshape(-1).long().cpu()
        dropped = release.cells[rows].to(labels.device).reshape(labels.shape)
        return torch.where(dropped, torch.full_like(labels, -1), labels)

    def _terms(self, batch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        rna, atac = batch[0], batch[1]
        anchor = batch[2] if len(batch) > 2 else None
        link_target = None
        if self.link_lookup is not None:
            link_target = self.link_lookup.rows(
                atac[REGISTRY_KEYS.INDICES_KEY], atac[REGISTRY_KEYS.X_KEY].device
            )
        thinned = {
            mod: _rows_of(self.thinned_scores[mod], part)
            for mod, part in (("rna", rna), ("atac", atac))
            if mod in self.thinned_scores
        }
        return self.module.loss(
            rna[REGISTRY_KEYS.X_KEY],
            atac[REGISTRY_KEYS.X_KEY],
            self._labels(rna, "rna"),
            self._labels(atac, "atac"),
            None if anchor is None else anchor["rna"],
            None if anchor is None else anchor["atac"],
            batch_rna=rna[REGISTRY_KEYS.BATCH_KEY],
            batch_atac=atac[REGISTRY_KEYS.BATCH_KEY],
            anchor_batch_rna=None if anchor is None else anchor[ANCHOR_SAMPLE_KEYS["rna"]],
            anchor_batch_atac=None if anchor is None else anchor[ANCHOR_SAMPLE_KEYS["atac"]],
            link_target=link_target,
            thinned=thinned,
            adversarial_scale=1.0 if self._adversarial_on else 0.0,
        )

    def _check_finite(self, terms: dict[str, torch.Tensor]) -> None:
        for name, value in terms.items():
            if not bool(torch.isfinite(value.detach()).all()):
                what = "total loss" if name == LOSS_KEYS.TOTAL else f"{name!r} loss"
                msg = (
                    f"The {what} became {value.item()} at epoch {self.current_epoch}. Training "
                    "stopped; the model keeps the weights of the last completed epoch. Lower the "
                    "learning rate (train(lr=...)), lower the loss weights (ConAAE(loss_weights="
                    "{...})), or check the input for extreme values."
                )
                raise NonFiniteLossError(msg)

    def _log_terms(self, terms: dict[str, torch.Tensor], mode: str, batch_size: int) -> None:
        # Summed here and logged once per epoch (`_flush_logs`): a Lightning `self.log` call
        # per term and step was a large share of a step on small inputs.
        sums = self._epoch_sums.setdefault(mode, {})
        for name, value in terms.items():
            key = f"{mode}_loss" if name == LOSS_KEYS.TOTAL else f"{name}_{mode}"
            total, count = sums.get(key, (0.0, 0))
            sums[key] = (total + value.detach() * batch_size, count + batch_size)

    def _flush_logs(self, mode: str) -> None:
        """Log the epoch's cell-weighted mean of every term of ``mode``, then reset."""
        for key, (total, count) in self._epoch_sums.pop(mode, {}).items():
            self.log(
                key,
                total / count,
                on_step=False,
                on_epoch=True,
                prog_bar=key == "train_loss",
                sync_dist=self.use_sync_dist,
            )

    def on_train_epoch_end(self) -> None:
        """Log the training terms of the epoch."""
        self._flush_logs("train")

    def on_validation_epoch_end(self) -> None:
        """Log the validation terms of the epoch (before early stopping reads them)."""
        self._flush_logs("validation")

    def training_step(self, batch, batch_idx):
        """One autoencoder update, then the discriminator updates that are due."""
        optimizers = self.optimizers()
        if not isinstance(optimizers, list | tuple):
            optimizers = [optimizers]
        ae_optimizer = optimizers[0]
        terms, z = self._terms(batch)
        self._check_finite(terms)
        ae_optimizer.zero_grad()
        self.manual_backward(terms[LOSS_KEYS.TOTAL])
        ae_optimizer.step()
        self._autoencoder_steps += 1

        due = self._autoencoder_steps % self.n_steps_autoencoder == 0
        if len(optimizers) > 1 and self._adversarial_on and due:
            disc_optimizer = optimizers[1]
            for _ in range(self.n_steps_discriminator):
                disc_loss = self.module.discriminator_loss(z["rna"], z["atac"])
                disc_optimizer.zero_grad()
                self.manual_backward(disc_loss)
                self._sync_gradients(self.module.discriminator_parameters())
                disc_optimizer.step()
            terms[LOSS_KEYS.DISCRIMINATOR] = disc_loss.detach()
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            if scheduler is not None:
                scheduler.step()
        self._log_terms(terms, "train", batch_size=len(z["rna"]) + len(z["atac"]))

    @staticmethod
    def _sync_gradients(parameters) -> None:
        """Average gradients over processes (DDP syncs only the first backward of a step)."""
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return
        world = dist.get_world_size()
        for p in parameters:
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad.div_(world)

    def validation_step(self, batch, batch_idx):
        """All loss terms on held-out cells of both modalities."""
        terms, z = self._terms(batch)
        if self.module.discriminator is not None:
            terms[LOSS_KEYS.DISCRIMINATOR] = self.module.discriminator_loss(z["rna"], z["atac"])
        self._log_terms(terms, "validation", batch_size=len(z["rna"]) + len(z["atac"]))


class EpochSnapshot(Callback):
    """Keeps a CPU copy of the module's weights as of the last completed training epoch.

    :meth:`ConAAE.train` restores it when ``fit`` stops with an exception (Ctrl+C, a
    non-finite loss), so the model is never left half-way through an epoch.

    Parameters
    ----------
    module
        The module whose ``state_dict`` is copied; the copy starts with its current weights.
    """

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module
        self.completed_epochs = 0
        self.error: BaseException | None = None
        self.state = self._copy()

    def _copy(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in self.module.state_dict().items()}

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Copy the weights at the end of each epoch."""
        self.state = self._copy()
        self.completed_epochs += 1

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """Remember what stopped training (Lightning hides a KeyboardInterrupt)."""
        self.error = exception

    def restore(self) -> None:
        """Put the copied weights back into the module."""
        self.module.load_state_dict(self.state)


def _adam(params: list[torch.nn.Parameter], **kwargs: Any) -> torch.optim.Adam:
    """Adam with the fused kernel where the parameters' device has one.

    On a CPU the fused step is several times faster than the default per-tensor loop, a
    sizeable share of a training step at the default widths; devices without the fused
    kernel get the default.
    """
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, **kwargs)


def _rows_of(table: torch.Tensor, minibatch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Rows of a per-cell ``table`` for the cells of ``minibatch``, on its device."""
    rows = minibatch[REGISTRY_KEYS.INDICES_KEY].reshape(-1).long().cpu()
    return table[rows].to(minibatch[REGISTRY_KEYS.X_KEY].device)
