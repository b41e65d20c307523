"""What a model reads from its registered data: input settings, and each cell's codes.

A new model resolves its settings (label and sample categories, count transform, principal
axes) from the registration; a loaded one takes them from what was saved, and codes the cells
against its own categories. A modality without any label gets pseudo-labels from the label
prior (:mod:`._label_prior`) where the model fits one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import _data, _persistence
from ._arguments import check_features, input_transform_choice, resolve_input_transform
from ._constants import MODALITIES
from ._hyperparameters import Hyperparameters
from ._label_prior import LabelPrior, pseudo_label_unlabelled
from ._registration import Registration


@dataclass(frozen=True)
class InputSettings:
    """How the networks read the data; each mapping is keyed by modality.

    Attributes
    ----------
    categories
        Label categories (empty without labels).
    samples
        Sample categories of each modality.
    log1p
        Whether each modality's counts are log1p-transformed.
    cell_total
        Total each modality's cells are scaled to before log1p (0: no scaling): the median
        total of the training cells under ``input_transform="normalize_log1p"``.
    n_components
        Principal axes each modality is projected on (0: not projected).
    n_reference
        Samples of the training data (later ones were mapped on with ``load_query_data``).
    n_shared
        Samples sharing the encoders' input layers.
    """

    categories: list[str]
    samples: dict[str, list[str]]
    log1p: dict[str, bool]
    cell_total: dict[str, float]
    n_components: dict[str, int]
    n_reference: dict[str, int]
    n_shared: dict[str, int]


@dataclass(frozen=True)
class CodedCells:
    """The modalities as the model codes them, and the label prior behind any pseudo-labels.

    Attributes
    ----------
    modalities
        Each modality's data, with the model's label and sample codes.
    prior
        The label prior, or ``None`` where none was fitted.
    prior_modality
        The modality the prior is about, or ``None``.
    pseudo_labelled
        Share of that modality's cells that hold a pseudo-label (0 without a prior).
    """

    modalities: dict[str, _data.ModalityData]
    prior: LabelPrior | None
    prior_modality: str | None
    pseudo_labelled: float


def _check_input_transform_keys(input_transform: Any, setup) -> None:
    if not isinstance(input_transform, Mapping):
        return
    allowed = {*MODALITIES, setup.rna_mod, setup.atac_mod}
    unknown = sorted(set(map(str, input_transform)) - allowed)
    if unknown:
        msg = f"input_transform has keys {unknown} that name no modality; use {sorted(allowed)}."
        raise KeyError(msg)


def input_settings(
    registration: Registration, params: Hyperparameters, registry: Mapping[str, Any] | None
) -> InputSettings:
    """Resolve the settings of a new model (``registry`` ``None``) or read a saved model's.

    Raises
    ------
    KeyError
        ``input_transform`` names a modality that is not registered.
    ValueError
        A saved model's features differ from the data's.
    """
    setup, adatas = registration.setup, registration.adatas
    _check_input_transform_keys(params.input_transform, setup)
    matrices = {mod: data.matrix for mod, data in registration.modalities.items()}
    if registry is None:
        categories = list(registration.categories)
        samples = {mod: list(registration.batch_categories[mod]) for mod in MODALITIES}
        transforms = {
            mod: resolve_input_transform(
                params.input_transform, mod, matrices[mod], setup.mod_name(mod)
            )
            for mod in MODALITIES
        }
        log1p = {mod: transforms[mod] != "none" for mod in MODALITIES}
        cell_total = {
            mod: _data.median_cell_total(matrices[mod])
            if transforms[mod] == "normalize_log1p"
            else 0.0
            for mod in MODALITIES
        }
        # Never more axes than the cells can span.
        n_components = {
            mod: min(params.input_components(matrices[mod].shape[1]), matrices[mod].shape[0] - 1)
            for mod in MODALITIES
        }
    else:
        categories = list(registry["label_categories"])
        # Models saved before samples existed have none.
        samples = {
            mod: list(registry.get("batch_categories", {}).get(mod, [])) for mod in MODALITIES
        }
        log1p = dict(registry["log1p"])
        # Models saved before per-cell scaling existed have none.
        cell_total = dict(registry.get("cell_total", dict.fromkeys(MODALITIES, 0.0)))
        # Models saved before the projection existed have none.
        n_components = dict(registry.get("n_components", dict.fromkeys(MODALITIES, 0)))
        for mod in MODALITIES:
            check_features(adatas[mod], registry["var_names"][mod], setup.mod_name(mod))
    saved_reference = {} if registry is None else registry.get("n_reference_batches", {})
    n_reference = {
        mod: int(saved_reference.get(mod, max(1, len(samples[mod])))) for mod in MODALITIES
    }
    # In a new model, every sample shares the input layers.
    n_shared = n_reference if registry is None else _persistence.shared_input_batches(registry)
    return InputSettings(
        categories, samples, log1p, cell_total, n_components, n_reference, n_shared
    )


def scale_atac_under_links_prior(
    settings: InputSettings, registration: Registration, params: Hyperparameters, prior_source
) -> InputSettings:
    """Under the ``"links"`` label prior, ATAC counts left to ``"auto"`` are scaled per cell.

    What ``normalize_log1p`` does: with the ``depth_invariance`` term that the links prior
    also turns on, the shallowest ATAC cells no longer gather on one population (muon's PBMC
    data, ``benchmarks/vs_scglue.py``). An explicit ``input_transform`` is kept.
    """
    atac = MODALITIES.ATAC
    choice = input_transform_choice(
        params.input_transform, atac, registration.setup.mod_name(atac)
    )
    if prior_source != "links" or choice != "auto" or not settings.log1p[atac]:
        return settings
    matrix = registration.modalities[atac].matrix
    cell_total = {**settings.cell_total, atac: _data.median_cell_total(matrix)}
    return replace(settings, cell_total=cell_total)


def code_cells(
    registration: Registration,
    settings: InputSettings,
    params: Hyperparameters,
    *,
    fit_prior: bool,
) -> CodedCells:
    """Code each modality's labels and samples over the model's categories.

    With ``fit_prior``, a modality without any label gets pseudo-labels from the label prior
    (not when loading: the prior only steers training, and is not saved).
    """
    setup, adatas = registration.setup, registration.adatas
    modalities = dict(registration.modalities)
    matrices = {mod: data.matrix for mod, data in modalities.items()}
    if settings.categories == registration.categories:
        codes = {mod: data.labels.copy() for mod, data in modalities.items()}
    else:  # a loaded model codes the labels over its own categories
        codes = {
            mod: _data.label_codes(adatas[mod], setup.labels_key, settings.categories)
            for mod in MODALITIES
        }
    sample_codes = {mod: data.batches for mod, data in modalities.items()}
    for mod in MODALITIES:
        if settings.samples[mod] != registration.batch_categories[mod]:  # a loaded model's own
            sample_codes[mod] = _data.batch_codes(
                adatas[mod], setup.batch_key, settings.samples[mod], setup.mod_name(mod)
            )
    prior, prior_modality = None, None
    if fit_prior:
        prior, prior_modality = pseudo_label_unlabelled(
            params.label_prior,
            matrices,
            codes,
            n_labels=len(settings.categories),
            log1p=settings.log1p,
            gene_links=registration.gene_links,
            rna_var_names=adatas[MODALITIES.RNA].var_names,
            min_confidence=params.prior_confidence,
            seed=params.seed,
        )
    for mod in MODALITIES:
        # Registered once; a modality whose labels or samples this model codes otherwise
        # gets its own.
        if not (
            np.array_equal(codes[mod], modalities[mod].labels)
            and np.array_equal(sample_codes[mod], modalities[mod].batches)
        ):
            modalities[mod] = _data.build_modality(
                mod, adatas[mod], matrices[mod], codes[mod], sample_codes[mod]
            )
    pseudo_labelled = float((codes[prior_modality] >= 0).mean()) if prior_modality else 0.0
    return CodedCells(modalities, prior, prior_modality, pseudo_labelled)
