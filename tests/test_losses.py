"""Loss functions on hand-computed cases."""

from __future__ import annotations

import pytest
import torch

from conaae_scverse._losses import (
    augmented_view_triplet,
    batch_hard_triplet,
    gaussian_mmd,
    label_conditional_sample_mmd,
    lsgan_discriminator,
    lsgan_generator,
)


def _points(*values: float) -> torch.Tensor:
    """1-D points embedded in 2-D (second coordinate 0), so distances are |a - b|."""
    z = torch.zeros(len(values), 2, dtype=torch.float64)
    z[:, 0] = torch.tensor(values, dtype=torch.float64)
    return z


class TestBatchHardTriplet:
    def test_two_classes_by_hand(self):
        # points 0, 1, 3, 7 with labels a a b b and margin 2:
        # anchor 0: hardest positive d(0,1)=1, hardest negative min(3, 7)=3 -> relu(1-3+2)=0
        # anchor 1: positive d(1,0)=1, negative min(d(1,3)=2, d(1,7)=6)=2 -> relu(1-2+2)=1
        # anchor 3: positive d(3,7)=4, negative min(d(3,0)=3, d(3,1)=2)=2 -> relu(4-2+2)=4
        # anchor 7: positive 4, negative min(7, 6)=6 -> relu(4-6+2)=0
        z = _points(0, 1, 3, 7)
        loss = batch_hard_triplet(z, torch.tensor([0, 0, 1, 1]), margin=2.0)
        assert loss.item() == pytest.approx((0 + 1 + 4 + 0) / 4)

    def test_hardest_positive_and_anchor_without_positive(self):
        # points 0, 1, 3, 4 with labels a a a b and margin 1:
        # anchor 0: hardest positive max(1, 3)=3, negative 4 -> 0
        # anchor 1: hardest positive max(1, 2)=2, negative 3 -> 0
        # anchor 3: hardest positive max(3, 2)=3, negative 1 -> relu(3-1+1)=3
        # anchor 4: no other "b", so it is left out of the mean
        z = _points(0, 1, 3, 4)
        loss = batch_hard_triplet(z, torch.tensor([0, 0, 0, 1]), margin=1.0)
        assert loss.item() == pytest.approx(3 / 3)

    def test_zero_when_margin_satisfied(self):
        z = _points(0, 0.1, 10, 10.1)
        loss = batch_hard_triplet(z, torch.tensor([0, 0, 1, 1]), margin=1.0)
        assert loss.item() == 0.0

    def test_single_label_is_zero_but_differentiable(self):
        z = torch.randn(5, 3, requires_grad=True)
        loss = batch_hard_triplet(z, torch.zeros(5, dtype=torch.long), margin=0.3)
        assert loss.item() == 0.0
        assert loss.requires_grad
        loss.backward()
        assert z.grad is not None
        assert torch.equal(z.grad, torch.zeros_like(z))

    def test_gradient_by_hand(self):
        # points 0, 1, 3, 7, labels a a b b, margin 1.5: only anchors 1 and 3 violate the margin
        # anchor 1: d(1,0) - d(1,3) + 1.5 = 0.5; anchor 3: d(3,7) - d(3,1) + 1.5 = 3.5
        z = _points(0, 1, 3, 7).requires_grad_(True)
        loss = batch_hard_triplet(z, torch.tensor([0, 0, 1, 1]), margin=1.5)
        assert loss.item() == pytest.approx((0 + 0.5 + 3.5 + 0) / 4)
        loss.backward()
        # d/dz of [(z1 - z0) - (z3 - z1)] + [(z7 - z3) - (z3 - z1)], divided by 4 anchors
        expected = torch.tensor([-1.0, 3.0, -3.0, 1.0], dtype=torch.float64) / 4
        torch.testing.assert_close(z.grad[:, 0], expected)
        assert z.grad[:, 1].abs().max().item() == 0.0

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_same_value_and_gradient_as_mining_over_the_full_matrix(self, seed):
        # The reference keeps the whole n x n distance matrix in the graph, as a direct
        # reading of batch-hard mining would; the loss picks indices without a graph.
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(40, 5, generator=gen, dtype=torch.float64, requires_grad=True)
        labels = torch.randint(0, 4, (40,), generator=gen)
        labels[0] = 9  # a label with one cell: that anchor is left out

        dist = torch.cdist(z, z)
        same = labels[:, None] == labels[None, :]
        positive_mask = same & ~torch.eye(40, dtype=torch.bool)
        valid = positive_mask.any(dim=1) & (~same).any(dim=1)
        d_ap = dist.masked_fill(~positive_mask, float("-inf")).amax(dim=1)
        d_an = dist.masked_fill(same, float("inf")).amin(dim=1)
        expected = torch.relu(d_ap - d_an + 0.5)[valid].mean()
        (expected_grad,) = torch.autograd.grad(expected, z)

        loss = batch_hard_triplet(z, labels, margin=0.5)
        (grad,) = torch.autograd.grad(loss, z)
        assert not bool(valid[0])
        torch.testing.assert_close(loss, expected)
        torch.testing.assert_close(grad, expected_grad)


class TestAugmentedViewTriplet:
    def test_by_hand(self):
        # cells 0, 4, 10 and their views 1, 4.5, 7; margin 3
        # cell 0: positive 1, negative min(4.5, 7)=4.5 -> relu(1-4.5+3)=0
        # cell 4: positive 0.5, negative min(3, 3)=3 -> relu(0.5-3+3)=0.5
        # cell 10: positive 3, negative min(9, 5.5)=5.5 -> relu(3-5.5+3)=0.5
        loss = augmented_view_triplet(_points(0, 4, 10), _points(1, 4.5, 7), margin=3.0)
        assert loss.item() == pytest.approx(1.0 / 3)

    def test_same_value_and_gradient_as_mining_over_the_full_matrix(self):
        gen = torch.Generator().manual_seed(0)
        z = torch.randn(30, 4, generator=gen, dtype=torch.float64, requires_grad=True)
        views = (z + 0.3 * torch.randn(30, 4, generator=gen, dtype=torch.float64)).detach()
        views.requires_grad_(True)
        dist = torch.cdist(z, views)
        negative = dist.masked_fill(torch.eye(30, dtype=torch.bool), float("inf")).amin(dim=1)
        expected = torch.relu(dist.diagonal() - negative + 1.0).mean()
        expected_grads = torch.autograd.grad(expected, (z, views))
        loss = augmented_view_triplet(z, views, margin=1.0)
        grads = torch.autograd.grad(loss, (z, views))
        torch.testing.assert_close(loss, expected)
        torch.testing.assert_close(grads, expected_grads)

    def test_single_cell_is_zero_but_differentiable(self):
        z = torch.randn(1, 4, requires_grad=True)
        loss = augmented_view_triplet(z, z + 1, margin=1.0)
        assert loss.item() == 0.0
        loss.backward()
        assert torch.equal(z.grad, torch.zeros_like(z))


class TestGaussianMMD:
    def test_identical_samples(self):
        x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
        assert abs(gaussian_mmd(x, x.clone()).item()) < 1e-6

    def test_shift_is_larger_than_resampling(self):
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(60, 4, generator=gen)
        same = torch.randn(60, 4, generator=gen)
        shifted = torch.randn(60, 4, generator=gen) + 3.0
        mmd_same = gaussian_mmd(x, same).item()
        mmd_shift = gaussian_mmd(x, shifted).item()
        assert mmd_same >= -1e-6
        assert mmd_shift > 0.1
        assert mmd_shift > 10 * mmd_same

    def test_symmetric(self):
        gen = torch.Generator().manual_seed(2)
        x = torch.randn(30, 3, generator=gen)
        y = torch.randn(45, 3, generator=gen) + 1.0
        assert gaussian_mmd(x, y).item() == pytest.approx(gaussian_mmd(y, x).item(), rel=1e-5)

    def test_differentiable(self):
        gen = torch.Generator().manual_seed(3)
        x = torch.randn(20, 3, generator=gen, requires_grad=True)
        y = torch.randn(20, 3, generator=gen) + 2.0
        gaussian_mmd(x, y).backward()
        assert x.grad is not None
        assert x.grad.abs().sum().item() > 0


class TestLSGAN:
    def test_half_scores(self):
        half = torch.full((8,), 0.5)
        assert lsgan_generator(half, half).item() == pytest.approx(0.25)
        assert lsgan_discriminator(half, half).item() == pytest.approx(0.25)

    def test_perfect_discriminator(self):
        # the discriminator scores RNA 0 and ATAC 1: its own loss is 0, the encoders' is 1
        rna, atac = torch.zeros(4), torch.ones(6)
        assert lsgan_discriminator(rna, atac).item() == 0.0
        assert lsgan_generator(rna, atac).item() == pytest.approx(1.0)

    def test_fooled_discriminator(self):
        rna, atac = torch.ones(4), torch.zeros(6)
        assert lsgan_generator(rna, atac).item() == 0.0
        assert lsgan_discriminator(rna, atac).item() == pytest.approx(1.0)

    def test_asymmetric_values(self):
        # generator: 0.5 * (0.2 - 1)^2 + 0.5 * (0.6 - 0)^2 = 0.32 + 0.18
        # discriminator: 0.5 * (0.2 - 0)^2 + 0.5 * (0.6 - 1)^2 = 0.02 + 0.08
        rna, atac = torch.tensor([0.2]), torch.tensor([0.6])
        assert lsgan_generator(rna, atac).item() == pytest.approx(0.5)
        assert lsgan_discriminator(rna, atac).item() == pytest.approx(0.1)


# ------------------------------------------------------------ label-conditional sample MMD
def _two_labels_two_samples(seed: int = 0):
    torch.manual_seed(seed)
    z = torch.randn(80, 3)
    labels = torch.tensor([0] * 40 + [1] * 40)
    samples = torch.tensor(([0] * 20 + [1] * 20) * 2)
    return z, labels, samples


def test_sample_mmd_grows_when_a_sample_moves_within_its_label():
    z, labels, samples = _two_labels_two_samples()
    mixed = label_conditional_sample_mmd(z, labels, samples)
    shifted = z.clone()
    shifted[samples == 1] += 2.0
    assert label_conditional_sample_mmd(shifted, labels, samples) > 5 * mixed


def test_sample_mmd_ignores_composition_differences():
    z, labels, samples = _two_labels_two_samples()
    # label 1 only in sample 0, far away: it has no other sample to be compared with
    keep = ~((labels == 1) & (samples == 1))
    z, labels, samples = z[keep], labels[keep], samples[keep]
    base = label_conditional_sample_mmd(z, labels, samples)
    moved = z.clone()
    moved[labels == 1] += 10.0
    torch.testing.assert_close(
        label_conditional_sample_mmd(moved, labels, samples), base, rtol=0.2, atol=0.0
    )


def test_sample_mmd_leaves_out_unlabelled_cells_and_is_zero_without_two_samples():
    z, labels, samples = _two_labels_two_samples()
    assert float(label_conditional_sample_mmd(z, labels, torch.zeros_like(samples))) == 0.0
    unlabelled = labels.clone()
    unlabelled[samples == 1] = -1
    assert float(label_conditional_sample_mmd(z, unlabelled, samples)) == 0.0
    z.requires_grad_(True)
    label_conditional_sample_mmd(z, labels, samples).backward()
    assert torch.isfinite(z.grad).all()
