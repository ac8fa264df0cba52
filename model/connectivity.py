"""Connectivity rules: which (pre, post) pairs get a synapse.

Each rule takes the global indices of a presynaptic and a postsynaptic population and a
numpy Generator, and returns two int64 arrays (pre, post). They never build an
n_pre × n_post matrix for the sparse rules, so a 10⁴-neuron network costs what its
synapses cost.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def _drop_autapses(pre, post):
    keep = pre != post
    return pre[keep], post[keep]


def fixed_probability(pre_idx, post_idx, p, rng, allow_autapses=False):
    """Every ordered pair independently with probability ``p`` (Erdős–Rényi)."""
    n_pre, n_post = len(pre_idx), len(post_idx)
    total = n_pre * n_post
    k = rng.binomial(total, p)
    # k distinct pair indices out of n_pre·n_post, without forming the matrix.
    flat = rng.choice(total, size=k, replace=False) if k else np.empty(0, np.int64)
    flat.sort()
    pre, post = pre_idx[flat // n_post], post_idx[flat % n_post]
    return (pre, post) if allow_autapses else _drop_autapses(pre, post)


def fixed_indegree(pre_idx, post_idx, k, rng, allow_autapses=False):
    """Each postsynaptic neuron gets exactly ``k`` distinct presynaptic partners."""
    n_pre = len(pre_idx)
    pres, posts = [], []
    for j in post_idx:
        pool = pre_idx if allow_autapses else pre_idx[pre_idx != j]
        if k > len(pool):
            raise ValueError(
                f"fixed_indegree k = {k} exceeds the {len(pool)} possible partners of neuron {j}"
            )
        pres.append(pool[rng.choice(len(pool), size=k, replace=False)] if n_pre else pool[:0])
        posts.append(np.full(k, j, dtype=np.int64))
    if not pres:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(pres).astype(np.int64), np.concatenate(posts)


def all_to_all(pre_idx, post_idx, allow_autapses=False):
    pre = np.repeat(pre_idx, len(post_idx))
    post = np.tile(post_idx, len(pre_idx))
    return (pre, post) if allow_autapses else _drop_autapses(pre, post)


def gaussian(
    pre_idx, post_idx, positions_um, p0, sigma_um, sheet_um, periodic, rng, allow_autapses=False
):
    """Pairs with probability p0·exp(−d²/2σ²); pairs farther than 5σ (p < 4·10⁻⁶ p0) are skipped."""
    box = np.asarray(sheet_um, dtype=float) if periodic else None
    xy_pre = positions_um[pre_idx] % box if periodic else positions_um[pre_idx]
    xy_post = positions_um[post_idx] % box if periodic else positions_um[post_idx]
    t_pre, t_post = cKDTree(xy_pre, boxsize=box), cKDTree(xy_post, boxsize=box)
    pairs = t_pre.sparse_distance_matrix(t_post, 5 * sigma_um, output_type="ndarray")
    prob = p0 * np.exp(-(pairs["v"] ** 2) / (2 * sigma_um**2))
    keep = rng.random(prob.size) < prob
    pre, post = pre_idx[pairs["i"][keep]], post_idx[pairs["j"][keep]]
    order = np.lexsort((post, pre))
    pre, post = pre[order], post[order]
    return (pre, post) if allow_autapses else _drop_autapses(pre, post)
