"""Label priors for a modality without labels: which labelled population is which.

With labels in one modality only, the adversarial alignment lines the two modalities up by the
shape of their distributions, and look-alike populations can be swapped
(``benchmarks/label_transfer.py``). A prior brings the missing signal from outside the model,
as peers do: a probability over the label categories for every cell of the unlabelled modality.
:class:`~conaae_scverse.ConAAE` then trains with the confident ones as pseudo-labels.

- ``links`` (Seurat v3's idea): ATAC gene activity from peak-gene links, compared with RNA
  expression of the same genes in a canonical-correlation space; each ATAC cell takes the label
  votes of its nearest labelled RNA cells.
- ``ot`` (SCOT's idea, for data without coordinates): a Gromov-Wasserstein coupling between
  the two modalities' cell-cell geodesic distances, on a subsample; labels travel along it.

Both smooth the votes over the unlabelled modality's own nearest-neighbour graph, so that a
cell's prior agrees with the cells that look like it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import LinearOperator, svds
from sklearn.neighbors import NearestNeighbors

from ._cell_representation import (
    MAX_FIT_CELLS,
    gene_activity,
    l2_rows,
    log_normalize,
    own_representation,
    standardize,
    subsample,
    top_variable,
)
from ._data import is_backed_sparse
from ._link_anchors import label_consistent, mutual_nearest_pairs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelPrior:
    """Label probabilities of the cells of the unlabelled modality.

    Attributes
    ----------
    probabilities
        Array of shape (n_cells, n_labels); rows sum to 1.
    source
        ``"links"`` or ``"ot"``.
    anchors
        Links prior only: pairs of an RNA and an ATAC cell (row numbers) that are mutual
        nearest neighbours in the gene space and agree on the label, shape (n_pairs, 2).
    """

    probabilities: np.ndarray
    source: str
    anchors: np.ndarray | None = None

    @property
    def confidence(self) -> np.ndarray:
        """Largest probability of each cell, shape (n_cells,)."""
        return self.probabilities.max(axis=1)

    def pseudo_labels(self, min_confidence: float) -> np.ndarray:
        """Most likely label code of each cell, or -1 where its confidence is below the bar."""
        codes = self.probabilities.argmax(axis=1).astype(np.int64)
        codes[self.confidence < min_confidence] = -1
        return codes


# ------------------------------------------------------------------------ representations
def canonical_embeddings(
    z_rna: np.ndarray, z_atac: np.ndarray, n_comps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seurat v3's CCA: singular vectors of ``z_rna @ z_atac.T``, without forming it.

    Unlike Seurat, each component is scaled by the square root of its singular value.

    Parameters
    ----------
    z_rna, z_atac
        Standardised values of the same features, shapes (n, g) and (m, g).
    n_comps
        Number of canonical components.

    Returns
    -------
    Embeddings of shape (n, d) and (m, d), each row scaled to unit length.
    """
    n, m = len(z_rna), len(z_atac)
    k = max(1, min(n_comps, n - 1, m - 1))
    operator = LinearOperator(
        (n, m),
        matvec=lambda v: z_rna @ (z_atac.T @ v),
        rmatvec=lambda v: z_atac @ (z_rna.T @ v),
        dtype=np.float64,
    )
    u, singular, vt = svds(operator, k=k, random_state=0)
    # Scaled by the square roots of the singular values, the two embeddings' inner products
    # reproduce the cross product: components of noise, with small singular values, weigh
    # little, so the number of components matters less than in Seurat's unscaled CCA.
    scale = np.sqrt(np.maximum(singular, 0.0))
    return l2_rows(u * scale), l2_rows(vt.T * scale)


# ---------------------------------------------------------------------------- the votes
def _label_votes(codes: np.ndarray, n_labels: int) -> np.ndarray:
    """One-hot rows of labelled cells, zero rows for unlabelled ones (code -1)."""
    votes = np.zeros((len(codes), n_labels))
    known = codes >= 0
    votes[np.flatnonzero(known), codes[known]] = 1.0
    return votes


def _normalize_rows(p: np.ndarray) -> np.ndarray:
    total = p.sum(axis=1, keepdims=True)
    uniform = np.full_like(p, 1.0 / p.shape[1])
    return np.where(total > 0, p / np.where(total > 0, total, 1.0), uniform)


def smooth(probabilities: np.ndarray, representation: np.ndarray, k: int = 15) -> np.ndarray:
    """Average each cell's probabilities over its ``k`` nearest cells (itself included)."""
    k = min(k, len(representation))
    _, idx = NearestNeighbors(n_neighbors=k).fit(representation).kneighbors(representation)
    return _normalize_rows(probabilities[idx].mean(axis=1))


def _spread(votes: np.ndarray, rows: np.ndarray, representation: np.ndarray) -> np.ndarray:
    """Probabilities of every cell from the votes of the subsampled ``rows``, then smoothed.

    A cell outside the subsample takes the mean votes of its nearest subsampled cells in its
    own modality's ``representation``.
    """
    k = min(10, len(rows))
    nn = NearestNeighbors(n_neighbors=k).fit(representation[rows])
    _, idx = nn.kneighbors(representation)
    spread = _normalize_rows(votes[idx].mean(axis=1))
    return smooth(spread, representation)


def gene_space(
    rna_genes, atac_matrix, links, *, log1p_rna: bool, log1p_atac: bool, n_genes: int = 2000
) -> tuple[np.ndarray, np.ndarray]:
    """RNA expression and ATAC gene activity of shared, variable genes, each standardised.

    Parameters
    ----------
    rna_genes
        RNA cells x linked genes (columns in the order of ``links``' columns).
    atac_matrix
        ATAC cells x peaks.
    links
        Sparse peaks x genes weights.
    log1p_rna, log1p_atac
        Whether the inputs are counts (normalised to the median total and log1p-transformed).
    n_genes
        Genes kept: the most variable in RNA among those with any gene activity.

    Returns
    -------
    Dense standardised matrices of shape (n_rna, g) and (n_atac, g).
    """
    # An all-zero gene activity carries no signal: only candidates with some are kept.
    activity, candidates = gene_activity(atac_matrix, links, log1p=log1p_atac)
    rna = log_normalize(rna_genes, log1p=log1p_rna)
    genes = candidates[top_variable(rna[:, candidates], n_genes)]
    return standardize(rna[:, genes]), standardize(activity[:, genes])


def links_prior(
    z_rna: np.ndarray,
    z_atac: np.ndarray,
    *,
    rows: dict[str, np.ndarray],
    codes: dict[str, np.ndarray],
    unlabelled: str,
    n_labels: int,
    own: dict[str, np.ndarray],
    n_comps: int = 30,
    k: int = 20,
) -> LabelPrior:
    """Label probabilities from gene activity, as Seurat v3 transfers labels.

    Both modalities are placed in a canonical-correlation space of the same genes; each cell
    of the unlabelled modality takes the votes of its ``k`` nearest labelled cells there.

    Parameters
    ----------
    z_rna, z_atac
        Standardised RNA expression and ATAC gene activity of the same genes
        (:func:`gene_space`), of the cells in ``rows``.
    rows
        The cells of each modality behind ``z_rna`` and ``z_atac`` (labelled ones only for
        the labelled modality).
    codes
        Label codes of each modality (-1: unlabelled).
    unlabelled
        ``"rna"`` or ``"atac"``.
    n_labels
        Number of label categories.
    own
        Each modality's own reduced representation, for spreading and smoothing.
    n_comps
        Canonical components.
    k
        Labelled neighbours that vote for each cell.

    Returns
    -------
    The prior of the unlabelled modality's cells.
    """
    labelled = "rna" if unlabelled == "atac" else "atac"
    u, v = canonical_embeddings(z_rna, z_atac, n_comps)
    emb = {"rna": u, "atac": v}
    k = min(k, len(rows[labelled]))
    nn = NearestNeighbors(n_neighbors=k).fit(emb[labelled])
    _, idx = nn.kneighbors(emb[unlabelled])
    votes = _label_votes(codes[labelled][rows[labelled]], n_labels)[idx].mean(axis=1)
    probabilities = _spread(votes, rows[unlabelled], own[unlabelled])
    pairs = mutual_nearest_pairs(emb["rna"], emb["atac"])
    pairs = np.column_stack([rows["rna"][pairs[:, 0]], rows["atac"][pairs[:, 1]]])
    labels = {labelled: codes[labelled], unlabelled: probabilities.argmax(axis=1)}
    anchors = label_consistent(pairs, labels["rna"], labels["atac"])
    logger.info("Links prior: %d genes, %d anchor pairs.", z_rna.shape[1], len(anchors))
    return LabelPrior(probabilities, "links", anchors)


def _clusters(z: np.ndarray, n_clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means cluster of each cell and the centres, fitted on a subsample."""
    from sklearn.cluster import MiniBatchKMeans

    kmeans = MiniBatchKMeans(n_clusters, n_init=3, random_state=seed, batch_size=4096)
    assignment = kmeans.fit_predict(z)
    return assignment, kmeans.cluster_centers_


def _scaled_distances(centres: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import cdist

    dist = cdist(centres, centres)
    return dist / max(dist.max(), 1e-12)


def _cluster_coupling(
    c_labelled: np.ndarray,
    c_unlabelled: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    rng: np.random.Generator,
    n_starts: int,
) -> np.ndarray:
    """Gromov-Wasserstein coupling of lowest objective over several starting plans.

    The objective is not convex: one start can settle on a permutation of the populations,
    so random starts (random vertices of the transport polytope) compete with the product
    coupling and the best one wins.
    """
    import ot

    best, best_cost = None, np.inf
    for start in range(n_starts):
        g0 = np.outer(p, q) if start == 0 else ot.emd(p, q, rng.random((len(p), len(q))))
        plan, log = ot.gromov.gromov_wasserstein(
            c_labelled, c_unlabelled, p, q, "square_loss", G0=g0, log=True, max_iter=1000
        )
        if log["gw_dist"] < best_cost:
            best, best_cost = plan, log["gw_dist"]
    return best


def ot_prior(
    *,
    codes: dict[str, np.ndarray],
    unlabelled: str,
    n_labels: int,
    own: dict[str, np.ndarray],
    rng: np.random.Generator,
    cluster_counts: tuple[int, ...] = (25, 50, 100),
    n_starts: int = 30,
) -> LabelPrior:
    """Label probabilities from Gromov-Wasserstein couplings of cluster geometries.

    Each modality is cut into k-means clusters of its own representation (rows scaled to
    unit length); the clusters of the two modalities are coupled by Gromov-Wasserstein
    optimal transport of their centre distances, with cluster sizes as the marginals (as
    SCOT and Pamona couple cells, but on clusters, so that the cost does not grow with the
    cells). Labels travel along the coupling. The probabilities are averaged over several
    cluster counts, so a cell is confident only where the granularities agree.

    Parameters
    ----------
    codes
        Label codes of each modality (-1: unlabelled).
    unlabelled
        ``"rna"`` or ``"atac"``.
    n_labels
        Number of label categories.
    own
        Each modality's own reduced representation.
    rng
        Random generator of the clusterings and starting plans.
    cluster_counts
        Numbers of clusters per modality (capped at a tenth of the cells).
    n_starts
        Starting plans of each coupling.

    Returns
    -------
    The prior of the unlabelled modality's cells.
    """
    labelled = "rna" if unlabelled == "atac" else "atac"
    known = np.flatnonzero(codes[labelled] >= 0)
    z_labelled = l2_rows(own[labelled][known])
    z_unlabelled = l2_rows(own[unlabelled])
    votes = _label_votes(codes[labelled][known], n_labels)
    smallest = min(len(known), len(z_unlabelled))
    n_max = min(smallest, max(2, smallest // 10))  # never more clusters than cells
    counts = sorted({min(c, n_max) for c in cluster_counts})
    probabilities = np.zeros((len(z_unlabelled), n_labels))
    for n_clusters in counts:
        seed = int(rng.integers(2**31))
        assign_l, centres_l = _clusters(z_labelled, n_clusters, seed)
        assign_u, centres_u = _clusters(z_unlabelled, n_clusters, seed + 1)
        p = np.bincount(assign_l, minlength=n_clusters) / len(assign_l)
        q = np.bincount(assign_u, minlength=n_clusters) / len(assign_u)
        plan = _cluster_coupling(
            _scaled_distances(centres_l), _scaled_distances(centres_u), p, q, rng, n_starts
        )
        # Label mix of each labelled cluster, carried to the unlabelled clusters.
        mix = np.zeros((n_clusters, n_labels))
        np.add.at(mix, assign_l, votes)
        mix = _normalize_rows(mix)
        probabilities += _normalize_rows(plan.T @ mix)[assign_u]
    probabilities = smooth(probabilities / len(counts), own[unlabelled])
    logger.info("Label prior from Gromov-Wasserstein OT of clusters (%s).", counts)
    return LabelPrior(probabilities, "ot")


def fit_label_prior(
    source: str,
    matrices: dict[str, object],
    codes: dict[str, np.ndarray],
    *,
    unlabelled: str,
    n_labels: int,
    log1p: dict[str, bool],
    gene_links=None,
    rna_gene_columns: np.ndarray | None = None,
    seed: int = 0,
) -> LabelPrior:
    """Fit the prior of the unlabelled modality's cells, from ``"links"`` or ``"ot"``.

    Parameters
    ----------
    source
        ``"links"`` (needs ``gene_links``) or ``"ot"``.
    matrices
        ``{"rna": cells x genes, "atac": cells x peaks}``, as registered.
    codes
        Label codes of each modality (-1: unlabelled).
    unlabelled
        ``"rna"`` or ``"atac"``, the modality without labels.
    n_labels
        Number of label categories.
    log1p
        Whether each modality holds counts.
    gene_links
        Sparse peaks x linked genes, rows in ATAC feature order.
    rna_gene_columns
        Column of each linked gene in the RNA matrix.
    seed
        Seed of the subsamples.

    Returns
    -------
    Label probabilities of the unlabelled modality's cells.
    """
    rng = np.random.default_rng(seed)
    own = {mod: own_representation(m, log1p=log1p[mod], rng=rng) for mod, m in matrices.items()}
    common = {"codes": codes, "unlabelled": unlabelled, "n_labels": n_labels, "own": own}
    if source == "ot":
        return ot_prior(rng=rng, **common)
    # At most MAX_FIT_CELLS cells of each modality (labelled ones for the labelled side)
    # enter the gene space; the others get their votes through their own neighbours.
    labelled = "rna" if unlabelled == "atac" else "atac"
    known = np.flatnonzero(codes[labelled] >= 0)
    rows = {
        labelled: known[subsample(len(known), MAX_FIT_CELLS, rng)],
        unlabelled: subsample(matrices[unlabelled].shape[0], MAX_FIT_CELLS, rng),
    }
    z_rna, z_atac = gene_space(
        matrices["rna"][rows["rna"]][:, rna_gene_columns],
        matrices["atac"][rows["atac"]],
        gene_links,
        log1p_rna=log1p["rna"],
        log1p_atac=log1p["atac"],
    )
    return links_prior(z_rna, z_atac, rows=rows, **common)


def pseudo_label_unlabelled(
    source: str,
    matrices: dict[str, object],
    codes: dict[str, np.ndarray],
    *,
    n_labels: int,
    log1p: dict[str, bool],
    gene_links=None,
    rna_var_names=None,
    min_confidence: float,
    seed: int,
) -> tuple[LabelPrior | None, str | None]:
    """Fit the prior of a modality without any label and write its pseudo-labels into ``codes``.

    Parameters
    ----------
    source
        ``label_prior`` of :class:`~conaae_scverse.ConAAE`: ``"auto"``, ``"links"``, ``"ot"``
        or ``"none"``.
    matrices
        ``{"rna": cells x genes, "atac": cells x peaks}``, as registered.
    codes
        Label codes of each modality (-1: unlabelled); the unlabelled modality's entry is
        replaced by its pseudo-labels (-1 where the prior is not confident).
    n_labels
        Number of label categories (0: no labels registered, no prior).
    log1p
        Whether each modality holds counts.
    gene_links
        The registered peak-gene links (AnnData of peaks x genes), or ``None``.
    rna_var_names
        Gene names of the RNA modality, to place the linked genes.
    min_confidence
        Smallest probability that makes a pseudo-label.
    seed
        Seed of the subsamples and clusterings.

    Returns
    -------
    The prior and the modality it is about, or ``(None, None)`` when no prior applies (the
    prior is off, no labels, or not exactly one modality without any label).
    """
    unlabelled = [mod for mod in ("rna", "atac") if (codes[mod] < 0).all()]
    if source == "none" or n_labels == 0 or len(unlabelled) != 1:
        return None, None
    if source == "auto":
        source = "links" if gene_links is not None else "ot"
    if source == "links" and gene_links is None:
        msg = (
            "label_prior='links' needs peak-gene links: make them with "
            "`links = ca.pp.link_peaks_to_genes(mdata[atac_mod], annotation)` and pass "
            "`gene_links=links` to setup_mudata; or use label_prior='ot' or 'auto'."
        )
        raise ValueError(msg)
    if any(is_backed_sparse(m) for m in matrices.values()):
        # The prior reads every cell; a matrix on disk is read in for it, then dropped.
        logger.info("Reading the backed modalities into memory for the label prior.")
        matrices = {
            mod: m.to_memory() if is_backed_sparse(m) else m for mod, m in matrices.items()
        }
    prior = fit_label_prior(
        source,
        matrices,
        codes,
        unlabelled=unlabelled[0],
        n_labels=n_labels,
        log1p=log1p,
        gene_links=None if gene_links is None else gene_links.X,
        rna_gene_columns=(
            None if gene_links is None else rna_var_names.get_indexer(gene_links.var_names)
        ),
        seed=seed,
    )
    codes[unlabelled[0]] = prior.pseudo_labels(min_confidence)
    return prior, unlabelled[0]
