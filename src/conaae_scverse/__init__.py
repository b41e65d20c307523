"""Con-AAE for scverse: align and integrate single-cell RNA-seq and ATAC-seq."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import datasets, metrics, pl, pp, tl
from ._constants import LOSS_KEYS, OUTPUT_KEYS, REGISTRY_KEYS, TRUE_PARTNER_KEY
from ._model import ConAAE
from ._module import ConAAEModule, LossWeights
from ._persistence import ModelFileError
from ._training_plan import ConAAETrainingPlan, NonFiniteLossError

try:
    __version__ = version("conaae-scverse")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = [
    "LOSS_KEYS",
    "OUTPUT_KEYS",
    "REGISTRY_KEYS",
    "TRUE_PARTNER_KEY",
    "ConAAE",
    "ConAAEModule",
    "ConAAETrainingPlan",
    "LossWeights",
    "ModelFileError",
    "NonFiniteLossError",
    "__version__",
    "datasets",
    "metrics",
    "pl",
    "pp",
    "tl",
]
