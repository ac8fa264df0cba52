"""numba kernel of the AR(1) deconvolution: the pool-adjacent-violators pass of OASIS.

Written from the description in Friedrich, Zhou & Paninski (2017), "Fast online
deconvolution of calcium imaging data", PLoS Comput Biol 13:e1005423, section "AR(1)".
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def oasis_ar1(y, g, lam, s_min):
    """Calcium c and events s of one baseline-free trace.

    Solves min_c ½‖y − c‖² + lam·Σ_t s_t subject to s_t = c_t − g·c_{t−1} ≥ 0 (s_0 = c_0,
    so c ≥ 0), or with ``s_min`` > 0 the hard-threshold variant s_t = 0 or s_t ≥ s_min for
    t ≥ 1 (greedy, as in OASIS; the problem is no longer convex).

    Σ_t s_t = Σ_{t<T−1} (1 − g)·c_t + c_{T−1}, so the L1 term is linear in c and only shifts
    the data: y'_t = y_t − lam·(1 − g), y'_{T−1} = y_{T−1} − lam. What remains is a
    projection of y' onto {c : c_t ≥ g·c_{t−1}, c_0 ≥ 0}, solved exactly by pooling: a pool
    of frames [t, t + l) has c_{t+k} = v·g^k, with v = Σ_k g^k y'_{t+k} / Σ_k g^{2k}, and a
    pool whose start value breaks the constraint with the pool before it is merged into it,
    back to the first pool that holds. Every frame is pushed once and merged at most once:
    O(T) time and memory. Negative pools end at 0 (the constraint c_0 ≥ 0 pins them).

    Parameters
    ----------
    y : (T,) float64, baseline already removed.
    g : float in (0, 1), the AR(1) coefficient per frame.
    lam : float ≥ 0, the L1 weight (units of y).
    s_min : float ≥ 0, the smallest nonzero event after the first frame (units of y).

    Returns
    -------
    c : (T,) float64, the calcium (units of y).
    s : (T,) float64, the events s_t = c_t − g·c_{t−1}; exactly 0 inside pools.
    """
    T = y.shape[0]
    v = np.empty(T)  # pool value at its first frame
    w = np.empty(T)  # Σ_k g^{2k} over the pool
    start = np.empty(T, np.int64)
    length = np.empty(T, np.int64)
    shift = lam * (1.0 - g)
    n = 0  # number of pools
    for t in range(T):
        yt = y[t] - (lam if t == T - 1 else shift)
        v[n] = yt
        w[n] = 1.0
        start[n] = t
        length[n] = 1
        n += 1
        while n > 1:
            gl = g ** length[n - 2]
            if v[n - 1] >= gl * v[n - 2] + s_min:
                break
            # merge pool n-1 into pool n-2
            w_new = w[n - 2] + gl * gl * w[n - 1]
            v[n - 2] = (w[n - 2] * v[n - 2] + gl * w[n - 1] * v[n - 1]) / w_new
            w[n - 2] = w_new
            length[n - 2] += length[n - 1]
            n -= 1
    c = np.empty(T)
    s = np.zeros(T)
    for i in range(n):
        vi = v[i] if v[i] > 0.0 else 0.0
        t0 = start[i]
        val = vi
        for k in range(length[i]):
            c[t0 + k] = val
            val *= g
        s[t0] = vi if t0 == 0 else vi - g * c[t0 - 1]
    return c, s


@njit(cache=True, nogil=True)
def counts_from_events(s, a1):
    """Spike counts per frame (T,) int64 from events ``s`` (T,) and the single-spike event
    size ``a1`` (> 0, units of s).

    A spike's event spreads over the frames of its rise, so each run of consecutive frames
    with s > 0 is counted as a whole: the run's cumulative Σ s / a1 is rounded to the
    nearest integer, and a spike is placed at every frame where that rounded sum steps up.
    A run's total is round(Σ_run s / a1); an isolated event of size s gives round(s / a1).
    """
    T = s.shape[0]
    n = np.zeros(T, np.int64)
    t = 0
    while t < T:
        if s[t] <= 0.0:
            t += 1
            continue
        acc = 0.0
        prev = 0
        while t < T and s[t] > 0.0:
            acc += s[t] / a1
            r = int(np.floor(acc + 0.5))
            if r > prev:
                n[t] = r - prev
                prev = r
            t += 1
    return n
