"""Shared plumbing of the plotting functions: scanpy's ``show``/``save``/``ax`` conventions."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

_SHOW_SAVE_DOC = """show
        Show the figure. Default: ``sc.settings.autoshow`` (True unless changed).
    save
        Save the figure: a file path, or ``True`` for
        ``sc.settings.figdir / "conaae_{name}.<sc.settings.file_format_figs>"``."""


def doc_show_save(name: str) -> Callable[[F], F]:
    """Fill the ``{show_save}`` line of a plotting docstring with the shared parameters.

    ``name`` is the figure's name in the default file name of ``save=True``.
    """

    def decorate(function: F) -> F:
        text = _SHOW_SAVE_DOC.replace("{name}", name)
        function.__doc__ = (function.__doc__ or "").replace("{show_save}", text)
        return function

    return decorate


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax`` itself, or the Axes of a new figure of size ``figsize``."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def save_path(save: bool | str | os.PathLike[str], name: str) -> Path:
    """Where ``save`` asks the figure to go.

    A path is used as given (its folder is created). ``True`` means
    ``sc.settings.figdir / f"conaae_{name}.{sc.settings.file_format_figs}"``.
    """
    if save is True:
        import scanpy as sc

        path = Path(sc.settings.figdir) / f"conaae_{name}.{sc.settings.file_format_figs}"
    elif isinstance(save, str | os.PathLike):
        path = Path(save)
    else:
        msg = f"save must be a file path, True or False/None, got {save!r}."
        raise TypeError(msg)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def finish(
    fig: Figure,
    result: T,
    *,
    show: bool | None,
    save: bool | str | os.PathLike[str] | None,
    name: str,
) -> T | None:
    """Save and/or show ``fig``; return ``result`` unless the figure was shown.

    ``show=None`` follows ``sc.settings.autoshow`` (True unless changed), as scanpy does.
    """
    if save is not None and save is not False:
        fig.savefig(save_path(save, name), bbox_inches="tight")
    if show is None:
        show = _autoshow()
    if show:
        import matplotlib.pyplot as plt

        plt.show()
        return None
    return result


def check_show_save(show: Any, save: Any) -> None:
    """Fail early, before any work, on a wrong ``show`` or ``save`` argument."""
    if show is not None and not isinstance(show, bool):
        msg = f"show must be True, False or None, got {show!r}."
        raise TypeError(msg)
    if save is not None and not isinstance(save, bool | str | os.PathLike):
        msg = f"save must be a file path, True or False/None, got {save!r}."
        raise TypeError(msg)


def _autoshow() -> bool:
    try:
        import scanpy as sc
    except ImportError:  # pragma: no cover - scanpy is a dependency
        return True
    return bool(sc.settings.autoshow)
