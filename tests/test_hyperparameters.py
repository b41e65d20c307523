"""The frozen hyperparameter object: normalised, validated, round-tripped, in step with ConAAE."""

from __future__ import annotations

import dataclasses
import inspect
import json

import numpy as np
import pytest

from conaae_scverse import ConAAE
from conaae_scverse._hyperparameters import Hyperparameters


def test_conaae_signature_defaults_are_the_hyperparameter_defaults():
    signature = inspect.signature(ConAAE.__init__).parameters
    names = [name for name in signature if name not in ("self", "mdata")]
    assert names == Hyperparameters.names()
    defaults = Hyperparameters()
    for name in names:
        default = signature[name].default
        expected = getattr(defaults, name)
        if name == "loss_weights":
            assert default is None and expected == {}
        else:
            assert (list(default) if name == "n_hidden" else default) == (
                list(expected) if name == "n_hidden" else expected
            ), name


def test_is_frozen_and_keeps_no_reference_to_the_callers_objects():
    weights = {"cycle": 2.0}
    params = Hyperparameters(loss_weights=weights, n_hidden=np.array([64, 32]))
    weights["cycle"] = 99.0
    assert params.loss_weights == {"cycle": 2.0}
    assert params.n_hidden == (64, 32) and all(type(h) is int for h in params.n_hidden)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.n_latent = 3


def test_round_trips_through_json():
    params = Hyperparameters(
        n_latent=8, n_hidden=[16], loss_weights={"mmd": 1.0}, input_transform={"rna": "none"}
    )
    restored = Hyperparameters.from_dict(json.loads(json.dumps(params.to_dict())))
    assert restored == params
    assert Hyperparameters.from_dict({}) == Hyperparameters()


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        ({"evil": 1}, KeyError, r"unknown hyperparameters \['evil'\]"),
        ({"n_latent": 0}, ValueError, "n_latent must be a positive integer"),
        ({"n_hidden": "wide"}, ValueError, "n_hidden must be a sequence"),
        ({"n_hidden": [8, "x"]}, TypeError, "n_hidden must be a sequence"),
        ({"loss_weights": {"cycle": -1}}, ValueError, "Loss weight 'cycle'"),
        ({"label_prior": "magic"}, ValueError, "label_prior must be one of"),
        ({"dropout": 1.0}, ValueError, r"dropout must be a number in \[0, 1\)"),
        ({"input_transform": {"rna": "sqrt"}}, ValueError, "input_transform must be"),
    ],
)
def test_refuses_invalid_values(values, error, match):
    with pytest.raises(error, match=match):
        Hyperparameters.from_dict(values)
