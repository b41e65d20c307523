"""The user-facing ConAAE model: training, results, matching, persistence."""

from __future__ import annotations

import mudata as md
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from scipy.spatial.distance import cdist

from conaae_scverse import LOSS_KEYS, OUTPUT_KEYS, REGISTRY_KEYS, TRUE_PARTNER_KEY, ConAAE

SMALL = {"n_latent": 4, "n_hidden": (16,)}
TRAIN = {"max_epochs": 2, "batch_size": 16, "enable_progress_bar": False}
RESULT_OBS = {
    OUTPUT_KEYS.LABEL,
    OUTPUT_KEYS.LABEL_CONFIDENCE,
    OUTPUT_KEYS.MATCH,
    OUTPUT_KEYS.MATCH_DISTANCE,
}


def _trained(mdata: md.MuData, *, labels_key: str | None = "cell_type", **kwargs) -> ConAAE:
    ConAAE.setup_mudata(mdata, labels_key=labels_key)
    model = ConAAE(mdata, **{**SMALL, **kwargs})
    model.train(**TRAIN)
    return model


@pytest.fixture
def paired_model(paired_mdata) -> ConAAE:
    return _trained(paired_mdata)


@pytest.fixture
def unpaired_model(unpaired_mdata) -> ConAAE:
    return _trained(unpaired_mdata)


# ---------------------------------------------------------------- training
@pytest.mark.parametrize("fixture", ["paired_model", "unpaired_model"])
def test_train_two_epochs(request, fixture):
    model = request.getfixturevalue(fixture)
    assert model.is_trained
    train_loss = model.history["train_loss"]
    assert len(train_loss) == 2
    assert train_loss.dtypes.iloc[0] == np.float64
    assert np.isfinite(train_loss.to_numpy()).all()
    for mod in ("rna", "atac"):
        z = model.get_latent_representation(modality=mod)
        assert z.shape == (model.modalities_[mod].n_obs, 4)
        assert np.isfinite(z).all()


@pytest.mark.parametrize(("cap", "expected"), [(10_000, 125), (100, 25), (2, 1)])
def test_default_length_is_500_steps_unless_the_step_cap_binds(
    unpaired_mdata, monkeypatch, cap, expected
):
    import conaae_scverse._training as training

    monkeypatch.setattr(training, "_MAX_DEFAULT_STEPS", cap)
    ConAAE.setup_mudata(unpaired_mdata, labels_key="cell_type")
    model = ConAAE(unpaired_mdata, **SMALL)
    # 40 RNA cells, 36 training cells at train_size=0.9, batches of 8: 4 steps per epoch,
    # 500 / 4 = 125 epochs; a cap of 100 steps allows 25, a cap below one epoch still 1
    model.train(batch_size=8, enable_progress_bar=False)
    assert model.trainer.max_epochs == expected
    assert len(model.history["train_loss"]) == expected


def test_training_changes_the_weights(unpaired_mdata):
    ConAAE.setup_mudata(unpaired_mdata, labels_key="cell_type")
    model = ConAAE(unpaired_mdata, **SMALL)
    before = model.get_latent_representation(modality="atac")
    model.train(**TRAIN)
    after = model.get_latent_representation(modality="atac")
    assert not np.allclose(before, after)


def test_history_has_every_train_term(unpaired_model):
    expected = {
        f"{name}_train"
        for name in (
            LOSS_KEYS.RECONSTRUCTION_RNA,
            LOSS_KEYS.RECONSTRUCTION_ATAC,
            LOSS_KEYS.ADVERSARIAL,
            LOSS_KEYS.CYCLE,
            LOSS_KEYS.CONTRASTIVE,
            LOSS_KEYS.CLASSIFIER,
            LOSS_KEYS.DISCRIMINATOR,
        )
    } | {"train_loss"}
    history = unpaired_model.history
    assert expected <= set(history)
    assert f"{LOSS_KEYS.ANCHOR}_train" not in history
    assert f"{LOSS_KEYS.MMD}_train" not in history
    for key in expected:
        assert len(history[key]) == 2, key


def test_mmd_alignment_trains(unpaired_mdata):
    model = _trained(unpaired_mdata, alignment="mmd")
    assert f"{LOSS_KEYS.MMD}_train" in model.history
    assert f"{LOSS_KEYS.ADVERSARIAL}_train" not in model.history
    assert f"{LOSS_KEYS.DISCRIMINATOR}_train" not in model.history


def test_self_supervised_without_labels(unpaired_mdata):
    model = _trained(unpaired_mdata, labels_key=None)
    assert model.module.contrastive == "self_supervised"
    assert f"{LOSS_KEYS.CONTRASTIVE}_train" in model.history
    assert f"{LOSS_KEYS.CLASSIFIER}_train" not in model.history
    with pytest.raises(ValueError, match="cannot predict labels"):
        model.predict()


def test_anchor_mode_logs_anchor_term(paired_mdata):
    ConAAE.setup_mudata(paired_mdata, labels_key="cell_type", anchor_key="obs_names")
    model = ConAAE(paired_mdata, **SMALL)
    model.train(**TRAIN)
    anchor = model.history[f"{LOSS_KEYS.ANCHOR}_train"]
    assert len(anchor) == 2
    assert (anchor.to_numpy() > 0).all()


def test_paper_hidden_widths(unpaired_mdata):
    ConAAE.setup_mudata(unpaired_mdata)
    model = ConAAE(unpaired_mdata, n_latent=4, n_hidden="paper")
    for mod, n_in in (("rna", 24), ("atac", 18)):
        linear = [m for m in model.module.encoders[mod] if isinstance(m, torch.nn.Linear)]
        assert [layer.in_features for layer in linear] == [n_in, n_in, n_in, n_in, 100]
        assert [layer.out_features for layer in linear] == [n_in, n_in, n_in, 100, 4]
        decoder = [m for m in model.module.decoders[mod] if isinstance(m, torch.nn.Linear)]
        assert [layer.out_features for layer in decoder] == [100, n_in, n_in, n_in, n_in]


class _RecordIndices(Callback):
    """Records the cell indices of every training minibatch of each modality."""

    def __init__(self):
        self.rna: list[np.ndarray] = []
        self.atac: list[np.ndarray] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        rna, atac = batch[0], batch[1]
        self.rna.append(rna[REGISTRY_KEYS.INDICES_KEY].reshape(-1).long().numpy())
        self.atac.append(atac[REGISTRY_KEYS.INDICES_KEY].reshape(-1).long().numpy())


def test_minibatches_are_not_paired_by_row_order(make_mudata):
    # Same cells in both modalities, ATAC rows a permutation of the RNA rows: neither the row
    # order nor the obs_names may pair the two minibatches of a step.
    mdata = make_mudata(paired=True, n_rna=64)
    ConAAE.setup_mudata(mdata, labels_key="cell_type")
    model = ConAAE(mdata, **SMALL)
    recorder = _RecordIndices()
    model.train(
        max_epochs=2,
        batch_size=8,
        train_size=1.0,
        enable_progress_bar=False,
        callbacks=[recorder],
    )
    assert len(recorder.rna) == 16  # 64 cells / 8 per minibatch, 2 epochs
    rna_idx, atac_idx = np.concatenate(recorder.rna), np.concatenate(recorder.atac)
    assert rna_idx.shape == atac_idx.shape == (128,)
    # each modality is shuffled: every cell once per epoch, not in row order
    for idx in (rna_idx, atac_idx):
        assert sorted(idx[:64]) == list(range(64))
        assert not np.array_equal(idx[:64], np.arange(64))
    # ... and shuffled independently: neither the same rows nor the same cells side by side
    assert (rna_idx == atac_idx).mean() < 0.2
    rna_names = mdata.mod["rna"].obs_names.to_numpy()[rna_idx]
    atac_names = mdata.mod["atac"].obs_names.to_numpy()[atac_idx]
    assert (rna_names == atac_names).mean() < 0.2
    # the two epochs use different orders
    assert not np.array_equal(rna_idx[:64], rna_idx[64:])


# ---------------------------------------------------------------- results
def _keys(adata) -> dict:
    return {
        "obs": list(adata.obs.columns),
        "obsm": sorted(adata.obsm.keys()),
        "var": adata.var.copy(),
        "uns": sorted(adata.uns.keys()),
        "layers": sorted(adata.layers.keys(), key=str),
        "obsp": sorted(adata.obsp.keys()),
        "X": adata.X.copy(),
        "obs_frame": adata.obs.copy(),
    }


@pytest.mark.parametrize("labels_key", ["cell_type", None])
def test_write_results_writes_exactly_the_documented_keys(unpaired_mdata, labels_key):
    model = _trained(unpaired_mdata, labels_key=labels_key)
    before = {name: _keys(adata) for name, adata in unpaired_mdata.mod.items()}
    mdata_obs = list(unpaired_mdata.obs.columns)
    model.write_results()
    expected_obs = RESULT_OBS if labels_key else {OUTPUT_KEYS.MATCH, OUTPUT_KEYS.MATCH_DISTANCE}
    for name, adata in unpaired_mdata.mod.items():
        old = before[name]
        assert set(adata.obs.columns) - set(old["obs"]) == expected_obs
        assert list(adata.obs.columns)[: len(old["obs"])] == old["obs"]
        assert sorted(adata.obsm.keys()) == sorted([*old["obsm"], OUTPUT_KEYS.LATENT])
        pd.testing.assert_frame_equal(adata.obs[old["obs"]], old["obs_frame"])
        pd.testing.assert_frame_equal(adata.var, old["var"])
        assert sorted(adata.uns.keys()) == old["uns"]
        assert sorted(adata.layers.keys(), key=str) == old["layers"]
        assert sorted(adata.obsp.keys()) == old["obsp"]
        assert (adata.X != old["X"]).nnz == 0
        assert adata.obsm[OUTPUT_KEYS.LATENT].shape == (adata.n_obs, 4)
    assert list(unpaired_mdata.obs.columns) == mdata_obs


def test_written_results_are_consistent(unpaired_model, unpaired_mdata):
    unpaired_model.write_results()
    rna, atac = unpaired_mdata.mod["rna"], unpaired_mdata.mod["atac"]
    for adata, other in ((rna, atac), (atac, rna)):
        mod = "rna" if adata is rna else "atac"
        z = adata.obsm[OUTPUT_KEYS.LATENT]
        np.testing.assert_array_equal(z, unpaired_model.get_latent_representation(modality=mod))
        # matches are obs_names of the other modality, at the nearest l1 distance
        matches = adata.obs[OUTPUT_KEYS.MATCH]
        assert matches.isin(other.obs_names).all()
        dist = cdist(z, other.obsm[OUTPUT_KEYS.LATENT], "cityblock")
        matched = other.obs_names.get_indexer(matches)
        np.testing.assert_allclose(
            adata.obs[OUTPUT_KEYS.MATCH_DISTANCE], dist[np.arange(len(z)), matched], rtol=1e-4
        )
        np.testing.assert_allclose(
            adata.obs[OUTPUT_KEYS.MATCH_DISTANCE], dist.min(axis=1), rtol=1e-4
        )
        labels = adata.obs[OUTPUT_KEYS.LABEL]
        assert isinstance(labels.dtype, pd.CategoricalDtype)
        assert list(labels.cat.categories) == ["alpha", "beta"]
        np.testing.assert_array_equal(
            labels.astype(str), unpaired_model.predict(modality=mod).astype(str)
        )
        confidence = adata.obs[OUTPUT_KEYS.LABEL_CONFIDENCE].to_numpy()
        assert ((confidence >= 0.5) & (confidence <= 1)).all()


def test_outputs_encode_the_training_data_once_until_training(unpaired_mdata, monkeypatch):
    model = _trained(unpaired_mdata, labels_key="cell_type")
    calls = []
    encode = model._encode
    monkeypatch.setattr(
        model,
        "_encode",
        lambda matrix, mod, samples, size: calls.append(mod) or encode(matrix, mod, samples, size),
    )
    model.write_results()
    model.match_cells()
    model.get_joint_adata()
    z = model.get_latent_representation(modality="rna")
    assert sorted(calls) == ["atac", "rna"]
    z[:] = 0  # callers get copies: the cache is not theirs to change
    written = unpaired_mdata.mod["rna"].obsm["X_conaae"]
    written[:] = 1
    np.testing.assert_array_equal(
        model.get_latent_representation(modality="rna"), encode(*_rna_input(model))
    )
    model.train(max_epochs=1, enable_progress_bar=False)
    model.get_latent_representation(modality="rna")
    assert sorted(calls) == ["atac", "atac", "rna", "rna"]


def _rna_input(model):
    data = model.modalities_["rna"]
    return data.matrix, "rna", data.batches, 4096


def test_predict_shapes(unpaired_model, unpaired_mdata):
    hard = unpaired_model.predict(modality="atac")
    assert hard.shape == (36,)
    assert set(hard) <= {"alpha", "beta"}
    soft = unpaired_model.predict(modality="rna", soft=True)
    assert soft.shape == (40, 2)
    assert list(soft.columns) == ["alpha", "beta"]
    assert soft.index.equals(unpaired_mdata.mod["rna"].obs_names)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(
        soft.idxmax(axis=1).to_numpy(), unpaired_model.predict(modality="rna")
    )
    with pytest.raises(ValueError, match="modality must be 'rna' or 'atac'"):
        unpaired_model.get_latent_representation(modality="protein")


def test_unknown_call_below_min_confidence(unpaired_model, unpaired_mdata):
    soft = unpaired_model.predict(modality="atac", soft=True)
    confidence = soft.max(axis=1).to_numpy()
    # A cut between observed confidences, so both calls occur whatever the training reached.
    cut = float(np.median(confidence)) + 1e-6
    called = unpaired_model.predict(modality="atac", min_confidence=cut, unknown_label="novel")
    below = confidence < cut
    assert below.any() and (~below).any()
    assert (called[below] == "novel").all()
    np.testing.assert_array_equal(called[~below], soft.idxmax(axis=1).to_numpy()[~below])
    unpaired_model.write_results(min_confidence=cut, unknown_label="novel")
    written = unpaired_mdata.mod["atac"].obs[OUTPUT_KEYS.LABEL]
    assert list(written.cat.categories) == ["alpha", "beta", "novel"]
    np.testing.assert_array_equal(written.astype(str).to_numpy(), called.astype(str))
    # min_confidence=None labels every cell, as before
    assert set(unpaired_model.predict(modality="atac")) <= {"alpha", "beta"}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_confidence": 0}, ValueError, r"min_confidence must be a number in \(0, 1\]"),
        ({"min_confidence": 1.5}, ValueError, "min_confidence must be"),
        ({"min_confidence": "high"}, ValueError, "min_confidence must be"),
        ({"min_confidence": 0.5, "unknown_label": "alpha"}, ValueError, "is one of the label"),
        ({"min_confidence": 0.5, "unknown_label": ""}, TypeError, "non-empty string"),
    ],
)
def test_unknown_call_rejects_bad_arguments(unpaired_model, kwargs, error, match):
    with pytest.raises(error, match=match):
        unpaired_model.predict(modality="atac", **kwargs)
    with pytest.raises(error, match=match):
        unpaired_model.write_results(**kwargs)


def test_new_data_with_same_features(unpaired_model, make_mudata):
    new = make_mudata(n_rna=13, n_atac=11, seed=7, fmt="dense")  # trained on CSR
    z = unpaired_model.get_latent_representation(new, modality="rna")
    assert z.shape == (13, 4)
    assert unpaired_model.predict(new, modality="atac").shape == (11,)
    matches = unpaired_model.match_cells(new)
    assert matches["rna"][OUTPUT_KEYS.MATCH].isin(new.mod["atac"].obs_names).all()
    # the embedding of a cell does not depend on the data set it comes with
    new.mod["rna"].X[:5] = unpaired_model.mdata.mod["rna"].X[:5].toarray()
    np.testing.assert_allclose(
        unpaired_model.get_latent_representation(new, modality="rna")[:5],
        unpaired_model.get_latent_representation(modality="rna")[:5],
        rtol=1e-5,
        atol=1e-6,
    )


def test_new_data_with_other_features_fails(unpaired_model, make_mudata):
    wider = make_mudata(n_genes=25)
    with pytest.raises(
        ValueError, match=r"model's features: it has 25, the model was trained on 24"
    ):
        unpaired_model.get_latent_representation(wider, modality="rna")
    shuffled = make_mudata()
    rna = shuffled.mod["rna"]
    shuffled.mod["rna"] = rna[:, rna.var_names[::-1]].copy()
    with pytest.raises(ValueError, match="features in another order"):
        unpaired_model.get_latent_representation(shuffled, modality="rna")


def test_one_to_one_matching_is_a_permutation(paired_model, paired_mdata):
    paired_model.write_results(match="one_to_one")
    for mod, other in (("rna", "atac"), ("atac", "rna")):
        matches = paired_mdata.mod[mod].obs[OUTPUT_KEYS.MATCH]
        assert sorted(matches) == sorted(paired_mdata.mod[other].obs_names)


def test_one_to_one_needs_equal_sizes(unpaired_model):
    with pytest.raises(ValueError, match="needs equally many cells in both modalities"):
        unpaired_model.write_results(match="one_to_one")
    with pytest.raises(ValueError, match="method must be 'nearest' or 'one_to_one'"):
        unpaired_model.match_cells(method="greedy")


def test_joint_adata(unpaired_model):
    import scanpy as sc

    joint = unpaired_model.get_joint_adata()
    assert joint.n_obs == 40 + 36
    assert list(joint.obs["modality"].cat.categories) == ["rna", "atac"]
    assert (joint.obs["modality"] == "rna").sum() == 40
    assert (joint.obs["modality"] == "atac").sum() == 36
    assert joint.obs_names.is_unique
    z = joint.obsm[OUTPUT_KEYS.LATENT]
    assert z.shape == (76, 4)
    np.testing.assert_array_equal(z[:40], unpaired_model.get_latent_representation())
    np.testing.assert_array_equal(
        z[40:], unpaired_model.get_latent_representation(modality="atac")
    )
    assert set(joint.obs["cell_type"].dropna()) <= {"alpha", "beta"}
    assert OUTPUT_KEYS.LABEL in joint.obs
    # "gauss" connectivities avoid compiling UMAP's numba code; the representation is the point
    sc.pp.neighbors(joint, use_rep=OUTPUT_KEYS.LATENT, n_neighbors=5, method="gauss")
    assert joint.obsp["connectivities"].shape == (76, 76)
    assert joint.obsp["distances"].getnnz(axis=1).min() >= 4


# ---------------------------------------------------------------- persistence
def test_save_load_round_trip(unpaired_model, unpaired_mdata, make_mudata, tmp_path):
    path = tmp_path / "model"
    unpaired_model.save(str(path))
    loaded = ConAAE.load(str(path), unpaired_mdata, accelerator="cpu")
    assert loaded.is_trained
    for mod in ("rna", "atac"):
        np.testing.assert_array_equal(
            loaded.get_latent_representation(modality=mod),
            unpaired_model.get_latent_representation(modality=mod),
        )
    np.testing.assert_array_equal(
        loaded.predict(modality="atac"), unpaired_model.predict(modality="atac")
    )
    assert set(loaded.history) == set(unpaired_model.history)
    # onto a fresh MuData that was never set up, with the same features
    fresh = make_mudata(seed=3)
    reloaded = ConAAE.load(str(path), fresh, accelerator="cpu")
    np.testing.assert_array_equal(
        reloaded.get_latent_representation(modality="atac"),
        unpaired_model.get_latent_representation(fresh, modality="atac"),
    )


def test_load_onto_other_features_fails(unpaired_model, make_mudata, tmp_path):
    path = tmp_path / "model"
    unpaired_model.save(str(path))
    with pytest.raises(
        ValueError, match=r"model's features: it has 30, the model was trained on 24"
    ):
        ConAAE.load(str(path), make_mudata(n_genes=30), accelerator="cpu")


def test_save_refuses_to_overwrite(unpaired_model, unpaired_mdata, tmp_path):
    path = tmp_path / "model"
    unpaired_model.save(str(path))
    with pytest.raises(FileExistsError, match=r"already exists\. Pass overwrite=True"):
        unpaired_model.save(str(path))
    unpaired_model.train(**TRAIN)
    unpaired_model.save(str(path), overwrite=True)
    loaded = ConAAE.load(str(path), unpaired_mdata, accelerator="cpu")
    np.testing.assert_array_equal(
        loaded.get_latent_representation(), unpaired_model.get_latent_representation()
    )
    assert len(loaded.history["train_loss"]) == 4


# ---------------------------------------------------------------- end to end
def _foscttm(z_rna: np.ndarray, z_atac: np.ndarray, partner: np.ndarray) -> float:
    """Mean fraction of cells closer than the true match (both directions); chance is 0.5."""
    dist = cdist(z_rna, z_atac, "cityblock")
    true = dist[np.arange(len(z_rna)), partner]
    rna_side = (dist < true[:, None]).mean(axis=1)
    atac_side = (dist < true[None, :]).mean(axis=0)
    return float((rna_side.mean() + atac_side.mean()) / 2)


def test_foscttm_helper():
    # guard for the end-to-end test: a perfect alignment scores 0, a shuffled one about 0.5
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 5))
    partner = rng.permutation(200)
    z_atac = np.empty_like(z)
    z_atac[partner] = z
    assert _foscttm(z, z_atac, partner) == 0.0
    assert abs(_foscttm(z, z_atac[rng.permutation(200)], partner) - 0.5) < 0.1


def test_end_to_end_alignment_beats_chance():
    from conaae_scverse.datasets import simulate

    mdata = simulate(n_cells=600, random_state=0)
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    # hide the labels of half of the ATAC cells: their predicted labels are transferred
    truth = atac.obs["batch"].astype(str).to_numpy()
    hidden = np.random.default_rng(0).random(atac.n_obs) < 0.5
    atac.obs["batch"] = atac.obs["batch"].astype(object).where(~hidden, np.nan)
    ConAAE.setup_mudata(mdata, labels_key="batch")
    model = ConAAE(mdata)
    model.train(max_epochs=20, enable_progress_bar=False)
    model.write_results()

    partner = atac.obs_names.get_indexer(rna.obs[TRUE_PARTNER_KEY])
    assert (partner >= 0).all()
    foscttm = _foscttm(rna.obsm[OUTPUT_KEYS.LATENT], atac.obsm[OUTPUT_KEYS.LATENT], partner)
    accuracy = (atac.obs[OUTPUT_KEYS.LABEL].astype(str).to_numpy() == truth)[hidden].mean()
    # chance: FOSCTTM 0.5, accuracy 1/3 (three balanced groups); seeds 0-5 give about
    # FOSCTTM 0.15-0.16 (10% of the claimed pairs are deliberately wrong) and accuracy ~1.0
    assert foscttm < 0.3
    assert accuracy > 0.9
