"""The triplet map's pattern counts accumulated over consecutive windows."""

import numpy as np
import pytest

from inference.triplets import TripletAccumulator, TripletMap, theta_estimates
from observations.spikes import SpikeTrains


def _trains(seed=0, T=20.0, dt=1e-4):
    """Four units at 10-30 Hz on a 0.1-ms grid (as the model stamps its spikes, so that
    many lie exactly on 5-ms bin edges); units 0, 1 and 2 share a common input."""
    rng = np.random.default_rng(seed)
    common = rng.uniform(0, T, int(8 * T))
    trains = []
    for k, rate in enumerate((10.0, 15.0, 20.0, 30.0)):
        t = rng.uniform(0, T, int(rate * T))
        if k < 3:
            t = np.concatenate([t, common[rng.random(common.size) < 0.6] + rng.uniform(0, 0.002, 1)])
        t = np.unique(np.round(t / dt) * dt)
        trains.append(t[(t > 0) & (t <= T)])
    return SpikeTrains.from_lists(trains, [7, 8, 9, 10], 0.0, T)


TRIPLETS = np.array([[0, 1, 2], [0, 1, 3], [1, 2, 3], [3, 0, 2]])


@pytest.mark.parametrize("edges", [np.arange(0.0, 20.001, 2.0),  # windows of whole bins
                                   np.array([0.0, 0.0031, 0.0049, 0.005, 1.0027, 7.5, 13.33333, 20.0])])
def test_accumulated_patterns_equal_those_of_the_whole_train(edges):
    sp = _trains()
    est = TripletMap(bin_ms=5.0)
    acc = TripletAccumulator(TRIPLETS, 5.0)
    for t0, t1 in zip(edges[:-1], edges[1:], strict=True):
        acc.add(sp.between(t0, t1))
    whole, _, n_bins, _ = est.counts(sp, TRIPLETS)
    assert acc.n_bins == n_bins == 4000
    np.testing.assert_array_equal(acc.patterns, whole)
    # through its arrays (a member's checkpoint) it goes on where it stopped
    half = TripletAccumulator(TRIPLETS, 5.0)
    for t0, t1 in zip(edges[:-1], edges[1:], strict=True):
        half = TripletAccumulator.from_arrays(TRIPLETS, 5.0, half.to_arrays())
        half.add(sp.between(t0, t1))
    np.testing.assert_array_equal(half.patterns, whole)
    # and so the θ's and SEs are the estimator's, from the same counts
    th, se = acc.estimates(0.5)
    ref = est.fit(sp, TRIPLETS)
    np.testing.assert_allclose(th[:, 3:6], ref["theta_ij"].values, rtol=1e-12)
    np.testing.assert_allclose(th[:, 6], ref["theta_123"].values, rtol=1e-12)
    np.testing.assert_allclose(se[:, 3:6], ref["se_theta_ij"].values, rtol=1e-12)
    np.testing.assert_allclose(se[:, 6], ref["se_theta_123"].values, rtol=1e-12)
    assert (th[0, 3:6] > 0.3).all()  # the common input of 0, 1, 2
    assert (np.abs(th[1, 4:6]) < 0.3).all()  # unit 3 has none: θ of pairs (0, 3), (1, 3)


def test_spikes_on_bin_edges_are_binned_as_in_the_whole_train():
    # a spike on the edge between windows: windows are (t0, t1], bins [e, e + Δ)
    sp = SpikeTrains.from_lists([[0.005, 0.01, 0.0149], [0.005, 0.02], [0.01, 0.02, 0.02]][:2] + [[0.01, 0.02]],
                                [1, 2, 3], 0.0, 0.03)  # fmt: skip
    acc = TripletAccumulator([[0, 1, 2]], 5.0)
    for t0, t1 in ((0.0, 0.005), (0.005, 0.01), (0.01, 0.0125), (0.0125, 0.02), (0.02, 0.03)):
        acc.add(sp.between(t0, t1))
    whole = TripletMap(bin_ms=5.0).counts(sp, [[0, 1, 2]])[0]
    np.testing.assert_array_equal(acc.patterns, whole)
    assert acc.patterns.sum() == 6


def test_theta_estimates_mark_a_silent_unit():
    p = np.array([[50, 10, 10, 5, 0, 0, 0, 0], [40, 10, 10, 5, 10, 2, 2, 1]])
    th, se = theta_estimates(p)  # unit 3 of the first triplet never fires
    assert np.isnan(th[0]).all() and np.isnan(se[0]).all()
    # θ_12 = log n(110) n(000) / (n(100) n(010)) with the pseudo-count
    assert th[1, 3] == pytest.approx(np.log(5.5 * 40.5 / (10.5 * 10.5)))
    assert se[1, 3] == pytest.approx(np.sqrt(1 / 5.5 + 1 / 40.5 + 2 / 10.5))


def test_accumulator_refuses_a_gap_or_other_units():
    sp = _trains(T=4.0)
    acc = TripletAccumulator(TRIPLETS, 5.0)
    with pytest.raises(ValueError, match="nothing accumulated"):
        acc.estimates()
    acc.add(sp.between(0.0, 1.0))
    with pytest.raises(ValueError, match="starts at 2.0 s, not where the last one ended"):
        acc.add(sp.between(2.0, 3.0))
    other = SpikeTrains.from_lists([sp.train(k) for k in range(4)], [1, 2, 3, 4], 0.0, 4.0)
    with pytest.raises(ValueError, match="units differ"):
        acc.add(other.between(1.0, 2.0))
