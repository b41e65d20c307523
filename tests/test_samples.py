"""A sample covariate per modality (``batch_key``): registration, networks, outputs, files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from _builders import build_mudata

from conaae_scverse import ConAAE
from conaae_scverse._networks import SampleShifts, run_network

SMALL = {"n_latent": 4, "n_hidden": (16,)}
TRAIN = {"max_epochs": 2, "batch_size": 16, "enable_progress_bar": False}


def _with_samples(mdata, *, rna=("s1", "s2"), atac=("a1", "a2", "a3")):
    for mod, names in (("rna", rna), ("atac", atac)):
        if names:
            adata = mdata.mod[mod]
            adata.obs["sample"] = pd.Categorical(np.resize(np.asarray(names), adata.n_obs))
    return mdata


def _model(mdata, **kwargs) -> ConAAE:
    ConAAE.setup_mudata(mdata, labels_key="cell_type", batch_key="sample")
    return ConAAE(mdata, **{**SMALL, **kwargs})


def test_each_modality_has_its_own_samples_and_networks_condition_on_them():
    mdata = _with_samples(build_mudata())
    model = _model(mdata)
    assert model.batch_categories_ == {"rna": ["s1", "s2"], "atac": ["a1", "a2", "a3"]}
    assert model.module.n_samples("rna") == 2
    assert model.module.n_samples("atac") == 3
    # hidden layers of the encoder; every layer of the decoder (its output too)
    assert [t.shape for t in model.module.encoder_shifts["atac"].reference] == [(3, 16)]
    assert [t.shape for t in model.module.decoder_shifts["atac"].reference] == [(3, 16), (3, 18)]
    np.testing.assert_array_equal(model.modalities_["atac"].batches, np.resize([0, 1, 2], 36))


def test_a_column_in_one_modality_conditions_that_modality_only():
    mdata = _with_samples(build_mudata(), atac=None)
    model = _model(mdata)
    assert model.batch_categories_ == {"rna": ["s1", "s2"], "atac": []}
    assert model.module.has_samples("rna")
    assert not model.module.has_samples("atac")


def test_a_single_sample_builds_the_networks_without_samples():
    mdata = _with_samples(build_mudata(), rna=("only",), atac=("only",))
    model = _model(mdata)
    assert not model.module.has_samples("rna")
    assert not list(model.module.encoder_shifts.parameters())


def test_shifts_equal_a_one_hot_covariate_as_extra_inputs():
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    shifts = SampleShifts([4], n_reference=3)
    torch.nn.init.normal_(shifts.reference[0])
    x, batch = torch.randn(6, 5), torch.tensor([0, 1, 2, 2, 1, 0])
    # the same first layer, fed the one-hot sample code as three more inputs
    wide = torch.nn.Linear(8, 4)
    with torch.no_grad():
        wide.weight.copy_(torch.cat([network[0].weight, shifts.reference[0].T], dim=1))
        wide.bias.copy_(network[0].bias)
    one_hot = torch.nn.functional.one_hot(batch, 3).float()
    expected = network[2](network[1](wide(torch.cat([x, one_hot], dim=1))))
    torch.testing.assert_close(run_network(network, x, shifts, batch), expected)


def test_the_sample_changes_the_embedding_and_training_learns_the_shifts():
    mdata = _with_samples(build_mudata())
    model = _model(mdata)
    model.train(**TRAIN)
    shifts = model.module.decoder_shifts["rna"].reference
    assert all(float(t.abs().sum()) > 0 for t in shifts)
    z = model.get_latent_representation(modality="rna")
    # the same cells, recorded as the other sample, land elsewhere
    relabelled = mdata.copy()
    rna = relabelled.mod["rna"]
    rna.obs["sample"] = rna.obs["sample"].map({"s1": "s2", "s2": "s1"}).astype("category")
    z_swapped = model.get_latent_representation(relabelled, modality="rna")
    assert z.shape == z_swapped.shape
    assert not np.allclose(z, z_swapped)


def test_outputs_and_a_saved_model_keep_the_samples(tmp_path):
    mdata = _with_samples(build_mudata())
    model = _model(mdata)
    model.train(**TRAIN)
    model.write_results()
    z = mdata.mod["atac"].obsm["X_conaae"].copy()
    model.save(tmp_path / "model")
    fresh = _with_samples(build_mudata())
    loaded = ConAAE.load(tmp_path / "model", fresh, accelerator="cpu")
    assert loaded.setup_.batch_key == "sample"
    assert loaded.batch_categories_ == model.batch_categories_
    np.testing.assert_allclose(loaded.get_latent_representation(modality="atac"), z, atol=1e-6)


def test_a_sample_the_model_was_not_trained_on_is_refused_with_the_fix():
    mdata = _with_samples(build_mudata())
    model = _model(mdata)
    other = _with_samples(build_mudata(), atac=("a1", "new"))
    with pytest.raises(ValueError, match=r"\['new'\].*not among the model's"):
        model.get_latent_representation(other, modality="atac")
    del other.mod["rna"].obs["sample"]
    with pytest.raises(KeyError, match="no such column"):
        model.predict(other, modality="rna")


def test_a_missing_sample_is_an_error_naming_the_fix():
    mdata = _with_samples(build_mudata())
    mdata.mod["rna"].obs["sample"] = mdata.mod["rna"].obs["sample"].astype(object)
    mdata.mod["rna"].obs.iloc[3, mdata.mod["rna"].obs.columns.get_loc("sample")] = np.nan
    with pytest.raises(ValueError, match=r"NaN for 1 cells.*every cell needs its sample"):
        ConAAE.setup_mudata(mdata, labels_key="cell_type", batch_key="sample")
    with pytest.raises(KeyError, match="neither modality"):
        ConAAE.setup_mudata(build_mudata(), batch_key="donor")


@pytest.mark.parametrize("fmt", ["csr", "dense"])
def test_sparse_and_dense_encoding_agree_with_samples(fmt):
    mdata = _with_samples(build_mudata(fmt=fmt))
    model = _model(mdata)
    model.train(**TRAIN)
    module, data = model.module, model.modalities_["atac"]
    x = data.matrix.toarray() if hasattr(data.matrix, "toarray") else np.asarray(data.matrix)
    batch = torch.as_tensor(data.batches)
    with torch.no_grad():
        dense = module.encode(torch.as_tensor(x, dtype=torch.float32), "atac", batch)
    np.testing.assert_allclose(
        model.get_latent_representation(modality="atac"), dense.numpy(), atol=1e-5
    )


def test_anchor_mode_trains_with_samples():
    mdata = _with_samples(build_mudata(paired=True), rna=("s1", "s2"), atac=("s1", "s2"))
    ConAAE.setup_mudata(mdata, labels_key="cell_type", batch_key="sample", anchor_key="obs_names")
    model = ConAAE(mdata, **SMALL)
    model.train(**TRAIN)
    assert "anchor_train" in model.history


# ------------------------------------------------------------------ mapping a new sample
def _reference():
    mdata = _with_samples(build_mudata(seed=1), atac=("a1", "a2"))
    model = _model(mdata)
    model.train(**TRAIN)
    return mdata, model


def _query():
    # RNA cells of a reference sample, ATAC cells of a new one (and of a reference one)
    return _with_samples(build_mudata(seed=2), rna=("s1",), atac=("a3", "a1"))


@pytest.mark.parametrize("from_directory", [False, True])
def test_a_query_gets_new_sample_shifts_and_trains_only_them(tmp_path, from_directory):
    mdata, reference = _reference()
    before = {k: v.clone() for k, v in reference.module.state_dict().items()}
    source = reference
    if from_directory:
        reference.save(tmp_path / "reference")
        source = tmp_path / "reference"
    query_mdata = _query()
    query = ConAAE.load_query_data(query_mdata, source)
    assert query.batch_categories_["atac"] == ["a1", "a2", "a3"]
    assert query.batch_categories_["rna"] == ["s1", "s2"]
    shifts = query.module.decoder_shifts["atac"]
    assert (shifts.n_reference, shifts.n_query) == (2, 1)
    # the new sample starts at the mean of the reference samples
    torch.testing.assert_close(shifts.query[0][0], shifts.reference[0].mean(0))
    # and with its own copy of the encoder's input layer (the RNA has no new sample)
    own, first = query.module.input_layers["atac"], query.module.encoders["atac"][0]
    assert "rna" not in query.module.input_layers
    torch.testing.assert_close(own.layer(2)[0], first.weight)
    trainable = [n for n, p in query.module.named_parameters() if p.requires_grad]
    # the new shifts, and the discriminator (it embeds nothing)
    assert any(".query." in n for n in trainable)
    assert all(".query." in n or n.startswith("discriminator.") for n in trainable)
    query.train(**TRAIN)
    state = query.module.state_dict()
    for key, value in before.items():  # every reference weight and statistic is unchanged
        if ".query." not in key and not key.startswith("discriminator."):
            torch.testing.assert_close(state[key], value, rtol=0, atol=0)
    assert not torch.equal(shifts.query[0], shifts.reference[0].mean(0, keepdim=True))
    assert not torch.equal(own.layer(2)[0], first.weight)
    # cells of the reference's samples keep their embeddings, to float tolerance
    np.testing.assert_allclose(
        query.get_latent_representation(mdata, modality="atac"),
        reference.get_latent_representation(modality="atac"),
        atol=1e-5,
    )
    query.write_results()
    atac = query_mdata.mod["atac"]
    assert atac.obsm["X_conaae"].shape == (atac.n_obs, 4)
    assert {"conaae_label", "conaae_label_confidence", "conaae_match"} <= set(atac.obs)


def test_a_mapped_model_saves_loads_and_serves_as_a_reference(tmp_path):
    _, reference = _reference()
    query_mdata = _query()
    query = ConAAE.load_query_data(query_mdata, reference)
    query.train(**TRAIN)
    z = query.get_latent_representation(modality="atac")
    query.save(tmp_path / "query")
    loaded = ConAAE.load(tmp_path / "query", _query(), accelerator="cpu")
    np.testing.assert_allclose(loaded.get_latent_representation(modality="atac"), z, atol=1e-6)
    again = _with_samples(build_mudata(seed=3), rna=("s2",), atac=("a4",))
    second = ConAAE.load_query_data(again, loaded)
    assert second.batch_categories_["atac"] == ["a1", "a2", "a3", "a4"]
    assert second.module.decoder_shifts["atac"].n_reference == 3
    # the sample mapped first keeps its own input layer, so its cells keep their embeddings
    assert second.module.input_layers["atac"].reference["weight"].shape[0] == 1
    assert second.module.n_shared_input["atac"] == 2
    np.testing.assert_allclose(
        second.get_latent_representation(_query(), modality="atac"), z, atol=1e-6
    )


def test_a_mapped_model_saved_before_own_input_layers_still_loads(tmp_path):
    _, reference = _reference()
    query = ConAAE.load_query_data(_query(), reference)
    # untrained, the new sample's input layer equals the encoder's: the older files' meaning
    z = query.get_latent_representation(modality="atac")
    query.save(tmp_path / "query")
    settings_file, weights_file = tmp_path / "query/settings.json", tmp_path / "query/model.pt"
    settings = json.loads(settings_file.read_text())
    del settings["n_shared_input_batches"]
    settings_file.write_text(json.dumps(settings))
    state = torch.load(weights_file, weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.startswith("input_layers.")}, weights_file)
    loaded = ConAAE.load(tmp_path / "query", _query(), accelerator="cpu")
    assert not loaded.module.input_layers
    np.testing.assert_allclose(loaded.get_latent_representation(modality="atac"), z, atol=1e-6)


def test_fine_tuning_everything_is_possible():
    _, reference = _reference()
    query = ConAAE.load_query_data(_query(), reference, freeze_reference=False)
    assert all(p.requires_grad for p in query.module.parameters())
    query.train(**TRAIN)


def test_query_mapping_needs_a_reference_with_samples():
    mdata = build_mudata()
    ConAAE.setup_mudata(mdata, labels_key="cell_type")
    model = ConAAE(mdata, **SMALL)
    with pytest.raises(ValueError, match="without batch_key"):
        ConAAE.load_query_data(_query(), model)
    reference_without_atac_samples = _with_samples(build_mudata(seed=1), atac=None)
    model = _model(reference_without_atac_samples)
    with pytest.raises(ValueError, match="no samples in modality 'atac'"):
        ConAAE.load_query_data(_query(), model)


def test_a_query_with_an_unlabelled_modality_fits_its_own_label_prior():
    def unlabelled_atac(seed, atac):
        mdata = build_mudata(seed=seed, labels="rna")
        return _with_samples(mdata, rna=("s1",), atac=atac)

    with pytest.warns(UserWarning, match="no labels in modality"):
        reference = _model(unlabelled_atac(1, ("a1", "a2")))
    assert reference.prior_modality_ == "atac"
    reference.train(**TRAIN)
    with pytest.warns(UserWarning, match="no labels in modality"):
        query = ConAAE.load_query_data(unlabelled_atac(2, ("a3",)), reference)
    # the prior of the query's own cells, not the reference's
    assert query.prior_modality_ == "atac" and query.label_prior_.source == "ot"
    assert query.label_prior_.probabilities.shape == (36, 2)
    labelled = ConAAE.load_query_data(_query(), reference)
    assert labelled.label_prior_ is None  # both modalities of this query carry labels


def test_the_joint_anndata_carries_the_sample_column():
    mdata = _with_samples(build_mudata(), atac=None)
    joint = _model(mdata).get_joint_adata()
    rna = joint[joint.obs["modality"] == "rna"]
    assert list(rna.obs["sample"]) == list(mdata.mod["rna"].obs["sample"])
    assert joint[joint.obs["modality"] == "atac"].obs["sample"].isna().all()


def _split_samples(mdata, query_sample: str):
    """Reference (other samples) and query (``query_sample``) MuData of a simulation."""
    import mudata as md

    parts = []
    for in_query in (False, True):
        mods = {}
        for mod, adata in mdata.mod.items():
            rows = (adata.obs["sample"] == query_sample).to_numpy() == in_query
            mods[mod] = adata[rows].copy()
        parts.append(md.MuData(mods))
    return parts


@pytest.mark.parametrize("from_directory", [False, True])
def test_a_query_label_prior_uses_the_reference_links(tmp_path, from_directory):
    import conaae_scverse as ca

    full = ca.datasets.simulate_wide(240, n_genes=150, n_peaks=600, n_samples=3, random_state=0)
    atac = full.mod["atac"]
    atac.obs["cell_type"] = atac.obs["cell_type"].where(np.zeros(atac.n_obs, dtype=bool))
    links = ca.pp.link_peaks_to_genes(atac, full.mod["rna"].var, genes=full.mod["rna"].var_names)
    reference_mdata, query_mdata = _split_samples(full, "sample_2")
    ConAAE.setup_mudata(
        reference_mdata, labels_key="cell_type", batch_key="sample", gene_links=links
    )
    reference = ConAAE(reference_mdata, **SMALL)
    reference.train(**TRAIN)
    source = reference
    if from_directory:  # links are not saved with a model: without them, the OT prior
        reference.save(tmp_path / "reference")
        source = tmp_path / "reference"
        with pytest.warns(UserWarning, match="no labels in modality"):
            without = ConAAE.load_query_data(query_mdata, source)
        assert without.label_prior_.source == "ot"
        query = ConAAE.load_query_data(query_mdata, source, gene_links=links)
    else:
        query = ConAAE.load_query_data(query_mdata, source)
    assert query.prior_modality_ == "atac" and query.label_prior_.source == "links"
    n_query = int((atac.obs["sample"] == "sample_2").sum())
    assert query.label_prior_.probabilities.shape[0] == n_query
