"""Metrics for aligned RNA + ATAC embeddings.

Pair-level alignment (:func:`recall_at_k`, :func:`foscttm`), label agreement
(:func:`label_transfer_accuracy`, :func:`integration_accuracy`), calibration of predicted
labels (:func:`calibration_error`), modality mixing
(:func:`modality_mixing`), and :func:`evaluate_alignment`, which computes them all for a
MuData after ``model.write_results()``. Distances are computed in blocks of query rows, so
memory grows as O(block x n), never n x n. Ties are always counted against the embedding,
so a collapsed embedding (all cells at one point) scores no better than chance.
"""

from __future__ import annotations

from ._alignment import (
    chance_recall_at_k,
    foscttm,
    foscttm_per_cell,
    recall_at_k,
    recall_at_k_curve,
)
from ._evaluate import evaluate_alignment
from ._labels import calibration_error, integration_accuracy, label_transfer_accuracy
from ._mixing import modality_mixing
from ._pairs import pairs_from_mudata

__all__ = [
    "calibration_error",
    "chance_recall_at_k",
    "evaluate_alignment",
    "foscttm",
    "foscttm_per_cell",
    "integration_accuracy",
    "label_transfer_accuracy",
    "modality_mixing",
    "pairs_from_mudata",
    "recall_at_k",
    "recall_at_k_curve",
]
