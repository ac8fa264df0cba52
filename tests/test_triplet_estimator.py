"""The triplet map's estimator: counts against plain numpy, θ's against the paper's
formulas, the pairwise MaxEnt fit against iterative proportional fitting, SEs against a
bootstrap and replicate data, and awkward inputs."""

import itertools

import numpy as np
import pytest
import xarray as xr

from inference import TripletMap
from inference import triplets as TR
from inference.triplet_theory import mixture_patterns, pattern_thetas
from observations import SpikeTrainError, SpikeTrains


def _random_trains(rng, n_units=9, T=40.0, rates=(3.0, 40.0)):
    trains = [np.sort(rng.uniform(0, T, rng.poisson(r * T))) for r in rng.uniform(*rates, n_units)]
    # A shared component so that higher-order counts are not all tiny.
    common = np.sort(rng.uniform(0, T, int(5 * T)))
    for k in range(0, n_units, 2):
        trains[k] = np.sort(
            np.concatenate([trains[k], common + rng.uniform(0, 0.004, common.size)])
        )
        trains[k] = trains[k][trains[k] <= T]
    return SpikeTrains.from_lists(trains, t_start_s=0.0, t_stop_s=T)


def _brute_patterns(spikes, bin_ms, triplets):
    """Plain numpy: binarise by floor division, keep full bins, bincount the 8 patterns."""
    bin_s = bin_ms * 1e-3
    n_bins = int(np.floor(spikes.duration_s / bin_s + 1e-9))
    X = np.zeros((spikes.n_units, n_bins), np.int64)
    for u in range(spikes.n_units):
        b = np.floor((spikes.train(u) - spikes.t_start_s) / bin_s).astype(np.int64)
        X[u, b[b < n_bins]] = 1
    return np.stack([np.bincount(X[i] + 2 * X[j] + 4 * X[k], minlength=8) for i, j, k in triplets])


@pytest.mark.parametrize("bin_ms", [2.0, 5.0, 7.0])
def test_counts_match_plain_numpy_both_kernels(rng, bin_ms, monkeypatch):
    sp = _random_trains(rng)
    tm = TripletMap(bin_ms=bin_ms, classify=False)
    tr = np.array(list(itertools.permutations(range(5), 3)) + [[8, 0, 3], [2, 7, 5]])
    expected = _brute_patterns(sp, bin_ms, tr)
    pats, _, n_bins, _ = tm.counts(sp, tr)
    np.testing.assert_array_equal(pats, expected)
    assert pats.sum(1).min() == n_bins
    monkeypatch.setattr(TR, "DENSE_TRIPLE_LIMIT", 0)  # force the three-way merge
    pats2, _, _, _ = tm.counts(sp, tr)
    np.testing.assert_array_equal(pats2, expected)
    # All triplets: the co-activation path on every unit.
    pats_all, tr_all, _, _ = tm.counts(sp)
    assert tr_all.shape[0] == 84 and (np.diff(tr_all, axis=1) > 0).all()
    np.testing.assert_array_equal(pats_all, _brute_patterns(sp, bin_ms, tr_all))


def test_bin_edges_and_partial_last_bin():
    # 0.005 lies on the edge of bins 0 and 1 (it belongs to bin 1); 0.0123 s is past the
    # last full 5-ms bin of a 12.3-ms recording and is dropped.
    sp = SpikeTrains.from_lists([[0.0, 0.005], [0.0049], [0.005, 0.0123]], t_start_s=0.0,
                                t_stop_s=0.0123)  # fmt: skip
    pats, _, n_bins, _ = TripletMap(bin_ms=5.0, classify=False).counts(sp)
    assert n_bins == 2
    # bin 0: units 1, 2 active -> pattern 110 (index 3); bin 1: units 1, 3 -> 101 (index 5)
    np.testing.assert_array_equal(pats[0], [0, 0, 0, 1, 0, 1, 0, 0])


def test_thetas_are_the_papers_log_ratios(rng):
    n = rng.integers(1, 500, (20, 8)).astype(float)
    P = {TR.PATTERNS[i]: n[:, i] for i in range(8)}
    th = TR.thetas(n, pseudo_count=0.0)
    np.testing.assert_allclose(th[:, 0], np.log(P["100"] / P["000"]))
    np.testing.assert_allclose(th[:, 3], np.log(P["110"] * P["000"] / (P["100"] * P["010"])))
    np.testing.assert_allclose(th[:, 5], np.log(P["011"] * P["000"] / (P["010"] * P["001"])))
    np.testing.assert_allclose(
        th[:, 6],
        np.log(P["111"] * P["100"] * P["010"] * P["001"] / (P["110"] * P["101"] * P["011"] * P["000"])),
    )  # fmt: skip
    # The log-linear model rebuilt from θ reproduces the table.
    X = (np.arange(8)[:, None] >> np.arange(3)) & 1
    feats = np.column_stack([X, X[:, 0] * X[:, 1], X[:, 0] * X[:, 2], X[:, 1] * X[:, 2], X.prod(1)])
    logp = th @ feats.T
    p = np.exp(logp) / np.exp(logp).sum(1, keepdims=True)
    np.testing.assert_allclose(p, n / n.sum(1, keepdims=True), rtol=1e-10)


def _ipf(n, iters=5000):
    """Iterative proportional fitting of the no-three-way model to the 2-way margins."""
    t = n.reshape(2, 2, 2, order="F").copy()  # axes x1, x2, x3 (index x1 + 2x2 + 4x3)
    m = np.ones_like(t) * t.sum() / 8
    for _ in range(iters):
        for ax in (2, 1, 0):
            m *= t.sum(ax, keepdims=True) / m.sum(ax, keepdims=True)
    return m.reshape(8, order="F")


def test_pairwise_maxent_fit_matches_ipf_and_keeps_margins(rng):
    for _ in range(5):
        n = rng.integers(1, 300, 8).astype(float)
        m = TR.pairwise_maxent_fit(n)
        np.testing.assert_allclose(m, _ipf(n), rtol=1e-8)
        assert abs(TR.thetas(m, 0.0)[6]) < 1e-10
        ref = 2 * (n * np.log(n / _ipf(n))).sum()
        assert TR.lr_statistic(n) == pytest.approx(ref, rel=1e-7)


def test_closed_forms_of_the_mixtures():
    r = np.array([0.03, 0.05, 0.08])
    # Independent neurons: every interaction is 0.
    th = pattern_thetas(mixture_patterns(np.empty(0), r[None, :]))
    np.testing.assert_allclose(th[3:], 0.0, atol=1e-12)
    # E → all three with a certain response: θ_ij = 0 exactly, θ_123 > 0.
    th = pattern_thetas(mixture_patterns([0.04], np.array([r, [1.0, 1.0, 1.0]])))
    np.testing.assert_allclose(th[3:6], 0.0, atol=1e-12)
    assert th[6] > 1.0
    # I → all three silencing them: θ_ij = −θ_123 (= log(1 + π/((1−π)P_ind(000)))).
    pi = 0.06
    th = pattern_thetas(mixture_patterns([pi], np.array([r, [0.0, 0.0, 0.0]])))
    L = np.log(1 + pi / ((1 - pi) * np.prod(1 - r)))
    np.testing.assert_allclose(th[3:6], L, rtol=1e-12)
    np.testing.assert_allclose(th[3:6], -th[6], rtol=1e-12)
    # E (or I) → one pair, any response: θ_123 = 0 and the third unit's pairs are 0.
    for rho in ([0.7, 0.9, r[2]], [0.01, 0.0, r[2]]):
        th = pattern_thetas(mixture_patterns([0.1], np.array([r, rho])))
        np.testing.assert_allclose(th[[4, 5, 6]], 0.0, atol=1e-12)
        assert abs(th[3]) > 0.01


def _spikes_from_patterns(X, bin_s):
    """One spike at the centre of every active bin; X (n_bins, 3) binary."""
    trains = [(np.flatnonzero(X[:, u]) + 0.5) * bin_s for u in range(3)]
    return SpikeTrains.from_lists(trains, t_start_s=0.0, t_stop_s=X.shape[0] * bin_s)


def _sample_mixture(rng, n_bins, pi, r_base, r_resp):
    fired = rng.random(n_bins) < pi
    p = np.where(fired[:, None], r_resp, r_base)
    return (rng.random((n_bins, 3)) < p).astype(np.int64)


def test_delta_se_matches_bootstrap_and_replicates(rng):
    P = mixture_patterns([0.05], np.array([[0.05, 0.08, 0.06], [0.7, 0.8, 0.75]]))
    n_bins = 200_000
    X = _sample_mixture(rng, n_bins, 0.05, [0.05, 0.08, 0.06], [0.7, 0.8, 0.75])
    ds = TripletMap(bin_ms=5.0, n_boot=300, block_s=0.5, classify=False, seed=3).fit(
        _spikes_from_patterns(X, 0.005)
    )
    se = np.concatenate([ds.se_theta_i.values[0], ds.se_theta_ij.values[0], [ds.se_theta_123[0]]])
    boot = np.concatenate([ds.boot_se_theta_i.values[0], ds.boot_se_theta_ij.values[0],
                           [ds.boot_se_theta_123[0]]])  # fmt: skip
    # 300 resamples: the bootstrap SE itself is uncertain by ~1/√600 ≈ 4 %.
    np.testing.assert_allclose(boot, se, rtol=0.15)
    # Replicate recordings from the same mixture: the spread of θ̂ is the delta SE.
    reps = rng.multinomial(n_bins, P, size=2000)
    spread = TR.thetas(reps, 0.5).std(axis=0)
    np.testing.assert_allclose(se, spread, rtol=0.08)
    np.testing.assert_allclose(TR.delta_se(ds.pattern_count.values, 0.5)[0], se, rtol=1e-12)
    # And the estimates are centred on the truth.
    truth = pattern_thetas(P)
    est = np.concatenate([ds.theta_i.values[0], ds.theta_ij.values[0], [ds.theta_123[0]]])
    assert np.all(np.abs(est - truth) < 4 * se)


def test_wald_and_lr_tests_hold_their_level_and_detect(rng):
    # Pairwise-only data (θ_123 = 0 by construction: E → one pair) vs E → all three.
    P0 = mixture_patterns([0.1], np.array([[0.05, 0.05, 0.1], [0.5, 0.6, 0.1]]))
    P1 = mixture_patterns([0.03], np.array([[0.05, 0.05, 0.1], [0.5, 0.6, 0.6]]))
    n0 = rng.multinomial(50_000, P0, size=400)
    n1 = rng.multinomial(50_000, P1, size=20)
    lr0 = TR.lr_statistic(n0 + 0.5)
    z0 = TR.thetas(n0, 0.5)[:, 6] / TR.delta_se(n0, 0.5)[:, 6]
    from scipy.stats import chi2

    assert 0.01 < np.mean(lr0 > chi2.isf(0.05, 1)) < 0.10
    assert 0.01 < np.mean(np.abs(z0) > 1.96) < 0.10
    assert np.all(TR.lr_statistic(n1 + 0.5) > chi2.isf(1e-3, 1))


def test_dataset_layout_status_and_zarr_roundtrip(tmp_path, rng):
    sp = _random_trains(rng, n_units=5, T=20.0)
    trains = [sp.train(k) for k in range(5)] + [np.empty(0)]  # unit 6 is silent
    sp = SpikeTrains.from_lists(trains, unit_ids=[10, 11, 12, 13, 14, 99], t_start_s=0.0,
                                t_stop_s=20.0)  # fmt: skip
    ds = TripletMap(classify=False).fit(sp)
    assert ds.sizes["triplet"] == 20 and ds.attrs["kind"] == "triplets"
    silent = (ds.triplet_units == 99).any("member").values
    assert (ds.status.values[silent] == "silent_unit").all()
    assert np.isnan(ds.theta_123.values[silent]).all()
    assert np.isfinite(ds.theta_123.values[~silent]).all()
    assert set(ds.status.values[~silent]) <= {"ok", "sparse"}
    for name in ("theta_123", "se_theta_123", "lr_stat", "wald_z", "theta_pair_mean"):
        nan = np.isnan(ds[name].values)
        assert (ds.status.values[nan] != "ok").all(), name  # never NaN without a status
    ds.to_zarr(tmp_path / "t.zarr", consolidated=False)
    back = xr.open_zarr(tmp_path / "t.zarr", consolidated=False).load()
    xr.testing.assert_identical(back, ds)


def test_zero_pseudo_count_flags_empty_cells():
    sp = SpikeTrains.from_lists([[0.001, 0.011], [0.001], [0.021]], t_start_s=0.0, t_stop_s=0.1)
    ds = TripletMap(pseudo_count=0.0, classify=False).fit(sp)
    assert ds.status.values[0] == "empty_cell" and np.isnan(ds.theta_123.values[0])
    ds = TripletMap(pseudo_count=0.5, classify=False).fit(sp)
    assert ds.status.values[0] == "sparse" and np.isfinite(ds.theta_123.values[0])


@pytest.mark.parametrize(
    "trains, kwargs, message",
    [
        ([[0.001], [0.002]], {}, "needs ≥ 3 units"),
        ([[], [], []], {}, "all 3 units are silent"),
        ([[0.001], [0.002], [0.003]], {"bin_ms": 50.0}, "50 ms is longer than the recording"),
    ],
)
def test_bad_input_gives_one_clear_error(trains, kwargs, message):
    sp = SpikeTrains.from_lists(trains, t_start_s=0.0, t_stop_s=0.01)
    with pytest.raises(ValueError, match=message):
        TripletMap(classify=False, **kwargs).fit(sp)


def test_bad_triplets_and_settings():
    sp = SpikeTrains.from_lists([[0.001], [0.002], [0.003], [0.004]], t_start_s=0.0, t_stop_s=1.0)
    with pytest.raises(ValueError, match=r"triplets\[1\].*must differ"):
        TripletMap().fit(sp, triplets=[[0, 1, 2], [1, 1, 3]])
    with pytest.raises(ValueError, match=r"triplets\[0\].*0\.\.3"):
        TripletMap().fit(sp, triplets=[[0, 1, 4]])
    with pytest.raises(ValueError, match="bin_ms"):
        TripletMap(bin_ms=0)
    with pytest.raises(SpikeTrainError, match="not sorted"):
        SpikeTrains.from_lists([[0.2, 0.1], [0.1], [0.1]], t_start_s=0.0, t_stop_s=1.0)
