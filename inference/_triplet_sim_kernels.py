"""numba kernels: the threshold-regime LIF neuron of the triplet theory, simulated directly.

X = θ_V − V follows dX = −X/τ dt − σ dW, a spike when X reaches 0, then X = x₀ = θ_V.
Two steppers: Euler–Maruyama (``method`` 0: X += −X dt/τ + σ√dt ξ) and the exact Gaussian
OU transition (``method`` 1: X = X e^{−dt/τ} + ℓ√((1 − e^{−2dt/τ})/2) ξ). A discrete-time
walk misses crossings between steps, which biases first-passage times up by O(√dt); with
``bridge`` the step also ends in a spike with the Brownian-bridge crossing probability
exp(−2 X_n X_{n+1} / (σ² dt)), which removes most of that bias.

Each function seeds numba's generator itself (per thread inside parallel loops), so results
depend only on the seeds.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, inline="always")
def _step(x, a, b, s2dt, bridge):
    """One step from x; returns the new state, or −1.0 for a spike."""
    y = a * x + b * np.random.standard_normal()  # noqa: NPY002
    if y <= 0.0:
        return -1.0
    if bridge and np.random.random() < np.exp(-2.0 * x * y / s2dt):  # noqa: NPY002
        return -1.0
    return y


@njit(cache=True, nogil=True, inline="always")
def _coeffs(ell, tau, dt, method):
    sigma2 = ell * ell / tau
    if method == 0:
        return 1.0 - dt / tau, np.sqrt(sigma2 * dt), sigma2 * dt
    return np.exp(-dt / tau), ell * np.sqrt(-np.expm1(-2.0 * dt / tau) / 2.0), sigma2 * dt


@njit(cache=True, nogil=True, parallel=True)
def first_passage_times(x0, ell, tau, dt, n, max_steps, method, bridge, seed):
    """``n`` first-passage times (ms) from X = x0; NaN where none within max_steps."""
    out = np.empty(n)
    a, b, s2dt = _coeffs(ell, tau, dt, method)
    nt = 64  # independent streams: one seed per chunk of trials
    for c in prange(nt):
        np.random.seed(seed * 1009 + c)  # noqa: NPY002
        for k in range(c, n, nt):
            x = x0
            t = np.nan
            for s in range(1, max_steps + 1):
                x = _step(x, a, b, s2dt, bridge)
                if x < 0.0:
                    t = s * dt
                    break
            out[k] = t
    return out


@njit(cache=True, nogil=True, parallel=True)
def probe_response(x0, ell, tau, dt, amplitudes, window_steps, n_probes, gap_steps, method,
                   bridge, seed):  # fmt: skip
    """Fraction of probes with ≥ 1 spike within ``window_steps`` after a kick of each
    amplitude (mV, > 0 excitatory), given at random phases of an unperturbed neuron.

    The neuron runs free; every ``gap_steps`` plus a random extra (so the phase is random)
    a copy of its state receives the kick and is followed for the window: the probes never
    disturb the neuron, so they sample its stationary state exactly as R̄(A, Δ) assumes.
    """
    nA = amplitudes.shape[0]
    hits = np.zeros((64, nA))
    a, b, s2dt = _coeffs(ell, tau, dt, method)
    per = n_probes // 64 + 1
    for c in prange(64):
        np.random.seed(seed * 7919 + c)  # noqa: NPY002
        x = x0
        for _ in range(5 * gap_steps):  # burn-in away from the reset
            x = _step(x, a, b, s2dt, bridge)
            if x < 0.0:
                x = x0
        for _p in range(per):
            wait = gap_steps + int(np.random.random() * gap_steps)  # noqa: NPY002
            for _ in range(wait):
                x = _step(x, a, b, s2dt, bridge)
                if x < 0.0:
                    x = x0
            for q in range(nA):
                y = x - amplitudes[q]
                if y <= 0.0:
                    hits[c, q] += 1.0
                    continue
                for _ in range(window_steps):
                    y = _step(y, a, b, s2dt, bridge)
                    if y < 0.0:
                        hits[c, q] += 1.0
                        break
    return hits.sum(axis=0) / (64 * per)


@njit(cache=True, nogil=True, parallel=True)
def neurons_with_kicks(x0, ell, tau, dt, n_steps, kick_step, kick_amp, kick_offsets, method,
                       bridge, burn_steps, seeds, cap):  # fmt: skip
    """Spike steps of independent neurons driven by kicks.

    Neuron u (ℓ = ell[u]) receives the kicks ``kick_step[kick_offsets[u]:kick_offsets[u+1]]``
    (sorted step indices) with amplitudes ``kick_amp`` (mV, > 0 excitatory, applied at the
    start of that step: X −= A, a spike if X ≤ 0), after ``burn_steps`` of free running from
    the reset. Returns ``spikes`` (n, cap) int64 (spike steps in [0, n_steps), first
    ``count[u]`` of row u) and ``count`` (n,); count[u] > cap means the row overflowed.
    """
    n = ell.shape[0]
    spikes = np.empty((n, cap), np.int64)
    count = np.zeros(n, np.int64)
    for u in prange(n):
        np.random.seed(seeds[u])  # noqa: NPY002
        a, b, s2dt = _coeffs(ell[u], tau, dt, method)
        x = x0
        for _ in range(burn_steps):
            x = _step(x, a, b, s2dt, bridge)
            if x < 0.0:
                x = x0
        m = 0
        kp = kick_offsets[u]
        ke = kick_offsets[u + 1]
        for s in range(n_steps):
            spiked = False
            while kp < ke and kick_step[kp] == s:
                x -= kick_amp[kp]
                kp += 1
                if x <= 0.0:
                    spiked = True
                    x = x0
            if not spiked:
                x = _step(x, a, b, s2dt, bridge)
                if x < 0.0:
                    spiked = True
                    x = x0
            if spiked:
                if m < cap:
                    spikes[u, m] = s
                m += 1
        count[u] = m
    return spikes, count
