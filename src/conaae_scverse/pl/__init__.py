"""Plots, scanpy-style: each takes ``ax``, ``show`` and ``save`` and returns matplotlib objects.

:func:`history` (training curves of every loss term), :func:`embedding` (the joint embedding
by modality and label), :func:`confusion` (predicted against true labels) and
:func:`recall_curve` (matching quality, recall@k against k).
"""

from __future__ import annotations

from ._confusion import confusion
from ._embedding import embedding
from ._history import history
from ._recall import recall_curve

__all__ = ["confusion", "embedding", "history", "recall_curve"]
