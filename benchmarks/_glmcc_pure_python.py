"""Pure-Python GLMCC, in the structure of the authors' published code: the speed peer of
``inference.GLMCC`` in ``benchmarks/glmcc.py``.

This is *not* the library estimator, and not a copy of the authors' code (NII-Kobayashi/GLMCC,
``glmcc.py``): it is our own plain transcription of the same equations, laid out the way that
code is laid out, so that its cost stands for what the issue quotes (0.07–0.1 CPU-s per pair
fit for the authors' implementation):

- the cross-correlogram by a Python loop over the spikes of one train with a pointer that
  walks the other, one list append per lag; binning and the kernel sums S± by a Python loop
  over the lags;
- per Levenberg–Marquardt point, Python loops over the M bins for the bin integrals G_k
  (scipy's scalar Ei), the log posterior and the gradient;
- the dense (M+2) × (M+2) Hessian filled entry by entry by a double loop over rows and
  columns (``hessian="dense"``, the authors' layout), or only its nonzeros by one loop over
  the bins (``hessian="banded"``, the cheapest pure-Python assembly, reported beside it);
- a dense matrix inverse per LM iteration (``numpy.linalg.inv``), with Marquardt's damping
  λ·diag(−H), λ from 0.01 and ×/÷ 10, stop when an accepted step gains < 10⁻⁴.

Nothing is repeated that a direct transcription would not do (less, in fact: the S± sums are
taken once, not at every gradient, and the gradient and Hessian are not recomputed after a
rejected step, where the authors' loop does both), and scalar maths uses ``math``, not numpy.

Model and notation as in ``benchmarks/_glmcc_reference.py``: lags t = t_post − t_pre in
(−W, W), M = 2W one-ms bins, rate exp(a_k + J₊f(t) + J₋f(−t)), f(s) = e^{−(s−d)/τ} (s ≥ d),
log posterior Σ n_k a_k + J₊S₊ + J₋S₋ − Σ G_k − (β/2)Σ(a_{k+1} − a_k)². The delay d must be
a whole number of ms (bins do not straddle it), as in the authors' code.

    OMP_NUM_THREADS=1 python benchmarks/_glmcc_pure_python.py
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
from scipy.special import expi

J_MIN, J_MAX = -3.0, 5.0
SMALL_J = 1e-3  # below: the integrals by their power series (the closed forms cancel)
EDGE_TOL_MS = 1e-7  # a lag this close to a bin edge is on it (times are given to 0.01 ms)


def cross_correlogram(pre_ms, post_ms, window_ms=50.0):
    """Lags t_post − t_pre in (−W, W) (list, ms), by a loop over the post spikes with a
    pointer into the sorted pre train."""
    pre = sorted(float(x) for x in pre_ms)
    post = sorted(float(x) for x in post_ms)
    lags = []
    lo = 0
    n_pre = len(pre)
    for t in post:
        while lo < n_pre and pre[lo] <= t - window_ms:
            lo += 1
        j = lo
        while j < n_pre and pre[j] < t + window_ms:
            lags.append(t - pre[j])
            j += 1
    return lags


def bin_lags(lags, delay_ms, tau_ms=4.0, window_ms=50.0):
    """Counts per 1-ms bin (list of M; a lag on an interior edge adds 0.5 to both sides)
    and the kernel sums S₊ = Σ_{t>d} f(t), S₋ = Σ_{t<−d} f(−t)."""
    M = int(round(2 * window_ms))
    n = [0.0] * M
    s_plus = 0.0
    s_minus = 0.0
    for t in lags:
        x = t + window_ms
        r = math.floor(x + 0.5)
        if abs(x - r) < EDGE_TOL_MS and 0 < r < M:
            n[r - 1] += 0.5
            n[r] += 0.5
        else:
            n[min(max(int(math.floor(x)), 0), M - 1)] += 1.0
        if t > delay_ms:
            s_plus += math.exp(-(t - delay_ms) / tau_ms)
        elif t < -delay_ms:
            s_minus += math.exp((t + delay_ms) / tau_ms)
    return n, s_plus, s_minus


def _piece(J, u1, u2):
    """E_m = ∫_{u2}^{u1} u^{m−1} e^{Ju} du for m = 0, 1, 2 (u1 > u2 > 0): with u = f(t),
    the integral of the rate over the coupled part of a bin and its two J-derivatives are
    τe^a E_0, τe^a E_1, τe^a E_2."""
    if abs(J) >= SMALL_J:
        e1, e2 = math.exp(J * u1), math.exp(J * u2)
        E0 = expi(J * u1) - expi(J * u2)
        E1 = (e1 - e2) / J
        E2 = e1 * (u1 / J - 1.0 / (J * J)) - e2 * (u2 / J - 1.0 / (J * J))
        return E0, E1, E2
    # e^{Ju} = Σ_j (Ju)^j / j!, integrated term by term; |J| < 10⁻³: 6 terms are exact.
    E0 = math.log(u1 / u2)
    E1 = 0.0
    E2 = 0.0
    c = 1.0
    for j in range(6):
        if j > 0:
            c *= J / j
            E0 += c * (u1**j - u2**j) / j
        E1 += c * (u1 ** (j + 1) - u2 ** (j + 1)) / (j + 1)
        E2 += c * (u1 ** (j + 2) - u2 ** (j + 2)) / (j + 2)
    return E0, E1, E2


class Model:
    """One pair's correlogram and the per-bin geometry of the coupled parts."""

    def __init__(self, lags, delay_ms, tau_ms=4.0, beta=4000.0, window_ms=50.0):
        if not float(delay_ms).is_integer():
            raise ValueError("the delay must be a whole number of ms")
        self.M = int(round(2 * window_ms))
        self.tau, self.beta = float(tau_ms), float(beta)
        self.n, self.s_plus, self.s_minus = bin_lags(lags, delay_ms, tau_ms, window_ms)
        self.n_lags = len(lags)
        # side[k]: 0 free, +1 J₊ acts on the whole bin (left edge ≥ d), −1 J₋ (right edge
        # ≤ −d); (u1, u2) the kernel at the bin's two ends, u1 > u2.
        self.side, self.u1, self.u2 = [], [], []
        for k in range(self.M):
            lo = -window_ms + k
            hi = lo + 1.0
            if lo >= delay_ms:
                self.side.append(1)
                self.u1.append(math.exp(-(lo - delay_ms) / tau_ms))
                self.u2.append(math.exp(-(hi - delay_ms) / tau_ms))
            elif hi <= -delay_ms:
                self.side.append(-1)
                self.u1.append(math.exp((hi + delay_ms) / tau_ms))
                self.u2.append(math.exp((lo + delay_ms) / tau_ms))
            else:
                self.side.append(0)
                self.u1.append(0.0)
                self.u2.append(0.0)

    def bins(self, par):
        """Per bin: G_k = ∫ rate, ∂G_k/∂J (of the J acting there) and ∂²G_k/∂J² (lists)."""
        M, tau = self.M, self.tau
        Jp, Jm = par[M], par[M + 1]
        G, dG, d2G = [0.0] * M, [0.0] * M, [0.0] * M
        for k in range(M):
            ea = math.exp(par[k])
            s = self.side[k]
            if s == 0:
                G[k] = ea
            else:
                E0, E1, E2 = _piece(Jp if s > 0 else Jm, self.u1[k], self.u2[k])
                G[k] = tau * ea * E0
                dG[k] = tau * ea * E1
                d2G[k] = tau * ea * E2
        return G, dG, d2G

    def log_posterior(self, par, G):
        M = self.M
        lp = par[M] * self.s_plus + par[M + 1] * self.s_minus
        for k in range(M):
            lp += self.n[k] * par[k] - G[k]
        prior = 0.0
        for k in range(M - 1):
            prior += (par[k + 1] - par[k]) ** 2
        return lp - 0.5 * self.beta * prior

    def gradient(self, par, G, dG):
        M, beta = self.M, self.beta
        g = [0.0] * (M + 2)
        gp, gm = self.s_plus, self.s_minus
        for k in range(M):
            g[k] = self.n[k] - G[k]
            if k > 0:
                g[k] -= beta * (par[k] - par[k - 1])
            if k < M - 1:
                g[k] += beta * (par[k + 1] - par[k])
            if self.side[k] > 0:
                gp -= dG[k]
            elif self.side[k] < 0:
                gm -= dG[k]
        g[M], g[M + 1] = gp, gm
        return g

    def neg_hessian_dense(self, G, dG, d2G):
        """−∂²L, every entry of the (M+2) × (M+2) matrix by its formula (rows and columns
        looped, zeros included), as the authors' code fills its Hessian."""
        M, beta, side = self.M, self.beta, self.side
        hpp = 0.0
        hmm = 0.0
        for k in range(M):
            if side[k] > 0:
                hpp += d2G[k]
            elif side[k] < 0:
                hmm += d2G[k]
        A = []
        for i in range(M + 2):
            row = []
            for j in range(M + 2):
                if i < M and j < M:
                    if i == j:
                        v = G[i] + beta * ((i > 0) + (i < M - 1))
                    elif i - j == 1 or j - i == 1:
                        v = -beta
                    else:
                        v = 0.0
                elif i < M:  # border column j = M (J₊) or M + 1 (J₋)
                    v = dG[i] if side[i] == (1 if j == M else -1) else 0.0
                elif j < M:
                    v = dG[j] if side[j] == (1 if i == M else -1) else 0.0
                elif i == j:
                    v = hpp if i == M else hmm
                else:
                    v = 0.0
                row.append(v)
            A.append(row)
        return np.array(A)

    def neg_hessian_banded(self, G, dG, d2G):
        """The same matrix, only its nonzeros set, by one loop over the bins."""
        M, beta = self.M, self.beta
        A = np.zeros((M + 2, M + 2))
        for k in range(M):
            A[k, k] = G[k] + beta * ((k > 0) + (k < M - 1))
            if k < M - 1:
                A[k, k + 1] = A[k + 1, k] = -beta
            s = self.side[k]
            if s != 0:
                c = M if s > 0 else M + 1
                A[k, c] = A[c, k] = dG[k]
                A[c, c] += d2G[k]
        return A


def fit_pair(lags, delay_ms, tau_ms=4.0, beta=4000.0, window_ms=50.0, hessian="dense",
             tol=1e-4, max_iter=1000):  # fmt: skip
    """MAP of (a, J₊, J₋) by Levenberg–Marquardt with a dense inverse per iteration.

    Returns dict: ``J_plus``, ``J_minus``, ``a`` (list of M), ``log_posterior``, ``n_iter``.
    """
    model = Model(lags, delay_ms, tau_ms, beta, window_ms)
    M = model.M
    neg_hessian = model.neg_hessian_dense if hessian == "dense" else model.neg_hessian_banded
    par = [math.log(max(model.n_lags, 1) / (2.0 * window_ms))] * M + [0.1, 0.1]
    G, dG, d2G = model.bins(par)
    lp = model.log_posterior(par, G)
    lam = 0.01
    n_iter = 0
    fresh = True
    while n_iter < max_iter:
        n_iter += 1
        if fresh:  # gradient and Hessian only where the point moved
            g = model.gradient(par, G, dG)
            A = neg_hessian(G, dG, d2G)
            D = np.diag(np.diag(A))
        step = np.linalg.inv(A + lam * D) @ np.array(g)
        new = [par[i] + step[i] for i in range(M + 2)]
        for i in (M, M + 1):
            new[i] = min(max(new[i], J_MIN), J_MAX)
        G2, dG2, d2G2 = model.bins(new)
        lp2 = model.log_posterior(new, G2)
        if lp2 > lp:
            gain = lp2 - lp
            par, lp, G, dG, d2G = new, lp2, G2, dG2, d2G2
            lam *= 0.1
            fresh = True
            if gain < tol:
                break
        else:
            lam *= 10.0
            fresh = False
            if lam > 1e12:
                break
    return {"J_plus": par[M], "J_minus": par[M + 1], "a": par[:M], "log_posterior": lp,
            "n_iter": n_iter}  # fmt: skip


def main() -> int:
    from _glmcc_reference import README_FIT, load_cells

    cells = load_cells()
    lags = cross_correlogram(cells[9], cells[4])
    print(f"cell9 -> cell4: {len(lags)} lags")
    ok = True
    for d, (jp, jm, lp) in README_FIT.items():
        fit = fit_pair(lags, float(d))
        print(f"d={d} J+ {fit['J_plus']:.4f} ({jp}) J- {fit['J_minus']:.4f} ({jm}) "
              f"log posterior {fit['log_posterior']:.3f} ({lp}) {fit['n_iter']} iterations")  # fmt: skip
        ok &= abs(fit["J_plus"] - jp) <= 2e-3 and abs(fit["J_minus"] - jm) <= 2e-3
        ok &= abs(fit["log_posterior"] - lp) <= 0.05
    pairs = [(i, j) for i in range(len(cells)) for j in range(i + 1, len(cells))]
    for mode in ("dense", "banded"):
        t0 = time.process_time()
        for i, j in pairs:
            fit_pair(cross_correlogram(cells[i], cells[j]), 3.0, hessian=mode)
        cpu = time.process_time() - t0
        print(
            f"{len(pairs)} pairs at d=3, Hessian {mode}: {cpu:.1f} CPU-s, "
            f"{1e3 * cpu / len(pairs):.1f} ms per fit (correlogram included)"
        )
    print("match:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
