"""numba kernels of the calcium forward operator: spikes → frame-averaged fluorescence.

Calcium of one unit is a sum of unit double-exponential transients, carried as two
exponential sums a(t) = Σ exp(−(t − t_k)/τ_decay) and b(t) = Σ exp(−(t − t_k)/τ_rise) over
the spikes t_k ≤ t, so that c(t) = c_rest + scale·(a(t) − b(t)). Between two spikes c is
smooth; at a spike it has a kink (its slope jumps). A frame's value is the average of the
readout h(c(t)) over the exposure interval, so each exposure is cut at the spikes inside it
and every smooth piece is integrated with Gauss–Legendre nodes: the nodes of a frame depend
only on the frame time and the spikes, never on where a run was split into windows, which is
what makes restarts exact.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def readout(c, hill_n, k_sat):
    """h(c) = cⁿ / (1 + (c/k_sat)ⁿ); k_sat = inf gives the pure power cⁿ."""
    # The common exponents and the unsaturated case avoid pow, the kernel's hot spot.
    if hill_n == 2.0:
        p = c * c
    elif hill_n == 1.0:
        p = c
    else:
        p = c**hill_n
    if k_sat == np.inf:
        return p
    return p / (1.0 + p / k_sat**hill_n)


@njit(cache=True, nogil=True)
def spike_sums(spike_times, a0, b0, t0, tau_rise, tau_decay):
    """The exponential sums just after each spike of one unit.

    Parameters
    ----------
    spike_times : (m,) float64, sorted, all > t0 (s)
    a0, b0 : float
        The sums at the reference time ``t0`` (s; −inf with a0 = b0 = 0 for a unit at rest).

    Returns
    -------
    a, b : (m,) float64
        a[k] = Σ_{j ≤ k} exp(−(t_k − t_j)/τ_decay) + a0·exp(−(t_k − t0)/τ_decay), likewise b.
    """
    m = spike_times.size
    a = np.empty(m)
    b = np.empty(m)
    ap, bp, tp = a0, b0, t0
    for k in range(m):
        dt = spike_times[k] - tp
        # A unit at rest has a0 = b0 = 0 and t0 = −inf: 0·exp(−inf) = 0, not NaN.
        if ap != 0.0:
            ap *= np.exp(-dt / tau_decay)
        if bp != 0.0:
            bp *= np.exp(-dt / tau_rise)
        ap += 1.0
        bp += 1.0
        tp = spike_times[k]
        a[k] = ap
        b[k] = bp
    return a, b


@njit(cache=True, nogil=True)
def frame_means(
    times,
    offsets,
    ref_a,
    ref_b,
    ref_t,
    frame_times,
    exposure,
    tau_rise,
    tau_decay,
    scale,
    c_rest,
    hill_n,
    k_sat,
    gl_x,
    gl_w,
):
    """Mean of h(c(t)) − h(c_rest) over each frame's exposure (t_f − exposure, t_f].

    The resting readout is subtracted node by node, so a unit at rest gives exactly 0.

    Parameters
    ----------
    times : (n_spikes,) float64
        Spike times (s) in CSR layout, sorted per unit, all > ref_t.
    offsets : (n_units + 1,) int64
    ref_a, ref_b : (n_units,) float64
        Exponential sums at the reference time ``ref_t`` (s).
    frame_times : (n_frames,) float64, increasing (s)
    exposure : float
        Exposure length (s) of one frame; > 0.
    tau_rise, tau_decay, scale, c_rest, hill_n, k_sat : float
        Kinetics (s), peak normalisation of the kernel, resting calcium, readout.
    gl_x, gl_w : (q,) float64
        Gauss–Legendre nodes and weights on [0, 1].

    Returns
    -------
    (n_frames, n_units) float64
        The exposure-averaged readout above rest (dimensionless).
    """
    n_units = offsets.size - 1
    n_frames = frame_times.size
    q = gl_x.size
    out = np.empty((n_frames, n_units))
    # Computed here, by the same code as at the nodes, so that rest cancels exactly.
    h_rest = readout(c_rest, hill_n, k_sat)
    # Decay of each component from a piece's start to its nodes, for a whole exposure: the
    # usual piece (no spike inside the exposure) then costs two exponentials, not 2q.
    full_d = np.exp(-exposure * gl_x / tau_decay)
    full_r = np.exp(-exposure * gl_x / tau_rise)
    node_d = np.empty(q)
    node_r = np.empty(q)
    for u in range(n_units):
        st = times[offsets[u] : offsets[u + 1]]
        m = st.size
        a, b = spike_sums(st, ref_a[u], ref_b[u], ref_t, tau_rise, tau_decay)
        j = 0  # first spike after the current exposure's start
        for f in range(n_frames):
            hi = frame_times[f]
            lo = hi - exposure
            while j < m and st[j] <= lo:
                j += 1
            acc = 0.0
            p0 = lo
            k = j - 1  # the last spike at or before p0; −1: the reference state
            while True:
                whole = not (k + 1 < m and st[k + 1] < hi)
                p1 = hi if whole else st[k + 1]
                width = p1 - p0
                if k >= 0:
                    ak, bk, tk = a[k], b[k], st[k]
                else:
                    ak, bk, tk = ref_a[u], ref_b[u], ref_t
                # At rest (no spike yet) every node gives h(c_rest) − h_rest = 0 exactly.
                if width > 0.0 and (ak != 0.0 or bk != 0.0):
                    a0 = ak * np.exp(-(p0 - tk) / tau_decay)
                    b0 = bk * np.exp(-(p0 - tk) / tau_rise)
                    if whole and p0 == lo:
                        fd, fr = full_d, full_r
                    else:
                        for i in range(q):
                            node_d[i] = np.exp(-width * gl_x[i] / tau_decay)
                            node_r[i] = np.exp(-width * gl_x[i] / tau_rise)
                        fd, fr = node_d, node_r
                    s = 0.0
                    for i in range(q):
                        c = c_rest + scale * (a0 * fd[i] - b0 * fr[i])
                        s += gl_w[i] * (readout(c, hill_n, k_sat) - h_rest)
                    acc += width * s
                if whole:
                    break
                p0 = p1
                k += 1
            out[f, u] = acc / exposure
    return out


@njit(cache=True, nogil=True)
def advance_reference(times, offsets, ref_a, ref_b, ref_t, t_new, tau_rise, tau_decay):
    """Exponential sums at ``t_new`` (≥ ref_t) over the reference state and the spikes ≤ t_new.

    Returns
    -------
    a, b : (n_units,) float64
    n_before : (n_units,) int64
        How many of each unit's spikes lie at or before t_new (they are folded into a, b).
    """
    n_units = offsets.size - 1
    a_out = np.empty(n_units)
    b_out = np.empty(n_units)
    n_before = np.zeros(n_units, np.int64)
    for u in range(n_units):
        st = times[offsets[u] : offsets[u + 1]]
        a, b = spike_sums(st, ref_a[u], ref_b[u], ref_t, tau_rise, tau_decay)
        k = np.searchsorted(st, t_new, side="right") - 1
        n_before[u] = k + 1
        if k >= 0:
            ak, bk, tk = a[k], b[k], st[k]
        else:
            ak, bk, tk = ref_a[u], ref_b[u], ref_t
        a_out[u] = ak * np.exp(-(t_new - tk) / tau_decay) if ak != 0.0 else 0.0
        b_out[u] = bk * np.exp(-(t_new - tk) / tau_rise) if bk != 0.0 else 0.0
    return a_out, b_out, n_before
