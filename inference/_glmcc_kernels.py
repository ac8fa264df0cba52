"""numba kernels of GLMCC: cross-correlograms of all pairs and the MAP fit of one pair.

Notation (Kobayashi et al. 2019): M = 2W/Δ bins of Δ = 1 ms over lags (−W, W); a (M,) the
slow modulation; J₊ (pre → post, lags t > d) and J₋ (post → pre, lags t < −d); the kernel
f(s) = exp(−(s − d)/τ) for s ≥ d. The bin integrals of the rate are written with the
substitution u = exp(−(t − d)/τ): ∫ exp(a + J u) dt = τ e^a ∫ e^{Ju}/u du, whose power
series in J has coefficients c_m = (u₁^m − u₂^m)/(m·m!) fixed by the bin — so a fit only
evaluates polynomials, no exponential integral.
"""

import numpy as np
from numba import njit, prange

N_TERMS = 40  # |J u| ≤ 5: the 40th term is below 3·10⁻²² of the sum
EDGE_TOL_MS = 1e-7  # lags this close to an integer are "on the edge" (times given to 0.01 ms)


@njit(cache=True, nogil=True, inline="always")
def _first_after(x, start, bound):
    """Smallest k ≥ start with x[k] > bound (x sorted), by galloping then bisection: the
    sweep's pointer skips long runs of a fast train in O(log run) instead of O(run)."""
    n = x.shape[0]
    if start >= n or x[start] > bound:
        return start
    lo, step = start, 1  # invariant: x[lo] ≤ bound
    hi = lo + 1
    while hi < n and x[hi] <= bound:
        lo = hi
        step *= 2
        hi = lo + step
    hi = min(hi, n)
    lo += 1
    while lo < hi:
        mid = (lo + hi) // 2
        if x[mid] <= bound:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def pair_statistics(pre_ms, post_ms, window_ms, delays_ms, tau_ms, min_lag_ms):
    """Histogram and kernel sums of the lags t = t_post − t_pre in (−W, W), leaving out
    |t| < min_lag_ms.

    Returns
    -------
    counts : (M,) float64
        Lags per 1-ms bin; a lag on a bin edge adds 0.5 to both neighbours.
    s_plus, s_minus : (n_delays,) float64
        Σ_{t > d} exp(−(t − d)/τ) and Σ_{t < −d} exp((t + d)/τ) for each delay d.
    n_lags : int
    """
    W = window_ms
    M = int(round(2 * W))
    counts = np.zeros(M)
    nd = delays_ms.shape[0]
    s_plus = np.zeros(nd)
    s_minus = np.zeros(nd)
    d_min = delays_ms.min() if nd > 0 else np.inf
    n_lags = 0
    # The outer loop runs over the sparser train (the sweep costs one step per outer spike
    # and a gallop over the other); t = sign·(inner − outer) stays t_post − t_pre.
    if pre_ms.shape[0] <= post_ms.shape[0]:
        outer, inner, sign = pre_ms, post_ms, 1.0
    else:
        outer, inner, sign = post_ms, pre_ms, -1.0
    lo = 0
    n_inner = inner.shape[0]
    for i in range(outer.shape[0]):
        t0 = outer[i]
        lo = _first_after(inner, lo, t0 - W)
        j = lo
        while j < n_inner and inner[j] < t0 + W:
            t = sign * (inner[j] - t0)
            j += 1
            if t <= -W or t >= W or abs(t) < min_lag_ms:
                continue
            n_lags += 1
            x = t + W
            r = np.floor(x + 0.5)
            if abs(x - r) < EDGE_TOL_MS and 0 < r < M:
                k = int(r)
                counts[k - 1] += 0.5
                counts[k] += 0.5
            else:
                k = min(max(int(np.floor(x)), 0), M - 1)
                counts[k] += 1.0
            # One exponential per lag serves every delay: e^{−(t−d)/τ} = e^{d/τ}·e^{−t/τ}.
            if t > d_min:
                e = np.exp(-t / tau_ms)
                for q in range(nd):
                    if t > delays_ms[q]:
                        s_plus[q] += e
            elif t < -d_min:
                e = np.exp(t / tau_ms)
                for q in range(nd):
                    if t < -delays_ms[q]:
                        s_minus[q] += e
    for q in range(nd):
        scale = np.exp(delays_ms[q] / tau_ms)
        s_plus[q] *= scale
        s_minus[q] *= scale
    return counts, s_plus, s_minus, n_lags


@njit(cache=True, nogil=True, parallel=True)
def all_pair_statistics(times_ms, offsets, pairs, window_ms, delays_ms, tau_ms, min_lag_ms):
    """:func:`pair_statistics` for every (pre, post) row of ``pairs`` (P, 2), in parallel.

    ``times_ms``/``offsets`` is the CSR spike-train layout in ms. Cost O(spikes × window).
    """
    P = pairs.shape[0]
    M = int(round(2 * window_ms))
    nd = delays_ms.shape[0]
    counts = np.zeros((P, M))
    s_plus = np.zeros((P, nd))
    s_minus = np.zeros((P, nd))
    n_lags = np.zeros(P, np.int64)
    for p in prange(P):
        a, b = pairs[p, 0], pairs[p, 1]
        c, sp, sm, n = pair_statistics(
            times_ms[offsets[a] : offsets[a + 1]], times_ms[offsets[b] : offsets[b + 1]],
            window_ms, delays_ms, tau_ms, min_lag_ms,
        )  # fmt: skip
        counts[p] = c
        s_plus[p] = sp
        s_minus[p] = sm
        n_lags[p] = n
    return counts, s_plus, s_minus, n_lags


@njit(cache=True, nogil=True)
def bin_geometry(window_ms, delay_ms, tau_ms, min_lag_ms):
    """Per-bin constants of the rate integrals for one delay.

    Lags with |t| < min_lag_ms are outside the model: that part of a bin neither holds
    data nor enters the integral.

    Returns
    -------
    free_len : (M,) length (ms) of each bin where neither J acts
    plus_log, minus_log : (M,) ln(u₁/u₂) of the part of the bin where J₊ (J₋) acts
    plus_c, minus_c : (M, N_TERMS) power-series coefficients c_m (m = 1…N_TERMS)
    plus_n, minus_n : (M,) int64 number of terms that matter for |J| ≤ 5 (far from the
        delay u is small and two or three terms reach machine precision)
    """
    M = int(round(2 * window_ms))
    free_len = np.zeros(M)
    plus_log = np.zeros(M)
    minus_log = np.zeros(M)
    plus_c = np.zeros((M, N_TERMS))
    minus_c = np.zeros((M, N_TERMS))
    plus_n = np.zeros(M, np.int64)
    minus_n = np.zeros(M, np.int64)
    for k in range(M):
        t1 = -window_ms + k
        t2 = t1 + 1.0
        excluded = max(0.0, min(t2, min_lag_ms) - max(t1, -min_lag_ms))
        free = (t2 - t1) - excluded
        # J₊ acts on [d, ∞) (outside the excluded lags): u = exp(−(t − d)/τ) decreases in t.
        lo, hi = max(t1, delay_ms, min_lag_ms), t2
        if hi > lo:
            free -= hi - lo
            _series(np.exp(-(lo - delay_ms) / tau_ms), np.exp(-(hi - delay_ms) / tau_ms), plus_c[k])
            plus_log[k] = (hi - lo) / tau_ms
        # J₋ acts on (−∞, −d]: f(−t) = exp((t + d)/τ).
        lo, hi = t1, min(t2, -delay_ms, -min_lag_ms)
        if hi > lo:
            free -= hi - lo
            _series(np.exp((hi + delay_ms) / tau_ms), np.exp((lo + delay_ms) / tau_ms), minus_c[k])
            minus_log[k] = (hi - lo) / tau_ms
        free_len[k] = max(free, 0.0)
        plus_n[k] = _terms_needed(plus_c[k], plus_log[k])
        minus_n[k] = _terms_needed(minus_c[k], minus_log[k])
    return free_len, plus_log, minus_log, plus_c, minus_c, plus_n, minus_n


@njit(cache=True, nogil=True)
def _terms_needed(c, log_ratio):
    """Terms of Σ c_m J^m that can change the bin integral at |J| ≤ 5 (relative 10⁻¹⁸)."""
    if log_ratio <= 0.0:
        return 0
    scale = log_ratio
    power = 1.0
    last = 0
    for m in range(1, N_TERMS + 1):
        power *= 5.0
        if c[m - 1] * power > 1e-18 * scale:
            last = m
    return last


@njit(cache=True, nogil=True)
def _series(u_hi, u_lo, out):
    pu, pl, fact = 1.0, 1.0, 1.0
    for m in range(1, N_TERMS + 1):
        pu *= u_hi
        pl *= u_lo
        fact *= m
        out[m - 1] = (pu - pl) / (m * fact)


@njit(cache=True, nogil=True, inline="always")
def _poly(c, J, n_terms=N_TERMS):
    """For E(J) = ln(u₁/u₂) + Σ_m c_m J^m return (Σ c_m J^m, E′(J), E″(J)) by Horner,
    summing the first ``n_terms`` terms."""
    h0 = 0.0
    h1 = 0.0
    h2 = 0.0
    for m in range(n_terms, 0, -1):
        cm = c[m - 1]
        h0 = h0 * J + cm
        h1 = h1 * J + m * cm
        if m >= 2:
            h2 = h2 * J + m * (m - 1) * cm
    return h0 * J, h1, h2


@njit(cache=True, nogil=True, inline="always")
def _side(c, log_ratio, J, n_terms, ek, tau):
    """One side's share of bin k: (∫ over the J part of the bin / e^a, ∂G/∂J, ∂²G/∂J²);
    zeros for a bin where this J does not act."""
    if log_ratio <= 0.0:
        return 0.0, 0.0, 0.0
    e0, e1, e2 = _poly(c, J, n_terms)
    return tau * (log_ratio + e0), ek * tau * e1, ek * tau * e2


@njit(cache=True, nogil=True)
def _evaluate(a, Jp, Jm, counts, s_plus, s_minus, free_len, plus_log, minus_log, plus_c, minus_c,
              plus_n, minus_n, tau, beta, grad, diag, cp, cm):  # fmt: skip
    """Log posterior at (a, J₊, J₋); fills the gradient (M+2,), the diagonal of −∂²L/∂a²
    (M,), and −∂²L/∂a∂J± (M,) each; returns (log posterior, log likelihood, −∂²L/∂J₊²,
    −∂²L/∂J₋²)."""
    M = a.shape[0]
    loglik = Jp * s_plus + Jm * s_minus
    gp = s_plus
    gm = s_minus
    hpp = 0.0
    hmm = 0.0
    for k in range(M):
        ek = np.exp(a[k])
        wp, cp[k], hp = _side(plus_c[k], plus_log[k], Jp, plus_n[k], ek, tau)
        wm, cm[k], hm = _side(minus_c[k], minus_log[k], Jm, minus_n[k], ek, tau)
        gp -= cp[k]
        gm -= cm[k]
        hpp += hp
        hmm += hm
        G = ek * (free_len[k] + wp + wm)
        loglik += counts[k] * a[k] - G
        grad[k] = counts[k] - G
        diag[k] = G
    prior = 0.0
    for k in range(M - 1):
        da = a[k + 1] - a[k]
        prior += da * da
        grad[k] += beta * da
        grad[k + 1] -= beta * da
        diag[k] += beta
        diag[k + 1] += beta
    grad[M] = gp
    grad[M + 1] = gm
    return loglik - 0.5 * beta * prior, loglik, hpp, hmm


@njit(cache=True, nogil=True)
def _tridiag_solve(diag, off, rhs, work):
    """Solve the symmetric tridiagonal system (diagonal ``diag``, constant off-diagonal
    ``off``) for ``rhs`` in O(M) (Thomas algorithm; the matrix is diagonally dominant)."""
    M = diag.shape[0]
    x = np.empty(M)
    work[0] = off / diag[0]
    x[0] = rhs[0] / diag[0]
    for k in range(1, M):
        den = diag[k] - off * work[k - 1]
        work[k] = off / den
        x[k] = (rhs[k] - off * x[k - 1]) / den
    for k in range(M - 2, -1, -1):
        x[k] -= work[k] * x[k + 1]
    return x


@njit(cache=True, nogil=True)
def coupling_se(diag, cp, cm, hpp, hmm, beta, free_plus, free_minus, work):
    """Laplace posterior sd of (J₊, J₋): the square roots of the J diagonal of (−H)⁻¹, −H the
    Hessian of the negative log posterior (``diag``/``cp``/``cm``/``hpp``/``hmm`` as filled by
    :func:`_evaluate` at the MAP).

    −H = [[T, B], [Bᵀ, D_J]] with T tridiagonal (M × M), B = [cp, cm] and D_J diagonal, so
    the J block of (−H)⁻¹ is S⁻¹, S = D_J − Bᵀ T⁻¹ B (2 × 2): two O(M) tridiagonal solves.
    A J that is not free (held at 0, or on a clip bound) is treated as fixed: it gets NaN
    and the other its conditional sd 1/√S_ii.
    """
    se_p = np.nan
    se_m = np.nan
    if not free_plus and not free_minus:
        return se_p, se_m
    Yp = _tridiag_solve(diag, -beta, cp, work)
    Ym = _tridiag_solve(diag, -beta, cm, work)
    s11 = hpp - np.dot(cp, Yp)
    s22 = hmm - np.dot(cm, Ym)
    s12 = -np.dot(cp, Ym)
    if free_plus and free_minus:
        det = s11 * s22 - s12 * s12
        if det > 0.0 and s11 > 0.0 and s22 > 0.0:
            se_p = np.sqrt(s22 / det)
            se_m = np.sqrt(s11 / det)
    elif free_plus:
        if s11 > 0.0:
            se_p = np.sqrt(1.0 / s11)
    elif s22 > 0.0:
        se_m = np.sqrt(1.0 / s22)
    return se_p, se_m


@njit(cache=True, nogil=True)
def fit_pair(counts, s_plus, s_minus, free_len, plus_log, minus_log, plus_c, minus_c, plus_n,
             minus_n, tau, beta, window, fix_plus, fix_minus, j_lo, j_hi, tol, max_iter):  # fmt: skip
    """MAP of (a, J₊, J₋) by Levenberg–Marquardt on the full Newton system.

    −H is tridiagonal in a plus two border columns (a, J±) and a diagonal J block, so each
    step is three O(M) tridiagonal solves and a 2×2 Schur complement. ``fix_plus`` /
    ``fix_minus`` hold that J at 0 (the restricted fits of the likelihood-ratio test).

    Returns
    -------
    a : (M,), J₊, J₋, log posterior, log likelihood, iterations, converged (bool), and the
    Laplace posterior sd of J₊ and J₋ at the MAP (:func:`coupling_se`; NaN for a J held at
    0 or on a clip bound)
    """
    M = counts.shape[0]
    a = np.full(M, np.log(max(counts.sum(), 1.0) / (2.0 * window)))
    Jp = 0.0 if fix_plus else 0.1
    Jm = 0.0 if fix_minus else 0.1
    grad = np.empty(M + 2)
    diag = np.empty(M)
    cp = np.empty(M)
    cm = np.empty(M)
    work = np.empty(M)
    L, LL, hpp, hmm = _evaluate(a, Jp, Jm, counts, s_plus, s_minus, free_len, plus_log,
                                minus_log, plus_c, minus_c, plus_n, minus_n, tau, beta,
                                grad, diag, cp, cm)  # fmt: skip
    lam = 1e-3
    converged = False
    it = 0
    g2 = np.empty(M + 2)
    d2 = np.empty(M)
    cp2 = np.empty(M)
    cm2 = np.empty(M)
    while it < max_iter:
        it += 1
        D = diag + lam
        X = _tridiag_solve(D, -beta, grad[:M], work)
        Yp = _tridiag_solve(D, -beta, cp, work)
        Ym = _tridiag_solve(D, -beta, cm, work)
        # Schur complement of the J block (only the free J's).
        s11 = hpp + lam - np.dot(cp, Yp)
        s22 = hmm + lam - np.dot(cm, Ym)
        s12 = -np.dot(cp, Ym)
        r1 = grad[M] - np.dot(cp, X)
        r2 = grad[M + 1] - np.dot(cm, X)
        dJp = 0.0
        dJm = 0.0
        if not fix_plus and not fix_minus:
            det = s11 * s22 - s12 * s12
            dJp = (s22 * r1 - s12 * r2) / det
            dJm = (s11 * r2 - s12 * r1) / det
        elif not fix_plus:
            dJp = r1 / s11
        elif not fix_minus:
            dJm = r2 / s22
        a_new = X - Yp * dJp - Ym * dJm + a
        Jp_new = min(max(Jp + dJp, j_lo), j_hi) if not fix_plus else 0.0
        Jm_new = min(max(Jm + dJm, j_lo), j_hi) if not fix_minus else 0.0
        L_new, LL_new, hpp2, hmm2 = _evaluate(a_new, Jp_new, Jm_new, counts, s_plus, s_minus,
                                              free_len, plus_log, minus_log, plus_c, minus_c,
                                              plus_n, minus_n, tau, beta, g2, d2, cp2, cm2)  # fmt: skip
        if L_new > L:
            gain = L_new - L
            a, Jp, Jm, L, LL, hpp, hmm = a_new, Jp_new, Jm_new, L_new, LL_new, hpp2, hmm2
            grad[:] = g2
            diag[:] = d2
            cp[:] = cp2
            cm[:] = cm2
            lam = max(lam / 10.0, 1e-12)
            if gain < tol:
                converged = True
                break
        else:
            lam *= 10.0
            if lam > 1e10:  # no step uphill: at the maximum to machine precision
                converged = True
                break
    free_p = not fix_plus and j_lo < Jp < j_hi
    free_m = not fix_minus and j_lo < Jm < j_hi
    se_p, se_m = coupling_se(diag, cp, cm, hpp, hmm, beta, free_p, free_m, work)
    return a, Jp, Jm, L, LL, it, converged, se_p, se_m


@njit(cache=True, nogil=True, parallel=True)
def fit_pairs(counts, s_plus, s_minus, free_len, plus_log, minus_log, plus_c, minus_c, plus_n,
              minus_n, tau, beta, window, fix, j_lo, j_hi, tol, max_iter):  # fmt: skip
    """:func:`fit_pair` for P pairs × D delays in parallel; keeps the delay of the largest
    log posterior per pair.

    Geometry arrays carry the delay first (D, M, ...); ``fix`` (P, 2) bool holds J₊ / J₋ at
    0 per pair (the restricted fits of the LR test).

    Returns
    -------
    best (P,) delay index, a (P, M), J (P, 2), log posterior (P,), log likelihood (P,),
    converged (P,) bool, J_se (P, 2) the Laplace posterior sd of J at the kept delay
    """
    P, M = counts.shape
    D = free_len.shape[0]
    best = np.zeros(P, np.int64)
    a_out = np.empty((P, M))
    J_out = np.empty((P, 2))
    L_out = np.full(P, -np.inf)
    LL_out = np.empty(P)
    conv_out = np.zeros(P, np.bool_)
    se_out = np.full((P, 2), np.nan)
    for p in prange(P):
        for q in range(D):
            a, Jp, Jm, L, LL, it, conv, se_p, se_m = fit_pair(
                counts[p], s_plus[p, q], s_minus[p, q], free_len[q], plus_log[q], minus_log[q],
                plus_c[q], minus_c[q], plus_n[q], minus_n[q], tau, beta, window,
                fix[p, 0], fix[p, 1], j_lo, j_hi, tol, max_iter,
            )  # fmt: skip
            if L > L_out[p]:
                best[p] = q
                a_out[p] = a
                J_out[p, 0] = Jp
                J_out[p, 1] = Jm
                L_out[p] = L
                LL_out[p] = LL
                conv_out[p] = conv
                se_out[p, 0] = se_p
                se_out[p, 1] = se_m
    return best, a_out, J_out, L_out, LL_out, conv_out, se_out
