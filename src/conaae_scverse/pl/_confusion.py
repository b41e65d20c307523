"""Confusion matrix of predicted against true labels."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .._constants import OUTPUT_KEYS
from ._utils import check_show_save, doc_show_save, finish, new_axes

if TYPE_CHECKING:
    import anndata as ad
    from matplotlib.axes import Axes
    from mudata import MuData

Normalize = Literal["true", "pred", "all"]


def _obs(
    data: MuData | ad.AnnData | pd.DataFrame, keys: tuple[str, str], modality: str | None
) -> pd.DataFrame:
    """Return the obs rows of one modality, or of every modality that has both keys."""
    import anndata as ad
    from mudata import MuData

    if isinstance(data, ad.AnnData | pd.DataFrame):
        if modality is not None:
            msg = "modality= only applies to a MuData; pass the AnnData or obs table alone."
            raise ValueError(msg)
        frames = {"data": data.obs if isinstance(data, ad.AnnData) else data}
    elif isinstance(data, MuData):
        if modality is not None:
            if modality not in data.mod:
                msg = f"MuData has no modality {modality!r}; it has {list(data.mod)}."
                raise KeyError(msg)
            frames = {modality: data.mod[modality].obs}
        else:
            frames = {
                name: adata.obs
                for name, adata in data.mod.items()
                if all(k in adata.obs for k in keys)
            }
            if not frames:
                msg = (
                    f"No modality has both obs columns {list(keys)}. Run model.write_results() "
                    "for the predictions, and check true_key."
                )
                raise KeyError(msg)
    else:
        msg = (
            "confusion() needs a MuData, an AnnData or an obs DataFrame, got "
            f"{type(data).__name__}."
        )
        raise TypeError(msg)
    for name, obs in frames.items():
        for key in keys:
            if key not in obs:
                hint = " Run model.write_results() first." if key == OUTPUT_KEYS.LABEL else ""
                msg = f"{name!r} has no obs column {key!r} (it has {list(obs.columns)}).{hint}"
                raise KeyError(msg)
    return pd.concat([obs[list(keys)] for obs in frames.values()])


def _categories(column: pd.Series) -> list[Any]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return list(column.cat.categories)
    return sorted(column.dropna().unique().tolist(), key=str)


def confusion_matrix(
    true: pd.Series, pred: pd.Series, normalize: bool | Normalize | None = "true"
) -> pd.DataFrame:
    """Count (or fraction of) cells by true label (rows) and predicted label (columns).

    Cells whose true or predicted label is missing are left out. Both axes hold the union of
    the labels as text, the true labels' categories first, so the diagonal is the correct
    calls.
    """
    labels = [str(c) for c in _categories(true)]
    labels += [c for c in map(str, _categories(pred)) if c not in labels]
    keep = true.notna().to_numpy() & pred.notna().to_numpy()
    if not keep.any():
        msg = "No cell has both a true and a predicted label."
        raise ValueError(msg)
    # Labels are compared as text, so 3 (int) and "3" (str) are the same label.
    t = pd.Categorical(true[keep].astype(object).astype(str), categories=labels)
    p = pd.Categorical(pred[keep].astype(object).astype(str), categories=labels)
    counts = pd.crosstab(t, p, dropna=False).reindex(index=labels, columns=labels, fill_value=0)
    counts = counts.astype(float)
    counts.index.name, counts.columns.name = "true", "predicted"
    if normalize is True:
        normalize = "true"
    if normalize in (None, False):
        return counts
    if normalize == "true":
        totals = counts.sum(axis=1).to_numpy()[:, None]
    elif normalize == "pred":
        totals = counts.sum(axis=0).to_numpy()[None, :]
    elif normalize == "all":
        totals = counts.to_numpy().sum()
    else:
        msg = f"normalize must be True, False, 'true', 'pred' or 'all', got {normalize!r}."
        raise ValueError(msg)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(totals > 0, counts.to_numpy() / totals, 0.0)
    return pd.DataFrame(values, index=counts.index, columns=counts.columns)


@doc_show_save("confusion")
def confusion(
    data: MuData | ad.AnnData | pd.DataFrame,
    *,
    true_key: str,
    pred_key: str = OUTPUT_KEYS.LABEL,
    modality: str | None = None,
    normalize: bool | Normalize = True,
    annotate: bool = True,
    cmap: str = "Blues",
    title: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | os.PathLike[str] | None = None,
) -> Axes | None:
    """Plot a heatmap of predicted against true labels.

    Rows are the true labels, columns the predicted ones (both in the same order, so the
    diagonal holds the correct calls); each cell is annotated with its value and the title
    gives the accuracy. Cells without a true label (NaN, e.g. unlabelled cells) are left out.

    Parameters
    ----------
    data
        MuData or AnnData after :meth:`~conaae_scverse.ConAAE.write_results`, or an obs
        table (:class:`pandas.DataFrame`) with both columns, e.g. a subset of cells.
    true_key
        obs column with the true labels.
    pred_key
        obs column with the predicted labels (``"conaae_label"``, written by
        :meth:`~conaae_scverse.ConAAE.write_results`).
    modality
        For a MuData: the modality to evaluate (e.g. ``"atac"`` for label transfer). Default:
        the cells of every modality that has both columns.
    normalize
        ``True`` or ``"true"``: fractions of each true label (rows sum to 1, the diagonal is
        each label's recall); ``"pred"``: fractions of each predicted label (precision);
        ``"all"``: fractions of all cells; ``False``: cell counts.
    annotate
        Write each value in its cell.
    cmap
        Matplotlib colormap.
    title
        Axes title. Default: the modality and the accuracy.
    ax
        Axes to draw on (default: a new figure).
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
    >>> ax = ca.pl.confusion(mdata, true_key="batch", modality="atac", show=False)
    """
    check_show_save(show, save)
    obs = _obs(data, (true_key, pred_key), modality)
    true, pred = obs[true_key], obs[pred_key]
    matrix = confusion_matrix(true, pred, normalize=normalize)
    keep = true.notna().to_numpy() & pred.notna().to_numpy()
    accuracy = float(
        np.mean(true[keep].astype(str).to_numpy() == pred[keep].astype(str).to_numpy())
    )

    n = len(matrix)
    ax = new_axes(ax, (1.2 + 0.55 * n, 0.9 + 0.5 * n))
    fractions = normalize not in (None, False)
    image = ax.imshow(
        matrix.to_numpy(),
        cmap=cmap,
        vmin=0,
        vmax=1 if fractions else None,
        interpolation="nearest",
        aspect="auto",
    )
    ax.figure.colorbar(image, ax=ax, label="fraction" if fractions else "cells")
    labels = [str(c) for c in matrix.index]
    ax.set_xticks(range(n), labels, rotation=45 if max(map(len, labels)) > 3 else 0, ha="right")
    ax.set_yticks(range(n), labels)
    if max(map(len, labels)) <= 3:
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("center")
    ax.grid(False)
    ax.set_xlabel(f"predicted ({pred_key})")
    ax.set_ylabel(f"true ({true_key})")
    if annotate:
        values = matrix.to_numpy()
        threshold = 0.5 if fractions else values.max() / 2
        for i in range(n):
            for j in range(n):
                text = f"{values[i, j]:.2f}" if fractions else f"{int(values[i, j])}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize="small",
                    color="white" if values[i, j] > threshold else "black",
                )
    where = f"{modality}: " if modality is not None else ""
    ax.set_title(title if title is not None else f"{where}accuracy {accuracy:.2f}")
    return finish(ax.figure, ax, show=show, save=save, name="confusion")
