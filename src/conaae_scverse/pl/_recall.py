"""Matching quality: recall@k against k, with the chance line."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._constants import OUTPUT_KEYS, TRUE_PARTNER_KEY
from .._neighbors import check_metric
from ..metrics import chance_recall_at_k, pairs_from_mudata, recall_at_k_curve
from ._utils import check_show_save, doc_show_save, finish, new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from mudata import MuData

    EmbeddingPair = tuple[np.ndarray, np.ndarray]


def _paired_embeddings(
    data: Any, *, rna_mod: str, atac_mod: str, use_rep: str, partner_key: str
) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) with row i of x the partner of row i of y, from a MuData or a pair of arrays."""
    from mudata import MuData

    if isinstance(data, MuData):
        for mod in (rna_mod, atac_mod):
            if mod not in data.mod:
                msg = f"MuData has no modality {mod!r}; it has {list(data.mod)}."
                raise KeyError(msg)
            if use_rep not in data.mod[mod].obsm:
                msg = (
                    f"mdata.mod[{mod!r}].obsm has no {use_rep!r} (it has "
                    f"{list(data.mod[mod].obsm)}). Run model.write_results() first."
                )
                raise KeyError(msg)
        rna_idx, atac_idx = pairs_from_mudata(
            data, rna_mod=rna_mod, atac_mod=atac_mod, partner_key=partner_key
        )
        x = np.asarray(data.mod[rna_mod].obsm[use_rep])[rna_idx]
        y = np.asarray(data.mod[atac_mod].obsm[use_rep])[atac_idx]
        return x, y
    if isinstance(data, tuple | list) and len(data) == 2:
        x, y = (np.asarray(a, dtype=float) for a in data)
        if x.ndim != 2 or y.ndim != 2 or x.shape != y.shape:
            msg = (
                "A pair of embeddings must be two arrays of the same shape (n_pairs, n_latent), "
                f"row i of one the partner of row i of the other; got shapes {x.shape} and "
                f"{y.shape}."
            )
            raise ValueError(msg)
        return x, y
    msg = (
        "recall_curve() needs a MuData (after model.write_results()), a pair (x, y) of paired "
        f"embeddings, or a dict of those; got {type(data).__name__}."
    )
    raise TypeError(msg)


def _default_ks(n: int) -> list[int]:
    """About 25 values of k, spaced evenly on a log scale from 1 to n."""
    return np.unique(np.rint(np.geomspace(1, max(n, 1), num=25)).astype(int)).tolist()


@doc_show_save("recall_curve")
def recall_curve(
    data: MuData | EmbeddingPair | Mapping[str, MuData | EmbeddingPair],
    *,
    ks: Iterable[int] | None = None,
    rna_mod: str = "rna",
    atac_mod: str = "atac",
    use_rep: str = OUTPUT_KEYS.LATENT,
    partner_key: str = TRUE_PARTNER_KEY,
    metric: Literal["l1", "l2"] = "l1",
    chance: bool = True,
    logx: bool = True,
    label: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | os.PathLike[str] | None = None,
) -> Axes | None:
    """Plot recall@k of the cell matching against k, with the chance line k / n.

    Recall@k is the fraction of RNA cells whose true ATAC partner is among their ``k``
    nearest ATAC cells in the joint embedding
    (:func:`conaae_scverse.metrics.recall_at_k_curve`); an embedding that knows nothing about
    the pairing scores ``k / n`` (dashed grey line). Only cells with a known partner count.

    Parameters
    ----------
    data
        A MuData with the embedding in both modalities' ``.obsm[use_rep]`` and the known
        pairs (see :func:`conaae_scverse.metrics.pairs_from_mudata`); or a pair ``(x, y)`` of
        arrays of shape (n_pairs, n_latent), row i of ``x`` the partner of row i of ``y``; or
        a dict ``{name: MuData or (x, y)}`` to compare several embeddings, one line each.
    ks
        Neighbourhood sizes. Default: about 25 values from 1 to the number of pairs, evenly
        spaced on a log scale.
    rna_mod, atac_mod
        Modalities of a MuData.
    use_rep
        Key of the embedding in ``.obsm``.
    partner_key
        RNA obs column naming each cell's ATAC partner (used when the two modalities do not
        share obs_names).
    metric
        ``"l1"`` (the paper) or ``"l2"``.
    chance
        Draw the chance line k / n.
    logx
        Logarithmic k axis.
    label
        Legend label of a single embedding (default: none, or the dict's keys).
    ax
        Axes to draw on (default: a new figure); draw on the same Axes to compare runs.
    {show_save}

    Returns
    -------
    ``None`` when the figure is shown, else the :class:`~matplotlib.axes.Axes`.

    Examples
    --------
    >>> import conaae_scverse as ca
    >>> mdata = ca.datasets.simulate(n_cells=300)
    >>> ca.ConAAE.setup_mudata(mdata, labels_key="batch")
    >>> model = ca.ConAAE(mdata)
    >>> model.train(max_epochs=20)
    >>> model.write_results()
    >>> ax = ca.pl.recall_curve(mdata, show=False)
    """
    check_show_save(show, save)
    check_metric(metric)
    if isinstance(data, Mapping):
        if not data:
            msg = "recall_curve() got an empty dict; pass at least one embedding."
            raise ValueError(msg)
        if label is not None:
            msg = "label= is for a single embedding; with a dict its keys are the labels."
            raise ValueError(msg)
        entries = dict(data)
    else:
        entries = {label: data}
    pairs = {
        name: _paired_embeddings(
            item, rna_mod=rna_mod, atac_mod=atac_mod, use_rep=use_rep, partner_key=partner_key
        )
        for name, item in entries.items()
    }
    ks_given = None if ks is None else list(ks)
    if ks_given is not None and not ks_given:
        msg = "ks is empty; pass positive integers such as (1, 5, 10, 50)."
        raise ValueError(msg)

    ax = new_axes(ax, (4.2, 3.4))
    chance_sizes: set[int] = set()
    for name, (x, y) in pairs.items():
        n = len(x)
        k_values = ks_given if ks_given is not None else _default_ks(n)
        curve = recall_at_k_curve(x, y, ks=k_values, metric=metric)
        ax.plot(list(curve), list(curve.values()), marker="o", markersize=3, label=name)
        if chance and n not in chance_sizes:
            chance_sizes.add(n)
            ax.plot(
                list(curve),
                [chance_recall_at_k(n, k) for k in curve],
                linestyle="--",
                color="grey",
                linewidth=1,
                label=f"chance (k / {n})",
                zorder=0,
            )
    if logx:
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlabel("k (neighbours)")
    ax.set_ylabel(f"recall@k ({metric})")
    ax.set_ylim(-0.02, 1.02)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", frameon=False)
    return finish(ax.figure, ax, show=show, save=save, name="recall_curve")
