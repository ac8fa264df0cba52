"""Running-percentile baseline F0 and ΔF/F = (F − F0)/F0 for fluorescence traces.

The baseline at frame t is the ``percentile``-th order statistic of the ``window`` frames
centred on t, the definition of ``scipy.ndimage.percentile_filter(y, p, size=window,
mode="reflect")`` along time: rank ``int(window · p / 100)`` (0-based, no interpolation
between order statistics), window ``[t − window//2, t − window//2 + window − 1]``, edges
mirrored (``d c b a | a b c d | d c b a``).

Why a coarse grid. The exact filter costs O(T · window) per trace (a 60 s window at 30 Hz
is 1800 frames: 1.8·10⁸ comparisons for one 10⁵-frame trace, ~10¹² for 10⁴ cells). A
baseline is by construction slow — it follows bleaching and drift over tens of seconds,
not transients — so it is evaluated exactly (``np.partition``) only at window centres every
``step`` frames (default window/10) and linearly interpolated between them: T/step
selections of ``window`` values, i.e. O(10 · T) per trace instead of O(window · T), with
the selection vectorised over a whole block of traces. ``step=1`` gives the exact filter.

Accuracy, measured against scipy in tests/test_ingest.py on 30 Hz traces with bleaching
(τ = 600 s), a ±10 % drift of period 300 s, GCaMP-like transients at 0.3 Hz and 5 % noise,
window 60 s, 8th percentile: with the default step (6 s) the relative F0 error is at most
~1.5 % and below 0.7 % in 99 % of frames (step = window/20: 1.1 % and 0.4 %), i.e. well
under the frame noise; it comes from the frame-to-frame jitter of the exact order
statistic (transients entering and leaving the window), which the grid smooths out, more
than from the curvature of the drift. ΔF/F inherits it as
|ΔF/F error| ≈ (1 + ΔF/F) · |F0 error| / F0; the test holds the grid to < 2 % (max)
and < 1 % (99th percentile). Cost: ~1 s for 512 traces × 10⁵ frames (2 cores).
"""

from __future__ import annotations

import numpy as np


def running_percentile(y: np.ndarray, window: int, percentile: float, step: int | None = None):
    """Running percentile of each row of ``y`` along its last axis.

    Parameters
    ----------
    y : (n, T) float array
        Traces, one per row (time along the last axis). NaN values are ignored: a window's
        rank is taken among its finite values (rank ``int(n_finite · p / 100)``); a window
        without any finite value borrows its baseline from the nearest grid points that
        have one.
    window : int
        Window length in frames (≥ 1); a window longer than the trace is shortened to it.
    percentile : float
        In [0, 100].
    step : int, optional
        Frames between the window centres where the percentile is evaluated exactly;
        default ``max(1, window // 10)``. ``step=1`` reproduces
        ``scipy.ndimage.percentile_filter(y, percentile, size=(1, window), mode="reflect")``.

    Returns
    -------
    (n, T) float32 array
        The baseline of each trace at every frame.
    """
    grid, centres = _grid(y, window, percentile, step)
    out = np.empty(np.shape(y), np.float32)
    for a, b, base in _segments(grid, centres, out.shape[1]):
        out[:, a:b] = base
    return out


def _grid(y, window, percentile, step):
    """The exact running percentile at the window centres: ((n, m) float64, centres (m,))."""
    y = np.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"running_percentile takes (n, T) traces, got shape {y.shape}")
    n, T = y.shape
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    if T == 0:
        return np.empty((n, 0)), np.empty(0, np.int64)
    w = int(min(max(int(window), 1), T))
    step = max(1, w // 10) if step is None else max(1, int(step))
    rank = w - 1 if percentile == 100 else int(w * percentile / 100.0)
    centres = np.arange(0, T, step)
    if centres[-1] != T - 1:
        centres = np.append(centres, T - 1)
    grid = np.empty((n, centres.size), np.float64)
    # Traces with NaN frames take the slow, exact path of _finite_rank in every window.
    nan_rows = np.flatnonzero(np.isnan(y).any(axis=1))
    half = w // 2
    for k, c in enumerate(centres):
        lo = c - half
        hi = lo + w
        if lo >= 0 and hi <= T:
            win = y[:, lo:hi]
        else:
            # Mirror the indices that fall off either end ("reflect" in scipy's terms);
            # w ≤ T, so one mirror suffices.
            idx = np.arange(lo, hi)
            idx = np.where(idx < 0, -idx - 1, idx)
            idx = np.where(idx >= T, 2 * T - 1 - idx, idx)
            win = y[:, idx]
        grid[:, k] = np.partition(win, rank, axis=1)[:, rank]
        for r in nan_rows:
            grid[r, k] = _finite_rank(win[r], percentile)
    _fill_missing(grid, centres)
    return grid, centres


def _finite_rank(values: np.ndarray, percentile: float) -> float:
    """The percentile (scipy's rank convention) of the finite values; NaN if there are none."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return np.nan
    rank = v.size - 1 if percentile == 100 else int(v.size * percentile / 100.0)
    return float(np.partition(v, rank)[rank])


def _fill_missing(grid: np.ndarray, centres: np.ndarray) -> None:
    """Replace NaN grid values (windows with no finite frame) by interpolation in time."""
    bad_rows = np.flatnonzero(np.isnan(grid).any(axis=1))
    for r in bad_rows:
        ok = np.isfinite(grid[r])
        if ok.any():
            grid[r, ~ok] = np.interp(centres[~ok], centres[ok], grid[r, ok])


def _segments(grid: np.ndarray, centres: np.ndarray, T: int):
    """The baseline linearly interpolated between grid centres, one stretch at a time:
    yields (a, b, (n, b − a) float32) covering frames 0 … T − 1 — so a caller can use it
    without ever holding the whole (n, T) baseline."""
    m = centres.size
    if m == 0:
        return
    if m == 1:
        yield 0, T, np.repeat(grid[:, :1], T, axis=1).astype(np.float32)
        return
    for k in range(m - 1):
        a, c1 = int(centres[k]), int(centres[k + 1])
        b = c1 if k < m - 2 else T  # the last stretch ends on the last frame, a centre
        frac = (np.arange(a, b) - a) / (c1 - a)
        g0, g1 = grid[:, k : k + 1], grid[:, k + 1 : k + 2]
        yield a, b, (g0 + (g1 - g0) * frac).astype(np.float32)


def delta_f_over_f(y: np.ndarray, window: int, percentile: float, step: int | None = None):
    """ΔF/F = (y − F0)/F0 with F0 the running percentile of ``y``, computed in place.

    The baseline is evaluated on its grid first, then applied stretch by stretch, so the
    memory beyond ``y`` itself is one stretch of baseline, not a second (n, T) array.

    Parameters
    ----------
    y : (n, T) float32 array
        Neuropil-corrected fluorescence (arbitrary units), one trace per row; overwritten.
    window, percentile, step
        As in :func:`running_percentile` (window and step in frames).

    Returns
    -------
    dff : (n, T) float32
        ``y`` itself, now ΔF/F as a fraction. Frames where F0 ≤ 0 (ΔF/F undefined) are NaN.
    first_bad : (n,) int64
        For each trace the first frame with F0 ≤ 0, or −1 where F0 > 0 throughout.
    """
    grid, centres = _grid(y, window, percentile, step)
    first_bad = np.full(y.shape[0], -1, np.int64)
    for a, b, base in _segments(grid, centres, y.shape[1]):
        if np.fmin.reduce(base, axis=None) <= 0:  # rare: build the mask only then
            bad = base <= 0  # NaN compares False: frames without a baseline stay NaN via y
            new = bad.any(axis=1) & (first_bad < 0)
            first_bad[new] = a + bad[new].argmax(axis=1)
            base[bad] = np.nan
        stretch = y[:, a:b]
        stretch -= base
        stretch /= base
    return y, first_bad
