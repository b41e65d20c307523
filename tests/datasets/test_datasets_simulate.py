from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse as sp

from conaae_scverse import TRUE_PARTNER_KEY
from conaae_scverse.datasets import simulate


def _dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def _atac_by_rna(mdata) -> np.ndarray:
    """ATAC matrix reordered so that row i is the claimed partner of RNA cell i."""
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    return _dense(atac[rna.obs[TRUE_PARTNER_KEY].to_numpy()].X)


@pytest.fixture(scope="module")
def small():
    return simulate(300, n_rna_features=200, n_atac_features=100, random_state=3)


def test_shapes_types_and_names():
    mdata = simulate(1200)
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    assert set(mdata.mod) == {"rna", "atac"}
    assert rna.shape == (1200, 1000)
    assert atac.shape == (1200, 500)
    for adata in (rna, atac):
        assert sp.isspmatrix_csr(adata.X)
        assert adata.X.dtype == np.float32
        assert _dense(adata.X).min() >= 0
    assert list(rna.obs_names[:3]) == ["rna_0", "rna_1", "rna_2"]
    assert list(atac.obs_names[:3]) == ["atac_0", "atac_1", "atac_2"]
    assert rna.var_names[0] == "gene_0"
    assert atac.var_names[-1] == "peak_499"
    dataset = mdata.uns["dataset"]
    assert dataset["name"] == "simulated"
    assert all(isinstance(v, str) for v in dataset.values())
    assert {"name", "citation", "url"} <= set(dataset)


def test_dense_option():
    mdata = simulate(50, n_rna_features=20, n_atac_features=10, sparse=False)
    assert isinstance(mdata.mod["rna"].X, np.ndarray)
    assert mdata.mod["atac"].X.dtype == np.float32


def test_deterministic_for_a_seed(small):
    again = simulate(300, n_rna_features=200, n_atac_features=100, random_state=3)
    other = simulate(300, n_rna_features=200, n_atac_features=100, random_state=4)
    for key in ("rna", "atac"):
        np.testing.assert_array_equal(_dense(small.mod[key].X), _dense(again.mod[key].X))
        pd.testing.assert_frame_equal(small.mod[key].obs, again.mod[key].obs)
        assert not np.array_equal(_dense(small.mod[key].X), _dense(other.mod[key].X))


def test_dropout_fraction():
    rna = simulate(1200, dropout=0.4).mod["rna"]
    zero_fraction = 1 - rna.X.nnz / np.prod(rna.shape)
    assert zero_fraction == pytest.approx(0.4, abs=0.01)
    no_dropout = simulate(200, dropout=0.0).mod["rna"]
    assert no_dropout.X.nnz == np.prod(no_dropout.shape)


def test_labels(small):
    rna, atac = small.mod["rna"], small.mod["atac"]
    for adata in (rna, atac):
        labels = adata.obs["batch"]
        assert isinstance(labels.dtype, pd.CategoricalDtype)
        assert list(labels.cat.categories) == ["batch_0", "batch_1", "batch_2"]
    assert rna.obs["batch"].value_counts().to_dict() == {
        "batch_0": 100,
        "batch_1": 100,
        "batch_2": 100,
    }
    # correctly paired cells carry the same label in both modalities
    partner_labels = atac.obs["batch"].loc[rna.obs[TRUE_PARTNER_KEY]].to_numpy()
    paired = ~rna.obs["mismatched"].to_numpy()
    np.testing.assert_array_equal(rna.obs["batch"].to_numpy()[paired], partner_labels[paired])


def test_labels_separate_in_both_modalities(small):
    # each batch is a well separated cluster: nearest centroid recovers the labels
    for adata in small.mod.values():
        x = _dense(adata.X)
        labels = adata.obs["batch"].to_numpy()
        names = np.unique(labels)
        centroids = np.stack([x[labels == name].mean(axis=0) for name in names])
        nearest = names[((x[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)]
        assert (nearest == labels).mean() > 0.95


def test_true_partner_is_a_bijection(small):
    rna, atac = small.mod["rna"], small.mod["atac"]
    rna_partner = rna.obs[TRUE_PARTNER_KEY]
    atac_partner = atac.obs[TRUE_PARTNER_KEY]
    assert set(rna_partner) == set(atac.obs_names)
    assert set(atac_partner) == set(rna.obs_names)
    np.testing.assert_array_equal(
        atac_partner.loc[rna_partner].to_numpy(), rna.obs_names.to_numpy()
    )


def test_row_order_carries_no_pairing(small):
    rna, atac = small.mod["rna"], small.mod["atac"]
    partner_index = atac.obs_names.get_indexer(rna.obs[TRUE_PARTNER_KEY])
    # the permutation is far from the identity
    assert (partner_index == np.arange(rna.n_obs)).mean() < 0.05
    assert not np.array_equal(rna.obs["batch"].to_numpy(), atac.obs["batch"].to_numpy())


def test_mismatch_swaps_profiles_of_the_flagged_cells():
    kwargs = {"n_rna_features": 100, "n_atac_features": 80, "random_state": 7}
    clean = simulate(1000, mismatch_fraction=0.0, **kwargs)
    noisy = simulate(1000, mismatch_fraction=0.1, **kwargs)
    assert not clean.mod["rna"].obs["mismatched"].any()
    np.testing.assert_array_equal(_dense(clean.mod["rna"].X), _dense(noisy.mod["rna"].X))

    # identify every ATAC profile by the cell it was generated for
    clean_atac = _atac_by_rna(clean)
    owner = {row.tobytes(): i for i, row in enumerate(clean_atac)}
    assert len(owner) == clean_atac.shape[0]
    noisy_atac = _atac_by_rna(noisy)
    owners = np.array([owner[row.tobytes()] for row in noisy_atac])
    swapped = owners != np.arange(len(owners))

    assert swapped.sum() == 100
    np.testing.assert_array_equal(swapped, noisy.mod["rna"].obs["mismatched"].to_numpy())
    # the ATAC side flags the same cells
    atac_obs = noisy.mod["atac"].obs
    assert atac_obs["mismatched"].sum() == 100
    flagged = atac_obs.loc[atac_obs["mismatched"], TRUE_PARTNER_KEY]
    assert set(flagged) == set(noisy.mod["rna"].obs_names[swapped])


def test_small_positive_mismatch_swaps_at_least_two():
    obs = (
        simulate(100, n_rna_features=10, n_atac_features=10, mismatch_fraction=0.001)
        .mod["rna"]
        .obs
    )
    assert obs["mismatched"].sum() == 2


@pytest.mark.parametrize("snr", [5, 25])
def test_snr_adds_noise_of_the_requested_variance(snr):
    kwargs = {
        "n_rna_features": 300,
        "n_atac_features": 50,
        "dropout": 0.0,
        "mismatch_fraction": 0.0,
        "random_state": 11,
    }
    clean = _dense(simulate(600, **kwargs).mod["rna"].X).astype(np.float64)
    noisy = _dense(simulate(600, snr=snr, **kwargs).mod["rna"].X).astype(np.float64)
    assert not np.allclose(clean, noisy)
    ratio = clean.var(axis=0) / (noisy - clean).var(axis=0)
    # clipping at zero removes a little noise, so the measured SNR is slightly higher
    assert snr * 0.8 < np.median(ratio) < snr * 1.6
    assert noisy.min() >= 0


def test_snr_changes_atac_too():
    kwargs = {"n_rna_features": 50, "n_atac_features": 40, "mismatch_fraction": 0.0}
    clean = simulate(200, **kwargs)
    noisy = simulate(200, snr=10, **kwargs)
    assert not np.allclose(_atac_by_rna(clean), _atac_by_rna(noisy))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_cells": 5}, "at least 10"),
        ({"dropout": 1.0}, r"`dropout` .* \[0, 1\)"),
        ({"mismatch_fraction": 1.5}, "`mismatch_fraction`"),
        ({"snr": 0}, "`snr` must be a positive number"),
        ({"n_batches": 0}, "`n_batches` must be between 1"),
        ({"n_rna_features": 0}, "must be positive"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate(**kwargs)


def test_largest_paper_size():
    # Speed is measured by benchmarks, not asserted here; this checks the paper's largest size.
    mdata = simulate(6000)
    assert mdata.mod["rna"].shape == (6000, 1000)
