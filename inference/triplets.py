"""The triplet map's estimator: pairwise and triple-wise interactions of every triplet.

Shomali, Rasuli, Ahmadabadi & Shimazaki (2023), "Uncovering hidden network architecture from
spiking activities using an exact statistical input-output relation of neurons",
Commun Biol 6:169.

The spikes are binned (bin Δ) and binarised (1 if ≥ 1 spike). For a triplet the 8 pattern
probabilities P(x), x = (x₁, x₂, x₃), are written in the saturated log-linear model

    log P(x) = Σ θ_i x_i + Σ θ_ij x_i x_j + θ_123 x₁x₂x₃ − ψ,

    θ_1   = log P(100)/P(000),
    θ_12  = log P(110)P(000) / (P(100)P(010)),
    θ_123 = log P(111)P(100)P(010)P(001) / (P(110)P(101)P(011)P(000)),

each a ±1 contrast c_A(x) of log P. The estimates plug in the pattern counts n(x) plus a
pseudo-count; their delta-method variance is Σ_x c_A(x)²/n(x) (the −1/N multinomial terms
cancel because Σ_x c_A(x) = 0) and covariance Σ_x c_A(x)c_B(x)/n(x). θ_123 ≠ 0 is tested by
Wald (z = θ_123/SE) and by the likelihood ratio against the pairwise maximum-entropy model
(θ_123 = 0), whose fit keeps all pairwise margins: in a 2×2×2 table those tables differ from
n(x) by t·(−1)^{|x|+1}, so the fit is a 1-D monotone root search.

Pattern order: index x₁ + 2x₂ + 4x₃; labels "x₁x₂x₃" ("000", "100", "010", "110", ...).
"""

from __future__ import annotations

from math import comb

import numba
import numpy as np
import xarray as xr
from scipy.special import ndtr
from scipy.stats import chi2

from inference import _triplet_kernels as K
from observations.spikes import SpikeTrains

PATTERNS = tuple(f"{i & 1}{(i >> 1) & 1}{(i >> 2) & 1}" for i in range(8))
PAIRS = ("12", "13", "23")
THETA_NAMES = ("1", "2", "3", "12", "13", "23", "123")
STATUS = ("ok", "sparse", "empty_cell", "silent_unit")
MAX_TRIPLETS = 50_000_000  # all-triplet runs above this need an explicit ``triplets`` list
DENSE_TRIPLE_LIMIT = 30_000_000  # C(m, 3) cells of the co-activation array, else merge lists
CLASSIFY_AUTO_LIMIT = 20_000


def _subset_bits(i: int) -> frozenset:
    return frozenset(k for k in range(3) if (i >> k) & 1)


def contrast_matrix() -> np.ndarray:
    """(7, 8) contrasts c_A(x) of log P(x), rows θ_1, θ_2, θ_3, θ_12, θ_13, θ_23, θ_123.

    Möbius inversion of the log-linear model: θ_S = Σ_{T ⊆ S} (−1)^{|S|−|T|} log P(1_T).
    """
    rows = [frozenset({0}), frozenset({1}), frozenset({2}), frozenset({0, 1}),
            frozenset({0, 2}), frozenset({1, 2}), frozenset({0, 1, 2})]  # fmt: skip
    C = np.zeros((7, 8))
    for r, S in enumerate(rows):
        for x in range(8):
            T = _subset_bits(x)
            if T <= S:
                C[r, x] = (-1.0) ** (len(S) - len(T))
    return C


CONTRAST = contrast_matrix()
#: +1 on patterns with an odd number of active units: adding t·ODD to a table keeps every
#: pairwise (and single) margin.
ODD = np.array([1.0 if bin(x).count("1") % 2 else -1.0 for x in range(8)])


def pattern_counts(counts7, n_bins) -> np.ndarray:
    """The 8 pattern counts (T, 8) from [n_i, n_j, n_k, n_ij, n_ik, n_jk, n_ijk] (T, 7) and
    the number of bins, by inclusion–exclusion."""
    c = np.asarray(counts7, dtype=np.int64).reshape(-1, 7)
    n1, n2, n3, n12, n13, n23, n123 = c.T
    N = np.asarray(n_bins, dtype=np.int64)
    out = np.empty((c.shape[0], 8), np.int64)
    out[:, 7] = n123
    out[:, 3] = n12 - n123
    out[:, 5] = n13 - n123
    out[:, 6] = n23 - n123
    out[:, 1] = n1 - n12 - n13 + n123
    out[:, 2] = n2 - n12 - n23 + n123
    out[:, 4] = n3 - n13 - n23 + n123
    out[:, 0] = N - n1 - n2 - n3 + n12 + n13 + n23 - n123
    return out


def thetas(patterns, pseudo_count: float = 0.5) -> np.ndarray:
    """θ = C log(n + pseudo_count): (…, 7) from pattern counts (…, 8)."""
    n = np.asarray(patterns, dtype=np.float64) + pseudo_count
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(n) @ CONTRAST.T


def delta_covariance(patterns, pseudo_count: float = 0.5) -> np.ndarray:
    """Delta-method covariance of θ: (…, 7, 7) = C diag(1/n) Cᵀ with n = counts + pseudo."""
    n = np.asarray(patterns, dtype=np.float64) + pseudo_count
    with np.errstate(divide="ignore"):
        inv = 1.0 / n
    return np.einsum("ax,...x,bx->...ab", CONTRAST, inv, CONTRAST)


def delta_se(patterns, pseudo_count: float = 0.5) -> np.ndarray:
    """Delta-method standard errors of θ (…, 7): sqrt(Σ_x c_A(x)²/n(x))."""
    n = np.asarray(patterns, dtype=np.float64) + pseudo_count
    with np.errstate(divide="ignore"):
        return np.sqrt((1.0 / n) @ (CONTRAST.T**2))


def pairwise_maxent_fit(table, tol: float = 1e-12, max_iter: int = 200) -> np.ndarray:
    """Maximum-likelihood pairwise maximum-entropy fit (θ_123 = 0) of 2×2×2 tables.

    ``table`` (…, 8) positive (counts plus pseudo-count). The fit m = n + t·ODD keeps every
    pairwise margin of n; t solves g(t) = Σ_odd log(n + t) − Σ_even log(n − t) = 0, which
    increases monotonically on (−min_odd n, min_even n): safeguarded Newton, vectorised.
    """
    n = np.asarray(table, dtype=np.float64)
    shape = n.shape
    n = n.reshape(-1, 8)
    if np.any(n <= 0):
        raise ValueError("pairwise_maxent_fit needs positive cells (add a pseudo-count)")
    odd = ODD > 0
    lo = -n[:, odd].min(axis=1)
    hi = n[:, ~odd].min(axis=1)
    t = np.zeros(n.shape[0])
    for _ in range(max_iter):
        m = n + t[:, None] * ODD
        g = np.log(m[:, odd]).sum(1) - np.log(m[:, ~odd]).sum(1)
        dg = (1.0 / m).sum(1)
        lo = np.where(g < 0, t, lo)
        hi = np.where(g > 0, t, hi)
        step = t - g / dg
        bad = ~((step > lo) & (step < hi))
        new = np.where(bad, 0.5 * (lo + hi), step)
        done = np.abs(new - t) <= tol * (1.0 + np.abs(t))
        t = new
        if done.all():
            break
    return (n + t[:, None] * ODD).reshape(shape)


def lr_statistic(table) -> np.ndarray:
    """2 Σ n log(n/m): likelihood ratio of the saturated against the pairwise model, χ²₁."""
    n = np.asarray(table, dtype=np.float64)
    m = pairwise_maxent_fit(n)
    return np.maximum(2.0 * (n * np.log(n / m)).sum(-1), 0.0)


def _n_bins(spikes: SpikeTrains, bin_s: float) -> int:
    n = int(np.floor(spikes.duration_s / bin_s + 1e-9))
    if n < 1:
        raise ValueError(
            f"bin_ms = {bin_s * 1e3:g} ms is longer than the recording "
            f"[{spikes.t_start_s:g}, {spikes.t_stop_s:g}] s ({spikes.duration_s * 1e3:g} ms)"
        )
    return n


def all_triplets(n_units: int) -> np.ndarray:
    """All (i < j < k) positions of n_units units, (C(n, 3), 3) int64, lexicographic."""
    if n_units < 3:
        return np.empty((0, 3), np.int64)
    # For each pair (i, j) the run of k = j+1..n−1, built without a Python loop per pair.
    i, j = np.triu_indices(n_units, 1)
    runs = n_units - 1 - j
    keep = runs > 0
    i, j, runs = i[keep], j[keep], runs[keep]
    start = np.repeat(np.cumsum(runs) - runs, runs)
    k = np.arange(int(runs.sum())) - start + np.repeat(j + 1, runs)
    return np.column_stack([np.repeat(i, runs), np.repeat(j, runs), k]).astype(np.int64)


class TripletMap:
    """Triple-wise interactions and hidden common-input motifs of triplets of units.

    Parameters
    ----------
    bin_ms : float
        Bin Δ (ms) of the binarised trains; the paper reports 2, 5, 10 and 20 ms.
    pseudo_count : float
        Added to each of the 8 pattern counts before taking logs (0 allowed: empty cells
        then give a status "empty_cell" and NaN).
    alpha : float
        Level of the θ_123 tests (the ``significant`` flag uses the LR test).
    n_boot : int
        Block-bootstrap resamples for bootstrap standard errors (0: none).
    block_s : float
        Length (s) of the bootstrap blocks; longer than the correlation time of the data.
    classify : bool or "auto"
        Classify each triplet's motif (:mod:`inference.triplet_motifs`); "auto" does so for
        at most 20 000 triplets (classification costs ~ms per triplet).
    tau_m_ms, theta_mv : float
        Membrane time constant and threshold (above reset) of the threshold-regime LIF
        neuron the theory (and ``spikeda plot``'s map) uses.
    seed : int
        Seed of the bootstrap.
    """

    def __init__(self, bin_ms: float = 5.0, pseudo_count: float = 0.5, alpha: float = 0.001,
                 n_boot: int = 0, block_s: float = 1.0, classify="auto", tau_m_ms: float = 20.0,
                 theta_mv: float = 20.0, seed: int = 0):  # fmt: skip
        if not (np.isfinite(bin_ms) and bin_ms > 0):
            raise ValueError(f"bin_ms must be > 0, got {bin_ms}")
        if not (pseudo_count >= 0):
            raise ValueError(f"pseudo_count must be ≥ 0, got {pseudo_count}")
        if not (0 < alpha < 1):
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if n_boot < 0 or (n_boot and n_boot < 2):
            raise ValueError(f"n_boot must be 0 or ≥ 2, got {n_boot}")
        if not block_s > 0:
            raise ValueError(f"block_s must be > 0, got {block_s}")
        if classify not in (True, False, "auto"):
            raise ValueError(f"classify must be True, False or 'auto', got {classify!r}")
        self.bin_ms = float(bin_ms)
        self.pseudo_count = float(pseudo_count)
        self.alpha = float(alpha)
        self.n_boot = int(n_boot)
        self.block_s = float(block_s)
        self.classify = classify
        self.tau_m_ms = float(tau_m_ms)
        self.theta_mv = float(theta_mv)
        self.seed = int(seed)

    # -- counting -----------------------------------------------------------------------
    def binarise(self, spikes: SpikeTrains):
        """Active bins of each unit (CSR ``bins``, ``boffs``) and the number of full bins."""
        bin_s = self.bin_ms * 1e-3
        n_bins = _n_bins(spikes, bin_s)
        bins, boffs = K.active_bins(spikes.times_s, spikes.offsets, spikes.t_start_s, bin_s, n_bins)
        return bins, boffs, n_bins

    def counts(self, spikes: SpikeTrains, triplets=None):
        """Raw pattern counts (T, 8) of the triplets (positions (T, 3); default all i<j<k),
        the triplets, the number of bins and the active-bin count of every unit."""
        _check_spikes(spikes)
        triplets = self._triplets(spikes.n_units, triplets)
        bins, boffs, n_bins = self.binarise(spikes)
        n1 = np.diff(boffs)
        used = np.unique(triplets)
        if comb(used.size, 3) <= DENSE_TRIPLE_LIMIT and used.size >= 3:
            # Co-activation counting on the units the triplets use, renumbered 0..m−1.
            sub_bins, sub_boffs = _restrict(bins, boffs, used)
            units, uoffs = K.units_by_bin(sub_bins, sub_boffs, n_bins, 2)
            n2, n3 = K.coactivation_counts(units, uoffs, used.size, numba.get_num_threads())
            local = np.searchsorted(used, triplets)
            c7 = K.gather_counts(n1[used], n2, n3, local)
        else:
            c7 = K.merge_counts(bins, boffs, triplets)
        return pattern_counts(c7, n_bins), triplets, n_bins, n1

    @staticmethod
    def _triplets(n_units: int, triplets) -> np.ndarray:
        if triplets is None:
            total = comb(n_units, 3)
            if total > MAX_TRIPLETS:
                raise ValueError(
                    f"{n_units} units have {total} triplets (> {MAX_TRIPLETS}); pass triplets="
                )
            return all_triplets(n_units)
        tr = np.asarray(triplets, dtype=np.int64)
        if tr.ndim != 2 or tr.shape[1] != 3:
            raise ValueError(f"triplets must have shape (T, 3), got {tr.shape}")
        if tr.size and (tr.min() < 0 or tr.max() >= n_units):
            t = int(np.flatnonzero((tr < 0).any(1) | (tr >= n_units).any(1))[0])
            raise ValueError(
                f"triplets[{t}] = {tr[t].tolist()}: positions must be in 0..{n_units - 1}"
            )
        dup = (tr[:, 0] == tr[:, 1]) | (tr[:, 0] == tr[:, 2]) | (tr[:, 1] == tr[:, 2])
        if dup.any():
            t = int(np.flatnonzero(dup)[0])
            raise ValueError(f"triplets[{t}] = {tr[t].tolist()}: the three units must differ")
        return tr

    # -- estimation ---------------------------------------------------------------------
    def fit(self, spikes: SpikeTrains, triplets=None, progress=None) -> xr.Dataset:
        """Estimate the θ's, their standard errors and tests (and motifs) of the triplets.

        Parameters
        ----------
        spikes : observations.SpikeTrains
        triplets : (T, 3) int, optional
            Positions (0..n_units−1) of the units of each triplet; default all i < j < k.
        progress : callable, optional
            ``progress(stage: str)`` between the stages (counting, tests, motifs).

        Returns
        -------
        xarray.Dataset over ``triplet`` (see :func:`result_dataset`).
        """
        if not isinstance(spikes, SpikeTrains):
            raise TypeError("TripletMap.fit takes observations.SpikeTrains")
        patterns, triplets, n_bins, n1 = self.counts(spikes, triplets)
        if progress is not None:
            progress("counted")
        boot = None
        if self.n_boot:
            bins, boffs, _ = self.binarise(spikes)
            boot = self.bootstrap_se(bins, boffs, n_bins, triplets)
        silent = (n1[triplets] == 0).any(axis=1)
        ds = result_dataset(patterns, triplets, spikes.unit_ids, n_bins, n1, silent, self, boot,
                            rates_hz=spikes.rates_hz())  # fmt: skip
        ds.attrs.update(t_start_s=spikes.t_start_s, t_stop_s=spikes.t_stop_s)
        do_classify = self.classify is True or (
            self.classify == "auto" and triplets.shape[0] <= CLASSIFY_AUTO_LIMIT
        )
        if do_classify and triplets.shape[0]:
            from inference.triplet_motifs import classify_dataset

            if progress is not None:
                progress("classifying")
            ds = classify_dataset(ds)
        return ds

    def bootstrap_se(self, bins, boffs, n_bins, triplets, chunk: int = 256) -> np.ndarray:
        """Block-bootstrap standard errors of θ (T, 7): blocks of ``block_s`` resampled
        with replacement ``n_boot`` times; the same resamples serve every triplet."""
        block_len = max(1, int(round(self.block_s * 1e3 / self.bin_ms)))
        n_blocks = -(-n_bins // block_len)
        if n_blocks < 2:
            raise ValueError(
                f"block_s = {self.block_s} s leaves {n_blocks} block in the recording; "
                "the bootstrap needs several"
            )
        per_block = np.full(n_blocks, block_len, np.float64)
        per_block[-1] = n_bins - block_len * (n_blocks - 1)
        rng = np.random.default_rng(self.seed)
        draws = rng.integers(0, n_blocks, (self.n_boot, n_blocks))
        M = np.stack([np.bincount(d, minlength=n_blocks) for d in draws]).astype(np.float64)
        N_r = M @ per_block  # (R,) bins of each resample
        out = np.empty((triplets.shape[0], 7))
        for t0 in range(0, triplets.shape[0], chunk):
            tr = triplets[t0 : t0 + chunk]
            bc = K.block_counts(bins, boffs, tr, block_len, n_blocks)  # (Tc, B, 7)
            Tc = tr.shape[0]
            # One GEMM: the resampled counts of all triplets in the chunk, (R, Tc·7).
            res = M @ bc.transpose(1, 0, 2).reshape(n_blocks, Tc * 7).astype(np.float64)
            res = res.reshape(self.n_boot, Tc, 7)
            pats = pattern_counts(np.rint(res).reshape(-1, 7), np.repeat(N_r, Tc).astype(np.int64))
            th = thetas(pats, self.pseudo_count).reshape(self.n_boot, Tc, 7)
            out[t0 : t0 + Tc] = th.std(axis=0, ddof=1)
        return out


def theta_estimates(patterns, pseudo_count: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """θ (T, 7) and their delta-method standard errors (T, 7) from pattern counts (T, 8),
    NaN for a triplet with a silent unit (or, with pseudo_count 0, an empty cell): the
    estimates :func:`result_dataset` reports."""
    p = np.asarray(patterns, dtype=np.int64).reshape(-1, 8)
    active = np.stack([p[:, [x for x in range(8) if (x >> k) & 1]].sum(axis=1) for k in range(3)], 1)
    bad = (active == 0).any(axis=1) | ((p == 0).any(axis=1) & (pseudo_count == 0))
    th, se = thetas(p, pseudo_count), delta_se(p, pseudo_count)
    th[bad] = np.nan
    se[bad] = np.nan
    return th, se


class TripletAccumulator:
    """The triplet map's sufficient statistics of some triplets, the 8 pattern counts,
    summed over consecutive stretches of spike trains (the windows of an assimilation), so
    that each member's θ needs no stored spikes.

    Bins are counted from the first stretch's start (``origin_s``) with the arithmetic of
    :meth:`TripletMap.counts` on the whole train, so that the totals are those of the whole
    train at once, exactly. A bin that straddles two stretches is completed by the next
    one: the accumulator keeps the spikes of its last two bins (``carry``: the partial bin,
    and the last full one, which a spike on its edge may still reach by rounding) and each
    stretch adds the counts of (carry ∪ stretch) from the last full bin on, minus what the
    carry alone gave that bin before.

    Parameters
    ----------
    triplets : (T, 3) int
        Positions of the units of each triplet in the spike trains given to :meth:`add`.
    bin_ms : float
        Bin Δ (ms), as :class:`TripletMap`.
    """

    def __init__(self, triplets, bin_ms: float):
        self.triplets = np.asarray(triplets, dtype=np.int64).reshape(-1, 3)
        self.bin_s = float(bin_ms) * 1e-3
        self.patterns = np.zeros((self.triplets.shape[0], 8), np.int64)
        self.n_bins = 0
        self.origin_s = None
        self.carry = None

    def _bin_of(self, times_s: np.ndarray) -> np.ndarray:
        # the kernel's arithmetic (active_bins): floor((t − origin) / Δ)
        return np.floor((times_s - self.origin_s) / self.bin_s).astype(np.int64)

    def _patterns(self, spikes: SpikeTrains, b0: int, b1: int) -> np.ndarray:
        """Pattern counts (T, 8) of bins b0..b1−1 (from the origin) of ``spikes``."""
        if b1 <= b0:
            return np.zeros((self.triplets.shape[0], 8), np.int64)
        bins, boffs = K.active_bins(spikes.times_s, spikes.offsets, self.origin_s, self.bin_s, b1)
        keep = bins >= b0
        unit = np.repeat(np.arange(boffs.size - 1), np.diff(boffs))
        kept = np.zeros(boffs.size, np.int64)
        np.cumsum(np.bincount(unit[keep], minlength=boffs.size - 1), out=kept[1:])
        return pattern_counts(K.merge_counts(bins[keep] - b0, kept, self.triplets), b1 - b0)

    def add(self, spikes: SpikeTrains) -> None:
        """Add the next stretch (its t_start_s must be the previous stretch's t_stop_s)."""
        if self.origin_s is None:
            self.origin_s = float(spikes.t_start_s)
            joined, b0 = spikes, 0
        else:
            joined, b0 = self.carry.followed_by(spikes), max(self.n_bins - 1, 0)
        n_total = int(np.floor((spikes.t_stop_s - self.origin_s) / self.bin_s + 1e-9))
        new = self._patterns(joined, b0, n_total)
        if self.carry is not None:
            new -= self._patterns(self.carry, b0, self.n_bins)
        self.patterns += new
        self.n_bins = max(n_total, self.n_bins)
        # keep the spikes of the last full bin and of the partial one
        first = self.n_bins - 1
        trains = [joined.train(k) for k in range(joined.n_units)]
        trains = [t[self._bin_of(t) >= first] for t in trains]
        starts = [t[0] for t in trains if t.size]
        t0 = min([self.origin_s + max(first, 0) * self.bin_s, spikes.t_stop_s, *starts])
        self.carry = SpikeTrains.from_lists(trains, spikes.unit_ids, max(t0, self.origin_s), spikes.t_stop_s)

    @property
    def duration_s(self) -> float:
        """Length of the full bins accumulated (s)."""
        return self.n_bins * self.bin_s

    def estimates(self, pseudo_count: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """θ (T, 7) and their delta-method SE (T, 7) of the accumulated counts
        (:func:`theta_estimates`)."""
        if self.origin_s is None:
            raise ValueError("nothing accumulated yet")
        return theta_estimates(self.patterns, pseudo_count)

    def to_arrays(self) -> dict:
        """The accumulator's state as named arrays (for a member's checkpoint file)."""
        if self.origin_s is None:
            return {}
        return {"patterns": self.patterns, "n_bins": np.array(self.n_bins, np.int64),
                "origin_s": np.array(self.origin_s), **self.carry.to_arrays("carry_")}  # fmt: skip

    @classmethod
    def from_arrays(cls, triplets, bin_ms: float, arrays: dict) -> TripletAccumulator:
        """The accumulator that :meth:`to_arrays` described (empty for ``{}``)."""
        acc = cls(triplets, bin_ms)
        if arrays:
            acc.patterns = np.array(arrays["patterns"], np.int64)
            acc.n_bins = int(arrays["n_bins"])
            acc.origin_s = float(arrays["origin_s"])
            acc.carry = SpikeTrains.from_arrays(arrays, "carry_")
        return acc


def _check_spikes(spikes: SpikeTrains) -> None:
    if spikes.n_units < 3:
        raise ValueError(f"the triplet map needs ≥ 3 units, the spike trains have {spikes.n_units}")
    counts = spikes.counts()
    if not counts.any():
        raise ValueError(f"all {spikes.n_units} units are silent (no spikes in the recording)")


def _restrict(bins, boffs, used):
    """Active-bin lists of the units ``used`` (sorted positions), renumbered 0..m−1."""
    lens = np.diff(boffs)[used]
    sub_boffs = np.zeros(used.size + 1, np.int64)
    np.cumsum(lens, out=sub_boffs[1:])
    if used.size == boffs.size - 1:
        return bins, boffs
    idx = np.concatenate([np.arange(boffs[u], boffs[u + 1]) for u in used]) if used.size else []
    return bins[np.asarray(idx, np.int64)], sub_boffs


def result_dataset(patterns, triplets, unit_ids, n_bins, n_active, silent, est, boot=None,
                   rates_hz=None):  # fmt: skip
    """The Dataset of :meth:`TripletMap.fit` from raw pattern counts (T, 8).

    Variables (T = triplets): ``triplet_units`` (triplet, member) unit ids;
    ``pattern_count`` (triplet, pattern); ``theta_i`` (triplet, member) log-odds of each
    unit firing alone; ``theta_ij`` (triplet, pair) with pair 12, 13, 23 (members);
    ``theta_123``; ``se_*`` the delta-method standard errors (``boot_se_*`` the bootstrap
    ones when n_boot > 0); ``theta_pair_mean`` (mean of the three θ_ij), its SE and
    ``cov_pair_mean_123`` (for the confidence ellipses of the map); ``wald_z``, ``wald_p``,
    ``lr_stat``, ``lr_p``, ``significant`` (LR p < alpha); ``status`` ("ok"; "sparse" if a
    pattern was never seen, so the estimate leans on the pseudo-count; "empty_cell" with
    pseudo_count = 0; "silent_unit": a unit of the triplet never spiked, θ's NaN).
    Per unit: ``rate_hz`` (spikes per second; active bins per second if ``rates_hz`` is not
    given) and ``active_fraction`` (fraction of bins with ≥ 1 spike).
    """
    T = patterns.shape[0]
    pc = est.pseudo_count
    table = patterns.astype(np.float64) + pc
    empty = (patterns == 0).any(axis=1)
    status = np.full(T, "ok", dtype=object)
    status[empty] = "sparse" if pc > 0 else "empty_cell"
    status[silent] = "silent_unit"
    bad = silent | (empty & (pc == 0))
    th = thetas(patterns, pc)
    cov = delta_covariance(patterns, pc)
    se = np.sqrt(np.einsum("...aa->...a", cov))
    lr = np.full(T, np.nan)
    ok = ~bad
    if ok.any():
        lr[ok] = lr_statistic(table[ok])
    th[bad] = np.nan
    se[bad] = np.nan
    avg = np.array([0, 0, 0, 1, 1, 1, 0]) / 3.0
    e123 = np.eye(7)[6]
    var_pair = np.einsum("a,...ab,b->...", avg, cov, avg)
    cov_pm = np.einsum("a,...ab,b->...", avg, cov, e123)
    var_pair[bad] = np.nan
    cov_pm[bad] = np.nan
    wald_z = th[:, 6] / se[:, 6]
    wald_p = 2.0 * ndtr(-np.abs(wald_z))
    lr_p = chi2.sf(lr, 1)
    ids = np.asarray(unit_ids)
    duration = n_bins * est.bin_ms * 1e-3
    data = {
        "triplet_units": (("triplet", "member"), ids[triplets]),
        "pattern_count": (("triplet", "pattern"), patterns.astype(np.int64)),
        "theta_i": (("triplet", "member"), th[:, :3]),
        "theta_ij": (("triplet", "pair"), th[:, 3:6]),
        "theta_123": ("triplet", th[:, 6]),
        "se_theta_i": (("triplet", "member"), se[:, :3]),
        "se_theta_ij": (("triplet", "pair"), se[:, 3:6]),
        "se_theta_123": ("triplet", se[:, 6]),
        "theta_pair_mean": ("triplet", th[:, 3:6].mean(axis=1)),
        "se_theta_pair_mean": ("triplet", np.sqrt(var_pair)),
        "cov_pair_mean_123": ("triplet", cov_pm),
        "wald_z": ("triplet", wald_z),
        "wald_p": ("triplet", wald_p),
        "lr_stat": ("triplet", lr),
        "lr_p": ("triplet", lr_p),
        "significant": ("triplet", np.where(ok, lr_p < est.alpha, False)),
        "status": ("triplet", status.astype(str)),
        "rate_hz": ("unit", np.asarray(n_active / duration if rates_hz is None else rates_hz)),
        "active_fraction": ("unit", n_active / n_bins),
    }
    if boot is not None:
        boot = boot.copy()
        boot[bad] = np.nan
        data["boot_se_theta_i"] = (("triplet", "member"), boot[:, :3])
        data["boot_se_theta_ij"] = (("triplet", "pair"), boot[:, 3:6])
        data["boot_se_theta_123"] = ("triplet", boot[:, 6])
    ds = xr.Dataset(
        data,
        coords={"triplet": np.arange(T), "member": [1, 2, 3], "pair": list(PAIRS),
                "pattern": list(PATTERNS), "unit": ids},  # fmt: skip
        attrs={
            "kind": "triplets",
            "method": "triplet map (Shomali et al. 2023)",
            "bin_ms": est.bin_ms, "pseudo_count": pc, "alpha": est.alpha, "n_bins": int(n_bins),
            "n_boot": est.n_boot, "block_s": est.block_s,
            "tau_m_ms": est.tau_m_ms, "theta_mv": est.theta_mv,
            "pattern_order": "x1 + 2 x2 + 4 x3; labels x1x2x3",
        },
    )  # fmt: skip
    return ds
