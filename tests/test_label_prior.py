"""Label priors for an unlabelled modality: the pieces against oracles, then in the model."""

from __future__ import annotations

import logging

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from conaae_scverse import OUTPUT_KEYS, ConAAE
from conaae_scverse._label_prior import (
    LabelPrior,
    canonical_embeddings,
    fit_label_prior,
    smooth,
)


def test_pseudo_labels_keep_only_confident_cells():
    prior = LabelPrior(np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8]]), "ot")
    np.testing.assert_array_equal(prior.pseudo_labels(0.8), [0, -1, 1])
    np.testing.assert_array_equal(prior.pseudo_labels(0.5), [0, 0, 1])
    np.testing.assert_allclose(prior.confidence, [0.9, 0.55, 0.8])


def test_canonical_embeddings_are_the_scaled_singular_vectors_of_the_cross_product():
    rng = np.random.default_rng(0)
    z_rna, z_atac = rng.normal(size=(30, 12)), rng.normal(size=(25, 12))
    u, v = canonical_embeddings(z_rna, z_atac, n_comps=4)
    full_u, singular, full_vt = np.linalg.svd(z_rna @ z_atac.T)
    scale = np.sqrt(singular[:4])

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    # Rows scaled to unit length; signs and order of the singular vectors are arbitrary, so
    # compare the cell-cell cosine similarities, which do not depend on them.
    for ours, oracle in ((u, full_u[:, :4] * scale), (v, full_vt[:4].T * scale)):
        assert ours.shape == oracle.shape
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-6)
        assert np.abs(unit(oracle) @ unit(oracle).T - ours @ ours.T).max() < 1e-6


def test_smooth_follows_the_neighbourhood_and_keeps_probabilities():
    rng = np.random.default_rng(1)
    representation = np.concatenate([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))])
    probs = np.tile([0.9, 0.1], (40, 1))
    probs[20:] = [0.1, 0.9]
    probs[3] = [0.0, 1.0]  # one outlier vote inside the first group
    smoothed = smooth(probs, representation, k=10)
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0)
    assert smoothed[3].argmax() == 0
    assert (smoothed[:20].argmax(axis=1) == 0).all() and (smoothed[20:].argmax(axis=1) == 1).all()


def _clusters(rng, centres, sizes, noise_dims=0, scale=0.3):
    labels = np.repeat(np.arange(len(sizes)), sizes)
    x = centres[labels] + rng.normal(scale=scale, size=(len(labels), centres.shape[1]))
    if noise_dims:
        x = np.hstack([x, rng.normal(scale=scale, size=(len(labels), noise_dims))])
    return x, labels


def test_ot_prior_recovers_populations_from_geometry_alone():
    # Three populations at distinct distances (a scalene triangle) and of unequal sizes: the
    # geometry identifies them. "ATAC" is a rotated, rescaled copy in more dimensions.
    rng = np.random.default_rng(2)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 7.0]])
    x_rna, y_rna = _clusters(rng, centres, [150, 100, 60])
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    x_atac, y_atac = _clusters(rng, centres, [140, 90, 70], noise_dims=3)
    x_atac = 2.5 * x_atac @ rotation + 10
    order = rng.permutation(len(y_atac))
    x_atac, y_atac = x_atac[order], y_atac[order]
    prior = fit_label_prior(
        "ot",
        {"rna": x_rna, "atac": x_atac},
        {"rna": y_rna, "atac": -np.ones(len(y_atac), dtype=np.int64)},
        unlabelled="atac",
        n_labels=3,
        log1p={"rna": False, "atac": False},
        seed=0,
    )
    assert prior.source == "ot"
    assert prior.probabilities.shape == (len(y_atac), 3)
    assert np.mean(prior.probabilities.argmax(axis=1) == y_atac) > 0.95


def _linked_counts(seed: int, n_cells: int = 300, n_genes: int = 60):
    """RNA and ATAC of three equal, equidistant populations; peak j sits at gene j.

    The geometry cannot tell the populations apart (all sizes and distances equal); only
    the peak-gene links can: a population's marker genes and their peaks are open together.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n_cells) % 3
    programme = np.zeros((3, n_genes))
    for k in range(3):
        programme[k, k * 20 : (k + 1) * 20] = 2.0
    rna = rng.poisson(np.exp(programme[labels] - 0.5)).astype(np.float32)
    atac_labels = rng.permutation(labels)
    accessibility = 0.8 * np.exp(programme[atac_labels] - 1.0)
    atac = rng.poisson(accessibility).astype(np.float32)
    return rna, labels, atac, atac_labels


def test_links_prior_tells_equal_populations_apart():
    rna, y_rna, atac, y_atac = _linked_counts(3)
    links = sparse.identity(atac.shape[1], format="csr")
    prior = fit_label_prior(
        "links",
        {"rna": sparse.csr_matrix(rna), "atac": sparse.csr_matrix(atac)},
        {"rna": y_rna, "atac": -np.ones(len(y_atac), dtype=np.int64)},
        unlabelled="atac",
        n_labels=3,
        log1p={"rna": True, "atac": True},
        gene_links=links,
        rna_gene_columns=np.arange(rna.shape[1]),
        seed=0,
    )
    assert prior.source == "links"
    assert np.mean(prior.probabilities.argmax(axis=1) == y_atac) > 0.95


def _linked_mudata(seed: int = 3):
    rna, y_rna, atac, y_atac = _linked_counts(seed)
    names = [f"g{j}" for j in range(rna.shape[1])]
    peaks = [f"chr1:{1000 * j}-{1000 * j + 500}" for j in range(atac.shape[1])]
    cats = pd.Categorical.from_codes(y_rna, ["a", "b", "c"])
    mdata = md.MuData(
        {
            "rna": ad.AnnData(
                X=sparse.csr_matrix(rna),
                obs=pd.DataFrame({"cell_type": cats}, index=[f"r{i}" for i in range(len(rna))]),
                var=pd.DataFrame(index=names),
            ),
            "atac": ad.AnnData(
                X=sparse.csr_matrix(atac),
                obs=pd.DataFrame(index=[f"a{i}" for i in range(len(atac))]),
                var=pd.DataFrame(index=peaks),
            ),
        }
    )
    links = ad.AnnData(
        X=sparse.identity(len(peaks), format="csr", dtype=np.float32),
        obs=pd.DataFrame(index=peaks),
        var=pd.DataFrame(index=names),
    )
    return mdata, links, np.array(["a", "b", "c"])[y_atac]


def test_model_uses_the_links_prior_and_predicts_unlabelled_atac(recwarn):
    mdata, links, truth = _linked_mudata()
    before = mdata.mod["atac"].obs.copy()
    ConAAE.setup_mudata(mdata, labels_key="cell_type", gene_links=links)
    assert not [w for w in recwarn if "no labels in modality" in str(w.message)]
    model = ConAAE(mdata, n_latent=8, n_hidden=(32,), seed=0)
    assert model.prior_modality_ == "atac" and model.label_prior_.source == "links"
    codes = model.modalities_["atac"].labels
    assert (codes >= 0).mean() > 0.5  # confident cells train with pseudo-labels
    model.train(max_epochs=40, batch_size=64, accelerator="cpu", enable_progress_bar=False)
    predicted = np.asarray(model.predict(modality="atac"), dtype=str)
    assert np.mean(predicted == truth) > 0.9
    pd.testing.assert_frame_equal(mdata.mod["atac"].obs, before)  # the user's data unchanged


def test_prior_is_off_when_both_modalities_are_labelled_or_asked(make_mudata):
    mdata = make_mudata(labels="both")
    ConAAE.setup_mudata(mdata, labels_key="cell_type")
    assert ConAAE(mdata, n_latent=4, n_hidden=(8,)).label_prior_ is None
    mdata = make_mudata(labels="rna")
    with pytest.warns(UserWarning, match="no labels in modality"):
        ConAAE.setup_mudata(mdata, labels_key="cell_type")
    model = ConAAE(mdata, n_latent=4, n_hidden=(8,), label_prior="none")
    assert model.label_prior_ is None
    np.testing.assert_array_equal(model.modalities_["atac"].labels, -1)
    auto = ConAAE(mdata, n_latent=4, n_hidden=(8,))
    assert auto.label_prior_.source == "ot" and auto.prior_modality_ == "atac"
    assert auto.label_prior_.probabilities.shape == (mdata.mod["atac"].n_obs, 2)


def test_write_results_gives_the_prior_confidence_of_the_unlabelled_modality(make_mudata):
    mdata = make_mudata(labels="rna")
    with pytest.warns(UserWarning, match="no labels in modality"):
        ConAAE.setup_mudata(mdata, labels_key="cell_type")
    model = ConAAE(mdata, n_latent=4, n_hidden=(8,))
    model.train(max_epochs=1, batch_size=32, accelerator="cpu", enable_progress_bar=False)
    other = mdata.copy()
    model.write_results()
    written = mdata.mod["atac"].obs[OUTPUT_KEYS.PRIOR_CONFIDENCE].to_numpy()
    np.testing.assert_allclose(written, model.label_prior_.confidence, rtol=1e-6)
    assert OUTPUT_KEYS.PRIOR_CONFIDENCE not in mdata.mod["rna"].obs
    # Other data (even the same cells in another object) has no prior: nothing to write.
    model.write_results(other)
    assert OUTPUT_KEYS.PRIOR_CONFIDENCE not in other.mod["atac"].obs
    assert OUTPUT_KEYS.LABEL in other.mod["atac"].obs


def test_prior_arguments_are_checked(make_mudata):
    mdata = make_mudata(labels="rna")
    with pytest.warns(UserWarning, match="no labels in modality"):
        ConAAE.setup_mudata(mdata, labels_key="cell_type")
    with pytest.raises(ValueError, match="label_prior='links' needs peak-gene links"):
        ConAAE(mdata, label_prior="links")
    with pytest.raises(ValueError, match="label_prior must be one of"):
        ConAAE(mdata, label_prior="geometry")
    with pytest.raises(ValueError, match=r"prior_confidence must be a number in \[0, 1\]"):
        ConAAE(mdata, prior_confidence=1.5)
    for share in (0, 1.5, "half"):
        with pytest.raises(ValueError, match=r"pseudo_label_epochs must be a number in \(0, 1\]"):
            ConAAE(mdata, pseudo_label_epochs=share)


def test_pseudo_labels_are_released_after_their_share_of_each_training(make_mudata):
    mdata, links, _ = _linked_mudata()
    ConAAE.setup_mudata(mdata, labels_key="cell_type", gene_links=links)
    model = ConAAE(mdata, n_latent=4, n_hidden=(8,), pseudo_label_epochs=0.25)
    release = model._pseudo_label_release(max_epochs=20)
    assert release.modality == "atac" and release.last_epoch == 5
    pseudo = model.modalities_["atac"].labels >= 0
    assert pseudo.any()
    np.testing.assert_array_equal(release.cells.numpy(), pseudo)
    assert model._pseudo_label_release(max_epochs=1).last_epoch == 1  # never zero epochs
    model.train(max_epochs=2, batch_size=64, accelerator="cpu", enable_progress_bar=False)
    assert len(model.history_["train_loss"]) == 2  # released at epoch 1 of 2, within Lightning
    whole = ConAAE(mdata, n_latent=4, n_hidden=(8,))  # the default keeps them throughout
    assert whole._pseudo_label_release(max_epochs=20) is None
    labelled = make_mudata(labels="both")
    ConAAE.setup_mudata(labelled, labels_key="cell_type")
    assert ConAAE(labelled, n_latent=4, n_hidden=(8,))._pseudo_label_release(20) is None


def test_pseudo_label_loss_moves_contrastive_weight_by_the_pseudo_labelled_share(make_mudata):
    mdata = make_mudata(labels="rna")
    with pytest.warns(UserWarning, match="no labels in modality"):
        ConAAE.setup_mudata(mdata, labels_key="cell_type")
    small = {"n_latent": 4, "n_hidden": (8,)}
    confidence = ConAAE(mdata, **small).label_prior_.confidence
    # A threshold between the prior's confidences leaves part of ATAC without pseudo-labels.
    threshold = float(np.median(confidence))
    model = ConAAE(mdata, **small, prior_confidence=threshold, pseudo_label_loss="classifier")
    share = np.mean(model.modalities_["atac"].labels >= 0)
    assert 0 < share < 1
    weights = model.module.weights
    assert weights.contrastive == pytest.approx(10 * (1 - share))
    assert weights.classifier == pytest.approx(1 + 10 * share)
    # "auto" (default) keeps the triplet for the OT prior's pseudo-labels (no links here).
    paper = ConAAE(mdata, **small, prior_confidence=threshold).module.weights
    assert (paper.contrastive, paper.classifier) == (10, 1)
    # No pseudo-labels (both modalities labelled, or no prior): the paper's weights.
    no_prior = ConAAE(mdata, **small, label_prior="none", pseudo_label_loss="classifier")
    assert no_prior.module.weights == paper
    with pytest.raises(ValueError, match="pseudo_label_loss must be one of"):
        ConAAE(mdata, **small, pseudo_label_loss="triplet")


def test_pseudo_labels_of_the_links_prior_are_held_by_the_classifier_by_default(recwarn):
    mdata, links, _ = _linked_mudata()
    ConAAE.setup_mudata(mdata, labels_key="cell_type", gene_links=links)
    small = {"n_latent": 4, "n_hidden": (8,)}
    model = ConAAE(mdata, **small)
    assert model.label_prior_.source == "links"
    share = np.mean(model.modalities_["atac"].labels >= 0)
    assert share > 0
    assert model.module.weights.contrastive == pytest.approx(10 * (1 - share))
    assert model.module.weights.classifier == pytest.approx(1 + 10 * share)
    triplet = ConAAE(mdata, **small, pseudo_label_loss="contrastive").module.weights
    assert (triplet.contrastive, triplet.classifier) == (10, 1)


def test_links_prior_scales_atac_counts_and_turns_depth_invariance_on_by_default(recwarn, caplog):
    mdata, links, _ = _linked_mudata()
    ConAAE.setup_mudata(mdata, labels_key="cell_type", gene_links=links)
    small = {"n_latent": 4, "n_hidden": (8,)}
    with caplog.at_level(logging.INFO, logger="conaae_scverse"):
        model = ConAAE(mdata, **small)
    assert "ATAC counts scaled per cell, depth_invariance weight 10" in caplog.text
    atac_totals = np.asarray(mdata.mod["atac"].X.sum(axis=1)).ravel()
    assert model.cell_total_ == {"rna": 0.0, "atac": pytest.approx(np.median(atac_totals))}
    assert model.module.weights.depth_invariance == 10
    # What the user sets is kept: an explicit transform, an explicit weight.
    explicit = ConAAE(mdata, **small, input_transform={"atac": "log1p"})
    assert explicit.cell_total_["atac"] == 0 and explicit.module.weights.depth_invariance == 10
    off = ConAAE(mdata, **small, loss_weights={"depth_invariance": 0})
    assert off.module.weights.depth_invariance == 0 and off.cell_total_["atac"] > 0
    # Another prior (or none) leaves both as they were.
    ot = ConAAE(mdata, **small, label_prior="ot")
    assert ot.cell_total_ == {"rna": 0.0, "atac": 0.0}
    assert ot.module.weights.depth_invariance == 0


def test_gene_links_are_validated():
    mdata, links, _ = _linked_mudata()
    with pytest.raises(TypeError, match="gene_links must be an AnnData of peaks x genes"):
        ConAAE.setup_mudata(mdata, labels_key="cell_type", gene_links=links.X)
    other_peaks = links.copy()
    other_peaks.obs_names = [f"chr2:{i}-{i + 1}" for i in range(other_peaks.n_obs)]
    with pytest.raises(ValueError, match="gene_links has none of the peaks"):
        ConAAE.setup_mudata(mdata, labels_key="cell_type", gene_links=other_peaks)
    other_genes = links.copy()
    other_genes.var_names = [f"ENSG{i}" for i in range(other_genes.n_vars)]
    with pytest.raises(ValueError, match="link no peak to any gene of the RNA modality"):
        ConAAE.setup_mudata(mdata, labels_key="cell_type", gene_links=other_genes)


def test_own_representation_is_the_same_for_sparse_and_dense_counts():
    from conaae_scverse._cell_representation import own_representation

    rng = np.random.default_rng(5)
    counts = rng.poisson(1.0, size=(80, 30)).astype(np.float32)
    dense = own_representation(counts, log1p=True, rng=np.random.default_rng(0), n_comps=5)
    csr = own_representation(
        sparse.csr_matrix(counts), log1p=True, rng=np.random.default_rng(0), n_comps=5
    )
    assert dense.shape == (80, 5)
    # Principal components are defined up to sign.
    np.testing.assert_allclose(np.abs(dense), np.abs(csr), rtol=1e-5, atol=1e-6)


def test_labelled_modalities_train_exactly_as_without_a_prior(make_mudata):
    # Both modalities labelled: the prior is never fitted, so "auto" and "none" agree exactly.
    mdata = make_mudata(labels="both")
    ConAAE.setup_mudata(mdata, labels_key="cell_type")
    latents = []
    for prior in ("auto", "none"):
        model = ConAAE(mdata, n_latent=4, n_hidden=(8,), label_prior=prior, seed=3)
        model.train(max_epochs=2, accelerator="cpu", enable_progress_bar=False)
        latents.append(model.get_latent_representation(modality="atac"))
    np.testing.assert_array_equal(latents[0], latents[1])


def test_ot_prior_with_fewer_cells_than_clusters(make_mudata):
    """One unlabelled ATAC cell: one cluster per side, not a clustering error."""
    mdata = make_mudata(n_rna=4, n_atac=1, labels="rna")
    ConAAE.setup_mudata(mdata, labels_key="cell_type")
    model = ConAAE(mdata, n_latent=2, n_hidden=[3])
    assert model.prior_modality_ == "atac"
    assert model.label_prior_.probabilities.shape == (1, 2)
    np.testing.assert_allclose(model.label_prior_.probabilities.sum(axis=1), 1.0)
