"""The threshold-regime LIF theory: closed forms against quadrature, the mixture against
enumeration and sampling, and the first-passage formulas and R̄(A, Δ) against simulation."""

import itertools

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import dawsn, erfcx

from inference import triplet_theory as TT
from inference.triplet_sim import first_passage_times, probe_rbar, simulate_motif

RATES = [40.0, 10.0, 3.0]


@pytest.fixture(scope="module", params=RATES)
def neuron(request):
    return TT.ThresholdLIF.from_rate(request.param)


def test_rate_roundtrip_and_mean_isi_against_quadrature_of_survival(neuron):
    ET = neuron.mean_isi_ms()
    assert 1e3 / ET == pytest.approx(neuron.rate_hz(), rel=1e-12)
    # E[T] = ∫ S(t) dt, with S from the method of images, by adaptive quadrature.
    assert quad(lambda t: neuron.survival(t), 0, np.inf, limit=500)[0] == pytest.approx(
        ET, rel=1e-8
    )


def test_special_integrals_against_quadrature():
    for z in (0.3, 2.0, 7.5, 400.0):
        assert TT.integral_erfcx(z) == pytest.approx(quad(erfcx, 0, z, limit=200)[0], rel=1e-10)
        assert TT.integral_dawson(z) == pytest.approx(quad(dawsn, 0, z, limit=200)[0], rel=1e-10)
        # E[T] two ways: √π ∫erfcx = 2[∫D + D(z)(√π/2)erfcx(z)] (the Fokker–Planck normalisation)
        lhs = np.sqrt(np.pi) * TT.integral_erfcx(z)
        rhs = 2 * (TT.integral_dawson(z) + dawsn(z) * np.sqrt(np.pi) / 2 * erfcx(z))
        assert lhs == pytest.approx(rhs, rel=1e-10)


def test_isi_density_is_minus_dS_dt_and_normalised():
    n = TT.ThresholdLIF.from_rate(40.0)
    t = np.array([3.0, 10.0, 25.0, 60.0, 150.0])
    h = 1e-4
    num = (n.survival(t - h) - n.survival(t + h)) / (2 * h)
    np.testing.assert_allclose(n.isi_density(t), num, rtol=1e-6)
    assert quad(n.isi_density, 0, np.inf, limit=500)[0] == pytest.approx(1.0, rel=1e-8)


def test_stationary_density_normalised_and_cdf_consistent(neuron):
    x0, ell = neuron.theta_mv, neuron.ell_mv
    pts = [p for p in (ell, 10 * ell) if p < x0]
    below = quad(neuron.stationary_density, 0, x0, points=pts, limit=500)[0]
    above = quad(neuron.stationary_density, x0, np.inf)[0]
    assert below + above == pytest.approx(1.0, rel=1e-8)
    for x in (0.5, 5.0, 19.0, 21.0):
        pts = [p for p in (ell, 10 * ell, x0) if p < x]
        ref = quad(neuron.stationary_density, 0, x, points=pts or None, limit=500)[0]
        assert float(neuron.stationary_cdf(x)) == pytest.approx(ref, rel=1e-7, abs=1e-12)


@pytest.mark.parametrize("bin_ms", [2.0, 5.0, 20.0])
def test_spontaneous_rbar_is_the_renewal_window_probability(neuron, bin_ms):
    """R̄(0, Δ) from the stationary density equals 1 − (1/E[T]) ∫_Δ^∞ S(t) dt, the stationary
    renewal process's probability of a spike in a window of Δ — a formula in time only."""
    ref = (
        1 - quad(lambda t: neuron.survival(t), bin_ms, np.inf, limit=500)[0] / neuron.mean_isi_ms()
    )
    assert neuron.spontaneous_probability(bin_ms) == pytest.approx(ref, rel=1e-7)


def test_rbar_monotone_and_limits(neuron):
    A = np.linspace(-15, neuron.theta_mv + 8 * neuron.ell_mv, 56)
    r = neuron.rbar(A, 5.0)
    assert np.all(np.diff(r) >= -1e-12)
    assert r[-1] == pytest.approx(1.0, abs=1e-9)  # A ≫ X's range: every input fires
    r0 = neuron.spontaneous_probability(5.0)
    assert np.all(r[A < 0] <= r0) and np.all(r[A > 0] >= r0)


def _enumerate_mixture(pi, fire_prob):
    """Plain loops over the sets of fired sources and the 8 patterns."""
    K = len(pi)
    P = np.zeros(8)
    for F in itertools.product((0, 1), repeat=K):
        row = sum(f << k for k, f in enumerate(F))
        w = np.prod([pi[k] if F[k] else 1 - pi[k] for k in range(K)])
        for x in range(8):
            p = w
            for i in range(3):
                p *= fire_prob[row][i] if (x >> i) & 1 else 1 - fire_prob[row][i]
            P[x] += p
    return P


def test_mixture_against_enumeration_and_sampling(rng):
    for K in (0, 1, 3, 4):
        pi = rng.uniform(0.01, 0.3, K)
        r = rng.uniform(0, 1, (2**K, 3))
        P = TT.mixture_patterns(pi, r)
        np.testing.assert_allclose(P, _enumerate_mixture(pi, r), rtol=1e-12)
        assert P.sum() == pytest.approx(1.0)
    # Sampling the generative process: sources fire, then neurons independently.
    pi = np.array([0.1, 0.2, 0.05])
    r = rng.uniform(0, 1, (8, 3))
    n = 400_000
    F = (rng.random((n, 3)) < pi).astype(int)
    rows = F @ (1 << np.arange(3))
    X = (rng.random((n, 3)) < r[rows]).astype(int)
    emp = np.bincount(X @ (1 << np.arange(3)), minlength=8) / n
    P = TT.mixture_patterns(pi, r)
    assert np.all(np.abs(emp - P) < 5 * np.sqrt(P * (1 - P) / n))


def test_motif_predictions_closed_forms():
    A = np.array([2.0, 6.0, 10.0])
    th = TT.motif_thetas("E-pair", A, 10.0, [3.0, 5.0, 8.0])
    np.testing.assert_allclose(th[:, 4:], 0.0, atol=1e-10)  # θ_13 = θ_23 = θ_123 = 0
    assert np.all(th[:, 3] > 1.0)
    th = TT.motif_thetas("independent", A, 10.0, 5.0)
    np.testing.assert_allclose(th[:, 3:], 0.0, atol=1e-12)
    # Strong inhibition at a low rate silences: θ_ij ≈ −θ_123 (the I → all closed form).
    th = TT.motif_thetas("I-all", 10.0, 10.0, 3.0)
    np.testing.assert_allclose(th[3:6], -th[6], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown motif"):
        TT.motif_thetas("E-everything", 1.0, 1.0, 1.0)


def test_map_lower_right_quadrant_belongs_to_excitatory_pairs():
    """At low spontaneous rates E → each pair gives positive pairwise and strongly negative
    triple-wise interactions; shared inhibition cannot reach them (the paper's conclusion)."""
    m = TT.motif_map(3.0, 5.0, amplitudes_mv=np.linspace(2, 10, 5), rates_hz=[2.0, 5.0, 20.0])
    pair, triple = m["E-pairs"]
    assert np.all(pair > 0.5) and np.all(triple < -1.0)
    for motif in ("I-all", "I-pairs", "I-pair"):
        pair_i, triple_i = m[motif]
        assert np.abs(triple_i).max() < 0.3 and np.abs(pair_i).max() < 0.3
    assert triple.max() < -3 * max(np.abs(m[k][1]).max() for k in ("I-all", "I-pairs"))


# -- against direct simulation -----------------------------------------------------------
def test_isi_mean_and_histogram_against_simulation():
    n = TT.ThresholdLIF.from_rate(20.0)
    isi = first_passage_times(n, 20000, dt_ms=0.05, method="exact", bridge=True, seed=4)
    assert np.isfinite(isi).all()
    se = isi.std() / np.sqrt(isi.size)
    assert abs(isi.mean() - n.mean_isi_ms()) < 4 * se
    edges = np.quantile(isi, np.linspace(0, 1, 21))
    cdf = 1 - n.survival(edges)
    expected = np.diff(cdf) * isi.size
    observed = np.histogram(isi, edges)[0]
    chi2_stat = ((observed - expected) ** 2 / expected).sum()
    assert chi2_stat < 45  # χ²₁₉: p ≈ 7e-4


def test_rbar_against_simulated_kicks():
    n = TT.ThresholdLIF.from_rate(15.0)
    A = np.array([-4.0, 0.0, 3.0, 8.0])
    sim = probe_rbar(n, A, 5.0, n_probes=6000, dt_ms=0.05, method="exact", bridge=True, seed=2)
    theory = n.rbar(A, 5.0)
    assert np.all(np.abs(sim - theory) < 4 * np.sqrt(theory * (1 - theory) / 6000) + 2e-3)


def test_simulated_motif_rates_follow_the_theory():
    """Spontaneous rate without sources, and a certain response to strong excitation."""
    sp = simulate_motif("independent", 5.0, 10.0, [4.0, 8.0, 12.0], 300.0, dt_ms=0.1, seed=1)
    rates = sp.rates_hz()
    np.testing.assert_allclose(rates, [4.0, 8.0, 12.0], rtol=0.15)


@pytest.mark.slow
@pytest.mark.parametrize("rate", [40.0, 10.0])
def test_euler_maruyama_first_passage_small_bias(rate):
    """Plain Euler–Maruyama (dt = 0.01 ms) misses crossings between steps: its mean ISI is
    a little long (≈ 2 % at 40 Hz, ≈ 0.5 % at 10 Hz); the histogram shape still agrees."""
    n = TT.ThresholdLIF.from_rate(rate)
    isi = first_passage_times(n, 40000, dt_ms=0.01, method="euler", seed=7)
    rel = isi.mean() / n.mean_isi_ms() - 1
    assert 0 < rel < 0.035
    A = np.array([-2.0, 0.0, 2.0, 5.0])
    sim = probe_rbar(n, A, 5.0, n_probes=20000, dt_ms=0.01, method="euler", seed=3)
    np.testing.assert_allclose(sim, n.rbar(A, 5.0), atol=0.012)


def test_release_probability_bound():
    """A neuron released from far above threshold puts at most release_probability_bound into
    one bin (exact survival S(t | x), x ≫ ℓ, every bin start t), and the bound is attained;
    excitation of 2 mV at low rates adds far more."""
    b = TT.release_probability_bound(5.0, 20.0)
    assert 0.119 < b < 0.121
    for rate in (3.0, 6.0):
        n = TT.ThresholdLIF.from_rate(rate)
        for x in (2.0, 9.0):
            t = np.linspace(0.0, 800.0, 160001)
            S = n.survival(t, x)
            per_bin = S[:-1000] - S[1000:]  # windows of 5 ms (dt = 0.005 ms)
            assert per_bin.max() <= b * (1.0 + (n.ell_mv / x) ** 2)  # bound up to O((ℓ/x)²)
            assert per_bin.max() > b - 2e-3
        assert n.rbar(2.0, 5.0) > 3 * b
    assert TT.release_probability_bound(2.0, 20.0) < b < TT.release_probability_bound(10.0, 20.0)
