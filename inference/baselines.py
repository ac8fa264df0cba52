"""Baselines for GLMCC, with the same result shape, for an honest comparison.

- :class:`CrossCorrelogramTest` — the conventional test (in the spirit of Aertsen &
  Gerstein 1985): the lag count in the window just after the delay against a Poisson band
  of the baseline estimated from the correlogram's flanks.
- :class:`JitterTest` — interval jitter (Amarasingham, Harrison, Hatsopoulos & Geman 2012):
  the post-synaptic spikes are re-drawn uniformly within their own jitter interval, which
  keeps slow co-modulation and destroys millisecond timing; the p-value is the rank of the
  observed window count among the surrogates'.

Both report, per directed pair, the effect ``J`` = log(observed / expected window count),
``significant``, ``status`` and ``n_lags``, with dims (pre, post) like :class:`inference.GLMCC`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from numba import njit, prange
from scipy.stats import poisson

from inference.glmcc import pair_statistics
from observations.spikes import SpikeTrains

MIN_EXPECTED = 5.0  # expected window count below which a side is "insufficient_data"


def _all_pairs(n: int) -> np.ndarray:
    return np.column_stack(np.triu_indices(n, 1)) if n > 1 else np.empty((0, 2), np.int64)


def _dataset(unit_ids, pairs, effect, significant, status, n_lags, attrs) -> xr.Dataset:
    n = unit_ids.size
    J = np.full((n, n), np.nan)
    sig = np.zeros((n, n), bool)
    st = np.full((n, n), "", dtype=object)
    nl = np.zeros((n, n), np.int64)
    i, j = pairs[:, 0], pairs[:, 1]
    for side, (src, dst) in enumerate(((i, j), (j, i))):
        J[src, dst] = effect[:, side]
        sig[src, dst] = significant[:, side]
        st[src, dst] = status[:, side]
        nl[src, dst] = n_lags
    coords = {"pre": np.asarray(unit_ids), "post": np.asarray(unit_ids)}
    return xr.Dataset(
        {"J": (("pre", "post"), J), "significant": (("pre", "post"), sig),
         "status": (("pre", "post"), st.astype(str)), "n_lags": (("pre", "post"), nl)},
        coords=coords, attrs={"kind": "connectivity", **attrs},
    )  # fmt: skip


class CrossCorrelogramTest:
    """Window count after the delay vs a Poisson band of the flank baseline.

    Parameters
    ----------
    delay_ms, window_after_ms : float
        The test window is lags [d, d + window_after_ms) (pre → post) and its mirror.
    flank_ms : float
        Bins with |t| ≥ flank_ms estimate the baseline count per bin.
    alpha : float
        Two-sided level of each side's test.
    """

    def __init__(self, delay_ms: float = 3.0, window_after_ms: float = 4.0, flank_ms: float = 10.0,
                 alpha: float = 1e-3, window_ms: float = 50.0):  # fmt: skip
        if not (
            0 <= delay_ms
            and window_after_ms >= 1
            and delay_ms + window_after_ms <= flank_ms < window_ms
        ):
            raise ValueError(
                "need 0 ≤ delay, window_after ≥ 1 ms and delay + window_after ≤ flank < window"
            )
        self.delay_ms, self.window_after_ms = float(delay_ms), float(window_after_ms)
        self.flank_ms, self.alpha, self.window_ms = float(flank_ms), float(alpha), float(window_ms)

    def fit(self, spikes: SpikeTrains, pairs=None) -> xr.Dataset:
        pairs = (
            _all_pairs(spikes.n_units)
            if pairs is None
            else np.asarray(pairs, np.int64).reshape(-1, 2)
        )
        counts, _, _, n_lags = pair_statistics(spikes, pairs, self.window_ms, (self.delay_ms,))
        W = int(round(self.window_ms))
        centre = np.arange(-W, W) + 0.5  # bin centres (ms)
        flank = np.abs(centre) >= self.flank_ms
        base = counts[:, flank].mean(axis=1) if counts.size else np.zeros(0)
        after = (centre >= self.delay_ms) & (centre < self.delay_ms + self.window_after_ms)
        before = (centre <= -self.delay_ms) & (centre > -self.delay_ms - self.window_after_ms)
        effect = np.empty((pairs.shape[0], 2))
        significant = np.zeros((pairs.shape[0], 2), bool)
        status = np.empty((pairs.shape[0], 2), dtype=object)
        for side, mask in enumerate((after, before)):
            observed = counts[:, mask].sum(axis=1)
            expected = base * mask.sum()
            with np.errstate(divide="ignore", invalid="ignore"):
                effect[:, side] = np.log((observed + 0.5) / (expected + 0.5))
            upper = poisson.sf(observed - 1, expected)  # P(X ≥ observed)
            lower = poisson.cdf(observed, expected)  # P(X ≤ observed)
            significant[:, side] = (np.minimum(upper, lower) < self.alpha / 2) & (
                expected >= MIN_EXPECTED
            )
            status[:, side] = np.where(expected >= MIN_EXPECTED, "ok", "insufficient_data")
        attrs = {"method": "cross-correlogram window test (Poisson band of the flanks)",
                 "delay_ms": self.delay_ms, "alpha": self.alpha}  # fmt: skip
        return _dataset(spikes.unit_ids, pairs, effect, significant, status, n_lags, attrs)


@njit(cache=True, nogil=True)
def _window_count(pre, post, lo, hi):
    """Number of lags t = post − pre with lo ≤ t < hi (ms); both trains sorted."""
    n = 0
    start = 0
    for i in range(pre.shape[0]):
        while start < post.shape[0] and post[start] < pre[i] + lo:
            start += 1
        j = start
        while j < post.shape[0] and post[j] < pre[i] + hi:
            n += 1
            j += 1
    return n


@njit(cache=True, nogil=True)
def jitter_candidates(pre, post, lo, hi, width):
    """The (pre, post) spike pairs that interval jitter can bring into the window [lo, hi).

    A post spike in jitter interval [mΔ, (m+1)Δ) moves to (m + u)Δ with u ~ U(0, 1); it
    then falls in pre spike i's window iff u ∈ [(t_i + lo − mΔ)/Δ, (t_i + hi − mΔ)/Δ) ∩ [0, 1).
    Only post spikes with such a pre spike matter (a few per cent at cortical rates), so a
    surrogate costs one uniform per such spike instead of jittering and sorting the train.

    Returns ``slot`` (C,) — the candidate's post spike, numbered 0..n_slots−1 in time order
    (candidates of one spike are contiguous) — ``post_index`` (n_slots,) into ``post``, and
    ``u_lo``, ``u_hi`` (C,).
    """
    n_cand = 0
    start = 0
    for j in range(post.shape[0]):
        base = np.floor(post[j] / width) * width
        while start < pre.shape[0] and pre[start] + hi <= base:
            start += 1
        i = start
        while i < pre.shape[0] and pre[i] + lo < base + width:
            n_cand += 1
            i += 1
    slot = np.empty(n_cand, np.int64)
    post_index = np.empty(n_cand, np.int64)
    u_lo = np.empty(n_cand)
    u_hi = np.empty(n_cand)
    c, n_slots, start = 0, 0, 0
    for j in range(post.shape[0]):
        base = np.floor(post[j] / width) * width
        while start < pre.shape[0] and pre[start] + hi <= base:
            start += 1
        i = start
        first = c
        while i < pre.shape[0] and pre[i] + lo < base + width:
            slot[c] = n_slots
            u_lo[c] = max((pre[i] + lo - base) / width, 0.0)
            u_hi[c] = min((pre[i] + hi - base) / width, 1.0)
            c += 1
            i += 1
        if c > first:
            post_index[n_slots] = j
            n_slots += 1
    return slot, post_index[:n_slots], u_lo, u_hi


@njit(cache=True, nogil=True, inline="always")
def surrogate_count(slot, u_lo, u_hi, u):
    """Window count of one surrogate, given the uniform ``u`` (n_slots,) of each candidate spike."""
    n = 0
    for c in range(slot.shape[0]):
        x = u[slot[c]]
        if u_lo[c] <= x < u_hi[c]:
            n += 1
    return n


@njit(cache=True, nogil=True, parallel=True)
def _jitter_counts(times_ms, offsets, pairs, lo, hi, jitter_ms, n_surrogates, seed):
    """Observed and surrogate window counts per pair and side (P, 2) and (P, 2, S)."""
    P = pairs.shape[0]
    observed = np.zeros((P, 2), np.int64)
    surrogate = np.zeros((P, 2, n_surrogates), np.int64)
    for p in prange(P):
        a, b = pairs[p, 0], pairs[p, 1]
        ta = times_ms[offsets[a] : offsets[a + 1]]
        tb = times_ms[offsets[b] : offsets[b + 1]]
        for side in range(2):
            pre = ta if side == 0 else tb
            post = tb if side == 0 else ta
            observed[p, side] = _window_count(pre, post, lo, hi)
            slot, post_index, u_lo, u_hi = jitter_candidates(pre, post, lo, hi, jitter_ms)
            # numba's generator is per thread; seeding it per pair and side makes the
            # surrogates independent of how prange shares pairs between threads.
            np.random.seed(seed + 7919 * p + side)  # noqa: NPY002
            for s in range(n_surrogates):
                u = np.random.random(post_index.shape[0])  # noqa: NPY002
                surrogate[p, side, s] = surrogate_count(slot, u_lo, u_hi, u)
    return observed, surrogate


class JitterTest:
    """Interval-jitter test of the window count after the delay (Amarasingham et al. 2012).

    Parameters
    ----------
    delay_ms, window_after_ms : float
        Test window of lags [d, d + window_after_ms) and its mirror.
    jitter_ms : float
        Width of the jitter intervals (post spikes keep their interval).
    n_surrogates : int
    alpha : float
        Level of each side's two-sided test.
    seed : int
    """

    def __init__(self, delay_ms: float = 3.0, window_after_ms: float = 4.0, jitter_ms: float = 10.0,
                 n_surrogates: int = 1000, alpha: float = 1e-2, seed: int = 0):  # fmt: skip
        if n_surrogates < 1 or jitter_ms <= 0:
            raise ValueError("n_surrogates must be ≥ 1 and jitter_ms > 0")
        self.delay_ms, self.window_after_ms, self.jitter_ms = (
            float(delay_ms),
            float(window_after_ms),
            float(jitter_ms),
        )
        self.n_surrogates, self.alpha, self.seed = int(n_surrogates), float(alpha), int(seed)

    def fit(self, spikes: SpikeTrains, pairs=None) -> xr.Dataset:
        pairs = (
            _all_pairs(spikes.n_units)
            if pairs is None
            else np.asarray(pairs, np.int64).reshape(-1, 2)
        )
        obs, sur = _jitter_counts(spikes.times_s * 1e3, spikes.offsets, pairs, self.delay_ms,
                                  self.delay_ms + self.window_after_ms, self.jitter_ms,
                                  self.n_surrogates, self.seed)  # fmt: skip
        S = self.n_surrogates
        p_hi = (1 + (sur >= obs[:, :, None]).sum(axis=2)) / (1 + S)
        p_lo = (1 + (sur <= obs[:, :, None]).sum(axis=2)) / (1 + S)
        mean = sur.mean(axis=2)
        effect = np.log((obs + 0.5) / (mean + 0.5))
        enough = mean >= MIN_EXPECTED
        significant = (np.minimum(p_hi, p_lo) < self.alpha / 2) & enough
        status = np.where(enough, "ok", "insufficient_data").astype(object)
        n_lags = pair_statistics(spikes, pairs, 50.0, (self.delay_ms,))[3]
        attrs = {"method": "interval jitter (Amarasingham et al. 2012)", "jitter_ms": self.jitter_ms,
                 "n_surrogates": S, "alpha": self.alpha, "delay_ms": self.delay_ms}  # fmt: skip
        return _dataset(spikes.unit_ids, pairs, effect, significant, status, n_lags, attrs)
