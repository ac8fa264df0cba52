"""GLMCC's sufficient statistics accumulated over consecutive windows."""

import numpy as np
import pytest

from inference.glmcc import GLMCC, PairAccumulator, pair_statistics
from observations.spikes import SpikeTrains


def _trains(seed=0, T=20.0):
    """Three units at ~20 Hz; unit 1 fires 3 ms after many of unit 0's spikes."""
    rng = np.random.default_rng(seed)
    a = np.sort(rng.uniform(0, T, int(20 * T)))
    b = np.sort(np.concatenate([rng.uniform(0, T, int(15 * T)), (a + 0.003 + 0.001 * rng.random(a.size))[rng.random(a.size) < 0.3]]))
    b = b[b < T]
    c = np.sort(rng.uniform(0, T, int(25 * T)))
    return SpikeTrains.from_lists([a, b, c], [10, 11, 12], 0.0, T)


@pytest.mark.parametrize("edges", [np.arange(0.0, 20.01, 2.0), np.array([0.0, 0.03, 0.05, 1.0, 1.02, 7.5, 20.0])])
def test_accumulated_statistics_equal_those_of_the_whole_train(edges):
    sp = _trains()
    est = GLMCC(delay_ms="scan")
    pairs = np.array([[0, 1], [2, 0], [1, 2]])
    acc = PairAccumulator(pairs, est)
    for t0, t1 in zip(edges[:-1], edges[1:], strict=True):
        acc.add(sp.between(t0, t1))
    whole = pair_statistics(sp, pairs, est.window_ms, est.delays, est.tau_ms, est.min_lag_ms)
    np.testing.assert_array_equal(acc.stats[0], whole[0])  # counts: exact
    np.testing.assert_array_equal(acc.stats[3], whole[3])
    for got, want in zip(acc.stats[1:3], whole[1:3], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-9)
    assert acc.duration_s == pytest.approx(20.0)
    # through its arrays (a member's checkpoint) it goes on where it stopped
    half = PairAccumulator(pairs, est)
    for t0, t1 in zip(edges[:-1], edges[1:], strict=True):
        half = PairAccumulator.from_arrays(pairs, est, half.to_arrays())
        half.add(sp.between(t0, t1))
    for got, want in zip(half.stats, acc.stats, strict=True):
        np.testing.assert_array_equal(got, want)
    # and so the fit: the direct link 0 → 1 is found with the same J
    fit, ref = acc.fit(sp.unit_ids), est.fit(sp, pairs)
    np.testing.assert_allclose(fit["J"].values, ref["J"].values, rtol=1e-7, equal_nan=True)
    assert bool(fit["significant"].sel(pre=10, post=11))


def test_accumulator_refuses_a_gap_or_other_units():
    sp = _trains(T=4.0)
    acc = PairAccumulator([[0, 1]], GLMCC())
    with pytest.raises(ValueError, match="nothing accumulated"):
        acc.fit(sp.unit_ids)
    acc.add(sp.between(0.0, 1.0))
    with pytest.raises(ValueError, match="starts at 2.0 s, not where the last one ended"):
        acc.add(sp.between(2.0, 3.0))
    other = SpikeTrains.from_lists([sp.train(0), sp.train(1), sp.train(2)], [1, 2, 3], 0.0, 4.0)
    with pytest.raises(ValueError, match="units differ"):
        acc.add(other.between(1.0, 2.0))
