"""The Con-AAE networks and losses as a plain :class:`torch.nn.Module`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import _losses
from ._constants import LOSS_KEYS, MODALITIES
from ._input_representation import InputRepresentationMixin
from ._link_consistency import axes_correlation_loss, row_correlation_loss
from ._networks import (
    LossWeights,
    SampleInputLayers,
    SampleShifts,
    _codes,
    _Discriminator,
    _mlp,
    run_network,
)
from ._query_mapping import QueryMappingMixin


class ConAAEModule(InputRepresentationMixin, QueryMappingMixin, nn.Module):
    """Two autoencoders into one latent space, a discriminator and a label classifier.

    Parameters
    ----------
    n_input_rna, n_input_atac
        Number of features of each modality.
    hidden_rna, hidden_atac
        Widths of the encoder hidden layers of each modality (decoders mirror them).
    n_latent
        Dimension of the shared latent space.
    n_labels
        Number of label categories; 0 means no classifier head.
    log1p_rna, log1p_atac
        Whether inputs are log1p-transformed before standardisation (for counts).
    cell_total_rna, cell_total_atac
        Total each cell's counts are scaled to before log1p (0: no scaling).
    n_batches_rna, n_batches_atac
        Number of samples of each modality; with more than one, each sample shifts the
        hidden layers of the encoder and every layer of the decoder (:class:`SampleShifts`).
    n_query_batches_rna, n_query_batches_atac
        Samples mapped onto a trained model (:meth:`ConAAE.load_query_data`), after the
        ``n_batches_*`` reference samples.
    n_shared_input_batches_rna, n_shared_input_batches_atac
        Samples (the first ones) that share the encoder's input layer; each later one, mapped
        on, has its own (:class:`SampleInputLayers`). Default: the reference samples.
    n_components_rna, n_components_atac
        Number of principal axes the standardised input of each modality is projected on
        before the encoder (the decoder then reconstructs these scores); 0 feeds the
        standardised features themselves. Set the axes with :meth:`set_projection`.
    alignment
        ``"adversarial"`` (the paper's discriminator), ``"mmd"`` (kernel MMD between the
        latents of the two modalities) or ``"none"``.
    contrastive
        ``"supervised"`` (batch-hard triplet on labels, across modalities) or
        ``"self_supervised"`` (the positive of a cell is a noise-augmented view of it).
    weights
        Weight of every loss term.
    anchors_from_links
        The anchor pairs come from peak-gene links (weight ``link_anchor``, not ``anchor``).
    margin
        Triplet margin alpha.
    augmentation_noise
        Standard deviation of the Gaussian noise, on standardised inputs, that makes the
        augmented views of the self-supervised contrastive loss.
    latent_batch_norm
        Standardise each modality's latent with a non-affine BatchNorm at the encoder output.
        Both latents then share first and second moments, which speeds up alignment.
    dropout
        Dropout rate in the hidden layers.
    """

    def __init__(
        self,
        n_input_rna: int,
        n_input_atac: int,
        *,
        hidden_rna: Sequence[int],
        hidden_atac: Sequence[int],
        n_latent: int = 50,
        n_labels: int = 0,
        log1p_rna: bool = True,
        log1p_atac: bool = True,
        cell_total_rna: float = 0.0,
        cell_total_atac: float = 0.0,
        n_batches_rna: int = 1,
        n_batches_atac: int = 1,
        n_query_batches_rna: int = 0,
        n_query_batches_atac: int = 0,
        n_shared_input_batches_rna: int | None = None,
        n_shared_input_batches_atac: int | None = None,
        n_components_rna: int = 0,
        n_components_atac: int = 0,
        alignment: str = "adversarial",
        contrastive: str = "supervised",
        weights: LossWeights | None = None,
        anchors_from_links: bool = False,
        margin: float = 0.3,
        augmentation_noise: float = 0.5,
        latent_batch_norm: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.n_latent = n_latent
        self.n_labels = n_labels
        self.alignment = alignment
        self.contrastive = contrastive
        self.weights = weights or LossWeights()
        self.anchors_from_links = anchors_from_links
        self.margin = margin
        self.augmentation_noise = augmentation_noise
        self.log1p = {MODALITIES.RNA: log1p_rna, MODALITIES.ATAC: log1p_atac}
        self.cell_total = {MODALITIES.RNA: cell_total_rna, MODALITIES.ATAC: cell_total_atac}
        sizes = {MODALITIES.RNA: n_input_rna, MODALITIES.ATAC: n_input_atac}
        self.n_components = {MODALITIES.RNA: n_components_rna, MODALITIES.ATAC: n_components_atac}
        hidden = {MODALITIES.RNA: list(hidden_rna), MODALITIES.ATAC: list(hidden_atac)}
        self.n_batches = {
            MODALITIES.RNA: (n_batches_rna, n_query_batches_rna),
            MODALITIES.ATAC: (n_batches_atac, n_query_batches_atac),
        }
        self.encoders = nn.ModuleDict()
        self.decoders = nn.ModuleDict()
        self.encoder_shifts = nn.ModuleDict()
        self.decoder_shifts = nn.ModuleDict()
        self.input_layers = nn.ModuleDict()
        shared = {MODALITIES.RNA: n_shared_input_batches_rna}
        shared[MODALITIES.ATAC] = n_shared_input_batches_atac
        self.n_shared_input = {m: n or self.n_batches[m][0] for m, n in shared.items()}
        for mod, n_in in sizes.items():
            width = self.n_components[mod] or n_in
            encoder = _mlp(width, hidden[mod], n_latent, dropout=dropout)
            if latent_batch_norm:
                encoder.append(nn.BatchNorm1d(n_latent, affine=False))
            self.encoders[mod] = encoder
            self.decoders[mod] = _mlp(n_latent, hidden[mod][::-1], width, dropout=dropout)
            n_reference, n_query = self.n_batches[mod]
            if n_reference + n_query > 1:
                # The encoder's latent layer is not shifted: samples may not move the latent
                # directly; the decoder's output layer is (sample-specific feature levels).
                self.encoder_shifts[mod] = SampleShifts(hidden[mod], n_reference, n_query)
                self.decoder_shifts[mod] = SampleShifts(
                    [*hidden[mod][::-1], width], n_reference, n_query
                )
            if n_reference + n_query > self.n_shared_input[mod]:
                self.input_layers[mod] = SampleInputLayers(
                    width, hidden[mod][0], self.n_shared_input[mod], n_reference, n_query
                )
            # Per-feature moments of the (log1p-transformed) input, set from the data.
            self.register_buffer(f"{mod}_mean", torch.zeros(n_in))
            self.register_buffer(f"{mod}_std", torch.ones(n_in))
            if self.n_components[mod]:
                k = self.n_components[mod]
                self.register_buffer(f"{mod}_components", torch.zeros(n_in, k))
                self.register_buffer(f"{mod}_score_mean", torch.zeros(k))
                self.register_buffer(f"{mod}_score_scale", torch.ones(()))
        self.discriminator = _Discriminator(n_latent) if alignment == "adversarial" else None
        self.classifier = nn.Linear(n_latent, n_labels) if n_labels > 0 else None

    # ---- parameters groups for the two optimizers ----
    def autoencoder_parameters(self) -> list[nn.Parameter]:
        """Parameters updated in the autoencoder step.

        Encoders, decoders, sample shifts and classifier; frozen ones (``requires_grad=False``)
        are left out.
        """
        params = [
            *self.encoders.parameters(),
            *self.decoders.parameters(),
            *self.encoder_shifts.parameters(),
            *self.decoder_shifts.parameters(),
            *self.input_layers.parameters(),
        ]
        if self.classifier is not None:
            params += list(self.classifier.parameters())
        return [p for p in params if p.requires_grad]

    def encoder_net(
        self, x: torch.Tensor, modality: str, batch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Run the encoder of ``modality`` on its input (what :meth:`training_input` gives)."""
        hidden = self.input_layer(modality, batch, lambda weight, bias: F.linear(x, weight, bias))
        return self._encoder_rest(hidden, modality, batch)

    def _encoder_rest(self, hidden: torch.Tensor, modality: str, batch: torch.Tensor | None):
        """Run the encoder of ``modality`` past its input layer."""
        encoder, shifts = self.encoders[modality], self._shifts(self.encoder_shifts, modality)
        return run_network(encoder, hidden, shifts, _codes(batch), skip_first=True)

    def decoder_net(
        self, z: torch.Tensor, modality: str, batch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Run the decoder of ``modality`` on latents."""
        return run_network(
            self.decoders[modality], z, self._shifts(self.decoder_shifts, modality), _codes(batch)
        )

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """Parameters updated in the discriminator step (none when frozen)."""
        if self.discriminator is None:
            return []
        return [p for p in self.discriminator.parameters() if p.requires_grad]

    # ---- forward pieces ----
    def encode(
        self, x: torch.Tensor, modality: str, batch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Latent of raw inputs ``x`` of shape (n, n_features), shape (n, n_latent).

        ``batch``: sample code of each row, needed when the model has samples.
        """
        return self.encoder_net(self.represent(x, modality), modality, batch)

    def encode_sparse(
        self, x: torch.Tensor, modality: str, batch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """:meth:`encode` of a sparse CSR batch, without densifying it.

        Without a projection, the first linear layer splits exactly into the output of an
        all-zero row, ``W @ z0 + b``, plus a sparse correction ``W @ (z - z0)`` on the stored
        entries. For wide, sparse inputs (e.g. 100k peaks at 2 %) that is ~50x fewer
        operations than the dense product.

        Parameters
        ----------
        x
            Raw inputs as a ``torch.sparse_csr`` tensor of shape (n, n_features), without
            duplicate entries.
        modality
            ``"rna"`` or ``"atac"``.
        batch
            Sample code of each row, needed when the model has samples.

        Returns
        -------
        Latents of shape (n, n_latent), equal to ``encode(x.to_dense(), modality, batch)``.
        """
        if self.is_projected(modality):
            return self.encoder_net(self.represent_sparse(x, modality), modality, batch)
        correction, zero_value = self._sparse_correction(x, modality)
        hidden = self.input_layer(
            modality,
            batch,
            lambda weight, bias: correction @ weight.T + F.linear(zero_value, weight, bias),
        )
        return self._encoder_rest(hidden, modality, batch)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """Label logits of latents, shape (n, n_labels)."""
        if self.classifier is None:
            msg = "This model was set up without labels_key, so it has no label classifier."
            raise RuntimeError(msg)
        return self.classifier(z)

    def discriminate(self, z: torch.Tensor) -> torch.Tensor:
        """Discriminator score (0 = RNA, 1 = ATAC) of latents, shape (n,)."""
        return self.discriminator(z)

    # ---- losses ----
    def loss(
        self,
        x_rna: torch.Tensor,
        x_atac: torch.Tensor,
        labels_rna: torch.Tensor | None = None,
        labels_atac: torch.Tensor | None = None,
        anchor_rna: torch.Tensor | None = None,
        anchor_atac: torch.Tensor | None = None,
        *,
        batch_rna: torch.Tensor | None = None,
        batch_atac: torch.Tensor | None = None,
        anchor_batch_rna: torch.Tensor | None = None,
        anchor_batch_atac: torch.Tensor | None = None,
        link_target: dict[str, torch.Tensor] | None = None,
        thinned: dict[str, torch.Tensor] | None = None,
        adversarial_scale: float = 1.0,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Every loss term of the autoencoder step, by name, and the latents.

        Parameters
        ----------
        x_rna, x_atac
            Minibatches of the training data of the two modalities (see
            :meth:`training_input`), drawn independently: row i of one is not row i of the
            other.
        labels_rna, labels_atac
            Label codes of shape (n,) and (m,); -1 marks unlabelled cells.
        anchor_rna, anchor_atac
            Training-data rows of known pairs, row i of one paired with row i of the other;
            only given in anchor mode.
        batch_rna, batch_atac, anchor_batch_rna, anchor_batch_atac
            Sample codes of the rows of ``x_*`` and ``anchor_*`` (needed with samples).
        link_target
            Gene activity targets of the rows of ``x_atac`` (``LinkLookup.rows``), for the
            link consistency term; ``None`` leaves it out.
        thinned
            For projected modalities, by name: the scores of the rows of ``x_*`` with their
            counts thinned (:meth:`thinned_scores`), for the depth invariance term. A modality
            fed as features is thinned here instead, at every step.
        adversarial_scale
            Multiplier of the adversarial weight (0 during the autoencoder warm-up).

        Returns
        -------
        The terms (each unweighted, plus ``"loss"``, the weighted sum) and the latents
        ``{"rna": (n, n_latent), "atac": (m, n_latent)}``.
        """
        w = self.weights
        x = {MODALITIES.RNA: self.training_input(x_rna, MODALITIES.RNA)}
        x[MODALITIES.ATAC] = self.training_input(x_atac, MODALITIES.ATAC)
        batch = {MODALITIES.RNA: batch_rna, MODALITIES.ATAC: batch_atac}
        z = {mod: self.encoder_net(x[mod], mod, batch[mod]) for mod in x}
        terms: dict[str, torch.Tensor] = {}
        total = z[MODALITIES.RNA].new_zeros(())
        if w.reconstruction > 0:
            for mod, key in (
                (MODALITIES.RNA, LOSS_KEYS.RECONSTRUCTION_RNA),
                (MODALITIES.ATAC, LOSS_KEYS.RECONSTRUCTION_ATAC),
            ):
                terms[key] = F.mse_loss(self.decoder_net(z[mod], mod, batch[mod]), x[mod])
                total = total + w.reconstruction * terms[key]

        if self.alignment == "adversarial" and w.adversarial > 0:
            terms[LOSS_KEYS.ADVERSARIAL] = _losses.lsgan_generator(
                self.discriminate(z[MODALITIES.RNA]), self.discriminate(z[MODALITIES.ATAC])
            )
            total = total + adversarial_scale * w.adversarial * terms[LOSS_KEYS.ADVERSARIAL]
        elif self.alignment == "mmd" and w.mmd > 0:
            terms[LOSS_KEYS.MMD] = _losses.gaussian_mmd(z[MODALITIES.RNA], z[MODALITIES.ATAC])
            total = total + adversarial_scale * w.mmd * terms[LOSS_KEYS.MMD]

        if w.cycle > 0:
            # RNA latent -> ATAC decoder -> ATAC encoder returns the same latent, and vice versa.
            # With samples, the other modality's networks run as a random one of its samples:
            # the latent then has to hold what every sample shares.
            cycle = {}
            for mod, other in (
                (MODALITIES.RNA, MODALITIES.ATAC),
                (MODALITIES.ATAC, MODALITIES.RNA),
            ):
                as_sample = self._random_samples(other, len(z[mod]), z[mod].device)
                decoded = self.decoder_net(z[mod], other, as_sample)
                cycle[mod] = F.mse_loss(self.encoder_net(decoded, other, as_sample), z[mod])
            terms[LOSS_KEYS.CYCLE] = cycle[MODALITIES.RNA] + cycle[MODALITIES.ATAC]
            total = total + w.cycle * terms[LOSS_KEYS.CYCLE]

        labels = None
        if labels_rna is not None and labels_atac is not None:
            labels = torch.cat([labels_rna.reshape(-1), labels_atac.reshape(-1)]).long()
        z_all = torch.cat([z[MODALITIES.RNA], z[MODALITIES.ATAC]])

        if w.contrastive > 0:
            if self.contrastive == "supervised" and labels is not None:
                known = labels >= 0
                terms[LOSS_KEYS.CONTRASTIVE] = _losses.batch_hard_triplet(
                    z_all[known], labels[known], self.margin
                )
            else:
                views = {
                    mod: self.encoder_net(
                        x[mod] + self.augmentation_noise * torch.randn_like(x[mod]),
                        mod,
                        batch[mod],
                    )
                    for mod in x
                }
                terms[LOSS_KEYS.CONTRASTIVE] = sum(
                    _losses.augmented_view_triplet(z[mod], views[mod], self.margin) for mod in x
                )
            total = total + w.contrastive * terms[LOSS_KEYS.CONTRASTIVE]

        if self.classifier is not None and labels is not None and w.classifier > 0:
            known = labels >= 0
            if bool(known.any()):
                terms[LOSS_KEYS.CLASSIFIER] = F.cross_entropy(
                    self.classifier(z_all[known]), labels[known]
                )
                total = total + w.classifier * terms[LOSS_KEYS.CLASSIFIER]

        if labels is not None and w.sample_mixing > 0 and any(map(self.has_samples, x)):
            # Cells of one label sit together whatever their sample (modality by modality).
            n_rna = len(z[MODALITIES.RNA])
            own_labels = {MODALITIES.RNA: labels[:n_rna], MODALITIES.ATAC: labels[n_rna:]}
            terms[LOSS_KEYS.SAMPLE_MIXING] = sum(
                _losses.label_conditional_sample_mmd(z[mod], own_labels[mod], _codes(batch[mod]))
                for mod in x
                if self.has_samples(mod)
            )
            total = total + w.sample_mixing * terms[LOSS_KEYS.SAMPLE_MIXING]

        anchor_weight = w.link_anchor if self.anchors_from_links else w.anchor
        if anchor_rna is not None and anchor_atac is not None and anchor_weight > 0:
            pairs = ((anchor_rna, anchor_batch_rna), (anchor_atac, anchor_batch_atac))
            z_rna, z_atac = (
                self.encoder_net(self.training_input(rows, mod), mod, samples)
                for mod, (rows, samples) in zip(MODALITIES, pairs, strict=True)
            )
            terms[LOSS_KEYS.ANCHOR] = F.mse_loss(z_rna, z_atac)
            total = total + anchor_weight * terms[LOSS_KEYS.ANCHOR]

        if link_target is not None and w.link_consistency > 0:
            terms[LOSS_KEYS.LINK_CONSISTENCY] = self._link_consistency(
                z[MODALITIES.ATAC], link_target
            )
            total = total + w.link_consistency * terms[LOSS_KEYS.LINK_CONSISTENCY]

        # Thinned only when the term is on: the draws cost time and move the random stream.
        views = (
            self._thinned_views({MODALITIES.RNA: x_rna, MODALITIES.ATAC: x_atac}, thinned)
            if w.depth_invariance > 0
            else {}
        )
        if views:
            # The full-depth latents are the targets: only the thinned views move towards them.
            terms[LOSS_KEYS.DEPTH_INVARIANCE] = sum(
                F.mse_loss(self.encoder_net(view, mod, batch[mod]), z[mod].detach())
                for mod, view in views.items()
            )
            total = total + w.depth_invariance * terms[LOSS_KEYS.DEPTH_INVARIANCE]

        terms[LOSS_KEYS.TOTAL] = total
        return terms, z

    def _link_consistency(self, z_atac: torch.Tensor, target: dict) -> torch.Tensor:
        """How far the RNA decoded from ATAC latents is from the cells' own gene activity."""
        rna = MODALITIES.RNA
        as_sample = self._random_samples(rna, len(z_atac), z_atac.device)
        # Only the ATAC latent is to move: the RNA decoder learns from RNA cells alone.
        decoded = run_network(
            self.decoders[rna],
            z_atac,
            self._shifts(self.decoder_shifts, rna),
            _codes(as_sample),
            fixed=True,
        )
        if "columns" in target:
            return row_correlation_loss(decoded[:, target["columns"]], target["activity"])
        values = decoded * self.rna_score_scale + self.rna_score_mean  # on the axes
        return axes_correlation_loss(values, target["projected"], target["norm"], target["gram"])

    def _random_samples(self, modality: str, n: int, device) -> torch.Tensor | None:
        """``n`` sample codes of ``modality`` drawn uniformly (``None`` without samples)."""
        if not self.has_samples(modality):
            return None
        return torch.randint(self.n_samples(modality), (n,), device=device)

    def discriminator_loss(self, z_rna: torch.Tensor, z_atac: torch.Tensor) -> torch.Tensor:
        """Least-squares loss of the discriminator on (detached) latents."""
        scores = (self.discriminate(z.detach()) for z in (z_rna, z_atac))
        return _losses.lsgan_discriminator(*scores)
