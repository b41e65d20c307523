"""Cell-level use of peak-gene links: an ATAC cell's gene activity against the RNA it decodes to.

The links prior (:mod:`._label_prior`) says which population an ATAC cell belongs to, and the
link anchors pull a few mutual-nearest pairs together. Neither tells every ATAC cell where it
belongs by its own gene-level signal, which is what scGLUE's guidance graph does. Here each
ATAC cell's latent goes through the RNA decoder (as a latent cycle does), and the genes it
decodes to are compared with the cell's own gene activity over the same genes: a per-cell
correlation, so that the scale of gene activity, which differs from expression, never matters.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse

from ._cell_representation import (
    MAX_FIT_CELLS,
    gene_activity,
    log_normalize,
    own_representation,
    standardize,
    subsample,
    top_variable,
)
from ._data import is_backed_sparse

logger = logging.getLogger(__name__)

#: Genes compared per cell: the most variable RNA genes that have gene activity.
N_LINK_GENES = 2000
#: ATAC neighbours whose gene activity is averaged into each cell's target (itself included).
TARGET_NEIGHBORS = 15


@dataclass(frozen=True)
class LinkTargets:
    """What each ATAC cell's latent should decode to in RNA, over a set of linked genes.

    Attributes
    ----------
    activity
        Standardised gene activity of every ATAC cell, shape (n_atac_cells, n_genes).
    rna_columns
        Column of each of these genes in the RNA matrix, shape (n_genes,).
    """

    activity: torch.Tensor
    rna_columns: torch.Tensor


def link_targets(
    rna_matrix,
    atac_matrix,
    links,
    rna_gene_columns: np.ndarray,
    *,
    log1p_rna: bool,
    log1p_atac: bool,
    seed: int,
    smooth_neighbors: int = TARGET_NEIGHBORS,
    n_genes: int = N_LINK_GENES,
) -> LinkTargets | None:
    """Gene activity targets of every ATAC cell on the most variable linked RNA genes.

    Parameters
    ----------
    rna_matrix, atac_matrix
        The registered matrices (cells x genes, cells x peaks), in memory.
    links
        Sparse peaks x linked genes weights.
    rna_gene_columns
        Column of each linked gene in ``rna_matrix`` (-1: not an RNA feature).
    log1p_rna, log1p_atac
        Whether each modality holds counts.
    seed
        Seed of the subsamples.
    smooth_neighbors
        Each target is the mean gene activity of the cell's nearest ATAC cells in the ATAC's
        own representation (1: the cell's own, noisier activity).
    n_genes
        Genes compared.

    Returns
    -------
    The targets, or ``None`` when no linked gene has any activity.
    """
    rng = np.random.default_rng(seed)
    in_rna = np.flatnonzero(np.asarray(rna_gene_columns) >= 0)
    links = sparse.csr_matrix(links)[:, in_rna]
    activity, has_activity = gene_activity(atac_matrix, links, log1p=log1p_atac)
    if len(has_activity) == 0:
        return None
    columns = np.asarray(rna_gene_columns)[in_rna][has_activity]
    rows = subsample(rna_matrix.shape[0], MAX_FIT_CELLS, rng)
    rna = log_normalize(rna_matrix[rows][:, columns], log1p=log1p_rna)
    chosen = top_variable(rna, n_genes)
    target = standardize(activity[:, has_activity[chosen]])
    if smooth_neighbors > 1:
        from sklearn.neighbors import NearestNeighbors

        own = own_representation(atac_matrix, log1p=log1p_atac, rng=rng)
        k = min(smooth_neighbors, len(own))
        # The mean over neighbours as a sparse product: never an (n, k, genes) array.
        graph = NearestNeighbors(n_neighbors=k).fit(own).kneighbors_graph(own) / k
        target = standardize(graph @ target)
    logger.info("Link consistency: %d genes per ATAC cell.", len(chosen))
    return LinkTargets(
        torch.as_tensor(target, dtype=torch.float32),
        torch.as_tensor(columns[chosen], dtype=torch.long),
    )


def fit_link_targets(gene_links, matrices: dict, adatas: dict, log1p: dict, seed: int):
    """:func:`link_targets` of a model's registered data (``None`` without ``gene_links``)."""
    if gene_links is None:
        return None
    rna, atac = (
        m.to_memory() if is_backed_sparse(m) else m for m in (matrices["rna"], matrices["atac"])
    )
    return link_targets(
        rna,
        atac,
        gene_links.X,
        adatas["rna"].var_names.get_indexer(gene_links.var_names),
        log1p_rna=log1p["rna"],
        log1p_atac=log1p["atac"],
        seed=seed,
    )


def row_correlation_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of 1 - the Pearson correlation of a row of ``predicted`` with ``target``."""
    p = predicted - predicted.mean(dim=1, keepdim=True)
    t = target - target.mean(dim=1, keepdim=True)
    corr = (p * t).sum(dim=1) / (p.norm(dim=1) * t.norm(dim=1)).clamp_min(1e-8)
    return (1.0 - corr).mean()


class LinkLookup:
    """The link targets of minibatch rows, in the form the module compares them in.

    A projected RNA decodes to principal-axis values ``a`` (before their scaling), whose genes
    are ``a @ V.T`` for the axes ``V`` on the chosen genes. With ``D`` = ``V`` centred over
    those genes, a cell's correlation with its centred target ``t`` is
    ``a @ (D.T t) / (sqrt(a @ D.T D @ a) |t|)``: ``D.T t`` and ``D.T D`` are computed once, so
    a step never forms the (cells x genes) prediction (which cost ~40 % of a step on a CPU).

    Parameters
    ----------
    targets
        The targets of every ATAC cell.
    rna_components
        The RNA's principal axes, shape (n_genes, n_axes), or ``None`` when not projected.
    """

    def __init__(self, targets: LinkTargets, rna_components: torch.Tensor | None):
        self.targets = targets
        self.on_axes = None
        if rna_components is not None:
            axes = rna_components.detach().cpu().double()[targets.rna_columns]
            centred_axes = axes - axes.mean(dim=0, keepdim=True)
            activity = targets.activity.double()
            activity = activity - activity.mean(dim=1, keepdim=True)
            self.on_axes = (
                (activity @ centred_axes).float(),
                activity.norm(dim=1).float(),
                (centred_axes.T @ centred_axes).float(),
            )

    def rows(self, rows: torch.Tensor, device) -> dict[str, torch.Tensor]:
        """Look up the targets of ATAC training rows ``rows`` (for ``ConAAEModule.loss``)."""
        rows = rows.reshape(-1).long().cpu()
        if self.on_axes is None:
            return {
                "activity": self.targets.activity[rows].to(device),
                "columns": self.targets.rna_columns.to(device),
            }
        projected, norm, gram = self.on_axes
        return {
            "projected": projected[rows].to(device),
            "norm": norm[rows].to(device),
            "gram": gram.to(device),
        }


def axes_correlation_loss(
    values: torch.Tensor, projected: torch.Tensor, norm: torch.Tensor, gram: torch.Tensor
) -> torch.Tensor:
    """:func:`row_correlation_loss` of ``values @ V.T`` against targets given on the axes."""
    dot = (values * projected).sum(dim=1)
    spread = ((values @ gram) * values).sum(dim=1).clamp_min(0.0).sqrt()
    corr = dot / (spread * norm).clamp_min(1e-8)
    return (1.0 - corr).mean()
