"""The Con-AAE torch module: loss terms, switches and standardisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conaae_scverse import LOSS_KEYS, ConAAEModule, LossWeights
from conaae_scverse._input_representation import THINNING_LOWEST_FRACTION
from conaae_scverse._losses import batch_hard_triplet, thin_counts, thin_sparse_counts

N_GENES, N_PEAKS, N_LATENT = 7, 5, 3


def _module(**kwargs) -> ConAAEModule:
    torch.manual_seed(0)
    defaults = {"hidden_rna": [8], "hidden_atac": [6], "n_latent": N_LATENT, "n_labels": 2}
    module = ConAAEModule(N_GENES, N_PEAKS, **{**defaults, **kwargs})
    module.eval()  # BatchNorm on running statistics: every call is deterministic
    return module


def _batch(n_rna: int = 10, n_atac: int = 8, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x_rna = torch.poisson(torch.full((n_rna, N_GENES), 2.0), generator=gen)
    x_atac = torch.poisson(torch.full((n_atac, N_PEAKS), 1.0), generator=gen)
    labels_rna = torch.arange(n_rna) % 2
    labels_atac = (torch.arange(n_atac) + 1) % 2
    return x_rna, x_atac, labels_rna, labels_atac


ALL_TERMS = {
    LOSS_KEYS.RECONSTRUCTION_RNA,
    LOSS_KEYS.RECONSTRUCTION_ATAC,
    LOSS_KEYS.ADVERSARIAL,
    LOSS_KEYS.CYCLE,
    LOSS_KEYS.CONTRASTIVE,
    LOSS_KEYS.CLASSIFIER,
    LOSS_KEYS.TOTAL,
}


def test_all_terms_present_by_name():
    terms, z = _module().loss(*_batch())
    assert set(terms) == ALL_TERMS
    assert z["rna"].shape == (10, N_LATENT)
    assert z["atac"].shape == (8, N_LATENT)
    for name, value in terms.items():
        assert value.ndim == 0, name
        assert torch.isfinite(value), name


def test_total_is_weighted_sum():
    weights = LossWeights(
        reconstruction=2.0, adversarial=3.0, cycle=5.0, contrastive=7.0, classifier=11.0
    )
    terms, _ = _module(weights=weights).loss(*_batch())
    expected = (
        2.0 * (terms[LOSS_KEYS.RECONSTRUCTION_RNA] + terms[LOSS_KEYS.RECONSTRUCTION_ATAC])
        + 3.0 * terms[LOSS_KEYS.ADVERSARIAL]
        + 5.0 * terms[LOSS_KEYS.CYCLE]
        + 7.0 * terms[LOSS_KEYS.CONTRASTIVE]
        + 11.0 * terms[LOSS_KEYS.CLASSIFIER]
    )
    torch.testing.assert_close(terms[LOSS_KEYS.TOTAL], expected)


def test_adversarial_scale_zero_drops_term_from_total():
    module = _module()
    terms, _ = module.loss(*_batch(), adversarial_scale=0.0)
    full, _ = module.loss(*_batch(), adversarial_scale=1.0)
    assert terms[LOSS_KEYS.ADVERSARIAL].item() > 0
    torch.testing.assert_close(
        full[LOSS_KEYS.TOTAL] - terms[LOSS_KEYS.TOTAL],
        module.weights.adversarial * terms[LOSS_KEYS.ADVERSARIAL],
    )


@pytest.mark.parametrize(
    ("weight", "removed"),
    [
        ("reconstruction", {LOSS_KEYS.RECONSTRUCTION_RNA, LOSS_KEYS.RECONSTRUCTION_ATAC}),
        ("adversarial", {LOSS_KEYS.ADVERSARIAL}),
        ("cycle", {LOSS_KEYS.CYCLE}),
        ("contrastive", {LOSS_KEYS.CONTRASTIVE}),
        ("classifier", {LOSS_KEYS.CLASSIFIER}),
    ],
)
def test_zero_weight_removes_term(weight, removed):
    module = _module(weights=LossWeights(**{weight: 0.0}))
    terms, _ = module.loss(*_batch())
    assert set(terms) == ALL_TERMS - removed


def test_mmd_alignment_has_no_discriminator():
    module = _module(alignment="mmd")
    assert module.discriminator is None
    assert module.discriminator_parameters() == []
    terms, _ = module.loss(*_batch())
    assert LOSS_KEYS.MMD in terms
    assert LOSS_KEYS.ADVERSARIAL not in terms
    assert terms[LOSS_KEYS.MMD].item() >= 0
    module_off = _module(alignment="mmd", weights=LossWeights(mmd=0.0))
    assert LOSS_KEYS.MMD not in module_off.loss(*_batch())[0]


def test_adversarial_alignment_has_discriminator():
    module = _module()
    assert module.discriminator is not None
    assert len(module.discriminator_parameters()) > 0
    disc_ids = {id(p) for p in module.discriminator_parameters()}
    assert disc_ids.isdisjoint(id(p) for p in module.autoencoder_parameters())
    assert LOSS_KEYS.MMD not in module.loss(*_batch())[0]


def test_no_alignment():
    terms, _ = _module(alignment="none").loss(*_batch())
    assert LOSS_KEYS.ADVERSARIAL not in terms
    assert LOSS_KEYS.MMD not in terms


def test_supervised_contrastive_is_batch_hard_triplet_on_known_labels():
    module = _module(margin=0.7)
    x_rna, x_atac, labels_rna, labels_atac = _batch()
    labels_atac = labels_atac.clone()
    labels_atac[:3] = -1  # unlabelled cells are left out of the triplet loss
    terms, z = module.loss(x_rna, x_atac, labels_rna, labels_atac)
    z_all = torch.cat([z["rna"], z["atac"]])
    labels = torch.cat([labels_rna, labels_atac])
    known = labels >= 0
    expected = batch_hard_triplet(z_all[known], labels[known], 0.7)
    torch.testing.assert_close(terms[LOSS_KEYS.CONTRASTIVE], expected)
    # the labels matter: the term changes when they change
    flipped, _ = module.loss(x_rna, x_atac, 1 - labels_rna, labels_atac)
    assert not torch.isclose(flipped[LOSS_KEYS.CONTRASTIVE], terms[LOSS_KEYS.CONTRASTIVE])


def test_self_supervised_contrastive_by_hand():
    # Without noise each view equals its cell: the positive distance is 0 and the negative is
    # the distance to the nearest other cell of the same modality. With a large margin no
    # cell is clipped, so the term is sum over modalities of mean(margin - nn distance).
    margin = 100.0
    module = _module(contrastive="self_supervised", augmentation_noise=0.0, margin=margin)
    x_rna, x_atac, labels_rna, labels_atac = _batch()
    terms, z = module.loss(x_rna, x_atac, labels_rna, labels_atac)
    expected = 0.0
    for mod in ("rna", "atac"):
        dist = torch.cdist(z[mod], z[mod])
        dist.fill_diagonal_(float("inf"))
        expected = expected + (margin - dist.min(dim=1).values).mean()
    torch.testing.assert_close(terms[LOSS_KEYS.CONTRASTIVE], expected)
    # labels play no part in the self-supervised term
    unlabelled, _ = module.loss(x_rna, x_atac)
    torch.testing.assert_close(unlabelled[LOSS_KEYS.CONTRASTIVE], expected)


def test_self_supervised_noise_makes_views_differ():
    module = _module(contrastive="self_supervised", augmentation_noise=1.0, margin=100.0)
    torch.manual_seed(1)
    noisy, _ = module.loss(*_batch())
    module.augmentation_noise = 0.0
    clean, _ = module.loss(*_batch())
    # noisy views are farther from their cells, so the loss is larger
    assert noisy[LOSS_KEYS.CONTRASTIVE].item() > clean[LOSS_KEYS.CONTRASTIVE].item()


def test_supervised_without_labels_falls_back_to_self_supervised():
    module = _module(augmentation_noise=0.0, margin=100.0)
    terms, _ = module.loss(*_batch()[:2])
    reference = _module(contrastive="self_supervised", augmentation_noise=0.0, margin=100.0)
    expected, _ = reference.loss(*_batch()[:2])
    torch.testing.assert_close(terms[LOSS_KEYS.CONTRASTIVE], expected[LOSS_KEYS.CONTRASTIVE])
    assert LOSS_KEYS.CLASSIFIER not in terms


def test_cycle_term_by_hand():
    module = _module()
    x_rna, x_atac, *_ = _batch()
    terms, z = module.loss(x_rna, x_atac)
    enc, dec = module.encoders, module.decoders
    with torch.no_grad():
        z_rna = enc["rna"](module.standardize(x_rna, "rna"))
        z_atac = enc["atac"](module.standardize(x_atac, "atac"))
        rna_cycle = F.mse_loss(enc["atac"](dec["atac"](z_rna)), z_rna)
        atac_cycle = F.mse_loss(enc["rna"](dec["rna"](z_atac)), z_atac)
    torch.testing.assert_close(z["rna"].detach(), z_rna)
    assert rna_cycle.item() > 0
    assert atac_cycle.item() > 0
    torch.testing.assert_close(terms[LOSS_KEYS.CYCLE].detach(), rna_cycle + atac_cycle)


def test_reconstruction_by_hand():
    module = _module()
    x_rna, x_atac, *_ = _batch()
    terms, z = module.loss(x_rna, x_atac)
    with torch.no_grad():
        expected = F.mse_loss(
            module.decoders["atac"](z["atac"]), module.standardize(x_atac, "atac")
        )
    torch.testing.assert_close(terms[LOSS_KEYS.RECONSTRUCTION_ATAC].detach(), expected)


def test_classifier_ignores_unlabelled_cells():
    module = _module()
    x_rna, x_atac, labels_rna, labels_atac = _batch()
    none_known = torch.full_like(labels_atac, -1)
    terms, z = module.loss(x_rna, x_atac, torch.full_like(labels_rna, -1), none_known)
    assert LOSS_KEYS.CLASSIFIER not in terms
    terms, z = module.loss(x_rna, x_atac, labels_rna, none_known)
    expected = F.cross_entropy(module.classify(z["rna"]), labels_rna)
    torch.testing.assert_close(terms[LOSS_KEYS.CLASSIFIER], expected)


def test_no_classifier_without_labels():
    module = _module(n_labels=0)
    assert module.classifier is None
    with pytest.raises(RuntimeError, match="without labels_key"):
        module.classify(torch.zeros(2, N_LATENT))
    terms, _ = module.loss(*_batch())
    assert LOSS_KEYS.CLASSIFIER not in terms


def test_standardize_applies_log1p_and_moments():
    module = _module()
    mean = torch.linspace(0.1, 0.7, N_GENES)
    std = torch.linspace(0.5, 2.0, N_GENES)
    module.set_feature_moments("rna", mean, std)
    x = torch.poisson(torch.full((4, N_GENES), 3.0), generator=torch.Generator().manual_seed(4))
    expected = (torch.log1p(x) - mean) / std
    torch.testing.assert_close(module.standardize(x, "rna"), expected)


def test_standardize_without_log1p_zero_std_and_clipping():
    module = _module(log1p_atac=False)
    mean = torch.zeros(N_PEAKS)
    std = torch.tensor([1.0, 0.0, 2.0, 1.0, 1.0])  # a constant feature: std 0 is replaced by 1
    module.set_feature_moments("atac", mean, std)
    x = torch.tensor([[3.0, 4.0, 6.0, 50.0, -50.0]])
    expected = torch.tensor([[3.0, 4.0, 3.0, 10.0, -10.0]])  # clipped to +-10
    torch.testing.assert_close(module.standardize(x, "atac"), expected)


def test_anchor_term_only_with_anchor_tensors():
    module = _module()
    x_rna, x_atac, labels_rna, labels_atac = _batch()
    terms, _ = module.loss(x_rna, x_atac, labels_rna, labels_atac)
    assert LOSS_KEYS.ANCHOR not in terms
    anchor_rna, anchor_atac = x_rna[:4], x_atac[:4]
    terms, _ = module.loss(x_rna, x_atac, labels_rna, labels_atac, anchor_rna, anchor_atac)
    expected = F.mse_loss(module.encode(anchor_rna, "rna"), module.encode(anchor_atac, "atac"))
    torch.testing.assert_close(terms[LOSS_KEYS.ANCHOR], expected)
    assert terms[LOSS_KEYS.ANCHOR].item() > 0
    off = _module(weights=LossWeights(anchor=0.0))
    terms, _ = off.loss(x_rna, x_atac, labels_rna, labels_atac, anchor_rna, anchor_atac)
    assert LOSS_KEYS.ANCHOR not in terms


def test_depth_invariance_is_off_by_default_and_thins_count_modalities_only():
    assert LOSS_KEYS.DEPTH_INVARIANCE not in _module().loss(*_batch())[0]
    weights = LossWeights(depth_invariance=3.0)
    x_rna, x_atac, labels_rna, labels_atac = _batch()
    module = _module(weights=weights)
    torch.manual_seed(5)
    terms, z = module.loss(x_rna, x_atac, labels_rna, labels_atac)
    off, _ = _module().loss(x_rna, x_atac, labels_rna, labels_atac)
    # The same draws by hand: each cell's counts thinned, then encoded like the full ones.
    torch.manual_seed(5)
    expected = 0.0
    for mod, x in (("rna", x_rna), ("atac", x_atac)):
        thinned = thin_counts(x, THINNING_LOWEST_FRACTION)
        latent = module.encode(thinned, mod)
        expected = expected + F.mse_loss(latent, z[mod].detach())
    torch.testing.assert_close(terms[LOSS_KEYS.DEPTH_INVARIANCE], expected)
    assert terms[LOSS_KEYS.DEPTH_INVARIANCE].item() > 0
    torch.testing.assert_close(
        terms[LOSS_KEYS.TOTAL] - off[LOSS_KEYS.TOTAL], 3.0 * terms[LOSS_KEYS.DEPTH_INVARIANCE]
    )
    # Values that are not counts are not thinned; with no modality left, no term.
    one = _module(weights=weights, log1p_rna=False).loss(x_rna, x_atac)[0]
    assert LOSS_KEYS.DEPTH_INVARIANCE in one
    none = _module(weights=weights, log1p_rna=False, log1p_atac=False).loss(x_rna, x_atac)[0]
    assert LOSS_KEYS.DEPTH_INVARIANCE not in none


def test_depth_invariance_moves_the_thinned_latents_only():
    module = _module(weights=LossWeights(depth_invariance=1.0))
    x_rna, x_atac, *_ = _batch()
    terms, z = module.loss(x_rna, x_atac)
    full = [z["rna"], z["atac"]]
    for latent in full:
        latent.retain_grad()
    terms[LOSS_KEYS.DEPTH_INVARIANCE].backward()
    assert all(latent.grad is None or not latent.grad.any() for latent in full)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.encoders.parameters())


def test_projected_modalities_take_their_thinned_scores_as_given():
    module = _module(weights=LossWeights(depth_invariance=1.0), n_components_atac=3)
    x_rna, _, labels_rna, labels_atac = _batch()
    scores = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    thinned = torch.randn(8, 3, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(5)
    rna_only, z = module.loss(x_rna, scores, labels_rna, labels_atac)
    torch.manual_seed(5)
    both, _ = module.loss(x_rna, scores, labels_rna, labels_atac, thinned={"atac": thinned})
    with torch.no_grad():
        expected = F.mse_loss(module.encoder_net(thinned, "atac"), z["atac"])
    torch.testing.assert_close(
        both[LOSS_KEYS.DEPTH_INVARIANCE] - rna_only[LOSS_KEYS.DEPTH_INVARIANCE], expected
    )
    assert expected.item() > 0


def test_thinned_scores_of_sparse_and_dense_counts():
    module = _module(n_components_atac=3)
    counts = torch.poisson(
        torch.full((6, N_PEAKS), 4.0), generator=torch.Generator().manual_seed(3)
    )
    counts[2] = 0  # an empty cell stays empty

    def seeded():
        return torch.Generator().manual_seed(7)

    dense = module.thinned_scores(counts, "atac", seeded())
    expected = module.represent(thin_counts(counts, THINNING_LOWEST_FRACTION, seeded()), "atac")
    torch.testing.assert_close(dense, expected)
    csr = counts.to_sparse_csr()
    thinned = thin_sparse_counts(csr, THINNING_LOWEST_FRACTION, seeded())
    assert torch.equal(thinned.col_indices(), csr.col_indices())
    assert bool((thinned.to_dense() <= counts).all())
    assert thinned.to_dense()[2].sum() == 0
    torch.testing.assert_close(
        module.thinned_scores(csr, "atac", seeded()),
        module.represent(thinned.to_dense(), "atac"),
    )


def test_thinning_keeps_a_share_of_each_cells_counts():
    counts = torch.full((400, 50), 20.0)
    thinned = thin_counts(counts, 0.2, torch.Generator().manual_seed(0))
    share = thinned.sum(dim=1) / counts.sum(dim=1)
    assert bool((thinned == thinned.round()).all())
    assert 0.15 < share.min() < 0.3
    assert 0.9 < share.max() <= 1.0
    assert share.mean().item() == pytest.approx(0.6, abs=0.03)


def test_discriminator_loss_does_not_reach_encoders():
    module = _module()
    x_rna, x_atac, *_ = _batch()
    _, z = module.loss(x_rna, x_atac)
    module.discriminator_loss(z["rna"], z["atac"]).backward()
    assert all(p.grad is None for p in module.encoders.parameters())
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in module.discriminator_parameters()
    )


def test_generator_loss_reaches_encoders_not_only_discriminator():
    module = _module(weights=LossWeights(reconstruction=0, cycle=0, contrastive=0, classifier=0))
    x_rna, x_atac, *_ = _batch()
    module.train()
    terms, _ = module.loss(x_rna, x_atac)
    assert set(terms) == {LOSS_KEYS.ADVERSARIAL, LOSS_KEYS.TOTAL}
    terms[LOSS_KEYS.TOTAL].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.encoders.parameters())


@pytest.mark.parametrize("log1p", [True, False])
def test_sparse_encoding_equals_dense_encoding(log1p):
    from scipy import sparse

    from conaae_scverse._networks import sparse_csr

    module = ConAAEModule(40, 30, hidden_rna=[16, 8], hidden_atac=[16], n_latent=4)
    module.log1p = {"rna": log1p, "atac": log1p}
    module.eval()
    gen = torch.Generator().manual_seed(3)
    # Small std: many stored values reach the +-10 clip; negatives hit log1p's clamp at 0.
    module.set_feature_moments("rna", torch.rand(40, generator=gen), torch.full((40,), 0.05))
    x = sparse.random(25, 40, density=0.1, format="csr", random_state=2, dtype="float32")
    x.data = x.data * 20 - 2
    dense = module.encode(torch.as_tensor(x.toarray()), "rna")
    csr = sparse_csr(
        torch.as_tensor(x.indptr, dtype=torch.int64),
        torch.as_tensor(x.indices, dtype=torch.int64),
        torch.as_tensor(x.data),
        size=x.shape,
    )
    assert (module.standardize(torch.as_tensor(x.toarray()), "rna").abs() == 10).any()
    torch.testing.assert_close(module.encode_sparse(csr, "rna"), dense, rtol=1e-5, atol=1e-5)
