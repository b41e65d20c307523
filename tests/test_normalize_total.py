"""``input_transform="normalize_log1p"``: each cell scaled to the median total, then log1p."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse

import conaae_scverse as ca
from conaae_scverse._data import feature_moments, median_cell_total, transformed_rows
from conaae_scverse._module import ConAAEModule
from conaae_scverse._projection import fit_projection

TOTAL = 250.0


def _counts(n_obs: int = 60, n_vars: int = 30, seed: int = 0) -> sparse.csr_matrix:
    rng = np.random.default_rng(seed)
    depth = rng.gamma(2.0, 1.0, size=(n_obs, 1))  # cells of very different depths
    rates = depth * rng.gamma(1.0, 1.0, size=(n_obs, 3)) @ rng.gamma(1.0, 0.5, size=(3, n_vars))
    counts = rng.poisson(rates).astype(np.float32)
    counts[0] = 0  # an empty cell
    return sparse.csr_matrix(counts)


def test_transformed_rows_scale_each_cell_to_the_total_then_log1p():
    counts = _counts()
    dense = transformed_rows(counts.toarray(), log1p=True, cell_total=TOTAL)
    from_sparse = transformed_rows(counts, log1p=True, cell_total=TOTAL)
    assert sparse.issparse(from_sparse)
    np.testing.assert_allclose(from_sparse.toarray(), dense)
    totals = np.expm1(dense).sum(axis=1)
    empty = np.asarray(counts.sum(axis=1)).ravel() == 0
    assert empty[0]
    np.testing.assert_allclose(totals[~empty], TOTAL, rtol=1e-9)
    assert (totals[empty] == 0).all()  # an empty cell stays empty
    # The input is not changed in place.
    np.testing.assert_array_equal(counts.toarray(), _counts().toarray())
    # Without the scaling, the same rows are plain log1p.
    np.testing.assert_allclose(
        transformed_rows(counts, log1p=True).toarray(), np.log1p(counts.toarray())
    )


def test_projection_of_scaled_counts_is_the_same_from_sparse_and_dense():
    counts = _counts()
    mean, std = feature_moments(counts, log1p=True, cell_total=TOTAL)
    expected = transformed_rows(counts.toarray(), log1p=True, cell_total=TOTAL)
    np.testing.assert_allclose(mean, expected.mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(std, expected.std(axis=0), atol=1e-8)
    std = np.where(std > 1e-8, std, 1.0)
    kwargs = {"log1p": True, "cell_total": TOTAL, "n_components": 4}
    from_sparse = fit_projection(counts, mean, std, **kwargs)
    from_dense = fit_projection(counts.toarray(), mean, std, **kwargs)
    np.testing.assert_allclose(from_sparse.components, from_dense.components, atol=1e-4)
    unscaled = fit_projection(counts, mean, std, log1p=True, n_components=4)
    assert not np.allclose(np.abs(unscaled.components), np.abs(from_sparse.components), atol=1e-2)


def test_module_reads_dense_and_sparse_batches_alike():
    torch.manual_seed(0)
    counts = _counts(n_obs=12, n_vars=30)
    module = ConAAEModule(
        30, 30, hidden_rna=[8], hidden_atac=[8], n_latent=4, cell_total_atac=TOTAL
    )
    module.eval()
    mean, std = feature_moments(counts, log1p=True, cell_total=TOTAL)
    module.set_feature_moments("atac", torch.tensor(mean).float(), torch.tensor(std).float())
    dense = torch.as_tensor(counts.toarray())
    expected = (
        torch.as_tensor(transformed_rows(counts, log1p=True, cell_total=TOTAL).toarray())
        - torch.tensor(mean)
    ) / torch.tensor(np.where(std > 1e-8, std, 1.0))
    standardized = module.standardize(dense, "atac")
    torch.testing.assert_close(standardized, expected.float().clamp(-10, 10))
    # Twice the counts, the same input: depth no longer moves a cell.
    torch.testing.assert_close(module.standardize(2 * dense, "atac"), standardized)
    csr = torch.sparse_csr_tensor(
        torch.as_tensor(counts.indptr, dtype=torch.int64),
        torch.as_tensor(counts.indices, dtype=torch.int64),
        torch.as_tensor(counts.data),
        size=counts.shape,
    )
    correction, zero = module._sparse_correction(csr, "atac")
    torch.testing.assert_close(correction.to_dense() + zero, standardized)


@pytest.mark.parametrize("n_input_components", [0, 8])
@pytest.mark.parametrize("fmt", ["csr", "dense"])
def test_a_cell_with_twice_the_counts_lands_in_the_same_place(
    make_mudata, fmt, n_input_components
):
    mdata = make_mudata(fmt=fmt, n_peaks=30)
    ca.ConAAE.setup_mudata(mdata, labels_key="cell_type")
    kwargs = {"n_latent": 4, "n_hidden": [8], "n_input_components": n_input_components}
    model = ca.ConAAE(mdata, input_transform={"atac": "normalize_log1p"}, **kwargs)
    # Scaled to the median total of the training cells, as `sc.pp.normalize_total` does.
    atac = mdata.mod["atac"].X
    totals = np.asarray(atac.sum(axis=1)).ravel()
    assert model.cell_total_ == {"rna": 0.0, "atac": float(np.median(totals[totals > 0]))}
    assert model.cell_total_["atac"] == median_cell_total(atac)
    model.train(max_epochs=2, batch_size=16, enable_progress_bar=False)
    deeper = mdata.copy()
    deeper.mod["atac"].X = deeper.mod["atac"].X * 2
    latent = model.get_latent_representation(modality="atac")
    np.testing.assert_allclose(
        model.get_latent_representation(deeper, modality="atac"), latent, atol=1e-4
    )
    # Without the scaling the deeper cells move.
    plain = ca.ConAAE(mdata, input_transform="log1p", **kwargs)
    plain.train(max_epochs=2, batch_size=16, enable_progress_bar=False)
    assert not np.allclose(
        plain.get_latent_representation(deeper, modality="atac"),
        plain.get_latent_representation(modality="atac"),
        atol=1e-2,
    )


def test_scaling_is_saved_and_older_models_load_without_it(make_mudata, tmp_path):
    mdata = make_mudata()
    ca.ConAAE.setup_mudata(mdata, labels_key="cell_type")
    model = ca.ConAAE(mdata, n_latent=4, n_hidden=[8], input_transform="normalize_log1p")
    assert all(total > 0 for total in model.cell_total_.values())
    model.train(max_epochs=1, batch_size=16, enable_progress_bar=False)
    latent = model.get_latent_representation(modality="rna")
    model.save(str(tmp_path / "model"))
    loaded = ca.ConAAE.load(str(tmp_path / "model"), mdata)
    assert loaded.cell_total_ == model.cell_total_
    np.testing.assert_allclose(loaded.get_latent_representation(modality="rna"), latent, atol=1e-5)
    path = tmp_path / "model" / "settings.json"
    settings = json.loads(path.read_text())
    del settings["cell_total"]  # as written before the scaling existed
    path.write_text(json.dumps(settings))
    assert ca.ConAAE.load(str(tmp_path / "model"), mdata).cell_total_ == {"rna": 0, "atac": 0}
    settings["cell_total"] = {"rna": -1.0, "atac": 0.0}
    path.write_text(json.dumps(settings))
    with pytest.raises(ca.ModelFileError, match="'cell_total' must map"):
        ca.ConAAE.load(str(tmp_path / "model"), mdata)


def test_negative_values_are_refused(make_mudata):
    mdata = make_mudata()
    mdata.mod["rna"].X = mdata.mod["rna"].X.toarray() - 1.0
    ca.ConAAE.setup_mudata(mdata, labels_key="cell_type")
    with pytest.raises(ValueError, match="input_transform='normalize_log1p' expects counts"):
        ca.ConAAE(mdata, input_transform={"rna": "normalize_log1p"})


def test_median_cell_total_reads_dense_sparse_and_empty_data():
    counts = _counts()
    totals = np.asarray(counts.sum(axis=1)).ravel()
    expected = float(np.median(totals[totals > 0]))
    assert median_cell_total(counts) == expected
    assert median_cell_total(counts.toarray()) == expected
    assert median_cell_total(sparse.csr_matrix((3, 4))) == 1.0


def test_a_query_is_scaled_to_the_reference_total(make_mudata):
    def with_samples(mdata, names):
        adata = mdata.mod["atac"]
        adata.obs["sample"] = pd.Categorical(np.resize(np.asarray(names), adata.n_obs))
        return mdata

    reference_mdata = with_samples(make_mudata(seed=1), ["a1", "a2"])
    ca.ConAAE.setup_mudata(reference_mdata, labels_key="cell_type", batch_key="sample")
    reference = ca.ConAAE(
        reference_mdata, n_latent=4, n_hidden=[8], input_transform="normalize_log1p"
    )
    reference.train(max_epochs=1, batch_size=16, enable_progress_bar=False)
    query_mdata = with_samples(make_mudata(seed=2), ["a3"])
    query_mdata.mod["atac"].X = query_mdata.mod["atac"].X * 3  # a deeper experiment
    query = ca.ConAAE.load_query_data(query_mdata, reference)
    assert query.cell_total_ == reference.cell_total_


def test_the_model_reads_what_scanpy_normalize_total_and_log1p_give(make_mudata):
    import anndata as ad
    import scanpy as sc

    mdata = make_mudata(n_genes=30)
    ca.ConAAE.setup_mudata(mdata, labels_key="cell_type")
    model = ca.ConAAE(mdata, n_latent=4, n_hidden=[8], input_transform="normalize_log1p")
    counts = mdata.mod["rna"].X
    reference = ad.AnnData(counts.copy())
    sc.pp.normalize_total(reference)  # the median total by default
    sc.pp.log1p(reference)
    expected = reference.X.toarray()
    std = expected.std(axis=0)
    expected = (expected - expected.mean(axis=0)) / np.where(std > 1e-8, std, 1.0)
    with torch.no_grad():
        standardized = model.module.standardize(torch.as_tensor(counts.toarray()), "rna")
    np.testing.assert_allclose(standardized.numpy(), np.clip(expected, -10, 10), atol=1e-4)
