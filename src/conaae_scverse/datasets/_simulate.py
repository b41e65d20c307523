"""The simulated RNA + ATAC benchmark of the Con-AAE paper."""

from __future__ import annotations

import logging

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
from scipy import sparse as sp

from .._constants import TRUE_PARTNER_KEY
from ._utils import build_mudata

logger = logging.getLogger(__name__)

#: Dimension of the latent space the clusters live in.
_LATENT_DIM = 10
#: Width of the hidden layer of the random RNA -> ATAC network.
_HIDDEN_DIM = 64
#: Standard deviation of the cluster centres in the latent space (cells have unit spread).
_CENTER_SCALE = 2.5
#: Name of the boolean obs column flagging cells whose claimed pair was swapped.
MISMATCH_KEY = "mismatched"
#: Name of the label column.
BATCH_KEY = "batch"


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _add_noise(signal: np.ndarray, snr: float, rng: np.random.Generator) -> np.ndarray:
    """Add Gaussian noise with per-feature variance ``var(signal[:, j]) / snr``; clip at 0."""
    noise_sd = np.sqrt(signal.var(axis=0) / snr)
    noisy = signal + rng.standard_normal(signal.shape) * noise_sd
    return np.clip(noisy, 0.0, None, out=noisy)


def _check(
    n_cells: int,
    n_rna: int,
    n_atac: int,
    n_batches: int,
    dropout: float,
    mismatch_fraction: float,
    snr: float | None,
) -> None:
    if n_cells < 10:
        msg = f"`n_cells` must be at least 10, got {n_cells}; the paper uses 1200 to 6000."
        raise ValueError(msg)
    if n_rna < 1 or n_atac < 1:
        msg = (
            f"`n_rna_features` and `n_atac_features` must be positive, got {n_rna} and "
            f"{n_atac}; the paper uses 1000 and 500."
        )
        raise ValueError(msg)
    if not 1 <= n_batches <= n_cells:
        msg = f"`n_batches` must be between 1 and `n_cells` ({n_cells}), got {n_batches}."
        raise ValueError(msg)
    if not 0.0 <= dropout < 1.0:
        msg = f"`dropout` is a fraction of entries and must lie in [0, 1), got {dropout}."
        raise ValueError(msg)
    if not 0.0 <= mismatch_fraction <= 1.0:
        msg = (
            f"`mismatch_fraction` is a fraction of cells and must lie in [0, 1], got "
            f"{mismatch_fraction}."
        )
        raise ValueError(msg)
    if snr is not None and not (np.isfinite(snr) and snr > 0):
        msg = (
            f"`snr` must be a positive number or None (no noise), got {snr}; the paper "
            "uses 5, 10, 15, 20 and 25."
        )
        raise ValueError(msg)


def simulate(
    n_cells: int = 1200,
    *,
    n_rna_features: int = 1000,
    n_atac_features: int = 500,
    n_batches: int = 3,
    dropout: float = 0.4,
    mismatch_fraction: float = 0.1,
    snr: float | None = None,
    sparse: bool = True,
    random_state: int | None = 0,
) -> md.MuData:
    """Simulate paired RNA and ATAC data as in the Con-AAE paper's benchmark.

    Generation, for cells ``i = 0 .. n_cells - 1``:

    1. **Clusters.** Each cell is assigned to one of ``n_batches`` groups ("batches"), of
       equal size up to one cell, in random order. Its latent state is drawn from a
       Gaussian around its group's centre in a 10-dimensional space (unit variance;
       centres drawn with standard deviation 2.5, so the groups are well separated).
    2. **RNA.** A fixed random linear map to ``n_rna_features`` followed by a softplus
       gives non-negative expression.
    3. **ATAC.** The (noise- and dropout-free) RNA is standardised and passed through a
       fixed random two-layer network, ``relu(tanh(x W1) W2 + b)``, with a hidden layer
       of 64 units: a nonlinear, decoder-like map to ``n_atac_features`` non-negative
       accessibilities, about half of them zero.
    4. **Noise** (only if ``snr`` is given). Gaussian noise is added to both modalities,
       independently per entry, with variance ``var_j / snr`` for feature ``j``, where
       ``var_j`` is the variance of that feature's signal across cells. SNR is therefore
       the ratio of signal variance to noise variance (not of standard deviations, and
       not in dB). Negative values are then clipped to 0, which slightly raises the
       effective SNR.
    5. **Dropout.** Each RNA entry is set to 0 independently with probability
       ``dropout``, so about that fraction of RNA entries is zero.
    6. **Mismatch.** ``round(mismatch_fraction * n_cells)`` cells (at least 2 if the
       fraction is positive) are chosen and their ATAC profiles are rotated among them,
       so each of these cells is paired with *another* cell's ATAC profile.

    The data then claim that RNA cell ``i`` and ATAC cell ``i`` are a pair. For the
    mismatched cells this claim is wrong: the mismatch is noise in the pairing, as
    happens when co-assay barcodes collide. ``true_partner`` records **the claimed
    pairing** (the one the paper evaluates against), so a perfect aligner scores about
    ``1 - mismatch_fraction`` on it. The ``mismatched`` column flags the affected cells
    in both modalities, and the ATAC ``batch`` label follows the profile (the group of
    the cell whose ATAC profile it is), so labels are always correct for the data.

    Finally the ATAC cells are put in a random order, so that row order carries no
    pairing: RNA cells are named ``rna_0 ..`` in generation order, ATAC cells
    ``atac_0 ..`` in the shuffled order.

    Parameters
    ----------
    n_cells
        Number of cells in each modality. The paper uses 1200 to 6000; any value >= 10 is
        accepted.
    n_rna_features
        Number of genes (paper: 1000).
    n_atac_features
        Number of peaks (paper: 500).
    n_batches
        Number of Gaussian groups (paper: 3).
    dropout
        Fraction of RNA entries set to zero, in [0, 1) (paper: 0.4).
    mismatch_fraction
        Fraction of cells whose claimed pair is wrong, in [0, 1] (paper: 0.1).
    snr
        Signal-to-noise ratio (signal variance / noise variance) of added Gaussian
        noise; ``None`` adds none. The paper uses 5, 10, 15, 20 and 25.
    sparse
        Whether ``X`` is a :class:`scipy.sparse.csr_matrix` (else a dense array).
    random_state
        Seed; the same seed and arguments give identical data.

    Returns
    -------
    MuData with modalities

    - ``"rna"``: ``n_cells x n_rna_features`` float32, var names ``gene_0 ..``;
    - ``"atac"``: ``n_cells x n_atac_features`` float32, var names ``peak_0 ..``;

    each with obs columns ``batch`` (categorical ``"batch_0" ..``), ``true_partner``
    (obs name of the claimed partner in the other modality; for evaluation only) and
    ``mismatched`` (bool). ``mdata.uns["dataset"]`` holds the provenance as strings.

    Examples
    --------
    >>> from conaae_scverse.datasets import simulate
    >>> mdata = simulate(1200, snr=10, random_state=1)
    >>> mdata.mod["rna"].shape, mdata.mod["atac"].shape
    ((1200, 1000), (1200, 500))
    """
    _check(n_cells, n_rna_features, n_atac_features, n_batches, dropout, mismatch_fraction, snr)
    rng = np.random.default_rng(random_state)
    n = int(n_cells)

    # 1. clusters in the latent space
    batch = rng.permutation(np.arange(n) % n_batches)
    centers = rng.normal(scale=_CENTER_SCALE, size=(n_batches, _LATENT_DIM))
    latent = centers[batch] + rng.standard_normal((n, _LATENT_DIM))

    # 2. RNA
    w_rna = rng.standard_normal((_LATENT_DIM, n_rna_features)) / np.sqrt(_LATENT_DIM)
    b_rna = rng.normal(scale=0.5, size=n_rna_features)
    rna = _softplus(latent @ w_rna + b_rna)

    # 3. ATAC from the clean RNA through a random two-layer network
    std = rna.std(axis=0)
    x = (rna - rna.mean(axis=0)) / np.where(std > 0, std, 1.0)
    w1 = rng.standard_normal((n_rna_features, _HIDDEN_DIM)) / np.sqrt(n_rna_features)
    w2 = rng.standard_normal((_HIDDEN_DIM, n_atac_features)) / np.sqrt(_HIDDEN_DIM)
    b2 = rng.normal(scale=0.1, size=n_atac_features)
    atac = np.maximum(np.tanh(x @ w1) @ w2 + b2, 0.0)

    # 4. noise
    if snr is not None:
        rna = _add_noise(rna, float(snr), rng)
        atac = _add_noise(atac, float(snr), rng)

    # 5. dropout
    if dropout > 0:
        rna[rng.random(rna.shape) < dropout] = 0.0

    # 6. mismatch: rotate the ATAC profiles of the chosen cells (a derangement)
    n_mismatch = round(mismatch_fraction * n)
    if 0 < mismatch_fraction and n_mismatch < 2:
        n_mismatch = 2
    chosen = rng.choice(n, size=n_mismatch, replace=False)
    source = np.roll(chosen, 1)
    atac[chosen] = atac[source]
    atac_batch = batch.copy()
    atac_batch[chosen] = batch[source]
    mismatched = np.zeros(n, dtype=bool)
    mismatched[chosen] = True

    # shuffle the ATAC rows: ATAC row k is the claimed partner of RNA cell order[k]
    order = rng.permutation(n)
    rna_names = np.array([f"rna_{i}" for i in range(n)], dtype=object)
    atac_names = np.array([f"atac_{k}" for k in range(n)], dtype=object)
    rank = np.empty(n, dtype=np.intp)
    rank[order] = np.arange(n)

    categories = [f"batch_{b}" for b in range(n_batches)]

    def _labels(codes: np.ndarray) -> pd.Categorical:
        return pd.Categorical.from_codes(codes, categories=categories)

    rna_obs = pd.DataFrame(
        {
            BATCH_KEY: _labels(batch),
            TRUE_PARTNER_KEY: atac_names[rank],
            MISMATCH_KEY: mismatched,
        },
        index=pd.Index(rna_names, name=None),
    )
    atac_obs = pd.DataFrame(
        {
            BATCH_KEY: _labels(atac_batch[order]),
            TRUE_PARTNER_KEY: rna_names[order],
            MISMATCH_KEY: mismatched[order],
        },
        index=pd.Index(atac_names, name=None),
    )

    def _matrix(values: np.ndarray) -> np.ndarray | sp.csr_matrix:
        values = values.astype(np.float32)
        return sp.csr_matrix(values) if sparse else values

    rna_ad = ad.AnnData(
        X=_matrix(rna),
        obs=rna_obs,
        var=pd.DataFrame(index=[f"gene_{j}" for j in range(n_rna_features)]),
    )
    atac_ad = ad.AnnData(
        X=_matrix(atac[order]),
        obs=atac_obs,
        var=pd.DataFrame(index=[f"peak_{j}" for j in range(n_atac_features)]),
    )
    logger.info(
        "Simulated %d cells (%d batches, dropout %.2f, %d mismatched pairs, snr %s).",
        n,
        n_batches,
        dropout,
        n_mismatch,
        snr,
    )
    provenance = {
        "name": "simulated",
        "citation": (
            "Simulation protocol of Wang et al., Con-AAE: contrastive cycle adversarial "
            "autoencoders for single-cell multi-omics alignment and integration, "
            "Bioinformatics 39(4), btad162 (2023); re-implemented by conaae-scverse."
        ),
        "url": "https://doi.org/10.1093/bioinformatics/btad162",
        "parameters": (
            f"n_cells={n}, n_rna_features={n_rna_features}, "
            f"n_atac_features={n_atac_features}, n_batches={n_batches}, dropout={dropout}, "
            f"mismatch_fraction={mismatch_fraction}, snr={snr}, random_state={random_state}"
        ),
    }
    return build_mudata(rna_ad, atac_ad, provenance)
