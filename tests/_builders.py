"""Tiny seeded MuData builders shared by the tests (importable as `_builders`)."""

from __future__ import annotations

import warnings

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import torch
from scipy import sparse

# The test machines are small and shared: one intra-op thread is much faster than two
# threads fighting over the same cores, and it makes CPU results reproducible.
torch.set_num_threads(1)

LABELS = ("alpha", "beta", "gamma")


def _counts(rng: np.random.Generator, signal: np.ndarray, n_features: int) -> np.ndarray:
    """Poisson counts whose rates depend on a low-dimensional signal through a random map."""
    weights = rng.normal(size=(signal.shape[1], n_features))
    rates = np.exp(0.6 * signal @ weights / np.sqrt(signal.shape[1]))
    return rng.poisson(rates).astype(np.float32)


def _as_format(matrix: np.ndarray, fmt: str):
    if fmt == "dense":
        return matrix
    if fmt == "csr":
        return sparse.csr_matrix(matrix)
    if fmt == "csc":
        return sparse.csc_matrix(matrix)
    msg = f"unknown format {fmt!r}"
    raise ValueError(msg)


def build_mudata(
    *,
    n_rna: int = 40,
    n_atac: int = 36,
    n_genes: int = 24,
    n_peaks: int = 18,
    paired: bool = False,
    fmt: str = "csr",
    labels: str | None = "both",
    n_labels: int = 2,
    layer: str | None = None,
    seed: int = 0,
) -> md.MuData:
    """A tiny seeded RNA + ATAC MuData of Poisson counts with ``n_labels`` clusters.

    ``paired=True`` gives both modalities the same cells (same obs_names), with the ATAC rows
    a random permutation of the RNA rows; otherwise the cells (and their numbers) differ.
    ``labels`` is ``"both"``, ``"rna"`` (ATAC unlabelled) or ``None``; the label column is
    ``"cell_type"``.
    ``layer`` puts the counts in that layer and standardised noise in ``X``.
    """
    rng = np.random.default_rng(seed)
    if paired:
        n_atac = n_rna
    centres = rng.normal(scale=3.0, size=(n_labels, 3))
    rna_codes = np.arange(n_rna) % n_labels
    rna_signal = centres[rna_codes] + rng.normal(size=(n_rna, 3))
    if paired:
        order = rng.permutation(n_rna)
        atac_codes, atac_signal = rna_codes[order], rna_signal[order]
        atac_names = [f"cell_{i}" for i in order]
        rna_names = [f"cell_{i}" for i in range(n_rna)]
    else:
        atac_codes = rng.permutation(np.arange(n_atac) % n_labels)
        atac_signal = centres[atac_codes] + rng.normal(size=(n_atac, 3))
        rna_names = [f"rna_{i}" for i in range(n_rna)]
        atac_names = [f"atac_{i}" for i in range(n_atac)]
    rna_x = _counts(rng, rna_signal, n_genes)
    atac_x = (_counts(rng, atac_signal, n_peaks) > 0).astype(np.float32)

    def _adata(x: np.ndarray, names: list[str], prefix: str, codes: np.ndarray, labelled: bool):
        obs = pd.DataFrame(index=pd.Index(names))
        if labelled:
            obs["cell_type"] = pd.Categorical(
                np.asarray(LABELS[:n_labels])[codes], categories=list(LABELS[:n_labels])
            )
        var = pd.DataFrame(index=[f"{prefix}_{j}" for j in range(x.shape[1])])
        if layer is None:
            return ad.AnnData(X=_as_format(x, fmt), obs=obs, var=var)
        noise = rng.normal(size=x.shape).astype(np.float32)
        adata = ad.AnnData(X=noise, obs=obs, var=var)
        adata.layers[layer] = _as_format(x, fmt)
        return adata

    rna = _adata(rna_x, rna_names, "gene", rna_codes, labels in ("both", "rna"))
    atac = _adata(atac_x, atac_names, "peak", atac_codes, labels == "both")
    with warnings.catch_warnings():
        # mudata announces a change of its update() defaults; irrelevant to these objects
        warnings.simplefilter("ignore", FutureWarning)
        return md.MuData({"rna": rna, "atac": atac})
