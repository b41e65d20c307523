"""The joint embedding of both modalities, coloured by modality and label."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._constants import OUTPUT_KEYS
from ._utils import check_show_save, doc_show_save, finish

if TYPE_CHECKING:
    import anndata as ad
    from matplotlib.axes import Axes

    from .._model import ConAAE


def joint_umap(
    joint: ad.AnnData,
    *,
    use_rep: str = OUTPUT_KEYS.LATENT,
    n_neighbors: int = 15,
    random_state: int = 0,
) -> ad.AnnData:
    """Return a copy of ``joint`` with the neighbour graph and UMAP of ``.obsm[use_rep]``."""
    import scanpy as sc

    if use_rep not in joint.obsm:
        msg = (
            f"The AnnData has no .obsm[{use_rep!r}] to compute a UMAP from (it has "
            f"{list(joint.obsm)}). Use model.get_joint_adata(), or pass use_rep=."
        )
        raise KeyError(msg)
    if joint.n_obs < 3:
        msg = f"A UMAP needs at least 3 cells, the AnnData has {joint.n_obs}."
        raise ValueError(msg)
    joint = joint.copy()
    sc.pp.neighbors(
        joint,
        use_rep=use_rep,
        n_neighbors=min(n_neighbors, joint.n_obs - 1),
        random_state=random_state,
    )
    sc.tl.umap(joint, random_state=random_state)
    return joint


@doc_show_save("embedding")
def embedding(
    data: ConAAE | ad.AnnData,
    *,
    color: str | Sequence[str] | None = None,
    basis: str = "umap",
    use_rep: str = OUTPUT_KEYS.LATENT,
    n_neighbors: int = 15,
    random_state: int = 0,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Plot the joint embedding of the RNA and ATAC cells, coloured by modality and label.

    A thin wrapper of :func:`scanpy.pl.embedding`: well-integrated modalities mix in the
    ``modality`` panel while the labels stay separated.

    Parameters
    ----------
    data
        A trained :class:`~conaae_scverse.ConAAE`: its
        :meth:`~conaae_scverse.ConAAE.get_joint_adata` is embedded (neighbours and UMAP
        computed with scanpy). Or a joint AnnData: with ``.obsm[f"X_{basis}"]`` it is plotted
        as it is, else (for ``basis="umap"``) the UMAP of ``.obsm[use_rep]`` is computed on a
        copy, so ``data`` is never modified. To keep the UMAP, compute it yourself:
        ``sc.pp.neighbors(joint, use_rep="X_conaae")`` then ``sc.tl.umap(joint)``.
    color
        obs columns to colour by, one panel each. Default: ``"modality"``, the model's label
        column (if it was set up with ``labels_key``) and ``"conaae_label"`` (if present).
    basis
        Embedding in ``.obsm[f"X_{basis}"]`` (``"umap"``, or e.g. ``"conaae"`` for the first
        two latent dimensions).
    use_rep
        Latent representation the UMAP is computed from.
    n_neighbors
        Neighbours of the graph the UMAP is computed from.
    random_state
        Seed of the neighbour graph and UMAP.
    ax
        Axes to draw on (one colour only).
    {show_save}
    **kwargs
        Passed to :func:`scanpy.pl.embedding` (e.g. ``size``, ``palette``, ``ncols``,
        ``legend_loc``).

    Returns
    -------
    ``None`` when the figure is shown; else, as :func:`scanpy.pl.umap`, the
    :class:`~matplotlib.axes.Axes` for one colour or a list of Axes for several.

    Examples
    --------
    >>> import conaae_scverse as ca
    >>> mdata = ca.datasets.simulate(n_cells=300)
    >>> ca.ConAAE.setup_mudata(mdata, labels_key="batch")
    >>> model = ca.ConAAE(mdata)
    >>> model.train(max_epochs=20)
    >>> axes = ca.pl.embedding(model, color=["modality", "batch"], show=False)

    With a joint AnnData whose UMAP you computed:

    >>> import scanpy as sc
    >>> joint = model.get_joint_adata()
    >>> sc.pp.neighbors(joint, use_rep="X_conaae")
    >>> sc.tl.umap(joint)
    >>> ax = ca.pl.embedding(joint, color="conaae_label", show=False)
    """
    import anndata as ad
    import scanpy as sc

    check_show_save(show, save)
    labels_key = None
    if isinstance(data, ad.AnnData):
        joint = data
    elif hasattr(data, "get_joint_adata"):
        if not getattr(data, "is_trained", True):
            msg = "The model is not trained: call model.train() before plotting its embedding."
            raise ValueError(msg)
        joint = data.get_joint_adata()
        labels_key = data.setup_.labels_key
    else:
        msg = (
            "embedding() needs a ConAAE model or a joint AnnData (model.get_joint_adata()), "
            f"got {type(data).__name__}."
        )
        raise TypeError(msg)

    key = f"X_{basis}"
    if key not in joint.obsm:
        if basis != "umap":
            msg = (
                f"The AnnData has no .obsm[{key!r}] (it has {list(joint.obsm)}); compute it, "
                "or use basis='umap' to have the UMAP computed."
            )
            raise KeyError(msg)
        joint = joint_umap(
            joint, use_rep=use_rep, n_neighbors=n_neighbors, random_state=random_state
        )

    if color is None:
        candidates = ["modality", labels_key, OUTPUT_KEYS.LABEL]
        color = [c for c in dict.fromkeys(candidates) if c is not None and c in joint.obs]
        color = color or None
    colors = [color] if isinstance(color, str) else list(color or [])
    missing = [c for c in colors if c not in joint.obs and c not in joint.var_names]
    if missing:
        msg = f"Cannot colour by {missing}: not in obs (it has {list(joint.obs.columns)})."
        raise KeyError(msg)
    if ax is not None and len(colors) > 1:
        msg = f"ax= draws one panel, but {len(colors)} colours were given; pass one colour."
        raise ValueError(msg)

    result = sc.pl.embedding(
        joint,
        basis=basis,
        color=(colors[0] if len(colors) == 1 else colors) or None,
        ax=ax,
        show=False,
        **kwargs,
    )
    first = result[0] if isinstance(result, list) else result
    return finish(first.figure, result, show=show, save=save, name="embedding")
