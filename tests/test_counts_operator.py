"""The spike-count operator: exact restarts, conservation, and its variance model."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from observations import SpikeTrains
from observations.operators import SpikeCountOperator


@st.composite
def recordings(draw):
    n_units = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    trains = [np.sort(rng.uniform(0, 2.0, size=rng.integers(0, 40))) for _ in range(n_units)]
    split = draw(st.floats(0.05, 1.95))
    return SpikeTrains.from_lists(trains, t_start_s=0.0, t_stop_s=2.0), split


@given(recordings(), st.sampled_from(["anscombe", "sqrt", "none"]))
def test_restart_mid_stream_equals_one_pass(rec, transform):
    spikes, split = rec
    op = SpikeCountOperator(bin_s=0.1, transform=transform)
    whole, end = op.predict(spikes, op.initial_state(spikes.n_units))
    first, mid = op.predict(spikes.between(0.0, split), op.initial_state(spikes.n_units))
    second, end2 = op.predict(spikes.between(split, 2.0), mid)
    np.testing.assert_array_equal(np.concatenate([first, second]), whole)
    np.testing.assert_array_equal(end, end2)


@given(recordings())
def test_counts_conserve_spikes(rec):
    spikes, _ = rec
    op = SpikeCountOperator(bin_s=0.1, transform="none")
    values, open_bin = op.predict(spikes, op.initial_state(spikes.n_units))
    np.testing.assert_array_equal(values.sum(axis=0) + open_bin, spikes.counts())
    np.testing.assert_array_equal(values.T, spikes.binned(0.1)[:, : values.shape[0]])


def test_anscombe_stabilises_poisson_variance():
    rng = np.random.default_rng(0)
    op = SpikeCountOperator(bin_s=0.05)
    for lam in (5.0, 20.0, 80.0):
        y = op.apply_transform(rng.poisson(lam, 200_000))
        assert y.var() == pytest.approx(op.R(), rel=0.05)
    sq = SpikeCountOperator(bin_s=0.05, transform="sqrt")
    assert sq.apply_transform(rng.poisson(40.0, 200_000)).var() == pytest.approx(sq.R(), rel=0.05)
    assert SpikeCountOperator(0.05, "none").R([0.2, 7.0]).tolist() == [1.0, 7.0]


def test_zero_spikes_give_the_transform_of_zero():
    op = SpikeCountOperator(bin_s=0.25)
    spikes = SpikeTrains.from_lists([[], []], t_start_s=0.0, t_stop_s=1.0)
    values, _ = op.predict(spikes, op.initial_state(2))
    np.testing.assert_allclose(values, 2 * np.sqrt(0.375))
    assert values.shape == (4, 2)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SpikeCountOperator(bin_s=0.0), "bin_s must be > 0"),
        (lambda: SpikeCountOperator(bin_s=0.1, transform="log"), "transform must be one of"),
    ],
)
def test_bad_operator_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()
