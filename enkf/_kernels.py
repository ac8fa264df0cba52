"""numba kernels of the analysis: the ETKF transform and the batched local analyses.

Arrays in, arrays out; no Python objects. The local analyses of the LETKF run in
parallel over domains (``prange``), each one solving an (N, N) problem in ensemble space.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def first_nonfinite(X):
    """Index (row, column) of the first NaN/±inf of a 2-D array, or (-1, -1).

    One pass and no temporary: ``np.isfinite(X).all()`` allocates a mask as large as X/8,
    whose page faults cost more than the scan at 10⁸ entries.
    """
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            if not np.isfinite(X[i, j]):
                return i, j
    return -1, -1


@njit(cache=True, nogil=True)
def transform_weights(Yt, dt):
    """ETKF weights in ensemble space (Hunt et al. 2007, eqs. 20–24; symmetric square root).

    Parameters
    ----------
    Yt : (N, p) float64
        Observation anomalies whitened by R^{-1/2} (rows: members, centred).
    dt : (p,) float64
        Innovation y − mean(HE), whitened by R^{-1/2}.

    Returns
    -------
    W : (N, N) float64
        Analysis weights: ``E_a = x̄ + W @ A``. ``W = 1 w̄ᵀ + T`` with
        ``w̄ = P̃ Yt dt``, ``P̃ = [(N−1)I + Yt Ytᵀ]⁻¹`` and the symmetric square root
        ``T = [(N−1) P̃]^{1/2}``, which keeps the analysis anomalies centred.
    """
    N = Yt.shape[0]
    G = Yt @ Yt.T
    s, V = np.linalg.eigh(G)
    inv = np.empty(N)
    root = np.empty(N)
    for k in range(N):
        sk = max(s[k], 0.0)  # G is a Gram matrix: negative eigenvalues are round-off
        inv[k] = 1.0 / (N - 1.0 + sk)
        root[k] = np.sqrt((N - 1.0) * inv[k])
    b = V.T @ (Yt @ dt)
    wbar = V @ (inv * b)
    W = (V * root) @ V.T
    for i in range(N):
        for j in range(N):
            W[i, j] += wbar[j]
    return W


@njit(cache=True, nogil=True)
def _analyse_domain(dom, E, xb, YT, d, rfull, state_ptr, state_idx, obs_ptr, obs_idx, obs_w, Ea):
    """The local ETKF analysis of domain ``dom``, written into its columns of ``Ea``."""
    N = E.shape[0]
    full = rfull.shape[0] > 0
    s0 = state_ptr[dom]
    ns = state_ptr[dom + 1] - s0
    o0 = obs_ptr[dom]
    p = obs_ptr[dom + 1] - o0
    # Loops run over members outside and state entries inside: E is (N, M) row-major,
    # so a domain's entries (usually neighbours in memory) are read along a row.
    if p == 0:
        for n in range(N):
            for j in range(ns):
                s = state_idx[s0 + j]
                Ea[n, s] = E[n, s]
        return
    Yl = np.empty((N, p))
    dl = np.empty(p)
    for k in range(p):
        o = obs_idx[o0 + k]
        sw = np.sqrt(obs_w[o0 + k])
        dl[k] = d[o] * sw
        for n in range(N):
            Yl[n, k] = YT[o, n] * sw
    if full:
        # Taper, then whiten with the local R: R̃⁻¹ = D^{1/2} R_loc⁻¹ D^{1/2}.
        Rl = np.empty((p, p))
        for a in range(p):
            for b in range(p):
                Rl[a, b] = rfull[obs_idx[o0 + a], obs_idx[o0 + b]]
        L = np.linalg.cholesky(Rl)
        Yl = np.ascontiguousarray(np.linalg.solve(L, np.ascontiguousarray(Yl.T)).T)
        dl = np.linalg.solve(L, dl)
    W = transform_weights(Yl, dl)
    Al = np.empty((N, ns))
    for n in range(N):
        for j in range(ns):
            s = state_idx[s0 + j]
            Al[n, j] = E[n, s] - xb[s]
    Out = W @ Al
    for n in range(N):
        for j in range(ns):
            s = state_idx[s0 + j]
            Ea[n, s] = xb[s] + Out[n, j]


@njit(cache=True, nogil=True, parallel=True)
def local_analyses_parallel(E, xb, YT, d, rfull, state_ptr, state_idx, obs_ptr, obs_idx, obs_w, Ea):
    """All local ETKF analyses of the LETKF, one per domain (Hunt et al. 2007).

    Runs the domains in parallel (numba threads); :func:`local_analyses_serial` is the
    same on one thread.

    Parameters
    ----------
    E : (N, M) float64
        Forecast ensemble.
    xb : (M,) float64
        Its mean.
    YT : (P, N) float64
        Observation anomalies, transposed so that one observation is contiguous.
        Already whitened by R^{-1/2} when R is diagonal (``rfull`` empty).
    d : (P,) float64
        Innovation y − mean(HE), whitened like ``YT``.
    rfull : (P, P) or (0, 0) float64
        The full R when it is not diagonal; then ``YT`` and ``d`` are not whitened.
    state_ptr, state_idx : CSR of the state entries of each domain, (D+1,), (M,)
    obs_ptr, obs_idx, obs_w : CSR of the observations of each domain and their taper
        weights in (0, 1], which multiply R⁻¹ (R-localisation).
    Ea : (N, M) float64
        Output: the analysis ensemble.
    """
    for dom in prange(state_ptr.shape[0] - 1):
        _analyse_domain(dom, E, xb, YT, d, rfull, state_ptr, state_idx, obs_ptr, obs_idx, obs_w, Ea)


@njit(cache=True, nogil=True)
def local_analyses_serial(E, xb, YT, d, rfull, state_ptr, state_idx, obs_ptr, obs_idx, obs_w, Ea):
    """:func:`local_analyses_parallel` on one thread, for problems too small to share.

    (Two functions, not one compiled twice: numba's cache keys on the Python function, so
    two compilations of one function would load each other's cached machine code.)
    """
    for dom in range(state_ptr.shape[0] - 1):
        _analyse_domain(dom, E, xb, YT, d, rfull, state_ptr, state_idx, obs_ptr, obs_idx, obs_w, Ea)
