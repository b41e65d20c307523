"""Link consistency: each ATAC cell's gene activity against the RNA its latent decodes to."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import sparse

import conaae_scverse as ca
from conaae_scverse import LOSS_KEYS, ConAAE
from conaae_scverse._link_consistency import (
    LinkLookup,
    LinkTargets,
    link_targets,
    row_correlation_loss,
)
from conaae_scverse._module import ConAAEModule
from conaae_scverse._networks import LossWeights
from conaae_scverse._projection import Projection


def test_row_correlation_loss_ignores_scale_and_offset():
    rng = torch.Generator().manual_seed(0)
    target = torch.randn(4, 30, generator=rng)
    assert row_correlation_loss(3.0 * target + 2.0, target).item() == pytest.approx(0.0, abs=1e-6)
    assert row_correlation_loss(-target, target).item() == pytest.approx(2.0, abs=1e-6)
    noise = torch.randn(400, 300, generator=rng)
    unrelated = row_correlation_loss(noise[:200], noise[200:])
    assert unrelated.item() == pytest.approx(1.0, abs=0.05)


def test_link_targets_are_standardised_activity_of_variable_linked_genes():
    rng = np.random.default_rng(0)
    atac = sparse.csr_matrix(rng.poisson(0.5, size=(40, 6)).astype(float))
    rna = rng.poisson(2.0, size=(30, 5)).astype(float)
    rna[:, 4] = 1.0  # constant: no variance, never chosen first
    links = sparse.csr_matrix(np.eye(6)[:, :4])  # peak j -> gene j, for genes 0-3
    columns = np.array([3, 2, 1, 0])  # gene j is RNA column 3 - j
    targets = link_targets(
        rna,
        atac,
        links,
        columns,
        log1p_rna=True,
        log1p_atac=True,
        seed=0,
        n_genes=2,
        smooth_neighbors=1,
    )
    assert targets.activity.shape == (40, 2)
    assert set(targets.rna_columns.tolist()) <= {0, 1, 2, 3}
    np.testing.assert_allclose(targets.activity.mean(0).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(targets.activity.std(0, unbiased=False).numpy(), 1.0, atol=1e-4)
    # Each target is its gene's peak counts, scaled to the median total, log1p, z-scored.
    counts = atac[:, :4].toarray()
    totals = counts.sum(axis=1)
    factors = np.median(totals[totals > 0]) / np.where(totals > 0, totals, 1)
    scaled = np.log1p(counts * factors[:, None])
    genes = 3 - targets.rna_columns.numpy()
    expected = (scaled - scaled.mean(0)) / scaled.std(0)
    np.testing.assert_allclose(targets.activity.numpy(), expected[:, genes], atol=1e-5)


def test_link_targets_are_none_without_activity():
    atac = sparse.csr_matrix((10, 3))
    rna = np.ones((10, 2))
    links = sparse.csr_matrix(np.ones((3, 2)))
    assert (
        link_targets(rna, atac, links, np.array([0, 1]), log1p_rna=True, log1p_atac=True, seed=0)
        is None
    )


def test_projected_rna_is_compared_on_its_axes_as_on_its_genes():
    """The principal-axis form of the term equals the correlation over the decoded genes."""
    n_genes, k, n_cells = 12, 3, 7
    module = ConAAEModule(
        n_genes, 4, hidden_rna=[8], hidden_atac=[8], n_latent=3, n_components_rna=k
    )
    basis, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(n_genes, k)))
    projection = Projection(basis.astype(np.float32), np.full(k, 0.5, np.float32), 2.0, np.ones(k))
    module.set_projection("rna", projection)
    columns = torch.tensor([7, 1, 4, 9, 0])
    targets = LinkTargets(torch.randn(n_cells, len(columns)), columns)
    rows = torch.tensor([5, 0, 3])
    z = torch.randn(len(rows), 3)
    on_axes = module._link_consistency(
        z, LinkLookup(targets, module.rna_components).rows(rows, "cpu")
    )
    with torch.no_grad():  # training mode: batch statistics, as in the loss
        decoded = module.decoders["rna"](z)
    genes = (decoded * 2.0 + 0.5) @ module.rna_components[columns].T
    expected = row_correlation_loss(genes, targets.activity[rows])
    torch.testing.assert_close(on_axes, expected, atol=1e-5, rtol=1e-5)
    as_genes = LinkLookup(targets, None).rows(rows, "cpu")
    assert set(as_genes) == {"activity", "columns"}


def _only_link_consistency(weight: float) -> tuple[ConAAEModule, dict]:
    """A module whose only loss term is link consistency, and the targets of 6 ATAC rows."""
    off = dict.fromkeys(["reconstruction", "adversarial", "cycle", "contrastive", "classifier"], 0)
    weights = LossWeights(**off, link_consistency=weight)
    module = ConAAEModule(5, 4, hidden_rna=[8], hidden_atac=[8], n_latent=3, weights=weights)
    return module, {"activity": torch.randn(6, 3), "columns": torch.tensor([0, 2, 4])}


def test_the_term_enters_the_total_with_its_weight():
    module, target = _only_link_consistency(2.5)
    terms, _ = module.loss(torch.rand(6, 5), torch.rand(6, 4), link_target=target)
    assert terms[LOSS_KEYS.LINK_CONSISTENCY] > 0
    torch.testing.assert_close(terms[LOSS_KEYS.TOTAL], 2.5 * terms[LOSS_KEYS.LINK_CONSISTENCY])


def test_the_term_moves_the_atac_latent_not_the_rna_decoder():
    module, target = _only_link_consistency(1.0)
    terms, _ = module.loss(torch.rand(6, 5), torch.rand(6, 4), link_target=target)
    terms[LOSS_KEYS.TOTAL].backward()
    assert all(p.grad is None or not p.grad.any() for p in module.decoders["rna"].parameters())
    assert any(p.grad is not None and p.grad.any() for p in module.encoders["atac"].parameters())


@pytest.fixture(scope="module")
def linked_simulation():
    mdata = ca.datasets.simulate_wide(300, n_genes=200, n_peaks=1000, random_state=0)
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    atac.obs["cell_type"] = atac.obs["cell_type"].where(np.zeros(atac.n_obs, dtype=bool))
    links = ca.pp.link_peaks_to_genes(atac, rna.var, genes=rna.var_names)
    return mdata, links


def test_training_makes_decoded_rna_follow_gene_activity(linked_simulation):
    mdata, links = linked_simulation
    ConAAE.setup_mudata(mdata, labels_key="cell_type", gene_links=links)
    model = ConAAE(mdata, n_latent=8, n_hidden=(32,), seed=0)
    assert model.link_targets_ is not None
    assert model.link_targets_.activity.shape[0] == mdata.mod["atac"].n_obs
    model.train(max_epochs=15, batch_size=64, accelerator="cpu", enable_progress_bar=False)
    term = model.history[f"{LOSS_KEYS.LINK_CONSISTENCY}_train"].to_numpy()
    assert term[-1] < term[0]


def test_weight_zero_or_no_links_switch_the_term_off(linked_simulation):
    mdata, links = linked_simulation
    ConAAE.setup_mudata(mdata, labels_key="cell_type", gene_links=links)
    off = ConAAE(mdata, n_latent=8, n_hidden=(32,), loss_weights={"link_consistency": 0})
    assert off.link_targets_ is None
    ConAAE.setup_mudata(mdata, labels_key="cell_type")
    assert ConAAE(mdata, n_latent=8, n_hidden=(32,)).link_targets_ is None
