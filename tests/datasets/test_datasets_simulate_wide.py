"""The wide count simulation: shapes, sparsity, ground truth, seeding, argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from conaae_scverse.datasets import simulate_wide


@pytest.fixture(scope="module")
def wide():
    return simulate_wide(
        600, n_genes=800, n_peaks=3000, n_types=4, rna_depth=400, atac_depth=300, random_state=3
    )


def test_shapes_counts_and_sparsity(wide):
    rna, atac = wide["rna"], wide["atac"]
    assert rna.shape == (600, 800) and atac.shape == (600, 3000)
    for adata, depth in ((rna, 400), (atac, 300)):
        assert sparse.isspmatrix_csr(adata.X) and adata.X.dtype == np.float32
        values = adata.X.data
        assert np.all(values >= 1) and np.all(values == np.round(values))
        # Depths are log-normal around the median asked for.
        totals = np.asarray(adata.X.sum(axis=1)).ravel()
        assert 0.8 * depth < np.median(totals) < 1.25 * depth
    assert atac.X.nnz / np.prod(atac.shape) < 0.15


def test_ground_truth_pairs_labels_and_links(wide):
    rna, atac = wide["rna"], wide["atac"]
    partner = rna.obs["true_partner"].to_numpy()
    assert sorted(partner) == sorted(atac.obs_names)
    # Pairs share the type; row order does not pair them.
    types = atac.obs["cell_type"].astype(str)
    assert np.array_equal(types.loc[partner].to_numpy(), rna.obs["cell_type"].astype(str))
    assert not np.array_equal(partner, atac.obs_names.to_numpy())
    assert atac.obs.loc[partner, "true_partner"].tolist() == rna.obs_names.tolist()
    assert set(atac.var["gene"]) <= set(rna.var_names)
    assert rna.obs["batch"].astype(str).equals(rna.obs["cell_type"].astype(str))


def test_peaks_lie_near_their_genes_on_a_synthetic_genome(wide):
    import conaae_scverse as ca

    rna, atac = wide["rna"], wide["atac"]
    genes = rna.var
    assert list(genes["gene_name"]) == list(rna.var_names)
    assert set(genes["strand"]) == {"+", "-"}
    for _, chrom in genes.groupby("chrom"):  # bodies do not overlap
        assert np.all(chrom["start"].to_numpy()[1:] >= chrom["end"].to_numpy()[:-1])
    assert np.all(atac.var["end"] - atac.var["start"] == 500)
    same_chrom = genes.loc[atac.var["gene"], "chrom"].to_numpy() == atac.var["chrom"].to_numpy()
    assert same_chrom.all()
    links = ca.pp.link_peaks_to_genes(atac, genes, genes=rna.var_names)
    matrix = links.X.tocsr()
    truth = rna.var_names.get_indexer(atac.var["gene"])
    linked = np.diff(matrix.indptr) > 0
    right = np.array(
        [truth[i] in matrix.indices[matrix.indptr[i] : matrix.indptr[i + 1]] for i in range(3000)]
    )
    # promoter and body peaks (70 %) link to their gene; distal ones mostly to none
    assert 0.6 < right.mean() < 0.8
    assert (linked & ~right).mean() < 0.1


def test_coordinates_do_not_change_the_counts(monkeypatch):
    from conaae_scverse.datasets import _simulate_wide

    one = simulate_wide(50, n_genes=40, n_peaks=80, random_state=7)
    draw = _simulate_wide._synthetic_genome
    # another genome (its stream seeded otherwise): other coordinates, the same counts
    monkeypatch.setattr(
        _simulate_wide, "_synthetic_genome", lambda genes, n, seed: draw(genes, n, seed + 1)
    )
    other = simulate_wide(50, n_genes=40, n_peaks=80, random_state=7)
    assert not np.array_equal(one["atac"].var["start"], other["atac"].var["start"])
    for mod in ("rna", "atac"):
        assert (one[mod].X != other[mod].X).nnz == 0


def test_types_are_told_apart_by_each_modality(wide):
    """Cells of one type are closer in expression than cells of different types."""
    for adata in (wide["rna"], wide["atac"]):
        x = adata.X.toarray()
        x = np.log1p(x / x.sum(axis=1, keepdims=True) * 1e4)
        labels = adata.obs["cell_type"].to_numpy()
        centroids = {t: x[labels == t].mean(axis=0) for t in np.unique(labels)}
        names = list(centroids)
        nearest = np.array(
            [names[np.argmin([np.linalg.norm(row - centroids[t]) for t in names])] for row in x]
        )
        assert np.mean(nearest == labels) > 0.9


def test_seeded():
    first = simulate_wide(50, n_genes=40, n_peaks=80, random_state=7)
    again = simulate_wide(50, n_genes=40, n_peaks=80, random_state=7)
    other = simulate_wide(50, n_genes=40, n_peaks=80, random_state=8)
    assert (first["atac"].X != again["atac"].X).nnz == 0
    assert (first["atac"].X != other["atac"].X).nnz > 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_cells": 5}, "n_cells must be an integer >= 10"),
        ({"n_types": 1}, "n_types must be an integer >= 2"),
        ({"n_peaks": 2.5}, "n_peaks must be an integer"),
        ({"atac_depth": 0}, "atac_depth must be a positive number"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_wide(**{"n_cells": 50, "n_genes": 40, "n_peaks": 80, **kwargs})
