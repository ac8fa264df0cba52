"""GLMCC: directed monosynaptic connections from the cross-correlograms of spike trains.

Kobayashi, Kurita, Kurth, Kitano, Mizuseki, Diesmann, Richmond & Shinomoto (2019),
"Reconstructing neuronal circuitry from parallel spike trains", Nat Commun 10:4468.

For a pair (pre, post) the lags t = t_post − t_pre in (−W, W) are an inhomogeneous Poisson
process with rate c(t) = exp(a(t) + J₊ f(t) + J₋ f(−t)), f(s) = e^{−(s−d)/τ} for s ≥ d:
a(t) (piecewise constant on 1-ms bins, smoothed by the prior −(β/2Δ)Σ(a_{k+1} − a_k)²)
absorbs slow common modulation, J₊ is the effect of pre on post after the delay d and J₋
that of post on pre. The MAP fit uses exact bin integrals and a Levenberg–Marquardt Newton
solve in O(M) (see ``_glmcc_kernels``); significance by the Wald-type threshold
1.57·z_α/√(τ c̄) or by a likelihood ratio against J = 0; PSP (mV) = 2.532·J (J > 0) or
0.612·J (J < 0), the authors' calibration.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.special import pdtr, pdtrc

from inference import _glmcc_kernels as K
from observations.spikes import SpikeTrains

PSP_PER_J_EXC_MV = 2.532
PSP_PER_J_INH_MV = 0.612
WALD_FACTOR = 1.57
DATA_RULE = 10.0  # τ c̄ must exceed this for a side to be tested
LR_CHI2_1E4 = 15.137  # χ²₁ quantile at α = 10⁻⁴
J_BOUNDS = (-3.0, 5.0)
STATUS = ("ok", "insufficient_data", "not_converged")
PROGRESS_BLOCK = 4096  # pairs per cross-correlogram call when reporting progress


def z_two_sided(alpha: float) -> float:
    """Standard-normal quantile z with P(|Z| > z) = alpha."""
    from scipy.special import ndtri

    return float(-ndtri(alpha / 2.0))


def psp_mv(J) -> np.ndarray:
    """Postsynaptic potential (mV) of a coupling J: 2.532·J if J > 0, 0.612·J otherwise."""
    J = np.asarray(J, dtype=np.float64)
    return np.where(J > 0, PSP_PER_J_EXC_MV * J, PSP_PER_J_INH_MV * J)


def required_recording_time_s(
    rate_pre_hz, rate_post_hz, psp_mv, tau_ms: float = 4.0, alpha: float = 0.001,
    include_data_rule: bool = False,
):  # fmt: skip
    """Recording length (s) at which a synapse of ``psp_mv`` crosses the Wald threshold.

    The threshold is |J| > 1.57·z_α/√(τ c̄) with c̄ ≈ λ_pre λ_post T (lags per ms near the
    delay, for a recording of T), so T = (1.57 z_α/J)² / (τ λ_pre λ_post), i.e.
    T ∝ (λ_pre λ_post w²)⁻¹. Rates in Hz, τ in ms, returned in s.

    With ``include_data_rule`` the result is also at least the length at which the pair is
    tested at all (τ c̄ > 10, T = 10/(τ λ_pre λ_post)): the binding limit for strong
    synapses between slow neurons.
    """
    J = np.abs(np.asarray(psp_mv, dtype=np.float64))
    J = np.where(np.asarray(psp_mv) > 0, J / PSP_PER_J_EXC_MV, J / PSP_PER_J_INH_MV)
    z = z_two_sided(alpha)
    rate_prod_per_ms2 = np.asarray(rate_pre_hz) * np.asarray(rate_post_hz) * 1e-6  # (1/ms)²
    # c̄ [lags/ms] = λ_pre λ_post T: T [ms] = (1.57 z/J)² / (τ λ_pre λ_post)
    T_ms = (WALD_FACTOR * z / J) ** 2 / (tau_ms * rate_prod_per_ms2)
    if include_data_rule:
        T_ms = np.maximum(T_ms, DATA_RULE / (tau_ms * rate_prod_per_ms2))
    return T_ms * 1e-3


def pair_statistics(spikes: SpikeTrains, pairs, window_ms=50.0, delays_ms=(3.0,), tau_ms=4.0,
                    min_lag_ms=0.0):  # fmt: skip
    """Cross-correlogram counts (P, M) and kernel sums (P, n_delays) of the unordered
    ``pairs`` (positions (P, 2); lags t = t_second − t_first), and the lag counts (P,).

    One sweep of both trains per pair, pairs in parallel: O(spikes) per pair. (A single
    sweep over all spikes merged in time touches fewer spikes, but scatters into a
    pairs × bins accumulator; it measured 2× slower at 200 neurons × 1 h.)
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    delays = np.asarray(delays_ms, dtype=np.float64).reshape(-1)
    times_ms = spikes.times_s * 1e3
    return K.all_pair_statistics(
        times_ms, spikes.offsets, pairs, window_ms, delays, tau_ms, min_lag_ms
    )


class GLMCC:
    """The GLMCC estimator (scikit-learn habit: settings here, data in :meth:`fit`).

    Parameters
    ----------
    tau_ms : float
        Time constant of the synaptic kernel (ms), default 4.
    beta : float or None
        Smoothness of a(t) (β = 2/γ); default 4000 for the Wald test, 10000 for the LR test.
    delay_ms : float or "scan"
        Synaptic delay d (ms); "scan" fits d ∈ {1, 2, 3, 4} and keeps the largest log
        posterior per pair.
    test : {"wald", "lr"}
    alpha : float or None
        Significance level; default 0.001 (Wald, z = 3.29) or 10⁻⁴ (LR, χ²₁ = 15.14).
    min_lag_ms : float
        Lags with |t| < min_lag_ms are excluded (recordings that miss near-coincident spikes).
    window_ms : float
        W (ms); the cross-correlogram covers (−W, W) in 1-ms bins.
    exact_window : bool
        Also require the lag count in the τ bins after the delay to differ from the fitted
        slow rate exp a(t) by an exact Poisson test at the same α (one-sided in the direction
        of J, α/2 each way). Default True: at low counts (τ c̄ of 10–40) the Wald threshold's
        normal approximation calls troughs that Poisson noise makes (10× α on independent
        trains at 0.3–3 Hz with the delay scan); the guard brings it back to α. False gives the
        published test alone.
    """

    def __init__(self, tau_ms: float = 4.0, beta: float | None = None, delay_ms=3.0, test: str = "wald",
                 alpha: float | None = None, min_lag_ms: float = 0.0, window_ms: float = 50.0,
                 exact_window: bool = True):  # fmt: skip
        if test not in ("wald", "lr"):
            raise ValueError(f"test must be 'wald' or 'lr', got {test!r}")
        if not (tau_ms > 0 and window_ms > 0 and float(window_ms).is_integer()):
            raise ValueError("tau_ms must be > 0 and window_ms a positive whole number of ms")
        if delay_ms != "scan" and not (0 <= float(delay_ms) < window_ms):
            raise ValueError(f"delay_ms must be in [0, window_ms) or 'scan', got {delay_ms!r}")
        if min_lag_ms < 0:
            raise ValueError(f"min_lag_ms must be ≥ 0, got {min_lag_ms}")
        self.tau_ms = float(tau_ms)
        self.test = test
        self.beta = float(beta if beta is not None else (4000.0 if test == "wald" else 10000.0))
        self.alpha = float(alpha if alpha is not None else (1e-3 if test == "wald" else 1e-4))
        self.delay_ms = delay_ms
        self.min_lag_ms = float(min_lag_ms)
        self.window_ms = float(window_ms)
        self.exact_window = bool(exact_window)

    @property
    def delays(self) -> np.ndarray:
        return (
            np.array([1.0, 2.0, 3.0, 4.0])
            if self.delay_ms == "scan"
            else np.array([float(self.delay_ms)])
        )

    def fit(self, spikes: SpikeTrains, pairs=None, progress=None) -> xr.Dataset:
        """Fit every pair of units (or the unordered ``pairs`` given as positions (P, 2)).

        ``progress``, if given, is called as ``progress(done, total)`` while the
        cross-correlograms of blocks of pairs are computed (the bulk of the time).

        Returns
        -------
        xarray.Dataset with dims (pre, post) — unit ids — and variables ``J``, ``J_se``,
        ``J_threshold`` (Wald) or ``lr_stat`` (LR), ``significant``, ``psp_mv``, ``delay_ms``,
        ``n_lags``, ``status``; ``a`` (pair, bin), ``counts`` (pair, bin) and ``pair_index``
        (pair, end) hold the fitted a(t) and the cross-correlogram of each fitted pair
        (bin k covers lags [k − W, k − W + 1) ms of t = t_post − t_pre for the pair
        (pre, post) = pair_index[p]).
        Pairs not fitted are NaN with status "".

        ``J_se`` (pre, post) is the standard error of ``J`` (pre → post), dimensionless: the
        posterior sd of the Laplace approximation, √[(−∇²log p)⁻¹]_JJ at the MAP (a(t) and the
        other direction's J integrated out; computed in O(M) from the tridiagonal-plus-border
        Hessian), at the fitted delay, from the unrestricted fit for both tests. NaN where
        ``status`` is not "ok" and where J sits on a clip bound (−3 or 5), where the
        quadratic approximation does not hold; there the other direction's J_se is its
        sd with the bound J held fixed.
        """
        if not isinstance(spikes, SpikeTrains):
            raise TypeError("GLMCC.fit takes observations.SpikeTrains")
        n = spikes.n_units
        if pairs is None:
            iu = np.triu_indices(n, 1)
            pairs = np.column_stack(iu)
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if pairs.size and (
            pairs.min() < 0 or pairs.max() >= n or np.any(pairs[:, 0] == pairs[:, 1])
        ):
            raise ValueError(
                "pairs must be distinct positions (i ≠ j) of units in the spike trains"
            )
        # One fit serves both directions: keep each unordered pair once, in the order given.
        key = np.sort(pairs, axis=1)
        _, first = np.unique(key[:, 0] * n + key[:, 1], return_index=True)
        pairs = pairs[np.sort(first)]
        block = pairs.shape[0] if progress is None else PROGRESS_BLOCK
        parts = []
        for b0 in range(0, max(pairs.shape[0], 1), block):
            parts.append(pair_statistics(spikes, pairs[b0 : b0 + block], self.window_ms,
                                         self.delays, self.tau_ms, self.min_lag_ms))  # fmt: skip
            if progress is not None:
                progress(min(b0 + block, pairs.shape[0]), pairs.shape[0])
        stats = [np.concatenate([p[k] for p in parts]) for k in range(4)]
        return self._fit_statistics(spikes.unit_ids, pairs, *stats)

    def _geometry(self):
        """Per-delay bin constants, stacked with the delay first (see bin_geometry)."""
        geos = [
            K.bin_geometry(self.window_ms, d, self.tau_ms, self.min_lag_ms) for d in self.delays
        ]
        return tuple(np.stack([g[i] for g in geos]) for i in range(len(geos[0])))

    def _fit_statistics(self, unit_ids, pairs, counts, s_plus, s_minus, n_lags) -> xr.Dataset:
        n = unit_ids.size
        P, M = counts.shape
        geo = self._geometry()
        args = (self.tau_ms, self.beta, self.window_ms)
        solver = (J_BOUNDS[0], J_BOUNDS[1], 1e-4, 1000)
        best, a_all, J_fit, _, LL, conv, se_fit = K.fit_pairs(
            counts, s_plus, s_minus, *geo, *args, np.zeros((P, 2), bool), *solver
        )
        d_fit = self.delays[best]
        # c̄: the mean of exp(a_k) over the τ one-ms bins right after the delay on each side.
        W, tau_bins = int(round(self.window_ms)), int(round(self.tau_ms))
        k_plus = W + np.ceil(d_fit).astype(np.int64)
        k_minus = W - np.ceil(d_fit).astype(np.int64) - tau_bins
        offs = np.arange(tau_bins)
        rows = np.arange(P)[:, None]
        cbar = np.stack([
            np.exp(a_all[rows, np.clip(k_plus[:, None] + offs, 0, M - 1)]).mean(axis=1),
            np.exp(a_all[rows, np.clip(k_minus[:, None] + offs, 0, M - 1)]).mean(axis=1),
        ], axis=1)  # fmt: skip
        # Exact Poisson p-value of the window count against the slow rate, in the direction
        # of J; half counts (lags on bin edges) are rounded the conservative way.
        window_count = np.stack([
            counts[rows, np.clip(k_plus[:, None] + offs, 0, M - 1)].sum(axis=1),
            counts[rows, np.clip(k_minus[:, None] + offs, 0, M - 1)].sum(axis=1),
        ], axis=1)  # fmt: skip
        mu = cbar * tau_bins
        # poisson.sf / poisson.cdf through their special functions (same values, without
        # scipy.stats' per-call overhead): sf(k) = pdtrc(k, μ) for k ≥ 0, 1 below.
        # Each only where it is used (they cost ~0.2 µs a value).
        k_sf = np.floor(window_count) - 1
        up = J_fit > 0
        window_p = np.ones_like(mu)
        sf = up & (k_sf >= 0)
        window_p[sf] = pdtrc(k_sf[sf], mu[sf])
        window_p[~up] = pdtr(np.ceil(window_count[~up]), mu[~up])
        z = z_two_sided(self.alpha)
        with np.errstate(divide="ignore"):
            thr_fit = WALD_FACTOR * z / np.sqrt(self.tau_ms * cbar)
        status_fit = np.where(~conv[:, None], "not_converged",
                              np.where(self.tau_ms * cbar <= DATA_RULE, "insufficient_data", "ok"))  # fmt: skip
        stat_fit = np.full((P, 2), np.nan)
        if self.test == "lr":
            # Restricted fits (J = 0 on one side), at each pair's chosen delay.
            for side in (0, 1):
                for q in range(len(self.delays)):
                    todo = np.flatnonzero((status_fit[:, side] == "ok") & (best == q))
                    if todo.size == 0:
                        continue
                    fix = np.zeros((todo.size, 2), bool)
                    fix[:, side] = True
                    geo_q = tuple(g[q : q + 1] for g in geo)
                    r = K.fit_pairs(counts[todo], s_plus[todo, q : q + 1], s_minus[todo, q : q + 1],
                                    *geo_q, *args, fix, *solver)  # fmt: skip
                    stat_fit[todo, side] = 2.0 * (LL[todo] - r[4])
        # Laplace sd of J; NaN unless the side is tested (status "ok").
        se_fit = np.where(status_fit == "ok", se_fit, np.nan)
        J = np.full((n, n), np.nan)
        J_se = np.full((n, n), np.nan)
        thr = np.full((n, n), np.nan)
        stat = np.full((n, n), np.nan)
        delay = np.full((n, n), np.nan)
        nl = np.zeros((n, n), np.int64)
        wp = np.full((n, n), np.nan)
        status = np.full((n, n), "", dtype=object)
        i, j = pairs[:, 0], pairs[:, 1]
        for side, (src, dst) in enumerate(((i, j), (j, i))):
            J[src, dst] = J_fit[:, side]
            J_se[src, dst] = se_fit[:, side]
            thr[src, dst] = thr_fit[:, side]
            stat[src, dst] = stat_fit[:, side]
            delay[src, dst] = d_fit
            nl[src, dst] = n_lags
            wp[src, dst] = window_p[:, side]
            status[src, dst] = status_fit[:, side]
        if self.test == "wald":
            significant = (np.abs(J) > thr) & (status == "ok")
        else:
            from scipy.stats import chi2

            significant = (stat > chi2.isf(self.alpha, 1)) & (status == "ok")
        if self.exact_window:
            significant &= wp < self.alpha / 2
        ids = np.asarray(unit_ids)
        coords = {"pre": ids, "post": ids}
        test_var = ("J_threshold", thr) if self.test == "wald" else ("lr_stat", stat)
        ds = xr.Dataset(
            {
                "J": (("pre", "post"), J),
                "J_se": (("pre", "post"), J_se),
                "significant": (("pre", "post"), significant),
                "psp_mv": (("pre", "post"), np.where(np.isnan(J), np.nan, psp_mv(np.nan_to_num(J)))),
                "delay_ms": (("pre", "post"), delay),
                "n_lags": (("pre", "post"), nl),
                "window_p": (("pre", "post"), wp),
                "status": (("pre", "post"), status.astype(str)),
                "a": (("pair", "bin"), a_all),
                "counts": (("pair", "bin"), counts.astype(np.float32)),  # halves: edge lags
                "pair_index": (("pair", "end"), pairs),
                test_var[0]: (("pre", "post"), test_var[1]),
            },
            coords=coords,
            attrs={
                "kind": "connectivity", "method": "GLMCC (Kobayashi et al. 2019)",
                "tau_ms": self.tau_ms, "beta": self.beta, "test": self.test, "alpha": self.alpha,
                "delay_ms": str(self.delay_ms), "window_ms": self.window_ms, "min_lag_ms": self.min_lag_ms,
                "exact_window": int(self.exact_window),
            },
        )  # fmt: skip
        return ds


class PairAccumulator:
    """GLMCC's sufficient statistics of some pairs, summed over consecutive stretches of
    spike trains (the windows of an assimilation), so that a fit needs no stored spikes.

    The cross-correlogram counts, the kernel sums s± and the lag counts are sums over
    pairs of spikes; a pair that straddles two stretches has its first spike in the last
    ``window_ms`` of the earlier one, which the accumulator keeps (``carry``). Each stretch
    adds the statistics of (carry ∪ stretch) minus those of the carry alone, so the totals
    equal those of the whole train at once (to rounding, for the float sums).

    Parameters
    ----------
    pairs : (P, 2) int
        Positions of the pairs in the spike trains given to :meth:`add` (lags t = t of the
        second − t of the first, as :func:`pair_statistics`).
    estimator : GLMCC
        Its window, delays, τ and min_lag_ms (and later its fit).
    """

    def __init__(self, pairs, estimator: GLMCC):
        self.pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        self.estimator = estimator
        self.stats = None  # counts (P, M), s_plus (P, D), s_minus (P, D), n_lags (P,)
        self.carry = None  # SpikeTrains: the last window_ms of what was added
        self.duration_s = 0.0

    def _statistics(self, spikes: SpikeTrains):
        e = self.estimator
        return pair_statistics(spikes, self.pairs, e.window_ms, e.delays, e.tau_ms, e.min_lag_ms)

    def add(self, spikes: SpikeTrains) -> None:
        """Add the next stretch (its t_start_s must be the previous stretch's t_stop_s)."""
        if self.carry is None:
            whole = spikes
            new = self._statistics(spikes)
        else:
            whole = self.carry.followed_by(spikes)
            both, old = self._statistics(whole), self._statistics(self.carry)
            new = tuple(b - o for b, o in zip(both, old, strict=True))
        self.stats = new if self.stats is None else tuple(
            s + n for s, n in zip(self.stats, new, strict=True)
        )  # fmt: skip
        # the last window_ms of everything so far (a stretch shorter than that keeps some
        # of the carry before it)
        t0 = max(whole.t_start_s, whole.t_stop_s - self.estimator.window_ms * 1e-3)
        self.carry = whole.between(t0, whole.t_stop_s)
        self.duration_s += spikes.duration_s

    def to_arrays(self) -> dict:
        """The accumulator's state as named arrays (for a member's checkpoint file)."""
        if self.stats is None:
            return {}
        return {"counts": self.stats[0], "s_plus": self.stats[1], "s_minus": self.stats[2],
                "n_lags": self.stats[3], "duration_s": np.array(self.duration_s),
                **self.carry.to_arrays("carry_")}  # fmt: skip

    @classmethod
    def from_arrays(cls, pairs, estimator: GLMCC, arrays: dict) -> PairAccumulator:
        """The accumulator that :meth:`to_arrays` described (empty for ``{}``)."""
        acc = cls(pairs, estimator)
        if arrays:
            acc.stats = tuple(arrays[k] for k in ("counts", "s_plus", "s_minus", "n_lags"))
            acc.carry = SpikeTrains.from_arrays(arrays, "carry_")
            acc.duration_s = float(arrays["duration_s"])
        return acc

    def fit(self, unit_ids) -> xr.Dataset:
        """The GLMCC fit of the accumulated pairs (as :meth:`GLMCC.fit` returns it)."""
        if self.stats is None:
            raise ValueError("nothing accumulated yet")
        return self.estimator._fit_statistics(np.asarray(unit_ids), self.pairs, *self.stats)
