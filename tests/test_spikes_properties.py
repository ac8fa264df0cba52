"""Properties of SpikeTrains that hold for any valid input (hypothesis)."""

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from observations import SpikeTrains, open_store, write_store


@st.composite
def pairs(draw):
    n = draw(st.integers(0, 60))
    t_stop = draw(st.floats(0.1, 100.0))
    times = draw(st.lists(st.floats(0.0, t_stop, allow_nan=False), min_size=n, max_size=n))
    ids = draw(st.lists(st.integers(-5, 1000), min_size=n, max_size=n))
    extra = draw(st.lists(st.integers(2000, 2010), max_size=3, unique=True))  # silent units
    return np.array(times, dtype=float), np.array(ids, dtype=np.int64), t_stop, extra


@given(pairs())
@settings(max_examples=40)
def test_store_round_trip_is_exact(data):
    times, ids, t_stop, extra = data
    units = np.unique(np.concatenate([ids, extra])).astype(np.int64)
    spikes = SpikeTrains.from_pairs(times, ids, 0.0, t_stop, unit_ids=units)
    with tempfile.TemporaryDirectory() as d:
        back = open_store(write_store(Path(d) / "s.zarr", spikes)).spikes
    np.testing.assert_array_equal(back.times_s, spikes.times_s)
    np.testing.assert_array_equal(back.offsets, spikes.offsets)
    np.testing.assert_array_equal(back.unit_ids, spikes.unit_ids)
    assert (back.t_start_s, back.t_stop_s) == (0.0, t_stop)
    # Every (time, id) pair comes back, as a multiset.
    got = sorted(
        zip(back.times_s.tolist(), np.repeat(back.unit_ids, back.counts()).tolist(), strict=True)
    )
    assert got == sorted(zip(times.tolist(), ids.tolist(), strict=True))


@given(pairs(), st.floats(0.001, 10.0))
def test_binning_conserves_spikes(data, bin_s):
    times, ids, t_stop, _ = data
    spikes = SpikeTrains.from_pairs(times, ids, 0.0, t_stop)
    counts = spikes.binned(bin_s)
    np.testing.assert_array_equal(counts.sum(axis=1), spikes.counts())
    assert counts.sum() == times.size
