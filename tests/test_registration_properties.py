"""Property-based tests: any MuData either registers or fails with a documented error.

Random shapes (0-30 cells, 0-8 features per modality), storage (dense, CSR, CSC), values and
label patterns go through ``ConAAE.setup_mudata`` and ``ConAAE(mdata)``. Each call must either
succeed, giving a usable model, or raise one of the documented error types (ValueError,
TypeError, KeyError), never anything else, and never modify the MuData.
"""

from __future__ import annotations

import warnings

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scipy import sparse
from test_validation import assert_unchanged, snapshot

from conaae_scverse import ConAAE

DOCUMENTED = (ValueError, TypeError, KeyError)
LABEL_PATTERNS = ("none", "all_nan", "one_category", "some_nan", "rna_only", "both")
VALUE_KINDS = ("counts", "binary", "normalised", "integer_dtype", "with_nan")

PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _matrix(rng: np.random.Generator, n: int, p: int, kind: str, fmt: str):
    if kind == "counts":
        x = rng.poisson(1.0, size=(n, p)).astype(np.float32)
    elif kind == "binary":
        x = (rng.random((n, p)) < 0.3).astype(np.float32)
    elif kind == "normalised":
        x = rng.normal(size=(n, p)).astype(np.float32)
    elif kind == "integer_dtype":
        x = rng.poisson(2.0, size=(n, p)).astype(np.int32)
    else:  # with_nan
        x = rng.poisson(1.0, size=(n, p)).astype(np.float32)
        if x.size:
            x.flat[rng.integers(x.size)] = np.nan
    if fmt == "csr":
        return sparse.csr_matrix(x)
    if fmt == "csc":
        return sparse.csc_matrix(x)
    return x


def _labels(rng: np.random.Generator, n: int, pattern: str, labelled: bool) -> pd.Series | None:
    if pattern == "none" or not labelled:
        return None
    if pattern == "all_nan":
        return pd.Series([np.nan] * n, dtype=object)
    if pattern == "one_category":
        return pd.Series(["alpha"] * n)
    values = rng.choice(["alpha", "beta", "gamma"], size=n).astype(object)
    if pattern == "some_nan" and n:
        values[rng.random(n) < 0.4] = np.nan
    return pd.Series(values)


def _adata(rng, prefix, n, p, kind, fmt, labels):
    obs = pd.DataFrame(index=[f"{prefix}{i}" for i in range(n)])
    if labels is not None:
        obs["cell_type"] = labels.to_numpy()
    var = pd.DataFrame(index=[f"{prefix}_f{j}" for j in range(p)])
    return ad.AnnData(X=_matrix(rng, n, p, kind, fmt), obs=obs, var=var)


@st.composite
def mudata_specs(draw) -> dict:
    """Parameters of a random MuData; :func:`build` makes it (outside the strategy)."""
    modalities = {
        mod: {
            "n": draw(st.integers(0, 30)),
            "p": draw(st.integers(0, 8)),
            "kind": draw(st.sampled_from(VALUE_KINDS)),
            "fmt": draw(st.sampled_from(("dense", "csr", "csc"))),
        }
        for mod in ("rna", "atac")
    }
    return {
        "seed": draw(st.integers(0, 2**16)),
        "pattern": draw(st.sampled_from(LABEL_PATTERNS)),
        "paired": draw(st.booleans()),
        "modalities": modalities,
    }


def build(spec: dict) -> md.MuData:
    rng = np.random.default_rng(spec["seed"])
    mods = {}
    for mod, m in spec["modalities"].items():
        labelled = spec["pattern"] != "rna_only" or mod == "rna"
        prefix = "cell" if spec["paired"] else mod
        labels = _labels(rng, m["n"], spec["pattern"], labelled)
        mods[mod] = _adata(rng, prefix, m["n"], m["p"], m["kind"], m["fmt"], labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return md.MuData(mods)


@PROPERTY_SETTINGS
@given(
    spec=mudata_specs(),
    input_transform=st.sampled_from(("auto", "log1p", "normalize_log1p", "none")),
)
def test_setup_and_init_succeed_or_raise_documented_errors(spec, input_transform):
    mdata = build(spec)
    labels_key = None if spec["pattern"] == "none" else "cell_type"
    before = snapshot(mdata)
    try:
        ConAAE.setup_mudata(mdata, labels_key=labels_key)
        model = ConAAE(mdata, n_latent=2, n_hidden=[3], input_transform=input_transform)
    except DOCUMENTED as err:
        event(f"refused: {type(err).__name__}: {str(err)[:40]}")
        assert str(err), "errors must carry a message"
        assert_unchanged(mdata, before)
        return
    event("accepted")
    assert_unchanged(mdata, before)
    # A model that was built is usable: finite latents of the right shape for both modalities.
    for mod in ("rna", "atac"):
        n_cells = spec["modalities"][mod]["n"]
        z = model.get_latent_representation(modality=mod)
        assert z.shape == (n_cells, 2)
        assert np.isfinite(z).all()
    assert_unchanged(mdata, before)


@PROPERTY_SETTINGS
@given(spec=mudata_specs())
def test_errors_are_predictable_from_the_data(spec):
    """The documented failure conditions hold exactly when setup + init refuse the data."""
    mdata = build(spec)
    mods = spec["modalities"].values()
    labels_key = None if spec["pattern"] == "none" else "cell_type"
    expect_failure = (
        any(m["n"] == 0 or m["p"] == 0 for m in mods)
        or any(m["kind"] == "with_nan" and m["n"] * m["p"] > 0 for m in mods)
        # No labelled cell at all, or one category (the supervised contrastive loss needs two).
        or (labels_key is not None and _n_categories(mdata, labels_key) < 2)
    )
    try:
        ConAAE.setup_mudata(mdata, labels_key=labels_key)
        ConAAE(mdata, n_latent=2, n_hidden=[3])
    except DOCUMENTED:
        assert expect_failure, f"refused valid data: {spec}"
    else:
        assert not expect_failure, f"accepted invalid data: {spec}"


@PROPERTY_SETTINGS
@given(
    seed=st.integers(0, 2**16),
    sizes=st.tuples(st.integers(2, 30), st.integers(1, 8), st.integers(2, 30), st.integers(1, 8)),
    kinds=st.tuples(*[st.sampled_from(("counts", "binary", "normalised", "integer_dtype"))] * 2),
    fmts=st.tuples(*[st.sampled_from(("dense", "csr", "csc"))] * 2),
    pattern=st.sampled_from(("none", "some_nan", "rna_only", "both")),
)
def test_valid_data_always_registers(seed, sizes, kinds, fmts, pattern):
    """Non-empty, finite, numeric data with no labels or two or more categories never fails."""
    rng = np.random.default_rng(seed)
    mods = {}
    for i, mod in enumerate(("rna", "atac")):
        n, p = sizes[2 * i], sizes[2 * i + 1]
        labels = _labels(rng, n, pattern, pattern != "rna_only" or mod == "rna")
        if labels is not None:  # at least two categories, whatever the random draw
            labels.iloc[:2] = ["alpha", "beta"]
        mods[mod] = _adata(rng, mod, n, p, kinds[i], fmts[i], labels)
    mdata = md.MuData(mods)
    before = snapshot(mdata)
    ConAAE.setup_mudata(mdata, labels_key=None if pattern == "none" else "cell_type")
    model = ConAAE(mdata, n_latent=2, n_hidden=[3])
    for i, mod in enumerate(("rna", "atac")):
        z = model.get_latent_representation(modality=mod)
        assert z.shape == (sizes[2 * i], 2)
        assert np.isfinite(z).all()
    assert_unchanged(mdata, before)


def _n_categories(mdata: md.MuData, key: str | None) -> int:
    if key is None:
        return -1
    found: set[str] = set()
    for adata in mdata.mod.values():
        if key in adata.obs:
            found |= set(adata.obs[key].dropna().astype(str))
    return len(found)


@pytest.mark.parametrize("fmt", ["dense", "csr", "csc"])
def test_storage_formats_give_the_same_model(fmt):
    """Dense, CSR and CSC storage of the same values give identical embeddings."""
    rng = np.random.default_rng(1)
    counts = {m: rng.poisson(1.0, size=(15, 6)).astype(np.float32) for m in ("rna", "atac")}

    def build(storage: str):
        mods = {}
        for mod, x in counts.items():
            data = {"dense": x, "csr": sparse.csr_matrix(x), "csc": sparse.csc_matrix(x)}[storage]
            mods[mod] = ad.AnnData(
                data,
                obs=pd.DataFrame(index=[f"{mod}{i}" for i in range(15)]),
                var=pd.DataFrame(index=[f"{mod}_f{j}" for j in range(6)]),
            )
        mdata = md.MuData(mods)
        ConAAE.setup_mudata(mdata)
        return ConAAE(mdata, n_latent=2, n_hidden=[3]).get_latent_representation()

    np.testing.assert_allclose(build(fmt), build("dense"), rtol=1e-5, atol=1e-6)
