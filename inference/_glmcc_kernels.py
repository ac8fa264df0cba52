"""numba kernels of GLMCC: cross-correlograms of all pairs and the MAP fit of one pair.

Notation (Kobayashi et al. 2019): M = 2W/Δ bins of Δ = 1 ms over lags (−W, W); a (M,) the
slow modulation; J₊ (pre → post, lags t > d) and J₋ (post → pre, lags t < −d); the kernel
f(s) = exp(−(s − d)/τ) for s ≥ d. The bin integrals of the rate are written with the
substitution u = exp(−(t − d)/τ): ∫ exp(a + J u) dt = τ e^a ∫ e^{Ju}/u du, whose power
series in J has coefficients c_m = (u₁^m − u₂^m)/(m·m!) fixed by the bin — so a fit only
evaluates polynomials, no exponential integral.
"""

import numpy as np
from numba import get_num_threads, njit, prange, types
from numba.extending import intrinsic

N_TERMS = 40  # |J u| ≤ 5: the 40th term is below 3·10⁻²² of the sum
SUB = 4  # blocks per W: lags |t| < W join spikes at most SUB blocks apart
EDGE_TOL_MS = 1e-7  # lags this close to an integer are "on the edge" (times given to 0.01 ms)


@intrinsic
def _popcount(typingctx, x):
    """Set bits of a uint64 (one popcnt instruction)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


def block_ms(window_ms):
    """Width B of the time blocks that index the trains: (⌊W⌋ + 1)/SUB, so a lag |t| < W
    joins spikes at most SUB blocks apart, and B·g is a multiple of 1/SUB ms (SUB a power of
    two), which keeps t − B·g exact."""
    return (float(np.floor(window_ms)) + 1.0) / SUB


@njit(cache=True, nogil=True)
def block_offsets(times_ms, block, tau_ms):
    """Block g = trunc(t/B) of every spike and v = (t − B·g)/τ.

    B·g is a multiple of 1/SUB ms, so t − B·g is exact (|t| < 2⁵¹ ms) and |v| < B/τ: the lag
    kernel factorises as e^{−(t₂ − t₁)/τ} = e^{−v₂}·e^{v₁}·e^{−B(g₂ − g₁)/τ} with one
    exponential per spike instead of one per lag.
    """
    n = times_ms.shape[0]
    g = np.empty(n, np.int64)
    v = np.empty(n)
    block_offsets_into(times_ms, block, tau_ms, g, v)
    return g, v


@njit(cache=True, nogil=True)
def block_offsets_into(times_ms, block, tau_ms, g, v):
    """:func:`block_offsets` into ``g`` (any integer type that holds t/B + 2·SUB + 2) and
    ``v``."""
    inv_block = 1.0 / block  # products, not divisions: the loop vectorises; g only needs
    inv_tau = 1.0 / tau_ms  # to be monotone in t (blocks of width B up to rounding)
    for i in range(times_ms.shape[0]):
        gi = int(times_ms[i] * inv_block)
        g[i] = gi
        v[i] = (times_ms[i] - block * gi) * inv_tau


@njit(cache=True, nogil=True)
def block_index(g, offsets):
    """Rank index of the blocks of each train (CSR ``offsets``).

    Shifts ``g`` in place to g − min g + SUB (so g − SUB … g + SUB + 1 are valid). Returns
    ``occ`` (U, nw) uint64, the bitmap of blocks holding a spike; ``base`` (U, nw), the
    occupied blocks before each 64-block word; ``first`` (N + U,), per train u at
    ``offsets[u] + u``: the position in the train of the first spike of its k-th occupied
    block, then the train's length. The spikes of train u in blocks < b are then
    ``first[rank(b)]``, rank(b) = base[b/64] + popcount(occ[b/64] below bit b mod 64):
    O(1) per query, (T/B)/8 bytes per train.
    """
    N = g.shape[0]
    U = offsets.shape[0] - 1
    gmin = g.min() if N > 0 else 0
    gmax = g.max() if N > 0 else 0
    nw = ((gmax - gmin + 2 * SUB + 2) >> 6) + 1
    occ = np.zeros((U, nw), np.uint64)
    base = np.empty((U, nw), np.int32)
    first = np.empty(N + U, np.int32)
    for u in range(U):
        o = offsets[u]
        n = offsets[u + 1] - o
        row = occ[u]
        f = first[o + u : o + u + n + 1]
        n_occ = 0
        prev = -1
        acc = np.uint64(0)  # the bits of word prev_w so far (blocks ascend: plain stores,
        prev_w = np.uint64(0)  # no read-modify-write chained through memory)
        for k in range(n):
            b = g[o + k] - gmin + SUB
            g[o + k] = b
            ub = np.uint64(b)
            w = ub >> np.uint64(6)
            acc = (acc if w == prev_w else np.uint64(0)) | (np.uint64(1) << (ub & np.uint64(63)))
            row[w] = acc
            prev_w = w
            f[n_occ] = k
            n_occ += b != prev  # a new block: keep k as its first spike
            prev = b
        f[n_occ] = n
        s = 0
        bs = base[u]
        for w in range(nw):
            bs[w] = s
            s += _popcount(row[w])
    return occ, base, first


@njit(cache=True, nogil=True)
def mixed_bins(window_ms, delays_ms):
    """Bins (and the overflow bin M) whose lags are not all on one side of every ±d: their
    lags add to S± one by one; every other bin adds its Σ e^{−|t|/τ} at once."""
    M = int(round(2 * window_ms))
    mixed = np.zeros(M + 1, np.bool_)
    for k in range(M):
        lo = k - window_ms - 1e-6
        hi = k - window_ms + 1.0 + 1e-6
        for q in range(delays_ms.shape[0]):
            d = delays_ms[q]
            if (lo < d < hi) or (lo < -d < hi):
                mixed[k] = True
    return mixed


CHUNK = 256  # outer spikes per gathering pass (the candidate buffers stay in L1)


@njit(cache=True, nogil=True)
def _pair_kernel(x_out, g_out, p_out, q_out, x_in, g_in, p_in, q_in, occ_in, base_in, first_in,
                 sign, window_ms, delays_ms, tau_ms, min_lag_ms, mixed, fac, ws_f, ws_i,
                 counts, s_plus, s_minus):  # fmt: skip
    """Histogram and kernel sums of the lags t = sign·(x_in − x_out) in (−W, W).

    ``g_*`` are block indices (:func:`block_index`), ``p_* = e^{v}``, ``q_* = e^{−v}``
    (:func:`block_offsets`; None: one exp per lag) and ``occ_in``/``base_in``/``first_in``
    the rank index of the inner train; ``fac`` the e^{−B·Δg/τ} of :func:`_block_factors`;
    ``ws_f``/``ws_i`` the scratch of :func:`_workspace` (no allocation per pair).
    Writes the lags per bin to ``counts`` (M,) and S± to ``s_plus``/``s_minus``; returns
    the number of lags.

    Per chunk of outer spikes, a branch-free pass over the inner bitmap keeps those with an
    occupied inner block within SUB (about a third of them at a few Hz); a second lists these
    with their first candidate (two rank queries each), and
    apart the few with more; one loop then bins all candidates, branch-free but for lags on
    a bin edge or in a bin that straddles a delay (rare): the others add (1, e^{−|t|/τ}) to
    their bin, or to bin M outside (−W, W), and S± are summed from the bins at the end. The
    hot loops call no function that takes an array (numba would reference-count it per
    call).
    """
    W = window_ms
    M = int(round(2 * W))
    nd = delays_ms.shape[0]
    hist = ws_f[0]  # lags per bin; bin M: candidates outside (−W, W)
    e_bin = ws_f[1]  # Σ e^{−|t|/τ} per bin
    hist[:] = 0.0
    e_bin[:] = 0.0
    s_plus[:] = 0.0
    s_minus[:] = 0.0
    n_lags = 0
    cand_i = ws_i[0]
    cand_j = ws_i[1]
    hit_i = ws_i[2, :CHUNK]
    more_i = ws_i[3, :CHUNK]
    more_lo = ws_i[4, :CHUNK]
    more_hi = ws_i[5, :CHUNK]
    one = np.uint64(1)
    zero = np.uint64(0)
    nine = np.uint64((1 << (2 * SUB + 1)) - 1)
    eight = np.uint64(2 * SUB)
    two = np.uint64(SUB)
    five = np.uint64(2 * SUB + 1)
    six = np.uint64(6)
    low = np.uint64(63)
    n_out = x_out.shape[0]
    for c0 in range(0, n_out, CHUNK):
        # Outer spikes with an occupied inner block within SUB: the 2·SUB + 1 bits of the
        # bitmap from block b − SUB (two words), branch-free. Most have none at a few Hz;
        # only these pay for the rank queries.
        n_hit = 0
        for i in range(c0, min(c0 + CHUNK, n_out)):
            b = np.uint64(g_out[np.uint64(i)]) - two
            w = b >> six
            s = b & low
            w2 = (b + eight) >> six  # w + 1 where the window crosses into it, else w (in range)
            bits = (occ_in[w] >> s) | ((occ_in[w2] << one) << (low - s))
            hit_i[np.uint64(n_hit)] = i
            n_hit += np.int64((bits & nine) != zero)
        m1 = 0
        m2 = 0
        for h in range(n_hit):
            i = hit_i[np.uint64(h)]
            # inner spikes in blocks b ± SUB: first[rank(b − SUB)] … first[rank(b + SUB + 1)]
            b = np.uint64(g_out[np.uint64(i)]) - two  # ≥ 0; unsigned: no index wraparound
            w = b >> six
            rank = base_in[w] + np.int64(_popcount(occ_in[w] & ((one << (b & low)) - one)))
            lo = first_in[np.uint64(rank)]
            b += five
            w = b >> six
            rank = base_in[w] + np.int64(_popcount(occ_in[w] & ((one << (b & low)) - one)))
            hi = first_in[np.uint64(rank)]
            u1 = np.uint64(m1)
            cand_i[u1] = i
            cand_j[u1] = lo
            m1 += hi > lo
            u2 = np.uint64(m2)
            more_i[u2] = i
            more_lo[u2] = lo + 1
            more_hi[u2] = hi
            m2 += hi > lo + 1
        n_ext = 0
        for a in range(m2):
            n_ext += more_hi[a] - more_lo[a]
        if m1 + n_ext > cand_i.shape[0]:  # the first candidates, then the further ones
            grown_i = np.empty(2 * (m1 + n_ext), np.int64)
            grown_j = np.empty(2 * (m1 + n_ext), np.int64)
            grown_i[:m1] = cand_i[:m1]
            grown_j[:m1] = cand_j[:m1]
            cand_i, cand_j = grown_i, grown_j
        n_cand = m1
        for a in range(m2):
            for j in range(more_lo[a], more_hi[a]):
                cand_i[n_cand] = more_i[a]
                cand_j[n_cand] = j
                n_cand += 1
        for a in range(n_cand):
            # unsigned indices: numba adds no negative-index wraparound to each access
            i = np.uint64(cand_i[a])
            j = np.uint64(cand_j[a])
            dx = x_in[j] - x_out[i]
            if p_in is None:
                e = np.exp(-abs(dx) / tau_ms)
            else:
                dg = g_in[j] - g_out[i]  # −SUB … SUB
                fwd = q_in[j] * p_out[i] * fac[np.uint64(SUB + dg)]
                bwd = p_in[j] * q_out[i] * fac[np.uint64(SUB - dg)]
                e = min(fwd, bwd)  # e^{−dx/τ} or e^{dx/τ}: the one ≤ 1, no branch on dx
            t = sign * dx
            at = abs(t)
            valid = np.int64((at < W) & (at >= min_lag_ms))
            n_lags += valid
            x = t + W
            k = np.uint64(min(max(int(np.floor(x)), 0), M - 1))
            r = np.floor(x + 0.5)
            edge = (abs(x - r) < EDGE_TOL_MS) & (r > 0) & (r < M)  # implies |t| < W
            kv = np.uint64(M - valid * (M - np.int64(k)))  # k, or M outside the window
            # One branch, taken rarely (mixed[M] is False): validity alone, tested first,
            # would be unpredictable.
            if edge | mixed[kv]:
                if valid == 0:  # a lag below min_lag_ms on a bin edge
                    hist[kv] += 1.0
                    e_bin[kv] += e
                    continue
                if edge:  # a lag on a bin edge adds 0.5 to both neighbours
                    kk = int(r)
                    hist[kk - 1] += 0.5
                    hist[kk] += 0.5
                else:
                    hist[k] += 1.0
                for q in range(nd):
                    if t > delays_ms[q]:
                        s_plus[q] += e
                    elif t < -delays_ms[q]:
                        s_minus[q] += e
            else:
                hist[kv] += 1.0
                e_bin[kv] += e
    for q in range(nd):
        d = delays_ms[q]
        sp = s_plus[q]
        sm = s_minus[q]
        for k in range(M):
            if not mixed[k]:
                if k - W > d:
                    sp += e_bin[k]
                elif k - W + 1.0 < -d:
                    sm += e_bin[k]
        scale = np.exp(d / tau_ms)  # e^{−(t−d)/τ} = e^{d/τ}·e^{−t/τ}
        s_plus[q] = sp * scale
        s_minus[q] = sm * scale
    counts[:] = hist[:M]
    return n_lags


@njit(cache=True, nogil=True)
def _block_factors(block, tau_ms):
    """e^{−B·Δg/τ} at Δg + SUB for Δg = −SUB … SUB."""
    return np.exp(-block / tau_ms * np.arange(-SUB, SUB + 1.0))


@njit(cache=True, nogil=True)
def _workspace(M):
    """Scratch of :func:`_pair_kernel`: (2, M + 1) floats and (6, 2·CHUNK) indices."""
    return np.empty((2, M + 1)), np.empty((6, 2 * CHUNK), np.int64)


@njit(cache=True, nogil=True)
def pair_statistics(pre_ms, post_ms, window_ms, delays_ms, tau_ms, min_lag_ms):
    """Histogram and kernel sums of the lags t = t_post − t_pre in (−W, W), leaving out
    |t| < min_lag_ms.

    Returns
    -------
    counts : (M,) float64
        Lags per 1-ms bin; a lag on a bin edge adds 0.5 to both neighbours.
    s_plus, s_minus : (n_delays,) float64
        Σ_{t > d} exp(−(t − d)/τ) and Σ_{t < −d} exp((t + d)/τ) for each delay d.
    n_lags : int
    """
    times = np.concatenate((pre_ms, post_ms))
    offsets = np.array([0, pre_ms.shape[0], times.shape[0]])
    block = (np.floor(window_ms) + 1.0) / SUB
    g, v = block_offsets(times, block, tau_ms)
    p = np.exp(v)
    q = np.exp(-v)
    occ, base, first = block_index(g, offsets)
    M = int(round(2 * window_ms))
    nd = delays_ms.shape[0]
    counts = np.empty(M)
    s_plus = np.empty(nd)
    s_minus = np.empty(nd)
    ws_f, ws_i = _workspace(M)
    n_lags = _pair_by_index(times, g, p, q, occ, base, first, offsets, 0, 1, window_ms, block,
                            delays_ms, tau_ms, min_lag_ms, mixed_bins(window_ms, delays_ms),
                            _block_factors(block, tau_ms), ws_f, ws_i, counts, s_plus,
                            s_minus)  # fmt: skip
    return counts, s_plus, s_minus, n_lags


@njit(cache=True, nogil=True)
def _pair_by_index(times, g, p, q, occ, base, first, offsets, a, b, window_ms, block, delays_ms,
                   tau_ms, min_lag_ms, mixed, fac, ws_f, ws_i, counts, s_plus, s_minus):  # fmt: skip
    """Lags t = t_b − t_a of trains a and b; the sweep runs over the sparser of the two."""
    sign = 1.0
    if offsets[a + 1] - offsets[a] > offsets[b + 1] - offsets[b]:
        a, b, sign = b, a, -1.0
    oa, ea, ob, eb = offsets[a], offsets[a + 1], offsets[b], offsets[b + 1]
    if block / tau_ms > 50.0:  # products of e^{±v} and e^{±B·SUB/τ} could overflow: exp per lag
        return _pair_kernel(times[oa:ea], g[oa:ea], None, None, times[ob:eb], g[ob:eb], None,
                            None, occ[b], base[b], first[ob + b : eb + b + 1], sign, window_ms,
                            delays_ms, tau_ms, min_lag_ms, mixed, fac, ws_f, ws_i, counts,
                            s_plus, s_minus)  # fmt: skip
    return _pair_kernel(times[oa:ea], g[oa:ea], p[oa:ea], q[oa:ea], times[ob:eb], g[ob:eb],
                        p[ob:eb], q[ob:eb], occ[b], base[b], first[ob + b : eb + b + 1], sign,
                        window_ms, delays_ms, tau_ms, min_lag_ms, mixed, fac, ws_f, ws_i,
                        counts, s_plus, s_minus)  # fmt: skip


@njit(cache=True, nogil=True, parallel=True)
def _all_pairs(times, g, p, q, occ, base, first, offsets, pairs, window_ms, block, delays_ms,
               tau_ms, min_lag_ms, n_threads):  # fmt: skip
    P = pairs.shape[0]
    M = int(round(2 * window_ms))
    nd = delays_ms.shape[0]
    mixed = mixed_bins(window_ms, delays_ms)
    counts = np.zeros((P, M))
    s_plus = np.zeros((P, nd))
    s_minus = np.zeros((P, nd))
    n_lags = np.zeros(P, np.int64)
    fac = _block_factors(block, tau_ms)
    # One scratch per worker (pairs k ≡ t mod n_work), not per pair.
    n_work = max(min(P, n_threads), 1)
    for t in prange(n_work):
        ws_f, ws_i = _workspace(M)
        for k in range(t, P, n_work):
            n_lags[k] = _pair_by_index(times, g, p, q, occ, base, first, offsets, pairs[k, 0],
                                       pairs[k, 1], window_ms, block, delays_ms, tau_ms,
                                       min_lag_ms, mixed, fac, ws_f, ws_i, counts[k],
                                       s_plus[k], s_minus[k])  # fmt: skip
    return counts, s_plus, s_minus, n_lags


def all_pair_statistics(times_ms, offsets, pairs, window_ms, delays_ms, tau_ms, min_lag_ms):
    """:func:`pair_statistics` for every (pre, post) row of ``pairs`` (P, 2), in parallel.

    ``times_ms``/``offsets`` is the CSR spike-train layout in ms. Cost O(spikes × window):
    per pair one branch-free pass over the sparser train and O(1) work per lag; the block
    index and the e^{±v} (numpy's vectorised exp) are built once for all trains.
    """
    times_ms = np.ascontiguousarray(times_ms, dtype=np.float64)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    block = block_ms(window_ms)
    # Fresh memory costs ~0.1 ms per MB here (page faults), a fixed cost per call: g in
    # int32 where the blocks fit, e^{v} in place of v.
    n = times_ms.shape[0]
    t_max = max(abs(times_ms.max()), abs(times_ms.min())) if n else 0.0
    small = 2.0 * t_max / block + 4 * SUB + 8 < 2**31 - 1  # g and g − min g + SUB fit
    g = np.empty(n, np.int32 if small else np.int64)
    v = np.empty(n)
    block_offsets_into(times_ms, block, float(tau_ms), g, v)
    p = np.exp(v, out=v)
    q = np.divide(1.0, p)
    occ, base, first = block_index(g, offsets)
    return _all_pairs(times_ms, g, p, q, occ, base, first, offsets, pairs, float(window_ms),
                      block, delays_ms, float(tau_ms), float(min_lag_ms),
                      get_num_threads())  # fmt: skip


@njit(cache=True, nogil=True)
def bin_geometry(window_ms, delay_ms, tau_ms, min_lag_ms):
    """Per-bin constants of the rate integrals for one delay.

    Lags with |t| < min_lag_ms are outside the model: that part of a bin neither holds
    data nor enters the integral.

    Returns
    -------
    free_len : (M,) length (ms) of each bin where neither J acts
    plus_log, minus_log : (M,) ln(u₁/u₂) of the part of the bin where J₊ (J₋) acts
    plus_c, minus_c : (M, N_TERMS) power-series coefficients c_m (m = 1…N_TERMS)
    plus_n, minus_n : (M,) int64 number of terms that matter for |J| ≤ 5 (far from the
        delay u is small and two or three terms reach machine precision)
    """
    M = int(round(2 * window_ms))
    free_len = np.zeros(M)
    plus_log = np.zeros(M)
    minus_log = np.zeros(M)
    plus_c = np.zeros((M, N_TERMS))
    minus_c = np.zeros((M, N_TERMS))
    plus_n = np.zeros(M, np.int64)
    minus_n = np.zeros(M, np.int64)
    for k in range(M):
        t1 = -window_ms + k
        t2 = t1 + 1.0
        excluded = max(0.0, min(t2, min_lag_ms) - max(t1, -min_lag_ms))
        free = (t2 - t1) - excluded
        # J₊ acts on [d, ∞) (outside the excluded lags): u = exp(−(t − d)/τ) decreases in t.
        lo, hi = max(t1, delay_ms, min_lag_ms), t2
        if hi > lo:
            free -= hi - lo
            _series(np.exp(-(lo - delay_ms) / tau_ms), np.exp(-(hi - delay_ms) / tau_ms), plus_c[k])
            plus_log[k] = (hi - lo) / tau_ms
        # J₋ acts on (−∞, −d]: f(−t) = exp((t + d)/τ).
        lo, hi = t1, min(t2, -delay_ms, -min_lag_ms)
        if hi > lo:
            free -= hi - lo
            _series(np.exp((hi + delay_ms) / tau_ms), np.exp((lo + delay_ms) / tau_ms), minus_c[k])
            minus_log[k] = (hi - lo) / tau_ms
        free_len[k] = max(free, 0.0)
        plus_n[k] = _terms_needed(plus_c[k], plus_log[k])
        minus_n[k] = _terms_needed(minus_c[k], minus_log[k])
    return free_len, plus_log, minus_log, plus_c, minus_c, plus_n, minus_n


@njit(cache=True, nogil=True)
def _terms_needed(c, log_ratio):
    """Terms of Σ c_m J^m that can change the bin integral at |J| ≤ 5 (relative 10⁻¹⁸)."""
    if log_ratio <= 0.0:
        return 0
    scale = log_ratio
    power = 1.0
    last = 0
    for m in range(1, N_TERMS + 1):
        power *= 5.0
        if c[m - 1] * power > 1e-18 * scale:
            last = m
    return last


@njit(cache=True, nogil=True)
def _series(u_hi, u_lo, out):
    pu, pl, fact = 1.0, 1.0, 1.0
    for m in range(1, N_TERMS + 1):
        pu *= u_hi
        pl *= u_lo
        fact *= m
        out[m - 1] = (pu - pl) / (m * fact)


@njit(cache=True, nogil=True, inline="always")
def _poly(c, J, n_terms=N_TERMS):
    """For E(J) = ln(u₁/u₂) + Σ_m c_m J^m return (Σ c_m J^m, E′(J), E″(J)) by Horner,
    summing the first ``n_terms`` terms."""
    h0 = 0.0
    h1 = 0.0
    h2 = 0.0
    for m in range(n_terms, 0, -1):
        cm = c[m - 1]
        h0 = h0 * J + cm
        h1 = h1 * J + m * cm
        if m >= 2:
            h2 = h2 * J + m * (m - 1) * cm
    return h0 * J, h1, h2


@njit(cache=True, nogil=True, inline="always")
def _side(c, log_ratio, J, n_terms, ek, tau):
    """One side's share of bin k: (∫ over the J part of the bin / e^a, ∂G/∂J, ∂²G/∂J²);
    zeros for a bin where this J does not act."""
    if log_ratio <= 0.0:
        return 0.0, 0.0, 0.0
    e0, e1, e2 = _poly(c, J, n_terms)
    return tau * (log_ratio + e0), ek * tau * e1, ek * tau * e2


@njit(cache=True, nogil=True)
def _evaluate(a, Jp, Jm, counts, s_plus, s_minus, free_len, plus_log, minus_log, plus_c, minus_c,
              plus_n, minus_n, tau, beta, grad, diag, cp, cm):  # fmt: skip
    """Log posterior at (a, J₊, J₋); fills the gradient (M+2,), the diagonal of −∂²L/∂a²
    (M,), and −∂²L/∂a∂J± (M,) each; returns (log posterior, log likelihood, −∂²L/∂J₊²,
    −∂²L/∂J₋²)."""
    M = a.shape[0]
    loglik = Jp * s_plus + Jm * s_minus
    gp = s_plus
    gm = s_minus
    hpp = 0.0
    hmm = 0.0
    for k in range(M):
        ek = np.exp(a[k])
        wp, cp[k], hp = _side(plus_c[k], plus_log[k], Jp, plus_n[k], ek, tau)
        wm, cm[k], hm = _side(minus_c[k], minus_log[k], Jm, minus_n[k], ek, tau)
        gp -= cp[k]
        gm -= cm[k]
        hpp += hp
        hmm += hm
        G = ek * (free_len[k] + wp + wm)
        loglik += counts[k] * a[k] - G
        grad[k] = counts[k] - G
        diag[k] = G
    prior = 0.0
    for k in range(M - 1):
        da = a[k + 1] - a[k]
        prior += da * da
        grad[k] += beta * da
        grad[k + 1] -= beta * da
        diag[k] += beta
        diag[k + 1] += beta
    grad[M] = gp
    grad[M + 1] = gm
    return loglik - 0.5 * beta * prior, loglik, hpp, hmm


@njit(cache=True, nogil=True)
def _tridiag_solve(diag, off, rhs, work):
    """Solve the symmetric tridiagonal system (diagonal ``diag``, constant off-diagonal
    ``off``) for ``rhs`` in O(M) (Thomas algorithm; the matrix is diagonally dominant)."""
    M = diag.shape[0]
    x = np.empty(M)
    work[0] = off / diag[0]
    x[0] = rhs[0] / diag[0]
    for k in range(1, M):
        den = diag[k] - off * work[k - 1]
        work[k] = off / den
        x[k] = (rhs[k] - off * x[k - 1]) / den
    for k in range(M - 2, -1, -1):
        x[k] -= work[k] * x[k + 1]
    return x


@njit(cache=True, nogil=True)
def _tridiag_solve3(diag, shift, off, r0, r1, r2, x0, x1, x2, work):
    """:func:`_tridiag_solve` of the matrix with diagonal ``diag + shift`` for three
    right-hand sides at once, into ``x0``/``x1``/``x2``: the same operations per system
    (so the same values), but one pass, whose three chains of divisions overlap."""
    M = diag.shape[0]
    d = diag[0] + shift
    work[0] = off / d
    x0[0] = r0[0] / d
    x1[0] = r1[0] / d
    x2[0] = r2[0] / d
    for k in range(1, M):
        den = (diag[k] + shift) - off * work[k - 1]
        work[k] = off / den
        x0[k] = (r0[k] - off * x0[k - 1]) / den
        x1[k] = (r1[k] - off * x1[k - 1]) / den
        x2[k] = (r2[k] - off * x2[k - 1]) / den
    for k in range(M - 2, -1, -1):
        w = work[k]
        x0[k] -= w * x0[k + 1]
        x1[k] -= w * x1[k + 1]
        x2[k] -= w * x2[k + 1]


@njit(cache=True, nogil=True)
def _dot(x, y):
    """Σ x_k y_k in order (np.dot's value for these lengths without the BLAS call)."""
    s = 0.0
    for k in range(x.shape[0]):
        s += x[k] * y[k]
    return s


@njit(cache=True, nogil=True)
def coupling_se(diag, cp, cm, hpp, hmm, beta, free_plus, free_minus, work):
    """See :func:`_coupling_se`."""
    M = diag.shape[0]
    return _coupling_se(diag, cp, cm, hpp, hmm, beta, free_plus, free_minus, work,
                        np.empty(M), np.empty(M), np.empty(M))  # fmt: skip


@njit(cache=True, nogil=True)
def _coupling_se(diag, cp, cm, hpp, hmm, beta, free_plus, free_minus, work, Yp, Ym, Z):
    """Laplace posterior sd of (J₊, J₋): the square roots of the J diagonal of (−H)⁻¹, −H the
    Hessian of the negative log posterior (``diag``/``cp``/``cm``/``hpp``/``hmm`` as filled by
    :func:`_evaluate` at the MAP).

    −H = [[T, B], [Bᵀ, D_J]] with T tridiagonal (M × M), B = [cp, cm] and D_J diagonal, so
    the J block of (−H)⁻¹ is S⁻¹, S = D_J − Bᵀ T⁻¹ B (2 × 2): two O(M) tridiagonal solves.
    A J that is not free (held at 0, or on a clip bound) is treated as fixed: it gets NaN
    and the other its conditional sd 1/√S_ii. ``Yp``/``Ym``/``Z`` (M,): scratch.
    """
    se_p = np.nan
    se_m = np.nan
    if not free_plus and not free_minus:
        return se_p, se_m
    _tridiag_solve3(diag, 0.0, -beta, cp, cm, cm, Yp, Ym, Z, work)  # third: unused
    s11 = hpp - _dot(cp, Yp)
    s22 = hmm - _dot(cm, Ym)
    s12 = -_dot(cp, Ym)
    if free_plus and free_minus:
        det = s11 * s22 - s12 * s12
        if det > 0.0 and s11 > 0.0 and s22 > 0.0:
            se_p = np.sqrt(s22 / det)
            se_m = np.sqrt(s11 / det)
    elif free_plus:
        if s11 > 0.0:
            se_p = np.sqrt(1.0 / s11)
    elif s22 > 0.0:
        se_m = np.sqrt(1.0 / s22)
    return se_p, se_m


@njit(cache=True, nogil=True)
def fit_pair(counts, s_plus, s_minus, free_len, plus_log, minus_log, plus_c, minus_c, plus_n,
             minus_n, tau, beta, window, fix_plus, fix_minus, j_lo, j_hi, tol, max_iter):  # fmt: skip
    """See :func:`_fit_pair` (here with fresh scratch, and ``a`` a fresh array)."""
    a, Jp, Jm, L, LL, it, converged, se_p, se_m = _fit_pair(
        counts, s_plus, s_minus, free_len, plus_log, minus_log, plus_c, minus_c, plus_n,
        minus_n, tau, beta, window, fix_plus, fix_minus, j_lo, j_hi, tol, max_iter,
        _fit_workspace(counts.shape[0]),
    )  # fmt: skip
    return a.copy(), Jp, Jm, L, LL, it, converged, se_p, se_m


@njit(cache=True, nogil=True)
def _fit_workspace(M):
    """Scratch of :func:`_fit_pair`: (16, M + 2)."""
    return np.empty((16, M + 2))


@njit(cache=True, nogil=True)
def _fit_pair(counts, s_plus, s_minus, free_len, plus_log, minus_log, plus_c, minus_c, plus_n,
              minus_n, tau, beta, window, fix_plus, fix_minus, j_lo, j_hi, tol, max_iter,
              ws):  # fmt: skip
    """MAP of (a, J₊, J₋) by Levenberg–Marquardt on the full Newton system.

    −H is tridiagonal in a plus two border columns (a, J±) and a diagonal J block, so each
    step is three O(M) tridiagonal solves (one fused pass) and a 2×2 Schur complement.
    ``fix_plus`` / ``fix_minus`` hold that J at 0 (the restricted fits of the
    likelihood-ratio test). The buffers are rows of the scratch ``ws``
    (:func:`_fit_workspace`, no allocation per fit); an accepted step swaps them with the
    trial's.

    Returns
    -------
    a : (M,) (a row of ``ws``), J₊, J₋, log posterior, log likelihood, iterations, converged (bool), and the
    Laplace posterior sd of J₊ and J₋ at the MAP (:func:`coupling_se`; NaN for a J held at
    0 or on a clip bound)
    """
    M = counts.shape[0]
    a = ws[0, :M]
    a[:] = np.log(max(counts.sum(), 1.0) / (2.0 * window))
    Jp = 0.0 if fix_plus else 0.1
    Jm = 0.0 if fix_minus else 0.1
    grad = ws[1]
    diag = ws[2, :M]
    cp = ws[3, :M]
    cm = ws[4, :M]
    work = ws[5, :M]
    L, LL, hpp, hmm = _evaluate(a, Jp, Jm, counts, s_plus, s_minus, free_len, plus_log,
                                minus_log, plus_c, minus_c, plus_n, minus_n, tau, beta,
                                grad, diag, cp, cm)  # fmt: skip
    lam = 1e-3
    converged = False
    it = 0
    g2 = ws[6]
    d2 = ws[7, :M]
    cp2 = ws[8, :M]
    cm2 = ws[9, :M]
    a_new = ws[10, :M]
    X = ws[11, :M]
    Yp = ws[12, :M]
    Ym = ws[13, :M]
    while it < max_iter:
        it += 1
        _tridiag_solve3(diag, lam, -beta, grad, cp, cm, X, Yp, Ym, work)
        # Schur complement of the J block (only the free J's).
        s11 = hpp + lam - _dot(cp, Yp)
        s22 = hmm + lam - _dot(cm, Ym)
        s12 = -_dot(cp, Ym)
        r1 = grad[M] - _dot(cp, X)
        r2 = grad[M + 1] - _dot(cm, X)
        dJp = 0.0
        dJm = 0.0
        if not fix_plus and not fix_minus:
            det = s11 * s22 - s12 * s12
            dJp = (s22 * r1 - s12 * r2) / det
            dJm = (s11 * r2 - s12 * r1) / det
        elif not fix_plus:
            dJp = r1 / s11
        elif not fix_minus:
            dJm = r2 / s22
        for k in range(M):
            a_new[k] = X[k] - Yp[k] * dJp - Ym[k] * dJm + a[k]
        Jp_new = min(max(Jp + dJp, j_lo), j_hi) if not fix_plus else 0.0
        Jm_new = min(max(Jm + dJm, j_lo), j_hi) if not fix_minus else 0.0
        L_new, LL_new, hpp2, hmm2 = _evaluate(a_new, Jp_new, Jm_new, counts, s_plus, s_minus,
                                              free_len, plus_log, minus_log, plus_c, minus_c,
                                              plus_n, minus_n, tau, beta, g2, d2, cp2, cm2)  # fmt: skip
        if L_new > L:
            gain = L_new - L
            a, a_new = a_new, a
            grad, g2 = g2, grad
            diag, d2 = d2, diag
            cp, cp2 = cp2, cp
            cm, cm2 = cm2, cm
            Jp, Jm, L, LL, hpp, hmm = Jp_new, Jm_new, L_new, LL_new, hpp2, hmm2
            lam = max(lam / 10.0, 1e-12)
            if gain < tol:
                converged = True
                break
        else:
            lam *= 10.0
            if lam > 1e10:  # no step uphill: at the maximum to machine precision
                converged = True
                break
    free_p = not fix_plus and j_lo < Jp < j_hi
    free_m = not fix_minus and j_lo < Jm < j_hi
    se_p, se_m = _coupling_se(diag, cp, cm, hpp, hmm, beta, free_p, free_m, work, Yp, Ym, X)
    return a, Jp, Jm, L, LL, it, converged, se_p, se_m


@njit(cache=True, nogil=True, parallel=True)
def fit_pairs(counts, s_plus, s_minus, free_len, plus_log, minus_log, plus_c, minus_c, plus_n,
              minus_n, tau, beta, window, fix, j_lo, j_hi, tol, max_iter):  # fmt: skip
    """:func:`fit_pair` for P pairs × D delays in parallel; keeps the delay of the largest
    log posterior per pair.

    Geometry arrays carry the delay first (D, M, ...); ``fix`` (P, 2) bool holds J₊ / J₋ at
    0 per pair (the restricted fits of the LR test).

    Returns
    -------
    best (P,) delay index, a (P, M), J (P, 2), log posterior (P,), log likelihood (P,),
    converged (P,) bool, J_se (P, 2) the Laplace posterior sd of J at the kept delay
    """
    P, M = counts.shape
    D = free_len.shape[0]
    best = np.zeros(P, np.int64)
    a_out = np.empty((P, M))
    J_out = np.empty((P, 2))
    L_out = np.full(P, -np.inf)
    LL_out = np.empty(P)
    conv_out = np.zeros(P, np.bool_)
    se_out = np.full((P, 2), np.nan)
    for p in prange(P):
        ws = _fit_workspace(M)  # one scratch for the D fits of the pair
        for q in range(D):
            a, Jp, Jm, L, LL, it, conv, se_p, se_m = _fit_pair(
                counts[p], s_plus[p, q], s_minus[p, q], free_len[q], plus_log[q], minus_log[q],
                plus_c[q], minus_c[q], plus_n[q], minus_n[q], tau, beta, window,
                fix[p, 0], fix[p, 1], j_lo, j_hi, tol, max_iter, ws,
            )  # fmt: skip
            if L > L_out[p]:
                best[p] = q
                a_out[p] = a
                J_out[p, 0] = Jp
                J_out[p, 1] = Jm
                L_out[p] = L
                LL_out[p] = LL
                conv_out[p] = conv
                se_out[p, 0] = se_p
                se_out[p, 1] = se_m
    return best, a_out, J_out, L_out, LL_out, conv_out, se_out
