"""The one place that imports scvi-tools internals and bridges mudata versions.

Everything here is not public scvi-tools API, so it may move between releases; importing it in
one spot means an upstream change breaks here and nowhere else. Tested with scvi-tools 1.4 on
Python 3.11 and 1.5 on Python 3.12 (see the pin in ``pyproject.toml``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import mudata
from scvi import settings as scvi_settings
from scvi.data import AnnDataManager
from scvi.data.fields import LayerField, NumericalObsField
from scvi.dataloaders import AnnDataLoader
from scvi.model._utils import parse_device_args
from scvi.train import Trainer, TrainingPlan

__all__ = [
    "AnnDataLoader",
    "AnnDataManager",
    "LayerField",
    "NumericalObsField",
    "Trainer",
    "TrainingPlan",
    "disable_mudata_pull",
    "mudata_without_pull",
    "parse_device_args",
    "scvi_settings",
]


@contextlib.contextmanager
def mudata_without_pull() -> Iterator[None]:
    """Use ``pull_on_update=False`` (mudata 0.4's default) in the block, on mudata 0.3 too.

    mudata 0.3 sets options with ``mudata.set_options``; 0.4 has ``mudata.settings.override``.
    """
    settings = getattr(mudata, "settings", None)
    if hasattr(settings, "override"):
        with settings.override(pull_on_update=False):
            yield
    else:
        with mudata.set_options(pull_on_update=False):
            yield


def disable_mudata_pull() -> None:
    """Make ``pull_on_update=False`` (mudata 0.4's default) the setting under mudata 0.3 too."""
    if hasattr(mudata, "set_options"):
        mudata.set_options(pull_on_update=False)
