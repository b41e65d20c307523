"""Training curves of every loss term."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from ._utils import check_show_save, doc_show_save, finish

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .._model import ConAAE

_MODES = ("train", "validation")
_TOTAL = "loss"
_MODE_COLORS = {"train": "C0", "validation": "C1"}


def _split(name: str) -> tuple[str, str | None]:
    """``"cycle_train"`` -> ``("cycle", "train")``; ``"validation_loss"`` -> ``("loss", ...)``."""
    for mode in _MODES:
        if name == f"{mode}_{_TOTAL}":
            return _TOTAL, mode
        if name.endswith(f"_{mode}"):
            return name[: -len(mode) - 1], mode
    return name, None


def _as_history(model: ConAAE | Mapping[str, pd.DataFrame]) -> dict[str, pd.Series]:
    history = model if isinstance(model, Mapping) else getattr(model, "history", None)
    if not isinstance(history, Mapping):
        msg = (
            "history() needs a ConAAE model or its `model.history` dict "
            f"({{name: DataFrame}}), got {type(model).__name__}."
        )
        raise TypeError(msg)
    if not history:
        msg = "The model has no training history: call model.train() first."
        raise ValueError(msg)
    series = {}
    for name, frame in history.items():
        if isinstance(frame, pd.DataFrame):
            if frame.shape[1] != 1:
                msg = f"history[{name!r}] must have one column, it has {frame.shape[1]}."
                raise ValueError(msg)
            frame = frame.iloc[:, 0]
        series[str(name)] = pd.Series(frame, dtype=float).dropna()
    return series


def _select(series: dict[str, pd.Series], keys: str | Sequence[str] | None) -> list[str]:
    if keys is None:
        return list(series)
    if isinstance(keys, str):
        keys = [keys]
    chosen: list[str] = []
    for key in keys:
        matches = [key] if key in series else [n for n in series if _split(n)[0] == key]
        if not matches:
            terms = sorted({_split(n)[0] for n in series})
            msg = (
                f"No loss named {key!r} in the history. Use a term ({terms}) or a full name "
                f"({sorted(series)})."
            )
            raise KeyError(msg)
        chosen += [m for m in matches if m not in chosen]
    return chosen


def _draw(ax: Axes, name: str, values: pd.Series, label: str, color: str | None) -> None:
    mode = _split(name)[1]
    # Validation is often logged every few epochs only: mark its points.
    sparse = len(values) < 3 or len(values) < 0.5 * (values.index.max() - values.index.min() + 1)
    ax.plot(
        values.index.to_numpy(),
        values.to_numpy(),
        label=label,
        color=color,
        linestyle="--" if mode == "validation" else "-",
        marker="o" if sparse else None,
        markersize=3,
    )


def _order(name: str) -> int:
    return {"train": 0, None: 1, "validation": 2}[_split(name)[1]]


@doc_show_save("history")
def history(
    model: ConAAE | Mapping[str, pd.DataFrame],
    *,
    keys: str | Sequence[str] | None = None,
    log: bool = False,
    ncols: int = 4,
    ax: Axes | None = None,
    show: bool | None = None,
    save: bool | str | os.PathLike[str] | None = None,
) -> Figure | Axes | None:
    """Plot the training curves of every loss term, on the training and validation cells.

    Plots ``model.history``: one panel per loss term (``reconstruction_rna``, ``adversarial``,
    ``cycle``, ``contrastive``, ``classifier``, ``anchor``, ``mmd``, ``discriminator`` and
    ``loss``, the weighted total; those the model logged) with the training curve as a solid
    line and the validation curve dashed. Terms are unweighted, so the panels show whether
    each objective improves, not how much it contributes to the total.

    Parameters
    ----------
    model
        A trained :class:`~conaae_scverse.ConAAE`, or its ``model.history`` dict
        (``{name: one-column DataFrame indexed by epoch}``).
    keys
        Loss terms to plot: term names (``"cycle"`` gives ``cycle_train`` and
        ``cycle_validation``) or full history names (``"train_loss"``). Default: all.
    log
        Logarithmic y axis.
    ncols
        Panels per row of the grid (without ``ax``).
    ax
        Draw every selected curve on this Axes instead of one panel per term.
    {show_save}

    Returns
    -------
    ``None`` when the figure is shown. Otherwise the :class:`~matplotlib.figure.Figure` of
    the grid, or ``ax`` when one was given.

    Examples
    --------
    >>> import conaae_scverse as ca
    >>> mdata = ca.datasets.simulate(n_cells=300)
    >>> ca.ConAAE.setup_mudata(mdata, labels_key="batch")
    >>> model = ca.ConAAE(mdata)
    >>> model.train(max_epochs=20)
    >>> fig = ca.pl.history(model, show=False)
    >>> fig = ca.pl.history(model, keys=["loss", "cycle"], show=False)
    """
    check_show_save(show, save)
    if not isinstance(ncols, int) or ncols < 1:
        msg = f"ncols must be a positive integer, got {ncols!r}."
        raise ValueError(msg)
    series = _as_history(model)
    names = _select(series, keys)
    import matplotlib.pyplot as plt

    if ax is not None:
        for name in names:
            _draw(ax, name, series[name], name, None)
        _decorate(ax, log)
        ax.set_ylabel("loss")
        return finish(ax.figure, ax, show=show, save=save, name="history")

    terms: dict[str, list[str]] = {}
    for name in names:
        terms.setdefault(_split(name)[0], []).append(name)
    n = len(terms)
    cols = min(ncols, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, constrained_layout=True
    )
    for panel, (term, members) in zip(axes.flat, terms.items(), strict=False):
        for name in sorted(members, key=_order):
            mode = _split(name)[1]
            _draw(panel, name, series[name], mode or name, _MODE_COLORS.get(mode))
        _decorate(panel, log)
        panel.set_title(term)
    for panel in axes.flat[n:]:
        panel.set_visible(False)
    return finish(fig, fig, show=show, save=save, name="history")


def _decorate(ax: Axes, log: bool) -> None:
    ax.set_xlabel("epoch")
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize="small", frameon=False)
    ax.xaxis.get_major_locator().set_params(integer=True)
