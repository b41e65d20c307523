"""Saving and loading: round trip, untrusted and damaged files, atomic saving."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from test_validation import assert_unchanged, snapshot

from conaae_scverse import ConAAE
from conaae_scverse import _model as model_impl
from conaae_scverse import _persistence as persistence
from conaae_scverse._persistence import SETTINGS_FILE, WEIGHTS_FILE, ModelFileError

SMALL = {"n_rna": 16, "n_atac": 14, "n_genes": 6, "n_peaks": 5}
NET = {"n_latent": 3, "n_hidden": [7]}


@pytest.fixture
def mdata(make_mudata):
    data = make_mudata(**SMALL)
    ConAAE.setup_mudata(data, labels_key="cell_type")
    return data


@pytest.fixture
def model(mdata):
    return ConAAE(mdata, **NET)


@pytest.fixture
def saved(model, tmp_path) -> Path:
    path = tmp_path / "model"
    model.save(path)
    return path


def load(path, mdata):
    return ConAAE.load(path, mdata, accelerator="cpu")


def tree(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (hidden ones included) with its content."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------------------- round trip
def test_round_trip_gives_the_same_model(model, saved, mdata):
    model.train(max_epochs=1, batch_size=8, enable_progress_bar=False, accelerator="cpu")
    model.save(saved, overwrite=True)
    before = snapshot(mdata)
    loaded = load(saved, mdata)
    assert_unchanged(mdata, before)
    np.testing.assert_array_equal(
        loaded.get_latent_representation(), model.get_latent_representation()
    )
    assert loaded.is_trained and loaded.history.keys() == model.history.keys()
    assert loaded.label_categories_ == model.label_categories_


def test_save_holds_only_tensors_and_json(saved):
    assert sorted(os.listdir(saved)) == [WEIGHTS_FILE, SETTINGS_FILE]
    state = torch.load(saved / WEIGHTS_FILE, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert json.loads((saved / SETTINGS_FILE).read_text())["format"] == "conaae-scverse"


def test_numpy_hyperparameters_can_be_saved(mdata, tmp_path):
    model = ConAAE(mdata, n_latent=np.int64(3), n_hidden=np.array([5]), seed=np.int32(2))
    model.save(tmp_path / "m")
    loaded = load(tmp_path / "m", mdata)
    assert loaded.module.n_latent == 3


# ------------------------------------------------------------------------------- untrusted files
class _Payload:
    """Unpickling this creates ``marker``: a stand-in for arbitrary code execution."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant_raw_pickle(path: Path, marker: Path) -> None:
    with open(path, "wb") as handle:
        pickle.dump({"encoders.rna.0.weight": _Payload(marker)}, handle)


def _plant_torch_pickle(path: Path, marker: Path) -> None:
    torch.save({"encoders.rna.0.weight": _Payload(marker)}, path)


@pytest.mark.parametrize("plant", [_plant_raw_pickle, _plant_torch_pickle])
def test_malicious_pickle_is_refused_without_running_it(saved, mdata, tmp_path, plant):
    marker = tmp_path / "pwned"
    # The payload is live: a plain unpickler does run it.
    probe = tmp_path / "probe.pkl"
    plant(probe, marker)
    if plant is _plant_raw_pickle:
        with open(probe, "rb") as handle:
            unpickled = pickle.load(handle)
    else:
        unpickled = torch.load(probe, weights_only=False)
    unpickled["encoders.rna.0.weight"].close()
    assert marker.exists()
    marker.unlink()

    plant(saved / WEIGHTS_FILE, marker)
    with pytest.raises(
        ModelFileError,
        match=r"Refused to load .*model.pt': it is not a plain tensor state dict written by "
        r"ConAAE.save \(UnpicklingError: Unsupported .*\). It may be truncated, damaged or "
        r"tampered with; never load it with torch.load\(weights_only=False\)",
    ) as info:
        load(saved, mdata)
    assert not marker.exists()
    assert "will likely succeed" not in str(info.value)  # PyTorch's advice is not passed on


def test_malicious_pickle_in_settings_is_never_unpickled(saved, mdata, tmp_path):
    marker = tmp_path / "pwned"
    (saved / SETTINGS_FILE).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ModelFileError, match=r"Could not read .*settings.json"):
        load(saved, mdata)
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0, 0.5, 0.95])
def test_truncated_weights(saved, mdata, keep):
    path = saved / WEIGHTS_FILE
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFileError, match=r"Refused to load .*It may be truncated, damaged"):
        load(saved, mdata)


def test_weights_that_are_not_a_state_dict(saved, mdata):
    torch.save(torch.zeros(3), saved / WEIGHTS_FILE)
    with pytest.raises(ModelFileError, match=r"does not hold a state dict of tensors"):
        load(saved, mdata)


def test_weights_with_wrong_shapes(saved, mdata):
    state = torch.load(saved / WEIGHTS_FILE, weights_only=True)
    state["classifier.weight"] = torch.zeros(5, 3)
    torch.save(state, saved / WEIGHTS_FILE)
    with pytest.raises(
        ModelFileError,
        match=r"(?s)The weights in .* do not fit its settings.*size mismatch for classifier",
    ):
        load(saved, mdata)


def test_weights_with_a_missing_tensor(saved, mdata):
    state = torch.load(saved / WEIGHTS_FILE, weights_only=True)
    del state["classifier.bias"]
    torch.save(state, saved / WEIGHTS_FILE)
    with pytest.raises(ModelFileError, match=r"(?s)do not fit its settings.*classifier.bias"):
        load(saved, mdata)


def test_weights_with_nan(saved, mdata):
    state = torch.load(saved / WEIGHTS_FILE, weights_only=True)
    state["classifier.bias"][0] = float("nan")
    torch.save(state, saved / WEIGHTS_FILE)
    with pytest.raises(ModelFileError, match=r"hold NaN or infinite values \('classifier.bias'"):
        load(saved, mdata)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", r"Could not read .*settings.json.*JSONDecodeError"),
        (b'{"format": "conaae-scverse", "format_ver', r"Could not read .*JSONDecodeError"),
        (b"\xff\xfe\x00garbage", r"Could not read .*UnicodeDecodeError"),
        (b"[" * 100_000 + b"]" * 100_000, r"Could not read .*(RecursionError|JSONDecodeError)"),
        (b"[1, 2, 3]", r"is not a conaae-scverse settings file"),
        (b'{"format": "scvi-tools", "model": "SCVI"}', r"is not a conaae-scverse settings file"),
    ],
    ids=["empty", "truncated", "binary", "deeply_nested", "list", "other_format"],
)
def test_corrupt_settings(saved, mdata, content, match):
    (saved / SETTINGS_FILE).write_bytes(content)
    with pytest.raises(ModelFileError, match=match):
        load(saved, mdata)


def _edit_settings(saved: Path, edit) -> None:
    path = saved / SETTINGS_FILE
    settings = json.loads(path.read_text())
    edit(settings)
    path.write_text(json.dumps(settings))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.pop("var_names"), r"fields \['var_names'\] are missing"),
        (lambda s: s.update(format_version=99), r"written by a newer conaae-scverse \(format 99"),
        (lambda s: s.update(format_version="1"), r"format_version is '1'"),
        (lambda s: s["setup"].update(extra=1), r"'setup' must have exactly the fields"),
        (lambda s: s["setup"].update(rna_mod=None), r"setup\['rna_mod'\] is None"),
        (lambda s: s.update(label_categories="alpha"), r"'label_categories' must be a list"),
        (lambda s: s["log1p"].update(rna="yes"), r"'log1p' must map 'rna' and 'atac'"),
        (lambda s: s["var_names"].update(rna=[1, 2]), r"'var_names' must map 'rna' and 'atac'"),
        (lambda s: s["init_params"].update(evil=1), r"init_params has unknown fields \['evil'\]"),
        (lambda s: s["init_params"].update(n_latent=0), r"invalid hyperparameters \(n_latent"),
        (lambda s: s["init_params"].update(n_hidden="x"), r"invalid hyperparameters \(n_hidden"),
        (lambda s: s.update(is_trained="yes"), r"'is_trained' must be true or false"),
        (lambda s: s.update(n_train_calls=-1), r"'n_train_calls' must be a non-negative"),
        (
            lambda s: s.update(label_temperature={"rna": 1.0, "atac": 0.5}),
            r"'label_temperature' must map 'rna' and 'atac' to numbers >= 1",
        ),
        (lambda s: s.update(history={"loss": {"index": [0]}}), r"history entry 'loss' is malf"),
    ],
    ids=lambda v: "" if callable(v) else v[:30],
)
def test_tampered_settings(saved, mdata, edit, match):
    _edit_settings(saved, edit)
    with pytest.raises(ModelFileError, match=match):
        load(saved, mdata)


def test_tampered_layer_sizes_are_refused_before_allocating(saved, mdata, monkeypatch):
    _edit_settings(saved, lambda s: s["init_params"].update(n_hidden=[10**9]))
    built = []
    monkeypatch.setattr(model_impl, "ConAAEModule", lambda *a, **k: built.append(1))
    with pytest.raises(
        ModelFileError,
        match=r"settings and weights in .* do not match: layer sizes \[1000000000\] from "
        r"settings.json appear in no tensor of model.pt",
    ):
        load(saved, mdata)
    assert not built


@pytest.mark.parametrize("missing", [WEIGHTS_FILE, SETTINGS_FILE])
def test_missing_files(saved, mdata, missing):
    (saved / missing).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{missing}' not found: is .* a model directory"):
        load(saved, mdata)


def test_missing_directory(tmp_path, mdata):
    with pytest.raises(FileNotFoundError, match=r"not found: is .* a model directory"):
        load(tmp_path / "nowhere", mdata)


# ------------------------------------------------------------------------------- atomic saving
def test_save_refuses_to_overwrite(model, saved):
    before = tree(saved)
    with pytest.raises(FileExistsError, match=r"already exists. Pass overwrite=True"):
        model.save(saved)
    assert tree(saved) == before


def test_save_overwrites_a_model_when_asked(model, saved, mdata):
    model.train(max_epochs=1, batch_size=8, enable_progress_bar=False, accelerator="cpu")
    model.save(saved, overwrite=True)
    assert sorted(os.listdir(saved.parent)) == ["model"]  # no temporary directory left
    np.testing.assert_array_equal(
        load(saved, mdata).get_latent_representation(), model.get_latent_representation()
    )


def test_save_into_an_empty_directory(model, tmp_path, mdata):
    (tmp_path / "empty").mkdir()
    model.save(tmp_path / "empty", overwrite=True)
    assert sorted(os.listdir(tmp_path / "empty")) == [WEIGHTS_FILE, SETTINGS_FILE]


def test_overwrite_refuses_a_directory_that_is_not_a_model(model, tmp_path):
    precious = tmp_path / "results"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"is not a saved ConAAE model .* refusing"):
        model.save(precious, overwrite=True)
    assert tree(precious) == {"notes.txt": b"keep me"}


def _failing(*args, **kwargs):
    raise OSError("No space left on device")


def test_failed_save_leaves_no_target_and_no_temporary_directory(model, tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", _failing)
    with pytest.raises(OSError, match="No space left"):
        model.save(tmp_path / "model")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("where", ["torch_save", "json", "rename"])
def test_failed_overwrite_keeps_the_previous_model(model, saved, mdata, monkeypatch, where):
    before = tree(saved)
    model.train(max_epochs=1, batch_size=8, enable_progress_bar=False, accelerator="cpu")
    if where == "torch_save":
        monkeypatch.setattr(torch, "save", _failing)
    elif where == "json":
        monkeypatch.setattr(persistence.json, "dumps", _failing)
    else:
        real_replace = os.replace
        calls = []

        def replace(src, dst):
            calls.append(dst)
            if len(calls) == 2:  # the new directory moving into place
                raise OSError("No space left on device")
            return real_replace(src, dst)

        monkeypatch.setattr(persistence.os, "replace", replace)
    with pytest.raises(OSError, match="No space left"):
        model.save(saved, overwrite=True)
    assert sorted(os.listdir(saved.parent)) == ["model"]
    assert tree(saved) == before
    load(saved, mdata)  # still a valid model
