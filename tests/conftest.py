"""Shared fixtures of the core test suite: tiny, seeded synthetic MuData objects."""

from __future__ import annotations

from collections.abc import Callable

import mudata as md
import pytest
import torch
from _builders import LABELS, build_mudata

# The test machines are small and shared: one intra-op thread is much faster than two
# threads fighting over the same cores, and it makes CPU results reproducible.
torch.set_num_threads(1)

__all__ = ["LABELS", "build_mudata"]


@pytest.fixture
def make_mudata() -> Callable[..., md.MuData]:
    """Factory of tiny synthetic MuData objects, see :func:`build_mudata`."""
    return build_mudata


@pytest.fixture
def paired_mdata() -> md.MuData:
    """40 cells measured in both modalities (same obs_names), ATAC rows shuffled, labelled."""
    return build_mudata(paired=True)


@pytest.fixture
def unpaired_mdata() -> md.MuData:
    """40 RNA cells and 36 different ATAC cells, both labelled."""
    return build_mudata(paired=False)
