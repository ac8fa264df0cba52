"""Postsynaptic potentials of the model neuron: synaptic jump ↔ PSP peak (mV).

Estimators report a connection's strength as a PSP in mV (GLMCC's calibration, the
triplet map's source amplitude); the network model needs the jump of the synaptic variable
(nS of conductance for ``coba`` synapses, pA of current for ``cuba``). The conversion is
computed from the postsynaptic neuron's own equations, not assumed:

    C dV/dt = −g_L (V − V_ref) − g(t) (V − E_syn)      (coba; g(t) = w e^{−t/τ_syn})
    C dV/dt = −g_L (V − V_ref) ± I(t)                  (cuba; I(t) = w e^{−t/τ_syn})

starting at the reference potential V_ref, held there by a constant current; the PSP is the
extreme of V − V_ref (positive for excitation, negative for inhibition). The cuba response
is linear with a closed form; the coba one is integrated numerically (the driving force
E_syn − V shrinks as V moves, so the PSP saturates) and tabulated per neuron type, so that
converting thousands of member draws costs one interpolation each.

V_ref is where the neuron receives its inputs: the midpoint of reset and threshold for a
neuron whose DC bias drives it above threshold (it spends its time between the two), else its
resting potential E_L + I_bias/g_L.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp
from scipy.interpolate import PchipInterpolator

from model.network import Network

#: PSPs up to this size (mV) are tabulated; larger requests are errors.
MAX_PSP_MV = 15.0
_N_GRID = 96


def reference_potential_mv(network: Network, neurons) -> np.ndarray:
    """V_ref (mV) of ``neurons`` (int array): see the module docstring."""
    _require_lif(network)
    j = np.asarray(neurons, dtype=np.int64)
    nr = network.neuron
    rest = nr["e_l_mv"][j] + network.bias_pa[j] / nr["g_l_ns"][j]
    mid = 0.5 * (nr["v_reset_mv"][j] + nr["v_th_mv"][j])
    return np.where(rest >= nr["v_th_mv"][j], mid, rest)


def _require_lif(network: Network):
    if network.model not in ("lif_coba", "lif_cuba"):
        raise ValueError(f"PSP conversion needs LIF neurons; the network's model is {network.model}")


def _peak(c_pf, g_l_ns, v_ref, e_syn, tau_s, w, conductance: bool, sign: float) -> float:
    """Extreme of V − V_ref (mV) after a jump ``w`` at t = 0 (ms, pF, nS, mV, pA)."""
    tau_m = c_pf / g_l_ns
    if not conductance:  # closed form of the linear response
        if np.isclose(tau_m, tau_s):
            t_pk = tau_m
            return sign * w / c_pf * t_pk * np.exp(-1.0)
        t_pk = tau_m * tau_s / (tau_m - tau_s) * np.log(tau_m / tau_s)
        return sign * w / c_pf * tau_s * tau_m / (tau_m - tau_s) * (
            np.exp(-t_pk / tau_m) - np.exp(-t_pk / tau_s)
        )

    def rhs(t, x):
        g = w * np.exp(-t / tau_s)
        return (-g_l_ns * x[0] - g * (x[0] + v_ref - e_syn)) / c_pf

    t_end = 8.0 * max(tau_m, tau_s)
    sol = solve_ivp(rhs, (0.0, t_end), [0.0], rtol=1e-10, atol=1e-12, dense_output=True)
    t = np.linspace(0.0, t_end, 4001)
    x = sol.sol(t)[0] * sign
    k = int(np.argmax(x))
    lo, hi = t[max(k - 1, 0)], t[min(k + 1, t.size - 1)]
    # Golden-section refinement of the peak between the grid neighbours.
    g = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(40):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if sol.sol(a)[0] * sign > sol.sol(b)[0] * sign:
            hi = b
        else:
            lo = a
    return float(sol.sol(0.5 * (lo + hi))[0])


class _Table:
    """PSP(w) of one neuron type and synapse sign on a grid, monotone (PCHIP) both ways."""

    def __init__(self, c_pf, g_l_ns, v_ref, e_syn, tau_s, conductance, sign):
        args = (c_pf, g_l_ns, v_ref, e_syn, tau_s)
        # A conductance cannot move V past its reversal potential.
        top = MAX_PSP_MV if not conductance else min(MAX_PSP_MV, 0.9 * abs(e_syn - v_ref))
        w_max = 1.0
        while abs(_peak(*args, w_max, conductance, sign)) < top:
            w_max *= 2.0
            if w_max > 1e9:
                raise ValueError(
                    f"a PSP of {MAX_PSP_MV} mV cannot be reached at V_ref = {v_ref:.1f} mV "
                    f"(reversal {e_syn} mV)"
                )
        self.w = w_max * np.linspace(0.0, 1.0, _N_GRID) ** 2
        self.psp = np.abs([_peak(*args, w, conductance, sign) for w in self.w])
        self.sign = sign
        self.forward = PchipInterpolator(self.w, self.psp)
        self.inverse = PchipInterpolator(self.psp, self.w)


def _tables(network: Network, neurons, excitatory: bool):
    """(tables, which): the distinct neuron types' tables (built once per network) and the
    index into them of each neuron of ``neurons``."""
    _require_lif(network)
    cache = getattr(network, "_psp_tables", None)
    if cache is None:
        cache = {}
        object.__setattr__(network, "_psp_tables", cache)
    syn = network.spec.synapses
    conductance = network.model == "lif_coba"
    e_syn = syn.e_e_mv if excitatory else syn.e_i_mv
    tau_s = syn.tau_e_ms if excitatory else syn.tau_i_ms
    sign = 1.0 if excitatory else -1.0
    j = np.asarray(neurons, dtype=np.int64)
    nr = network.neuron
    types = np.column_stack([np.round(nr["c_pf"][j], 9), np.round(nr["g_l_ns"][j], 9),
                             np.round(reference_potential_mv(network, j), 6)])  # fmt: skip
    distinct, which = np.unique(types, axis=0, return_inverse=True)
    tables = []
    for c, gl, v in distinct:
        key = (float(c), float(gl), float(v), bool(excitatory))
        if key not in cache:
            cache[key] = _Table(float(c), float(gl), float(v), e_syn, tau_s, conductance, sign)
        tables.append(cache[key])
    return tables, which.ravel()


def psp_mv(network: Network, post, weight, excitatory) -> np.ndarray:
    """Signed PSP peak (mV) of jumps ``weight`` (magnitudes, units of the network's synaptic
    weights) onto neurons ``post``; ``excitatory`` (bool or array) gives each one's sign.

    ``post``, ``weight``, ``excitatory`` broadcast to one shape (k,).
    """
    post, weight, excitatory = (a.ravel() for a in np.broadcast_arrays(
        np.asarray(post, np.int64), np.asarray(weight, float), np.asarray(excitatory, bool)))  # fmt: skip
    shape = np.broadcast(post, weight).shape
    out = np.empty(post.size)
    for flag in (True, False):
        sel = np.flatnonzero(excitatory == flag)
        if sel.size:
            tables, which = _tables(network, post[sel], flag)
            for t, table in enumerate(tables):
                k = sel[which == t]
                out[k] = (1.0 if flag else -1.0) * table.forward(np.minimum(weight[k], table.w[-1]))
    return out.reshape(shape)


def weight_for_psp(network: Network, post, psp) -> tuple[np.ndarray, np.ndarray]:
    """Synaptic jump (magnitude) that gives the PSP peak ``psp`` (mV, signed: > 0 excitatory)
    on neurons ``post``; returns (weight, excitatory). A PSP of 0 gives weight 0 (sign
    excitatory); |PSP| above :data:`MAX_PSP_MV` is an error."""
    post, psp = np.broadcast_arrays(np.asarray(post, np.int64), np.asarray(psp, float))
    shape = psp.shape
    post, psp = post.ravel(), psp.ravel()
    if not np.isfinite(psp).all():
        raise ValueError("PSP values must be finite")
    big = np.abs(psp) > MAX_PSP_MV
    if big.any():
        k = int(np.flatnonzero(big)[0])
        raise ValueError(f"a PSP of {psp[k]:.3g} mV is beyond the {MAX_PSP_MV} mV the conversion covers")
    excitatory = psp >= 0
    w = np.zeros(psp.size)
    for flag in (True, False):
        sel = np.flatnonzero(excitatory == flag)
        if sel.size:
            tables, which = _tables(network, post[sel], flag)
            for t, table in enumerate(tables):
                k = sel[which == t]
                beyond = np.abs(psp[k]) > table.psp[-1]
                if beyond.any():
                    i = k[np.flatnonzero(beyond)[0]]
                    raise ValueError(
                        f"a PSP of {psp[i]:.3g} mV is beyond what a synapse onto neuron "
                        f"{post[i]} can give ({table.sign * table.psp[-1]:.3g} mV)"
                    )
                w[k] = table.inverse(np.abs(psp[k]))
    return w.reshape(shape), excitatory.reshape(shape)
