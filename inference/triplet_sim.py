"""Direct simulation of threshold-regime LIF neurons driven by hidden Poisson sources.

The check of the triplet theory (:mod:`inference.triplet_theory`) and the ground truth of
the motif classifier: each hidden source is a Poisson process of rate ν whose events kick
the neurons it projects to by ±A (mV); between kicks each neuron is the OU process of the
theory, simulated step by step (:mod:`inference._triplet_sim_kernels`).
"""

from __future__ import annotations

import numpy as np

from inference import _triplet_sim_kernels as S
from inference.triplet_theory import MOTIFS, ThresholdLIF
from observations.spikes import SpikeTrains

METHODS = {"euler": 0, "exact": 1}


def _method(method: str) -> int:
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    return METHODS[method]


def first_passage_times(neuron: ThresholdLIF, n: int, dt_ms: float = 0.01,
                        method: str = "euler", bridge: bool = False, seed: int = 0,
                        max_ms: float | None = None) -> np.ndarray:  # fmt: skip
    """``n`` simulated interspike intervals (ms) of ``neuron`` (first passages from the
    reset); NaN for those longer than ``max_ms`` (default 50 mean ISIs)."""
    max_ms = 50.0 * neuron.mean_isi_ms() if max_ms is None else max_ms
    return S.first_passage_times(neuron.theta_mv, neuron.ell_mv, neuron.tau_ms, dt_ms, int(n),
                                 int(max_ms / dt_ms), _method(method), bridge, seed)  # fmt: skip


def probe_rbar(neuron: ThresholdLIF, amplitudes_mv, bin_ms: float, n_probes: int = 20000,
               dt_ms: float = 0.01, method: str = "euler", bridge: bool = False,
               seed: int = 0) -> np.ndarray:  # fmt: skip
    """Simulated R̄(A, Δ) for each amplitude: the fraction of kicks at random phases of the
    free-running neuron followed by ≥ 1 spike within ``bin_ms``."""
    A = np.asarray(amplitudes_mv, dtype=np.float64).reshape(-1)
    gap = int(max(neuron.mean_isi_ms(), neuron.tau_ms) / dt_ms)
    return S.probe_response(neuron.theta_mv, neuron.ell_mv, neuron.tau_ms, dt_ms, A,
                            int(round(bin_ms / dt_ms)), int(n_probes), gap, _method(method),
                            bridge, seed)  # fmt: skip


def simulate_sources(neurons, sources, duration_s: float, dt_ms: float = 0.1,
                     method: str = "exact", bridge: bool = True, seed: int = 0,
                     burn_ms: float = 1000.0) -> SpikeTrains:  # fmt: skip
    """Spike trains of ``neurons`` (ThresholdLIF, equal τ and θ_V) driven by hidden sources.

    ``sources``: list of (rate_hz, amplitudes_mv) with one amplitude per neuron (0: no
    projection; > 0 excitatory). Returns SpikeTrains over [0, duration_s].
    """
    neurons = list(neurons)
    tau, x0 = neurons[0].tau_ms, neurons[0].theta_mv
    if any(n.tau_ms != tau or n.theta_mv != x0 for n in neurons):
        raise ValueError("the neurons must share tau_ms and theta_mv")
    rng = np.random.default_rng(seed)
    T_ms = duration_s * 1e3
    n_steps = int(np.floor(T_ms / dt_ms))
    steps = [[] for _ in neurons]
    amps = [[] for _ in neurons]
    for rate_hz, amp in sources:
        amp = np.asarray(amp, dtype=np.float64)
        if amp.shape != (len(neurons),):
            raise ValueError(f"a source needs one amplitude per neuron ({len(neurons)})")
        ev = rng.uniform(0.0, T_ms, rng.poisson(rate_hz * duration_s))
        st = np.minimum((ev / dt_ms).astype(np.int64), n_steps - 1)
        for u, a in enumerate(amp):
            if a != 0.0:
                steps[u].append(st)
                amps[u].append(np.full(st.size, a))
    kick_step, kick_amp, offs = [], [], [0]
    for u in range(len(neurons)):
        s = np.concatenate(steps[u]) if steps[u] else np.empty(0, np.int64)
        a = np.concatenate(amps[u]) if amps[u] else np.empty(0)
        order = np.argsort(s, kind="stable")
        kick_step.append(s[order])
        kick_amp.append(a[order])
        offs.append(offs[-1] + s.size)
    kick_step = np.concatenate(kick_step).astype(np.int64)
    kick_amp = np.concatenate(kick_amp)
    offs = np.asarray(offs, np.int64)
    ell = np.array([n.ell_mv for n in neurons])
    seeds = rng.integers(0, 2**31 - 1, len(neurons))
    rate_bound = sum(r for r, _ in sources) + max(n.rate_hz() for n in neurons)
    cap = int(3 * rate_bound * duration_s) + 1000
    while True:
        spk, count = S.neurons_with_kicks(x0, ell, tau, dt_ms, n_steps, kick_step, kick_amp, offs,
                                          _method(method), bridge, int(burn_ms / dt_ms), seeds,
                                          cap)  # fmt: skip
        if count.max(initial=0) <= cap:
            break
        cap = int(count.max()) + 1000
    trains = [(spk[u, : count[u]] + 0.5) * dt_ms * 1e-3 for u in range(len(neurons))]
    return SpikeTrains.from_lists(trains, t_start_s=0.0, t_stop_s=n_steps * dt_ms * 1e-3)


def simulate_motif(motif: str, amplitude_mv: float, source_rate_hz: float, baseline_hz,
                   duration_s: float, tau_ms: float = 20.0, theta_mv: float = 20.0,
                   dt_ms: float = 0.1, method: str = "exact", bridge: bool = True,
                   seed: int = 0) -> SpikeTrains:  # fmt: skip
    """Three neurons (spontaneous rates ``baseline_hz``) with the sources of ``motif``
    (:data:`inference.triplet_theory.MOTIFS`), each of amplitude ±``amplitude_mv`` and rate
    ``source_rate_hz``."""
    if motif not in MOTIFS:
        raise ValueError(f"unknown motif {motif!r}; known: {sorted(MOTIFS)}")
    rates = np.broadcast_to(np.asarray(baseline_hz, dtype=np.float64), (3,))
    neurons = [ThresholdLIF.from_rate(r, tau_ms, theta_mv) for r in rates]
    sources = [(source_rate_hz, sign * amplitude_mv * np.asarray(mask, float))
               for mask, sign in MOTIFS[motif]]  # fmt: skip
    return simulate_sources(neurons, sources, duration_s, dt_ms, method, bridge, seed)
