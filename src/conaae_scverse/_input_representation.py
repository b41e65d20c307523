"""What each modality's encoder reads: standardised features, their scores, thinned counts."""

from __future__ import annotations

import torch

from ._losses import thin_counts, thin_sparse_counts
from ._networks import sparse_csr
from ._projection import CLIP, Projection


def _total_factors(totals: torch.Tensor, cell_total: float) -> torch.Tensor:
    """Factors scaling cells of these totals to ``cell_total`` (0 for empty cells)."""
    return torch.where(totals > 0, cell_total / totals.clamp_min(1e-12), torch.zeros_like(totals))


#: Least share of its counts that a thinned cell keeps (``depth_invariance``).
THINNING_LOWEST_FRACTION = 0.2


class InputRepresentationMixin:
    """Raw values -> encoder input: scaled per cell, log1p, z-scores, principal-axis scores.

    Mixed into :class:`~conaae_scverse._module.ConAAEModule`, whose ``cell_total``,
    ``log1p`` and ``n_components`` settings and per-modality buffers (``<mod>_mean``,
    ``<mod>_std``, ``<mod>_components``, ``<mod>_score_mean``, ``<mod>_score_scale``) it uses.
    """

    def set_feature_moments(self, modality: str, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the per-feature moments used to standardise inputs of ``modality``."""
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
        getattr(self, f"{modality}_mean").copy_(mean)
        getattr(self, f"{modality}_std").copy_(std)

    def set_projection(self, modality: str, projection: Projection) -> None:
        """Store the principal axes that ``modality``'s standardised input is projected on."""
        getattr(self, f"{modality}_components").copy_(torch.as_tensor(projection.components))
        getattr(self, f"{modality}_score_mean").copy_(torch.as_tensor(projection.score_mean))
        getattr(self, f"{modality}_score_scale").fill_(projection.score_scale)

    def is_projected(self, modality: str) -> bool:
        """Whether ``modality`` enters the networks as principal-axis scores."""
        return bool(self.n_components[modality])

    def standardize(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """Raw input -> (scaled per cell, log1p) -> per-feature z-score, clipped to +-10."""
        if self.cell_total[modality]:
            x = x * _total_factors(x.sum(dim=1, keepdim=True), self.cell_total[modality])
        if self.log1p[modality]:
            x = torch.log1p(x.clamp_min(0))
        x = (x - getattr(self, f"{modality}_mean")) / getattr(self, f"{modality}_std")
        return x.clamp(-CLIP, CLIP)

    def _scores(self, projected: torch.Tensor, modality: str) -> torch.Tensor:
        mean = getattr(self, f"{modality}_score_mean")
        return (projected - mean) / getattr(self, f"{modality}_score_scale")

    def represent(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """Raw dense input -> what the encoder reads (standardised features, or their scores)."""
        z = self.standardize(x, modality)
        if not self.is_projected(modality):
            return z
        return self._scores(z @ getattr(self, f"{modality}_components"), modality)

    def represent_sparse(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """:meth:`represent` of a sparse CSR batch of a projected modality, never densified.

        Standardisation makes a zero entry of feature j the constant ``z0[j]``, so
        ``z @ V = (z - z0) @ V + z0 @ V`` where ``z - z0`` is as sparse as the input.
        """
        components = getattr(self, f"{modality}_components")
        correction, zero_value = self._sparse_correction(x, modality)
        return self._scores(correction @ components + zero_value @ components, modality)

    def _sparse_correction(self, x: torch.Tensor, modality: str):
        """``z - z0`` of a sparse CSR batch (CSR, same pattern) and ``z0``."""
        mean, std = getattr(self, f"{modality}_mean"), getattr(self, f"{modality}_std")
        zero_value = (-mean / std).clamp(-CLIP, CLIP)  # log1p(0) = 0
        columns = x.col_indices()
        values = x.values()
        if self.cell_total[modality]:
            crow = x.crow_indices()
            rows = torch.repeat_interleave(
                torch.arange(x.shape[0], device=values.device), crow[1:] - crow[:-1]
            )
            totals = torch.zeros(x.shape[0], dtype=values.dtype, device=values.device)
            totals = totals.index_add_(0, rows, values)
            values = values * _total_factors(totals, self.cell_total[modality])[rows]
        if self.log1p[modality]:
            values = torch.log1p(values.clamp_min(0))
        values = ((values - mean[columns]) / std[columns]).clamp(-CLIP, CLIP)
        correction = sparse_csr(
            x.crow_indices(), columns, values - zero_value[columns], size=tuple(x.shape)
        )
        return correction, zero_value

    def training_input(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """Return the encoder input of rows of the training data.

        The training data of a projected modality already holds its scores (computed once,
        see :meth:`represent`); that of any other modality holds raw values.
        """
        return x if self.is_projected(modality) else self.standardize(x, modality)

    def is_thinnable(self, modality: str) -> bool:
        """Whether ``modality`` holds counts, which the depth invariance term thins."""
        return self.log1p[modality]

    def _thinned_views(
        self, raw: dict[str, torch.Tensor], thinned: dict[str, torch.Tensor] | None
    ) -> dict[str, torch.Tensor]:
        """Return the encoder inputs of the minibatch's cells with thinned counts, by modality.

        Sequencing depth then cannot set where a cell lands: without this, the shallowest
        cells of one modality can gather where some population of the other one lies. A
        modality fed as features is thinned afresh at every step; a projected one, whose
        training data are principal-axis scores, comes with scores of thinned counts.
        """
        views = {}
        for mod, counts in raw.items():
            if not self.is_thinnable(mod):
                continue
            if not self.is_projected(mod):
                views[mod] = self.standardize(thin_counts(counts, THINNING_LOWEST_FRACTION), mod)
            elif thinned is not None and mod in thinned:
                views[mod] = thinned[mod]
        return views

    def thinned_scores(
        self, x: torch.Tensor, modality: str, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Principal-axis scores of raw counts ``x`` (dense or sparse CSR), thinned first."""
        if x.layout == torch.sparse_csr:
            thinned = thin_sparse_counts(x, THINNING_LOWEST_FRACTION, generator)
            return self.represent_sparse(thinned, modality)
        return self.represent(thin_counts(x, THINNING_LOWEST_FRACTION, generator), modality)
