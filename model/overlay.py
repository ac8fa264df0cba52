"""Member synapses and hidden sources: structure that a run adds to a built network.

The connectivity constraints of an assimilation (GLMCC connections, triplet-map motifs)
change the network among the recorded neurons only. :func:`with_member_synapses` returns a
copy of the shared :class:`~model.network.Network` in which

- the spec's synapses among a given set of neurons, or of given pairs, are removed (the
  estimated connections replace them); optionally, spec synapses from other neurons make
  room for the added ones, so that every neuron keeps the in-degree its population rule
  drew,
- member synapses are added: their structure (pre, post, delay, sign) is shared, their
  weights are per member (``MemberParams.synapse_weight``), so that an ensemble can carry
  the estimator's uncertainty;
- hidden excitatory sources are added: each is one Poisson spike train delivered to all its
  targets at once (common input), with a rate and a weight per member
  (``MemberParams.source_rate_hz``, ``MemberParams.source_weight``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from model.network import Network, _arrays, _delay_steps, _fingerprint, csr_ptr, csr_rows


def with_member_synapses(
    network: Network,
    replace_among=(),
    pre=(),
    post=(),
    delay_ms=(),
    excitatory=(),
    source_targets=(),
    replace_pairs=(),
    conserve_in_degree=False,
    observed=(),
    seed=0,
) -> Network:
    """A copy of ``network`` with member synapses and hidden sources.

    Parameters
    ----------
    network : Network
        Built from a spec (it must not already hold member synapses or sources).
    replace_among : (n_r,) int
        Neurons among which the spec's synapses are removed (both ends in the set).
    replace_pairs : (k_r, 2) int
        (pre, post) pairs whose spec synapses are removed (the direction given only).
    pre, post : (k,) int
        Member synapses, global neuron indices; no autapses, no duplicates.
    delay_ms : (k,) float
        Their delays (ms), rounded to steps as the spec's delays are.
    excitatory : (k,) bool
        Their signs (a member synapse carries its own sign, see ``Network``).
    source_targets : sequence of int arrays
        The targets of each hidden source (global neuron indices, ≥ 1 each).
    conserve_in_degree : bool
        False: member synapses come on top of the spec's. True: every neuron keeps, per
        sign, the in-degree the spec drew for it. Where its member synapses outnumber the
        spec synapses removed from it, as many spec synapses of that sign from neurons not
        in ``observed`` are removed too (all of them, where too few exist); where the
        removed ones outnumber the member synapses, the surplus removed synapses (weight
        and delay kept) are moved to presynaptic neurons of their own population that are
        not in ``observed``. Both choices are random (``seed``). The estimate says which of
        a neuron's inputs come from observed neurons; the population rule still says how
        many inputs it has.
    observed : (n_o,) int
        The neurons the member synapses speak for (their spec synapses never make room).
    seed : int
        Seed of the choice of the synapses that make room (the same network on every
        worker).

    Returns
    -------
    Network
        With its own fingerprint; the original is unchanged.
    """
    if network.n_member_synapses or network.n_sources:
        raise ValueError("the network already holds member synapses or hidden sources")
    n = network.n
    pre = np.asarray(pre, dtype=np.int64).ravel()
    post = np.asarray(post, dtype=np.int64).ravel()
    excitatory = np.asarray(excitatory, dtype=bool).ravel()
    delay_ms = np.broadcast_to(np.asarray(delay_ms, dtype=np.float64), pre.shape)
    if not (pre.shape == post.shape == excitatory.shape):
        raise ValueError(
            f"pre, post and excitatory must have the same length, got {pre.size}, {post.size}, "
            f"{excitatory.size}"
        )
    for name, arr in (("pre", pre), ("post", post)):
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            k = int(np.flatnonzero((arr < 0) | (arr >= n))[0])
            raise ValueError(f"member synapse {k}: {name} neuron {arr[k]} is not in the network (n = {n})")
    if np.any(pre == post):
        k = int(np.flatnonzero(pre == post)[0])
        raise ValueError(f"member synapse {k}: autapse on neuron {pre[k]}")
    if np.unique(pre * n + post).size != pre.size:
        raise ValueError("member synapses: a (pre, post) pair appears twice")

    # Remove the spec's synapses with both ends among the replaced neurons, and those of the
    # replaced pairs.
    among = np.zeros(n, bool)
    among[np.asarray(replace_among, dtype=np.int64)] = True
    syn_pre = csr_rows(network.syn_ptr)
    keep = ~(among[syn_pre] & among[network.syn_post])
    pairs = np.asarray(replace_pairs, dtype=np.int64).reshape(-1, 2)
    if pairs.size:
        keep &= ~np.isin(syn_pre * n + network.syn_post, pairs[:, 0] * n + pairs[:, 1])
    moved = new_pre = np.empty(0, np.int64)
    if conserve_in_degree:
        drop, moved, new_pre = _conserve_in_degree(network, syn_pre, keep, post, excitatory, observed, seed)
        keep &= ~drop
    idx = np.flatnonzero(keep)
    syn_pre = syn_pre[idx]
    if moved.size:
        # the moved synapses at their new presynaptic neurons, in CSR order with the kept ones
        syn_pre = np.concatenate([syn_pre, new_pre])
        order_pre = np.argsort(syn_pre, kind="stable")
        syn_pre, idx = syn_pre[order_pre], np.concatenate([idx, moved])[order_pre]
    syn_ptr = csr_ptr(syn_pre, n)

    order = np.lexsort((post, pre))
    msyn_ptr = csr_ptr(pre, n)
    steps = _delay_steps(delay_ms[order], network.spec.dt_ms, "member synapses")

    targets = [np.asarray(t, dtype=np.int64).ravel() for t in source_targets]
    for s, t in enumerate(targets):
        if t.size == 0 or t.min() < 0 or t.max() >= n or np.unique(t).size != t.size:
            raise ValueError(f"hidden source {s}: targets {t.tolist()} must be distinct neurons of the network")
    src_ptr = np.concatenate([[0], np.cumsum([t.size for t in targets])]).astype(np.int64)
    src_post = (np.concatenate(targets) if targets else np.empty(0)).astype(np.int32)

    net = dataclasses.replace(
        network,
        syn_ptr=syn_ptr,
        syn_post=np.ascontiguousarray(network.syn_post[idx]),
        syn_weight=np.ascontiguousarray(network.syn_weight[idx]),
        syn_delay=np.ascontiguousarray(network.syn_delay[idx]),
        msyn_ptr=msyn_ptr,
        msyn_post=post[order].astype(np.int32),
        msyn_delay=steps,
        msyn_excitatory=excitatory[order],
        src_ptr=src_ptr,
        src_post=src_post,
        fingerprint="",
    )
    object.__setattr__(net, "fingerprint", _fingerprint(net))
    for a in _arrays(net):
        a.flags.writeable = False
    return net


def _conserve_in_degree(network: Network, syn_pre, keep, post, excitatory, observed, seed):
    """The spec synapses that make room for the member synapses and those that move (see
    ``conserve_in_degree``). ``keep`` marks the spec synapses not already removed.

    Returns (drop, moved, new_pre): (n_syn,) bool, spec synapses to remove as well; (k,)
    int, removed spec synapses to put back; (k,) int, their new presynaptic neurons.
    """
    n = network.n
    # only the synapses onto neurons that gain or lose inputs matter (a few per observed
    # neuron, out of all of a large network's)
    touched = np.zeros(n, bool)
    touched[post] = True
    touched[network.syn_post[~keep]] = True
    sub = np.flatnonzero(touched[network.syn_post])  # sorted; holds every removed synapse
    key = network.syn_post[sub].astype(np.int64) * 2 + network.excitatory[syn_pre[sub]]
    kept = keep[sub]
    # per (post, sign): member synapses added minus spec synapses already removed
    excess = np.bincount(post * 2 + excitatory, minlength=2 * n) - np.bincount(key[~kept], minlength=2 * n)
    is_observed = np.zeros(n, bool)
    is_observed[np.asarray(observed, dtype=np.int64)] = True
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(23,)))

    def first_of_each_group(cand, quota):
        # positions in `sub`, in a random order, then grouped by (post, sign): the first
        # `quota` of each group (as synapse indices)
        cand = rng.permutation(cand)
        cand = cand[np.argsort(key[cand], kind="stable")]
        k = key[cand]
        return sub[cand[np.arange(k.size) - np.searchsorted(k, k, "left") < quota[k]]]

    drop = np.zeros(keep.size, bool)
    room = kept & ~is_observed[syn_pre[sub]] & (excess[key] > 0)
    drop[first_of_each_group(np.flatnonzero(room), excess)] = True
    moved = first_of_each_group(np.flatnonzero(~kept & (excess[key] < 0)), -excess)
    # each moved synapse gets a presynaptic neuron of its old one's population, not observed,
    # not yet presynaptic to its neuron
    pop = np.searchsorted(network.pop_ptr, syn_pre[moved], "right") - 1
    posts = network.syn_post[moved].astype(np.int64)
    onto = sub[np.isin(network.syn_post[sub], posts) & keep[sub] & ~drop[sub]]
    taken = set((syn_pre[onto] * n + network.syn_post[onto]).tolist())
    new_pre = np.full(moved.size, -1, np.int64)
    for i, (j, k) in enumerate(zip(posts.tolist(), pop.tolist(), strict=True)):
        lo, hi = int(network.pop_ptr[k]), int(network.pop_ptr[k + 1])

        def ok(c, j=j):
            return not is_observed[c] and c != j and c * n + j not in taken

        # draws first (populations are usually much larger than an in-degree), then a scan
        c = next((c for c in rng.integers(lo, hi, size=32).tolist() if ok(c)), None)
        if c is None:
            free = [c for c in range(lo, hi) if ok(c)]
            c = free[int(rng.integers(len(free)))] if free else None
        if c is not None:
            new_pre[i] = c
            taken.add(c * n + j)
    ok = new_pre >= 0
    return drop, moved[ok], new_pre[ok]


def member_synapse_order(network: Network, pre, post) -> np.ndarray:
    """Positions of the member synapses (pre[i], post[i]) in ``network``'s CSR order, so
    that per-synapse values given in the caller's order can be laid out for the kernel."""
    pre = np.asarray(pre, dtype=np.int64)
    post = np.asarray(post, dtype=np.int64)
    net_pre = csr_rows(network.msyn_ptr)
    key_net = net_pre * network.n + network.msyn_post
    key = pre * network.n + post
    pos = np.searchsorted(key_net, key)
    if np.any(pos >= key_net.size) or np.any(key_net[np.minimum(pos, key_net.size - 1)] != key):
        raise ValueError("some (pre, post) pairs are not member synapses of the network")
    return pos
