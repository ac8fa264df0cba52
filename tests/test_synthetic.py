"""Synthetic calcium observations: the operator's prediction, windowed, written as a store."""

import numpy as np

from observations import SpikeTrains, validate_store
from observations.operators import CalciumOperator
from observations.synthetic import frame_times, write_synthetic_calcium


def test_windowed_synthesis_equals_one_prediction(tmp_path, rng):
    """3000 frames go through the operator in windows of 1024; noiseless, they equal one
    call of predict over the whole recording, and the store holds the spikes too."""
    op = CalciumOperator(indicator="GCaMP6s", frame_rate_hz=30.0)
    trains = [np.sort(rng.uniform(0, 100.0, size=k)) for k in (50, 300, 0)]
    spikes = SpikeTrains.from_lists(trains, unit_ids=[3, 8, 9], t_start_s=0.0, t_stop_s=100.0)
    path = write_synthetic_calcium(tmp_path / "twin.zarr", spikes, op, noise=False)
    store, qc = validate_store(path)
    times = frame_times(0.0, 100.0, 30.0)
    assert qc.n_frames == times.size == 3000 and qc.nan_frames == 0
    expected, _ = op.predict(spikes, op.initial_state(3), times)
    np.testing.assert_allclose(store.dff.values, expected, rtol=0, atol=1e-6)  # float32 store
    np.testing.assert_array_equal(store.spikes.times_s, spikes.times_s)
    assert store.attrs["synthetic"] and store.dff.attrs["indicator"] == "GCaMP6s"


def test_noise_has_the_operator_sd(tmp_path):
    op = CalciumOperator(indicator="GCaMP6f", frame_rate_hz=30.0)
    spikes = SpikeTrains.from_lists([[] for _ in range(20)], t_start_s=0.0, t_stop_s=200.0)
    store, _ = validate_store(write_synthetic_calcium(tmp_path / "n.zarr", spikes, op, seed=3))
    residual = store.dff.values - op.baseline
    np.testing.assert_allclose(residual.std(), op.noise_sd(), rtol=0.02)
