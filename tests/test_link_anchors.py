"""Anchors inferred from peak-gene links: the pieces, then in the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import conaae_scverse as ca
from conaae_scverse import LOSS_KEYS, ConAAE
from conaae_scverse._data_module import UnpairedLoader
from conaae_scverse._link_anchors import label_consistent, mutual_nearest_pairs
from conaae_scverse._module import ConAAEModule
from conaae_scverse._networks import LossWeights


def test_mutual_nearest_pairs_recover_a_shuffled_copy():
    rng = np.random.default_rng(0)
    rna = rng.normal(size=(50, 4))
    order = rng.permutation(50)
    atac = rna[order] + rng.normal(scale=1e-3, size=(50, 4))
    pairs = mutual_nearest_pairs(rna, atac, k=1)
    assert len(pairs) == 50
    np.testing.assert_array_equal(order[pairs[:, 1]], pairs[:, 0])


def test_mutual_nearest_pairs_are_mutual():
    rna = np.array([[0.0], [10.0], [10.5]])
    atac = np.array([[0.1], [10.2]])
    pairs = mutual_nearest_pairs(rna, atac, k=1)
    # RNA 1 (10.0) and RNA 2 (10.5) both find ATAC 1 (10.2); it finds RNA 1 only.
    assert pairs.tolist() == [[0, 0], [1, 1]]


def test_label_consistent_drops_crossing_and_unlabelled_pairs():
    pairs = np.array([[0, 0], [1, 1], [2, 2]])
    kept = label_consistent(pairs, np.array([0, 1, -1]), np.array([0, 2, -1]))
    assert kept.tolist() == [[0, 0]]


def test_anchor_pairs_never_set_the_epoch_length():
    cells = [DataLoader(range(40), batch_size=10), DataLoader(range(30), batch_size=10)]
    anchors = DataLoader(range(200), batch_size=10)
    loader = UnpairedLoader(cells, [anchors])
    assert len(loader) == 4
    steps = list(loader)
    assert len(steps) == 4 and all(len(step) == 3 for step in steps)


@pytest.mark.parametrize(("from_links", "expected_weight"), [(True, 3.0), (False, 0.5)])
def test_inferred_anchors_weigh_by_link_anchor(from_links, expected_weight):
    torch.manual_seed(0)
    weights = LossWeights(
        reconstruction=0, adversarial=0, cycle=0, contrastive=0, anchor=0.5, link_anchor=3.0
    )
    module = ConAAEModule(
        5,
        4,
        hidden_rna=[8],
        hidden_atac=[8],
        n_latent=3,
        weights=weights,
        anchors_from_links=from_links,
    )
    x_rna, x_atac = torch.rand(6, 5), torch.rand(6, 4)
    terms, _ = module.loss(x_rna, x_atac, anchor_rna=x_rna, anchor_atac=x_atac)
    torch.testing.assert_close(terms[LOSS_KEYS.TOTAL], expected_weight * terms[LOSS_KEYS.ANCHOR])


@pytest.fixture(scope="module")
def linked_simulation():
    mdata = ca.datasets.simulate_wide(300, n_genes=200, n_peaks=1000, random_state=0)
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    truth = atac.obs["cell_type"].astype(str).to_numpy()
    atac.obs["cell_type"] = atac.obs["cell_type"].where(np.zeros(atac.n_obs, dtype=bool))
    links = ca.pp.link_peaks_to_genes(atac, rna.var, genes=rna.var_names)
    return mdata, links, truth


def test_links_prior_anchors_pair_cells_of_one_population(linked_simulation):
    mdata, links, truth = linked_simulation
    ConAAE.setup_mudata(mdata, labels_key="cell_type", gene_links=links)
    model = ConAAE(mdata, n_latent=8, n_hidden=(32,), seed=0)
    anchors = model.anchor_pairs_
    assert model.module.anchors_from_links and anchors is not None and len(anchors) > 100
    rna_types = mdata.mod["rna"].obs["cell_type"].astype(str).to_numpy()
    assert np.mean(rna_types[anchors[:, 0]] == truth[anchors[:, 1]]) > 0.9
    model.train(max_epochs=2, batch_size=64, accelerator="cpu", enable_progress_bar=False)
    assert (model.history[f"{LOSS_KEYS.ANCHOR}_train"].to_numpy() > 0).all()


def test_link_anchor_weight_zero_switches_the_anchors_off(linked_simulation):
    mdata, links, _ = linked_simulation
    ConAAE.setup_mudata(mdata, labels_key="cell_type", gene_links=links)
    model = ConAAE(mdata, n_latent=8, n_hidden=(32,), seed=0, loss_weights={"link_anchor": 0})
    assert model.anchor_pairs_ is None and not model.module.anchors_from_links
    assert model.label_prior_.anchors is not None  # the prior still found them
