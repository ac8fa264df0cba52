"""advance is pure, deterministic and exactly restartable (DESIGN.md, "Model")."""

import numpy as np
import pytest

from model import MemberState, SpecError, advance, build_network, default_params, initial_state

LIF = {"model": "lif", "c_pf": 200.0, "g_l_ns": 10.0, "e_l_mv": -60.0, "v_th_mv": -50.0,
       "v_reset_mv": -60.0, "t_ref_ms": 2.0}  # fmt: skip


def small_spec(kind="coba", **over):
    """300 neurons with every kind of drive and delays of 0.1–3 ms, so that spikes are in
    flight at any split point."""
    weight = {"coba": (2.0, 20.0), "cuba": (30.0, 120.0)}[kind]
    spec = {
        "dt_ms": 0.1,
        "synapses": {"kind": kind},
        "populations": [
            {"name": "E", "n": 240, "type": "E", "neuron": LIF,
             "drive": {"bias_pa": 150.0, "poisson": {"rate_hz": 20.0, "weight": 1.0 if kind == "coba" else 20.0, "n_sources": 50},
                       "ou": {"mean_pa": 20.0, "sd_pa": 30.0, "tau_ms": 5.0}}},
            {"name": "I", "n": 60, "type": "I", "neuron": LIF, "drive": {"bias_pa": 180.0}},
        ],
        "projections": [
            {"pre": "E", "post": ["E", "I"], "rule": {"kind": "fixed_probability", "p": 0.1},
             "weight": weight[0], "delay_ms": {"low": 0.1, "high": 3.0}},
            {"pre": "I", "post": ["E", "I"], "rule": {"kind": "fixed_indegree", "k": 10},
             "weight": weight[1], "delay_ms": 0.5},
        ],
    }  # fmt: skip
    spec.update(over)
    return spec


def izhikevich_spec():
    return {
        "dt_ms": 0.5,
        "synapses": {"kind": "instantaneous"},
        "populations": [
            {"name": "E", "n": 80, "type": "E", "neuron": {"model": "izhikevich", "preset": "RS"},
             "drive": {"ou": {"sd_pa": 5.0, "tau_ms": 1e-3}}},
            {"name": "I", "n": 20, "type": "I", "neuron": {"model": "izhikevich", "preset": "FS"},
             "drive": {"ou": {"sd_pa": 2.0, "tau_ms": 1e-3}}},
        ],
        "projections": [
            {"pre": "E", "post": ["E", "I"], "rule": {"kind": "all_to_all"}, "weight": {"low": 0, "high": 0.5}, "delay_ms": 1.0},
            {"pre": "I", "post": ["E", "I"], "rule": {"kind": "all_to_all"}, "weight": {"low": 0, "high": 1.0}, "delay_ms": 1.0},
        ],
    }  # fmt: skip


def assert_states_equal(a: MemberState, b: MemberState):
    assert a.step == b.step
    for name in MemberState.ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.fixture(scope="module", params=["coba", "cuba", "izhikevich"])
def net(request):
    spec = izhikevich_spec() if request.param == "izhikevich" else small_spec(request.param)
    return build_network(spec, 11)


def test_split_run_is_bit_identical(net):
    state = initial_state(net, 2, 5)
    params = default_params(net, 2)
    whole, rec = advance(net, params, state, 0.0, 0.4, 99)
    half, rec1 = advance(net, params, state, 0.0, 0.2, 99)
    assert half.buf_e.any() or half.buf_i.any(), "spikes must be in flight at the split"
    end, rec2 = advance(net, params, half, 0.2, 0.4, 99)
    assert_states_equal(whole, end)
    for m in range(2):
        t, n = rec.member(m)
        t1, n1 = rec1.member(m)
        t2, n2 = rec2.member(m)
        assert t.size > 20
        np.testing.assert_array_equal(n, np.concatenate([n1, n2]))
        np.testing.assert_allclose(t, np.concatenate([t1, t2]), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(
        rec.rates_hz, np.concatenate([rec1.rates_hz, rec2.rates_hz], axis=1)
    )


def test_batch_equals_members_one_by_one(net):
    state = initial_state(net, 3, 8)
    params = default_params(net, 3)
    params.weight_scale[1] *= 1.3  # members differ in parameters too
    params.poisson_rate_hz[2] *= 0.5
    batch, rec = advance(net, params, state, 0.0, 0.2, 4)
    for m in range(3):
        alone, rec_m = advance(net, params.select(m), state.select(m), 0.0, 0.2, 4)
        assert_states_equal(alone, batch.select(m))
        np.testing.assert_array_equal(rec_m.member(0)[1], rec.member(m)[1])


def test_same_seed_same_spikes_other_seed_other_spikes(net):
    state = initial_state(net, 1, 1)
    params = default_params(net, 1)
    a = advance(net, params, state, 0.0, 0.2, 21)[1]
    b = advance(net, params, state, 0.0, 0.2, 21)[1]
    c = advance(net, params, state, 0.0, 0.2, 22)[1]
    np.testing.assert_array_equal(a.neurons, b.neurons)
    assert not (a.neurons.size == c.neurons.size and np.array_equal(a.neurons, c.neurons))


def test_advance_does_not_modify_its_input(net):
    state = initial_state(net, 1, 1)
    before = state.copy()
    advance(net, default_params(net, 1), state, 0.0, 0.05, 3)
    assert_states_equal(state, before)


def test_network_is_reproducible_and_read_only():
    a = build_network(small_spec(), 3)
    b = build_network(small_spec(), 3)
    c = build_network(small_spec(), 4)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    np.testing.assert_array_equal(a.syn_post, b.syn_post)
    with pytest.raises(ValueError):
        a.syn_weight[0] = 1.0
    assert a.synapse_bytes / a.n_synapses < 10.5  # int32 + float32 + uint16, plus row pointers


def test_state_from_another_network_is_refused():
    a = build_network(small_spec(), 3)
    b = build_network(small_spec(), 4)
    with pytest.raises(ValueError, match="state belongs to another network"):
        advance(b, default_params(b, 1), initial_state(a, 1, 0), 0.0, 0.01, 0)


def test_time_must_match_the_state():
    net = build_network(small_spec(), 3)
    state = initial_state(net, 1, 0)
    with pytest.raises(ValueError, match="t0_s = 0.5 but the state is at 0.0 s"):
        advance(net, default_params(net, 1), state, 0.5, 0.6, 0)
    with pytest.raises(ValueError, match="not a non-negative multiple of dt"):
        advance(net, default_params(net, 1), state, 0.0, 0.00015, 0)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda s: s["projections"][0].update(post=["E", "X"]),
            "projections[0].post: unknown population 'X' (have E, I)",
        ),
        (
            lambda s: s["projections"][0]["rule"].update(p=1.5),
            "projections[0].rule.p: Input should be less than or equal to 1",
        ),
        (lambda s: s["projections"][1].update(delay_ms=-1.0), "delay must be ≥ 0 ms, got -1.0"),
        (
            lambda s: s["synapses"].update(tau_e_ms=-5.0),
            "synapses.tau_e_ms: Input should be greater than 0",
        ),
        (
            lambda s: s["populations"][0]["neuron"].update(c_pf=0.0),
            "populations[0].neuron.c_pf: Input should be greater than 0",
        ),
        (lambda s: s["populations"][0].update(nn=3), "populations[0].nn: unknown key"),
        (
            lambda s: s["populations"][1].update(name="E"),
            "population names must be unique; repeated: E",
        ),
        (
            lambda s: s["projections"][0].update(weight=-2.0),
            "weights are magnitudes and must be > 0",
        ),
        (
            lambda s: s["populations"][1].update(neuron={**LIF, "v_reset_mv": -45.0}),
            "populations[1].neuron: v_reset_mv (-45.0) must be below v_th_mv (-50.0)",
        ),
    ],
)
def test_bad_spec_names_the_field(edit, message):
    import copy

    spec = copy.deepcopy(small_spec())
    edit(spec)
    with pytest.raises(SpecError) as err:
        build_network(spec, 0)
    assert message in str(err.value)
