"""Label confidence of the modality without labels: temperature from agreement with the prior."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conaae_scverse import OUTPUT_KEYS, ConAAE
from conaae_scverse._calibration import agreement_temperature, softmax, temperature_for

TRAIN = {"batch_size": 32, "accelerator": "cpu", "enable_progress_bar": False}


def _mean_confidence(logits: np.ndarray, temperature: float) -> float:
    return float(softmax(logits, temperature).max(axis=1).mean())


def test_softmax_rows_are_probabilities_and_temperature_softens():
    logits = np.random.default_rng(0).normal(size=(50, 4)) * 5
    sharp, soft = softmax(logits), softmax(logits, 4.0)
    np.testing.assert_allclose(sharp.sum(axis=1), 1)
    np.testing.assert_allclose(soft.sum(axis=1), 1)
    np.testing.assert_array_equal(sharp.argmax(axis=1), soft.argmax(axis=1))
    assert (soft.max(axis=1) <= sharp.max(axis=1) + 1e-12).all()


def test_temperature_reaches_the_target_confidence_and_only_softens():
    logits = np.random.default_rng(1).normal(size=(200, 5)) * 6
    before = _mean_confidence(logits, 1.0)
    for target in (0.3, 0.5, 0.7):
        temperature = temperature_for(logits, target)
        assert temperature > 1
        assert _mean_confidence(logits, temperature) == pytest.approx(target, abs=1e-4)
    # A target at or above today's confidence needs no change: never sharpened.
    assert temperature_for(logits, before) == 1.0
    assert temperature_for(logits, 1.0) == 1.0


def test_agreement_temperature_follows_the_share_of_agreeing_cells():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(400, 4)) * 8
    labels = logits.argmax(axis=1)
    agreeing = np.eye(4)[labels]
    assert agreement_temperature(logits, agreeing) == 1.0  # full agreement: unchanged
    disagree = rng.random(400) < 0.5  # half the cells get another prior label
    prior = np.eye(4)[np.where(disagree, (labels + 1) % 4, labels)]
    share = np.mean(~disagree)
    temperature = agreement_temperature(logits, prior)
    assert _mean_confidence(logits, temperature) == pytest.approx(share, abs=1e-4)


def test_the_modality_without_labels_gets_a_temperature_that_predict_and_outputs_use(
    make_mudata, tmp_path
):
    mdata = make_mudata(labels="rna")
    with pytest.warns(UserWarning, match="no labels in modality"):
        ConAAE.setup_mudata(mdata, labels_key="cell_type")
    model = ConAAE(mdata, n_latent=4, n_hidden=(8,))
    assert model.label_temperature_ == {"rna": 1.0, "atac": 1.0}  # untrained: none fitted
    model.train(max_epochs=3, **TRAIN)
    temperature = model.label_temperature_
    assert temperature["rna"] == 1.0 and temperature["atac"] >= 1.0
    z = model.get_latent_representation(modality="atac")
    with torch.inference_mode():
        logits = model.module.classify(torch.as_tensor(z)).numpy()
    expected = softmax(logits, temperature["atac"])
    soft = model.predict(modality="atac", soft=True).to_numpy()
    np.testing.assert_allclose(soft, expected, rtol=1e-5, atol=1e-6)
    # Softened to the share of cells whose label is the prior's (a uniform guess at least).
    agreement = np.mean(logits.argmax(axis=1) == model.label_prior_.probabilities.argmax(1))
    floor = 1 / logits.shape[1]
    assert temperature["atac"] > 1  # this tiny model is more confident than it agrees
    assert expected.max(axis=1).mean() == pytest.approx(max(agreement, floor), abs=2e-3)
    model.write_results()
    written = mdata.mod["atac"].obs[OUTPUT_KEYS.LABEL_CONFIDENCE].to_numpy()
    np.testing.assert_allclose(written, expected.max(axis=1), rtol=1e-5)
    model.save(tmp_path / "model")
    loaded = ConAAE.load(tmp_path / "model", mdata)
    assert loaded.label_temperature_ == pytest.approx(temperature)
    np.testing.assert_allclose(
        loaded.predict(modality="atac", soft=True).to_numpy(), soft, rtol=1e-5, atol=1e-6
    )


def test_labelled_modalities_keep_the_classifier_probabilities(make_mudata):
    mdata = make_mudata(labels="both")
    ConAAE.setup_mudata(mdata, labels_key="cell_type")
    model = ConAAE(mdata, n_latent=4, n_hidden=(8,))
    model.train(max_epochs=2, **TRAIN)
    assert model.label_temperature_ == {"rna": 1.0, "atac": 1.0}
