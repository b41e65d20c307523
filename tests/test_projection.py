"""The principal-axis input projection: fit, sparse/dense agreement, model, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import sparse

import conaae_scverse as ca
from conaae_scverse._data import feature_moments
from conaae_scverse._projection import fit_projection


def _counts(n_obs: int = 120, n_vars: int = 60, seed: int = 0) -> sparse.csr_matrix:
    rng = np.random.default_rng(seed)
    rates = rng.gamma(1.0, 1.0, size=(n_obs, 3)) @ rng.gamma(1.0, 0.5, size=(3, n_vars))
    return sparse.csr_matrix(rng.poisson(rates).astype(np.float32))


def _exact_pca(dense: np.ndarray, mean: np.ndarray, std: np.ndarray):
    z = np.clip((np.log1p(dense) - mean) / std, -10, 10)
    z -= z.mean(axis=0)
    _, singular, vt = np.linalg.svd(z, full_matrices=False)
    return vt, singular**2 / (z**2).sum()


def test_fit_matches_exact_pca_sparse_and_dense():
    counts = _counts()
    mean, std = feature_moments(counts, log1p=True)
    std = np.where(std > 1e-8, std, 1.0)
    fitted = fit_projection(counts, mean, std, log1p=True, n_components=5)
    dense = fit_projection(counts.toarray(), mean, std, log1p=True, n_components=5)
    vt, ratio = _exact_pca(counts.toarray(), mean, std)
    # The data have 3 factors: their axes are found exactly, the noise axes approximately
    # (a randomised SVD), and never with more variance than the exact ones.
    np.testing.assert_allclose(fitted.explained_variance_ratio[:3], ratio[:3], rtol=1e-4)
    np.testing.assert_allclose(np.abs(fitted.components[:, :3].T @ vt[:3].T), np.eye(3), atol=1e-3)
    assert np.all(fitted.explained_variance_ratio <= ratio[:5] * (1 + 1e-4))
    np.testing.assert_allclose(fitted.explained_variance_ratio, ratio[:5], rtol=0.02)
    # Same axes from both storage formats (the sign rule makes them equal).
    np.testing.assert_allclose(fitted.components, dense.components, atol=1e-4)


def test_fit_on_a_subsample_is_seeded():
    counts = _counts(n_obs=300)
    mean, std = feature_moments(counts, log1p=True)
    std = np.where(std > 1e-8, std, 1.0)
    first = fit_projection(counts, mean, std, log1p=True, n_components=4, max_cells=100, seed=1)
    again = fit_projection(counts, mean, std, log1p=True, n_components=4, max_cells=100, seed=1)
    other = fit_projection(counts, mean, std, log1p=True, n_components=4, max_cells=100, seed=2)
    np.testing.assert_array_equal(first.components, again.components)
    assert not np.allclose(first.components, other.components)


def _model(mdata, n_input_components=8, **kwargs):
    ca.ConAAE.setup_mudata(mdata, labels_key="cell_type")
    return ca.ConAAE(mdata, n_input_components=n_input_components, n_latent=4, **kwargs)


def test_only_modalities_wider_than_the_axes_are_projected(make_mudata):
    model = _model(make_mudata(n_genes=24, n_peaks=18), n_input_components=20)
    assert model.n_components_ == {"rna": 20, "atac": 0}
    assert model.module.encoders["rna"][0].in_features == 20
    assert model.module.decoders["rna"][-1].out_features == 20
    assert model.module.encoders["atac"][0].in_features == 18
    off = _model(make_mudata(), n_input_components=0)
    assert off.n_components_ == {"rna": 0, "atac": 0}


def test_auto_projects_only_modalities_wider_than_5000_features(make_mudata):
    mdata = make_mudata(n_rna=120, n_genes=5001, n_peaks=5000)
    model = _model(mdata, n_input_components="auto")
    assert model.n_components_ == {"rna": 100, "atac": 0}
    assert model.module.encoders["rna"][0].in_features == 100
    # Never more axes than the cells span.
    assert (
        _model(make_mudata(n_rna=40, n_genes=60), n_input_components=30).n_components_["rna"] == 30
    )
    assert (
        _model(make_mudata(n_rna=20, n_genes=60), n_input_components=22).n_components_["rna"] == 19
    )
    assert model.module.encoders["atac"][0].in_features == 5000


@pytest.mark.parametrize("fmt", ["csr", "dense"])
def test_training_scores_equal_projection_of_raw_rows(make_mudata, fmt):
    mdata = make_mudata(fmt=fmt)
    model = _model(mdata)
    scores = model._network_inputs()["rna"].matrix
    raw = model.modalities_["rna"].matrix
    raw = raw.toarray() if sparse.issparse(raw) else raw
    with torch.no_grad():
        expected = model.module.represent(torch.as_tensor(raw, dtype=torch.float32), "rna")
    np.testing.assert_allclose(scores, expected.numpy(), atol=1e-4)
    # The fitted cells' scores are centred, with mean variance 1 over the axes.
    np.testing.assert_allclose(scores.mean(axis=0), 0, atol=1e-4)
    assert scores.var(axis=0).mean() == pytest.approx(1.0, rel=1e-3)


def test_projected_model_trains_encodes_and_round_trips(make_mudata, tmp_path):
    mdata = make_mudata()
    model = _model(mdata)
    model.train(max_epochs=3, batch_size=16, enable_progress_bar=False)
    latent = model.get_latent_representation(modality="rna")
    # Encoding raw rows of another MuData with the same features gives the same embedding.
    np.testing.assert_allclose(
        model.get_latent_representation(mdata.copy(), modality="rna"), latent, atol=1e-5
    )
    model.save(str(tmp_path / "model"))
    settings = json.loads((tmp_path / "model" / "settings.json").read_text())
    assert settings["n_components"] == {"rna": 8, "atac": 8}
    loaded = ca.ConAAE.load(str(tmp_path / "model"), mdata)
    assert loaded.n_components_ == model.n_components_
    np.testing.assert_allclose(loaded.get_latent_representation(modality="rna"), latent, atol=1e-5)


@pytest.mark.parametrize("fmt", ["csr", "dense"])
def test_depth_invariance_thins_projected_counts_once_and_trains(make_mudata, fmt):
    model = _model(make_mudata(fmt=fmt), loss_weights={"depth_invariance": 10.0})
    thinned = model._thinned_scores()
    assert set(thinned) == {"rna", "atac"}
    full = model._network_inputs()["atac"].matrix
    assert thinned["atac"].shape == full.shape
    assert thinned is model._thinned_scores()  # computed once per model
    # Fewer counts move the scores.
    assert not np.allclose(thinned["atac"].numpy(), full, atol=1e-3)
    model.train(max_epochs=2, batch_size=16, enable_progress_bar=False)
    assert (model.history["depth_invariance_train"].to_numpy() > 0).all()
    off = _model(make_mudata(fmt=fmt))
    assert off._thinned_scores() == {}


def test_models_saved_without_projection_settings_load_unprojected(make_mudata, tmp_path):
    mdata = make_mudata()
    model = _model(mdata, n_input_components=0)
    model.save(str(tmp_path / "model"))
    path = tmp_path / "model" / "settings.json"
    settings = json.loads(path.read_text())
    del settings["n_components"]  # as written before the projection existed
    del settings["init_params"]["n_input_components"]
    path.write_text(json.dumps(settings))
    loaded = ca.ConAAE.load(str(tmp_path / "model"), mdata)
    assert loaded.n_components_ == {"rna": 0, "atac": 0}


def test_bad_projection_settings_are_refused(make_mudata, tmp_path):
    mdata = make_mudata()
    with pytest.raises(ValueError, match="n_input_components must be 'auto' or a non-negative"):
        _model(mdata, n_input_components=-1)
    model = _model(mdata)
    model.save(str(tmp_path / "model"))
    path = tmp_path / "model" / "settings.json"
    settings = json.loads(path.read_text())
    settings["n_components"] = {"rna": 10_000, "atac": 8}
    path.write_text(json.dumps(settings))
    with pytest.raises(ca.ModelFileError, match="n_components"):
        ca.ConAAE.load(str(tmp_path / "model"), mdata)
