"""Datasets for Con-AAE: the paper's simulation and its real paired RNA + ATAC data.

Every function returns a :class:`mudata.MuData` with modalities ``"rna"`` and ``"atac"``
(cells x features, float32), a categorical label column in both modalities' ``obs``, the
true pairing in the obs column ``true_partner`` (for evaluation only) and provenance
strings in ``mdata.uns["dataset"]``.
"""

from __future__ import annotations

from ._real import sci_car_a549, snare_seq_cell_lines
from ._simulate import simulate
from ._simulate_wide import simulate_wide

__all__ = ["sci_car_a549", "simulate", "simulate_wide", "snare_seq_cell_lines"]
