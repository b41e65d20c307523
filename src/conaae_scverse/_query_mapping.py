"""Mapping new samples onto a trained module (scArches): which weights learn, and from where."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from typing import Self


class QueryMappingMixin:
    """Freezing the reference's weights and starting the shifts of mapped-on samples.

    Mixed into :class:`~conaae_scverse._module.ConAAEModule`, whose ``encoder_shifts``,
    ``decoder_shifts`` (:class:`~conaae_scverse._networks.SampleShifts`) and
    ``discriminator`` it uses.
    """

    batch_norm_frozen: bool = False

    def freeze_reference(self) -> None:
        """Train only the shifts of mapped-on samples (scArches' recipe).

        The autoencoders and classifier stop learning and BatchNorm layers keep their running
        statistics, so reference cells keep embeddings and labels. The discriminator (it
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
        self.batch_norm_frozen = True
        self.train(self.training)

    def start_query_shifts(self) -> None:
        """Start each mapped-on sample's shifts at the mean of the reference samples'."""
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
