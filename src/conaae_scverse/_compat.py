"""The one place that imports scvi-tools internals.

Everything here is not public scvi-tools API, so it may move between releases; importing it in
one spot means an upstream change breaks here and nowhere else. Tested with scvi-tools 1.2-1.4
(see the pin in ``pyproject.toml``).
"""

from __future__ import annotations

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
    "parse_device_args",
    "scvi_settings",
]
