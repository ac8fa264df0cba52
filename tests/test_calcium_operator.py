"""The calcium forward operator: closed forms, exact restarts, noise, and real ground truth.

The real-data checks use the Chen et al. (2013) simultaneous cell-attached + imaging
recordings (GCaMP6f/6s, 60 Hz) in /work/shared/data/calcium_gt.
"""

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

from observations import SpikeTrains
from observations.operators.calcium import (
    INDICATORS,
    PUBLISHED_RANGES,
    SOMA_SCAN_EXPOSURE_S,
    CalciumOperator,
    fit_kinetics,
    load_ground_truth,
    noise_level_nu,
    noise_sd_from_nu,
)

DATA = Path("/work/shared/data/calcium_gt")
FILES = sorted(DATA.glob("*.npz"))
needs_data = pytest.mark.skipif(not FILES, reason=f"no ground-truth recordings in {DATA}")


def one_unit(spike_times, t_start_s, t_stop_s):
    return SpikeTrains.from_lists(
        [np.sort(np.asarray(spike_times, float))], t_start_s=t_start_s, t_stop_s=t_stop_s
    )


def double_exponential(t, tau_r, tau_d):
    """exp(−t/τ_d) − exp(−t/τ_r) for t ≥ 0, scaled to peak 1 by a numerical maximisation."""
    f = lambda x: -(math.exp(-x / tau_d) - math.exp(-x / tau_r))  # noqa: E731
    res = scipy.optimize.minimize_scalar(
        f, bounds=(0.0, 5 * tau_d), method="bounded", options={"xatol": 1e-12}
    )
    t = np.asarray(t, float)
    return np.where(t >= 0, (np.exp(-t / tau_d) - np.exp(-t / tau_r)) / -res.fun, 0.0)


# ---------------------------------------------------------------------------------------
# closed forms
# ---------------------------------------------------------------------------------------
def test_single_spike_without_hill_and_exposure_is_the_double_exponential():
    # n = 1 and an exposure of 0.1 µs: the frame value is the transient itself.
    op = CalciumOperator(
        None,
        frame_rate_hz=1e7,
        tau_rise_s=0.03,
        tau_decay_s=0.6,
        hill_n=1.0,
        c_rest=0.7,
        amplitude=0.2,
        baseline=0.01,
    )
    t_spike = 0.25
    frames = t_spike + np.array([1e-3, 0.01, 0.03, 0.0731, 0.2, 0.9, 2.5])
    values, _ = op.predict(one_unit([t_spike], 0.0, 3.0), op.initial_state(1), frames)
    expected = 0.01 + 0.2 * double_exponential(frames - t_spike, 0.03, 0.6)
    np.testing.assert_allclose(values[:, 0], expected, rtol=0, atol=1e-6)
    assert values[:, 0].max() <= 0.01 + 0.2  # the transient peaks at 1


def analytic_dff_times(tau_r, tau_d, level_of_kernel):
    """Rise and decay times from the analytic double exponential, solved with brentq.

    ``level_of_kernel(frac)`` is the kernel value k (peak 1) at which the ΔF/F response is
    ``frac`` of its peak. Independent of the operator: its own peak time and kernel.
    """
    t_peak = tau_r * tau_d * math.log(tau_d / tau_r) / (tau_d - tau_r)
    peak = math.exp(-t_peak / tau_d) - math.exp(-t_peak / tau_r)

    def k(t):
        return (math.exp(-t / tau_d) - math.exp(-t / tau_r)) / peak

    up, down = level_of_kernel(1 - math.exp(-1)), level_of_kernel(math.exp(-1))
    t_up = scipy.optimize.brentq(lambda t: k(t) - up, 0.0, t_peak, xtol=1e-14)
    t_down = scipy.optimize.brentq(lambda t: k(t) - down, t_peak, 50 * tau_d, xtol=1e-14)
    return t_up, t_down - t_peak


@pytest.mark.parametrize("tau_r, tau_d", [(0.03, 0.6), (0.005, 0.1), (0.15, 2.5)])
def test_dff_kinetics_linear_readout_is_the_double_exponential(tau_r, tau_d):
    # n = 1, c_rest = 0: ΔF/F ∝ k(t), so the levels are fractions of the kernel's peak 1.
    op = CalciumOperator(
        None, 30.0, tau_rise_s=tau_r, tau_decay_s=tau_d, hill_n=1.0, c_rest=0.0, amplitude=0.3
    )
    rise, decay = op.dff_kinetics()
    exp_rise, exp_decay = analytic_dff_times(tau_r, tau_d, lambda frac: frac)
    assert rise == pytest.approx(exp_rise, abs=1e-10)
    assert decay == pytest.approx(exp_decay, abs=1e-10)
    # A fine grid (0.05 ms) agrees to its spacing.
    t = np.arange(0.0, 20 * tau_d, 5e-5)
    g = op.kernel(t)
    i_peak = int(np.argmax(g))
    assert t[np.argmax(g >= (1 - math.exp(-1)) * g[i_peak])] == pytest.approx(rise, abs=5e-5)
    after = np.flatnonzero(g[i_peak:] <= g[i_peak] * math.exp(-1))[0]
    assert t[i_peak + after] - t[i_peak] == pytest.approx(decay, abs=1e-4)


def test_dff_kinetics_hill_two_with_resting_calcium():
    # n = 2, c_rest = 1: ΔF/F ∝ (1 + k)² − 1 = 2k + k², peak 3; frac·3 is reached at
    # k = √(1 + 3 frac) − 1. The ΔF/F decays faster than the calcium (peak/e at k = 0.45,
    # not 0.37) and rises slower (1 − 1/e of the peak at k = 0.70, not 0.63).
    op = CalciumOperator(None, 60.0, tau_rise_s=0.06, tau_decay_s=1.6, hill_n=2.0, c_rest=1.0)
    rise, decay = op.dff_kinetics()
    exp_rise, exp_decay = analytic_dff_times(0.06, 1.6, lambda f: math.sqrt(1 + 3 * f) - 1)
    assert rise == pytest.approx(exp_rise, abs=1e-10)
    assert decay == pytest.approx(exp_decay, abs=1e-10)
    lin_rise, lin_decay = op.replace(hill_n=1.0, c_rest=0.0).dff_kinetics()
    assert decay < lin_decay and rise > lin_rise
    # Amplitude, baseline, frame rate and exposure do not enter.
    other = op.replace(amplitude=-2.0, baseline=0.3, frame_rate_hz=7.0, exposure_s=1e-3)
    assert other.dff_kinetics() == (rise, decay)


def test_presets_have_published_dff_kinetics_and_default_exposure_is_the_frame():
    for ind in INDICATORS:
        op = CalciumOperator(ind, frame_rate_hz=30.0)
        assert op.exposure_s == pytest.approx(1 / 30.0)
        for name, value in zip(("rise_s", "decay_s"), op.dff_kinetics(), strict=True):
            lo, hi = PUBLISHED_RANGES[ind][name]
            assert lo <= value <= hi, (ind, name, value)


def exposure_integral(lo, hi, t_spike, rate):
    """∫ exp(−rate (t − t_spike)) dt over (max(lo, t_spike), hi]."""
    a = max(lo, t_spike)
    if hi <= a:
        return 0.0
    return (math.exp(-rate * (a - t_spike)) - math.exp(-rate * (hi - t_spike))) / rate


def test_frame_average_linear_equals_the_integral_of_the_kernel():
    tau_r, tau_d, fr = 0.025, 0.5, 30.0
    op = CalciumOperator(
        None,
        frame_rate_hz=fr,
        tau_rise_s=tau_r,
        tau_decay_s=tau_d,
        hill_n=1.0,
        c_rest=0.0,
        amplitude=1.0,
    )
    spikes = [0.10, 0.112, 0.5, 0.5334, 0.95]  # two inside one exposure, one on a frame edge
    frames = np.arange(1, 40) / fr
    values, _ = op.predict(one_unit(spikes, 0.0, 1.3), op.initial_state(1), frames)
    scale = double_exponential(np.array([1.0]), tau_r, tau_d)[0] / (
        math.exp(-1 / tau_d) - math.exp(-1 / tau_r)
    )
    expected = []
    for t in frames:
        lo = t - 1 / fr
        total = sum(
            exposure_integral(lo, t, s, 1 / tau_d) - exposure_integral(lo, t, s, 1 / tau_r)
            for s in spikes
        )
        expected.append(total * scale * fr)
    np.testing.assert_allclose(values[:, 0], expected, rtol=1e-11, atol=1e-14)


def test_frame_average_of_squared_calcium_closed_form():
    # h(c) − h(c0) = 2 c0 k + k², and k² is a sum of three exponentials: integrable exactly.
    tau_r, tau_d, fr, c0 = 0.06, 1.5, 60.0, 0.8
    op = CalciumOperator(
        None,
        frame_rate_hz=fr,
        tau_rise_s=tau_r,
        tau_decay_s=tau_d,
        hill_n=2.0,
        c_rest=c0,
        amplitude=1.0,
    )
    t_spike = 0.2 + 0.3 / fr  # inside an exposure: the piece is cut there
    frames = np.arange(1, 200) / fr
    values, _ = op.predict(one_unit([t_spike], 0.0, 4.0), op.initial_state(1), frames)
    g = 1.0 / (math.exp(-1 / tau_d) - math.exp(-1 / tau_r))
    g *= double_exponential(np.array([1.0]), tau_r, tau_d)[0]
    ed, er = 1 / tau_d, 1 / tau_r
    terms = [
        (2 * c0 * g, ed),
        (-2 * c0 * g, er),
        (g * g, 2 * ed),
        (-2 * g * g, ed + er),
        (g * g, 2 * er),
    ]
    expected = [
        sum(w * exposure_integral(t - 1 / fr, t, t_spike, r) for w, r in terms) * fr for t in frames
    ]
    np.testing.assert_allclose(values[:, 0], expected, rtol=1e-9, atol=1e-15)


def test_kernel_peaks_at_one_and_saturation_bounds_the_readout():
    op = CalciumOperator("GCaMP6s", frame_rate_hz=30.0, k_sat=3.0)
    t_peak = op.tau_rise_s * op.tau_decay_s * math.log(op.tau_decay_s / op.tau_rise_s)
    t_peak /= op.tau_decay_s - op.tau_rise_s
    assert op.kernel(t_peak) == pytest.approx(1.0, abs=1e-15)
    assert op.kernel(np.linspace(0, 5, 20001)).max() <= 1.0 + 1e-15
    assert op.kernel(-0.1) == 0.0
    # cⁿ/(1 + (c/k)ⁿ) → kⁿ: the saturated response stays below amplitude·kⁿ.
    assert op.readout(1e6) == pytest.approx(3.0**op.hill_n, rel=1e-9)


def test_zero_spikes_from_rest_give_the_baseline_exactly():
    for op in (
        CalciumOperator("GCaMP6f", 60.06, baseline=0.0731),
        CalciumOperator("GCaMP6s", 30.0, hill_n=2.7, c_rest=0.37, k_sat=4.0, baseline=-0.02),
    ):
        spikes = SpikeTrains.from_lists([[], [], []], t_start_s=0.0, t_stop_s=5.0)
        frames = np.arange(1, 150) / op.frame_rate_hz
        values, state = op.predict(spikes, op.initial_state(3), frames)
        np.testing.assert_array_equal(values, op.baseline)
        np.testing.assert_array_equal(op.calcium(state), op.c_rest)


# ---------------------------------------------------------------------------------------
# exact restart
# ---------------------------------------------------------------------------------------
OPERATORS = [
    CalciumOperator("GCaMP6f", frame_rate_hz=30.0),
    CalciumOperator(
        "GCaMP6s", frame_rate_hz=60.06, hill_n=2.3, c_rest=0.4, k_sat=5.0, baseline=0.05
    ),
    CalciumOperator(
        None,
        frame_rate_hz=15.0,
        tau_rise_s=0.005,
        tau_decay_s=0.1,
        hill_n=1.0,
        c_rest=0.0,
        amplitude=0.3,
    ),
]


@st.composite
def split_runs(draw):
    op = draw(st.sampled_from(OPERATORS))
    n_units = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    T = 2.0
    n_splits = draw(st.integers(1, 3))
    splits = np.sort(rng.uniform(0.05, T - 0.05, n_splits))
    phase = draw(st.floats(0.0, 0.999)) / op.frame_rate_hz
    frames = phase + np.arange(1, int(T * op.frame_rate_hz) + 2) / op.frame_rate_hz
    frames = frames[frames <= T]
    if draw(st.booleans()):  # a split exactly on a frame time
        splits[0] = frames[np.searchsorted(frames, splits[0]).clip(max=frames.size - 1)]
    # A spike just before the first split, inside the exposure of the frame after it.
    lag = draw(st.floats(1e-6, 0.999)) / op.frame_rate_hz
    trains = []
    for u in range(n_units):
        t = rng.uniform(0.0, T, rng.integers(0, 25))
        if u == 0:
            t = np.append(t, max(splits[0] - lag, 0.0))
        trains.append(np.sort(t))
    return op, SpikeTrains.from_lists(trains, t_start_s=0.0, t_stop_s=T), splits, frames


@given(split_runs())
def test_restart_mid_stream_equals_one_pass(run):
    op, spikes, splits, frames = run
    whole, end = op.predict(spikes, op.initial_state(spikes.n_units), frames)
    edges = [0.0, *splits, spikes.t_stop_s]
    state, parts = op.initial_state(spikes.n_units), []
    for t0, t1 in zip(edges[:-1], edges[1:], strict=True):
        window = spikes.between(t0, t1) if t1 < spikes.t_stop_s else _tail(spikes, t0)
        part, state = op.predict(window, state, frames[(frames > t0) & (frames <= t1)])
        parts.append(part)
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-12)
    np.testing.assert_allclose(op.calcium(state), op.calcium(end), rtol=1e-12, atol=1e-12)


def _tail(spikes, t0):
    """The spikes in [t0, t_stop] (``between`` leaves out one exactly at t_stop)."""
    trains = [spikes.train(k)[spikes.train(k) >= t0] for k in range(spikes.n_units)]
    return SpikeTrains.from_lists(trains, spikes.unit_ids, t0, spikes.t_stop_s)


def test_state_pickles_and_restarts_identically():
    op = CalciumOperator("GCaMP6f", frame_rate_hz=30.0)
    rng = np.random.default_rng(3)
    trains = [np.sort(rng.uniform(0, 2, 12)) for _ in range(3)]
    spikes = SpikeTrains.from_lists(trains, t_start_s=0.0, t_stop_s=2.0)
    frames = np.arange(1, 61) / 30.0
    _, mid = op.predict(spikes.between(0.0, 1.0), op.initial_state(3), frames[frames <= 1.0])
    again = pickle.loads(pickle.dumps(mid))
    op2 = pickle.loads(pickle.dumps(op))
    a, _ = op.predict(_tail(spikes, 1.0), mid, frames[frames > 1.0])
    b, _ = op2.predict(_tail(spikes, 1.0), again, frames[frames > 1.0])
    np.testing.assert_array_equal(a, b)


def test_calcium_state_after_a_spike():
    op = CalciumOperator("GCaMP6s", frame_rate_hz=30.0, c_rest=0.5)
    _, state = op.predict(one_unit([0.4], 0.0, 0.7), op.initial_state(1), [1 / 30, 0.7])
    expected = 0.5 + double_exponential(np.array([0.3]), op.tau_rise_s, op.tau_decay_s)
    np.testing.assert_allclose(op.calcium(state), expected, rtol=1e-12)


# ---------------------------------------------------------------------------------------
# noise
# ---------------------------------------------------------------------------------------
def test_noise_level_of_white_noise_gives_back_sigma(rng):
    sigma, fr = 0.02, 30.0
    segments = [rng.normal(0.1, sigma, 50_000) for _ in range(4)]
    nu = noise_level_nu(segments, fr)
    # median|Δy| of white noise is Φ⁻¹(¾)·√2·σ, computed here from scipy's normal quantile.
    expected_nu = scipy.stats.norm.ppf(0.75) * math.sqrt(2) * sigma / math.sqrt(fr)
    assert nu == pytest.approx(expected_nu, rel=0.02)
    assert noise_sd_from_nu(nu, fr) == pytest.approx(sigma, rel=0.02)


def test_operator_noise_matches_its_nu(rng):
    op = CalciumOperator("GCaMP6f", frame_rate_hz=60.0, noise_nu=0.03)
    noisy = op.add_noise(np.zeros((40_000, 3), np.float32), rng)
    assert noisy.dtype == np.float32
    assert noisy.std() == pytest.approx(op.noise_sd(), rel=0.02)
    np.testing.assert_allclose(noise_level_nu(noisy, 60.0), 0.03, rtol=0.03)
    assert op.R() == pytest.approx(op.noise_sd() ** 2)
    np.testing.assert_allclose(op.R(5), np.full(5, op.R()))


def test_noise_level_skips_nan_frames(rng):
    y = rng.normal(0, 0.01, 20_000)
    y[::50] = np.nan
    assert np.isfinite(noise_level_nu(y, 30.0))


# ---------------------------------------------------------------------------------------
# calibration on synthetic data
# ---------------------------------------------------------------------------------------
def bursty_spikes(rng, t_stop, rate_hz=0.4):
    """Events at rate_hz, each a burst of 1 + Poisson(1.2) spikes within 60 ms."""
    events = rng.uniform(0.5, t_stop - 0.1, rng.poisson(rate_hz * t_stop))
    bursts = [e + rng.uniform(0, 0.06, 1 + rng.poisson(1.2)) for e in events]
    return np.sort(np.concatenate(bursts))


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(7)
    truth = CalciumOperator(
        None,
        frame_rate_hz=30.0,
        tau_rise_s=0.04,
        tau_decay_s=0.7,
        hill_n=2.4,
        c_rest=0.6,
        amplitude=0.05,
        noise_nu=0.02,
    )
    frames = np.arange(1, 3601) / 30.0
    baselines = (0.0, 0.05, -0.03)
    S, F, Y = [], [], []
    for b in baselines:
        s = bursty_spikes(rng, 120.0)
        clean, _ = truth.predict(one_unit(s, 0.0, 120.0), truth.initial_state(1), frames)
        Y.append(truth.add_noise(clean[:, 0], rng) + b)
        S.append(s)
        F.append(frames)
    return truth, baselines, S, F, Y


def test_full_fit_recovers_known_kinetics(synthetic):
    truth, baselines, S, F, Y = synthetic
    fit = fit_kinetics(S, F, Y, "GCaMP6f", fit="all")  # starts from the 6f preset
    p = fit.params
    assert p["tau_rise_s"] == pytest.approx(truth.tau_rise_s, rel=0.05)
    assert p["tau_decay_s"] == pytest.approx(truth.tau_decay_s, rel=0.05)
    assert p["hill_n"] == pytest.approx(truth.hill_n, rel=0.05)
    assert p["c_rest"] == pytest.approx(truth.c_rest, rel=0.2)
    assert p["amplitude"] == pytest.approx(truth.amplitude, rel=0.15)
    assert fit.operator.single_spike_dff == pytest.approx(truth.single_spike_dff, rel=0.03)
    np.testing.assert_allclose(p["baseline"], baselines, atol=0.01)
    assert p["noise_nu"] == pytest.approx(truth.noise_nu, rel=0.1)
    # The residual is the noise: R² is at the ceiling 1 − σ²/var(y).
    ceiling = 1 - truth.noise_sd() ** 2 * sum(y.size for y in Y) / sum(
        ((y - y.mean()) ** 2).sum() for y in Y
    )
    assert fit.r2 == pytest.approx(ceiling, abs=0.01)
    assert fit.at_bounds == ()


def test_linear_fit_with_true_kinetics_recovers_amplitude_and_baselines(synthetic):
    truth, baselines, S, F, Y = synthetic
    fit = fit_kinetics(S, F, Y, None, fit=("amplitude", "baseline"), start=truth)
    assert fit.params["amplitude"] == pytest.approx(truth.amplitude, rel=0.03)
    np.testing.assert_allclose(fit.params["baseline"], baselines, atol=0.005)
    assert fit.params["tau_decay_s"] == truth.tau_decay_s and fit.nfev == 0


def test_flat_arrays_with_segment_bounds_equal_lists(synthetic):
    _, _, S, F, Y = synthetic
    listed = fit_kinetics(S, F, Y, "GCaMP6f", fit=("amplitude", "baseline"))
    fb = np.cumsum([0] + [f.size for f in F])
    sb = np.cumsum([0] + [s.size for s in S])
    flat = fit_kinetics(
        np.concatenate(S),
        np.concatenate(F),
        np.concatenate(Y),
        "GCaMP6f",
        fit=("amplitude", "baseline"),
        segments=(fb, sb),
    )
    assert flat.r2 == listed.r2 and flat.params == listed.params


def test_nan_frames_are_skipped(synthetic):
    _, _, S, F, Y = synthetic
    holes = [y.copy() for y in Y]
    for y in holes:
        y[100:400] = np.nan
        y[::37] = np.nan
    clean = fit_kinetics(S, F, Y, "GCaMP6f", fit=("amplitude", "baseline"))
    fit = fit_kinetics(S, F, holes, "GCaMP6f", fit=("amplitude", "baseline"))
    assert np.isfinite(fit.r2)
    assert fit.params["amplitude"] == pytest.approx(clean.params["amplitude"], rel=0.05)


# ---------------------------------------------------------------------------------------
# bad input: one ValueError that names the problem
# ---------------------------------------------------------------------------------------
def test_bad_input_is_named(synthetic):
    _, _, S, F, Y = synthetic
    with pytest.raises(ValueError, match="all NaN"):
        fit_kinetics(S, F, [Y[0], np.full_like(Y[1], np.nan), Y[2]], "GCaMP6f")
    late = [S[0], np.append(S[1], 500.0), S[2]]
    with pytest.raises(ValueError, match=r"segment 1: spike_times_s\[\d+\] = 500.0 s is outside"):
        fit_kinetics(late, F, Y, "GCaMP6f")
    with pytest.raises(ValueError, match="unknown indicator 'GCaMP7f'"):
        fit_kinetics(S, F, Y, "GCaMP7f")
    with pytest.raises(ValueError, match="unknown indicator 'jRGECO1a'"):
        CalciumOperator("jRGECO1a", frame_rate_hz=30.0)
    with pytest.raises(ValueError, match="tau_rise_s must be > 0"):
        CalciumOperator("GCaMP6f", frame_rate_hz=30.0, tau_rise_s=-0.02)
    with pytest.raises(ValueError, match="tau_decay_s must be > 0"):
        CalciumOperator("GCaMP6s", frame_rate_hz=30.0, tau_decay_s=-1.0)
    with pytest.raises(ValueError, match="must exceed tau_rise_s"):
        CalciumOperator("GCaMP6s", frame_rate_hz=30.0, tau_decay_s=0.01)
    with pytest.raises(ValueError, match="unknown parameters"):
        fit_kinetics(S, F, Y, "GCaMP6f", fit=("amplitude", "baseline", "tau"))
    with pytest.raises(ValueError, match="is required when indicator is None"):
        CalciumOperator(None, frame_rate_hz=30.0)


def test_bad_predict_calls_are_named():
    op = CalciumOperator("GCaMP6f", frame_rate_hz=30.0)
    spikes = one_unit([0.3], 0.0, 1.0)
    with pytest.raises(ValueError, match=r"frame_times_s\[0\] = 0.0 s is outside the window"):
        op.predict(spikes, op.initial_state(1), [0.0, 0.5])
    with pytest.raises(ValueError, match="holds 2 units"):
        op.predict(spikes, op.initial_state(2), [0.5])
    _, state = op.predict(spikes, op.initial_state(1), [0.5, 1.0])
    with pytest.raises(ValueError, match="state is at t = 1.0 s"):
        op.predict(one_unit([], 2.0, 3.0), state, [2.5])


# ---------------------------------------------------------------------------------------
# real ground truth: Chen et al. 2013 (CASCADE DS09 / DS14)
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_fits():
    # Time stamps mark the soma's scan time: a 1.5 ms exposure ending there.
    out = {}
    for f in FILES:
        gt = load_ground_truth(f)
        assert gt.exposure_s == SOMA_SCAN_EXPOSURE_S
        start = CalciumOperator(gt.indicator, gt.frame_rate_hz, exposure_s=gt.exposure_s)
        args = (gt.spike_times_s, gt.frame_times_s, gt.dff, None)
        out[f.stem] = (
            gt,
            fit_kinetics(*args, fit=("amplitude", "baseline"), start=start),
            fit_kinetics(*args, fit="all", start=start),
        )
    return out


@needs_data
@pytest.mark.parametrize("name", [f.stem for f in FILES])
def test_real_data_r2_preset_and_full(real_fits, name):
    gt, preset, full = real_fits[name]
    assert gt.indicator in INDICATORS and gt.frame_rate_hz == pytest.approx(60.06, rel=1e-3)
    assert preset.r2 >= 0.5, f"{name}: R² with {gt.indicator} preset kinetics {preset.r2:.3f}"
    assert full.r2 >= 0.65, f"{name}: R² of the full fit {full.r2:.3f}"
    assert full.r2 >= preset.r2 - 1e-9  # the full fit nests the preset one


# Observable ΔF/F kinetics of the full fit outside the published ranges, reported in
# docs/calcium.md: kept as strict expected failures so that a change of model or fit that
# brings them in (or pushes others out) shows up.
OUT_OF_RANGE = {
    ("CAttached_Chen2013_GC6s_cell3_full_mini", "decay_s"): "ΔF/F decay 0.95 s < 1.0 s",
}


@needs_data
@pytest.mark.parametrize(
    "name, param",
    [
        pytest.param(
            f.stem, p, marks=pytest.mark.xfail(strict=True, reason=OUT_OF_RANGE[f.stem, p])
        )
        if (f.stem, p) in OUT_OF_RANGE
        else (f.stem, p)
        for f in FILES
        for p in ("rise_s", "decay_s")
    ],
)
def test_real_data_dff_kinetics_in_published_range(real_fits, name, param):
    gt, _, full = real_fits[name]
    lo, hi = PUBLISHED_RANGES[gt.indicator][param]
    value = full.params["dff_" + param]
    assert value == full.operator.dff_kinetics()[("rise_s", "decay_s").index(param)]
    assert lo <= value <= hi, f"{name}: ΔF/F {param} = {value:.4g}"


@needs_data
def test_real_data_gcamp6s_is_slower_than_gcamp6f_in_every_pair(real_fits):
    fits = [(gt.indicator, full.params) for gt, _, full in real_fits.values()]
    for param in ("tau_rise_s", "tau_decay_s", "dff_rise_s", "dff_decay_s"):
        fast = max(p[param] for ind, p in fits if ind == "GCaMP6f")
        slow = min(p[param] for ind, p in fits if ind == "GCaMP6s")
        assert slow > fast, param


@needs_data
def test_fit_model_is_the_predict_model(real_fits):
    # The fit evaluates the kernel directly; predict through SpikeTrains must agree.
    gt, _, full = real_fits[FILES[0].stem]
    op = full.operator
    for j, seg in enumerate(gt.segments):
        t0 = seg.frame_times_s[0] - op.exposure_s
        spikes = one_unit(seg.spike_times_s, t0, seg.frame_times_s[-1])
        values, _ = op.predict(spikes, op.initial_state(1), seg.frame_times_s)
        shift = full.params["baseline"][j] - op.baseline
        np.testing.assert_allclose(values[:, 0] + shift, full.predicted[j], rtol=0, atol=1e-12)


def test_single_segment_file_without_bounds(tmp_path, rng):
    t = np.arange(1, 601) / 30.0
    path = tmp_path / "one.npz"
    np.savez(
        path,
        dff=rng.normal(0, 0.01, t.size).astype(np.float32),
        t=t,
        spike_times=np.array([1.0, 5.0, 9.5]),
        indicator=np.array("GCaMP6s"),
    )
    gt = load_ground_truth(path)
    assert len(gt.segments) == 1 and gt.n_spikes == 3 and gt.indicator == "GCaMP6s"
    assert gt.frame_rate_hz == pytest.approx(30.0)
    assert gt.exposure_s == SOMA_SCAN_EXPOSURE_S
    assert load_ground_truth(path, exposure_s=1 / 30.0).exposure_s == pytest.approx(1 / 30.0)
    with pytest.raises(ValueError, match="exposure_s must be in"):
        load_ground_truth(path, exposure_s=0.1)


# The issue gives the ranges as "≈": read as ±10 % at each end. Values outside the nominal
# range but within that margin are listed in benchmarks/results/calcium_gt.json and
# docs/calcium.md (one: GCaMP6s cell3 decay, 0.95 s against ≈ 1.0 s); the strict nominal
# check above keeps it visible as an expected failure.
APPROXIMATE = 0.10


@needs_data
@pytest.mark.parametrize("name", [f.stem for f in FILES])
def test_real_data_dff_kinetics_in_approximate_published_range(real_fits, name):
    gt, _, full = real_fits[name]
    for param in ("rise_s", "decay_s"):
        lo, hi = PUBLISHED_RANGES[gt.indicator][param]
        value = full.params["dff_" + param]
        assert lo * (1 - APPROXIMATE) <= value <= hi * (1 + APPROXIMATE), (
            f"{name}: {param} = {value:.4g}"
        )
