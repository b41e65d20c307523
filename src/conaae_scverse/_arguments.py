"""Checks of arguments: training and inference options, data handed to a trained model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from . import _data


def check_features(adata: ad.AnnData, var_names: Sequence[str], mod_name: str) -> None:
    expected = pd.Index(var_names)
    got = pd.Index(adata.var_names.astype(str))
    if got.equals(expected):
        return
    if len(got) == len(expected) and set(got) == set(expected):
        msg = (
            f"Modality {mod_name!r} has the model's features in another order. Reorder them: "
            f"`mdata.mod[{mod_name!r}] = mdata.mod[{mod_name!r}][:, model_var_names]`."
        )
        raise ValueError(msg)
    missing = expected.difference(got, sort=False)
    extra = got.difference(expected, sort=False)
    msg = (
        f"Modality {mod_name!r} does not have the model's features: it has {len(got)}, the "
        f"model was trained on {len(expected)}; {len(missing)} training features missing "
        f"(e.g. {list(missing[:3])}), {len(extra)} unknown (e.g. {list(extra[:3])}). Use data "
        "with exactly the training features, in the same order."
    )
    raise ValueError(msg)


#: What ``input_transform`` may say, for both modalities or for each.
INPUT_TRANSFORMS = ("auto", "log1p", "normalize_log1p", "none")


def input_transform_choice(transform, mod: str, mod_name: str) -> str:
    """Return what ``input_transform`` asks of one modality (a dict may name it either way)."""
    if isinstance(transform, Mapping):
        return transform.get(mod, transform.get(mod_name, "auto"))
    return transform


def resolve_input_transform(transform, mod: str, matrix, mod_name: str) -> str:
    """Return one modality's transform: ``"normalize_log1p"``, ``"log1p"`` or ``"none"``."""
    choice = input_transform_choice(transform, mod, mod_name)
    if choice not in INPUT_TRANSFORMS:
        raise ValueError(input_transform_error(choice))
    if choice in ("log1p", "normalize_log1p") and _data.min_value(matrix) < 0:
        msg = (
            f"Modality {mod_name!r} has negative values, but input_transform={choice!r} "
            "expects counts. Pass raw counts (e.g. rna_layer='counts') or use "
            "input_transform='none'."
        )
        raise ValueError(msg)
    if choice == "auto":
        return "log1p" if _data.looks_like_counts(matrix) else "none"
    return choice


def input_transform_error(choice) -> str:
    return f"input_transform must be 'auto', 'log1p', 'normalize_log1p' or 'none', got {choice!r}."


def check_fraction(name: str, value: float, *, allow_zero: bool = False) -> None:
    numeric = is_number(value)
    low_ok = numeric and (value >= 0 if allow_zero else value > 0)
    if not (numeric and low_ok and value <= 1):
        msg = f"{name} must be in {'[0, 1]' if allow_zero else '(0, 1]'}, got {value!r}."
        raise ValueError(msg)


def is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def normalize_mapping(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        msg = f"{name} must be a dict, got {type(value).__name__} ({value!r})."
        raise TypeError(msg)
    return dict(value)


def check_count(name: str, value: Any, minimum: int) -> None:
    """Fail unless ``value`` is an integer >= ``minimum``."""
    if not is_int(value) or value < minimum:
        msg = f"{name} must be an integer >= {minimum}, got {value!r}."
        raise ValueError(msg)


def check_unknown_call(min_confidence: Any, unknown_label: Any, categories: Sequence[str]) -> None:
    """``min_confidence`` in (0, 1] or None, and an ``unknown_label`` that is not a label."""
    if min_confidence is None:
        return
    if not is_number(min_confidence) or not 0 < min_confidence <= 1:
        msg = f"min_confidence must be a number in (0, 1] or None, got {min_confidence!r}."
        raise ValueError(msg)
    if not isinstance(unknown_label, str) or not unknown_label:
        msg = f"unknown_label must be a non-empty string, got {unknown_label!r}."
        raise TypeError(msg)
    if unknown_label in set(map(str, categories)):
        msg = (
            f"unknown_label {unknown_label!r} is one of the label categories; pick a name "
            "that is not a cell type, e.g. unknown_label='unassigned'."
        )
        raise ValueError(msg)
