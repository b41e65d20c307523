"""The hyperparameters of :class:`~conaae_scverse.ConAAE`: one frozen, validated object.

The model builds it from its keyword arguments; a saved model stores :meth:`to_dict` and
loading rebuilds it with :meth:`from_dict`, which refuses unknown or invalid fields. Neither
needs the model class, so persistence does not import the model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._arguments import (
    INPUT_TRANSFORMS,
    input_transform_error,
    is_int,
    is_number,
    normalize_mapping,
)
from ._constants import AUTO_INPUT_COMPONENTS, AUTO_PROJECTION_MIN_FEATURES
from ._networks import LossWeights

LABEL_PRIORS = ("auto", "links", "ot", "none")
ALIGNMENTS = ("adversarial", "mmd", "none")
CONTRASTIVE_MODES = ("auto", "supervised", "self_supervised")
PSEUDO_LABEL_LOSSES = ("auto", "contrastive", "classifier")
DEFAULT_HIDDEN = (256, 128)
#: ``depth_invariance`` weight under the ``"links"`` label prior when ``loss_weights`` does not
#: set it: with the ATAC counts scaled per cell it labelled and aligned the benchmarks with
#: peak coordinates better than without (``benchmarks/vs_scglue.py``, ``label_transfer.py``,
#: ``wide.py``). Elsewhere the term stays off: where depth tells populations apart it costs.
LINKS_DEPTH_INVARIANCE = 10.0


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """Architecture, loss and prior settings of a model (see :class:`ConAAE` for each).

    ``n_hidden`` is ``"paper"`` or a tuple of widths; ``loss_weights`` and a per-modality
    ``input_transform`` are plain dicts (copied, so the caller's objects are never kept).
    """

    n_latent: int = 50
    n_hidden: tuple[int, ...] | str = DEFAULT_HIDDEN
    alignment: str = "adversarial"
    contrastive: str = "auto"
    loss_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    margin: float = 0.3
    augmentation_noise: float = 0.5
    latent_batch_norm: bool = True
    dropout: float = 0.0
    input_transform: str | dict[str, str] = "auto"
    n_input_components: int | str = "auto"
    label_prior: str = "auto"
    prior_confidence: float = 0.8
    pseudo_label_epochs: float = 1.0
    pseudo_label_loss: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        # Normalised before validation, so that errors name what the user passed.
        set_field = object.__setattr__
        set_field(self, "n_hidden", _hidden(self.n_hidden))
        set_field(self, "loss_weights", normalize_mapping("loss_weights", self.loss_weights))
        if not isinstance(self.input_transform, str):
            set_field(
                self, "input_transform", normalize_mapping("input_transform", self.input_transform)
            )
        self._validate()

    # ------------------------------------------------------------------ conversion
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Hyperparameters:
        """Rebuild from :meth:`to_dict` output; missing fields take their defaults.

        Raises
        ------
        KeyError
            A field that is not a hyperparameter.
        ValueError, TypeError
            An invalid value.
        """
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            msg = f"unknown hyperparameters {unknown}; known: {sorted(cls.names())}"
            raise KeyError(msg)
        return cls(**values)

    @classmethod
    def names(cls) -> list[str]:
        """Names of the hyperparameters, in definition order."""
        return [field.name for field in dataclasses.fields(cls)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy: lists and dicts only."""
        values = dataclasses.asdict(self)
        if isinstance(values["n_hidden"], tuple):
            values["n_hidden"] = list(values["n_hidden"])
        return values

    def input_components(self, n_features: int) -> int:
        """Principal axes of a modality with ``n_features`` features (0: not projected)."""
        if self.n_input_components == "auto":
            wide = n_features > AUTO_PROJECTION_MIN_FEATURES
            return AUTO_INPUT_COMPONENTS if wide else 0
        return int(self.n_input_components) if n_features > self.n_input_components else 0

    def pseudo_label_holder(self, prior_source: str | None) -> str:
        """Resolve ``pseudo_label_loss`` against the source of the label prior.

        ``"auto"`` is ``"classifier"`` for the links prior and ``"contrastive"`` otherwise:
        pseudo-labels from gene activity are right often enough to be held by the classifier
        alone, while the OT prior's, from the geometry, need the triplet that lines the
        populations up (``benchmarks/vs_scglue.py``, ``benchmarks/label_transfer.py``).
        """
        if self.pseudo_label_loss != "auto":
            return self.pseudo_label_loss
        return "classifier" if prior_source == "links" else "contrastive"

    def loss_weight_values(
        self, pseudo_labelled: float = 0.0, prior_source: str | None = None
    ) -> LossWeights:
        """Return the loss weights: the defaults, overridden by ``loss_weights``.

        Under the ``"links"`` prior (``prior_source``) the default ``depth_invariance`` is
        :data:`LINKS_DEPTH_INVARIANCE`.

        Where the pseudo-labels are held by the classifier (:meth:`pseudo_label_holder` of
        ``prior_source``), the share ``pseudo_labelled`` (in [0, 1]) of the unlabelled
        modality's cells that hold a pseudo-label moves that share of the contrastive weight
        to the classifier.
        """
        defaults = LossWeights().to_dict()
        if prior_source == "links":
            defaults["depth_invariance"] = LINKS_DEPTH_INVARIANCE
        weights = LossWeights(**{**defaults, **self.loss_weights})
        if self.pseudo_label_holder(prior_source) != "classifier" or pseudo_labelled <= 0:
            return weights
        moved = weights.contrastive * min(pseudo_labelled, 1.0)
        return dataclasses.replace(
            weights,
            contrastive=weights.contrastive - moved,
            classifier=weights.classifier + moved,
        )

    def contrastive_mode(
        self, categories: Sequence[str], weights: LossWeights, labels_key: str | None
    ) -> str:
        """Resolve ``contrastive`` against the data's label ``categories``.

        ``"auto"`` is supervised with labels, self-supervised without; a supervised loss
        without two labels to tell apart is refused.
        """
        mode = self.contrastive
        if mode == "auto":
            mode = "supervised" if categories else "self_supervised"
        if mode != "supervised":
            return mode
        if not categories:
            msg = (
                "contrastive='supervised' needs labels: set up with labels_key=..., or use "
                "contrastive='self_supervised'."
            )
            raise ValueError(msg)
        if len(categories) < 2 and weights.contrastive > 0:
            msg = (
                f"labels_key {labels_key!r} has a single category "
                f"({categories[0]!r}); the supervised contrastive loss needs at least two. "
                "Use contrastive='self_supervised', loss_weights={'contrastive': 0}, or set "
                "up with labels_key=None."
            )
            raise ValueError(msg)
        return mode

    def hidden_widths(self, n_inputs: int) -> list[int]:
        """Return the hidden widths of an encoder that reads ``n_inputs`` values."""
        if self.n_hidden == "paper":
            return [n_inputs] * 3 + [100]  # the paper's Table 2
        return list(self.n_hidden)

    # ------------------------------------------------------------------ checks
    def _validate(self) -> None:
        if not is_int(self.n_latent) or self.n_latent < 1:
            msg = f"n_latent must be a positive integer, got {self.n_latent!r}."
            raise ValueError(msg)
        if isinstance(self.n_hidden, str):
            if self.n_hidden != "paper":
                msg = (
                    "n_hidden must be a sequence of positive integers or 'paper', got "
                    f"{self.n_hidden!r}."
                )
                raise ValueError(msg)
        elif any(h < 1 for h in self.n_hidden):
            msg = f"n_hidden widths must be positive integers, got {list(self.n_hidden)!r}."
            raise ValueError(msg)
        for name, allowed in (
            ("alignment", ALIGNMENTS),
            ("contrastive", CONTRASTIVE_MODES),
            ("label_prior", LABEL_PRIORS),
            ("pseudo_label_loss", PSEUDO_LABEL_LOSSES),
        ):
            if getattr(self, name) not in allowed:
                msg = f"{name} must be one of {allowed}, got {getattr(self, name)!r}."
                raise ValueError(msg)
        known = set(LossWeights().to_dict())
        for key, value in self.loss_weights.items():
            if key not in known:
                msg = f"Unknown loss weight {key!r}; known terms: {sorted(known)}."
                raise ValueError(msg)
            if not is_number(value) or not math.isfinite(value) or value < 0:
                msg = f"Loss weight {key!r} must be a finite number >= 0, got {value!r}."
                raise ValueError(msg)
        for name in ("margin", "augmentation_noise"):
            value = getattr(self, name)
            if not is_number(value) or not math.isfinite(value) or value < 0:
                msg = f"{name} must be a finite number >= 0, got {value!r}."
                raise ValueError(msg)
        if not is_number(self.dropout) or not 0 <= self.dropout < 1:
            msg = f"dropout must be a number in [0, 1), got {self.dropout!r}."
            raise ValueError(msg)
        if not isinstance(self.latent_batch_norm, bool | np.bool_):
            msg = f"latent_batch_norm must be True or False, got {self.latent_batch_norm!r}."
            raise TypeError(msg)
        confidence = self.prior_confidence
        if not is_number(confidence) or not 0 <= confidence <= 1:
            msg = f"prior_confidence must be a number in [0, 1], got {confidence!r}."
            raise ValueError(msg)
        share = self.pseudo_label_epochs
        if not is_number(share) or not 0 < share <= 1:
            msg = f"pseudo_label_epochs must be a number in (0, 1], got {share!r}."
            raise ValueError(msg)
        components = self.n_input_components
        if components != "auto" and (not is_int(components) or components < 0):
            msg = (
                "n_input_components must be 'auto' or a non-negative integer (0 switches the "
                f"projection off), got {components!r}."
            )
            raise ValueError(msg)
        if not is_int(self.seed) or self.seed < 0:
            msg = f"seed must be a non-negative integer, got {self.seed!r}."
            raise ValueError(msg)
        transform = self.input_transform
        for choice in [transform] if isinstance(transform, str) else transform.values():
            if choice not in INPUT_TRANSFORMS:
                raise ValueError(input_transform_error(choice))


def _hidden(n_hidden: Any) -> str | tuple[int, ...]:
    """``n_hidden`` as ``"paper"`` or a tuple of ints, with a clear error for anything else."""
    if isinstance(n_hidden, str):
        return n_hidden  # checked in _validate
    if not isinstance(n_hidden, Sequence | np.ndarray) or not all(is_int(h) for h in n_hidden):
        msg = (
            f"n_hidden must be a sequence of positive integers (e.g. [256, 128]) or 'paper', "
            f"got {n_hidden!r}."
        )
        raise TypeError(msg)
    return tuple(int(h) for h in n_hidden)
