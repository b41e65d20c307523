from __future__ import annotations

import numpy as np
import pytest

from conaae_scverse.metrics import _distances


@pytest.fixture
def small_chunks(monkeypatch):
    """Distance blocks of 7 query rows, so that n > 7 spans several blocks."""
    monkeypatch.setattr(_distances, "_CHUNK_SIZE", 7)
    return 7


@pytest.fixture
def block_shapes(monkeypatch, small_chunks):
    """Record the shape of every distance block computed by the metrics."""
    shapes: list[tuple[int, int]] = []
    real = _distances.cdist

    def spy(a, b, metric):
        out = real(a, b, metric)
        shapes.append(out.shape)
        return out

    monkeypatch.setattr(_distances, "cdist", spy)
    return shapes


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
