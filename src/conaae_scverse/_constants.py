"""Typed keys shared across the package, so that no string literal is repeated."""

from __future__ import annotations

from typing import NamedTuple


class _RegistryKeys(NamedTuple):
    """Keys of the tensors that the data loaders hand to the module."""

    X_KEY: str = "X"
    LABELS_KEY: str = "labels"
    BATCH_KEY: str = "batch"
    INDICES_KEY: str = "ind_x"


class _ModalityKeys(NamedTuple):
    """Internal names of the two modalities."""

    RNA: str = "rna"
    ATAC: str = "atac"


class _OutputKeys(NamedTuple):
    """Keys that :meth:`conaae_scverse.ConAAE.write_results` writes into each modality."""

    LATENT: str = "X_conaae"
    LABEL: str = "conaae_label"
    LABEL_CONFIDENCE: str = "conaae_label_confidence"
    MATCH: str = "conaae_match"
    MATCH_DISTANCE: str = "conaae_match_distance"
    PRIOR_CONFIDENCE: str = "conaae_prior_confidence"


class _LossKeys(NamedTuple):
    """Names of the loss terms, as logged in ``model.history``."""

    RECONSTRUCTION_RNA: str = "reconstruction_rna"
    RECONSTRUCTION_ATAC: str = "reconstruction_atac"
    ADVERSARIAL: str = "adversarial"
    MMD: str = "mmd"
    CYCLE: str = "cycle"
    CONTRASTIVE: str = "contrastive"
    CLASSIFIER: str = "classifier"
    ANCHOR: str = "anchor"
    SAMPLE_MIXING: str = "sample_mixing"
    LINK_CONSISTENCY: str = "link_consistency"
    DEPTH_INVARIANCE: str = "depth_invariance"
    DISCRIMINATOR: str = "discriminator"
    TOTAL: str = "loss"


REGISTRY_KEYS = _RegistryKeys()
MODALITIES = _ModalityKeys()
OUTPUT_KEYS = _OutputKeys()
LOSS_KEYS = _LossKeys()

#: Column that the bundled datasets use to record each cell's true partner in the other
#: modality (an ``obs_name``). Only evaluation reads it; training never does.
TRUE_PARTNER_KEY = "true_partner"

#: Environment variable naming a directory that holds the bundled datasets' files.
DATA_DIR_ENV = "CONAAE_DATA_DIR"

#: `n_input_components="auto"`: modalities with more than AUTO_PROJECTION_MIN_FEATURES features
#: enter the networks as their scores on AUTO_INPUT_COMPONENTS principal axes.
AUTO_INPUT_COMPONENTS = 100
AUTO_PROJECTION_MIN_FEATURES = 5000
