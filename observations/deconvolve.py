"""Spike events from calcium imaging: non-negative AR(1) deconvolution (OASIS).

Model (Friedrich, Zhou & Paninski 2017, PLoS Comput Biol 13:e1005423), per neuron and frame t:

    c_t = g·c_{t−1} + s_t,   s_t ≥ 0          (calcium; s_0 = c_0)
    y_t = b + c_t + ε_t,     ε_t ~ N(0, σ²)   (the trace)

and the estimate is the exact solution of the convex problem

    min_c ½‖y − b − c‖² + λ·Σ_t s_t   subject to s ≥ 0,

found in O(T) by the pool-adjacent-violators pass of :func:`_deconvolve_kernels.oasis_ar1`
(or, with ``s_min`` > 0, OASIS's greedy hard-threshold variant: s_t = 0 or s_t ≥ s_min).

Parameters not given are estimated from the trace:

* g = exp(−1/(τ_decay·frame_rate)) from a decay time, or else AR(1) Yule–Walker on the
  autocovariance γ with the noise removed from lag 0: g = γ(1)/(γ(0) − σ²). Slow baseline
  drift and bursts that decay more slowly than single spikes bias that estimate towards 1;
  prefer a decay time (an indicator preset) where one is known.
* σ from the power spectral density's high-frequency half (Welch, frequencies in
  (¼, ½] of the frame rate), where the calcium has little power: for white noise the
  one-sided density is 2σ²/frame_rate, so σ = √(mean PSD·frame_rate/2).
* b, the resting level: by default the 10th percentile of the trace (robust to the long
  tails of bursts, about 1.3σ low on a quiet trace; the deconvolution takes the small
  constant excess as calcium); ``baseline="joint"`` minimises the objective over b as well
  (the problem stays convex in (b, c)), which model mismatch on large bursts can drag low.
* λ = lam_z·σ/√(1 − g²): pure noise projected on one AR(1) transient (1, g, g², …) has
  standard deviation σ·‖h‖ = σ/√(1 − g²), so with lam_z = 1 the penalty removes events a
  one-σ noise excursion would create; a kept event shrinks by lam_z·σ·√(1 − g²).

Time resolution. Events are found at frame times: an event at frame f stands for spikes in
(t_{f−1}, t_f], so inferred spike times carry the frame interval 1/frame_rate as their
resolution (16.7 ms at 60 Hz), and the indicator's rise moves events 1–2 frames after the
spikes on the Chen et al. (2013) recordings. Millisecond lags (GLMCC's synaptic delays and
its 1–10 ms PSP kernel) cannot be recovered from such events: check with
:func:`require_time_resolution` before handing them to an estimator that needs them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.signal
import xarray as xr

from observations import _deconvolve_kernels as K
from observations.operators.calcium import INDICATORS, CalciumOperator
from observations.spikes import SpikeTrains

#: Percentile of the trace used as the resting level b when no baseline is given.
BASELINE_PERCENTILE = 10.0


@dataclass(frozen=True, eq=False)
class AR1Result:
    """One deconvolved trace (units of the input trace y, e.g. ΔF/F fraction).

    Attributes
    ----------
    c : (T,) float64
        Calcium above the baseline, c_t = g·c_{t−1} + s_t.
    s : (T,) float64
        Events s_t ≥ 0 (exactly 0 where nothing happens); s_0 = c_0 holds whatever calcium
        the trace starts with.
    b : float
        Baseline (resting level) of y.
    g : float
        AR(1) coefficient per frame, in (0, 1).
    sigma : float
        Noise standard deviation of y per frame.
    lam : float
        The L1 weight λ used (units of y).
    s_min : float
        The hard threshold used (0 for the convex L1 problem).
    objective : float
        ½‖y − b − c‖² + λ·Σ s at the solution.
    """

    c: np.ndarray
    s: np.ndarray
    b: float
    g: float
    sigma: float
    lam: float
    s_min: float
    objective: float


def noise_sigma_psd(y, frame_rate_hz: float = 1.0) -> float:
    """Noise standard deviation (units of y) from the high-frequency half of the PSD.

    Welch's one-sided density P(f) (segments of ≤ 256 frames), averaged over
    frame_rate/4 < f ≤ frame_rate/2: for white noise P = 2σ²/frame_rate. The result does not
    depend on ``frame_rate_hz``; it is there so that the units read right.
    """
    y = np.asarray(y, dtype=np.float64)
    f, P = scipy.signal.welch(y, fs=frame_rate_hz, nperseg=min(256, y.size))
    hi = f > frame_rate_hz / 4.0
    return float(math.sqrt(np.mean(P[hi]) * frame_rate_hz / 2.0))


def ar1_from_autocovariance(y, sigma: float) -> float:
    """AR(1) coefficient g = γ(1)/(γ(0) − σ²) (Yule–Walker with the noise variance σ² taken
    off lag 0), clipped into [0.01, 0.999]."""
    y = np.asarray(y, dtype=np.float64)
    y = y - y.mean()
    T = y.size
    g0 = float(np.dot(y, y)) / T - sigma**2
    g1 = float(np.dot(y[:-1], y[1:])) / T
    g = g1 / g0 if g0 > 0 else 0.01
    return float(min(max(g, 0.01), 0.999))


def _objective(y, c, s, lam):
    return 0.5 * float(np.sum((y - c) ** 2)) + lam * float(np.sum(s))


def deconvolve_ar1(
    y,
    frame_rate_hz: float,
    g: float | None = None,
    *,
    decay_s: float | None = None,
    sigma: float | None = None,
    baseline: float | str = "percentile",
    lam: float | None = None,
    lam_z: float = 1.0,
    s_min: float = 0.0,
) -> AR1Result:
    """Deconvolve one calcium trace with the non-negative AR(1) model (module docstring).

    Parameters
    ----------
    y : (T,) array
        Fluorescence or ΔF/F of one neuron, one value per frame, no NaN; not modified.
    frame_rate_hz : float
        Frames per second (> 0).
    g : float in (0, 1), optional
        AR(1) coefficient per frame. Default exp(−1/(decay_s·frame_rate_hz)) when
        ``decay_s`` is given, else estimated from the autocovariance.
    decay_s : float, optional
        Decay time constant (s) of a transient in y.
    sigma : float, optional
        Noise standard deviation of y per frame; default from the PSD (:func:`noise_sigma_psd`).
    baseline : float, "percentile" or "joint"
        The resting level b of y; "percentile": the BASELINE_PERCENTILE-th percentile,
        "joint": minimised with c (bounded scalar search on the convex profile objective).
    lam : float, optional
        L1 weight λ ≥ 0 (units of y); default lam_z·σ/√(1 − g²).
    s_min : float
        ≥ 0; > 0 switches to the hard-threshold variant (then λ defaults to 0).

    Returns
    -------
    AR1Result with c, s (T,) in units of y, and b, g, sigma, lam.

    Raises
    ------
    ValueError
        Empty or non-1-D y, a NaN or infinite frame (its index is named), a frame rate that
        is not > 0, g outside (0, 1), negative λ or s_min.
    """
    yy = _check_trace(y, "y")
    fr = _check_rate(frame_rate_hz)
    sig = noise_sigma_psd(yy, fr) if sigma is None else float(sigma)
    if not (math.isfinite(sig) and sig >= 0):
        raise ValueError(f"sigma must be finite and ≥ 0, got {sigma}")
    if g is None:
        if decay_s is not None:
            if not (math.isfinite(decay_s) and decay_s > 0):
                raise ValueError(f"decay_s must be > 0 s, got {decay_s}")
            g = math.exp(-1.0 / (decay_s * fr))
        else:
            g = ar1_from_autocovariance(yy, sig)
    g = float(g)
    if not (0.0 < g < 1.0):
        raise ValueError(f"g must lie in (0, 1), got {g}")
    s_min = float(s_min)
    if not (math.isfinite(s_min) and s_min >= 0):
        raise ValueError(f"s_min must be ≥ 0, got {s_min}")
    if lam is None:
        lam = 0.0 if s_min > 0 else lam_z * sig / math.sqrt(1.0 - g * g)
    lam = float(lam)
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be ≥ 0, got {lam}")

    if isinstance(baseline, str):
        if baseline == "percentile":
            b = float(np.percentile(yy, BASELINE_PERCENTILE))
        elif baseline == "joint":
            b = _joint_baseline(yy, g, lam, s_min)
        else:
            raise ValueError(f"baseline must be a number, 'percentile' or 'joint', got {baseline!r}")
    else:
        b = float(baseline)
        if not math.isfinite(b):
            raise ValueError(f"baseline must be finite, got {baseline}")
    c, s = K.oasis_ar1(yy - b, g, lam, s_min)
    return AR1Result(c, s, b, g, sig, lam, s_min, _objective(yy - b, c, s, lam))


def _joint_baseline(y, g, lam, s_min) -> float:
    def profile(b):
        c, s = K.oasis_ar1(y - b, g, lam, s_min)
        return _objective(y - b, c, s, lam)

    lo, med = float(np.min(y)), float(np.median(y))
    span = max(med - lo, 1e-12)
    r = scipy.optimize.minimize_scalar(
        profile, bounds=(lo - span, med), method="bounded", options={"xatol": 1e-9 * span}
    )
    return float(r.x)


def require_time_resolution(info, needed_s: float, purpose: str = "this analysis") -> None:
    """Refuse spike times that are coarser than an analysis needs.

    ``info`` is the Dataset from :func:`events_from_calcium` (or its ``time_resolution_s``
    as a number). Raises ValueError when time_resolution_s > needed_s, e.g.
    ``require_time_resolution(info, 1e-3, "GLMCC")`` for millisecond lags: events at a
    60 Hz frame rate locate spikes only to 16.7 ms, and a cross-correlogram of them at 1 ms
    lags would be noise shaped by the frame grid.
    """
    res = float(info.attrs["time_resolution_s"]) if hasattr(info, "attrs") else float(info)
    if res > needed_s:
        raise ValueError(
            f"{purpose} needs spike times to {needed_s * 1e3:g} ms but these events are at frame "
            f"resolution {res * 1e3:.3g} ms (1/frame_rate); calcium-derived events cannot "
            "support it — use electrophysiology spikes"
        )


def events_from_calcium(
    dff: xr.DataArray,
    frame_rate_hz: float | None = None,
    decay_s: float | None = None,
    *,
    indicator: str | None = None,
    spike_dff: float | None = None,
    linearize: bool | None = None,
    baseline: float | str = "percentile",
    lam_z: float = 1.0,
    s_min: float = 0.0,
) -> tuple[SpikeTrains, xr.Dataset]:
    """Spike events of every neuron of a (time, neuron) ΔF/F array.

    Each neuron is deconvolved on its own (:func:`deconvolve_ar1`), then its events s are
    turned into spike counts with the single-spike event size a₁: within each run of
    consecutive frames with s > 0, the cumulative Σ s/a₁ is rounded to the nearest integer
    and a spike is placed at each frame where it steps up (a run holds round(Σ_run s/a₁)
    spikes; an isolated event of size s gives round(s/a₁)). Every spike gets the time stamp
    of its frame, which stands for (t_{f−1}, t_f].

    With an indicator preset (``indicator`` or ``dff.attrs["indicator"]``, one of
    observations.operators.INDICATORS), ``linearize`` (default True then) first inverts the
    preset's static readout ΔF/F − b = amplitude·[h(c_rest + x) − h(c_rest)] to calcium x in
    units of the single-spike peak, so that bursts add linearly (with the presets' n = 2,
    two spikes give 2.7× and five 11.7× a single spike's ΔF/F); x is deconvolved with the
    preset's calcium τ_decay, and a₁ is the amplitude of the kernel's exponential tail
    (1.16 for GCaMP6f) in those units. Without linearising, y = ΔF/F is deconvolved with
    the preset's observable ΔF/F decay (CalciumOperator.dff_kinetics) and a₁ = the preset's
    single-spike ΔF/F peak (CalciumOperator.single_spike_dff).

    Parameters
    ----------
    dff : xarray.DataArray, dims (time, neuron)
        ΔF/F (fraction); coords ``time`` (s, increasing, evenly spaced) and ``neuron``
        (integer ids); attrs ``frame_rate_hz`` and ``indicator`` used when present. No NaN.
        Not modified.
    frame_rate_hz : float, optional
        Default ``dff.attrs["frame_rate_hz"]``, else 1/median frame interval.
    decay_s : float, optional
        Decay time constant (s) of what is deconvolved (calcium when linearising, else ΔF/F);
        default from the indicator preset, else estimated per neuron (autocovariance).
    indicator : str, optional
        Preset name; default ``dff.attrs.get("indicator")`` when it is a known preset.
    spike_dff : float, optional
        Peak ΔF/F (fraction) of one spike for these cells; rescales the preset's amplitude
        (or is a₁ itself without a preset). Without a preset or this, a₁ is estimated per
        neuron as the median size of event runs larger than 4σ√(1 − g²) — a crude guess that
        counts a typical burst as one spike.
    linearize : bool, optional
        Invert the preset's readout first (default: True with a preset, else impossible).
    baseline, lam_z, s_min
        As in :func:`deconvolve_ar1` (baseline applies to ΔF/F, before any linearising).

    Returns
    -------
    spikes : SpikeTrains
        Units = the neuron ids; times (s) at frame times; interval [t_0 − 1/frame_rate, t_last].
    info : xarray.Dataset
        dims (neuron) g, sigma, baseline, lam, a1 (single-spike event size), n_spikes; dims
        (time, neuron) c and s (what was deconvolved: calcium in spike-peak units when
        linearised, else ΔF/F); attrs time_resolution_s = 1/frame_rate (the resolution of
        every event time), frame_rate_hz, units, method.

    Raises
    ------
    ValueError
        Wrong dims, empty array, NaN/inf (naming the neuron id, frame index and time), a
        frame rate that is not > 0, bad decay_s or spike_dff.
    """
    if not isinstance(dff, xr.DataArray):
        raise ValueError(f"dff must be an xarray.DataArray with dims (time, neuron), got {type(dff).__name__}")
    if set(dff.dims) != {"time", "neuron"} or dff.ndim != 2:
        raise ValueError(f"dff must have dims (time, neuron), got {dff.dims}")
    da = dff.transpose("time", "neuron")
    n_t, n_u = da.shape
    if n_t < 2 or n_u == 0:
        raise ValueError(f"dff is empty: {n_t} frames × {n_u} neurons (need ≥ 2 frames, ≥ 1 neuron)")
    Y = np.array(da.values, dtype=np.float64)  # a copy: the caller's array is never touched
    times = (
        np.asarray(da["time"].values, dtype=np.float64)
        if "time" in da.coords
        else None
    )
    ids = np.asarray(da["neuron"].values) if "neuron" in da.coords else np.arange(n_u)
    bad = ~np.isfinite(Y)
    if bad.any():
        f, k = np.argwhere(bad)[0]
        when = f" (time {times[f]:g} s)" if times is not None else ""
        raise ValueError(
            f"dff has a non-finite value ({Y[f, k]}) for neuron {ids[k]} at frame {f}{when}; "
            f"{int(bad.sum())} such values in all — drop or interpolate those frames first"
        )
    if frame_rate_hz is None:
        if "frame_rate_hz" in da.attrs:
            frame_rate_hz = float(da.attrs["frame_rate_hz"])
        elif times is not None:
            dt = np.diff(times)
            frame_rate_hz = 1.0 / float(np.median(dt)) if np.median(dt) > 0 else float("nan")
        else:
            raise ValueError("frame_rate_hz is not given, not in dff.attrs and there is no time coord")
    fr = _check_rate(frame_rate_hz)
    if times is None:
        times = np.arange(1, n_t + 1) / fr
    if np.any(np.diff(times) <= 0):
        f = int(np.flatnonzero(np.diff(times) <= 0)[0]) + 1
        raise ValueError(f"dff time coord must increase; frame {f} ({times[f]} s) does not")
    try:
        unit_ids = ids.astype(np.int64)
        if not np.array_equal(unit_ids, ids):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"dff neuron ids must be integers, got {ids[:5]!r}") from None

    if indicator is None:
        ind = da.attrs.get("indicator")
        indicator = ind if ind in INDICATORS else None
    if spike_dff is not None and not (math.isfinite(spike_dff) and spike_dff > 0):
        raise ValueError(f"spike_dff must be > 0, got {spike_dff}")
    if decay_s is not None and not (math.isfinite(decay_s) and decay_s > 0):
        raise ValueError(f"decay_s must be > 0 s, got {decay_s}")
    if linearize is None:
        linearize = indicator is not None
    if linearize and indicator is None:
        raise ValueError("linearize=True needs an indicator preset (indicator= or dff.attrs)")

    op = None
    if indicator is not None:
        op = CalciumOperator(indicator, fr)
        if spike_dff is not None:
            op = op.replace(amplitude=op.amplitude * spike_dff / op.single_spike_dff)
        if decay_s is None:
            decay_s = op.tau_decay_s if linearize else op.dff_kinetics()[1]
    if linearize:
        a1_fixed = _tail_amplitude(op.tau_rise_s, op.tau_decay_s)
        units = "calcium (single-spike peak units)"
    else:
        a1_fixed = spike_dff if op is None else op.single_spike_dff
        units = "dff (fraction)"

    C = np.empty((n_t, n_u), np.float32)
    S = np.empty((n_t, n_u), np.float32)
    per = {k: np.empty(n_u) for k in ("g", "sigma", "baseline", "lam", "a1")}
    n_spk = np.empty(n_u, np.int64)
    all_t, all_id = [], []
    for k in range(n_u):
        y = Y[:, k]
        if linearize:
            b = _resting_level(y, baseline)
            x = _invert_readout(op, y - b)
            r = deconvolve_ar1(x, fr, decay_s=decay_s, baseline=0.0, lam_z=lam_z, s_min=s_min)
        else:
            r = deconvolve_ar1(y, fr, decay_s=decay_s, baseline=baseline, lam_z=lam_z, s_min=s_min)
            b = r.b
        a1 = a1_fixed if a1_fixed is not None else _estimate_a1(r)
        n = K.counts_from_events(r.s, float(a1))
        C[:, k], S[:, k] = r.c, r.s
        per["g"][k], per["sigma"][k], per["baseline"][k] = r.g, r.sigma, b
        per["lam"][k], per["a1"][k] = r.lam, a1
        n_spk[k] = n.sum()
        all_t.append(np.repeat(times, n))
        all_id.append(np.full(int(n.sum()), unit_ids[k]))
    t0 = float(times[0] - 1.0 / fr)
    spikes = SpikeTrains.from_pairs(
        np.concatenate(all_t), np.concatenate(all_id), t0, float(times[-1]), unit_ids=unit_ids
    )
    coords = {"time": times, "neuron": unit_ids}
    info = xr.Dataset(
        {
            "c": (("time", "neuron"), C),
            "s": (("time", "neuron"), S),
            "g": ("neuron", per["g"]),
            "sigma": ("neuron", per["sigma"]),
            "baseline": ("neuron", per["baseline"]),
            "lam": ("neuron", per["lam"]),
            "a1": ("neuron", per["a1"]),
            "n_spikes": ("neuron", n_spk),
        },
        coords=coords,
        attrs={
            "time_resolution_s": 1.0 / fr,
            "frame_rate_hz": fr,
            "units": units,
            "indicator": indicator or "",
            "linearized": int(bool(linearize)),
            "method": "non-negative AR(1) deconvolution (OASIS, Friedrich et al. 2017)"
            + (f", hard threshold s_min={s_min}" if s_min > 0 else f", L1 lam_z={lam_z}"),
            "note": "spike times are frame times: each stands for (t_{f-1}, t_f]; "
            "millisecond lags cannot be resolved",
        },
    )
    return spikes, info


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------
def _check_trace(y, name: str) -> np.ndarray:
    arr = np.array(y, dtype=np.float64)  # a copy
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one trace), got shape {arr.shape}")
    if arr.size < 2:
        raise ValueError(f"{name} is empty or too short: {arr.size} frames (need ≥ 2)")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} has a non-finite value ({arr[i]}) at frame {i}; {int(bad.sum())} such frames"
        )
    return arr


def _check_rate(frame_rate_hz) -> float:
    try:
        fr = float(frame_rate_hz)
    except (TypeError, ValueError):
        raise ValueError(f"frame_rate_hz must be a number > 0, got {frame_rate_hz!r}") from None
    if not (math.isfinite(fr) and fr > 0):
        raise ValueError(f"frame_rate_hz must be > 0, got {frame_rate_hz}")
    return fr


def _resting_level(y, baseline) -> float:
    if isinstance(baseline, str):
        if baseline == "percentile":
            return float(np.percentile(y, BASELINE_PERCENTILE))
        raise ValueError(
            f"with linearize the baseline must be a number or 'percentile', got {baseline!r}"
        )
    b = float(baseline)
    if not math.isfinite(b):
        raise ValueError(f"baseline must be finite, got {baseline}")
    return b


def _invert_readout(op: CalciumOperator, u) -> np.ndarray:
    """Calcium x ≥ 0 (single-spike-peak units) with amplitude·[h(c_rest + x) − h(c_rest)] = u.

    h(c) = cⁿ/(1 + (c/k_sat)ⁿ), so cⁿ = z/(1 − z/k_satⁿ) for z = h(c) < k_satⁿ. Values below
    rest give x < 0 down to −c_rest, so the noise around rest stays symmetric-ish; the
    deconvolution's constraint handles them.
    """
    n = op.hill_n
    z = np.asarray(u) / op.amplitude + float(op.readout(op.c_rest))
    z = np.maximum(z, 0.0)
    if math.isfinite(op.k_sat):
        cap = op.k_sat**n
        z = np.minimum(z, cap * (1 - 1e-9))
        z = z / (1.0 - z / cap)
    return z ** (1.0 / n) - op.c_rest


def _tail_amplitude(tau_rise_s: float, tau_decay_s: float) -> float:
    """Amplitude of exp(−t/τ_decay) in the peak-normalised kernel
    k(t) = [exp(−t/τ_d) − exp(−t/τ_r)]/k_peak: 1/k_peak, the AR(1) event of one spike."""
    tr, td = tau_rise_s, tau_decay_s
    tp = tr * td * math.log(td / tr) / (td - tr)
    return 1.0 / (math.exp(-tp / td) - math.exp(-tp / tr))


def _estimate_a1(r: AR1Result) -> float:
    """Median size of event runs larger than 4σ√(1 − g²) (the noise of one event's size)."""
    s = r.s
    nz = s > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], nz.astype(np.int8), [0]])))
    sizes = np.add.reduceat(s, edges[::2]) if edges.size else np.empty(0)
    floor = 4.0 * r.sigma * math.sqrt(1.0 - r.g**2)
    big = sizes[sizes > floor]
    return float(np.median(big)) if big.size else max(floor, np.finfo(float).tiny)
