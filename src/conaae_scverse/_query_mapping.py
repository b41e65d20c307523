"""Mapping new samples onto a trained module (scArches): which weights learn, and from where."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from typing import Self

    from ._networks import SampleShifts


class QueryMappingMixin:
    """The parameters of mapped-on samples: routing, freezing the reference's, starting them.

    Mixed into :class:`~conaae_scverse._module.ConAAEModule`, whose ``encoders``,
    ``input_layers`` (:class:`~conaae_scverse._networks.SampleInputLayers`),
    ``encoder_shifts``, ``decoder_shifts`` (:class:`~conaae_scverse._networks.SampleShifts`)
    and ``discriminator`` it uses.
    """

    batch_norm_frozen: bool = False

    @staticmethod
    def _shifts(table: nn.ModuleDict, modality: str) -> SampleShifts | None:
        return table[modality] if modality in table else None

    def has_samples(self, modality: str) -> bool:
        """Whether ``modality``'s networks are conditioned on samples."""
        return modality in self.encoder_shifts

    def n_samples(self, modality: str) -> int:
        """Count the samples of ``modality`` (reference and mapped-on ones)."""
        return sum(self.n_batches[modality])

    def input_layer(
        self,
        modality: str,
        batch: torch.Tensor | None,
        apply: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """Output of the encoder's input layer, each row through its sample's layer.

        ``apply(weight, bias)`` computes the layer's output for every row of the batch; it
        runs once per kind of layer present (shared, or a mapped-on sample's own).
        """
        first = self.encoders[modality][0]
        if modality not in self.input_layers or batch is None:
            return apply(first.weight, first.bias)
        own = self.input_layers[modality]
        codes = batch.reshape(-1).long()
        has_own = codes >= own.n_shared
        # Each sample's rows take its layer's output; the rest keep the shared layer's.
        hidden = None if bool(has_own.all()) else apply(first.weight, first.bias)
        for sample in codes[has_own].unique().tolist():
            output = apply(*own.layer(sample))
            rows = (codes == sample).unsqueeze(1)
            hidden = output if hidden is None else torch.where(rows, output, hidden)
        return hidden

    def freeze_reference(self) -> None:
        """Train only the parameters of mapped-on samples (scArches' recipe).

        Their shifts and input layers learn; the autoencoders and classifier stop learning and
        BatchNorm layers keep their running statistics, so reference cells keep embeddings
        and labels. The discriminator (it
        embeds nothing) learns on: frozen, it is fooled by shifts that pile new cells up.
        """
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        if self.discriminator is not None:
            for parameter in self.discriminator.parameters():
                parameter.requires_grad_(True)
        for table in (self.encoder_shifts, self.decoder_shifts):
            for shifts in table.values():
                for parameter in shifts.query:
                    parameter.requires_grad_(True)
        for layers in self.input_layers.values():
            for parameter in layers.query.parameters():
                parameter.requires_grad_(True)
        self.batch_norm_frozen = True
        self.train(self.training)

    def start_query_parameters(self) -> None:
        """Start mapped-on samples' shifts at the reference's mean, input layers at its own."""
        for modality, layers in self.input_layers.items():
            layers.start(self.encoders[modality][0])
        with torch.no_grad():
            for table in (self.encoder_shifts, self.decoder_shifts):
                for shifts in table.values():
                    for reference, query in zip(shifts.reference, shifts.query, strict=True):
                        query.copy_(reference.mean(0, keepdim=True).expand_as(query))

    def train(self, mode: bool = True) -> Self:
        """Set training mode; BatchNorm layers stay in eval mode after :meth:`freeze_reference`."""
        super().train(mode)
        if self.batch_norm_frozen:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm1d):
                    module.eval()
        return self
