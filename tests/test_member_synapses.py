"""Member synapses, hidden sources and the PSP conversion of the model neuron."""

import dataclasses

import numpy as np
import pytest

from model import advance, build_network, default_params, initial_state
from model.overlay import member_synapse_order, with_member_synapses
from model.psp import psp_mv, reference_potential_mv, weight_for_psp

LIF = {"model": "lif", "c_pf": 200.0, "g_l_ns": 10.0, "e_l_mv": -60.0, "v_th_mv": 20.0,
       "v_reset_mv": -70.0, "t_ref_ms": 2.0}  # fmt: skip


def _spec(kind="coba", n_e=3, n_i=1, threshold=20.0, bias=50.0, explicit=None, dt=0.01, t_ref=2.0):
    neuron = dict(LIF, v_th_mv=threshold, t_ref_ms=t_ref)
    spec = {
        "name": "small",
        "dt_ms": dt,
        "synapses": {"kind": kind, "tau_e_ms": 5.0, "tau_i_ms": 10.0, "e_e_mv": 0.0, "e_i_mv": -80.0},
        "populations": [
            {"name": "E", "n": n_e, "type": "E", "neuron": neuron, "drive": {"bias_pa": {"mean": bias}}},
            {"name": "I", "n": n_i, "type": "I", "neuron": neuron, "drive": {"bias_pa": {"mean": bias}}},
        ],
        "projections": [],
    }
    if explicit is not None:
        spec["explicit"] = explicit
    return spec


def _kick(net, pre, v_post_mv, seconds=0.1, params=None):
    """Membrane trace of every neuron after neuron ``pre`` spikes at t = 0 (state set by
    hand: ``pre`` above threshold, the others at ``v_post_mv``); returns V (steps, n)."""
    state = initial_state(net, 1, 0)
    v = np.full((1, net.n), v_post_mv)
    v[0, pre] = 30.0
    state = dataclasses.replace(state, v_mv=v)
    params = params if params is not None else default_params(net, 1)
    trace = []
    dt = net.dt_s
    for k in range(int(round(seconds / dt))):
        state, _ = advance(net, params, state, k * dt, (k + 1) * dt, 0)
        trace.append(state.v_mv[0].copy())
    return np.array(trace)


@pytest.mark.parametrize("excitatory", [True, False])
def test_psp_matches_the_simulator(excitatory):
    # The PSP the conversion predicts is what the network simulator produces: a member
    # synapse of the computed jump, onto a neuron held at V_ref, peaks at the asked size.
    net0 = build_network(_spec(), 0)
    pre = 0 if excitatory else 3
    target = 1.5 if excitatory else -1.0
    w, exc = weight_for_psp(net0, [1], [target])
    assert bool(exc[0]) == excitatory
    net = with_member_synapses(net0, pre=[pre], post=[1], delay_ms=[1.0], excitatory=exc)
    params = dataclasses.replace(default_params(net, 1), synapse_weight=w[None, :])
    v_ref = reference_potential_mv(net, [1])[0]
    assert v_ref == pytest.approx(-55.0)  # E_L + I_bias / g_L, below threshold
    dv = _kick(net, pre, v_ref, params=params)[:, 1] - v_ref
    peak = dv.max() if excitatory else dv.min()
    # dt = 0.01 ms: the simulator's exponential Euler is within 0.3 % of the ODE's peak
    assert peak == pytest.approx(target, rel=3e-3)


def test_psp_round_trip_and_linear_limit():
    net = build_network(_spec(), 0)
    post = np.array([0, 1, 2, 2])
    psp = np.array([0.3, 2.0, -0.7, 5.0])
    w, exc = weight_for_psp(net, post, psp)
    np.testing.assert_array_equal(exc, psp > 0)
    np.testing.assert_allclose(psp_mv(net, post, w, exc), psp, rtol=1e-5)
    # For a tiny conductance the driving force is constant: the coba response equals the
    # closed-form current response of a current w·(E_syn − V_ref).
    cuba = build_network(_spec("cuba"), 0)
    v_ref = reference_potential_mv(net, [0])[0]
    small = 1e-4
    for exc_flag, e_syn in ((True, 0.0), (False, -80.0)):
        coba_psp = psp_mv(net, [0], [small], [exc_flag])[0]
        cuba_psp = psp_mv(cuba, [0], [small * abs(e_syn - v_ref)], [exc_flag])[0]
        assert coba_psp == pytest.approx(cuba_psp, rel=2e-3)
    # and the driving force makes large coba PSPs sublinear
    assert psp_mv(net, [0], [20 * w[1]], [True])[0] < 20 * 2.0


def test_psp_bad_requests():
    net = build_network(_spec(), 0)
    with pytest.raises(ValueError, match="beyond"):
        weight_for_psp(net, [0], [40.0])
    with pytest.raises(ValueError, match="finite"):
        weight_for_psp(net, [0], [np.nan])


def test_member_synapse_equals_the_same_spec_synapse():
    # A member synapse with weight w gives the same spikes, bit for bit, as a spec synapse
    # of weight w; its sign is its own.
    explicit = {"pre": [0, 3], "post": [1, 2], "weight": [8.0, -6.0], "delay_ms": [1.0, 2.0]}
    base = _spec(threshold=-50.0, bias=200.0, n_e=3, n_i=1, dt=0.1)
    with_spec = build_network(dict(base, explicit=explicit), 0)
    plain = build_network(base, 0)
    net = with_member_synapses(plain, pre=[3, 0], post=[2, 1], delay_ms=[2.0, 1.0],
                               excitatory=[False, True])  # fmt: skip
    order = member_synapse_order(net, [3, 0], [2, 1])
    w = np.empty((2, 2))
    w[:, order] = [6.0, 8.0]
    params = dataclasses.replace(default_params(net, 2), synapse_weight=w)
    s1 = initial_state(with_spec, 2, 3)
    s2 = dataclasses.replace(initial_state(net, 2, 3), fingerprint=net.fingerprint)
    a, ra = advance(with_spec, default_params(with_spec, 2), s1, 0.0, 2.0, 5)
    b, rb = advance(net, params, s2, 0.0, 2.0, 5)
    assert ra.times_s.size > 100
    np.testing.assert_array_equal(ra.times_s, rb.times_s)
    np.testing.assert_array_equal(ra.neurons, rb.neurons)
    np.testing.assert_array_equal(a.v_mv, b.v_mv)


def test_replace_among_removes_spec_synapses_between_those_neurons_only():
    spec = _spec(n_e=6, n_i=2)
    spec["projections"] = [{"pre": "E", "post": ["E", "I"], "rule": {"kind": "all_to_all"},
                            "weight": 1.0, "delay_ms": 1.0}]  # fmt: skip
    net0 = build_network(spec, 0)
    net = with_member_synapses(net0, replace_among=[0, 1, 2])
    W0, W = net0.weight_matrix(), net.weight_matrix()
    among = np.zeros(net.n, bool)
    among[[0, 1, 2]] = True
    both = among[:, None] & among[None, :]
    assert (W[both] == 0).all() and (W0[both] != 0).sum() == 6
    np.testing.assert_array_equal(W[~both], W0[~both])
    assert net.fingerprint != net0.fingerprint
    # a state of the original network cannot be advanced with the changed one
    with pytest.raises(ValueError, match="another network"):
        advance(net, default_params(net, 1), initial_state(net0, 1, 0), 0.0, 0.01, 0)


def test_replace_pairs_removes_the_spec_synapses_of_those_pairs_only():
    spec = _spec(n_e=6, n_i=2)
    spec["projections"] = [{"pre": "E", "post": ["E", "I"], "rule": {"kind": "all_to_all"},
                            "weight": 1.0, "delay_ms": 1.0}]  # fmt: skip
    net0 = build_network(spec, 0)
    net = with_member_synapses(net0, replace_pairs=[(0, 1), (2, 0), (6, 7)])  # 6 → 7: none
    W0, W = net0.weight_matrix(), net.weight_matrix()
    gone = np.zeros_like(W0, dtype=bool)
    gone[[0, 2], [1, 0]] = True
    assert (W[gone] == 0).all() and (W0[gone] != 0).all()
    np.testing.assert_array_equal(W[~gone], W0[~gone])  # the reverse directions stay


def _in_degrees(net) -> np.ndarray:
    """(n, 2) spec + member in-degree of every neuron, [inhibitory, excitatory]."""
    from model.network import csr_rows

    deg = np.zeros((net.n, 2), np.int64)
    pre = csr_rows(net.syn_ptr)
    np.add.at(deg, (net.syn_post, net.excitatory[pre].astype(int)), 1)
    np.add.at(deg, (net.msyn_post, net.msyn_excitatory.astype(int)), 1)
    return deg


def test_conserve_in_degree_makes_room_with_unobserved_inputs_of_the_same_sign():
    from model.network import csr_rows

    spec = _spec(n_e=40, n_i=10)
    spec["projections"] = [
        {"pre": "E", "post": ["E", "I"], "rule": {"kind": "fixed_indegree", "k": 8}, "weight": 1.0, "delay_ms": 1.0},
        {"pre": "I", "post": ["E", "I"], "rule": {"kind": "fixed_indegree", "k": 3}, "weight": 2.0, "delay_ms": 1.0},
    ]  # fmt: skip
    net0 = build_network(spec, 0)
    observed = np.r_[0:10, 40:43]
    pre0, post0 = csr_rows(net0.syn_ptr), net0.syn_post
    spec_pairs = set(zip(pre0.tolist(), post0.tolist(), strict=True))
    # member synapses among the observed: one pair that is a spec synapse, the others not;
    # neuron 3 gets 11 E inputs, more than the spec's 8 (7 of them from unobserved neurons)
    shared = next((a, b) for a, b in spec_pairs if a in observed[:10] and b in observed and a != b)
    links = {shared} | {(a, 3) for a in range(10) if a != 3} | {(40, 3), (41, 5), (42, 40), (7, 41)}
    pre, post = map(np.array, zip(*sorted(links), strict=True))
    exc = net0.excitatory[pre]
    kw = dict(pre=pre, post=post, delay_ms=1.0, excitatory=exc, replace_pairs=np.column_stack([pre, post]))
    add = with_member_synapses(net0, **kw)
    net = with_member_synapses(net0, **kw, conserve_in_degree=True, observed=observed, seed=4)
    d0, d_add, d = _in_degrees(net0), _in_degrees(add), _in_degrees(net)
    room = np.zeros_like(d0)  # inputs from unobserved neurons each neuron could give up
    unobs = ~np.isin(pre0, observed)
    np.add.at(room, (post0[unobs], net0.excitatory[pre0[unobs]].astype(int)), 1)
    excess = d_add - d0
    # neuron 3: 9 member E inputs, of which those replacing a spec synapse add nothing
    assert excess[3, 1] == 9 - sum((a, 3) in spec_pairs for a in range(10))
    np.testing.assert_array_equal(d, np.where(excess > room, d_add - room, d0))
    assert d[3, 1] == d_add[3, 1] - room[3, 1]  # more than the room: all of it goes
    # the spec synapses from observed neurons are untouched (but for the replaced pairs)
    pre1 = csr_rows(net.syn_ptr)
    kept_obs = set(zip(pre1[np.isin(pre1, observed)].tolist(), net.syn_post[np.isin(pre1, observed)].tolist(), strict=True))
    pre_a = csr_rows(add.syn_ptr)
    assert kept_obs == set(zip(pre_a[np.isin(pre_a, observed)].tolist(), add.syn_post[np.isin(pre_a, observed)].tolist(), strict=True))
    # neurons without member synapses keep every input
    untouched = ~np.isin(np.arange(net.n), post)
    W0, W = net0.weight_matrix(), net.weight_matrix()
    np.testing.assert_array_equal(W[:, untouched], W0[:, untouched])
    # the choice is the seed's: the same on every worker, another with another seed
    again = with_member_synapses(net0, **kw, conserve_in_degree=True, observed=observed, seed=4)
    other = with_member_synapses(net0, **kw, conserve_in_degree=True, observed=observed, seed=5)
    assert again.fingerprint == net.fingerprint != other.fingerprint
    # replace_among: the removed spec synapses count as room already made
    among = with_member_synapses(net0, replace_among=observed, pre=pre, post=post, delay_ms=1.0,
                                 excitatory=exc, conserve_in_degree=True, observed=observed)  # fmt: skip
    d_among = _in_degrees(with_member_synapses(net0, replace_among=observed, pre=pre, post=post,
                                               delay_ms=1.0, excitatory=exc))  # fmt: skip
    np.testing.assert_array_equal(_in_degrees(among), np.where(d_among > d0, np.maximum(d0, d_among - room), d0))
    # there, where the estimate has fewer links than the spec had synapses among the
    # observed, the surplus synapses move (weight and delay kept) to unobserved neurons of
    # their own population
    assert (d_among < d0).any()
    pre_m, pre_b = csr_rows(among.syn_ptr), csr_rows(net0.syn_ptr)
    old_syn = set(zip(pre_b.tolist(), net0.syn_post.tolist(), net0.syn_weight.tolist(), net0.syn_delay.tolist(), strict=True))
    new_syn = [t for t in zip(pre_m.tolist(), among.syn_post.tolist(), among.syn_weight.tolist(),
                              among.syn_delay.tolist(), strict=True) if t not in old_syn]  # fmt: skip
    assert len(new_syn) == int(np.clip(d0 - d_among, 0, None).sum())
    for p, q, w, _dl in new_syn:
        assert p not in observed and p != q and net0.excitatory[p] == (w == 1.0)  # E weights 1, I 2
        assert sum(1 for a, b in zip(pre_m, among.syn_post, strict=True) if a == p and b == q) == 1  # no multapse


def test_hidden_source_is_common_poisson_input():
    # A source whose jump (30 nS) takes its targets over threshold in ~1.3 ms makes each of
    # them spike once per event (the 20-ms refractory period outlasts the conductance): the
    # targets spike at the same steps, at the source's rate.
    net0 = build_network(_spec(threshold=-50.0, bias=0.0, dt=0.1, t_ref=20.0), 0)
    net = with_member_synapses(net0, source_targets=[[0, 2], [1]])
    M, rate, T = 3, 2.0, 200.0
    params = dataclasses.replace(
        default_params(net, M),
        source_rate_hz=np.tile([rate, 0.0], (M, 1)),
        source_weight=np.full((M, 2), 30.0),
    )
    state = initial_state(net, M, 0)
    state = dataclasses.replace(state, v_mv=np.full_like(state.v_mv, -60.0))  # all at rest
    _, rec = advance(net, params, state, 0.0, T, 11)
    counts = []
    for m in range(M):
        t, j = rec.member(m)
        t0, t2 = t[j == 0], t[j == 2]
        np.testing.assert_array_equal(t0, t2)  # common input
        assert (j == 1).sum() == 0  # a silent source
        counts.append(t0.size)
    lam = rate * T
    expected = lam / (1 + rate * 21.3e-3)  # dead time: latency + refractory period
    for c in counts:
        assert abs(c - expected) < 4.5 * np.sqrt(lam)
    assert len(set(counts)) > 1  # members draw their own sources


def test_member_params_shapes_are_checked():
    net = with_member_synapses(build_network(_spec(), 0), pre=[0], post=[1], delay_ms=[1.0],
                               excitatory=[True], source_targets=[[1, 2]])  # fmt: skip
    bad = dataclasses.replace(default_params(net, 1), synapse_weight=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="synapse_weight"):
        advance(net, bad, initial_state(net, 1, 0), 0.0, 0.01, 0)
    neg = dataclasses.replace(default_params(net, 1), source_weight=-np.ones((1, 1)))
    with pytest.raises(ValueError, match="source_weight"):
        advance(net, neg, initial_state(net, 1, 0), 0.0, 0.01, 0)
    with pytest.raises(ValueError, match="autapse"):
        with_member_synapses(build_network(_spec(), 0), pre=[1], post=[1], delay_ms=[1.0],
                             excitatory=[True])  # fmt: skip
