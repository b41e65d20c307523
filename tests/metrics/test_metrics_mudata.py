from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest

from conaae_scverse import TRUE_PARTNER_KEY
from conaae_scverse.metrics import (
    evaluate_alignment,
    foscttm,
    foscttm_per_cell,
    integration_accuracy,
    label_transfer_accuracy,
    modality_mixing,
    pairs_from_mudata,
    recall_at_k,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*pull_on_update.*:FutureWarning", "ignore:Cannot join columns:UserWarning"
)


def _mudata(rna_obs: pd.DataFrame, atac_obs: pd.DataFrame) -> md.MuData:
    return md.MuData({"rna": ad.AnnData(obs=rna_obs), "atac": ad.AnnData(obs=atac_obs)})


@pytest.fixture
def shuffled():
    """RNA cells r0..r29 and their ATAC partners in shuffled order, named a0..a29.

    Embedding: the ATAC cell is its RNA partner plus small noise. Labels: three groups.
    """
    rng = np.random.default_rng(7)
    n = 30
    z = rng.normal(size=(n, 4))
    order = rng.permutation(n)  # ATAC row k is the partner of RNA cell order[k]
    groups = np.array(["g0", "g1", "g2"])[np.arange(n) % 3]
    rank = np.argsort(order)
    rna_obs = pd.DataFrame(
        {TRUE_PARTNER_KEY: [f"a{rank[i]}" for i in range(n)], "cell_type": groups},
        index=[f"r{i}" for i in range(n)],
    )
    atac_obs = pd.DataFrame({"cell_type": groups[order]}, index=[f"a{k}" for k in range(n)])
    mdata = _mudata(rna_obs, atac_obs)
    mdata.mod["rna"].obsm["X_conaae"] = z
    mdata.mod["atac"].obsm["X_conaae"] = z[order] + 0.01 * rng.normal(size=(n, 4))
    return mdata, order


# --- pairs_from_mudata --------------------------------------------------------------


def test_pairs_from_partner_column(shuffled):
    mdata, order = shuffled
    rna_idx, atac_idx = pairs_from_mudata(mdata)
    assert rna_idx.dtype == np.int64
    assert atac_idx.dtype == np.int64
    np.testing.assert_array_equal(rna_idx, np.arange(30))
    np.testing.assert_array_equal(order[atac_idx], rna_idx)


def test_pairs_skip_missing_and_unknown_partners():
    rna_obs = pd.DataFrame(
        {TRUE_PARTNER_KEY: ["b", None, "zz", "a"]}, index=["r0", "r1", "r2", "r3"]
    )
    atac_obs = pd.DataFrame(index=["a", "b", "c"])
    with pytest.warns(UserWarning, match="1 partners named in column 'true_partner'"):
        rna_idx, atac_idx = pairs_from_mudata(_mudata(rna_obs, atac_obs))
    assert rna_idx.tolist() == [0, 3]
    assert atac_idx.tolist() == [1, 0]


def test_pairs_fall_back_to_shared_obs_names():
    rna_obs = pd.DataFrame(index=["c1", "c2", "c3", "c4"])
    atac_obs = pd.DataFrame(index=["c4", "c9", "c1"])
    rna_idx, atac_idx = pairs_from_mudata(_mudata(rna_obs, atac_obs))
    assert rna_idx.tolist() == [0, 3]
    assert atac_idx.tolist() == [2, 0]


def test_pairs_fall_back_when_partner_column_is_empty():
    rna_obs = pd.DataFrame({"partner": [np.nan, np.nan]}, index=["c1", "c2"])
    atac_obs = pd.DataFrame(index=["c2", "c1"])
    rna_idx, atac_idx = pairs_from_mudata(_mudata(rna_obs, atac_obs), partner_key="partner")
    assert rna_idx.tolist() == [0, 1]
    assert atac_idx.tolist() == [1, 0]


def test_pairs_custom_modality_names_and_key():
    rna = ad.AnnData(obs=pd.DataFrame({"mate": ["p1", "p0"]}, index=["x0", "x1"]))
    atac = ad.AnnData(obs=pd.DataFrame(index=["p0", "p1"]))
    mdata = md.MuData({"gex": rna, "peaks": atac})
    rna_idx, atac_idx = pairs_from_mudata(
        mdata, rna_mod="gex", atac_mod="peaks", partner_key="mate"
    )
    assert (rna_idx.tolist(), atac_idx.tolist()) == ([0, 1], [1, 0])


@pytest.mark.filterwarnings("ignore:.*names are not unique:UserWarning")
def test_pairs_errors():
    unpaired = _mudata(pd.DataFrame(index=["r0", "r1"]), pd.DataFrame(index=["a0", "a1"]))
    with pytest.raises(ValueError, match="No known pairs between modalities 'rna' and 'atac'"):
        pairs_from_mudata(unpaired)
    with pytest.raises(KeyError, match=r"'gex' \(given as `rna_mod`\) is not in the MuData"):
        pairs_from_mudata(unpaired, rna_mod="gex")
    with pytest.raises(KeyError, match=r"'peaks' \(given as `atac_mod`\) is not in the MuData"):
        pairs_from_mudata(unpaired, atac_mod="peaks")
    atac = ad.AnnData(obs=pd.DataFrame(index=["a0", "a0"]))
    duplicated = md.MuData({"rna": ad.AnnData(obs=pd.DataFrame(index=["r0"])), "atac": atac})
    with pytest.raises(ValueError, match="obs_names of modality 'atac' are not unique"):
        pairs_from_mudata(duplicated)
    with pytest.raises(TypeError, match=r"Expected a mudata\.MuData"):
        pairs_from_mudata(ad.AnnData(obs=pd.DataFrame(index=["a"])))


# --- evaluate_alignment -------------------------------------------------------------


def test_evaluate_alignment_keys_and_values(shuffled):
    mdata, order = shuffled
    scores = evaluate_alignment(mdata, labels_key="cell_type", ks=(1, 5, 50))
    expected_keys = {
        "n_pairs",
        *(f"recall@{k}" for k in (1, 5, 50)),
        *(f"recall@{k}_l2" for k in (1, 5, 50)),
        *(f"chance@{k}" for k in (1, 5, 50)),
        "foscttm",
        "modality_mixing",
        "label_transfer_accuracy",
        "integration_accuracy",
    }
    assert set(scores) == expected_keys
    assert all(isinstance(v, float) for v in scores.values())
    x = mdata.mod["rna"].obsm["X_conaae"]
    y = mdata.mod["atac"].obsm["X_conaae"][np.argsort(order)]  # row i: partner of RNA i
    labels = mdata.mod["rna"].obs["cell_type"].to_numpy()
    assert scores["n_pairs"] == 30.0
    assert scores["recall@1"] == recall_at_k(x, y, k=1, metric="l1") == 1.0
    assert scores["recall@5_l2"] == recall_at_k(x, y, k=5, metric="l2")
    assert scores["chance@5"] == pytest.approx(5 / 30)
    assert scores["chance@50"] == 1.0
    assert scores["foscttm"] == pytest.approx(foscttm(x, y)) == 0.0
    assert scores["modality_mixing"] == pytest.approx(modality_mixing(x, y))
    assert scores["label_transfer_accuracy"] == pytest.approx(
        label_transfer_accuracy(x, labels, y, labels, metric="l1")
    )
    assert scores["integration_accuracy"] == integration_accuracy(x, labels, y, labels) == 1.0


def test_evaluate_alignment_matches_functions_on_noisy_embedding(shuffled):
    mdata, order = shuffled
    rng = np.random.default_rng(11)
    atac = mdata.mod["atac"]
    atac.obsm["X_conaae"] = atac.obsm["X_conaae"] + rng.normal(size=(30, 4))
    x = mdata.mod["rna"].obsm["X_conaae"]
    y = atac.obsm["X_conaae"][np.argsort(order)]
    fx, fy = foscttm_per_cell(x, y)
    assert fx.mean() != pytest.approx(fy.mean())  # the two directions differ here
    scores = evaluate_alignment(mdata, ks=(1, 5))
    assert scores["foscttm"] == pytest.approx(foscttm(x, y))
    assert scores["recall@5"] == recall_at_k(x, y, k=5, metric="l1")
    assert scores["recall@1_l2"] == recall_at_k(x, y, k=1, metric="l2")
    assert 0.0 < scores["recall@5"] < 1.0


def test_evaluate_alignment_l2_primary(shuffled):
    mdata, _ = shuffled
    scores = evaluate_alignment(mdata, ks=(3,), metric="l2")
    assert {"recall@3", "recall@3_l1", "chance@3"} <= set(scores)
    assert "integration_accuracy" not in scores


def test_evaluate_alignment_collapsed_embedding_scores_badly(shuffled):
    mdata, _ = shuffled
    for mod in ("rna", "atac"):
        mdata.mod[mod].obsm["X_conaae"] = np.zeros((30, 4))
    scores = evaluate_alignment(mdata, labels_key="cell_type", ks=(1, 10))
    assert scores["recall@1"] == scores["recall@10"] == 0.0
    assert scores["recall@10"] <= scores["chance@10"]
    assert scores["foscttm"] == 1.0
    assert scores["integration_accuracy"] <= 1 / 3 + 1e-12


def test_evaluate_alignment_only_uses_pairs():
    rng = np.random.default_rng(3)
    rna_obs = pd.DataFrame(index=["c0", "c1", "c2", "extra"])
    atac_obs = pd.DataFrame(index=["c2", "c0", "c1"])
    mdata = _mudata(rna_obs, atac_obs)
    z = rng.normal(size=(3, 2))
    mdata.mod["rna"].obsm["X_conaae"] = np.vstack([z, [[100.0, 100.0]]])
    mdata.mod["atac"].obsm["X_conaae"] = z[[2, 0, 1]]
    scores = evaluate_alignment(mdata, ks=(1,))
    assert scores["n_pairs"] == 3.0
    assert scores["recall@1"] == 1.0


def test_evaluate_alignment_errors(shuffled):
    mdata, _ = shuffled
    with pytest.raises(KeyError, match=r"Run model\.write_results\(\) first"):
        evaluate_alignment(mdata, use_rep="X_missing")
    del mdata.mod["atac"].obsm["X_conaae"]
    with pytest.raises(KeyError, match=r"mdata\.mod\['atac'\]\.obsm has no 'X_conaae'"):
        evaluate_alignment(mdata)


def test_evaluate_alignment_label_errors(shuffled):
    mdata, _ = shuffled
    with pytest.raises(
        KeyError, match=r"labels_key 'nope' is not a column of mdata\.mod\['rna'\]"
    ):
        evaluate_alignment(mdata, labels_key="nope")
    mdata.mod["atac"].obs = mdata.mod["atac"].obs.drop(columns="cell_type")
    with pytest.raises(KeyError, match=r"not a column of mdata\.mod\['atac'\]\.obs"):
        evaluate_alignment(mdata, labels_key="cell_type")
    with pytest.raises(ValueError, match="metric must be 'l1'"):
        evaluate_alignment(mdata, metric="cosine")
