"""GLMCC's J_se: the Laplace posterior sd of the couplings, against the dense inverse of a
finite-difference Hessian, and calibrated on correlograms drawn from the model itself."""

from pathlib import Path

import numpy as np
import pytest

from inference import GLMCC
from inference import _glmcc_kernels as K
from observations import SpikeTrains

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "glmcc_nii"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="shared/data/glmcc_nii not present")
W, TAU, BETA = 50.0, 4.0, 4000.0
SOLVER = (-3.0, 5.0, 1e-4, 1000)


def _log_posterior(theta, args):
    M = theta.size - 2
    work = [np.empty(M + 2), np.empty(M), np.empty(M), np.empty(M)]
    return K._evaluate(theta[:M].copy(), theta[M], theta[M + 1], *args, *work)[0]


def _fd_hessian(theta, args, h=2e-4):
    """Hessian of the log posterior, dense: every entry by central second differences of
    the log posterior, zeros included."""
    n = theta.size
    L0 = _log_posterior(theta, args)
    H = np.empty((n, n))
    E = np.eye(n) * h
    for i in range(n):
        H[i, i] = (_log_posterior(theta + E[i], args) - 2 * L0
                   + _log_posterior(theta - E[i], args)) / h**2  # fmt: skip
        for j in range(i):
            H[i, j] = H[j, i] = (
                _log_posterior(theta + E[i] + E[j], args) - _log_posterior(theta + E[i] - E[j], args)
                - _log_posterior(theta - E[i] + E[j], args) + _log_posterior(theta - E[i] - E[j], args)
            ) / (4 * h * h)  # fmt: skip
    return H


def _fd_se(theta, args):
    """√diag of the J block of the dense inverse of −(finite-difference Hessian)."""
    return np.sqrt(np.diag(np.linalg.inv(-_fd_hessian(theta, args)))[-2:])


def test_se_equals_inverse_of_finite_difference_hessian(rng):
    """Kernel level, off the integer grid (d = 2.5 ms, |t| < 1 ms excluded)."""
    t = np.arange(100) - 49.5
    mean = 25 * np.exp(0.3 * np.cos(2 * np.pi * t / 120))
    mean[(t > 2.5) & (t < 8)] *= 1.8  # an excitatory bump after the delay
    counts = rng.poisson(mean).astype(float)
    geo = K.bin_geometry(W, 2.5, TAU, 1.0)
    sp = float(np.sum(counts[t > 3] * np.exp(-(t[t > 3] - 2.5) / TAU)))
    sm = float(np.sum(counts[t < -3] * np.exp((t[t < -3] + 2.5) / TAU)))
    a, Jp, Jm, L, LL, it, ok, se_p, se_m = K.fit_pair(counts, sp, sm, *geo, TAU, BETA, W,
                                                      False, False, *SOLVER)  # fmt: skip
    assert ok and -3 < Jm < 0.1 < Jp < 5
    theta = np.concatenate([a, [Jp, Jm]])
    fd = _fd_se(theta, (counts, sp, sm, *geo, TAU, BETA))
    assert np.array([se_p, se_m]) == pytest.approx(fd, rel=1e-4)
    # With J₋ held at 0 (the LR test's restricted fit) J₊'s sd is the conditional one.
    a0, Jp0, Jm0, *_, se_p0, se_m0 = K.fit_pair(counts, sp, sm, *geo, TAU, BETA, W,
                                                False, True, *SOLVER)  # fmt: skip
    assert Jm0 == 0.0 and np.isnan(se_m0)
    H0 = _fd_hessian(np.concatenate([a0, [Jp0, 0.0]]), (counts, sp, sm, *geo, TAU, BETA))
    assert se_p0 == pytest.approx(np.sqrt(np.linalg.inv(-H0[:-1, :-1])[-1, -1]), rel=1e-4)


def test_se_is_nan_on_a_clip_bound():
    """No lags at all after the delay: J₊ runs to the lower bound −3, where the quadratic
    approximation does not hold."""
    counts = np.full(100, 30.0)
    counts[53:70] = 0.0
    geo = K.bin_geometry(W, 3.0, TAU, 0.0)
    sm = float(np.sum(30.0 * np.exp((np.arange(100)[:47] - 49.5 + 3) / TAU)))
    a, Jp, Jm, *_, se_p, se_m = K.fit_pair(counts, 0.0, sm, *geo, TAU, BETA, W, False, False,
                                           *SOLVER)  # fmt: skip
    assert Jp == -3.0 and np.isnan(se_p) and np.isfinite(se_m)


@pytest.fixture(scope="module")
def sample_pair():
    trains = []
    for i in (9, 4):
        t = np.loadtxt(DATA / f"cell{i}.txt")
        trains.append(t[(t >= 0) & (t < 5.4e6)] / 1e3)
    # One extra unit with three spikes: its pairs are "insufficient_data".
    trains.append(np.array([10.0, 2000.0, 4000.0]))
    return SpikeTrains.from_lists(trains, t_start_s=0.0, t_stop_s=5400.0)


@needs_data
def test_dataset_se_layout_and_finite_differences(sample_pair):
    """J_se[pre=9, post=4] is J₊'s sd of the fit of (9, 4), J_se[4, 9] J₋'s; NaN where the
    status is not "ok"; the same value from both tests (same β) and from the delay scan."""
    ds = GLMCC(delay_ms=3.0).fit(sample_pair)
    p = int(np.flatnonzero((ds.pair_index.values == [0, 1]).all(axis=1))[0])
    geo = K.bin_geometry(W, 3.0, TAU, 0.0)
    counts, sp, sm, _ = K.pair_statistics(*(sample_pair.times_s[sample_pair.offsets[u]:
                                                                sample_pair.offsets[u + 1]] * 1e3
                                            for u in (0, 1)), W, np.array([3.0]), TAU, 0.0)  # fmt: skip
    J = ds.J.values
    theta = np.concatenate([ds.a.values[p], [J[0, 1], J[1, 0]]])
    fd = _fd_se(theta, (counts, sp[0], sm[0], *geo, TAU, BETA))
    se = ds.J_se.values
    assert [se[0, 1], se[1, 0]] == pytest.approx(fd, rel=1e-4)
    status = ds.status.values
    assert np.all(np.isnan(se[status != "ok"])) and np.all(np.isfinite(se[status == "ok"]))
    assert (status[:2, 2] == "insufficient_data").all() and status[0, 1] == "ok"
    lr = GLMCC(delay_ms=3.0, test="lr", beta=BETA).fit(sample_pair)
    np.testing.assert_array_equal(lr.J_se.values, se)
    scan = GLMCC(delay_ms="scan").fit(sample_pair)
    d = float(scan.delay_ms.values[0, 1])
    at_d = GLMCC(delay_ms=d).fit(sample_pair)
    np.testing.assert_allclose(scan.J_se.values, at_d.J_se.values, rtol=1e-12)


def _draw_lags(rng, a_true, Jp, Jm, d):
    """Lags of the inhomogeneous Poisson process with rate exp(a_k + J₊f(t) + J₋f(−t)) on
    (−W, W), by thinning a homogeneous one (f ≤ 1)."""
    R = np.exp(a_true.max() + max(Jp, 0.0) + max(Jm, 0.0))
    t = rng.uniform(-W, W, rng.poisson(R * 2 * W))
    f_p = np.where(t >= d, np.exp(-(t - d) / TAU), 0.0)
    f_m = np.where(-t >= d, np.exp((t + d) / TAU), 0.0)
    k = np.minimum((t + W).astype(np.int64), a_true.size - 1)
    rate = np.exp(a_true[k] + Jp * f_p + Jm * f_m)
    return t[rng.uniform(0.0, R, t.size) < rate]


def _map_sd_over_posterior_sd(a, J, geo):
    """sd of the MAP over its sampling distribution, over the posterior sd, for J₊ and J₋:
    √[(F+P)⁻¹F(F+P)⁻¹]_JJ / √[(F+P)⁻¹]_JJ with F the Fisher information and P the prior's
    precision (dense). Below 1: the smoothness prior on a(t) shrinks, so the MAP varies less
    than the posterior is wide."""
    M = a.size

    def neg_hessian(beta):
        g, dg, cp, cm = np.empty(M + 2), np.empty(M), np.empty(M), np.empty(M)
        _, _, hpp, hmm = K._evaluate(a.copy(), J[0], J[1], np.zeros(M), 0.0, 0.0, *geo, TAU,
                                     beta, g, dg, cp, cm)  # fmt: skip
        A = np.diag(np.concatenate([dg, [hpp, hmm]]))
        A[np.arange(M - 1), np.arange(1, M)] = A[np.arange(1, M), np.arange(M - 1)] = -beta
        A[:M, M] = A[M, :M] = cp
        A[:M, M + 1] = A[M + 1, :M] = cm
        return A

    C = np.linalg.inv(neg_hessian(BETA))
    return np.sqrt(np.diag(C @ neg_hessian(0.0) @ C)[-2:] / np.diag(C)[-2:])


@pytest.mark.parametrize("J_true", [(1.0, 0.0), (-1.0, 0.3)], ids=["excitatory", "inhibitory"])
def test_se_is_calibrated(J_true, rng):
    """Correlograms of ~3000 lags drawn from known a(t), J₊, J₋ and refitted: the z-scores
    (Ĵ − J)/J_se have mean near 0 and sd near 1 on both sides: 0.90–0.95, as predicted for
    a posterior sd (the MAP's sampling sd is that much smaller under the smoothness prior)."""
    d, n_rep = 3.0, 1000
    t_mid = np.arange(100) - 49.5
    # Slow modulation of small curvature: the prior's smoothing bias of a(t) (and so of J)
    # grows with the curvature of a (0.15·cos(2πt/200) biases J by +0.3 sd).
    a_true = np.log(30.0) + 0.1 * np.cos(2 * np.pi * t_mid / 400) + 0.002 * t_mid
    counts = np.empty((n_rep, 100))
    sp = np.empty((n_rep, 1))
    sm = np.empty((n_rep, 1))
    for r in range(n_rep):
        lags = _draw_lags(rng, a_true, *J_true, d)
        counts[r] = np.histogram(lags, bins=100, range=(-W, W))[0]
        sp[r, 0] = np.exp(-(lags[lags > d] - d) / TAU).sum()
        sm[r, 0] = np.exp((lags[lags < -d] + d) / TAU).sum()
    assert 2500 < counts.sum(axis=1).mean() < 4500
    geo1 = K.bin_geometry(W, d, TAU, 0.0)
    geo = tuple(g[None] for g in geo1)
    _, _, J, _, _, conv, se = K.fit_pairs(counts, sp, sm, *geo, TAU, BETA, W,
                                          np.zeros((n_rep, 2), bool), *SOLVER)  # fmt: skip
    assert conv.all() and np.isfinite(se).all()
    z = (J - np.array(J_true)) / se
    predicted = _map_sd_over_posterior_sd(a_true, J_true, geo1)
    for side in (0, 1):
        assert 0.85 <= z[:, side].std() <= 1.15, (side, z[:, side].std())
        assert abs(z[:, side].std() - predicted[side]) < 0.07, (side, z[:, side].std(), predicted)
        assert abs(z[:, side].mean()) < 0.15, (side, z[:, side].mean())
