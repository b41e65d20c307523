"""Building blocks of the Con-AAE networks: loss weights, MLPs, sample shifts, discriminator."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LossWeights:
    """Weight of each loss term; a weight of 0 switches the term off.

    The defaults are the paper's (Table 3: alpha = 10 on reconstruction, adversarial,
    contrastive, cycle and MMD terms; beta = 1 on the classifier; 0.1 on the anchor term).
    ``sample_mixing`` (ours, only with several samples in a modality, see ``batch_key``):
    label-conditional MMD between each sample's cells of a label and the other samples'.
    ``link_anchor`` (ours, only with the ``"links"`` label prior): the anchor loss on pairs
    inferred from peak-gene links (:mod:`._link_anchors`) instead of known pairs.
    ``link_consistency`` (ours, only with peak-gene links): 1 - the correlation between the
    RNA genes an ATAC cell's latent decodes to and its gene activity (:mod:`._link_consistency`).
    ``depth_invariance`` (ours, 10 under the links label prior, else off; only on counts):
    the distance between the latent of a cell and that of its counts binomially thinned, as
    if sequenced less deeply (:func:`._losses.thin_counts`).
    """

    reconstruction: float = 10.0
    adversarial: float = 10.0
    cycle: float = 10.0
    contrastive: float = 10.0
    classifier: float = 1.0
    anchor: float = 0.1
    mmd: float = 10.0
    sample_mixing: float = 1.0
    link_anchor: float = 10.0
    link_consistency: float = 10.0
    depth_invariance: float = 0.0

    def to_dict(self) -> dict[str, float]:
        """Plain dict form."""
        return asdict(self)


def _mlp(n_in: int, hidden: Sequence[int], n_out: int, *, dropout: float) -> nn.Sequential:
    """Linear -> BatchNorm -> LeakyReLU blocks (the paper's Table 2), then a linear layer."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.LeakyReLU(0.2)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def sparse_csr(
    crow_indices: torch.Tensor, col_indices: torch.Tensor, values: torch.Tensor, size: tuple
) -> torch.Tensor:
    """Build a ``torch.sparse_csr`` tensor without torch's notice that CSR support is in beta."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            crow_indices, col_indices, values, size=size, check_invariants=False
        )


class SampleShifts(nn.Module):
    """Per-sample shifts added after linear layers: the sample covariate of a network.

    Adding row b of a (n_samples, width) table to a linear layer's output equals feeding the
    one-hot code of sample b as extra inputs of that layer, as scvi-tools' networks inject
    covariates. The rows of the reference samples and those of samples mapped on later
    (:meth:`ConAAE.load_query_data`) are separate parameters, so that the reference's can
    stay frozen while the new ones train.

    Parameters
    ----------
    widths
        Output width of each shifted layer.
    n_reference
        Samples of the training data.
    n_query
        Samples mapped on later.
    """

    def __init__(self, widths: Sequence[int], n_reference: int, n_query: int = 0):
        super().__init__()
        self.n_reference, self.n_query = n_reference, n_query
        self.reference = nn.ParameterList([torch.zeros(n_reference, w) for w in widths])
        self.query = nn.ParameterList([torch.zeros(n_query, w) for w in widths])

    def __len__(self) -> int:
        return len(self.reference)

    def shift(self, layer: int, batch: torch.Tensor) -> torch.Tensor:
        """Shift of ``layer`` (0 = first shifted layer) for cells of samples ``batch``."""
        table = self.reference[layer]
        if self.n_query:
            table = torch.cat([table, self.query[layer]])
        return table[batch]


class SampleInputLayers(nn.Module):
    """Own copies of an encoder's input layer for samples mapped on later.

    Bias shifts (:class:`SampleShifts`) move all of a sample's cells alike; a sample whose
    features are scaled differently (depth, peak-calling, chemistry) also needs its own
    feature weights. Samples mapped on with :meth:`ConAAE.load_query_data` therefore get a
    copy of the encoder's input layer (started at it, then trained) and the samples of the
    first training share the encoder's own. Codes ``n_shared`` to ``n_reference - 1`` are
    samples mapped on by an earlier mapping (kept, like the reference, in ``reference``);
    codes from ``n_reference`` on are those of the current one (``query``, the layers that
    train), so a model mapped onto again keeps the two apart as :class:`SampleShifts` does.

    Parameters
    ----------
    n_in, width
        Input and output width of the layer.
    n_shared
        Samples that use the encoder's input layer.
    n_reference
        Samples of the model mapped onto (``n_shared`` of them share the layer).
    n_query
        Samples of the current mapping.
    """

    def __init__(self, n_in: int, width: int, n_shared: int, n_reference: int, n_query: int):
        super().__init__()
        self.n_shared, self.n_reference = n_shared, n_reference
        self.reference = _layer_stack(n_reference - n_shared, n_in, width)
        self.query = _layer_stack(n_query, n_in, width)

    def layer(self, sample: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias of the input layer of sample code ``sample`` (>= ``n_shared``)."""
        if sample < self.n_reference:
            stack, row = self.reference, sample - self.n_shared
        else:
            stack, row = self.query, sample - self.n_reference
        return stack["weight"][row], stack["bias"][row]

    def start(self, first: nn.Linear) -> None:
        """Start the current mapping's layers at the encoder's input layer ``first``."""
        with torch.no_grad():
            self.query["weight"].copy_(first.weight.expand_as(self.query["weight"]))
            self.query["bias"].copy_(first.bias.expand_as(self.query["bias"]))


def _layer_stack(n: int, n_in: int, width: int) -> nn.ParameterDict:
    return nn.ParameterDict(
        {
            "weight": nn.Parameter(torch.zeros(n, width, n_in)),
            "bias": nn.Parameter(torch.zeros(n, width)),
        }
    )


def run_network(
    network: nn.Sequential,
    x: torch.Tensor,
    shifts: SampleShifts | None = None,
    batch: torch.Tensor | None = None,
    *,
    skip_first: bool = False,
    fixed: bool = False,
) -> torch.Tensor:
    """Apply ``network``, adding the sample shifts after its first ``len(shifts)`` linear layers.

    ``skip_first``: ``x`` is already the output of the first (linear) layer. ``fixed``: the
    weights and shifts take no gradient (only ``x`` does), at no extra cost.
    """
    shifted = 0
    for i, layer in enumerate(network):
        if not (skip_first and i == 0):
            x = _fixed_layer(layer, x) if fixed else layer(x)
        if shifts is not None and batch is not None:
            if isinstance(layer, nn.Linear) and shifted < len(shifts):
                shift = shifts.shift(shifted, batch)
                x = x + (shift.detach() if fixed else shift)
                shifted += 1
    return x


def _fixed_layer(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` with the layer's parameters detached (batch statistics as usual)."""
    if isinstance(layer, nn.Linear):
        bias = None if layer.bias is None else layer.bias.detach()
        return F.linear(x, layer.weight.detach(), bias)
    if isinstance(layer, nn.BatchNorm1d):
        use_batch = layer.training or layer.running_mean is None
        return F.batch_norm(
            x,
            layer.running_mean,
            layer.running_var,
            None if layer.weight is None else layer.weight.detach(),
            None if layer.bias is None else layer.bias.detach(),
            training=use_batch,
            momentum=0.1 if layer.momentum is None else layer.momentum,
            eps=layer.eps,
        )
    return layer(x)  # activations, dropout: no parameters


class _Discriminator(nn.Module):
    """Modality discriminator on the latent: 50 and 100 hidden units, one sigmoid output."""

    def __init__(self, n_latent: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_latent, 50),
            nn.LeakyReLU(0.2),
            nn.Linear(50, 100),
            nn.LeakyReLU(0.2),
            nn.Linear(100, 1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


def _codes(batch: torch.Tensor | None) -> torch.Tensor | None:
    """Sample codes as a flat long tensor (the loaders give float columns)."""
    return None if batch is None else batch.reshape(-1).long()
