"""Synthetic observations for twin experiments: known spikes → what a lab would record.

The calcium operator (with its noise model) turns spike trains into ΔF/F frames; the
result is written as an ordinary observation store, so that an assimilation reads a twin's
data exactly as it reads a real recording. Long recordings are processed window by window
through the operator's state — the same exact-restart property the filter relies on —
so memory is bounded by the window.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path

import numpy as np

from observations.spikes import SpikeTrains
from observations.store import StoreWriter

WINDOW_FRAMES = 1024  # one time chunk of the store


def frame_times(t_start_s: float, t_stop_s: float, frame_rate_hz: float) -> np.ndarray:
    """End times (s) of the frames that fit in (t_start_s, t_stop_s] at ``frame_rate_hz``."""
    k0 = int(np.floor(t_start_s * frame_rate_hz + 1e-9)) + 1
    k1 = int(np.floor(t_stop_s * frame_rate_hz + 1e-9))
    return np.arange(k0, k1 + 1) / frame_rate_hz


def write_synthetic_calcium(path, spikes: SpikeTrains, operator, seed: int = 0, noise: bool = True,
                            include_spikes: bool = True, units: dict | None = None) -> Path:  # fmt: skip
    """Write the ΔF/F that ``operator`` (a CalciumOperator) predicts for ``spikes``, plus its
    observation noise, as a new observation store at ``path``.

    Parameters
    ----------
    spikes : SpikeTrains
        The ground truth; its unit ids become the calcium neuron ids.
    operator : CalciumOperator
        Kinetics, readout, frame rate and noise level.
    seed : int
        Seed of the noise.
    noise : bool
        Add the operator's noise (False: the noiseless prediction).
    include_spikes : bool
        Also store the ground-truth spikes (for checking an inference against them).
    units : dict, optional
        Per-unit metadata to store.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    rate = operator.frame_rate_hz
    times = frame_times(spikes.t_start_s, spikes.t_stop_s, rate)
    params = asdict(operator) if is_dataclass(operator) else dict(vars(operator))
    attrs = {"synthetic": True, "noise_seed": int(seed), "noise": bool(noise),
             "operator": {k: (v if isinstance(v, (int, float, str, type(None))) else str(v)) for k, v in params.items()}}  # fmt: skip
    with StoreWriter(path, source="spikeda synthetic calcium", attrs=attrs) as w:
        if include_spikes:
            w.spikes(spikes)
        if units:
            w.units(units)
        w.start_calcium(spikes.unit_ids, rate, getattr(operator, "indicator", None) or "unknown")
        state = operator.initial_state(spikes.n_units)
        t_prev = spikes.t_start_s
        for a in range(0, times.size, WINDOW_FRAMES):
            block = times[a : a + WINDOW_FRAMES]
            window = spikes.between(t_prev, block[-1])
            values, state = operator.predict(window, state, block)
            if noise:
                values = operator.add_noise(values, rng)
            w.append_frames(values, block)
            t_prev = block[-1]
    return Path(path)
