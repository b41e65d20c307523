"""Bad input gets one clear error, before training starts, and leaves the MuData untouched.

Every test checks three things: the exception type, that its message names the culprit (the
modality, key or value) and the fix, and that the user's MuData is exactly as it was.
"""

from __future__ import annotations

import hashlib
from typing import Any

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from conaae_scverse import ConAAE

SMALL = {"n_rna": 12, "n_atac": 10, "n_genes": 6, "n_peaks": 5}
TINY_NET = {"n_latent": 2, "n_hidden": [4]}


# ------------------------------------------------------------------------------- snapshot
def _digest(matrix: Any) -> tuple:
    """Type, shape, dtype and content hash of a matrix (dense, sparse or anything else)."""
    if matrix is None:
        return ("None",)
    if sparse.issparse(matrix):
        h = hashlib.sha256()
        for part in (matrix.data, matrix.indices, matrix.indptr):
            h.update(np.ascontiguousarray(part).tobytes())
        return (type(matrix).__name__, matrix.shape, str(matrix.dtype), h.hexdigest())
    if isinstance(matrix, np.ndarray):
        raw = (
            repr(matrix.tolist()).encode()
            if matrix.dtype == object
            else np.ascontiguousarray(matrix).tobytes()
        )
        return ("ndarray", matrix.shape, str(matrix.dtype), hashlib.sha256(raw).hexdigest())
    return (type(matrix).__name__, getattr(matrix, "shape", None))


def _adata_state(adata: ad.AnnData) -> dict[str, Any]:
    return {
        "shape": adata.shape,
        "obs": adata.obs.copy(deep=True),
        "var": adata.var.copy(deep=True),
        "obsm": sorted(adata.obsm.keys()),
        "varm": sorted(adata.varm.keys()),
        "obsp": sorted(adata.obsp.keys()),
        "layers": {k: _digest(v) for k, v in adata.layers.items()},
        "layer_ids": {k: id(v) for k, v in adata.layers.items()},
        "uns": sorted(adata.uns.keys()),
        "X": _digest(adata.X),
        "X_id": id(adata.X),
    }


def snapshot(mdata: md.MuData) -> dict[str, Any]:
    """Everything a setup or model might write into a MuData, to compare after an error."""
    return {
        "mods": list(mdata.mod),
        "mod_ids": {name: id(a) for name, a in mdata.mod.items()},
        "obs": mdata.obs.copy(deep=True),
        "var": mdata.var.copy(deep=True),
        "obsm": sorted(mdata.obsm.keys()),
        "uns": sorted(mdata.uns.keys()),
        "per_mod": {name: _adata_state(a) for name, a in mdata.mod.items()},
    }


def assert_unchanged(mdata: md.MuData, before: dict[str, Any]) -> None:
    after = snapshot(mdata)
    assert after["mods"] == before["mods"]
    assert after["mod_ids"] == before["mod_ids"]
    for key in ("obsm", "uns"):
        assert after[key] == before[key], key
    pd.testing.assert_frame_equal(after["obs"], before["obs"])
    pd.testing.assert_frame_equal(after["var"], before["var"])
    for name, state in before["per_mod"].items():
        now = after["per_mod"][name]
        for key, value in state.items():
            if isinstance(value, pd.DataFrame):
                pd.testing.assert_frame_equal(now[key], value, obj=f"{name}.{key}")
            else:
                assert now[key] == value, f"mdata.mod[{name!r}].{key} changed"


@pytest.fixture
def small(make_mudata):
    """Factory of tiny MuData objects (12 RNA and 10 ATAC cells, 6 genes, 5 peaks)."""
    return lambda **kwargs: make_mudata(**{**SMALL, **kwargs})


def setup_fails(mdata, exc, match, **setup_kwargs) -> None:
    before = snapshot(mdata)
    with pytest.raises(exc, match=match):
        ConAAE.setup_mudata(mdata, **setup_kwargs)
    assert_unchanged(mdata, before)


def model_fails(mdata, exc, match, *, setup: dict | None = None, **model_kwargs) -> None:
    ConAAE.setup_mudata(mdata, **(setup or {}))
    before = snapshot(mdata)
    with pytest.raises(exc, match=match):
        ConAAE(mdata, **{**TINY_NET, **model_kwargs})
    assert_unchanged(mdata, before)


def test_snapshot_detects_changes(small):
    """The helper itself notices every kind of write that the tests guard against."""
    writes = [
        lambda m: m.mod["rna"].obsm.__setitem__("X_new", np.zeros((m.mod["rna"].n_obs, 1))),
        lambda m: m.mod["rna"].obs.__setitem__("new", 1),
        lambda m: m.mod["atac"].uns.__setitem__("new", 1),
        lambda m: m.mod["atac"].layers.__setitem__("new", m.mod["atac"].X.copy()),
        lambda m: m.mod["rna"].X.data.__setitem__(0, 99.0),
        lambda m: m.uns.__setitem__("new", 1),
    ]
    for write in writes:
        mdata = small()
        before = snapshot(mdata)
        write(mdata)
        with pytest.raises(AssertionError):
            assert_unchanged(mdata, before)


# ------------------------------------------------------------------------------- the MuData
def test_not_a_mudata(small):
    adata = small().mod["rna"]
    with pytest.raises(TypeError, match=r"Expected a mudata.MuData, got AnnData.*MuData\("):
        ConAAE.setup_mudata(adata)


def test_missing_modality(small):
    setup_fails(
        small(),
        KeyError,
        r"Modality 'protein' \(given as `atac_mod`\) is not in the MuData; available "
        r"modalities: \['rna', 'atac'\]. Pass `atac_mod=`",
        atac_mod="protein",
    )


def test_same_modality_twice(small):
    setup_fails(
        small(),
        ValueError,
        r"rna_mod and atac_mod are both 'rna'; they must name two different modalities",
        rna_mod="rna",
        atac_mod="rna",
    )


def test_modality_name_not_a_string(small):
    setup_fails(small(), TypeError, r"`rna_mod` must be a string naming a modality", rna_mod=0)


@pytest.mark.parametrize(
    ("subset", "shape"),
    [((slice(0, 0), slice(None)), r"\(0, 5\)"), ((slice(None), slice(0, 0)), r"\(10, 0\)")],
    ids=["no_cells", "no_features"],
)
def test_empty_modality(small, subset, shape):
    base = small()
    mdata = md.MuData({"rna": base.mod["rna"], "atac": base.mod["atac"][subset].copy()})
    setup_fails(
        mdata,
        ValueError,
        rf"Modality 'atac' has shape {shape}: it needs at least one cell and one feature",
    )


def test_missing_layer(small):
    setup_fails(
        small(layer="counts"),
        KeyError,
        r"Layer 'raw' is not in modality 'atac'; available layers: \['counts'\]. Pass one of "
        r"these, or None",
        rna_layer="counts",
        atac_layer="raw",
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_non_finite_values(small, bad, fmt):
    mdata = small(fmt=fmt)
    matrix = mdata.mod["rna"].X
    if sparse.issparse(matrix):
        matrix.data[0] = bad
    else:
        matrix[0, 0] = bad
    setup_fails(
        mdata,
        ValueError,
        r"mdata.mod\['rna'\].X contains NaN or infinite values. Remove or impute them",
    )


def test_non_finite_values_in_layer(small):
    mdata = small(layer="counts")
    mdata.mod["atac"].layers["counts"].data[0] = np.nan
    setup_fails(
        mdata,
        ValueError,
        r"mdata.mod\['atac'\].layers\['counts'\] contains NaN or infinite values",
        rna_layer="counts",
        atac_layer="counts",
    )


def test_negative_values_with_log1p(small):
    mdata = small(fmt="dense")
    mdata.mod["rna"].X[0, 0] = -1.0
    model_fails(
        mdata,
        ValueError,
        r"Modality 'rna' has negative values, but input_transform='log1p' expects counts. "
        r"Pass raw counts .* or use input_transform='none'",
        input_transform="log1p",
    )


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        (lambda x: x.astype(object), "object"),
        (lambda x: x.astype(str), "<U32"),
        (lambda x: x.astype(np.complex64), "complex64"),
    ],
    ids=["object", "string", "complex"],
)
def test_non_numeric_dtype(small, values, dtype):
    base = small(fmt="dense")
    rna = base.mod["rna"]
    bad = ad.AnnData(values(rna.X), obs=rna.obs.copy(), var=rna.var.copy())
    mdata = md.MuData({"rna": bad, "atac": base.mod["atac"]})
    match = (
        r"mdata.mod\['rna'\].X has complex dtype complex64; it must be real-valued"
        if dtype == "complex64"
        else rf"mdata.mod\['rna'\].X has dtype {dtype}; it must be numeric. Convert it with "
        r"`.astype\(float\)`"
    )
    setup_fails(mdata, TypeError, match)


def test_x_is_none(small):
    base = small(layer="counts")
    base.mod["rna"].X = None
    setup_fails(base, ValueError, r"mdata.mod\['rna'\].X is empty \(None\). Pass the layer")


# ------------------------------------------------------------------------------- labels
def test_labels_key_missing_in_both(small):
    setup_fails(
        small(),
        KeyError,
        r"labels_key 'celltype' is in the obs of neither modality \('rna', 'atac'\). Add the "
        r"column to at least one modality, or pass labels_key=None",
        labels_key="celltype",
    )


def test_labels_key_not_a_string(small):
    setup_fails(small(), TypeError, r"labels_key must be a column name", labels_key=3)


def test_label_column_all_nan(small):
    mdata = small(labels="rna")
    mdata.mod["rna"].obs["cell_type"] = np.nan
    setup_fails(
        mdata,
        ValueError,
        r"labels_key 'cell_type' is NaN for every cell: nothing to learn from. Fill in labels "
        r"for some cells, or pass labels_key=None",
        labels_key="cell_type",
    )


def test_single_label_category(small):
    mdata = small(n_labels=1)
    model_fails(
        mdata,
        ValueError,
        r"labels_key 'cell_type' has a single category \('alpha'\); the supervised contrastive "
        r"loss needs at least two. Use contrastive='self_supervised'",
        setup={"labels_key": "cell_type"},
    )


def test_single_label_category_is_fine_without_supervised_contrast(small):
    mdata = small(n_labels=1)
    ConAAE.setup_mudata(mdata, labels_key="cell_type")
    before = snapshot(mdata)
    ConAAE(mdata, contrastive="self_supervised", **TINY_NET)
    assert_unchanged(mdata, before)


def test_supervised_contrast_without_labels(small):
    model_fails(
        small(), ValueError, r"contrastive='supervised' needs labels", contrastive="supervised"
    )


# ------------------------------------------------------------------------------- cells
def test_duplicate_obs_names(small):
    base = small()
    rna = base.mod["rna"].copy()
    rna.obs_names = ["same"] * 3 + list(rna.obs_names[3:])
    with pytest.warns(UserWarning):  # mudata itself warns about them
        mdata = md.MuData({"rna": rna, "atac": base.mod["atac"]})
    setup_fails(
        mdata,
        ValueError,
        r"Modality 'rna' has duplicate obs_names \(e.g. \['same', 'same'\]\); cell matches "
        r"would be ambiguous. Make them unique, e.g. `mdata.mod\['rna'\].obs_names_make_unique",
    )


def test_duplicate_var_names(small):
    base = small()
    atac = base.mod["atac"].copy()
    atac.var_names = ["peak"] * atac.n_vars
    mdata = md.MuData({"rna": base.mod["rna"], "atac": atac})
    setup_fails(mdata, ValueError, r"Modality 'atac' has duplicate var_names .*var_names_make_")


@pytest.mark.parametrize(("n_cells", "train_size"), [(1, 0.9), (4, 0.25)])
def test_fewer_cells_than_a_minibatch_needs(small, n_cells, train_size):
    base = small()
    mdata = md.MuData({"rna": base.mod["rna"][:n_cells].copy(), "atac": base.mod["atac"]})
    ConAAE.setup_mudata(mdata)
    model = ConAAE(mdata, **TINY_NET)
    before = snapshot(mdata)
    with pytest.raises(
        ValueError,
        match=r"Modality 'rna' has 1 training cell\(s\); a minibatch needs at least 2 "
        r"\(BatchNorm\). Use more cells or a larger train_size",
    ):
        model.train(max_epochs=1, train_size=train_size, enable_progress_bar=False)
    assert_unchanged(mdata, before)
    assert not model.is_trained and model.history == {}


def test_backed_mudata_leaves_its_file_unchanged(small, tmp_path):
    """A backed MuData is read, never written, by setup and model building."""
    path = tmp_path / "data.h5mu"
    small().write(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    backed = md.read_h5mu(path, backed=True)
    try:
        assert backed.isbacked
        ConAAE.setup_mudata(backed, labels_key="cell_type")
        ConAAE(backed, n_input_components=3)
        assert list(backed.mod) == ["rna", "atac"]
    finally:
        backed.file.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_model_on_mudata_not_set_up(small):
    mdata = small()
    before = snapshot(mdata)
    with pytest.raises(ValueError, match=r"This MuData has not been set up. Call `ConAAE.setup"):
        ConAAE(mdata)
    assert_unchanged(mdata, before)


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.mod.__delitem__("atac"),
        lambda m: setattr(m.mod["atac"], "X", m.mod["atac"].X.copy()),
        lambda m: m.mod.__setitem__("rna", m.mod["rna"][:5].copy()),
    ],
    ids=["modality removed", "matrix replaced", "modality subset"],
)
def test_mudata_changed_after_setup(small, change):
    mdata = small()
    ConAAE.setup_mudata(mdata)
    change(mdata)
    before = snapshot(mdata)
    with pytest.raises(ValueError, match=r"changed since ConAAE.setup_mudata"):
        ConAAE(mdata, **TINY_NET)
    assert_unchanged(mdata, before)
    if "atac" in mdata.mod:  # set up again, it builds
        ConAAE.setup_mudata(mdata)
        ConAAE(mdata, **TINY_NET)


def test_setup_scans_the_values_once(small, monkeypatch):
    from conaae_scverse import _data

    mdata = small()
    ConAAE.setup_mudata(mdata)
    scans = []
    get_matrix = _data.get_matrix
    monkeypatch.setattr(_data, "get_matrix", lambda *a: scans.append(a) or get_matrix(*a))
    ConAAE(mdata, **TINY_NET)
    ConAAE(mdata, **TINY_NET)
    assert scans == []


def test_values_too_large_to_standardise(small):
    mdata = small(fmt="dense")
    atac = mdata.mod["atac"]
    atac.X = atac.X.astype(np.float64)
    atac.X[:, 0] = 1e200  # finite, but its square is not
    model_fails(
        mdata,
        ValueError,
        r"Modality 'atac' has values too large to standardise",
        input_transform="none",
    )


# ------------------------------------------------------------------------------- new data
def _with_features(mdata: md.MuData, mod: str, names: list[str]) -> md.MuData:
    adatas = {name: a.copy() for name, a in mdata.mod.items()}
    adatas[mod].var_names = names
    return md.MuData(adatas)


def test_prediction_on_data_with_other_features(small):
    mdata = small()
    ConAAE.setup_mudata(mdata)
    model = ConAAE(mdata, **TINY_NET)
    genes = list(mdata.mod["rna"].var_names)
    other = _with_features(mdata, "rna", [*genes[:-1], "new_gene"])
    before = snapshot(other)
    with pytest.raises(
        ValueError,
        match=r"Modality 'rna' does not have the model's features: it has 6, the model was "
        r"trained on 6; 1 training features missing \(e.g. \['gene_5'\]\), 1 unknown \(e.g. "
        r"\['new_gene'\]\). Use data with exactly the training features",
    ):
        model.get_latent_representation(other, "rna")
    assert_unchanged(other, before)


def test_prediction_on_data_with_reordered_features(small):
    mdata = small()
    ConAAE.setup_mudata(mdata)
    model = ConAAE(mdata, **TINY_NET)
    other = md.MuData({"rna": mdata.mod["rna"][:, ::-1].copy(), "atac": mdata.mod["atac"]})
    before = snapshot(other)
    with pytest.raises(ValueError, match=r"Modality 'rna' has the model's features in another"):
        model.match_cells(other)
    assert_unchanged(other, before)


def test_prediction_on_data_with_negative_values_for_a_counts_model(small):
    mdata = small(fmt="dense")
    ConAAE.setup_mudata(mdata)
    model = ConAAE(mdata, **TINY_NET)
    other = md.MuData({name: a.copy() for name, a in mdata.mod.items()})
    other.mod["atac"].X[0, 0] = -2.0
    before = snapshot(other)
    with pytest.raises(ValueError, match=r"Modality 'atac' has negative values, but the model"):
        model.get_latent_representation(other, "atac")
    assert_unchanged(other, before)


def test_load_onto_data_with_other_features(small, tmp_path):
    mdata = small()
    ConAAE.setup_mudata(mdata)
    ConAAE(mdata, **TINY_NET).save(tmp_path / "model")
    other = _with_features(mdata, "atac", [f"chr1:{i}" for i in range(mdata.mod["atac"].n_vars)])
    before = snapshot(other)
    with pytest.raises(
        ValueError,
        match=r"Modality 'atac' does not have the model's features: it has 5, the model was "
        r"trained on 5; 5 training features missing",
    ):
        ConAAE.load(tmp_path / "model", other, accelerator="cpu")
    assert_unchanged(other, before)


# ------------------------------------------------------------------------------- hyperparameters
@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"n_latent": 0}, ValueError, r"n_latent must be a positive integer, got 0"),
        ({"n_latent": 2.5}, ValueError, r"n_latent must be a positive integer, got 2.5"),
        ({"n_latent": True}, ValueError, r"n_latent must be a positive integer, got True"),
        ({"n_hidden": [4, 0]}, ValueError, r"n_hidden widths must be positive integers"),
        ({"n_hidden": 128}, TypeError, r"n_hidden must be a sequence of positive integers"),
        ({"n_hidden": ["a"]}, TypeError, r"n_hidden must be a sequence of positive integers"),
        ({"n_hidden": [8.5]}, TypeError, r"n_hidden must be a sequence of positive integers"),
        ({"n_hidden": "wide"}, ValueError, r"n_hidden must be .* or 'paper', got 'wide'"),
        ({"alignment": "gan"}, ValueError, r"alignment must be one of \('adversarial', 'mmd'"),
        ({"contrastive": "yes"}, ValueError, r"contrastive must be one of \('auto'"),
        ({"loss_weights": {"cycle": -1}}, ValueError, r"Loss weight 'cycle' must be a finite"),
        ({"loss_weights": {"cycle": np.nan}}, ValueError, r"Loss weight 'cycle' must be a fin"),
        ({"loss_weights": {"cycle": "1"}}, ValueError, r"Loss weight 'cycle' must be a finite"),
        ({"loss_weights": {"cyc": 1}}, ValueError, r"Unknown loss weight 'cyc'; known terms"),
        ({"loss_weights": [1.0]}, TypeError, r"loss_weights must be a dict, got list"),
        ({"margin": -0.1}, ValueError, r"margin must be a finite number >= 0, got -0.1"),
        ({"augmentation_noise": np.inf}, ValueError, r"augmentation_noise must be a finite"),
        ({"dropout": 1.0}, ValueError, r"dropout must be a number in \[0, 1\), got 1.0"),
        ({"dropout": "x"}, ValueError, r"dropout must be a number in \[0, 1\), got 'x'"),
        ({"latent_batch_norm": "yes"}, TypeError, r"latent_batch_norm must be True or False"),
        ({"seed": -1}, ValueError, r"seed must be a non-negative integer, got -1"),
        ({"seed": 1.5}, ValueError, r"seed must be a non-negative integer, got 1.5"),
        ({"input_transform": "log"}, ValueError, r"must be 'auto', 'log1p', 'normalize_log1p' or"),
        ({"input_transform": {"rna": "lg"}}, ValueError, r"input_transform must be 'auto'"),
        ({"input_transform": 3}, TypeError, r"input_transform must be a dict, got int"),
        ({"input_transform": {"prot": "none"}}, KeyError, r"input_transform has keys \['prot'"),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, dict) else "",
)
def test_bad_hyperparameters(small, kwargs, exc, match):
    model_fails(small(), exc, match, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"batch_size": 0}, ValueError, r"batch_size must be an integer >= 2 \(BatchNorm"),
        ({"batch_size": 1}, ValueError, r"batch_size must be an integer >= 2 \(BatchNorm"),
        ({"batch_size": 8.0}, ValueError, r"batch_size must be an integer >= 2"),
        ({"max_epochs": 0}, ValueError, r"max_epochs must be a positive integer, got 0"),
        ({"lr": 0}, ValueError, r"lr must be a positive number, got 0"),
        ({"lr": -1e-3}, ValueError, r"lr must be a positive number, got -0.001"),
        ({"lr": float("nan")}, ValueError, r"lr must be a positive number, got nan"),
        ({"lr": "fast"}, ValueError, r"lr must be a positive number, got 'fast'"),
        ({"train_size": 0}, ValueError, r"train_size must be in \(0, 1\], got 0"),
        ({"train_size": 1.5}, ValueError, r"train_size must be in \(0, 1\], got 1.5"),
        ({"train_size": "all"}, ValueError, r"train_size must be in \(0, 1\], got 'all'"),
        ({"validation_size": -0.1}, ValueError, r"validation_size must be in \[0, 1\]"),
        (
            {"train_size": 0.8, "validation_size": 0.5},
            ValueError,
            r"train_size \+ validation_size must be at most 1",
        ),
        ({"early_stopping_patience": 0}, ValueError, r"early_stopping_patience must be an int"),
        ({"n_epochs_warmup": -1}, ValueError, r"n_epochs_warmup must be an integer >= 0"),
        ({"check_val_every_n_epoch": 0}, ValueError, r"check_val_every_n_epoch must be an int"),
        ({"seed": -3}, ValueError, r"seed must be an integer >= 0, got -3"),
        ({"plan_kwargs": [1]}, TypeError, r"plan_kwargs must be a dict, got list"),
        ({"plan_kwargs": {"lr": 1.0}}, TypeError, r"Pass lr as an argument of train \(lr=...\)"),
        ({"plan_kwargs": {"wd": 1.0}}, TypeError, r"Unknown plan_kwargs key 'wd'; the training"),
        (
            {"plan_kwargs": {"lr_schedule": "step"}},
            ValueError,
            r"lr_schedule must be one of \('constant', 'cosine'\), got 'step'",
        ),
        (
            {"early_stopping": True, "train_size": 1.0},
            ValueError,
            r"early_stopping needs validation cells: use train_size < 1",
        ),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, dict) else "",
)
def test_bad_train_arguments(small, kwargs, exc, match):
    mdata = small()
    ConAAE.setup_mudata(mdata)
    model = ConAAE(mdata, **TINY_NET)
    weights = {k: v.clone() for k, v in model.module.state_dict().items()}
    before = snapshot(mdata)
    with pytest.raises(exc, match=match):
        model.train(**{"max_epochs": 1, **kwargs}, enable_progress_bar=False)
    assert_unchanged(mdata, before)
    # Refused before training started: no trainer, no history, same weights.
    assert not hasattr(model, "trainer")
    assert model.history == {} and not model.is_trained
    for key, value in model.module.state_dict().items():
        assert bool((value == weights[key]).all()), key
