"""Training and writing results from a backed (on-disk) .h5mu."""

from __future__ import annotations

import warnings

import mudata as md
import numpy as np
import pytest
from scipy import sparse

import conaae_scverse as ca


def _write(mdata, path) -> md.MuData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mdata.write_h5mu(path)
        return md.read_h5mu(path, backed=True)


def _fit(mdata, **kwargs) -> ca.ConAAE:
    ca.ConAAE.setup_mudata(mdata, labels_key="cell_type")
    model = ca.ConAAE(mdata, n_latent=4, seed=1, **kwargs)
    model.train(max_epochs=2, batch_size=16, enable_progress_bar=False)
    return model


@pytest.mark.parametrize("n_input_components", [8, 0])
def test_backed_training_equals_in_memory(make_mudata, tmp_path, n_input_components):
    """Projected modalities train from disk; unprojected ones are read in. Same result."""
    in_memory = make_mudata()
    backed = _write(in_memory, tmp_path / "data.h5mu")
    assert backed["rna"].isbacked
    expected = _fit(in_memory, n_input_components=n_input_components)
    model = _fit(backed, n_input_components=n_input_components)
    assert model.n_components_ == expected.n_components_
    for mod in ("rna", "atac"):
        np.testing.assert_allclose(
            model.get_latent_representation(modality=mod),
            expected.get_latent_representation(modality=mod),
            atol=1e-5,
        )
    model.write_results()
    assert backed["atac"].obsm["X_conaae"].shape == (backed["atac"].n_obs, 4)
    assert backed["rna"].obs["conaae_match"].isin(backed["atac"].obs_names).all()
    # The outputs are saved by writing the MuData to a new file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backed.write_h5mu(tmp_path / "out.h5mu")
        saved = md.read_h5mu(tmp_path / "out.h5mu")
    np.testing.assert_array_equal(saved["rna"].obsm["X_conaae"], backed["rna"].obsm["X_conaae"])
    assert (saved["atac"].X != in_memory["atac"].X).nnz == 0


def test_backed_csc_and_dense_matrices_are_refused(make_mudata, tmp_path):
    mdata = make_mudata()
    mdata["atac"].X = sparse.csc_matrix(mdata["atac"].X)
    backed = _write(mdata, tmp_path / "csc.h5mu")
    with pytest.raises(TypeError, match="backed CSC matrix; minibatches read rows"):
        ca.ConAAE.setup_mudata(backed, labels_key="cell_type")
    mdata = make_mudata(fmt="dense")
    backed = _write(mdata, tmp_path / "dense.h5mu")
    with pytest.raises(TypeError, match="dense matrix on disk"):
        ca.ConAAE.setup_mudata(backed, labels_key="cell_type")


def test_backed_training_with_the_links_prior_defaults_equals_in_memory(tmp_path):
    """ATAC scaled per cell and thinned (the links prior's defaults) read from disk alike."""
    in_memory = ca.datasets.simulate_wide(200, n_genes=100, n_peaks=6000, random_state=0)
    atac = in_memory["atac"]
    atac.obs["cell_type"] = atac.obs["cell_type"].where(np.zeros(atac.n_obs, dtype=bool))
    links = ca.pp.link_peaks_to_genes(atac, in_memory["rna"].var, genes=in_memory["rna"].var_names)
    backed = _write(in_memory, tmp_path / "data.h5mu")
    models = []
    for mdata in (in_memory, backed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the ATAC modality has no labels
            ca.ConAAE.setup_mudata(mdata, labels_key="cell_type", gene_links=links)
        model = ca.ConAAE(mdata, n_latent=4, n_hidden=(16,), seed=1)
        model.train(max_epochs=2, batch_size=32, enable_progress_bar=False)
        models.append(model)
    expected, model = models
    assert model.n_components_["atac"] > 0  # projected: its thinned counts too, from disk
    assert model.cell_total_ == expected.cell_total_ and model.cell_total_["atac"] > 0
    assert model.module.weights.depth_invariance == 10
    for mod in ("rna", "atac"):
        np.testing.assert_allclose(
            model.get_latent_representation(modality=mod),
            expected.get_latent_representation(modality=mod),
            atol=1e-5,
        )
