"""Registration of the two modalities of a MuData."""

from __future__ import annotations

import mudata as md
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse

from conaae_scverse import ConAAE
from conaae_scverse import _data as data_module
from conaae_scverse._data import anchor_pairs, feature_moments


def _dense(matrix) -> np.ndarray:
    return matrix.toarray() if sparse.issparse(matrix) else np.asarray(matrix)


def _snapshot(mdata: md.MuData) -> dict:
    """Everything a registration could write into a MuData, copied."""
    snap = {
        "obs": mdata.obs.copy(),
        "obsm": sorted(mdata.obsm.keys()),
        "uns": sorted(mdata.uns.keys()),
        "mod": sorted(mdata.mod),
    }
    for name, adata in mdata.mod.items():
        snap[name] = {
            "obs": adata.obs.copy(),
            "var": adata.var.copy(),
            "obsm": sorted(adata.obsm.keys()),
            "varm": sorted(adata.varm.keys()),
            "obsp": sorted(adata.obsp.keys()),
            "uns": sorted(adata.uns.keys()),
            "layers": sorted(adata.layers.keys(), key=str),
            "X_type": type(adata.X),
            "X": _dense(adata.X).copy(),
        }
    return snap


def _assert_unchanged(mdata: md.MuData, snap: dict) -> None:
    pd.testing.assert_frame_equal(mdata.obs, snap["obs"])
    assert sorted(mdata.obsm.keys()) == snap["obsm"]
    assert sorted(mdata.uns.keys()) == snap["uns"]
    assert sorted(mdata.mod) == snap["mod"]
    for name, adata in mdata.mod.items():
        before = snap[name]
        pd.testing.assert_frame_equal(adata.obs, before["obs"])
        pd.testing.assert_frame_equal(adata.var, before["var"])
        assert sorted(adata.obsm.keys()) == before["obsm"]
        assert sorted(adata.varm.keys()) == before["varm"]
        assert sorted(adata.obsp.keys()) == before["obsp"]
        assert sorted(adata.uns.keys()) == before["uns"]
        assert sorted(adata.layers.keys(), key=str) == before["layers"]
        assert type(adata.X) is before["X_type"]
        np.testing.assert_array_equal(_dense(adata.X), before["X"])


# ---------------------------------------------------------------- paired / unpaired / formats
def test_paired_registration(paired_mdata):
    ConAAE.setup_mudata(paired_mdata, labels_key="cell_type")
    model = ConAAE(paired_mdata, n_latent=4, n_hidden=(8,))
    rna, atac = model.modalities_["rna"], model.modalities_["atac"]
    assert set(rna.obs_names) == set(atac.obs_names)
    # the order of each modality is kept: no reordering by the other modality's rows
    assert rna.obs_names.equals(paired_mdata.mod["rna"].obs_names)
    assert atac.obs_names.equals(paired_mdata.mod["atac"].obs_names)
    assert not rna.obs_names.equals(atac.obs_names)
    assert model.anchor_pairs_ is None


def test_unpaired_registration(unpaired_mdata):
    ConAAE.setup_mudata(unpaired_mdata, labels_key="cell_type")
    model = ConAAE(unpaired_mdata, n_latent=4, n_hidden=(8,))
    assert model.modalities_["rna"].n_obs == 40
    assert model.modalities_["atac"].n_obs == 36
    assert model.modalities_["rna"].n_vars == 24
    assert model.modalities_["atac"].n_vars == 18
    assert not set(model.modalities_["rna"].obs_names) & set(model.modalities_["atac"].obs_names)


@pytest.mark.parametrize("fmt", ["csr", "csc", "dense"])
def test_formats_share_data_without_densifying(make_mudata, fmt):
    mdata = make_mudata(fmt=fmt)
    original = mdata.mod["rna"].X
    ConAAE.setup_mudata(mdata)
    model = ConAAE(mdata, n_latent=4, n_hidden=(8,))
    internal = model.modalities_["rna"]
    stored = internal.manager.adata.X
    assert stored is internal.matrix
    if fmt == "dense":
        assert isinstance(stored, np.ndarray)
        assert np.shares_memory(stored, original)
    else:
        assert sparse.issparse(stored)
        assert stored.format == "csr"  # minibatches slice rows
        if fmt == "csr":
            assert np.shares_memory(stored.data, original.data)
    np.testing.assert_array_equal(_dense(stored), _dense(original))
    # the model sees the same values whatever the storage
    z = model.get_latent_representation()
    assert z.shape == (40, 4)
    assert np.isfinite(z).all()


def test_format_does_not_change_the_model(make_mudata):
    latents = []
    for fmt in ("csr", "csc", "dense"):
        mdata = make_mudata(fmt=fmt)
        ConAAE.setup_mudata(mdata)
        latents.append(ConAAE(mdata, n_latent=4, n_hidden=(8,)).get_latent_representation())
    np.testing.assert_allclose(latents[0], latents[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(latents[0], latents[2], rtol=1e-5, atol=1e-5)


def test_layer_is_used_instead_of_x(make_mudata):
    mdata = make_mudata(layer="counts")
    counts = mdata.mod["rna"].layers["counts"]
    ConAAE.setup_mudata(mdata, rna_layer="counts", atac_layer="counts")
    model = ConAAE(mdata, n_latent=4, n_hidden=(8,))
    assert model.modalities_["rna"].matrix is counts
    # X holds Gaussian noise (negative values); the counts in the layer are detected as counts
    assert model.log1p_ == {"rna": True, "atac": True}
    mean, _ = feature_moments(counts, log1p=True)
    np.testing.assert_allclose(model.module.rna_mean.numpy(), mean, rtol=1e-5)
    with pytest.raises(KeyError, match="Layer 'missing' is not in modality 'rna'"):
        ConAAE.setup_mudata(mdata, rna_layer="missing")


# ---------------------------------------------------------------- labels
def test_labels_in_one_modality_only(make_mudata):
    mdata = make_mudata(labels="rna")
    with pytest.warns(UserWarning, match="no labels in modality 'atac'.*gene_links="):
        ConAAE.setup_mudata(mdata, labels_key="cell_type")
    model = ConAAE(mdata, n_latent=4, n_hidden=(8,), label_prior="none")
    assert model.label_categories_ == ["alpha", "beta"]
    rna_codes = model.modalities_["rna"].labels
    expected = pd.Index(["alpha", "beta"]).get_indexer(mdata.mod["rna"].obs["cell_type"])
    np.testing.assert_array_equal(rna_codes, expected)
    assert (rna_codes >= 0).all()
    np.testing.assert_array_equal(model.modalities_["atac"].labels, -np.ones(36))


@pytest.mark.parametrize(
    ("labels", "anchor_key"), [("both", None), ("rna", "obs_names"), ("none", None)]
)
def test_no_swap_warning_when_both_sides_are_tied(make_mudata, recwarn, labels, anchor_key):
    mdata = make_mudata(labels=labels, paired=anchor_key is not None)
    ConAAE.setup_mudata(
        mdata, labels_key=None if labels == "none" else "cell_type", anchor_key=anchor_key
    )
    assert not [w for w in recwarn if "no labels in modality" in str(w.message)]


def test_nan_labels_are_unlabelled(make_mudata):
    mdata = make_mudata(labels="both")
    obs = mdata.mod["atac"].obs
    column = obs["cell_type"].astype(object)
    column.iloc[[0, 5, 7]] = np.nan
    obs["cell_type"] = column
    ConAAE.setup_mudata(mdata, labels_key="cell_type")
    model = ConAAE(mdata, n_latent=4, n_hidden=(8,))
    codes = model.modalities_["atac"].labels
    assert set(np.flatnonzero(codes == -1)) == {0, 5, 7}
    known = column.notna().to_numpy()
    names = np.asarray(model.label_categories_)[codes[known]]
    np.testing.assert_array_equal(names, column[known].to_numpy().astype(str))


def test_label_categories_are_the_union(make_mudata):
    mdata = make_mudata(labels="both")
    mdata.mod["rna"].obs["cell_type"] = pd.Categorical(
        np.where(np.arange(40) % 2, "alpha", "beta"), categories=["alpha", "beta"]
    )
    mdata.mod["atac"].obs["cell_type"] = np.where(np.arange(36) % 2, "beta", "gamma")
    ConAAE.setup_mudata(mdata, labels_key="cell_type")
    model = ConAAE(mdata, n_latent=4, n_hidden=(8,))
    assert model.label_categories_ == ["alpha", "beta", "gamma"]
    atac_codes = model.modalities_["atac"].labels
    assert set(atac_codes) == {1, 2}
    assert model.module.n_labels == 3


def test_unused_categories_are_dropped(make_mudata):
    mdata = make_mudata(labels="both")
    for adata in mdata.mod.values():
        adata.obs["cell_type"] = adata.obs["cell_type"].cat.add_categories(["never_seen"])
    ConAAE.setup_mudata(mdata, labels_key="cell_type")
    assert ConAAE(mdata, n_latent=4, n_hidden=(8,)).label_categories_ == ["alpha", "beta"]


def test_missing_labels_key(make_mudata):
    mdata = make_mudata()
    with pytest.raises(KeyError, match="labels_key 'nope' is in the obs of neither modality"):
        ConAAE.setup_mudata(mdata, labels_key="nope")


def test_all_nan_labels(make_mudata):
    mdata = make_mudata(labels=None)
    for adata in mdata.mod.values():
        adata.obs["cell_type"] = np.nan
    with pytest.raises(ValueError, match="NaN for every cell"):
        ConAAE.setup_mudata(mdata, labels_key="cell_type")


# ---------------------------------------------------------------- no writes into the MuData
@pytest.mark.parametrize("fmt", ["csr", "csc", "dense"])
def test_setup_and_model_do_not_modify_mudata(make_mudata, fmt):
    mdata = make_mudata(fmt=fmt, labels="rna", layer="counts")
    snap = _snapshot(mdata)
    ConAAE.setup_mudata(mdata, rna_layer="counts", atac_layer="counts", labels_key="cell_type")
    _assert_unchanged(mdata, snap)
    model = ConAAE(mdata, n_latent=4, n_hidden=(8,))
    _assert_unchanged(mdata, snap)
    model.get_latent_representation(modality="atac")
    model.predict(modality="atac")
    _assert_unchanged(mdata, snap)


def test_snapshot_detects_changes(make_mudata):
    # guard for the test above: the comparison notices a written key or a changed value
    mdata = make_mudata()
    snap = _snapshot(mdata)
    mdata.mod["rna"].obs["_scvi_labels"] = 0
    with pytest.raises(AssertionError, match="DataFrame"):
        _assert_unchanged(mdata, snap)
    mdata = make_mudata(fmt="dense")
    snap = _snapshot(mdata)
    mdata.mod["atac"].X[0, 0] += 1
    with pytest.raises(AssertionError, match="not equal"):
        _assert_unchanged(mdata, snap)


def test_model_needs_setup(make_mudata):
    mdata = make_mudata()
    with pytest.raises(ValueError, match="has not been set up"):
        ConAAE(mdata)


def test_setup_errors(make_mudata):
    mdata = make_mudata()
    with pytest.raises(KeyError, match="Modality 'gex'"):
        ConAAE.setup_mudata(mdata, rna_mod="gex")
    with pytest.raises(ValueError, match="must name two different modalities"):
        ConAAE.setup_mudata(mdata, rna_mod="rna", atac_mod="rna")
    with pytest.raises(TypeError, match=r"Expected a mudata\.MuData"):
        ConAAE.setup_mudata(mdata.mod["rna"])
    dense = make_mudata(fmt="dense")
    dense.mod["rna"].X[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        ConAAE.setup_mudata(dense)


# ---------------------------------------------------------------- feature moments
@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
@pytest.mark.parametrize("log1p", [True, False])
def test_feature_moments_match_numpy(monkeypatch, fmt, log1p):
    monkeypatch.setattr(data_module, "_ROW_CHUNK", 7)  # several chunks, the last one partial
    rng = np.random.default_rng(5)
    values = rng.poisson(2.0, size=(30, 6)).astype(np.float32)
    values[:, 4] = 3.0  # a constant feature
    matrix = {"dense": values, "csr": sparse.csr_matrix(values), "csc": sparse.csc_matrix(values)}
    mean, std = feature_moments(matrix[fmt], log1p=log1p)
    reference = np.log1p(values.astype(np.float64)) if log1p else values.astype(np.float64)
    np.testing.assert_allclose(mean, reference.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(std, reference.std(axis=0), rtol=1e-7, atol=1e-7)
    assert std[4] == pytest.approx(0.0, abs=1e-7)


def test_model_moments_are_feature_moments(make_mudata):
    mdata = make_mudata(fmt="csr")
    ConAAE.setup_mudata(mdata)
    model = ConAAE(mdata, n_latent=4, n_hidden=(8,), input_transform={"atac": "none"})
    assert model.log1p_ == {"rna": True, "atac": False}
    values = mdata.mod["rna"].X.toarray().astype(np.float64)
    np.testing.assert_allclose(
        model.module.rna_mean.numpy(), np.log1p(values).mean(axis=0), rtol=1e-5
    )
    atac = mdata.mod["atac"].X.toarray().astype(np.float64)
    std = atac.std(axis=0)
    std[std <= 1e-8] = 1.0
    np.testing.assert_allclose(model.module.atac_std.numpy(), std, rtol=1e-5)
    x = torch.as_tensor(mdata.mod["atac"].X[:3].toarray())
    expected = (atac[:3] - atac.mean(axis=0)) / std
    np.testing.assert_allclose(
        model.module.standardize(x, "atac").numpy(), expected, rtol=1e-4, atol=1e-5
    )


# ---------------------------------------------------------------- anchors
def test_anchor_pairs_by_obs_names(make_mudata):
    mdata = make_mudata(paired=True)
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    pairs = anchor_pairs(rna, atac, "obs_names", "rna", "atac")
    assert pairs.shape == (40, 2)
    np.testing.assert_array_equal(
        rna.obs_names[pairs[:, 0]].to_numpy(), atac.obs_names[pairs[:, 1]].to_numpy()
    )
    # the ATAC rows are shuffled, so the pairs are not the diagonal
    assert (pairs[:, 0] != pairs[:, 1]).any()


def test_anchor_pairs_by_obs_names_partial_overlap(make_mudata):
    mdata = make_mudata(paired=True)
    atac = mdata.mod["atac"][5:].copy()  # 5 ATAC cells are missing
    pairs = anchor_pairs(mdata.mod["rna"], atac, "obs_names", "rna", "atac")
    assert len(pairs) == 35
    np.testing.assert_array_equal(
        mdata.mod["rna"].obs_names[pairs[:, 0]].to_numpy(),
        atac.obs_names[pairs[:, 1]].to_numpy(),
    )


def test_anchor_pairs_by_column(make_mudata):
    mdata = make_mudata(paired=False)
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    partner = pd.Series(np.nan, index=rna.obs_names, dtype=object)
    partner.iloc[[0, 3, 9]] = ["atac_7", "atac_2", "atac_30"]
    partner.iloc[11] = "not_a_cell"  # unknown partners are ignored
    rna.obs["partner"] = partner
    pairs = anchor_pairs(rna, atac, "partner", "rna", "atac")
    np.testing.assert_array_equal(pairs, [[0, 7], [3, 2], [9, 30]])


def test_anchor_pair_errors(make_mudata):
    mdata = make_mudata(paired=False)
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    with pytest.raises(KeyError, match="anchor_key 'partner' is not a column"):
        anchor_pairs(rna, atac, "partner", "rna", "atac")
    with pytest.raises(ValueError, match="found no known pairs"):
        anchor_pairs(rna, atac, "obs_names", "rna", "atac")


def test_setup_with_anchor_key(make_mudata):
    mdata = make_mudata(paired=True)
    ConAAE.setup_mudata(mdata, labels_key="cell_type", anchor_key="obs_names")
    model = ConAAE(mdata, n_latent=4, n_hidden=(8,))
    pairs = model.anchor_pairs_
    assert pairs.shape == (40, 2)
    np.testing.assert_array_equal(
        model.modalities_["rna"].obs_names[pairs[:, 0]],
        model.modalities_["atac"].obs_names[pairs[:, 1]],
    )


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_and_dense_inputs_give_the_same_latents(make_mudata, fmt):
    dense, stored = make_mudata(fmt="dense"), make_mudata(fmt=fmt)
    ConAAE.setup_mudata(dense)
    model = ConAAE(dense, n_latent=4, n_hidden=(8,))
    for mod in ("rna", "atac"):
        np.testing.assert_allclose(
            model.get_latent_representation(stored, modality=mod),
            model.get_latent_representation(dense, modality=mod),
            rtol=1e-4,
            atol=1e-5,
        )
