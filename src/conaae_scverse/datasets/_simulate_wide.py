"""A paired RNA + ATAC count simulation at realistic widths and sparsity."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._arguments import check_count, is_number
from ._simulate import BATCH_KEY, MISMATCH_KEY, TRUE_PARTNER_KEY
from ._utils import build_mudata

if TYPE_CHECKING:
    import mudata as md

logger = logging.getLogger(__name__)

LABEL_KEY = "cell_type"
GENE_KEY = "gene"
SAMPLE_KEY = "sample"
_LATENT_DIM = 10
_BLOCK_CELLS = 5000  # cells sampled at once: bounds the memory of the draws
#: Synthetic genome: chromosomes, gene lengths (log-normal median, clipped), intergenic gaps,
#: peak width and the share of a gene's peaks placed outside its promoter and body.
_N_CHROMOSOMES = 20
_GENE_LENGTH = (20_000, 1_000, 200_000)
_GAP = (20_000, 100_000)
_PEAK_WIDTH = 500
_DISTAL_SHARE = 0.3
_DISTAL_RANGE = (3_000, 50_000)

__all__ = ["simulate_wide"]


def simulate_wide(
    n_cells: int = 10_000,
    *,
    n_genes: int = 20_000,
    n_peaks: int = 100_000,
    n_types: int = 8,
    n_programs: int = 50,
    rna_depth: float = 3000.0,
    atac_depth: float = 2500.0,
    type_separation: float = 2.0,
    n_samples: int = 1,
    sample_effect: float = 0.5,
    random_state: int | None = 0,
) -> md.MuData:
    """Simulate paired RNA and ATAC counts as wide and sparse as real multiome data.

    Generation, for cells ``i = 0 .. n_cells - 1``:

    1. **Types and states.** Each cell gets one of ``n_types`` types (proportions from a
       Dirichlet(2, .., 2) draw, so some types are rare) and a state around its type's centre
       in a 10-dimensional space: centres with standard deviation ``type_separation``,
       unit-variance spread within a type.
    2. **Programs.** Genes fall into ``n_programs`` co-regulated programs at random. Each
       peak is linked to one gene (its ``var["gene"]``, as a peak near a gene) and belongs
       to that gene's program. A cell's RNA program activity is a softmax of a random
       linear map of its state; its ATAC program activity mixes the same logits (weight 0.7)
       with a random nonlinear map of the state (0.3), so chromatin follows expression
       without copying it.
    3. **Counts.** Sequencing depth per cell is log-normal (median ``rna_depth`` UMIs,
       ``atac_depth`` fragments in peaks; log-sd 0.4). Each UMI or fragment picks a program
       by the cell's activities, then a feature of that program by fixed log-normal feature
       weights: multinomial counts, as sparse as the depths make them (with the defaults
       about 5 % of RNA and 2 % of ATAC entries are non-zero).
    4. **Samples** (``n_samples`` > 1). Each cell comes from one of ``n_samples`` samples
       (donors, libraries), with equal chances. Every sample has its own type proportions
       (its own Dirichlet draw), and in each modality its own sequencing depth (the median
       times ``exp(sample_effect * N(0, 1))``) and feature-wise scaling (each feature's weight
       times ``exp(sample_effect * N(0, 1))``, drawn per sample and feature): what a batch
       effect does to counts. ``sample_effect=0`` keeps only the composition differences,
       with the same draws otherwise, so the effect can be measured against its absence.

    5. **A synthetic genome.** Genes lie on ``chr1 .. chr20`` in index order, separated by
       intergenic gaps of 20-100 kb, with log-normal lengths (median 20 kb, 1-200 kb) and a
       random strand. Each peak (500 bp) lies near its linked gene: 70 % within 1.5 kb of the
       TSS or in the gene body, 30 % distal, 3-50 kb up- or downstream (where they may fall
       in a neighbour gene, as enhancers do). Links from these coordinates
       (:func:`~conaae_scverse.pp.link_peaks_to_genes`) are then, as with a real
       annotation, right for most peaks and missing or wrong for some. The coordinates come
       from their own random stream: the counts are those of the same call without them.

    Finally the ATAC cells are put in a random order (row order carries no pairing); RNA
    cells are named ``rna_0 ..``, ATAC cells ``atac_0 ..``.

    Parameters
    ----------
    n_cells
        Cells in each modality (>= 10).
    n_genes, n_peaks
        Number of features of each modality.
    n_types
        Number of cell types (>= 2).
    n_programs
        Number of gene programs (>= 2).
    rna_depth, atac_depth
        Median UMIs (RNA) and fragments in peaks (ATAC) per cell.
    type_separation
        Standard deviation of the type centres, in units of the within-type spread: lower is
        harder.
    n_samples
        Samples the cells come from (1: none).
    sample_effect
        Log-scale standard deviation of the samples' depth and feature-wise scaling (>= 0).
    random_state
        Seed; the same seed and arguments give identical data.

    Returns
    -------
    MuData with modalities ``"rna"`` (``n_cells x n_genes`` CSR float32 counts, var names
    ``gene_0 ..``, var columns ``gene_name``, ``chrom``, ``start``, ``end``, ``strand``: a gene
    annotation to pass to :func:`~conaae_scverse.pp.link_peaks_to_genes`) and ``"atac"``
    (``n_cells x n_peaks``, var names ``peak_0 ..``, columns ``chrom``, ``start``, ``end``
    and ``gene``, the gene whose program the peak belongs to). Coordinates are 0-based,
    half-open. Both have obs columns ``cell_type`` (categorical
    ``"type_0" ..``), ``batch`` (a copy of ``cell_type``, the label name of
    :func:`simulate`), ``true_partner`` (evaluation only) and ``mismatched`` (all false);
    with ``n_samples`` > 1 also ``sample`` (categorical ``"sample_0" ..``; a cell's two
    measurements come from the same sample).

    Examples
    --------
    >>> import conaae_scverse as ca
    >>> mdata = ca.datasets.simulate_wide(2000, n_genes=5000, n_peaks=20_000, random_state=1)
    >>> mdata.mod["atac"].shape
    (2000, 20000)
    >>> links = ca.pp.link_peaks_to_genes(
    ...     mdata["atac"], mdata["rna"].var, genes=mdata["rna"].var_names
    ... )
    """
    _check(n_cells, n_genes, n_peaks, n_types, n_programs, rna_depth, atac_depth)
    check_count("n_samples", n_samples, 1)
    if not is_number(sample_effect) or not sample_effect >= 0:
        msg = f"sample_effect must be a number >= 0, got {sample_effect!r}."
        raise ValueError(msg)
    rng = np.random.default_rng(random_state)
    n = int(n_cells)

    if n_samples == 1:
        samples = np.zeros(n, dtype=np.intp)
        proportions = rng.dirichlet(np.full(n_types, 2.0))
        types = rng.choice(n_types, size=n, p=proportions)
    else:
        samples = rng.integers(n_samples, size=n)
        proportions = rng.dirichlet(np.full(n_types, 2.0), size=n_samples)
        types = np.empty(n, dtype=np.intp)
        for s in range(n_samples):
            members = np.flatnonzero(samples == s)
            types[members] = rng.choice(n_types, size=len(members), p=proportions[s])
    centres = rng.normal(scale=type_separation, size=(n_types, _LATENT_DIM))
    state = centres[types] + rng.standard_normal((n, _LATENT_DIM))

    gene_program = rng.integers(n_programs, size=n_genes)
    peak_gene = rng.integers(n_genes, size=n_peaks)
    peak_program = gene_program[peak_gene]
    gene_weight = rng.lognormal(0.0, 1.0, size=n_genes)
    peak_weight = rng.lognormal(0.0, 1.0, size=n_peaks)

    # Programs act on a log scale: a spread of ~2 across cells, as marker modules do.
    scale = 2.0 / np.sqrt(_LATENT_DIM)
    rna_logits = state @ rng.normal(scale=scale, size=(_LATENT_DIM, n_programs))
    hidden = np.tanh(state @ rng.normal(scale=1 / np.sqrt(_LATENT_DIM), size=(_LATENT_DIM, 32)))
    atac_logits = 0.7 * rna_logits + 0.3 * 2.0 * (
        hidden @ rng.normal(scale=1 / np.sqrt(32), size=(32, n_programs))
    )

    if n_samples == 1:
        rna = _sample_counts(rna_logits, gene_program, gene_weight, rna_depth, rng)
        atac = _sample_counts(atac_logits, peak_program, peak_weight, atac_depth, rng)
        order = rng.permutation(n)
    else:
        # Drawn before the counts, whose number of draws follows the depths: the cells and
        # their order are then the same whatever the sample effect.
        order = rng.permutation(n)
        rna = _sample_counts_by_sample(
            rna_logits, gene_program, gene_weight, rna_depth, samples, sample_effect, rng
        )
        atac = _sample_counts_by_sample(
            atac_logits, peak_program, peak_weight, atac_depth, samples, sample_effect, rng
        )

    rna_names = np.array([f"rna_{i}" for i in range(n)], dtype=object)
    atac_names = np.array([f"atac_{k}" for k in range(n)], dtype=object)
    rank = np.empty(n, dtype=np.intp)
    rank[order] = np.arange(n)
    categories = [f"type_{t}" for t in range(n_types)]

    sample_names = [f"sample_{s}" for s in range(n_samples)]

    def _obs(
        codes: np.ndarray, partners: np.ndarray, names: np.ndarray, sample: np.ndarray
    ) -> pd.DataFrame:
        labels = pd.Categorical.from_codes(codes, categories=categories)
        obs = pd.DataFrame(
            {
                LABEL_KEY: labels,
                BATCH_KEY: labels.copy(),
                TRUE_PARTNER_KEY: partners,
                MISMATCH_KEY: np.zeros(n, dtype=bool),
            },
            index=pd.Index(names, name=None),
        )
        if n_samples > 1:
            obs[SAMPLE_KEY] = pd.Categorical.from_codes(sample, categories=sample_names)
        return obs

    gene_names = np.array([f"gene_{j}" for j in range(n_genes)], dtype=object)
    gene_table, peak_table = _synthetic_genome(peak_gene, n_genes, random_state)
    gene_table.insert(0, "gene_name", gene_names)
    rna_ad = ad.AnnData(
        X=rna,
        obs=_obs(types, atac_names[rank], rna_names, samples),
        var=gene_table.set_axis(pd.Index(gene_names)),
    )
    atac_ad = ad.AnnData(
        X=atac[order],
        obs=_obs(types[order], rna_names[order], atac_names, samples[order]),
        var=peak_table.assign(**{GENE_KEY: gene_names[peak_gene]}).set_axis(
            pd.Index([f"peak_{j}" for j in range(n_peaks)])
        ),
    )
    logger.info(
        "Simulated %d cells: %d genes (%.1f %% non-zero), %d peaks (%.1f %% non-zero).",
        n,
        n_genes,
        100 * rna.nnz / (n * n_genes),
        n_peaks,
        100 * atac.nnz / (n * n_peaks),
    )
    provenance = {
        "name": "simulated_wide",
        "citation": "conaae-scverse's count simulation (datasets.simulate_wide)",
        "parameters": (
            f"n_cells={n}, n_genes={n_genes}, n_peaks={n_peaks}, n_types={n_types}, "
            f"n_programs={n_programs}, rna_depth={rna_depth}, atac_depth={atac_depth}, "
            f"type_separation={type_separation}, n_samples={n_samples}, "
            f"sample_effect={sample_effect}, random_state={random_state}"
        ),
    }
    return build_mudata(rna_ad, atac_ad, provenance)


def _synthetic_genome(
    peak_gene: np.ndarray, n_genes: int, random_state: int | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gene and peak coordinates (0-based, half-open) on a synthetic genome.

    Drawn from a stream of their own, so that the counts do not depend on them.
    """
    rng = np.random.default_rng(None if random_state is None else [random_state, 1])
    median, shortest, longest = _GENE_LENGTH
    length = np.clip(rng.lognormal(np.log(median), 0.8, n_genes), shortest, longest).astype(
        np.int64
    )
    gap = rng.integers(*_GAP, size=n_genes)
    chrom_index = np.arange(n_genes) * _N_CHROMOSOMES // n_genes
    # genes follow one another on their chromosome, each after its gap
    step = gap + length
    offset = np.cumsum(step) - step
    first_on_chrom = np.searchsorted(chrom_index, chrom_index)
    gene_start = offset - offset[first_on_chrom] + gap
    gene_end = gene_start + length
    plus = rng.random(n_genes) < 0.5
    genes = pd.DataFrame(
        {
            "chrom": np.array([f"chr{c + 1}" for c in range(_N_CHROMOSOMES)])[chrom_index],
            "start": gene_start,
            "end": gene_end,
            "strand": np.where(plus, "+", "-"),
        }
    )

    n_peaks = len(peak_gene)
    tss = np.where(plus, gene_start, gene_end - 1)[peak_gene]
    direction = np.where(plus, 1, -1)[peak_gene]  # downstream along the gene
    # proximal: a centre from 1.5 kb upstream of the TSS to the end of the gene body
    span = length[peak_gene] + 1_500
    proximal = tss + direction * (rng.random(n_peaks) * span - 1_500).astype(np.int64)
    # distal: up- or downstream of the whole gene, 3-50 kb away
    away = rng.integers(*_DISTAL_RANGE, size=n_peaks)
    upstream = rng.random(n_peaks) < 0.5
    gene_first = gene_start[peak_gene]
    gene_last = gene_end[peak_gene]
    distal = np.where(upstream == plus[peak_gene], gene_first - away, gene_last + away)
    centre = np.where(rng.random(n_peaks) < _DISTAL_SHARE, distal, proximal)
    start = np.maximum(centre - _PEAK_WIDTH // 2, 0)
    peaks = pd.DataFrame(
        {
            "chrom": genes["chrom"].to_numpy()[peak_gene],
            "start": start,
            "end": start + _PEAK_WIDTH,
        }
    )
    return genes, peaks


def _sample_counts(
    logits: np.ndarray,
    feature_program: np.ndarray,
    feature_weight: np.ndarray,
    depth: float,
    rng: np.random.Generator,
) -> sp.csr_matrix:
    """Multinomial counts: depth per cell -> programs by activity -> features by weight."""
    n_cells, n_programs = logits.shape
    n_features = len(feature_program)
    members = [np.flatnonzero(feature_program == p) for p in range(n_programs)]
    cumulative = []
    program_mass = np.zeros(n_programs)
    for p, index in enumerate(members):
        weights = feature_weight[index]
        program_mass[p] = weights.sum()
        cumulative.append(np.cumsum(weights) / max(weights.sum(), 1e-300))
    # A program's share of a cell's reads grows with its activity and its features' mass.
    activity = np.exp(logits - logits.max(axis=1, keepdims=True)) * program_mass
    activity /= activity.sum(axis=1, keepdims=True)
    totals = np.maximum(1, np.round(depth * rng.lognormal(0.0, 0.4, size=n_cells))).astype(int)
    blocks = []
    for start in range(0, n_cells, _BLOCK_CELLS):
        stop = min(start + _BLOCK_CELLS, n_cells)
        per_program = rng.multinomial(totals[start:stop], activity[start:stop])
        rows, cols = [], []
        for p, index in enumerate(members):
            counts = per_program[:, p]
            if len(index) == 0 or counts.sum() == 0:
                continue
            picks = np.searchsorted(cumulative[p], rng.random(counts.sum()), side="right")
            cols.append(index[np.minimum(picks, len(index) - 1)])
            rows.append(np.repeat(np.arange(stop - start), counts))
        rows_all = np.concatenate(rows)
        block = sp.csr_matrix(
            (np.ones(len(rows_all), dtype=np.float32), (rows_all, np.concatenate(cols))),
            shape=(stop - start, n_features),
        )
        block.sum_duplicates()
        blocks.append(block)
    return sp.vstack(blocks, format="csr")


def _sample_counts_by_sample(
    logits: np.ndarray,
    feature_program: np.ndarray,
    feature_weight: np.ndarray,
    depth: float,
    samples: np.ndarray,
    effect: float,
    rng: np.random.Generator,
) -> sp.csr_matrix:
    """:func:`_sample_counts` of each sample's cells, with its own depth and feature scaling."""
    n_samples = int(samples.max()) + 1
    depth_factor = np.exp(effect * rng.standard_normal(n_samples))
    feature_factor = np.exp(effect * rng.standard_normal((n_samples, len(feature_weight))))
    rows = np.empty(len(samples), dtype=np.intp)
    blocks, start = [], 0
    for s in range(n_samples):
        members = np.flatnonzero(samples == s)
        if len(members) == 0:
            continue
        blocks.append(
            _sample_counts(
                logits[members],
                feature_program,
                feature_weight * feature_factor[s],
                depth * depth_factor[s],
                rng,
            )
        )
        rows[members] = np.arange(start, start + len(members))
        start += len(members)
    return sp.vstack(blocks, format="csr")[rows]


def _check(n_cells, n_genes, n_peaks, n_types, n_programs, rna_depth, atac_depth) -> None:
    for name, value, low in (
        ("n_cells", n_cells, 10),
        ("n_genes", n_genes, 2),
        ("n_peaks", n_peaks, 2),
        ("n_types", n_types, 2),
        ("n_programs", n_programs, 2),
    ):
        check_count(name, value, low)
    for name, value in (("rna_depth", rna_depth), ("atac_depth", atac_depth)):
        if not is_number(value) or not value > 0:
            msg = f"{name} must be a positive number, got {value!r}."
            raise ValueError(msg)
