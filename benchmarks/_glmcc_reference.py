"""Plain reference implementation of GLMCC, used by the benchmarks.

This module is *not* the library estimator.  It is a deliberately straightforward,
readable numpy/scipy implementation of the GLMCC connectivity fit of Kobayashi et al.,
"Reconstructing neuronal circuitry from parallel spike trains", Nat Commun 10:4468
(2019), written from the method's description.  The benchmarks use it for two things:

1. as the timing peer of the optimised estimator (it solves the full dense Newton
   system at every Levenberg-Marquardt iteration), and
2. as a second, independent implementation to check the optimised estimator against.

Model
-----
Lags ``t = t_post - t_pre`` (ms) within ``(-W, W)`` are histogrammed into ``M = 2W/Δ``
bins of width ``Δ = 1`` ms; bin ``k`` covers ``[-W + kΔ, -W + (k + 1)Δ)``.  The
cross-correlogram rate (lags per ms) is

    c(t) = exp(a(t) + J₊ f(t) + J₋ f(-t)),   f(s) = exp(-(s - d)/τ) for s ≥ d, else 0,

with ``a(t) = a_k`` constant on bin ``k``, synaptic time constant ``τ`` and delay ``d``.
The log posterior, without constant terms, is

    Σ_k n_k a_k + J₊ Σ_{t > d} f(t) + J₋ Σ_{t < -d} f(-t) - Σ_k G_k
        - (β / 2Δ) Σ_k (a_{k+1} - a_k)²,

where ``n_k`` is the lag count of bin ``k`` and ``G_k = ∫_{bin k} c(t) dt`` is evaluated in
closed form with the exponential integral ``Ei``.  The MAP estimate is found by
Levenberg-Marquardt on the full Newton system with the analytic gradient and a dense
``(M + 2) × (M + 2)`` Hessian.

Parameter vector ``theta`` (length ``M + 2``): ``theta[:M] = a`` (log of the rate in lags
per ms), ``theta[M] = J₊`` (pre → post), ``theta[M + 1] = J₋`` (post → pre).

Running the module (``OMP_NUM_THREADS=1 python benchmarks/_glmcc_reference.py``) fits
the published reference pair of the GLMCC sample data at d = 1..4 ms, compares with the
authors' values, and times all 190 unordered pairs of the 20 cells at d = 3 ms.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expi

DATA_DIR = Path("/work/shared/data/glmcc_nii")
T_MAX_MS = 5_400_000.0  # the authors' scripts keep 0 <= t < 5400 s
BIN_MS = 1.0  # Δ, bin width (ms)
J_MIN, J_MAX = -3.0, 5.0  # box on the couplings
Z_ALPHA = 3.29  # two-sided α ≈ 10⁻³
WALD_FACTOR = 1.57  # the paper's correction factor of the Wald threshold
WALD_CONSTANT = WALD_FACTOR * Z_ALPHA  # 5.1653
# The authors' published run writes the same constant as 1.277·√16.3 = 5.1557 (0.19 % lower);
# with it the thresholds of the data README are reproduced to the last digit.
WALD_CONSTANT_AUTHORS = 1.277 * math.sqrt(16.3)

# |J| below which the integrals are evaluated by their power series in J (see _moments).
_SERIES_J = 0.5
_SERIES_TERMS = 24


# ---------------------------------------------------------------------------
# Cross-correlogram
# ---------------------------------------------------------------------------


def cross_correlogram(pre_ms, post_ms, window_ms: float = 50.0) -> np.ndarray:
    """All lags ``t_post - t_pre`` strictly inside ``(-window_ms, window_ms)``.

    Parameters
    ----------
    pre_ms, post_ms : array_like, shape (n_pre,), (n_post,)
        Spike times in ms of the reference (presynaptic candidate) and target cells.
        They need not be sorted.
    window_ms : float
        Half-width W of the lag window (ms).

    Returns
    -------
    lags : ndarray, shape (n_lags,)
        Sorted lags in ms.
    """
    pre = np.sort(np.asarray(pre_ms, dtype=float))
    post = np.sort(np.asarray(post_ms, dtype=float))
    lo = np.searchsorted(post, pre - window_ms, side="right")
    hi = np.searchsorted(post, pre + window_ms, side="left")
    counts = hi - lo
    # Gather post[lo_i : hi_i] - pre_i for every pre spike i without a Python loop.
    owner = np.repeat(np.arange(pre.size), counts)
    start = np.repeat(lo - np.cumsum(counts) + counts, counts)
    idx = start + np.arange(owner.size)
    lags = post[idx] - pre[owner]
    lags = lags[(lags > -window_ms) & (lags < window_ms)]  # guard against rounding
    return np.sort(lags)


def cross_correlogram_loop(pre_ms, post_ms, window_ms: float = 50.0) -> np.ndarray:
    """:func:`cross_correlogram` written as the plain Python loop over spikes that the
    authors' code uses (one pointer sweep, one list append per lag); same result."""
    pre = sorted(float(x) for x in pre_ms)
    post = sorted(float(x) for x in post_ms)
    lags = []
    lo = 0
    for t0 in pre:
        while lo < len(post) and post[lo] <= t0 - window_ms:
            lo += 1
        j = lo
        while j < len(post) and post[j] < t0 + window_ms:
            lags.append(post[j] - t0)
            j += 1
    return np.sort(np.array(lags))


def bin_counts(lags_ms, window_ms: float = 50.0, bin_ms: float = BIN_MS) -> np.ndarray:
    """Lag counts per bin, shape (M,), M = 2W/Δ.

    Bin ``k`` covers ``[-W + kΔ, -W + (k + 1)Δ)``.  A lag exactly on an interior bin edge
    adds 0.5 to each of the two bins sharing that edge; lags at exactly ±W are outside.
    """
    m = int(round(2 * window_ms / bin_ms))
    x = (np.asarray(lags_ms, dtype=float) + window_ms) / bin_ms
    x = x[(x > 0) & (x < m)]
    k = np.floor(x).astype(int)
    on_edge = x == k
    n = np.bincount(k[~on_edge], minlength=m).astype(float)
    ke = k[on_edge]
    n += 0.5 * np.bincount(ke, minlength=m)
    n += 0.5 * np.bincount(ke - 1, minlength=m)
    return n


# ---------------------------------------------------------------------------
# Geometry: the bins cut into pieces at ±d
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """Everything about a fit that does not depend on the parameters.

    Attributes
    ----------
    n : ndarray, shape (M,)
        Lag counts per bin.
    s_plus, s_minus : float
        ``Σ_{t > d} f(t)`` and ``Σ_{t < -d} f(-t)`` over the lags (dimensionless).
    free_len : ndarray, shape (M,)
        Length (ms) of the part of each bin where neither coupling acts.
    kin_bin, kin_side : ndarray, shape (P,)
        For each coupled piece: its bin index and which coupling acts
        (0 → J₊ on t ≥ d, 1 → J₋ on t ≤ -d).
    u_hi, u_lo : ndarray, shape (P,)
        ``f`` at the two ends of each coupled piece, ``1 ≥ u_hi > u_lo > 0``.
    tau, beta, bin_ms : float
        τ (ms), β, Δ (ms).
    """

    n: np.ndarray
    s_plus: float
    s_minus: float
    free_len: np.ndarray
    kin_bin: np.ndarray
    kin_side: np.ndarray
    u_hi: np.ndarray
    u_lo: np.ndarray
    tau: float
    beta: float
    bin_ms: float

    @property
    def m(self) -> int:
        """Number of bins M."""
        return self.n.size


def make_design(
    lags_ms,
    delay_ms: float,
    tau_ms: float = 4.0,
    beta: float = 4000.0,
    window_ms: float = 50.0,
    bin_ms: float = BIN_MS,
) -> Design:
    """Bin the lags and cut every bin into the pieces on which the rate has one form.

    A bin straddling ``+d`` (or ``-d``) is split there: the part with ``t ≥ d`` carries
    J₊ (the part with ``t ≤ -d`` carries J₋), the rest only ``a_k``.
    """
    lags = np.asarray(lags_ms, dtype=float)
    n = bin_counts(lags, window_ms, bin_ms)
    m = n.size
    d, tau = float(delay_ms), float(tau_ms)
    s_plus = float(np.exp(-(lags[lags > d] - d) / tau).sum())
    s_minus = float(np.exp(-(-lags[lags < -d] - d) / tau).sum())

    lo = -window_ms + bin_ms * np.arange(m)
    hi = lo + bin_ms
    # Positive side: [max(lo, d), hi) where hi > d.  In s = t: f = exp(-(s - d)/τ).
    p_lo = np.maximum(lo, d)
    plus = hi > d
    plus_len = np.where(plus, hi - p_lo, 0.0)
    # Negative side: [lo, min(hi, -d)) where lo < -d.  In s = -t, s runs over
    # (max(-hi, d), -lo], so f runs from exp(-(max(-hi, d) - d)/τ) down to exp(-(-lo - d)/τ).
    n_hi = np.minimum(hi, -d)
    minus = lo < -d
    minus_len = np.where(minus, n_hi - lo, 0.0)
    free_len = (hi - lo) - plus_len - minus_len

    kp = np.flatnonzero(plus)
    km = np.flatnonzero(minus)
    u_hi = np.concatenate([np.exp(-(p_lo[kp] - d) / tau), np.exp(-(-n_hi[km] - d) / tau)])
    u_lo = np.concatenate([np.exp(-(hi[kp] - d) / tau), np.exp(-(-lo[km] - d) / tau)])
    return Design(
        n=n,
        s_plus=s_plus,
        s_minus=s_minus,
        free_len=free_len,
        kin_bin=np.concatenate([kp, km]),
        kin_side=np.concatenate([np.zeros(kp.size, int), np.ones(km.size, int)]),
        u_hi=u_hi,
        u_lo=u_lo,
        tau=tau,
        beta=float(beta),
        bin_ms=float(bin_ms),
    )


# ---------------------------------------------------------------------------
# The integrals over a coupled piece
# ---------------------------------------------------------------------------


def _moments(J: np.ndarray, u_hi: np.ndarray, u_lo: np.ndarray) -> tuple[np.ndarray, ...]:
    """``E_m = ∫_{u_lo}^{u_hi} u^(m-1) e^(J u) du`` for m = 0, 1, 2, elementwise.

    With ``u = f(t) = exp(-(t - d)/τ)``, ``dt = -τ du/u``, the integral of the rate over a
    coupled piece and its first two J-derivatives are ``τ e^a E_0``, ``τ e^a E_1`` and
    ``τ e^a E_2``.  Closed forms:

        E_0 = Ei(J u_hi) - Ei(J u_lo)
        E_1 = (e^(J u_hi) - e^(J u_lo)) / J
        E_2 = [e^(J u) (u/J - 1/J²)] from u_lo to u_hi

    all of which cancel catastrophically (or divide by zero) as J → 0.  For
    ``|J| < _SERIES_J`` the power series ``e^(J u) = Σ_j (J u)^j / j!`` is integrated term
    by term instead:

        E_m = Σ_j J^j / j! · (u_hi^(j+m) - u_lo^(j+m)) / (j + m),

    with the j = m = 0 term read as ``log(u_hi / u_lo)``.  Since ``0 < u ≤ 1`` the terms fall
    like ``|J|^j / j!``; 24 terms are exact to double precision for ``|J| < 0.5``.
    """
    J = np.asarray(J, dtype=float)
    small = np.abs(J) < _SERIES_J
    e0 = np.empty_like(J)
    e1 = np.empty_like(J)
    e2 = np.empty_like(J)

    if np.any(small):
        js, uh, ul = J[small], u_hi[small], u_lo[small]
        s0 = np.log(uh / ul)
        s1 = np.zeros_like(js)
        s2 = np.zeros_like(js)
        coef = np.ones_like(js)  # J^j / j!
        for j in range(_SERIES_TERMS):
            if j > 0:
                coef = coef * js / j
                s0 += coef * (uh**j - ul**j) / j
            s1 += coef * (uh ** (j + 1) - ul ** (j + 1)) / (j + 1)
            s2 += coef * (uh ** (j + 2) - ul ** (j + 2)) / (j + 2)
        e0[small], e1[small], e2[small] = s0, s1, s2

    big = ~small
    if np.any(big):
        jb, uh, ul = J[big], u_hi[big], u_lo[big]
        eh, el = np.exp(jb * uh), np.exp(jb * ul)
        e0[big] = expi(jb * uh) - expi(jb * ul)
        e1[big] = (eh - el) / jb
        e2[big] = (eh * (uh / jb - 1 / jb**2)) - (el * (ul / jb - 1 / jb**2))
    return e0, e1, e2


def _bin_integrals(theta: np.ndarray, design: Design):
    """Integrals of the rate per bin and their derivatives.

    Returns
    -------
    G : ndarray, shape (M,)
        ``G_k = ∫_{bin k} c(t) dt`` (expected lag count in bin k).
    dG : ndarray, shape (2, M)
        ``∂G_k/∂J₊`` and ``∂G_k/∂J₋`` (= ``∫ f c dt`` over the coupled part of bin k).
    d2G : ndarray, shape (2, M)
        ``∂²G_k/∂J₊²`` and ``∂²G_k/∂J₋²`` (= ``∫ f² c dt``).
    """
    m = design.m
    a = theta[:m]
    ea = np.exp(a)
    J = theta[m : m + 2][design.kin_side]
    e0, e1, e2 = _moments(J, design.u_hi, design.u_lo)
    scale = design.tau * ea[design.kin_bin]
    G = ea * design.free_len
    G += np.bincount(design.kin_bin, scale * e0, minlength=m)
    dG = np.zeros((2, m))
    d2G = np.zeros((2, m))
    np.add.at(dG, (design.kin_side, design.kin_bin), scale * e1)
    np.add.at(d2G, (design.kin_side, design.kin_bin), scale * e2)
    return G, dG, d2G


# ---------------------------------------------------------------------------
# Log posterior, gradient, Hessian
# ---------------------------------------------------------------------------


def log_posterior(theta: np.ndarray, design: Design) -> float:
    """Log posterior (no constant terms) at ``theta``, shape (M + 2,)."""
    m = design.m
    a, jp, jm = theta[:m], theta[m], theta[m + 1]
    G, _, _ = _bin_integrals(theta, design)
    prior = design.beta / (2 * design.bin_ms) * np.sum(np.diff(a) ** 2)
    return float(design.n @ a + jp * design.s_plus + jm * design.s_minus - G.sum() - prior)


def _prior_matrix(m: int, beta: float, bin_ms: float) -> np.ndarray:
    """``(β/Δ) DᵀD`` with D the (M-1) × M first-difference matrix; shape (M, M)."""
    D = np.diff(np.eye(m), axis=0)
    return beta / bin_ms * (D.T @ D)


def gradient(theta: np.ndarray, design: Design) -> np.ndarray:
    """Gradient of :func:`log_posterior`, shape (M + 2,).

    ``∂/∂a_k = n_k - G_k - (β/Δ)(DᵀD a)_k``;  ``∂/∂J± = S± - Σ_k ∂G_k/∂J±``.
    """
    m = design.m
    a = theta[:m]
    G, dG, _ = _bin_integrals(theta, design)
    g = np.empty(m + 2)
    da = np.diff(a)
    prior = np.zeros(m)
    prior[:-1] -= da
    prior[1:] += da
    g[:m] = design.n - G - design.beta / design.bin_ms * prior
    g[m] = design.s_plus - dG[0].sum()
    g[m + 1] = design.s_minus - dG[1].sum()
    return g


def hessian(theta: np.ndarray, design: Design) -> np.ndarray:
    """Dense Hessian of :func:`log_posterior`, shape (M + 2, M + 2).

    ``∂²/∂a_k∂a_l = -G_k δ_kl - (β/Δ)(DᵀD)_kl``;  ``∂²/∂a_k∂J± = -∂G_k/∂J±``;
    ``∂²/∂J±² = -Σ_k ∂²G_k/∂J±²``;  ``∂²/∂J₊∂J₋ = 0`` (the couplings act on disjoint lags).
    """
    m = design.m
    G, dG, d2G = _bin_integrals(theta, design)
    H = np.zeros((m + 2, m + 2))
    H[:m, :m] = -np.diag(G) - _prior_matrix(m, design.beta, design.bin_ms)
    H[:m, m] = H[m, :m] = -dG[0]
    H[:m, m + 1] = H[m + 1, :m] = -dG[1]
    H[m, m] = -d2G[0].sum()
    H[m + 1, m + 1] = -d2G[1].sum()
    return H


# ---------------------------------------------------------------------------
# Fit
# ---------------------------------------------------------------------------


def wald_thresholds(
    a: np.ndarray,
    delay_ms: float,
    tau_ms: float = 4.0,
    window_ms: float = 50.0,
    bin_ms: float = BIN_MS,
    constant: float = WALD_CONSTANT,
) -> tuple[float, float]:
    """Wald-type significance thresholds ``constant / sqrt(τ c̄)`` for (|J₊|, |J₋|).

    Parameters
    ----------
    a : ndarray, shape (M,)
        Fitted log rates (log of lags per ms).
    delay_ms, tau_ms, window_ms, bin_ms : float
        d, τ, W and Δ (ms).
    constant : float
        ``1.57 z_α`` with ``z_α = 3.29`` by default; :data:`WALD_CONSTANT_AUTHORS`
        reproduces the thresholds of the authors' published run.

    ``c̄`` is the mean of ``exp(a_k)`` (lags per ms) over the ``τ/Δ`` bins right after the
    delay on each side: ``[d, d + τ)`` for J₊ and ``(-d - τ, -d]`` for J₋.
    """
    width = int(round(tau_ms / bin_ms))
    k_plus = int(round((window_ms + delay_ms) / bin_ms))  # first bin of [d, ...)
    k_minus = int(round((window_ms - delay_ms) / bin_ms))  # first bin after -d
    c_plus = np.exp(a[k_plus : k_plus + width]).mean()
    c_minus = np.exp(a[k_minus - width : k_minus]).mean()
    thr = constant / np.sqrt(tau_ms * np.array([c_plus, c_minus]))
    return float(thr[0]), float(thr[1])


def fit_pair(
    lags_ms,
    delay_ms: float,
    tau_ms: float = 4.0,
    beta: float = 4000.0,
    window_ms: float = 50.0,
    *,
    tol: float = 1e-4,
    max_iter: int = 1000,
) -> dict:
    """MAP fit of GLMCC to one cross-correlogram by Levenberg-Marquardt.

    Parameters
    ----------
    lags_ms : array_like, shape (n_lags,)
        Lags ``t_post - t_pre`` in ms (from :func:`cross_correlogram`).
    delay_ms, tau_ms : float
        Synaptic delay d and time constant τ (ms).
    beta : float
        Smoothness prior strength β (the prior is ``(β/2Δ) Σ (a_{k+1} - a_k)²``).
    window_ms : float
        Half-width W of the lag window (ms); M = 2W bins of 1 ms.
    tol : float
        Stop when an accepted step raises the log posterior by less than this.
    max_iter : int
        Cap on LM iterations (accepted + rejected).

    Returns
    -------
    dict with keys
        ``J_plus``, ``J_minus`` (pre → post and post → pre couplings, dimensionless),
        ``a`` (shape (M,), log rate in lags per ms), ``log_posterior``, ``n_iter``,
        ``threshold_plus``, ``threshold_minus`` (Wald thresholds for |J₊|, |J₋|).
    """
    design = make_design(lags_ms, delay_ms, tau_ms, beta, window_ms)
    m = design.m
    # Start: e^{a_k} Δ equals the bin count (at least one lag); small positive couplings.
    theta = np.concatenate([np.log(np.maximum(design.n, 1.0) / design.bin_ms), [0.1, 0.1]])
    lp = log_posterior(theta, design)
    lam = 1e-3
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        g = gradient(theta, design)
        A = -hessian(theta, design)  # positive definite at and near the MAP
        step = np.linalg.solve(A + lam * np.eye(m + 2), g)
        trial = theta + step
        trial[m:] = np.clip(trial[m:], J_MIN, J_MAX)
        lp_trial = log_posterior(trial, design)
        if lp_trial > lp:
            gain = lp_trial - lp
            theta, lp = trial, lp_trial
            lam /= 10.0
            if gain < tol:
                break
        else:
            lam *= 10.0
            if lam > 1e12:  # no ascent direction left: at the optimum to rounding
                break
    thr_plus, thr_minus = wald_thresholds(theta[:m], delay_ms, tau_ms, window_ms)
    return {
        "J_plus": float(theta[m]),
        "J_minus": float(theta[m + 1]),
        "a": theta[:m].copy(),
        "log_posterior": lp,
        "n_iter": n_iter,
        "threshold_plus": thr_plus,
        "threshold_minus": thr_minus,
    }


# ---------------------------------------------------------------------------
# Script: check against the authors' fit, then time all pairs
# ---------------------------------------------------------------------------

# The authors' fit of cell9 (pre) → cell4 (post), from the data README.
README_FIT = {
    1: (1.2560, 0.2854, 5571.323),
    2: (1.5821, 0.4527, 5611.210),
    3: (1.5186, 0.2031, 5606.203),
    4: (1.3104, 0.0011, 5582.900),
}
README_THRESHOLDS_D3 = (0.5070, 0.5221)


def load_cells(data_dir: Path = DATA_DIR, n_cells: int = 20) -> list[np.ndarray]:
    """Spike times (ms) of ``cell0.txt`` … in ``[0, T_MAX_MS)``, one array per cell."""
    cells = []
    for i in range(n_cells):
        t = np.loadtxt(data_dir / f"cell{i}.txt")
        cells.append(t[(t >= 0) & (t < T_MAX_MS)])
    return cells


def main() -> int:
    cells = load_cells()
    lags = cross_correlogram(cells[9], cells[4])
    print(f"reference pair cell9 -> cell4: {lags.size} lags")
    print(
        f"{'d':>2} {'J+':>8} {'README':>8} {'J-':>8} {'README':>8} "
        f"{'logpost':>10} {'README':>10} {'iter':>5}"
    )
    ok = True
    fit3 = None
    for d, (jp_ref, jm_ref, lp_ref) in README_FIT.items():
        fit = fit_pair(lags, d)
        if d == 3:
            fit3 = fit
        print(
            f"{d:>2} {fit['J_plus']:8.4f} {jp_ref:8.4f} {fit['J_minus']:8.4f} {jm_ref:8.4f} "
            f"{fit['log_posterior']:10.3f} {lp_ref:10.3f} {fit['n_iter']:5d}"
        )
        ok &= abs(fit["J_plus"] - jp_ref) <= 2e-3 and abs(fit["J_minus"] - jm_ref) <= 2e-3
        ok &= abs(fit["log_posterior"] - lp_ref) <= 0.05
    print(
        f"d=3 Wald thresholds (1.57*3.29): 9->4 {fit3['threshold_plus']:.4f}, "
        f"4->9 {fit3['threshold_minus']:.4f}"
    )
    alt = wald_thresholds(fit3["a"], 3.0, constant=WALD_CONSTANT_AUTHORS)
    print(
        f"d=3 Wald thresholds (1.277*sqrt(16.3)): 9->4 {alt[0]:.4f} "
        f"(README {README_THRESHOLDS_D3[0]:.4f}), 4->9 {alt[1]:.4f} "
        f"(README {README_THRESHOLDS_D3[1]:.4f})"
    )
    print("match:", "yes" if ok else "NO")

    n = len(cells)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    iters = []
    t0 = time.process_time()
    for i, j in pairs:
        fit = fit_pair(cross_correlogram(cells[i], cells[j]), 3.0)
        iters.append(fit["n_iter"])
    cpu = time.process_time() - t0
    print(
        f"{len(pairs)} pairs at d=3: {cpu:.2f} CPU-s total, "
        f"{1e3 * cpu / len(pairs):.2f} CPU-ms per pair fit (cross-correlogram included), "
        f"mean {np.mean(iters):.1f} LM iterations"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
