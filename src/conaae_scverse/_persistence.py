"""Saving and loading models: tensors via ``torch.load(weights_only=True)``, settings as JSON.

A model directory may come from an untrusted source, so loading never executes code from it:
the weights are unpickled with PyTorch's restricted ``weights_only`` unpickler, which refuses
any object that is not a tensor or a plain container, and the settings are plain JSON whose
every field is checked before it is used. Anything damaged, tampered with or from another
format is refused with a :class:`ModelFileError`.

Saving is atomic: the files are written into a fresh temporary directory next to the target,
which is then renamed into place; a failure leaves the target as it was and no temporary
directory behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from ._arguments import is_number
from ._constants import MODALITIES
from ._data import SetupArgs
from ._hyperparameters import Hyperparameters

if TYPE_CHECKING:
    from ._model import ConAAE

WEIGHTS_FILE = "model.pt"
SETTINGS_FILE = "settings.json"
FORMAT_NAME = "conaae-scverse"
FORMAT_VERSION = 1
_REQUIRED = (
    "format",
    "format_version",
    "init_params",
    "setup",
    "label_categories",
    "log1p",
    "var_names",
)


class ModelFileError(ValueError):
    """A model directory is missing, incomplete, tampered with or not from this package."""


# ---------------------------------------------------------------------------------- saving
def _json_default(value: Any) -> Any:
    """JSON form of numpy scalars and arrays (e.g. ``n_latent=np.int64(8)``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    msg = f"Object of type {type(value).__name__} is not JSON serializable"
    raise TypeError(msg)


def shared_input_batches(settings: dict[str, Any]) -> dict[str, int]:
    """Return the samples per modality sharing the encoder's input layer in saved settings.

    Models saved before mapped-on samples had input layers of their own share it among all.
    """
    samples = settings.get("batch_categories", {})
    default = {m: max(1, len(samples.get(m, []))) for m in MODALITIES}
    return settings.get("n_shared_input_batches", default)


def model_settings(model: ConAAE) -> dict[str, Any]:
    from . import __version__

    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "init_params": model.hyperparameters_.to_dict(),
        "setup": model.setup_.to_dict(),
        "label_categories": model.label_categories_,
        "batch_categories": model.batch_categories_,
        "n_reference_batches": {m: model.module.n_batches[m][0] for m in MODALITIES},
        "n_shared_input_batches": dict(model.module.n_shared_input),
        "log1p": model.log1p_,
        "cell_total": model.cell_total_,
        "n_components": model.n_components_,
        "var_names": {m: model.modalities_[m].var_names.tolist() for m in MODALITIES},
        "is_trained": model.is_trained_,
        "n_train_calls": model.n_train_calls_,
        "label_temperature": dict(model.label_temperature_),
        "history": {
            key: {
                "index": [int(i) for i in frame.index],
                "values": frame.iloc[:, 0].astype(float).tolist(),
            }
            for key, frame in model.history_.items()
        },
    }


def _is_model_dir(path: Path) -> bool:
    """Whether ``path`` may be replaced: an empty directory or a saved model."""
    if not path.is_dir() or path.is_symlink():
        return False
    return (path / SETTINGS_FILE).is_file() or not any(path.iterdir())


def _write_synced(path: Path, write) -> None:
    with open(path, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def save_model(model: ConAAE, dir_path: str | os.PathLike, *, overwrite: bool) -> None:
    """Write the model into a fresh temporary directory, then move it into place.

    Raises
    ------
    FileExistsError
        ``dir_path`` exists and ``overwrite`` is false, or it exists but is neither an empty
        directory nor a saved model (so that ``overwrite=True`` cannot wipe unrelated data).
    """
    target = Path(dir_path)
    if target.exists() or target.is_symlink():
        if not overwrite:
            msg = f"{str(target)!r} already exists. Pass overwrite=True to replace it."
            raise FileExistsError(msg)
        if not _is_model_dir(target):
            msg = (
                f"{str(target)!r} exists but is not a saved ConAAE model (no {SETTINGS_FILE}) "
                "nor an empty directory; refusing to replace it even with overwrite=True. "
                "Choose another path."
            )
            raise FileExistsError(msg)
    state = {k: v.detach().cpu() for k, v in model.module.state_dict().items()}
    settings = json.dumps(model_settings(model), default=_json_default).encode()

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    backup: Path | None = None
    try:
        _write_synced(staging / WEIGHTS_FILE, lambda handle: torch.save(state, handle))
        _write_synced(staging / SETTINGS_FILE, lambda handle: handle.write(settings))
        if target.exists() or target.is_symlink():
            backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, backup / "old")
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(backup / "old", target)  # put the previous model back
                raise
        else:
            os.replace(staging, target)
    finally:
        # After a successful rename `staging` no longer exists; after a failure it is removed.
        shutil.rmtree(staging, ignore_errors=True)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)


# ---------------------------------------------------------------------------------- loading
def _fail(path: Path, problem: str) -> ModelFileError:
    return ModelFileError(
        f"{str(path)!r} is not a valid conaae-scverse settings file: {problem}. The model "
        "directory is damaged or was not written by ConAAE.save; save the model again."
    )


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_total(value: Any) -> bool:
    return is_number(value) and 0 <= value < float("inf")


def _check_settings(settings: Any, path: Path) -> None:
    """Check every field that loading uses, so that a tampered file fails here, clearly."""
    if not isinstance(settings, dict) or settings.get("format") != FORMAT_NAME:
        msg = (
            f"{str(path)!r} is not a conaae-scverse settings file (its 'format' field is not "
            f"{FORMAT_NAME!r}). Load only directories written by ConAAE.save."
        )
        raise ModelFileError(msg)
    missing = [key for key in _REQUIRED if key not in settings]
    if missing:
        raise _fail(path, f"fields {missing} are missing")
    version = settings["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(path, f"format_version is {version!r}")
    if version > FORMAT_VERSION:
        msg = (
            f"{str(path)!r} was written by a newer conaae-scverse (format {version}, this "
            f"version reads up to {FORMAT_VERSION}); upgrade the package to load it."
        )
        raise ModelFileError(msg)

    setup = settings["setup"]
    fields = list(SetupArgs.__dataclass_fields__)
    if isinstance(setup, dict):
        # Files written before batch_key existed lack it.
        setup.setdefault("batch_key", None)
    if not isinstance(setup, dict) or sorted(setup) != sorted(fields):
        raise _fail(path, f"'setup' must have exactly the fields {fields}")
    for key, value in setup.items():
        optional = key not in ("rna_mod", "atac_mod")
        if not (isinstance(value, str) or (optional and value is None)):
            raise _fail(path, f"setup[{key!r}] is {value!r}")

    if not _is_str_list(settings["label_categories"]):
        raise _fail(path, "'label_categories' must be a list of strings")
    samples = settings.get("batch_categories", {m: [] for m in MODALITIES})
    if (
        not isinstance(samples, dict)
        or sorted(samples) != sorted(MODALITIES)
        or not all(_is_str_list(v) for v in samples.values())
    ):
        raise _fail(path, "'batch_categories' must map 'rna' and 'atac' to lists of strings")
    n_reference = settings.get(
        "n_reference_batches", {m: max(1, len(samples[m])) for m in samples}
    )
    if (
        not isinstance(n_reference, dict)
        or sorted(n_reference) != sorted(MODALITIES)
        or not all(
            isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= max(1, len(samples[m]))
            for m, k in n_reference.items()
        )
    ):
        raise _fail(path, "'n_reference_batches' must map 'rna' and 'atac' to sample counts")
    n_samples = {m: max(1, len(samples[m])) for m in samples}
    n_shared = shared_input_batches(settings)
    if (
        not isinstance(n_shared, dict)
        or sorted(n_shared) != sorted(MODALITIES)
        or not all(
            isinstance(k, int)
            and not isinstance(k, bool)
            and (1 <= k <= n_reference[m] or k == n_samples[m])
            for m, k in n_shared.items()
        )
    ):
        raise _fail(path, "'n_shared_input_batches' must map 'rna' and 'atac' to sample counts")
    var_names = settings["var_names"]
    log1p = settings["log1p"]
    if (
        not isinstance(log1p, dict)
        or sorted(log1p) != sorted(MODALITIES)
        or not all(isinstance(v, bool) for v in log1p.values())
    ):
        raise _fail(path, "'log1p' must map 'rna' and 'atac' to true/false")
    # Models saved before per-cell scaling existed have none.
    cell_total = settings.get("cell_total", dict.fromkeys(MODALITIES, 0.0))
    if (
        not isinstance(cell_total, dict)
        or sorted(cell_total) != sorted(MODALITIES)
        or not all(_is_total(v) for v in cell_total.values())
    ):
        raise _fail(path, "'cell_total' must map 'rna' and 'atac' to totals (0: no scaling)")
    if (
        not isinstance(var_names, dict)
        or sorted(var_names) != sorted(MODALITIES)
        or not all(_is_str_list(v) and v for v in var_names.values())
    ):
        raise _fail(path, "'var_names' must map 'rna' and 'atac' to lists of feature names")

    n_components = settings.get("n_components", dict.fromkeys(MODALITIES, 0))
    if (
        not isinstance(n_components, dict)
        or sorted(n_components) != sorted(MODALITIES)
        or not all(
            isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= len(var_names[m])
            for m, k in n_components.items()
        )
    ):
        raise _fail(path, "'n_components' must map 'rna' and 'atac' to counts of axes")

    init_params = settings["init_params"]
    if not isinstance(init_params, dict):
        raise _fail(path, "'init_params' must be an object")
    _check_init_params(init_params, path)

    temperature = settings.get("label_temperature", dict.fromkeys(MODALITIES, 1.0))
    if (
        not isinstance(temperature, dict)
        or sorted(temperature) != sorted(MODALITIES)
        or not all(is_number(t) and 1 <= t < float("inf") for t in temperature.values())
    ):
        raise _fail(path, "'label_temperature' must map 'rna' and 'atac' to numbers >= 1")
    if not isinstance(settings.get("is_trained", True), bool):
        raise _fail(path, "'is_trained' must be true or false")
    n_calls = settings.get("n_train_calls", 0)
    if not isinstance(n_calls, int) or isinstance(n_calls, bool) or n_calls < 0:
        raise _fail(path, "'n_train_calls' must be a non-negative integer")
    history = settings.get("history", {})
    if not isinstance(history, dict):
        raise _fail(path, "'history' must be an object")
    for key, value in history.items():
        ok = (
            isinstance(value, dict)
            and isinstance(value.get("index"), list)
            and isinstance(value.get("values"), list)
            and len(value["index"]) == len(value["values"])
            and all(isinstance(i, int) and not isinstance(i, bool) for i in value["index"])
            and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value["values"]
            )
        )
        if not ok:
            raise _fail(path, f"history entry {key!r} is malformed")


def _check_init_params(init_params: dict[str, Any], path: Path) -> None:
    unknown = sorted(set(init_params) - set(Hyperparameters.names()))
    if unknown:
        raise _fail(path, f"init_params has unknown fields {unknown}")
    try:
        Hyperparameters.from_dict(init_params)
    except (TypeError, ValueError, KeyError) as err:
        raise _fail(path, f"invalid hyperparameters ({err})") from err


def _read_settings(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
        settings = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        msg = (
            f"Could not read {str(path)!r} ({type(err).__name__}: {err}). The model directory "
            "is damaged; save the model again."
        )
        raise ModelFileError(msg) from err
    _check_settings(settings, path)
    return settings


def _load_error_summary(err: Exception) -> str:
    """Describe why ``torch.load`` failed, without its advice to turn off its safety."""
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:
        detail = text.split(marker, 1)[1].strip().split("\n")[0]
        detail = detail.split(". Please use", 1)[0].strip()
        return f"{type(err).__name__}: {detail}"
    first = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        # weights_only uses PyTorch's restricted unpickler: it refuses any pickled object that
        # is not a tensor or a plain container, so a planted pickle cannot run code.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        msg = (
            f"Refused to load {str(path)!r}: it is not a plain tensor state dict written by "
            f"ConAAE.save ({_load_error_summary(err)}). It may be truncated, damaged or "
            "tampered with; never load it with torch.load(weights_only=False). Only load model "
            "files from sources you trust, and save the model again to fix it."
        )
        raise ModelFileError(msg) from err
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        msg = f"{str(path)!r} does not hold a state dict of tensors; save the model again."
        raise ModelFileError(msg)
    return state


def _check_architecture(settings: dict[str, Any], state: dict[str, torch.Tensor], directory):
    """Refuse settings whose layer sizes the weights do not have, before allocating them.

    A tampered ``settings.json`` could otherwise ask for, e.g., a hidden layer of 10^9 units.
    """
    dims = {int(d) for tensor in state.values() for d in tensor.shape}
    params = settings["init_params"]
    widths = [int(params.get("n_latent", 50))]
    if isinstance(params.get("n_hidden"), list):
        widths += [int(h) for h in params["n_hidden"]]
    widths += [len(names) for names in settings["var_names"].values()]
    absent = sorted({w for w in widths if w not in dims})
    if absent:
        msg = (
            f"The settings and weights in {str(directory)!r} do not match: layer sizes "
            f"{absent[:5]} from {SETTINGS_FILE} appear in no tensor of {WEIGHTS_FILE}. The "
            "directory is damaged or tampered with; save the model again."
        )
        raise ModelFileError(msg)


@dataclass(frozen=True)
class SavedModel:
    """What a model directory holds, read and checked by :func:`read_model`."""

    directory: Path
    settings: dict[str, Any]
    state: dict[str, torch.Tensor]

    @property
    def hyperparameters(self) -> Hyperparameters:
        return Hyperparameters.from_dict(self.settings["init_params"])

    @property
    def history(self) -> dict[str, pd.DataFrame]:
        """Every logged loss term per epoch, as :attr:`ConAAE.history` gives it."""
        return {
            key: pd.DataFrame(
                {key: np.asarray(value["values"], dtype=float)},
                index=pd.Index(value["index"], name="epoch"),
            )
            for key, value in self.settings.get("history", {}).items()
        }


def read_model(dir_path: str | os.PathLike) -> SavedModel:
    """Read and check a directory written by :func:`save_model`.

    Raises
    ------
    FileNotFoundError
        The directory or one of its two files does not exist.
    ModelFileError
        A file is damaged, tampered with, from another format, or the weights do not fit the
        settings (a :class:`ValueError`).
    """
    directory = Path(dir_path)
    for name in (SETTINGS_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            msg = (
                f"{str(directory / name)!r} not found: is {str(directory)!r} a model directory "
                "written by ConAAE.save?"
            )
            raise FileNotFoundError(msg)
    settings = _read_settings(directory / SETTINGS_FILE)
    state = _read_weights(directory / WEIGHTS_FILE)
    _check_architecture(settings, state, directory)
    return SavedModel(directory, settings, state)


def merge_sample_shifts(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return the weights with the shifts of mapped-on samples made reference ones.

    A model that was itself mapped onto a reference keeps the shifts of its two kinds of
    samples apart (``...reference.i`` and ``...query.i``); as the reference of a new mapping,
    all of them are reference samples, in the same order as its sample categories.
    """
    merged = dict(state)
    for key in [k for k in state if ".query." in k]:
        query = merged.pop(key)
        target = key.replace(".query.", ".reference.")
        if target in merged and query.numel():
            merged[target] = torch.cat([merged[target], query])
    return merged


def load_weights(module: torch.nn.Module, saved: SavedModel) -> None:
    """Put the saved weights into ``module``; refuse weights that do not fit or are not finite."""
    try:
        module.load_state_dict(saved.state, strict=True)
    except RuntimeError as err:
        msg = (
            f"The weights in {str(saved.directory)!r} do not fit its settings; the directory is "
            f"damaged or tampered with, save the model again. {err}"
        )
        raise ModelFileError(msg) from err
    for name, tensor in module.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            msg = (
                f"The weights in {str(saved.directory)!r} hold NaN or infinite values "
                f"({name!r}); the directory is damaged, save the model again."
            )
            raise ModelFileError(msg)


__all__ = ["ModelFileError", "SavedModel", "load_weights", "read_model", "save_model"]
