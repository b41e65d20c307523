"""Loss functions of Con-AAE, as pure functions of tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._networks import sparse_csr


def batch_hard_triplet(z: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Triplet loss with batch-hard mining.

    For each anchor, the positive is the farthest latent with the same label and the negative
    the nearest latent with another label; the loss is ``mean(relu(d_ap - d_an + margin))`` over
    anchors that have at least one other same-label latent and one other-label latent.

    Parameters
    ----------
    z
        Latents of shape (n, d), e.g. RNA and ATAC latents stacked.
    labels
        Integer labels of shape (n,).
    margin
        Margin alpha.

    Returns
    -------
    Scalar tensor; zero (still differentiable) when no anchor qualifies.
    """
    # An anchor qualifies when its label has another cell and is not the only label.
    _, label_index, label_counts = torch.unique(labels, return_inverse=True, return_counts=True)
    count = label_counts[label_index]
    valid = (count >= 2) & (count < len(labels))
    if not bool(valid.any()):
        return z.sum() * 0.0
    # Mining only picks indices, so it needs no autograd graph over the n x n distances;
    # the loss is then the distances to the picked cells, which has the same value and
    # gradient as the max/min over the full matrix, at a fraction of the cost.
    with torch.no_grad():
        dist = torch.cdist(z, z)
        same = labels[:, None] == labels[None, :]
        # Distances are >= 0, so -1 excludes other labels from the max. The anchor itself
        # (distance 0) can only win when its other positives are at distance 0 too.
        hardest_positive = torch.where(same, dist, -1.0).argmax(dim=1)
        hardest_negative = torch.where(same, float("inf"), dist).argmin(dim=1)
    anchors = z[valid]
    d_ap = torch.linalg.vector_norm(anchors - z[hardest_positive[valid]], dim=1)
    d_an = torch.linalg.vector_norm(anchors - z[hardest_negative[valid]], dim=1)
    return F.relu(d_ap - d_an + margin).mean()


def augmented_view_triplet(z: torch.Tensor, z_view: torch.Tensor, margin: float) -> torch.Tensor:
    """Self-supervised triplet loss: a cell's positive is a noise-augmented view of itself.

    The negative of anchor ``i`` is the nearest augmented view of any other cell of the same
    batch, so that the latent keeps cells apart without needing labels.

    Parameters
    ----------
    z
        Latents of shape (n, d).
    z_view
        Latents of the augmented views, shape (n, d), row ``i`` a view of cell ``i``.
    margin
        Margin alpha.

    Returns
    -------
    Scalar tensor (zero when the batch holds a single cell).
    """
    n = len(z)
    if n < 2:
        return z.sum() * 0.0
    with torch.no_grad():  # mining picks indices only, as in `batch_hard_triplet`
        dist = torch.cdist(z, z_view)
        eye = torch.eye(n, dtype=torch.bool, device=z.device)
        nearest_other = dist.masked_fill(eye, float("inf")).argmin(dim=1)
    positive = torch.linalg.vector_norm(z - z_view, dim=1)
    negative = torch.linalg.vector_norm(z - z_view[nearest_other], dim=1)
    return F.relu(positive - negative + margin).mean()


def gaussian_mmd(x: torch.Tensor, y: torch.Tensor, *, n_kernels: int = 5) -> torch.Tensor:
    """Maximum mean discrepancy between two samples with a sum of Gaussian kernels.

    The bandwidths are powers of two around the mean pairwise squared distance of the pooled
    sample (not back-propagated through), as is usual for MMD losses on latents.

    Parameters
    ----------
    x
        Sample of shape (n, d).
    y
        Sample of shape (m, d).
    n_kernels
        Number of kernels.

    Returns
    -------
    Scalar tensor, the (biased) squared MMD estimate; 0 when the samples coincide.
    """
    pooled = torch.cat([x, y])
    sq = torch.cdist(pooled, pooled).pow(2)
    n = len(pooled)
    base = sq.detach().sum() / max(n * n - n, 1)
    base = base.clamp_min(1e-12) / (2 ** (n_kernels // 2))
    kernel = sum(torch.exp(-sq / (base * 2**i)) for i in range(n_kernels))
    nx = len(x)
    k_xx = kernel[:nx, :nx].mean()
    k_yy = kernel[nx:, nx:].mean()
    k_xy = kernel[:nx, nx:].mean()
    return k_xx + k_yy - 2 * k_xy


def label_conditional_sample_mmd(
    z: torch.Tensor, labels: torch.Tensor, samples: torch.Tensor, *, n_kernels: int = 5
) -> torch.Tensor:
    """Mean MMD between each sample's cells of a label and the other samples' cells of it.

    Only cells of the same label are compared, with kernel bandwidths from that label's cells
    (as in :func:`gaussian_mmd`), so samples with different type compositions are not pushed
    onto each other and a label's term does not depend on where the other labels are: what
    is aligned is where each type sits, not how many cells it has. A sample with fewer than
    2 cells of a label, or a label with fewer than 2 cells in the other samples, is skipped.

    Parameters
    ----------
    z
        Latents of shape (n, d).
    labels
        Label codes of shape (n,); -1 (unlabelled) cells are left out.
    samples
        Sample codes of shape (n,).

    Returns
    -------
    Scalar tensor; 0 when no label has cells of two samples.
    """
    terms = []
    for label in torch.unique(labels[labels >= 0]):
        mine = labels == label
        z_label, sample = z[mine], samples[mine]
        present, counts = torch.unique(sample, return_counts=True)
        if len(present) < 2 or len(z_label) < 4:
            continue
        in_sample = (sample[:, None] == present[None, :]).to(z.dtype)  # cells x samples
        n_in = counts.to(z.dtype)
        n_out = len(z_label) - n_in
        keep = (n_in >= 2) & (n_out >= 2)
        if not bool(keep.any()):
            continue
        a = in_sample[:, keep] / n_in[keep]
        b = (1.0 - in_sample[:, keep]) / n_out[keep]
        sq = torch.cdist(z_label, z_label).pow(2)
        n = len(z_label)
        base = (sq.detach().sum() / (n * n - n)).clamp_min(1e-12) / (2 ** (n_kernels // 2))
        kernel = sum(torch.exp(-sq / (base * 2**i)) for i in range(n_kernels))
        ka, kb = kernel @ a, kernel @ b
        terms.append((a * ka).sum(0) + (b * kb).sum(0) - 2 * (a * kb).sum(0))
    if not terms:
        return z.sum() * 0.0
    return torch.cat(terms).mean()


def lsgan_generator(score_rna: torch.Tensor, score_atac: torch.Tensor) -> torch.Tensor:
    """Least-squares adversarial loss of the encoders: make the discriminator swap modalities.

    The discriminator is trained to score RNA latents 0 and ATAC latents 1, so the encoders are
    rewarded for RNA latents scored 1 and ATAC latents scored 0.
    """
    return 0.5 * F.mse_loss(score_rna, torch.ones_like(score_rna)) + 0.5 * F.mse_loss(
        score_atac, torch.zeros_like(score_atac)
    )


def lsgan_discriminator(score_rna: torch.Tensor, score_atac: torch.Tensor) -> torch.Tensor:
    """Least-squares loss of the discriminator: RNA latents scored 0, ATAC latents scored 1."""
    return 0.5 * F.mse_loss(score_rna, torch.zeros_like(score_rna)) + 0.5 * F.mse_loss(
        score_atac, torch.ones_like(score_atac)
    )


def thin_counts(
    counts: torch.Tensor, lowest_fraction: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Binomial thinning: each cell keeps each of its counts with one probability of its own.

    The probabilities are uniform between ``lowest_fraction`` and 1, so the thinned cells look
    like the same cells sequenced less deeply (counts are rounded to integers first).
    """
    keep = _keep_shares(len(counts), lowest_fraction, counts, generator)
    return torch.binomial(counts.clamp_min(0).round(), keep[:, None].expand_as(counts), generator)


def thin_sparse_counts(
    counts: torch.Tensor, lowest_fraction: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """:func:`thin_counts` of a ``torch.sparse_csr`` batch, same pattern (zeros kept stored)."""
    crow = counts.crow_indices()
    values = counts.values()
    keep = _keep_shares(len(crow) - 1, lowest_fraction, values, generator)
    rows = torch.repeat_interleave(torch.arange(len(crow) - 1, device=crow.device), crow.diff())
    thinned = torch.binomial(values.clamp_min(0).round(), keep[rows], generator)
    return sparse_csr(crow, counts.col_indices(), thinned, size=tuple(counts.shape))


def _keep_shares(n: int, lowest_fraction: float, like: torch.Tensor, generator) -> torch.Tensor:
    keep = torch.empty(n, device=like.device, dtype=like.dtype)
    return keep.uniform_(lowest_fraction, 1.0, generator=generator)
