"""Saving and loading models: tensors via ``torch.load(weights_only=True)``, settings as JSON."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from . import _data
from ._compat import parse_device_args
from ._constants import MODALITIES

if TYPE_CHECKING:
    from mudata import MuData

    from ._model import ConAAE

WEIGHTS_FILE = "model.pt"
SETTINGS_FILE = "settings.json"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model directory is missing, incomplete, tampered with or not from this package."""


def _settings(model: ConAAE) -> dict[str, Any]:
    from . import __version__

    return {
        "format": "conaae-scverse",
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "init_params": model.init_params_,
        "setup": model.setup_.to_dict(),
        "label_categories": model.label_categories_,
        "log1p": model.log1p_,
        "var_names": {m: model.modalities_[m].var_names.tolist() for m in MODALITIES},
        "is_trained": model.is_trained_,
        "n_train_calls": model.n_train_calls_,
        "history": {
            key: {"index": frame.index.tolist(), "values": frame.iloc[:, 0].astype(float).tolist()}
            for key, frame in model.history_.items()
        },
    }


def save_model(model: ConAAE, dir_path: str | os.PathLike, *, overwrite: bool) -> None:
    """Write the model into a fresh temporary directory, then move it into place."""
    target = Path(dir_path)
    if target.exists() and not overwrite:
        msg = f"{str(target)!r} already exists. Pass overwrite=True to replace it."
        raise FileExistsError(msg)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        state = {k: v.detach().cpu() for k, v in model.module.state_dict().items()}
        torch.save(state, staging / WEIGHTS_FILE)
        (staging / SETTINGS_FILE).write_text(json.dumps(_settings(model)))
        if target.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, backup / "old")
            os.replace(staging, target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _read_settings(path: Path) -> dict[str, Any]:
    try:
        settings = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        msg = f"Could not read {str(path)!r} ({err}). The model directory is damaged; save it again."
        raise ModelFileError(msg) from err
    required = {"format", "format_version", "init_params", "setup", "label_categories", "log1p",
                "var_names"}
    if not isinstance(settings, dict) or settings.get("format") != "conaae-scverse" or not (
        required <= set(settings)
    ):
        msg = f"{str(path)!r} is not a conaae-scverse settings file (fields missing or wrong)."
        raise ModelFileError(msg)
    if settings["format_version"] > FORMAT_VERSION:
        msg = (
            f"{str(path)!r} was written by a newer conaae-scverse (format "
            f"{settings['format_version']}); upgrade the package to load it."
        )
        raise ModelFileError(msg)
    return settings


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        # weights_only refuses any pickled object that is not a tensor or plain container,
        # so a planted pickle cannot run code.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:
        msg = (
            f"Refused to load {str(path)!r}: it is not a plain tensor state dict ({err}). "
            "Only load model files from sources you trust; re-save the model to fix it."
        )
        raise ModelFileError(msg) from err
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        msg = f"{str(path)!r} does not hold a state dict of tensors."
        raise ModelFileError(msg)
    return state


def load_model(cls, dir_path: str | os.PathLike, mdata: MuData, *, accelerator: str) -> ConAAE:
    """Rebuild a model from a directory written by :func:`save_model`."""
    directory = Path(dir_path)
    for name in (SETTINGS_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            msg = f"{str(directory / name)!r} not found: is {str(directory)!r} a saved ConAAE model?"
            raise FileNotFoundError(msg)
    settings = _read_settings(directory / SETTINGS_FILE)
    state = _read_weights(directory / WEIGHTS_FILE)
    setup = settings["setup"]
    existing = _data.recall_setup(mdata)
    if existing is None or existing.to_dict() != setup:
        cls.setup_mudata(mdata, **setup)
    model = cls(mdata, **settings["init_params"], _registry=settings)
    try:
        model.module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        msg = f"The weights in {str(directory)!r} do not fit the saved settings: {err}"
        raise ModelFileError(msg) from err
    model.is_trained_ = bool(settings.get("is_trained", True))
    model.n_train_calls_ = int(settings.get("n_train_calls", 0))
    model.history_ = {
        key: pd.DataFrame(
            {key: np.asarray(value["values"], dtype=float)}, index=pd.Index(value["index"], name="epoch")
        )
        for key, value in settings.get("history", {}).items()
    }
    _, _, device = parse_device_args(accelerator, "auto", return_device="torch")
    model.to_device(device)
    model.module.eval()
    return model
