"""The calcium forward operator: spikes → ΔF/F of two-photon imaging, and its calibration.

Model (all times in s, ΔF/F as a fraction: 0.1 = 10 %)
-------------------------------------------------------
Each spike at t_k adds one unit calcium transient, a double exponential normalised to peak 1,

    k(t) = [exp(−t/τ_decay) − exp(−t/τ_rise)] / k_peak   for t ≥ 0,   0 before,

with k_peak the maximum of the bracket (reached at t* = τ_r τ_d ln(τ_d/τ_r)/(τ_d − τ_r)).
Calcium is counted in units of that single-spike peak, on top of a resting level:

    c(t) = c_rest + Σ_k k(t − t_k).

Fluorescence is a Hill-type function of calcium,

    h(c) = cⁿ                        (supralinear, no saturation: k_sat = None or inf)
    h(c) = cⁿ / (1 + (c/k_sat)ⁿ)     (saturating),

    ΔF/F(t) = baseline + amplitude · [h(c(t)) − h(c_rest)],

so with c_rest > 0 and n > 1 the response to a burst grows faster than the spike count, as
GCaMP6 in L2/3 neurons does, while a single spike still gives a finite response (a model
without resting calcium, c_rest → 0, needs an n-fold larger first-spike response to match
bursts). A frame reports the average of ΔF/F over its exposure (t_f − exposure_s, t_f]
(exposure_s defaults to the frame interval 1/frame_rate; for a soma ROI whose time stamps
mark its scan time, as in the Chen 2013 ground truth, see ``SOMA_SCAN_EXPOSURE_S``): each
exposure is cut at the spikes inside it and every smooth piece integrated with
Gauss–Legendre nodes (relative error ~1e−13 for GCaMP6 kinetics, see ``_GL_NODES``).

Because of the Hill readout and the resting calcium, τ_rise and τ_decay are time constants of
calcium, not of ΔF/F: with n = 2 and c_rest = 1 the ΔF/F transient decays faster than the
calcium. :meth:`CalciumOperator.dff_kinetics` gives the observable rise and decay times of
the model's single-spike ΔF/F, which are what published indicator kinetics measure.

Noise: white Gaussian with standard deviation σ per frame, set by the standardised noise
level of the spike-inference literature (CASCADE; Rupprecht et al., Nat Neurosci 2021)
ν = median|Δ(ΔF/F)| / √frame_rate. For white noise median|Δy| = Φ⁻¹(¾)·√2·σ, so
σ = ν·√frame_rate / (0.6745·√2). ν is kept in the units of ΔF/F (fraction·Hz^−½); CASCADE
quotes it in %·Hz^−½, i.e. 100× larger numbers.

Presets (``INDICATORS``) come from fits of this model to the Chen et al. (2013) ground truth
in /work/shared/data/calcium_gt (see docs/calcium.md and benchmarks/calcium_gt.py);
:func:`fit_kinetics` calibrates the model on a recording of one's own.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.optimize
import scipy.special

from observations.operators import _calcium_kernels as K
from observations.spikes import SpikeTrains

# Φ⁻¹(3/4): the median of |Z| for a standard normal Z.
_MAD_NORMAL = float(math.sqrt(2.0) * scipy.special.erfinv(0.5))

# Gauss–Legendre nodes per smooth piece of an exposure. For an exponential of time constant τ
# averaged over a piece of length L the relative error of six nodes is about
# 2e−16·(L/τ)¹²: 1e−13 for a 33 ms frame and τ = 20 ms, 1e−6 for τ = 5 ms.
_GL_NODES = 6
_gx, _gw = np.polynomial.legendre.leggauss(_GL_NODES)
GL_X = (_gx + 1.0) / 2.0
GL_W = _gw / 2.0

#: Indicator presets for GCaMP6f / GCaMP6s in mouse V1 L2/3 pyramidal cells, all from the
#: Chen et al. (2013) ground truth (CASCADE DS09 / DS14; benchmarks/calcium_gt.py re-derives
#: them with :func:`fit_preset`, with the soma-scan exposure SOMA_SCAN_EXPOSURE_S = 1.5 ms):
#:
#: - tau_rise_s, tau_decay_s: calcium time constants from one pooled fit over all cells of
#:   the indicator (each cell with its own amplitude and baselines, every cell weighted
#:   equally), with hill_n and c_rest held; rounded to two digits (pooled fit: 6f 27.9 ms,
#:   0.881 s; 6s 62.7 ms, 1.635 s). The observable ΔF/F kinetics of the rounded values
#:   (dff_kinetics) are 6f rise 28 ms, decay 0.73 s and 6s rise 62 ms, decay 1.34 s, inside
#:   PUBLISHED_RANGES.
#: - hill_n = 2: the supralinearity of GCaMP6 binding (in-vitro Hill coefficients about 2–3,
#:   Chen et al. 2013). c_rest = 1: resting calcium of the order of one spike's increment.
#:   The data do not pin these two down separately: along the valley of n and c_rest the R²
#:   of every cell changes by less than 0.01 for c_rest from 0 to 3.
#: - amplitude: the median over cells of the amplitude fitted with these kinetics; the
#:   single-spike peak ΔF/F is then amplitude·(2² − 1²) ≈ 0.10 (6f) and 0.066 (6s).
#: - noise_nu: the median CASCADE noise level of those recordings (fraction·Hz^−½). They are
#:   clean single-cell recordings; population imaging is usually noisier — measure yours
#:   with :func:`noise_level_nu`.
INDICATORS: dict[str, dict[str, float]] = {
    "GCaMP6f": {
        "tau_rise_s": 0.028,
        "tau_decay_s": 0.88,
        "hill_n": 2.0,
        "c_rest": 1.0,
        "amplitude": 0.033,
        "noise_nu": 0.0041,
    },
    "GCaMP6s": {
        "tau_rise_s": 0.063,
        "tau_decay_s": 1.6,
        "hill_n": 2.0,
        "c_rest": 1.0,
        "amplitude": 0.022,
        "noise_nu": 0.0043,
    },
}

#: Exposure (s) of a soma ROI in the Chen et al. (2013) ground truth (calcium_gt): the time
#: stamps there mark when the ROI was scanned, not the end of a full-frame exposure. Evidence:
#: in every segment the first frame sits 7.2–9.0 ms after t = 0, i.e. 0.43–0.54 of the
#: 16.65 ms frame interval (a frame-end stamp would sit a whole interval after the start),
#: and the offset differs by up to 0.9 ms between segments of one cell, as a scan time does
#: when the ROI's place in the raster shifts; a soma of ~15 µm is swept in about 1–2 ms of
#: the raster frame. So a frame there averages the ROI over the 1.5 ms before its time
#: stamp. CalciumOperator's default exposure stays the full frame interval.
SOMA_SCAN_EXPOSURE_S = 1.5e-3

#: Published ranges (s) of the observable ΔF/F kinetics used to judge a calibration: GCaMP6f
#: rise 20–40 ms and decay 0.3–0.9 s, GCaMP6s rise 60–160 ms and decay 1–2.7 s (Chen et al.
#: 2013 in vivo kinetics and the decay constants used by spike-inference tools for them).
#: They are measured on fluorescence, so they are compared with
#: :meth:`CalciumOperator.dff_kinetics` (rise_s, decay_s), not with the calcium time
#: constants tau_rise_s, tau_decay_s of the model.
PUBLISHED_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "GCaMP6f": {"rise_s": (0.020, 0.040), "decay_s": (0.3, 0.9)},
    "GCaMP6s": {"rise_s": (0.060, 0.160), "decay_s": (1.0, 2.7)},
}

KINETIC_PARAMS = ("tau_rise_s", "tau_decay_s", "hill_n", "c_rest")


# ---------------------------------------------------------------------------------------
# state
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class CalciumState:
    """Calcium of ``n_units`` units at time ``t_s``: everything a restart needs.

    A frame whose exposure straddles the window boundary needs calcium before the boundary,
    so the state is held one exposure back: the two exponential sums
    a = Σ exp(−(t − t_k)/τ_decay), b = Σ exp(−(t − t_k)/τ_rise) at ``ref_t_s`` over the spikes
    up to then, plus the spikes in (ref_t_s, t_s] themselves (CSR, like SpikeTrains).

    Attributes
    ----------
    t_s : float
        End of the last window (s); NaN for a state that has not been advanced yet.
    ref_t_s : float
        Time (s) of ``ref_ab``; −inf for units at rest.
    ref_ab : (n_units, 2) float64
        The sums (a, b) at ref_t_s.
    recent_times_s : (n_recent,) float64
        Spikes in (ref_t_s, t_s], sorted per unit.
    recent_offsets : (n_units + 1,) int64
    """

    t_s: float
    ref_t_s: float
    ref_ab: np.ndarray
    recent_times_s: np.ndarray
    recent_offsets: np.ndarray

    @property
    def n_units(self) -> int:
        return self.ref_ab.shape[0]


# ---------------------------------------------------------------------------------------
# the operator
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CalciumOperator:
    """Spikes → frame-averaged ΔF/F (model in the module docstring).

    Parameters
    ----------
    indicator : {"GCaMP6f", "GCaMP6s"} or None
        Preset for every parameter left None; with None, the four kinetic parameters must
        be given (amplitude then defaults to 1 and noise_nu to 0).
    frame_rate_hz : float
        Imaging frame rate (Hz); a frame integrates over the 1/frame_rate_hz before it.
    tau_rise_s, tau_decay_s : float
        Rise and decay time constants (s) of the single-spike transient; 0 < rise < decay.
    hill_n : float
        Hill exponent n of the readout (> 0; 1 = linear).
    c_rest : float
        Resting calcium (≥ 0) in units of the single-spike transient's peak.
    k_sat : float or None
        Half-saturation calcium (same units); None or inf: no saturation.
    amplitude : float
        ΔF/F per unit of h (fraction); the single-spike peak is about
        amplitude·[h(c_rest + 1) − h(c_rest)] (:attr:`single_spike_dff`).
    baseline : float
        ΔF/F at rest (fraction); default 0.
    noise_nu : float
        CASCADE noise level ν in ΔF/F fraction·Hz^−½ (0.01 = 1 %·Hz^−½).
    exposure_s : float, optional
        Time (s) over which a frame averages the ROI, ending at the frame's time stamp;
        default the whole frame interval 1/frame_rate_hz. In a raster scan a soma is swept
        in about a millisecond, so a short exposure ending at the ROI's scan time describes
        a soma ROI better when the time stamps mark that scan time.
    """

    indicator: str | None
    frame_rate_hz: float
    tau_rise_s: float | None = None
    tau_decay_s: float | None = None
    hill_n: float | None = None
    c_rest: float | None = None
    k_sat: float | None = None
    amplitude: float | None = None
    baseline: float | None = None
    noise_nu: float | None = None
    exposure_s: float | None = None
    _scale: float = field(init=False, repr=False, compare=False, default=1.0)

    def __post_init__(self):
        if self.indicator is not None and self.indicator not in INDICATORS:
            raise ValueError(
                f"unknown indicator {self.indicator!r}; known: {sorted(INDICATORS)} "
                "(or None with every kinetic parameter given)"
            )
        # Without an indicator the kinetics must be given; amplitude defaults to 1 and the
        # noise to none.
        preset = INDICATORS.get(self.indicator, {"amplitude": 1.0, "noise_nu": 0.0})
        for name in (*KINETIC_PARAMS, "amplitude", "noise_nu"):
            if getattr(self, name) is None:
                if name not in preset:
                    raise ValueError(f"{name} is required when indicator is None")
                object.__setattr__(self, name, float(preset[name]))
            else:
                object.__setattr__(self, name, float(getattr(self, name)))
        if self.baseline is None:
            object.__setattr__(self, "baseline", 0.0)
        object.__setattr__(self, "baseline", float(self.baseline))
        k_sat = math.inf if self.k_sat is None else float(self.k_sat)
        object.__setattr__(self, "k_sat", k_sat)
        object.__setattr__(self, "frame_rate_hz", float(self.frame_rate_hz))
        if self.exposure_s is None and math.isfinite(self.frame_rate_hz) and self.frame_rate_hz > 0:
            object.__setattr__(self, "exposure_s", 1.0 / self.frame_rate_hz)

        def need(ok: bool, msg: str):
            if not ok:
                raise ValueError(msg)

        need(
            math.isfinite(self.frame_rate_hz) and self.frame_rate_hz > 0,
            f"frame_rate_hz must be > 0, got {self.frame_rate_hz}",
        )
        need(
            math.isfinite(self.tau_rise_s) and self.tau_rise_s > 0,
            f"tau_rise_s must be > 0 s, got {self.tau_rise_s}",
        )
        need(
            math.isfinite(self.tau_decay_s) and self.tau_decay_s > 0,
            f"tau_decay_s must be > 0 s, got {self.tau_decay_s}",
        )
        need(
            self.tau_decay_s > self.tau_rise_s,
            f"tau_decay_s ({self.tau_decay_s}) must exceed tau_rise_s ({self.tau_rise_s})",
        )
        need(
            math.isfinite(self.hill_n) and self.hill_n > 0,
            f"hill_n must be > 0, got {self.hill_n}",
        )
        need(
            math.isfinite(self.c_rest) and self.c_rest >= 0,
            f"c_rest must be ≥ 0, got {self.c_rest}",
        )
        need(k_sat > 0, f"k_sat must be > 0 (or None for no saturation), got {k_sat}")
        exposure = float(self.exposure_s)
        need(
            math.isfinite(exposure) and 0 < exposure <= 1.0 / self.frame_rate_hz + 1e-12,
            f"exposure_s must be in (0, 1/frame_rate_hz], got {self.exposure_s}",
        )
        object.__setattr__(self, "exposure_s", exposure)
        for name in ("amplitude", "baseline"):
            need(math.isfinite(getattr(self, name)), f"{name} must be finite")
        need(
            math.isfinite(self.noise_nu) and self.noise_nu >= 0,
            f"noise_nu must be ≥ 0, got {self.noise_nu}",
        )
        object.__setattr__(self, "_scale", 1.0 / _kernel_peak(self.tau_rise_s, self.tau_decay_s))

    # -- model pieces -----------------------------------------------------------------------
    def kernel(self, t_s) -> np.ndarray:
        """The single-spike transient k(t) (peak 1) at lags ``t_s`` (s); 0 for t < 0."""
        t = np.asarray(t_s, dtype=np.float64)
        pos = np.maximum(t, 0.0)
        k = (np.exp(-pos / self.tau_decay_s) - np.exp(-pos / self.tau_rise_s)) * self._scale
        return np.where(t >= 0, k, 0.0)

    def readout(self, c) -> np.ndarray:
        """h(c) (dimensionless) for calcium ``c`` in single-spike-peak units."""
        c = np.asarray(c, dtype=np.float64)
        return c**self.hill_n / (1.0 + (c / self.k_sat) ** self.hill_n)

    @property
    def single_spike_dff(self) -> float:
        """Peak ΔF/F (fraction) of an isolated spike from rest, without frame averaging."""
        return float(self.amplitude * (self.readout(self.c_rest + 1.0) - self.readout(self.c_rest)))

    def dff_kinetics(self) -> tuple[float, float]:
        """Observable (rise_s, decay_s) of the single-spike ΔF/F response from rest.

        The response to one spike at t = 0, without frame averaging, is
        g(t) = h(c_rest + k(t)) − h(c_rest). h increases with c, so g peaks where k does, at
        t* = τ_r τ_d ln(τ_d/τ_r)/(τ_d − τ_r), with g* = h(c_rest + 1) − h(c_rest); it rises
        monotonically before t* and falls after it.

        * rise_s: the time t_r ≤ t* at which g(t_r) = (1 − 1/e)·g* (time from the spike);
        * decay_s: t_d − t*, with t_d > t* where g(t_d) = g*/e (time from the peak).

        Both are roots of a monotone function on a bracket, solved with scipy's brentq to
        an absolute tolerance of 1e−12 s (far below any frame interval). These are the
        quantities published indicator kinetics describe; with hill_n = 1 and c_rest = 0
        they are those of the double exponential itself, with n > 1 and c_rest > 0 the
        ΔF/F decays faster than the calcium (τ_decay).
        """
        tau_r, tau_d = self.tau_rise_s, self.tau_decay_s
        t_peak = tau_r * tau_d * math.log(tau_d / tau_r) / (tau_d - tau_r)
        h_rest = float(self.readout(self.c_rest))
        peak = float(self.readout(self.c_rest + 1.0)) - h_rest

        def g(t: float) -> float:
            k = (math.exp(-t / tau_d) - math.exp(-t / tau_r)) * self._scale
            return float(self.readout(self.c_rest + k)) - h_rest

        rise_level, decay_level = (1.0 - math.exp(-1.0)) * peak, peak * math.exp(-1.0)
        t_rise = scipy.optimize.brentq(
            lambda t: g(t) - rise_level, 0.0, t_peak, xtol=1e-12, rtol=4 * np.finfo(float).eps
        )
        hi = t_peak + tau_d
        while g(hi) > decay_level:
            hi += tau_d
        t_decay = scipy.optimize.brentq(
            lambda t: g(t) - decay_level, t_peak, hi, xtol=1e-12, rtol=4 * np.finfo(float).eps
        )
        return float(t_rise), float(t_decay - t_peak)

    def replace(self, **changes) -> CalciumOperator:
        """A copy with some parameters changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- state and prediction -----------------------------------------------------------------
    def initial_state(self, n_units: int) -> CalciumState:
        """Every unit at resting calcium, with no spikes in its past."""
        n = int(n_units)
        if n < 0:
            raise ValueError(f"n_units must be ≥ 0, got {n_units}")
        return CalciumState(
            t_s=math.nan,
            ref_t_s=-math.inf,
            ref_ab=np.zeros((n, 2)),
            recent_times_s=np.empty(0),
            recent_offsets=np.zeros(n + 1, np.int64),
        )

    def predict(
        self, spikes: SpikeTrains, state: CalciumState, frame_times_s
    ) -> tuple[np.ndarray, CalciumState]:
        """ΔF/F of each unit at the frames in (spikes.t_start_s, spikes.t_stop_s].

        Parameters
        ----------
        spikes : SpikeTrains
            One member's spikes over the window (n_units units).
        state : CalciumState
            Calcium at spikes.t_start_s: :meth:`initial_state` or the state this method
            returned for the previous window.
        frame_times_s : (n_frames,) float
            Frame times (s), increasing, inside (t_start_s, t_stop_s]; frame f averages
            ΔF/F over (t_f − exposure_s, t_f].

        Returns
        -------
        values : (n_frames, n_units) float64
            ΔF/F (fraction), without noise (see :meth:`add_noise`).
        state : CalciumState
            Calcium at spikes.t_stop_s. Splitting a run into windows gives the same values,
            to rounding (~1e−12), as one call over the whole run.
        """
        if not isinstance(state, CalciumState):
            raise ValueError(
                f"state must be a CalciumState (from initial_state or predict), got {type(state).__name__}"
            )
        if state.n_units != spikes.n_units:
            raise ValueError(
                f"state holds {state.n_units} units but spikes has {spikes.n_units} units"
            )
        t0, t1 = float(spikes.t_start_s), float(spikes.t_stop_s)
        if not math.isnan(state.t_s) and abs(state.t_s - t0) > 1e-9:
            raise ValueError(
                f"state is at t = {state.t_s} s but the window starts at t_start_s = {t0} s"
            )
        frames = np.asarray(frame_times_s, dtype=np.float64).reshape(-1)
        _check_frames(frames, "frame_times_s")
        if frames.size and (frames[0] <= t0 or frames[-1] > t1):
            bad = int(np.flatnonzero((frames <= t0) | (frames > t1))[0])
            raise ValueError(
                f"frame_times_s[{bad}] = {frames[bad]} s is outside the window ({t0}, {t1}] s"
            )
        if frames.size and frames[0] - self.exposure_s < state.ref_t_s:
            raise ValueError(
                "the state does not reach back one exposure before the first frame: it was "
                "made by an operator with a shorter exposure (higher frame_rate_hz)"
            )

        times, offsets = _merge_csr(
            state.recent_times_s, state.recent_offsets, spikes.times_s, spikes.offsets
        )
        ref_a = np.ascontiguousarray(state.ref_ab[:, 0])
        ref_b = np.ascontiguousarray(state.ref_ab[:, 1])
        h = K.frame_means(
            times,
            offsets,
            ref_a,
            ref_b,
            state.ref_t_s,
            frames,
            self.exposure_s,
            *self._kernel_args(),
        )
        values = self.baseline + self.amplitude * h

        # The next window's first exposure starts after t1 − exposure: keep the sums there
        # and the spikes since.
        t_ref = max(t1 - self.exposure_s, state.ref_t_s)
        a, b, n_before = K.advance_reference(
            times, offsets, ref_a, ref_b, state.ref_t_s, t_ref, self.tau_rise_s, self.tau_decay_s
        )
        counts = np.diff(offsets)
        unit = np.repeat(np.arange(counts.size), counts)
        keep = (np.arange(times.size) - offsets[unit]) >= n_before[unit]
        new_offsets = np.zeros_like(offsets)
        np.cumsum(counts - n_before, out=new_offsets[1:])
        new_state = CalciumState(
            t_s=t1,
            ref_t_s=t_ref,
            ref_ab=np.column_stack([a, b]),
            recent_times_s=times[keep],
            recent_offsets=new_offsets,
        )
        return values, new_state

    def calcium(self, state: CalciumState) -> np.ndarray:
        """Calcium c (single-spike-peak units) of each unit at state.t_s, (n_units,)."""
        if math.isnan(state.t_s):
            return np.full(state.n_units, self.c_rest)
        a, b, _ = K.advance_reference(
            state.recent_times_s,
            state.recent_offsets,
            np.ascontiguousarray(state.ref_ab[:, 0]),
            np.ascontiguousarray(state.ref_ab[:, 1]),
            state.ref_t_s,
            state.t_s,
            self.tau_rise_s,
            self.tau_decay_s,
        )
        return self.c_rest + self._scale * (a - b)

    def _kernel_args(self) -> tuple:
        """The trailing arguments of the frame-average kernel: kinetics, readout, nodes."""
        return (
            self.tau_rise_s,
            self.tau_decay_s,
            self._scale,
            self.c_rest,
            self.hill_n,
            self.k_sat,
            GL_X,
            GL_W,
        )

    # -- noise ------------------------------------------------------------------------------
    def noise_sd(self) -> float:
        """σ of the white observation noise per frame (ΔF/F fraction) implied by noise_nu."""
        return noise_sd_from_nu(self.noise_nu, self.frame_rate_hz)

    def R(self, n_obs: int | None = None):
        """Observation-error variance σ² per frame: a float, or (n_obs,) for a diagonal R."""
        var = self.noise_sd() ** 2
        return var if n_obs is None else np.full(int(n_obs), var)

    def add_noise(self, values, rng: np.random.Generator) -> np.ndarray:
        """``values`` plus independent N(0, σ²) noise on every frame and unit (a new array)."""
        values = np.asarray(values)
        dtype = values.dtype if np.issubdtype(values.dtype, np.floating) else np.float64
        noise = rng.normal(0.0, self.noise_sd(), size=values.shape)
        return (values + noise).astype(dtype, copy=False)


def _kernel_peak(tau_rise_s: float, tau_decay_s: float) -> float:
    """Maximum of exp(−t/τ_d) − exp(−t/τ_r) over t ≥ 0 (τ_d > τ_r > 0)."""
    t_peak = tau_rise_s * tau_decay_s * math.log(tau_decay_s / tau_rise_s)
    t_peak /= tau_decay_s - tau_rise_s
    return math.exp(-t_peak / tau_decay_s) - math.exp(-t_peak / tau_rise_s)


def _check_frames(frames: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(frames)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}] is not finite ({frames[i]})")
    if frames.size > 1 and np.any(np.diff(frames) <= 0):
        i = int(np.flatnonzero(np.diff(frames) <= 0)[0]) + 1
        raise ValueError(
            f"{name} must increase strictly: {name}[{i}] = {frames[i]} ≤ {frames[i - 1]}"
        )


def _merge_csr(t_a, off_a, t_b, off_b) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, the spikes of CSR set a followed by those of set b (a's all come first)."""
    t_a = np.asarray(t_a, dtype=np.float64)
    t_b = np.asarray(t_b, dtype=np.float64)
    n_a, n_b = np.diff(off_a), np.diff(off_b)
    offsets = np.zeros(n_a.size + 1, np.int64)
    np.cumsum(n_a + n_b, out=offsets[1:])
    if t_a.size == 0:
        return np.ascontiguousarray(t_b), offsets
    unit = np.concatenate(
        [np.repeat(np.arange(n_a.size), n_a), np.repeat(np.arange(n_b.size), n_b)]
    )
    order = np.argsort(unit, kind="stable")
    return np.concatenate([t_a, t_b])[order], offsets


# ---------------------------------------------------------------------------------------
# noise level
# ---------------------------------------------------------------------------------------
def noise_sd_from_nu(noise_nu: float, frame_rate_hz: float) -> float:
    """σ = ν·√frame_rate / (Φ⁻¹(¾)·√2): white noise with this σ has CASCADE level ν."""
    return float(noise_nu) * math.sqrt(frame_rate_hz) / (_MAD_NORMAL * math.sqrt(2.0))


def noise_level_nu(dff, frame_rate_hz: float):
    """CASCADE noise level ν = median|Δ(ΔF/F)| / √frame_rate (units of ΔF/F per √Hz).

    Parameters
    ----------
    dff : (n_frames,) or (n_frames, n_units) array, or a list of such arrays (segments)
        ΔF/F traces; NaN frames are ignored.
    frame_rate_hz : float

    Returns
    -------
    float, or (n_units,) for 2-D input: ν per segment, the median over segments.
    """
    segs = list(dff) if isinstance(dff, (list, tuple)) else [dff]
    nus = []
    for y in segs:
        y = np.asarray(y, dtype=np.float64)
        d = np.abs(np.diff(y, axis=0))
        with np.errstate(all="ignore"):
            nus.append(np.nanmedian(d, axis=0) / math.sqrt(frame_rate_hz))
    nu = np.nanmedian(np.stack(nus), axis=0)
    return float(nu) if np.ndim(nu) == 0 else nu


# ---------------------------------------------------------------------------------------
# ground truth and calibration
# ---------------------------------------------------------------------------------------
class Segment(NamedTuple):
    """One continuous imaging sweep: frames (s), ΔF/F (fraction) and spike times (s)."""

    frame_times_s: np.ndarray
    dff: np.ndarray
    spike_times_s: np.ndarray


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """A simultaneous imaging + electrophysiology recording, split into segments.

    ``exposure_s`` is the time (s) over which a frame averages the ROI before its time
    stamp: use it as the operator's exposure when fitting (``start=CalciumOperator(...,
    exposure_s=gt.exposure_s)``; :func:`fit_preset` does so by itself).
    """

    segments: list[Segment]
    indicator: str
    frame_rate_hz: float
    name: str
    exposure_s: float = SOMA_SCAN_EXPOSURE_S

    @property
    def frame_times_s(self) -> list[np.ndarray]:
        return [s.frame_times_s for s in self.segments]

    @property
    def dff(self) -> list[np.ndarray]:
        return [s.dff for s in self.segments]

    @property
    def spike_times_s(self) -> list[np.ndarray]:
        return [s.spike_times_s for s in self.segments]

    @property
    def n_spikes(self) -> int:
        return sum(s.spike_times_s.size for s in self.segments)


def load_ground_truth(path, exposure_s: float | None = None) -> GroundTruth:
    """Read a calcium_gt ``.npz`` (keys dff, t, seg_bounds, spike_times, spike_seg_bounds,
    frame_rate, indicator; see /work/shared/data/calcium_gt/README.md) into segments.

    A file without bounds (or with scalar bounds, as single-segment files may carry) is one
    segment. ``exposure_s`` (s): the frame exposure ending at each time stamp; default the
    file's ``exposure_s`` key if it has one, else :data:`SOMA_SCAN_EXPOSURE_S` (time stamps
    mark the soma's scan time, as in the Chen 2013 files).
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as d:
        dff = np.asarray(d["dff"], dtype=np.float64).reshape(-1)
        t = np.asarray(d["t"], dtype=np.float64).reshape(-1)
        spikes = np.asarray(d["spike_times"], dtype=np.float64).reshape(-1)
        sb = np.atleast_1d(d["seg_bounds"]).astype(np.int64) if "seg_bounds" in d else None
        kb = (
            np.atleast_1d(d["spike_seg_bounds"]).astype(np.int64)
            if "spike_seg_bounds" in d
            else None
        )
        indicator = str(d["indicator"]) if "indicator" in d else ""
        frame_rate = float(d["frame_rate"]) if "frame_rate" in d else float("nan")
        if exposure_s is None:
            exposure_s = float(d["exposure_s"]) if "exposure_s" in d else SOMA_SCAN_EXPOSURE_S
    if sb is None or sb.size < 2:
        sb = np.array([0, dff.size])
    if kb is None or kb.size < 2:
        kb = np.array([0, spikes.size])
    if sb.size != kb.size:
        raise ValueError(
            f"{path.name}: seg_bounds has {sb.size} entries, spike_seg_bounds {kb.size}"
        )
    segments = [
        Segment(t[sb[j] : sb[j + 1]], dff[sb[j] : sb[j + 1]], spikes[kb[j] : kb[j + 1]])
        for j in range(sb.size - 1)
    ]
    if not math.isfinite(frame_rate):
        frame_rate = 1.0 / float(np.median(np.diff(segments[0].frame_times_s)))
    exposure_s = float(exposure_s)
    if not (math.isfinite(exposure_s) and 0 < exposure_s <= 1.0 / frame_rate + 1e-12):
        raise ValueError(f"{path.name}: exposure_s must be in (0, 1/frame_rate], got {exposure_s}")
    return GroundTruth(segments, indicator, frame_rate, path.stem, exposure_s)


@dataclass(frozen=True, eq=False)
class FitResult:
    """A calibration of :class:`CalciumOperator` on recorded spikes and ΔF/F.

    Attributes
    ----------
    operator : CalciumOperator
        The fitted operator; its ``baseline`` is the frame-weighted mean of the per-segment
        baselines and its ``noise_nu`` the noise level measured on the data.
    params : dict
        tau_rise_s, tau_decay_s, hill_n, c_rest, k_sat, amplitude, baseline (list, one per
        segment), noise_nu, single_spike_dff, and dff_rise_s, dff_decay_s (the observable
        ΔF/F kinetics, :meth:`CalciumOperator.dff_kinetics`).
    r2 : float
        Fraction of the variance of ΔF/F explained, all segments pooled: 1 − Σ residual² /
        Σ (ΔF/F − its segment's mean)². Variance is taken around each segment's own mean, so
        the per-segment baselines earn no credit.
    r2_per_segment : (n_segments,) float64
    fitted : tuple of str
        The parameter names that were fitted.
    predicted : list of (n_frames_j,) float64
        The fitted model's ΔF/F for each segment.
    nfev : int
        Model evaluations of the nonlinear fit (0 for a linear-only fit).
    at_bounds : tuple of str
        Fitted kinetic parameters that ended on a bound of the search box (a flat direction
        of the fit, or a model that the data push beyond its range).
    """

    operator: CalciumOperator
    params: dict
    r2: float
    r2_per_segment: np.ndarray
    fitted: tuple
    predicted: list
    nfev: int
    at_bounds: tuple = ()


_LINEAR = ("amplitude", "baseline")
# Search box of the nonlinear fit, in the fitted coordinates (see _pack): wide enough for
# any GCaMP, narrow enough to keep the kernel well defined. Hill exponents of GCaMP6 are
# about 2–3 in vitro; 4 leaves room for the in-vivo supralinearity without letting n and
# c_rest run off together along their shallow valley.
_BOUNDS = {
    "tau_rise_s": (math.log(1e-3), math.log(1.0)),
    "tau_decay_s": (math.log(5e-3), math.log(20.0)),  # of τ_decay − τ_rise
    "hill_n": (0.5, 4.0),
    "c_rest": (math.log(1e-3), math.log(1e3)),
}


def fit_kinetics(
    spike_times_s,
    frame_times_s,
    dff,
    indicator: str | None,
    fit="all",
    segments=None,
    start: CalciumOperator | None = None,
) -> FitResult:
    """Calibrate the calcium model on simultaneously recorded spikes and ΔF/F.

    Segments share kinetics and amplitude; each has its own baseline, and the model restarts
    from rest at every segment (it never runs across a boundary). Amplitude and baselines
    enter linearly and are solved in closed form for every trial of the kinetics (variable
    projection), so "all" is a 4-parameter nonlinear least-squares problem
    (scipy.optimize.least_squares, trust-region reflective, started from the preset).

    Parameters
    ----------
    spike_times_s, frame_times_s, dff : arrays or lists of arrays
        Lists: one entry per segment. Flat arrays: one segment, or several with ``segments``.
        Times in s; ΔF/F as a fraction; NaN frames are skipped in the fit. Spikes must lie
        in their segment's imaged interval [first frame − 1/frame_rate, last frame].
    indicator : {"GCaMP6f", "GCaMP6s"} or None
        Preset that supplies the starting (or, for parameters not fitted, the final)
        kinetics; None needs ``start``.
    fit : "all" or a tuple of names
        ("amplitude", "baseline"): only those, with the preset kinetics. "all": also
        tau_rise_s, tau_decay_s, hill_n and c_rest. Any subset of those four may be added to
        ("amplitude", "baseline").
    segments : (frame_bounds, spike_bounds), optional
        For flat arrays: segment j is frames frame_bounds[j]:frame_bounds[j+1] and spikes
        spike_bounds[j]:spike_bounds[j+1].
    start : CalciumOperator, optional
        Starting kinetics (and k_sat) instead of the indicator preset.

    Returns
    -------
    FitResult
    """
    start, data = _setup(spike_times_s, frame_times_s, dff, indicator, segments, start)
    free = [p for p in KINETIC_PARAMS if p in _fit_names(fit)]
    op, nfev, at_bounds = _least_squares(start, free, lambda op: _profile(op, data)[0])
    _, amplitude, baselines, predicted = _profile(op, data)

    ss_res, ss_tot = _sums_of_squares(data, predicted)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2_seg = 1.0 - ss_res / ss_tot
    r2 = float(1.0 - ss_res.sum() / ss_tot.sum())

    n_used = np.array([d.mask.sum() for d in data], dtype=np.float64)
    nu = noise_level_nu([d.dff for d in data], op.frame_rate_hz)
    op = op.replace(
        amplitude=amplitude,
        baseline=float(np.sum(n_used * baselines) / n_used.sum()),
        noise_nu=nu,
    )
    params = {p: float(getattr(op, p)) for p in KINETIC_PARAMS}
    params.update(
        k_sat=None if math.isinf(op.k_sat) else float(op.k_sat),
        amplitude=float(amplitude),
        baseline=[float(b) for b in baselines],
        noise_nu=float(nu),
        single_spike_dff=op.single_spike_dff,
    )
    params["dff_rise_s"], params["dff_decay_s"] = op.dff_kinetics()
    fitted = tuple(_LINEAR) + tuple(free)
    return FitResult(op, params, r2, r2_seg, fitted, predicted, nfev, at_bounds)


def fit_preset(
    recordings: Sequence[GroundTruth],
    indicator: str | None,
    fit=("tau_rise_s", "tau_decay_s"),
    start: CalciumOperator | None = None,
) -> dict:
    """Kinetics shared by several cells of one indicator: how ``INDICATORS`` was made.

    Each recording keeps its own amplitude and per-segment baselines; the kinetics named in
    ``fit`` are common to all, the others stay at the start values. Every recording weighs
    the same (its residuals are divided by the root of its total sum of squares), so the fit
    maximises the mean R² over cells rather than favouring the cell with the largest ΔF/F.
    Without ``start`` the indicator preset starts the fit, with the recordings' exposure
    (``GroundTruth.exposure_s``, the same for all of them).

    Returns
    -------
    dict with the kinetics (tau_rise_s, tau_decay_s, hill_n, c_rest), the observable
    ``dff_rise_s``, ``dff_decay_s`` of those kinetics, ``amplitude`` (the median of the
    cells'), ``noise_nu`` (the median of the cells'), ``r2`` (one per recording) and
    ``at_bounds``.
    """
    if not recordings:
        raise ValueError("fit_preset needs at least one recording")
    if start is None:
        exposures = {float(g.exposure_s) for g in recordings}
        if len(exposures) != 1:
            raise ValueError(f"recordings differ in exposure_s {sorted(exposures)}: pass start")
        if indicator not in INDICATORS:
            raise ValueError(f"unknown indicator {indicator!r}; known: {sorted(INDICATORS)}")
        start = CalciumOperator(
            indicator, frame_rate_hz=recordings[0].frame_rate_hz, exposure_s=exposures.pop()
        )
    free = [p for p in KINETIC_PARAMS if p in set(fit)]
    if set(fit) - set(free):
        raise ValueError(f"fit_preset fits kinetics only; unknown: {sorted(set(fit) - set(free))}")
    setups = [
        _setup(g.spike_times_s, g.frame_times_s, g.dff, indicator, None, start) for g in recordings
    ]
    start = setups[0][0]
    datas = [d for _, d in setups]
    norms = [
        math.sqrt(_sums_of_squares(d, [np.zeros_like(s.dff) for s in d])[1].sum()) for d in datas
    ]

    def residuals(op):
        return np.concatenate([_profile(op, d)[0] / w for d, w in zip(datas, norms, strict=True)])

    op, _, at_bounds = _least_squares(start, free, residuals)
    r2, amps, nus = [], [], []
    for d in datas:
        _, amp, _, pred = _profile(op, d)
        ss_res, ss_tot = _sums_of_squares(d, pred)
        r2.append(float(1.0 - ss_res.sum() / ss_tot.sum()))
        amps.append(amp)
        nus.append(noise_level_nu([s.dff for s in d], op.frame_rate_hz))
    out = {p: float(getattr(op, p)) for p in KINETIC_PARAMS}
    out["dff_rise_s"], out["dff_decay_s"] = op.dff_kinetics()
    out.update(
        amplitude=float(np.median(amps)),
        noise_nu=float(np.median(nus)),
        r2=r2,
        at_bounds=at_bounds,
    )
    return out


def _setup(spike_times_s, frame_times_s, dff, indicator, segments, start):
    """The starting operator (at the data's frame rate) and the checked segments."""
    segs = _as_segments(spike_times_s, frame_times_s, dff, segments)
    if start is None and indicator not in INDICATORS:
        raise ValueError(f"unknown indicator {indicator!r}; known: {sorted(INDICATORS)}")
    steps = np.concatenate([np.diff(np.asarray(s[0], dtype=np.float64)) for s in segs])
    if steps.size == 0 or not np.all(np.isfinite(steps)) or np.median(steps) <= 0:
        raise ValueError("frame_times_s must hold increasing, finite times (s) in every segment")
    frame_rate = 1.0 / float(np.median(steps))
    if start is None:
        start = CalciumOperator(indicator, frame_rate_hz=frame_rate)
    else:
        start = start.replace(frame_rate_hz=frame_rate)
    data = [_prepare(j, t, y, s, start.exposure_s) for j, (t, y, s) in enumerate(segs)]
    if sum(d.spikes.size for d in data) == 0:
        raise ValueError("no spikes in any segment: the amplitude cannot be calibrated")
    return start, data


def _least_squares(start: CalciumOperator, free: list[str], residuals):
    """Minimise Σ residuals(op)² over the kinetics in ``free``.

    Returns the fitted operator, the number of model evaluations, and the names of the
    parameters that ended on a bound of the search box.
    """
    if not free:
        return start, 0, ()
    lo = np.array([_BOUNDS[p][0] for p in free])
    hi = np.array([_BOUNDS[p][1] for p in free])
    if "tau_rise_s" in free and "tau_decay_s" not in free:
        # With τ_decay held, τ_rise must stay below it.
        i = free.index("tau_rise_s")
        hi[i] = min(hi[i], math.log(0.99 * start.tau_decay_s))
    x0 = np.clip(_pack(start, free), lo + 1e-9, hi - 1e-9)
    sol = scipy.optimize.least_squares(
        lambda x: residuals(_unpack(start, free, x)),
        x0,
        bounds=(lo, hi),
        method="trf",
        xtol=1e-8,
        ftol=1e-8,
    )
    tol = 1e-4 * (hi - lo)
    near = (sol.x - lo < tol) | (hi - sol.x < tol)
    at_bounds = tuple(p for p, flag in zip(free, near, strict=True) if flag)
    return _unpack(start, free, sol.x), int(sol.nfev), at_bounds


def _sums_of_squares(data, predicted) -> tuple[np.ndarray, np.ndarray]:
    """Per segment: Σ residual² and Σ (ΔF/F − segment mean)² over the finite frames."""
    ss_res = np.array(
        [np.sum((d.dff - p)[d.mask] ** 2) for d, p in zip(data, predicted, strict=True)]
    )
    ss_tot = np.array([np.sum((d.dff[d.mask] - d.dff[d.mask].mean()) ** 2) for d in data])
    return ss_res, ss_tot


class _SegData(NamedTuple):
    frames: np.ndarray
    dff: np.ndarray
    mask: np.ndarray
    spikes: np.ndarray
    offsets: np.ndarray


def _fit_names(fit) -> set[str]:
    if isinstance(fit, str):
        if fit != "all":
            raise ValueError(f'fit must be "all" or a tuple of parameter names, got {fit!r}')
        return {*_LINEAR, *KINETIC_PARAMS}
    names = set(fit)
    unknown = names - {*_LINEAR, *KINETIC_PARAMS}
    if unknown:
        raise ValueError(
            f"fit names unknown parameters {sorted(unknown)}; choose from "
            f"{list(_LINEAR) + list(KINETIC_PARAMS)} or 'all'"
        )
    if not set(_LINEAR) <= names:
        raise ValueError('fit must include "amplitude" and "baseline" (they are always fitted)')
    return names


def _as_segments(spike_times_s, frame_times_s, dff, segments) -> list[tuple]:
    """Normalise the accepted input layouts to a list of (frames, dff, spikes) per segment."""
    listed = [isinstance(x, (list, tuple)) for x in (spike_times_s, frame_times_s, dff)]
    if any(listed):
        if not all(listed):
            raise ValueError("spike_times_s, frame_times_s and dff must all be lists, or none")
        if not len(spike_times_s) == len(frame_times_s) == len(dff):
            raise ValueError(
                f"segment lists differ in length: {len(spike_times_s)} spike trains, "
                f"{len(frame_times_s)} frame-time arrays, {len(dff)} ΔF/F arrays"
            )
        if segments is not None:
            raise ValueError("segments is only for flat arrays, not lists")
        return list(zip(frame_times_s, dff, spike_times_s, strict=True))
    t = np.asarray(frame_times_s, dtype=np.float64).reshape(-1)
    y = np.asarray(dff, dtype=np.float64).reshape(-1)
    s = np.asarray(spike_times_s, dtype=np.float64).reshape(-1)
    if segments is None:
        return [(t, y, s)]
    fb, sb = (np.atleast_1d(np.asarray(b, dtype=np.int64)) for b in segments)
    if fb.size != sb.size or fb.size < 2:
        raise ValueError("segments must be (frame_bounds, spike_bounds) of equal length ≥ 2")
    if fb[0] != 0 or fb[-1] != t.size or sb[0] != 0 or sb[-1] != s.size:
        raise ValueError(
            f"segment bounds must run from 0 to the number of frames ({t.size}) and of "
            f"spikes ({s.size}); got frames {fb[0]}…{fb[-1]}, spikes {sb[0]}…{sb[-1]}"
        )
    return [
        (t[fb[j] : fb[j + 1]], y[fb[j] : fb[j + 1]], s[sb[j] : sb[j + 1]])
        for j in range(fb.size - 1)
    ]


def _prepare(j: int, t, y, s, exposure_s: float) -> _SegData:
    """Check one segment and lay it out for the kernel."""
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    s = np.sort(np.asarray(s, dtype=np.float64).reshape(-1))
    if t.size != y.size:
        raise ValueError(f"segment {j}: {t.size} frame times but {y.size} ΔF/F values")
    if t.size < 3:
        raise ValueError(f"segment {j}: needs at least 3 frames, has {t.size}")
    _check_frames(t, f"segment {j}: frame_times_s")
    mask = np.isfinite(y)
    if not mask.any():
        raise ValueError(f"segment {j}: dff has no finite value (all NaN)")
    if not np.isfinite(s).all():
        i = int(np.flatnonzero(~np.isfinite(s))[0])
        raise ValueError(f"segment {j}: spike_times_s[{i}] is not finite")
    lo, hi = t[0] - exposure_s, t[-1]
    out = (s < lo) | (s > hi)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ValueError(
            f"segment {j}: spike_times_s[{i}] = {s[i]} s is outside the imaged interval "
            f"[{lo:.6g}, {hi:.6g}] s of its segment (spike and frame times in s, same clock?)"
        )
    return _SegData(t, y, mask, s, np.array([0, s.size], np.int64))


def _segment_h(op: CalciumOperator, d: _SegData) -> np.ndarray:
    """Exposure-averaged h(c) − h(c_rest) at every frame of a segment, from rest."""
    zero = np.zeros(1)
    return K.frame_means(
        d.spikes, d.offsets, zero, zero, -math.inf, d.frames, op.exposure_s, *op._kernel_args()
    )[:, 0]


def _profile(op: CalciumOperator, data: list[_SegData]):
    """Residuals with the best amplitude and per-segment baselines for ``op``'s kinetics.

    Least squares of y = b_j + A·x over the finite frames has the closed form
    A = Σ_j Σ (x − x̄_j)(y − ȳ_j) / Σ_j Σ (x − x̄_j)², b_j = ȳ_j − A x̄_j.
    """
    xs = [_segment_h(op, d) for d in data]
    sxy = sxx = 0.0
    means = []
    for x, d in zip(xs, data, strict=True):
        xm, ym = x[d.mask], d.dff[d.mask]
        mx, my = xm.mean(), ym.mean()
        means.append((mx, my))
        sxy += np.dot(xm - mx, ym - my)
        sxx += np.dot(xm - mx, xm - mx)
    amplitude = sxy / sxx if sxx > 0 else 0.0
    baselines = np.array([my - amplitude * mx for mx, my in means])
    predicted = [b + amplitude * x for b, x in zip(baselines, xs, strict=True)]
    res = np.concatenate([(p - d.dff)[d.mask] for p, d in zip(predicted, data, strict=True)])
    return res, float(amplitude), baselines, predicted


def _pack(op: CalciumOperator, free: Sequence[str]) -> np.ndarray:
    """Fitted coordinates: log τ_rise, log(τ_decay − τ_rise) (keeps τ_decay > τ_rise),
    n, log c_rest."""
    x = []
    for p in free:
        if p == "tau_rise_s":
            x.append(math.log(op.tau_rise_s))
        elif p == "tau_decay_s":
            x.append(math.log(op.tau_decay_s - op.tau_rise_s))
        elif p == "hill_n":
            x.append(op.hill_n)
        else:
            x.append(math.log(max(op.c_rest, 1e-3)))
    return np.array(x, dtype=np.float64)


def _unpack(op: CalciumOperator, free: Sequence[str], x) -> CalciumOperator:
    v = dict(zip(free, x, strict=True))
    tau_r = math.exp(v["tau_rise_s"]) if "tau_rise_s" in v else op.tau_rise_s
    if "tau_decay_s" in v:
        tau_d = tau_r + math.exp(v["tau_decay_s"])
    else:
        tau_d = op.tau_decay_s
    return op.replace(
        tau_rise_s=tau_r,
        tau_decay_s=tau_d,
        hill_n=float(v.get("hill_n", op.hill_n)),
        c_rest=math.exp(v["c_rest"]) if "c_rest" in v else op.c_rest,
    )
