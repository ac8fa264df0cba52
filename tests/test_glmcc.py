"""GLMCC against the authors' reference fit, its own derivatives, and awkward inputs."""

from pathlib import Path

import numpy as np
import pytest

from inference import GLMCC, psp_mv, required_recording_time_s
from inference import _glmcc_kernels as K
from observations import SpikeTrains

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "glmcc_nii"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="shared/data/glmcc_nii not present")

# The README's fit of cell9 → cell4 by the authors' original code: d: (J₊, J₋, log posterior).
REFERENCE = {1: (1.2560, 0.2854, 5571.323), 2: (1.5821, 0.4527, 5611.210),
             3: (1.5186, 0.2031, 5606.203), 4: (1.3104, 0.0011, 5582.900)}  # fmt: skip


def load_cell(i):
    t = np.loadtxt(DATA / f"cell{i}.txt")
    return t[(t >= 0) & (t < 5.4e6)]  # ms, the authors' 5400 s


@pytest.fixture(scope="module")
def sample():
    trains = [load_cell(i) / 1e3 for i in range(20)]
    return SpikeTrains.from_lists(trains, t_start_s=0.0, t_stop_s=5400.0)


@needs_data
@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_reference_pair_matches_the_authors_fit(d):
    pre, post = load_cell(9), load_cell(4)
    counts, sp, sm, n = K.pair_statistics(pre, post, 50.0, np.array([float(d)]), 4.0, 0.0)
    assert n == 2467
    geo = K.bin_geometry(50.0, float(d), 4.0, 0.0)
    a, Jp, Jm, L, LL, it, ok, *_ = K.fit_pair(counts, sp[0], sm[0], *geo, 4.0, 4000.0, 50.0,
                                               False, False, -3.0, 5.0, 1e-4, 1000)  # fmt: skip
    J_plus, J_minus, logpost = REFERENCE[d]
    assert ok
    assert abs(Jp - J_plus) <= 2e-3 and abs(Jm - J_minus) <= 2e-3
    assert abs(L - logpost) <= 0.05


@needs_data
def test_reference_pair_significance_both_tests(sample):
    wald = GLMCC(delay_ms=3.0, test="wald").fit(sample, pairs=[[9, 4]])
    # README: thresholds 0.5070 (9→4) and 0.5221 (4→9) with z = 3.29; ours uses the exact
    # quantile 3.2905 and agrees within 0.2 %.
    assert float(wald.J_threshold.sel(pre=9, post=4)) == pytest.approx(0.5070, rel=3e-3)
    assert float(wald.J_threshold.sel(pre=4, post=9)) == pytest.approx(0.5221, rel=3e-3)
    assert bool(wald.significant.sel(pre=9, post=4)) and not bool(
        wald.significant.sel(pre=4, post=9)
    )
    assert float(wald.psp_mv.sel(pre=9, post=4)) == pytest.approx(2.532 * 1.5186, abs=0.01)
    lr = GLMCC(delay_ms=3.0, test="lr").fit(sample, pairs=[[9, 4]])
    assert bool(lr.significant.sel(pre=9, post=4)) and not bool(lr.significant.sel(pre=4, post=9))
    assert float(lr.lr_stat.sel(pre=9, post=4)) > 15.14 > float(lr.lr_stat.sel(pre=4, post=9))


def _objective(theta, args):
    M = theta.size - 2
    g, dg, cp, cm = np.empty(M + 2), np.empty(M), np.empty(M), np.empty(M)
    L, _, hpp, hmm = K._evaluate(theta[:M].copy(), theta[M], theta[M + 1], *args, g, dg, cp, cm)
    return L, g, dg, cp, cm, hpp, hmm


@pytest.mark.parametrize("J", [(0.8, -1.2), (1e-7, -3e-8), (0.0, 0.0), (4.5, -2.9), (-0.02, 0.01)])
def test_gradient_and_hessian_match_finite_differences(J, rng):
    """Including |J| → 0, where the authors' code has the wrong sign."""
    counts = rng.poisson(20, 100).astype(float)
    args = (counts, 37.0, 21.0, *K.bin_geometry(50.0, 2.5, 4.0, 0.0), 4.0, 4000.0)
    theta = np.concatenate([np.log(20) + 0.3 * rng.standard_normal(100), J])
    L, g, dg, cp, cm, hpp, hmm = _objective(theta, args)
    h = 1e-6
    for idx in [0, 37, 52, 53, 60, 99, 100, 101]:
        e = np.zeros_like(theta)
        e[idx] = h
        num = (_objective(theta + e, args)[0] - _objective(theta - e, args)[0]) / (2 * h)
        assert num == pytest.approx(g[idx], rel=1e-5, abs=1e-4)
    # Hessian: −∂²L/∂a_k² (diag), −∂²L/∂a∂J± (cp, cm), −∂²L/∂J±² (hpp, hmm) against the
    # finite differences of the analytic gradient.
    for idx, col in [(100, None), (101, None), (55, 100), (44, 101), (20, 20)]:
        e = np.zeros_like(theta)
        e[col if col is not None else idx] = h
        dgrad = (_objective(theta + e, args)[1] - _objective(theta - e, args)[1]) / (2 * h)
        if col is None:
            expected = -(hpp if idx == 100 else hmm)
            assert dgrad[idx] == pytest.approx(expected, rel=1e-5, abs=1e-4)
        elif col in (100, 101):
            expected = -(cp if col == 100 else cm)[idx]
            assert dgrad[idx] == pytest.approx(expected, rel=1e-5, abs=1e-4)
        else:
            assert dgrad[idx] == pytest.approx(-dg[idx], rel=1e-5, abs=1e-4)


def test_bin_integrals_against_quadrature():
    """G_k = ∫_bin exp(a + J₊ f(t) + J₋ f(−t)) dt, from the series, vs adaptive quadrature."""
    from scipy.integrate import quad

    d, tau = 2.5, 4.0
    free, plog, mlog, pc, mc, pn, mn = K.bin_geometry(50.0, d, tau, 0.0)
    for J in (-2.7, 0.3, 4.9):
        for k in (40, 47, 52, 53, 70):
            t1 = -50.0 + k

            def rate(t, J=J):
                f = np.exp(-(t - d) / tau) if t >= d else 0.0
                g = np.exp((t + d) / tau) if t <= -d else 0.0
                return np.exp(J * f + J * g)

            ref, _ = quad(
                rate, t1, t1 + 1.0, points=[d, -d] if t1 < d < t1 + 1 or t1 < -d < t1 + 1 else None
            )
            w = free[k]
            if plog[k] > 0:
                w += tau * (plog[k] + K._poly(pc[k], J, pn[k])[0])
            if mlog[k] > 0:
                w += tau * (mlog[k] + K._poly(mc[k], J, mn[k])[0])
            assert w == pytest.approx(ref, rel=1e-12)


def test_awkward_inputs_give_a_status_per_pair():
    rng = np.random.default_rng(2)
    base = np.sort(rng.uniform(0, 600, 2000))
    trains = [
        [],  # empty
        [12.5],  # one spike
        base,
        base.copy(),  # identical to the previous one
        np.round(np.sort(rng.uniform(0, 600, 1500)), 3),  # many lags exactly on 1-ms edges
        [599.0],  # no lags within ±50 ms of most trains
    ]
    spikes = SpikeTrains.from_lists(trains, t_start_s=0.0, t_stop_s=600.0)
    for test in ("wald", "lr"):
        ds = GLMCC(test=test, delay_ms="scan").fit(spikes)
        off = ~np.eye(6, dtype=bool)
        assert set(np.unique(ds.status.values[off])) <= {"ok", "insufficient_data"}
        assert not ds.significant.values[0].any() and not ds.significant.values[:, 0].any()
        assert ds.status.values[0, 1] == "insufficient_data"
        assert np.isfinite(ds.J.values[off]).all()


def test_two_neurons_and_unsorted_input():
    ds = GLMCC().fit(SpikeTrains.from_lists([[1.0, 2.0, 3.0], [1.001, 2.003]], t_stop_s=10.0))
    assert ds.sizes == {"pre": 2, "post": 2, "pair": 1, "bin": 100, "end": 2}
    from observations import SpikeTrainError

    with pytest.raises(SpikeTrainError, match="not sorted"):
        SpikeTrains.from_lists([[2.0, 1.0]], t_stop_s=3.0)


def test_min_lag_excludes_near_coincident_lags(rng):
    """With min_lag_ms the lags |t| < m neither count nor enter the rate integral."""
    pre = np.sort(rng.uniform(0, 2000, 4000))
    post = np.sort(
        np.concatenate([pre[::2] + 1e-4, rng.uniform(0, 2000, 2000)])
    )  # 0.1-ms synchrony
    spikes = SpikeTrains.from_lists([pre, post], t_stop_s=2001.0)
    plain = GLMCC(delay_ms=0.0).fit(spikes)
    masked = GLMCC(delay_ms=0.0, min_lag_ms=1.0).fit(spikes)
    assert float(plain.J.sel(pre=0, post=1)) > 1.0  # the synchrony looks like a synapse
    assert abs(float(masked.J.sel(pre=0, post=1))) < 0.5  # gone once those lags are excluded
    free, *_ = K.bin_geometry(50.0, 0.0, 4.0, 1.0)
    assert free[49] == 0.0 and free[50] == 0.0


def test_psp_and_recording_time():
    assert psp_mv([1.0, -1.0]).tolist() == [2.532, -0.612]
    # T ∝ 1/(λ_pre λ_post w²): doubling both rates quarters it, halving w quadruples it.
    T = required_recording_time_s(2.0, 3.0, 1.0)
    assert required_recording_time_s(4.0, 6.0, 1.0) == pytest.approx(T / 4)
    assert required_recording_time_s(2.0, 3.0, 0.5) == pytest.approx(4 * T)
    # Consistency with the threshold: at T the expected c̄ puts J exactly on it.
    J = 1.0 / 2.532
    cbar = 2.0 * 3.0 * 1e-6 * T * 1e3
    assert 1.57 * 3.2905267 / np.sqrt(4.0 * cbar) == pytest.approx(J, rel=1e-6)
    # The data rule τ c̄ > 10 binds for a strong synapse: 10 / (4 ms · 6e-6 ms⁻²) = 417 s.
    assert required_recording_time_s(2.0, 3.0, 5.0) < 417
    with_rule = required_recording_time_s(2.0, 3.0, [5.0, 1.0], include_data_rule=True)
    np.testing.assert_allclose(with_rule, [10 / (4.0 * 6e-6) * 1e-3, T])


@pytest.mark.parametrize("swap", [False, True])
def test_pair_statistics_against_all_lags_by_brute_force(swap):
    """Histogram, kernel sums and lag count against np.subtract.outer of the whole trains:
    trains of very different rates (the sweep runs over the sparser one and gallops over
    the other), lags on bin edges and on ±W, and an excluded centre."""
    rng = np.random.default_rng(5)
    pre = np.sort(np.r_[rng.uniform(0, 60_000, 300), [1000.0, 2000.0]])
    post = np.sort(np.r_[rng.uniform(0, 60_000, 9000), [1003.0, 1050.0, 1950.0, 2000.25]])
    if swap:
        pre, post = post, pre
    delays, tau, W, min_lag = np.array([1.0, 2.0, 3.0, 4.0]), 4.0, 50.0, 0.5
    counts, sp, sm, n = K.pair_statistics(pre, post, W, delays, tau, min_lag)
    t = np.subtract.outer(post, pre).ravel()
    t = t[(np.abs(t) < W) & (np.abs(t) >= min_lag)]
    assert n == t.size
    x = t + W
    on_edge = (np.abs(x - np.round(x)) < 1e-7) & (np.round(x) > 0)
    ref = np.histogram(x[~on_edge], bins=np.arange(101))[0].astype(float)
    for e in np.round(x[on_edge]).astype(int):
        ref[e - 1] += 0.5
        ref[e] += 0.5
    np.testing.assert_array_equal(counts, ref)
    for q, d in enumerate(delays):
        np.testing.assert_allclose(sp[q], np.exp(-(t[t > d] - d) / tau).sum(), rtol=1e-12)
        np.testing.assert_allclose(sm[q], np.exp((t[t < -d] + d) / tau).sum(), rtol=1e-12)


@pytest.mark.parametrize("delay", [3.0, "scan"])
def test_false_positives_stay_at_alpha_at_low_counts(delay):
    """Independent trains at 0.3–3 Hz for 30 min (many pairs near the τ c̄ > 10 data rule):
    the published Wald threshold calls Poisson troughs as inhibition (measured 3× α at
    d = 3 ms and 10× α with the delay scan); with the exact window test the rate is α."""
    rng = np.random.default_rng(3)
    T = 1800.0
    rates = rng.uniform(0.3, 3.0, 120)
    trains = [np.sort(rng.uniform(0, T, rng.poisson(r * T))) for r in rates]
    spikes = SpikeTrains.from_lists(trains, t_start_s=0.0, t_stop_s=T)
    rate = {}
    for exact in (True, False):
        ds = GLMCC(delay_ms=delay, exact_window=exact).fit(spikes)
        ok = ds.status.values == "ok"
        rate[exact] = (ds.significant.values & ok).sum() / ok.sum()
        assert ok.sum() > 8000
    alpha, n = 1e-3, 8000
    assert rate[True] < alpha + 3 * np.sqrt(alpha / n)
    assert rate[False] > 2 * alpha  # the published test alone: what the guard is for


@needs_data
def test_pure_python_peer_agrees_with_ours(sample):
    """The benchmark's pure-Python transcription (authors' code structure) against ours on
    four sample pairs at d = 3 ms: same J and log posterior."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import _glmcc_pure_python as pure

    pairs = np.array([[9, 4], [0, 19], [5, 16], [2, 11]])
    for pre, post in pairs:
        stats = K.pair_statistics(load_cell(pre), load_cell(post), 50.0, np.array([3.0]), 4.0, 0.0)
        _, Jp, Jm, L, *_ = K.fit_pair(stats[0], stats[1][0], stats[2][0],
                                      *K.bin_geometry(50.0, 3.0, 4.0, 0.0), 4.0, 4000.0, 50.0,
                                      False, False, -3.0, 5.0, 1e-4, 1000)  # fmt: skip
        for hessian in ("dense", "banded"):
            fit = pure.fit_pair(pure.cross_correlogram(load_cell(pre), load_cell(post)), 3.0,
                                hessian=hessian)  # fmt: skip
            assert abs(fit["J_plus"] - Jp) <= 2e-3 and abs(fit["J_minus"] - Jm) <= 2e-3
            assert abs(fit["log_posterior"] - L) <= 0.05
