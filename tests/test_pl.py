"""Tests of `conaae_scverse.pl`: returned objects, plotted data, save and show, bad input."""

from __future__ import annotations

import anndata as ad
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mudata as md
import numpy as np
import pandas as pd
import pytest
from _builders import build_mudata
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import conaae_scverse as ca
from conaae_scverse import pl
from conaae_scverse.metrics import recall_at_k_curve


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def trained():
    """A tiny paired, labelled MuData and a model trained for 2 epochs, results written."""
    mdata = build_mudata(paired=True, n_rna=40)
    ca.ConAAE.setup_mudata(mdata, labels_key="cell_type")
    model = ca.ConAAE(mdata, n_latent=4, n_hidden=[16])
    model.train(max_epochs=2, enable_progress_bar=False, check_val_every_n_epoch=1)
    model.write_results()
    return model, mdata


# ---------------------------------------------------------------------------------- history
def test_history_grid_has_a_panel_per_term_with_train_and_validation(trained):
    model, _ = trained
    fig = pl.history(model, show=False)
    assert isinstance(fig, Figure)
    terms = {name.rsplit("_", 1)[0] for name in model.history if not name.endswith("_loss")}
    terms.add("loss")
    panels = [a for a in fig.axes if a.get_visible()]
    assert sorted(a.get_title() for a in panels) == sorted(terms)
    cycle = next(a for a in panels if a.get_title() == "cycle")
    assert [line.get_label() for line in cycle.lines] == ["train", "validation"]
    expected = model.history["cycle_train"].iloc[:, 0].to_numpy(dtype=float)
    np.testing.assert_allclose(cycle.lines[0].get_ydata(), expected)
    np.testing.assert_array_equal(cycle.lines[0].get_xdata(), [0, 1])
    assert cycle.lines[1].get_linestyle() == "--"


def test_history_on_given_axes_selects_keys(trained):
    model, _ = trained
    _, ax = plt.subplots()
    out = pl.history(model, keys=["train_loss", "validation_loss"], ax=ax, show=False)
    assert out is ax
    assert [line.get_label() for line in ax.lines] == ["train_loss", "validation_loss"]
    np.testing.assert_allclose(
        ax.lines[1].get_ydata(), model.history["validation_loss"].iloc[:, 0].to_numpy(dtype=float)
    )


def test_history_term_name_selects_both_modes_and_accepts_the_dict(trained):
    model, _ = trained
    fig = pl.history(model.history, keys="reconstruction_rna", log=True, show=False)
    (panel,) = [a for a in fig.axes if a.get_visible()]
    assert panel.get_title() == "reconstruction_rna"
    assert panel.get_yscale() == "log"
    assert len(panel.lines) == 2


def test_history_save_writes_a_file(trained, tmp_path):
    model, _ = trained
    target = tmp_path / "sub" / "history.png"
    assert isinstance(pl.history(model, save=target, show=False), Figure)
    assert target.stat().st_size > 0


def test_history_save_true_uses_scanpy_figdir(trained, tmp_path):
    import scanpy as sc

    old = sc.settings.figdir, sc.settings.file_format_figs
    sc.settings.figdir, sc.settings.file_format_figs = tmp_path, "png"
    try:
        pl.history(trained[0], save=True, show=False)
    finally:
        sc.settings.figdir, sc.settings.file_format_figs = old
    assert (tmp_path / "conaae_history.png").is_file()


def test_history_shows_by_default_and_returns_none(trained, monkeypatch):
    calls = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: calls.append(1))
    assert pl.history(trained[0]) is None
    assert calls == [1]


def test_history_bad_input():
    with pytest.raises(ValueError, match=r"no training history: call model.train\(\)"):
        pl.history({}, show=False)
    with pytest.raises(TypeError, match="needs a ConAAE model"):
        pl.history(42, show=False)
    frame = pd.DataFrame({"cycle_train": [1.0, 0.5]}).rename_axis("epoch")
    with pytest.raises(KeyError, match="No loss named 'nope'"):
        pl.history({"cycle_train": frame}, keys="nope", show=False)
    with pytest.raises(TypeError, match="show must be True, False or None"):
        pl.history({"cycle_train": frame}, show="yes")
    with pytest.raises(TypeError, match="save must be a file path"):
        pl.history({"cycle_train": frame}, save=3, show=False)


def test_history_of_an_untrained_model_fails():
    mdata = build_mudata()
    ca.ConAAE.setup_mudata(mdata)
    with pytest.raises(ValueError, match="no training history"):
        pl.history(ca.ConAAE(mdata, n_latent=4, n_hidden=[8]), show=False)


# -------------------------------------------------------------------------------- confusion
def _labelled(true, pred) -> ad.AnnData:
    obs = pd.DataFrame(
        {"truth": true, "conaae_label": pred}, index=[f"c{i}" for i in range(len(true))]
    )
    return ad.AnnData(obs=obs)


def test_confusion_values_match_a_hand_computed_case():
    adata = _labelled(["a", "a", "b", "b", "b"], ["a", "b", "b", "b", "a"])
    ax = pl.confusion(adata, true_key="truth", show=False)
    assert isinstance(ax, Axes)
    np.testing.assert_allclose(ax.images[0].get_array(), [[0.5, 0.5], [1 / 3, 2 / 3]])
    assert [t.get_text() for t in ax.texts] == ["0.50", "0.50", "0.33", "0.67"]
    assert ax.get_title() == "accuracy 0.60"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]


@pytest.mark.parametrize(
    ("normalize", "expected"),
    [
        (False, [[1, 1], [1, 2]]),
        ("pred", [[0.5, 1 / 3], [0.5, 2 / 3]]),
        ("all", [[0.2, 0.2], [0.2, 0.4]]),
    ],
)
def test_confusion_normalizations(normalize, expected):
    adata = _labelled(["a", "a", "b", "b", "b"], ["a", "b", "b", "b", "a"])
    ax = pl.confusion(adata, true_key="truth", normalize=normalize, show=False)
    np.testing.assert_allclose(ax.images[0].get_array(), expected)


def test_confusion_takes_an_obs_table():
    obs = _labelled(["a", "a", "b", "b", "b"], ["a", "b", "b", "b", "a"]).obs
    ax = pl.confusion(obs.iloc[:4], true_key="truth", normalize=False, show=False)
    np.testing.assert_array_equal(ax.images[0].get_array(), [[1, 1], [0, 2]])


def test_confusion_skips_unlabelled_cells_and_merges_int_and_str_labels():
    true = pd.Series([0, 1, np.nan, 3, 3], dtype=object)
    adata = _labelled(true.to_numpy(), ["0", "1", "3", "3", "1"])
    ax = pl.confusion(adata, true_key="truth", normalize=False, annotate=False, show=False)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "3"]
    np.testing.assert_array_equal(ax.images[0].get_array(), [[1, 0, 0], [0, 1, 0], [0, 1, 1]])
    assert not ax.texts


def test_confusion_on_a_mudata_by_modality(trained, tmp_path):
    _, mdata = trained
    ax = pl.confusion(
        mdata, true_key="cell_type", modality="atac", save=tmp_path / "c.png", show=False
    )
    counts = (
        pl.confusion(mdata, true_key="cell_type", modality="atac", normalize=False, show=False)
        .images[0]
        .get_array()
    )
    assert counts.sum() == mdata["atac"].n_obs
    both = pl.confusion(mdata, true_key="cell_type", normalize=False, show=False)
    assert both.images[0].get_array().sum() == mdata["rna"].n_obs + mdata["atac"].n_obs
    assert ax.get_title().startswith("atac: accuracy")
    assert (tmp_path / "c.png").stat().st_size > 0


def test_confusion_bad_input(trained):
    _, mdata = trained
    adata = _labelled(["a", "b"], ["a", "b"])
    with pytest.raises(KeyError, match="no obs column 'nope'"):
        pl.confusion(adata, true_key="nope", show=False)
    with pytest.raises(KeyError, match=r"Run model.write_results\(\) first"):
        pl.confusion(ad.AnnData(obs=adata.obs[["truth"]]), true_key="truth", show=False)
    with pytest.raises(ValueError, match="normalize must be"):
        pl.confusion(adata, true_key="truth", normalize="rows", show=False)
    with pytest.raises(KeyError, match="no modality 'protein'"):
        pl.confusion(mdata, true_key="cell_type", modality="protein", show=False)
    with pytest.raises(ValueError, match="only applies to a MuData"):
        pl.confusion(adata, true_key="truth", modality="rna", show=False)
    with pytest.raises(ValueError, match="No cell has both"):
        pl.confusion(_labelled([np.nan, np.nan], ["a", "b"]), true_key="truth", show=False)
    with pytest.raises(TypeError, match="needs a MuData, an AnnData or an obs DataFrame"):
        pl.confusion(np.zeros(3), true_key="truth", show=False)


# ----------------------------------------------------------------------------- recall curve
def test_recall_curve_perfect_embedding_and_chance_line():
    x = np.random.default_rng(0).normal(size=(30, 3))
    ax = pl.recall_curve((x, x), ks=[1, 3, 10], show=False)
    assert len(ax.lines) == 2  # the curve and the chance line
    curve, chance = ax.lines
    np.testing.assert_array_equal(curve.get_xdata(), [1, 3, 10])
    np.testing.assert_allclose(curve.get_ydata(), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(chance.get_ydata(), [1 / 30, 3 / 30, 10 / 30])
    assert chance.get_label() == "chance (k / 30)"
    assert ax.get_xscale() == "log"


def test_recall_curve_on_a_mudata_matches_the_metric(trained, tmp_path):
    _, mdata = trained
    ax = pl.recall_curve(mdata, metric="l2", label="conaae", save=tmp_path / "r.pdf", show=False)
    curve = ax.lines[0]
    assert curve.get_label() == "conaae"
    assert curve.get_xdata()[0] == 1
    assert curve.get_xdata()[-1] == mdata["rna"].n_obs  # default ks run from 1 to n
    z_rna = mdata["rna"].obsm["X_conaae"]
    z_atac = pd.DataFrame(mdata["atac"].obsm["X_conaae"], index=mdata["atac"].obs_names)
    expected = recall_at_k_curve(
        z_rna, z_atac.loc[mdata["rna"].obs_names].to_numpy(), ks=curve.get_xdata(), metric="l2"
    )
    np.testing.assert_allclose(curve.get_ydata(), list(expected.values()))
    assert (tmp_path / "r.pdf").stat().st_size > 0


def test_recall_curve_compares_several_embeddings_on_one_axes():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 2))
    ax = pl.recall_curve(
        {"good": (x, x + 0.01), "random": (x, rng.normal(size=(20, 2)))},
        ks=(1, 5),
        logx=False,
        show=False,
    )
    assert [line.get_label() for line in ax.lines] == ["good", "chance (k / 20)", "random"]
    assert ax.get_xscale() == "linear"
    pl.recall_curve((x, x), ks=(1, 5), chance=False, ax=ax, label="again", show=False)
    assert len(ax.lines) == 4


def test_recall_curve_bad_input():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="same shape"):
        pl.recall_curve((x, np.zeros((4, 2))), show=False)
    with pytest.raises(TypeError, match="needs a MuData"):
        pl.recall_curve(x, show=False)
    with pytest.raises(TypeError, match="needs a MuData"):
        pl.recall_curve(pd.DataFrame(x), show=False)
    with pytest.raises(ValueError, match="metric must be"):
        pl.recall_curve((x, x), metric="cosine", show=False)
    with pytest.raises(ValueError, match="ks is empty"):
        pl.recall_curve((x, x), ks=[], show=False)
    with pytest.raises(ValueError, match="empty dict"):
        pl.recall_curve({}, show=False)
    mdata = md.MuData({"rna": ad.AnnData(np.zeros((3, 2))), "atac": ad.AnnData(np.zeros((3, 2)))})
    with pytest.raises(KeyError, match=r"no 'X_conaae'.*write_results"):
        pl.recall_curve(mdata, show=False)


# -------------------------------------------------------------------------------- embedding
def test_embedding_of_a_model_colours_by_modality_and_labels(trained, tmp_path):
    model, mdata = trained
    axes = pl.embedding(model, save=tmp_path / "umap.png", show=False)
    assert [a.get_title() for a in axes] == ["modality", "cell_type", "conaae_label"]
    n_cells = mdata["rna"].n_obs + mdata["atac"].n_obs
    points = sum(len(c.get_offsets()) for c in axes[0].collections)
    assert points == n_cells
    assert (tmp_path / "umap.png").stat().st_size > 0


def test_embedding_computes_the_umap_on_a_copy(trained):
    model, _ = trained
    joint = model.get_joint_adata()
    _, ax = plt.subplots()
    out = pl.embedding(joint, color="modality", ax=ax, size=20, show=False)
    assert out is ax
    assert "X_umap" not in joint.obsm
    assert "neighbors" not in joint.uns


def test_embedding_uses_an_existing_basis(trained):
    model, _ = trained
    joint = model.get_joint_adata()
    joint.obsm["X_custom"] = np.column_stack([np.arange(joint.n_obs), np.zeros(joint.n_obs)])
    ax = pl.embedding(joint, basis="custom", color="conaae_label", show=False)
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    np.testing.assert_allclose(np.sort(offsets[:, 0]), np.arange(joint.n_obs))


def test_embedding_bad_input(trained):
    model, _ = trained
    joint = model.get_joint_adata()
    joint.obsm["X_umap"] = np.zeros((joint.n_obs, 2))
    with pytest.raises(KeyError, match="Cannot colour by"):
        pl.embedding(joint, color="nope", show=False)
    with pytest.raises(ValueError, match="one panel"):
        pl.embedding(joint, color=["modality", "cell_type"], ax=plt.gca(), show=False)
    with pytest.raises(KeyError, match=r"no .obsm\['X_tsne'\]"):
        pl.embedding(joint, basis="tsne", show=False)
    with pytest.raises(KeyError, match=r"no .obsm\['X_other'\]"):
        pl.embedding(model.get_joint_adata(), use_rep="X_other", show=False)
    with pytest.raises(TypeError, match="needs a ConAAE model or a joint AnnData"):
        pl.embedding("model", show=False)
    untrained = build_mudata()
    ca.ConAAE.setup_mudata(untrained)
    with pytest.raises(ValueError, match="not trained"):
        pl.embedding(ca.ConAAE(untrained, n_latent=4, n_hidden=[8]), show=False)


def test_pl_public_api():
    assert sorted(pl.__all__) == ["confusion", "embedding", "history", "recall_curve"]
    # `import conaae_scverse as ca; ca.pl.history(...)`, as the tutorials do
    assert "pl" in ca.__all__
