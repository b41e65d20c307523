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
