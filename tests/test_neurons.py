"""Single neurons against closed forms and an independent integration.

References: the LIF f–I curve (e.g. Gerstner et al., Neuronal Dynamics, eq. 1.17 with a
refractory period), the exact CUBA propagator (Rotter & Diesmann 1999), the COBA PSP by
the integrating factor (evaluated with adaptive quadrature), and Izhikevich (2003)
regular spiking under a step current (an adaptive ODE solve with reset events).
"""

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from model import advance, build_network, default_params, initial_state

LIF = {"model": "lif", "c_pf": 200.0, "g_l_ns": 10.0, "e_l_mv": -60.0, "v_th_mv": -50.0,
       "v_reset_mv": -60.0, "t_ref_ms": 5.0}  # fmt: skip


def single(neuron, synapses, bias=0.0, dt_ms=0.1, initial_v=None):
    spec = {
        "dt_ms": dt_ms,
        "synapses": synapses,
        "populations": [
            {"name": "N", "n": 1, "type": "E", "neuron": neuron, "drive": {"bias_pa": bias}}
        ],
    }
    if initial_v is not None:
        spec["initial_v_mv"] = initial_v
    return build_network(spec, 0)


def trace(net, state, n_steps):
    """V after each step, by advancing one step at a time (advance is pure and restartable)."""
    p = default_params(net, 1)
    out, spikes = [], []
    for _ in range(n_steps):
        t0 = state.time_s(net)
        state, rec = advance(net, p, state, t0, t0 + net.dt_s, 0)
        out.append(state.v_mv[0, 0])
        spikes.extend(rec.times_s)
    return np.array(out), np.array(spikes), state


@pytest.mark.parametrize("kind", ["coba", "cuba"])
@pytest.mark.parametrize("current_pa", [220.0, 300.0, 500.0, 900.0])
def test_lif_rate_under_constant_current(kind, current_pa):
    """rate = 1/(t_ref + τ ln(RI/(RI − θ))) within 1 % (dt = 0.1 ms rounds each period up
    to whole steps: at most dt/T ≈ 0.7 % here)."""
    net = single(LIF, {"kind": kind}, bias=current_pa, initial_v=-60.0)
    tau_ms, R_gohm, theta = 20.0, 0.1, 10.0
    expected = 1e3 / (5.0 + tau_ms * np.log(R_gohm * current_pa / (R_gohm * current_pa - theta)))
    state = initial_state(net, 1, 0)
    _, rec = advance(net, default_params(net, 1), state, 0.0, 5.0, 0)
    t, _ = rec.member(0)
    rate = 1.0 / np.diff(t).mean()
    assert rate == pytest.approx(expected, rel=0.01)


def test_lif_below_rheobase_never_fires():
    net = single(LIF, {"kind": "coba"}, bias=99.0, initial_v=-60.0)  # RI = 9.9 mV < θ
    _, rec = advance(net, default_params(net, 1), initial_state(net, 1, 0), 0.0, 2.0, 0)
    assert rec.times_s.size == 0


def test_cuba_psp_is_exact():
    """One synaptic current I₀ e^{−t/τ_s}: V − E_L = (I₀/C) τ_s τ_m/(τ_m − τ_s)(e^{−t/τ_m} − e^{−t/τ_s})."""
    net = single(LIF, {"kind": "cuba", "tau_e_ms": 5.0}, initial_v=-60.0)
    state = initial_state(net, 1, 0)
    state.buf_e[0, 1, 0] = 100.0  # 100 pA arriving at step 1, i.e. at t = 0.1 ms
    v, _, _ = trace(net, state, 600)
    t = (np.arange(1, 601) - 1) * 0.1  # ms since arrival, at the end of each step
    tm, ts = 20.0, 5.0
    ref = -60.0 + 100.0 / 200.0 * ts * tm / (tm - ts) * (np.exp(-t / tm) - np.exp(-t / ts))
    np.testing.assert_allclose(v, ref, atol=1e-10)


def test_coba_psp_matches_the_integrating_factor():
    """C V' = g_L(E_L − V) + g(t)(E_e − V), g(t) = Δg e^{−t/τ_e}: y = V − E_L solves
    y(t) = μ(t)⁻¹ ∫₀ᵗ μ(s) g(s)(E_e − E_L)/C ds with μ(t) = exp((g_L t + Δg τ_e(1 − e^{−t/τ_e}))/C)."""
    net = single(LIF, {"kind": "coba", "tau_e_ms": 5.0, "e_e_mv": 0.0}, initial_v=-60.0)
    state = initial_state(net, 1, 0)
    dg, C, gL, te, drive = 6.0, 200.0, 10.0, 5.0, 60.0
    state.buf_e[0, 1, 0] = dg
    v, _, _ = trace(net, state, 500)

    def mu(t):
        return np.exp((gL * t + dg * te * (1 - np.exp(-t / te))) / C)

    def y(t):
        integral, _ = quad(lambda s: mu(s) * dg * np.exp(-s / te) * drive / C, 0.0, t, epsabs=1e-13)
        return integral / mu(t)

    t = np.arange(500) * 0.1
    ref = -60.0 + np.array([y(ti) for ti in t])
    peak = (ref + 60.0).max()
    assert peak > 0.1  # a real PSP: about 0.6 mV
    np.testing.assert_allclose(v, ref, atol=2e-3 * peak)


def izhikevich_reference(I, t_end_ms, a=0.02, b=0.2, c=-65.0, d=8.0):
    """Spike times of an Izhikevich neuron by an adaptive Runge–Kutta solve, reset by events."""

    def f(_, x):
        v, u = x
        return [0.04 * v * v + 5 * v + 140 - u + I, a * (b * v - u)]

    def peak(_, x):
        return x[0] - 30.0

    peak.terminal, peak.direction = True, 1
    t, x, spikes = 0.0, [-65.0, b * -65.0], []
    while t < t_end_ms:
        sol = solve_ivp(f, (t, t_end_ms), x, events=peak, rtol=1e-10, atol=1e-10, max_step=0.5)
        if sol.status != 1:
            break
        t = sol.t_events[0][0]
        spikes.append(t)
        x = [c, sol.y_events[0][0][1] + d]
    return np.array(spikes)


def test_izhikevich_regular_spiking_step_current():
    """RS neuron, I = 10: latency of the first spike and spike-frequency adaptation."""
    neuron = {"model": "izhikevich", "preset": "RS", "v_substeps": 1}
    net = single(neuron, {"kind": "instantaneous"}, bias=10.0, dt_ms=0.01)
    _, rec = advance(net, default_params(net, 1), initial_state(net, 1, 0), 0.0, 0.3, 0)
    ours = rec.times_s * 1e3
    ref = izhikevich_reference(10.0, 300.0)
    assert ours.size == ref.size >= 5
    assert ours[0] == pytest.approx(ref[0], abs=0.1)  # ms
    isi, isi_ref = np.diff(ours), np.diff(ref)
    np.testing.assert_allclose(isi, isi_ref, rtol=0.01)
    assert isi[-1] / isi[0] > 1.5  # regular spiking adapts
    assert isi[-1] / isi[0] == pytest.approx(isi_ref[-1] / isi_ref[0], rel=0.02)
