"""Property-based tests: random shapes and values (with many ties and duplicate rows)."""

from __future__ import annotations

from unittest import mock

import _metric_oracles as oracle
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conaae_scverse.metrics import (
    _distances,
    chance_recall_at_k,
    foscttm,
    foscttm_per_cell,
    integration_accuracy,
    label_transfer_accuracy,
    modality_mixing,
    recall_at_k,
    recall_at_k_curve,
)

SETTINGS = settings(max_examples=50, deadline=None)
metrics = st.sampled_from(["l1", "l2"])
# a few repeated values make exact ties and duplicate rows common
# Magnitudes below 1e-6 are left out: l2 distances are computed from squared norms, and the
# square of e.g. 1e-242 underflows to 0, making distinct rows equidistant (no embedding holds
# such values).
values = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 0.5]),
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False).filter(
        lambda v: v == 0 or abs(v) >= 1e-6
    ),
)


def _matrix(n: int, d: int) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float64, (n, d), elements=values)


@st.composite
def paired(draw, min_n: int = 2):
    n = draw(st.integers(min_n, 40))
    d = draw(st.integers(1, 6))
    x = draw(_matrix(n, d))
    y = x.copy() if draw(st.booleans()) and draw(st.booleans()) else draw(_matrix(n, d))
    chunk = draw(st.integers(1, n + 2))
    return x, y, chunk


@st.composite
def unpaired(draw):
    d = draw(st.integers(1, 6))
    x = draw(_matrix(draw(st.integers(1, 40)), d))
    y = draw(_matrix(draw(st.integers(1, 40)), d))
    return x, y, draw(st.integers(1, 50))


labels = st.sampled_from(["a", "b", "c", None])


@SETTINGS
@given(data=paired(min_n=1), metric=metrics, ks=st.lists(st.integers(1, 45), min_size=1))
def test_recall_matches_oracle_and_is_monotone(data, metric, ks):
    x, y, chunk = data
    with mock.patch.object(_distances, "_CHUNK_SIZE", chunk):
        curve = recall_at_k_curve(x, y, ks=ks, metric=metric)
    assert curve == {k: oracle.recall(x, y, k, metric) for k in ks}
    ordered = [curve[k] for k in sorted(curve)]
    assert all(0.0 <= r <= 1.0 for r in ordered)
    assert ordered == sorted(ordered)
    assert recall_at_k(x, y, k=len(x), metric=metric) == 1.0


@SETTINGS
@given(data=paired(), metric=metrics)
def test_foscttm_matches_oracle_and_is_symmetric(data, metric):
    x, y, chunk = data
    with mock.patch.object(_distances, "_CHUNK_SIZE", chunk):
        value = foscttm(x, y, metric=metric)
        fx, fy = foscttm_per_cell(x, y, metric=metric)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(oracle.foscttm(x, y, metric))
    assert fx.shape == fy.shape == (len(x),)
    assert value == pytest.approx(foscttm(y, x, metric=metric))
    if np.array_equal(x, y) and len(np.unique(x, axis=0)) == len(x):
        assert value == 0.0


@SETTINGS
@given(data=paired(), metric=metrics)
def test_pairwise_metrics_ignore_joint_row_order(data, metric):
    x, y, _ = data
    perm = np.random.default_rng(len(x)).permutation(len(x))
    assert recall_at_k(x, y, k=3, metric=metric) == recall_at_k(
        x[perm], y[perm], k=3, metric=metric
    )
    assert foscttm(x, y, metric=metric) == pytest.approx(foscttm(x[perm], y[perm], metric=metric))


@SETTINGS
@given(n=st.integers(2, 40), d=st.integers(1, 6), k=st.integers(1, 45), metric=metrics)
def test_collapsed_embedding_never_beats_chance(n, d, k, metric):
    x = np.full((n, d), 3.0)
    assert recall_at_k(x, x, k=k, metric=metric) <= chance_recall_at_k(n, k)
    assert foscttm(x, x, metric=metric) == 1.0


@SETTINGS
@given(data=unpaired(), metric=metrics)
def test_mixing_matches_oracle(data, metric):
    x, y, k = data
    with mock.patch.object(_distances, "_CHUNK_SIZE", max(1, k // 3)):
        value = modality_mixing(x, y, k=k, metric=metric)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(oracle.mixing(x, y, k, metric))


@SETTINGS
@given(
    data=unpaired(),
    metric=metrics,
    one_to_one=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_integration_accuracy_bounded(data, metric, one_to_one, seed):
    x, y, _ = data
    rng = np.random.default_rng(seed)
    labels_x = rng.choice(np.array(["a", "b", "c", None], dtype=object), size=len(x))
    labels_y = rng.choice(np.array(["a", "b", "c", None], dtype=object), size=len(y))
    if all(label is None for label in labels_y):
        with pytest.raises(ValueError, match="labels_y has no labelled cells"):
            integration_accuracy(x, labels_x, y, labels_y, metric=metric)
        return
    value = integration_accuracy(x, labels_x, y, labels_y, metric=metric, one_to_one=one_to_one)
    assert 0.0 <= value <= 1.0


@SETTINGS
@given(data=paired(), metric=metrics)
def test_integration_accuracy_equals_paper_loop_without_ties(data, metric):
    x, y, chunk = data
    x = x + np.random.default_rng(0).normal(scale=1e-3, size=x.shape)  # break all ties
    labels = np.arange(len(x)) % 3
    with mock.patch.object(_distances, "_CHUNK_SIZE", chunk):
        value = integration_accuracy(x, labels, y, labels, metric=metric)
    assert value == pytest.approx(oracle.paper_integration(x, labels, y, labels, metric))


@SETTINGS
@given(data=unpaired(), k=st.integers(1, 10), metric=metrics, seed=st.integers(0, 2**16))
def test_label_transfer_bounded(data, k, metric, seed):
    x, y, _ = data
    rng = np.random.default_rng(seed)
    labels_x = rng.choice(np.array(["a", "b", None], dtype=object), size=len(x))
    labels_y = rng.choice(np.array(["a", "b", None], dtype=object), size=len(y))
    if all(v is None for v in labels_x) or all(v is None for v in labels_y):
        with pytest.raises(ValueError, match="has no labelled cells"):
            label_transfer_accuracy(x, labels_x, y, labels_y, k=k, metric=metric)
        return
    value = label_transfer_accuracy(x, labels_x, y, labels_y, k=k, metric=metric)
    assert 0.0 <= value <= 1.0


DOCUMENTED = (
    "must be 2-D|is empty|NaN or infinite|same number of columns|equally many rows|"
    "at least 2 pairs|converting it to float failed"
)
any_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)


@SETTINGS
@given(
    x=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
        elements=any_floats,
    ),
    y=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
        elements=any_floats,
    ),
)
def test_arbitrary_input_gives_a_score_or_a_documented_error(x, y):
    for func in (
        lambda: recall_at_k(x, y, k=2),
        lambda: foscttm(x, y),
        lambda: modality_mixing(x, y, k=3),
        lambda: integration_accuracy(x, ["a"] * len(x), y, ["a"] * len(y)),
    ):
        try:
            value = func()
        except ValueError as err:
            assert any(part in str(err) for part in DOCUMENTED.split("|")), str(err)
        else:
            assert 0.0 <= value <= 1.0
