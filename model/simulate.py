"""``advance``: the pure, restartable function every forecast task calls."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from model import _kernels as K
from model.network import Network
from model.state import MemberParams, MemberState

_MODEL_CODE = {"lif_coba": K.LIF_COBA, "lif_cuba": K.LIF_CUBA, "izhikevich": K.IZHIKEVICH}


@dataclass(frozen=True)
class Recorded:
    """What ``advance`` returns besides the new state.

    Attributes
    ----------
    t0_s, t1_s : float
        The interval advanced.
    member_ptr : (M+1,) int64
        Spikes of member m are ``[member_ptr[m]:member_ptr[m+1]]`` of the arrays below.
    times_s : (n_spikes,) float64
        Spike times (s), sorted within each member: the end of the step in which the
        membrane crossed threshold, so that they lie in (t0_s, t1_s].
    neurons : (n_spikes,) int64
        Global neuron index of each spike (only recorded neurons).
    rates_hz : (M, n_bins, n_pop) float64
        Population rates in bins of ``rate_bin_s`` starting at ``t0_s`` (all neurons of
        the population, recorded or not).
    rate_bin_s : float
    """

    t0_s: float
    t1_s: float
    member_ptr: np.ndarray
    times_s: np.ndarray
    neurons: np.ndarray
    rates_hz: np.ndarray
    rate_bin_s: float

    def member(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        """(times_s, neurons) of member ``m``."""
        s = slice(self.member_ptr[m], self.member_ptr[m + 1])
        return self.times_s[s], self.neurons[s]

    def mean_rate_hz(self, network: Network, population: str) -> np.ndarray:
        """Time-averaged rate of a population, per member (M,)."""
        k = network.pop_names.index(population)
        n_bins = self.rates_hz.shape[1]
        widths = np.full(n_bins, self.rate_bin_s)
        widths[-1] = (self.t1_s - self.t0_s) - self.rate_bin_s * (n_bins - 1)
        return (self.rates_hz[:, :, k] * widths).sum(axis=1) / (self.t1_s - self.t0_s)


def _precompute(network: Network):
    """Per-neuron parameter table and synapse constants for the kernel (cached per network)."""
    cached = getattr(network, "_kernel_constants", None)
    if cached is not None:
        return cached
    dt = network.spec.dt_ms
    syn = network.spec.synapses
    nr = network.neuron
    if network.model == "izhikevich":
        P = np.vstack([nr["a"], nr["b"], nr["c"], nr["d"], nr["v_peak_mv"], nr["v_substeps"]])
    else:
        c, gl = nr["c_pf"], nr["g_l_ns"]
        tau_m = c / gl
        p22 = np.exp(-dt / tau_m)

        def p21(tau_s):
            # Response at the end of a step to a synaptic current I₀·exp(−t/τ_s) started at
            # its beginning: (I₀/C)·τ_s τ_m/(τ_m − τ_s)·(e^{−h/τ_m} − e^{−h/τ_s}); the
            # τ_s = τ_m limit is (I₀/C)·h·e^{−h/τ}.
            same = np.isclose(tau_m, tau_s, rtol=1e-9)
            with np.errstate(divide="ignore", invalid="ignore"):
                general = tau_s * tau_m / (tau_m - tau_s) * (p22 - np.exp(-dt / tau_s)) / c
            return np.where(same, dt * p22 / c, general)

        P = np.vstack([
            c, gl, nr["e_l_mv"], nr["v_th_mv"], nr["v_reset_mv"], nr["t_ref_steps"],
            p22, p21(syn.tau_e_ms), p21(syn.tau_i_ms), (1.0 - p22) / gl,
        ])  # fmt: skip
    ou_dec = np.exp(-dt / network.ou_tau_ms)
    consts = {
        "P": np.ascontiguousarray(P, dtype=np.float64),
        "dec_e": float(np.exp(-dt / syn.tau_e_ms)),
        "dec_i": float(np.exp(-dt / syn.tau_i_ms)),
        "half_e": float(np.exp(-0.5 * dt / syn.tau_e_ms)),
        "half_i": float(np.exp(-0.5 * dt / syn.tau_i_ms)),
        "ou_dec": ou_dec,
        "ou_noise": network.ou_sd_pa * np.sqrt(1.0 - ou_dec**2),
        "rec_pos": _record_positions(network),
    }
    object.__setattr__(network, "_kernel_constants", consts)
    return consts


def _record_positions(network: Network) -> np.ndarray:
    pos = np.full(network.n, -1, np.int32)
    pos[network.recorded] = np.arange(network.recorded.size, dtype=np.int32)
    return pos


def member_keys(seed, member_ids: np.ndarray) -> np.ndarray:
    """64-bit keys of the members' random streams: from one seed and the member ids, or
    from one seed per member (an array, e.g. SeedSequence children's entropy)."""
    seeds = np.asarray(seed)
    if seeds.ndim == 0:
        base = np.random.SeedSequence(int(seeds)).generate_state(1, np.uint64)[0]
        return np.array(
            [K.mix64(base ^ K.mix64(np.uint64(m))) for m in member_ids], dtype=np.uint64
        )
    if seeds.shape != member_ids.shape:
        raise ValueError(
            f"seed must be one integer or one per member ({member_ids.size}), got shape {seeds.shape}"
        )
    return np.array(
        [np.random.SeedSequence(int(s)).generate_state(1, np.uint64)[0] for s in seeds],
        dtype=np.uint64,
    )


def _check(
    network: Network, params: MemberParams, state: MemberState, t0_s: float, t1_s: float
) -> int:
    if state.fingerprint != network.fingerprint:
        raise ValueError(
            "state belongs to another network (fingerprint "
            f"{state.fingerprint[:12]}… ≠ {network.fingerprint[:12]}…)"
        )
    M = state.n_members
    shapes = {
        "weight_scale": (M, network.n_pop, network.n_pop),
        "poisson_rate_hz": (M, network.n_pop),
        "bias_pa": (M, network.n),
        "synapse_weight": (M, network.n_member_synapses),
        "source_rate_hz": (M, network.n_sources),
        "source_weight": (M, network.n_sources),
    }
    for name, shape in shapes.items():
        arr = getattr(params, name)
        if arr.shape != shape:
            raise ValueError(f"params.{name} has shape {arr.shape}, expected {shape}")
        if not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0]
            raise ValueError(
                f"params.{name} is not finite at member {bad[0]}, index {tuple(bad[1:])}"
            )
    for name in ("weight_scale", "poisson_rate_hz", "synapse_weight", "source_rate_hz", "source_weight"):
        if (getattr(params, name) < 0).any():
            raise ValueError(f"params.{name} must be ≥ 0")
    dt = network.dt_s
    if abs(t0_s - state.step * dt) > 1e-6 * dt + 1e-12:
        raise ValueError(
            f"t0_s = {t0_s} but the state is at {state.step * dt} s (step {state.step})"
        )
    n_steps = int(round((t1_s - t0_s) / dt))
    if n_steps < 0 or abs((t1_s - t0_s) - n_steps * dt) > 1e-6 * dt:
        raise ValueError(
            f"t1_s − t0_s = {t1_s - t0_s} s is not a non-negative multiple of dt = {dt} s"
        )
    return n_steps


def advance(
    network: Network, params: MemberParams, state: MemberState, t0_s: float, t1_s: float, seed
):
    """Advance a batch of members from ``t0_s`` to ``t1_s``.

    Pure: ``state`` is not modified. Deterministic: the random drive of member m at step k
    is a function of (seed, member id, k, neuron) only, so that advancing 0 → 2 s equals
    0 → 1 s then 1 → 2 s bit for bit, and a batch equals its members advanced one by one.

    Parameters
    ----------
    network : Network
    params : MemberParams
        Per-member scalings, first axis = members of ``state``.
    state : MemberState
        At ``t0_s``.
    t0_s, t1_s : float
        Interval (s); a whole number of steps.
    seed : int or (M,) array of int
        Seed of the random drive; one per member, or one for all (combined with member ids).

    Returns
    -------
    (MemberState, Recorded)
    """
    n_steps = _check(network, params, state, t0_s, t1_s)
    c = _precompute(network)
    M = state.n_members
    keys = member_keys(seed, state.member_ids)
    lam = params.poisson_rate_hz * network.poisson_sources[None, :] * network.dt_s
    bin_steps = max(int(round(network.spec.rate_bin_ms / network.spec.dt_ms)), 1)
    n_bins = max(-(-n_steps // bin_steps), 1)
    expected = network.recorded.size * n_steps * network.dt_s * 50.0  # room for 50 Hz
    cap = int(min(max(expected, 1024), network.recorded.size * n_steps + 1))
    while True:
        work = state.copy()
        spike_step = np.empty((M, cap), np.int64)
        spike_neuron = np.empty((M, cap), np.int32)
        pop_counts = np.zeros((M, n_bins, network.n_pop), np.int64)
        counts = np.zeros(M, np.int64)
        K.batch_run(
            _MODEL_CODE[network.model], n_steps, state.step, keys, network.spec.dt_ms,
            network.pop_of, network.excitatory, network.syn_ptr, network.syn_post,
            network.syn_weight, network.syn_delay, c["P"],
            c["dec_e"], c["dec_i"], c["half_e"], c["half_i"],
            network.spec.synapses.e_e_mv, network.spec.synapses.e_i_mv,
            np.ascontiguousarray(lam), network.poisson_weight, network.ou_mean_pa, c["ou_dec"], c["ou_noise"],
            np.ascontiguousarray(params.bias_pa, dtype=np.float64),
            np.ascontiguousarray(params.weight_scale, dtype=np.float64),
            network.msyn_ptr, network.msyn_post, network.msyn_delay, network.msyn_excitatory,
            np.ascontiguousarray(params.synapse_weight, dtype=np.float64),
            network.src_ptr, network.src_post,
            np.ascontiguousarray(params.source_rate_hz * network.dt_s, dtype=np.float64),
            np.ascontiguousarray(params.source_weight, dtype=np.float64),
            work.v_mv, work.u, work.g_e, work.g_i, work.i_ou_pa, work.refractory, work.buf_e, work.buf_i,
            c["rec_pos"], spike_step, spike_neuron, pop_counts, bin_steps, counts,
        )  # fmt: skip
        if (counts >= 0).all():
            break
        cap *= 4  # some member out-fired the room: start again from the untouched state
    new = replace(work, step=state.step + n_steps)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    times = np.concatenate([spike_step[m, : counts[m]] for m in range(M)]) * network.dt_s
    neurons = np.concatenate([spike_neuron[m, : counts[m]] for m in range(M)]).astype(np.int64)
    sizes = np.diff(network.pop_ptr).astype(float)
    widths = np.full(n_bins, bin_steps * network.dt_s)
    widths[-1] = (n_steps - bin_steps * (n_bins - 1)) * network.dt_s if n_steps else widths[-1]
    rates = pop_counts / sizes[None, None, :] / widths[None, :, None]
    rec = Recorded(t0_s, t1_s, ptr, times, neurons, rates, bin_steps * network.dt_s)
    return new, rec
