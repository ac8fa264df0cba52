"""numba kernels of the triplet map: binarised spike trains and co-activation counts.

A unit's binarised train is kept as the sorted list of its *active* bins (≥ 1 spike), in CSR
layout (``bins``, ``boffs``); the transposed layout (``units``, ``uoffs``) lists the active
units of every bin. Only n_i, n_ij, n_ijk and the number of bins are needed for the 8
pattern counts of a triplet (inclusion–exclusion), so all triplets are counted by visiting,
bin by bin, the pairs and triples of the units active together: with k active units a bin
costs C(k, 3), which sparse activity keeps small.

Triples a < b < c are stored in colex order, index C(c, 3) + C(b, 2) + a, so the counts of
all C(n, 3) triplets are one flat array.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, parallel=True)
def active_bins(times_s, offsets, t_start_s, bin_s, n_bins):
    """Sorted distinct bins holding ≥ 1 spike of each unit; spikes past the last full bin
    are dropped.

    Returns ``bins`` (n_active,) int64 and ``boffs`` (n_units + 1,) int64: unit u's active
    bins are ``bins[boffs[u]:boffs[u+1]]``.
    """
    n_units = offsets.shape[0] - 1
    n_act = np.zeros(n_units, np.int64)
    for u in prange(n_units):
        last = -1
        c = 0
        for s in range(offsets[u], offsets[u + 1]):
            b = int(np.floor((times_s[s] - t_start_s) / bin_s))
            if b >= n_bins:
                break
            if b != last:
                c += 1
                last = b
        n_act[u] = c
    boffs = np.zeros(n_units + 1, np.int64)
    for u in range(n_units):
        boffs[u + 1] = boffs[u] + n_act[u]
    bins = np.empty(boffs[n_units], np.int64)
    for u in prange(n_units):
        last = -1
        w = boffs[u]
        for s in range(offsets[u], offsets[u + 1]):
            b = int(np.floor((times_s[s] - t_start_s) / bin_s))
            if b >= n_bins:
                break
            if b != last:
                bins[w] = b
                w += 1
                last = b
    return bins, boffs


@njit(cache=True, nogil=True)
def units_by_bin(bins, boffs, n_bins, min_active):
    """The transposed layout: active units (increasing) of each bin holding at least
    ``min_active`` of them; other bins are left out (they add nothing to pair or triple
    counts). Returns ``units`` (m,) int64, ``uoffs`` (n_kept + 1,) int64."""
    n_units = boffs.shape[0] - 1
    per_bin = np.zeros(n_bins, np.int64)
    for u in range(n_units):
        for s in range(boffs[u], boffs[u + 1]):
            per_bin[bins[s]] += 1
    keep = np.empty(n_bins, np.int64)  # position of a kept bin among kept bins, or −1
    n_kept = 0
    total = 0
    for b in range(n_bins):
        if per_bin[b] >= min_active:
            keep[b] = n_kept
            n_kept += 1
            total += per_bin[b]
        else:
            keep[b] = -1
    uoffs = np.zeros(n_kept + 1, np.int64)
    for b in range(n_bins):
        if keep[b] >= 0:
            uoffs[keep[b] + 1] = per_bin[b]
    for k in range(n_kept):
        uoffs[k + 1] += uoffs[k]
    fill = uoffs[:-1].copy()
    units = np.empty(total, np.int64)
    for u in range(n_units):  # units in increasing order, so each bin's list is sorted
        for s in range(boffs[u], boffs[u + 1]):
            k = keep[bins[s]]
            if k >= 0:
                units[fill[k]] = u
                fill[k] += 1
    return units, uoffs


@njit(cache=True, nogil=True, inline="always")
def triple_index(a, b, c):
    """Colex index of the triple a < b < c."""
    return c * (c - 1) * (c - 2) // 6 + b * (b - 1) // 2 + a


@njit(cache=True, nogil=True, parallel=True)
def coactivation_counts(units, uoffs, n_units, n_threads):
    """Pair and triple co-activation counts of all units from the per-bin active lists.

    Returns ``n2`` (n_units, n_units) int64 (upper triangle: n2[a, b], a < b, the bins with
    both active) and ``n3`` (C(n_units, 3),) int64 in colex order. Threads split the work by
    the smallest unit of a pair/triple (a ≡ slot mod ``n_threads``): no two threads write the
    same cell, and no per-thread copies of the large triple array are needed.
    """
    n3 = np.zeros(n_units * (n_units - 1) * (n_units - 2) // 6, np.int64)
    n2 = np.zeros((n_units, n_units), np.int64)
    nt = max(n_threads, 1)
    for slot in prange(nt):
        for k in range(uoffs.shape[0] - 1):
            lo = uoffs[k]
            hi = uoffs[k + 1]
            for p in range(lo, hi):
                a = units[p]
                if a % nt != slot:
                    continue
                for q in range(p + 1, hi):
                    b = units[q]
                    n2[a, b] += 1
                    for r in range(q + 1, hi):
                        n3[triple_index(a, b, units[r])] += 1
    return n2, n3


@njit(cache=True, nogil=True, parallel=True)
def gather_counts(n1, n2, n3, triplets):
    """(T, 7) counts [n_i, n_j, n_k, n_ij, n_ik, n_jk, n_ijk] of the triplets (i, j, k)
    (positions, distinct, any order) from the all-unit arrays of coactivation_counts."""
    T = triplets.shape[0]
    out = np.empty((T, 7), np.int64)
    for t in prange(T):
        i = triplets[t, 0]
        j = triplets[t, 1]
        k = triplets[t, 2]
        out[t, 0] = n1[i]
        out[t, 1] = n1[j]
        out[t, 2] = n1[k]
        out[t, 3] = n2[min(i, j), max(i, j)]
        out[t, 4] = n2[min(i, k), max(i, k)]
        out[t, 5] = n2[min(j, k), max(j, k)]
        a = min(i, min(j, k))
        c = max(i, max(j, k))
        b = i + j + k - a - c
        out[t, 6] = n3[triple_index(a, b, c)]
    return out


@njit(cache=True, nogil=True, inline="always")
def _merge3_step(bins, p, e):
    """Current bin of a list cursor, or a sentinel past its end."""
    return bins[p] if p < e else np.iinfo(np.int64).max


def merge_counts(bins, boffs, triplets):
    """(T, 7) counts like gather_counts, by a three-way merge of the units' active-bin lists:
    O(active bins of the three units) per triplet, for a few triplets among many units.
    (The block bootstrap's kernel with one block spanning every bin.)"""
    whole = np.iinfo(np.int64).max
    return block_counts(bins, boffs, np.asarray(triplets), whole, 1)[:, 0, :].astype(np.int64)


@njit(cache=True, nogil=True, parallel=True)
def block_counts(bins, boffs, triplets, block_len, n_blocks):
    """Counts [n_i, n_j, n_k, n_ij, n_ik, n_jk, n_ijk] of each triplet within each block of
    ``block_len`` consecutive bins: (T, n_blocks, 7) int32, for the block bootstrap."""
    T = triplets.shape[0]
    out = np.zeros((T, n_blocks, 7), np.int32)
    big = np.iinfo(np.int64).max
    for t in prange(T):
        u0 = triplets[t, 0]
        u1 = triplets[t, 1]
        u2 = triplets[t, 2]
        p0, e0 = boffs[u0], boffs[u0 + 1]
        p1, e1 = boffs[u1], boffs[u1 + 1]
        p2, e2 = boffs[u2], boffs[u2 + 1]
        while True:
            b0 = _merge3_step(bins, p0, e0)
            b1 = _merge3_step(bins, p1, e1)
            b2 = _merge3_step(bins, p2, e2)
            b = min(b0, min(b1, b2))
            if b == big:
                break
            x0 = b0 == b
            x1 = b1 == b
            x2 = b2 == b
            blk = min(b // block_len, n_blocks - 1)
            out[t, blk, 0] += x0
            out[t, blk, 1] += x1
            out[t, blk, 2] += x2
            out[t, blk, 3] += x0 and x1
            out[t, blk, 4] += x0 and x2
            out[t, blk, 5] += x1 and x2
            out[t, blk, 6] += x0 and x1 and x2
            p0 += x0
            p1 += x1
            p2 += x2
    return out
