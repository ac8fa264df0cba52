"""Connectivity rules and drives against their defining statistics."""

import numpy as np
import pytest

from model import SpecError, advance, build_network, default_params, initial_state

LIF = {"model": "lif"}


def net_with(
    projections=None, table=None, explicit=None, n=(400, 100), drive=None, sheet=(1000.0, 1000.0)
):
    spec = {
        "synapses": {"kind": "coba"},
        "sheet_um": list(sheet),
        "populations": [
            {"name": "E", "n": n[0], "type": "E", "neuron": LIF, "drive": drive or {}},
            {"name": "I", "n": n[1], "type": "I", "neuron": LIF},
        ],
        "projections": projections or [],
    }
    if table:
        spec["table"] = table
    if explicit:
        spec["explicit"] = explicit
    return build_network(spec, 7)


def pairs(net):
    pre = np.repeat(np.arange(net.n), np.diff(net.syn_ptr))
    return pre, net.syn_post.astype(np.int64)


def test_fixed_probability_count_is_binomial():
    net = net_with(
        [{"pre": "E", "post": "E", "rule": {"kind": "fixed_probability", "p": 0.05}, "weight": 1.0}]
    )
    n_pairs = 400 * 399  # no autapses
    mean, sd = 0.05 * n_pairs, np.sqrt(n_pairs * 0.05 * 0.95)
    assert abs(net.n_synapses - mean) < 4 * sd
    pre, post = pairs(net)
    assert np.all(pre != post) and np.all(post < 400)
    assert np.unique(pre * net.n + post).size == pre.size  # no duplicates


def test_fixed_indegree_is_exact():
    net = net_with(
        [
            {
                "pre": "E",
                "post": ["E", "I"],
                "rule": {"kind": "fixed_indegree", "k": 25},
                "weight": 1.0,
            }
        ]
    )
    pre, post = pairs(net)
    np.testing.assert_array_equal(np.bincount(post, minlength=net.n), 25)
    assert np.all(pre < 400) and np.all(pre != post)
    assert np.unique(pre * net.n + post).size == pre.size


def test_gaussian_probability_follows_distance():
    """p(d) = p0 exp(−d²/2σ²) on a periodic sheet: observed fraction per distance bin."""
    p0, sigma = 0.6, 60.0
    net = net_with(
        [{"pre": "E", "post": "E", "rule": {"kind": "gaussian", "p0": p0, "sigma_um": sigma}, "weight": 1.0}],
        n=(1500, 10), sheet=(600.0, 600.0),
    )  # fmt: skip
    xy = net.positions_um[:1500]
    d = np.abs(xy[:, None, :] - xy[None, :, :])
    d = np.minimum(d, 600.0 - d)
    dist = np.sqrt((d**2).sum(-1))
    connected = np.zeros((1500, 1500), bool)
    pre, post = pairs(net)
    connected[pre, post] = True
    np.fill_diagonal(dist, np.nan)
    for lo, hi in [(0, 20), (40, 60), (80, 100), (120, 140)]:
        sel = (dist >= lo) & (dist < hi)
        expected = np.mean(p0 * np.exp(-(dist[sel] ** 2) / (2 * sigma**2)))
        got = connected[sel].mean()
        assert abs(got - expected) < 4 * np.sqrt(expected * (1 - expected) / sel.sum()) + 1e-3


def test_block_table_probabilities_and_weights():
    table = {
        "probability": [[0.1, 0.2], [0.3, 0.0]],
        "weight": [[1.0, 2.0], [5.0, 6.0]],
        "delay_ms": [0.5, 1.0],
    }
    net = net_with(table=table)
    pre, post = pairs(net)
    blocks = {("E", "E"): (0.1, 1.0), ("E", "I"): (0.2, 2.0), ("I", "E"): (0.3, 5.0)}
    for (a, b), (p, w) in blocks.items():
        sa, sb = net.population(a), net.population(b)
        sel = (pre >= sa.start) & (pre < sa.stop) & (post >= sb.start) & (post < sb.stop)
        n_pairs = (sa.stop - sa.start) * (sb.stop - sb.start) - (sa == sb) * (sa.stop - sa.start)
        assert abs(sel.sum() / n_pairs - p) < 4 * np.sqrt(p * (1 - p) / n_pairs)
        np.testing.assert_allclose(net.syn_weight[sel], w)
    i_to_i = (pre >= 400) & (post >= 400)
    assert not i_to_i.any()
    np.testing.assert_array_equal(np.unique(net.syn_delay[pre < 400]), [5])  # 0.5 ms
    np.testing.assert_array_equal(np.unique(net.syn_delay[pre >= 400]), [10])


def test_explicit_synapses_are_imposed_and_dale_is_checked():
    ex = {
        "pre": [0, 450, 3],
        "post": [5, 6, 450],
        "weight": [2.0, -7.0, 0.5],
        "delay_ms": [0.3, 1.0, 2.0],
    }
    net = net_with(explicit=ex)
    W = net.weight_matrix()
    assert W[0, 5] == 2.0 and W[450, 6] == -7.0 and W[3, 450] == 0.5
    assert np.count_nonzero(W) == 3
    bad = dict(ex, weight=[2.0, 7.0, 0.5])  # positive weight from an inhibitory neuron
    with pytest.raises(
        SpecError, match=r"explicit.weight\[1\]: 7.0 from inhibitory neuron 450 breaks Dale's law"
    ):
        net_with(explicit=bad)
    with pytest.raises(SpecError, match=r"explicit.post\[0\]: neuron 900 does not exist"):
        net_with(explicit=dict(ex, post=[900, 6, 450]))


def test_weight_scale_equals_scaled_spec():
    """The member's population-pair scale acts like a scaled weight in the spec."""
    proj = [{"pre": "E", "post": ["E", "I"], "rule": {"kind": "fixed_probability", "p": 0.1}, "weight": 2.0},
            {"pre": "I", "post": ["E", "I"], "rule": {"kind": "fixed_probability", "p": 0.1}, "weight": 20.0}]  # fmt: skip
    drive = {"bias_pa": 210.0}
    base = net_with(proj, drive=drive)
    doubled = net_with([dict(proj[0], weight=4.0), proj[1]], drive=drive)
    params = default_params(base, 1)
    params.weight_scale[0, 0, :] = 2.0
    _, a = advance(base, params, initial_state(base, 1, 3), 0.0, 0.3, 1)
    _, b = advance(doubled, default_params(doubled, 1), initial_state(doubled, 1, 3), 0.0, 0.3, 1)
    assert a.neurons.size > 100
    np.testing.assert_array_equal(a.neurons, b.neurons)
    np.testing.assert_array_equal(a.times_s, b.times_s)


def test_poisson_drive_obeys_campbells_theorem():
    """Shot noise of rate λ = n·ν and jump w through τ_e: mean λwτ, variance λw²τ/2."""
    rate, n_src, w, tau = 40.0, 25, 0.5, 5e-3
    net = net_with(
        n=(4000, 1), drive={"poisson": {"rate_hz": rate, "weight": w, "n_sources": n_src}}
    )
    params = default_params(net, 1)
    params.bias_pa[:] = -1e4  # keep every neuron far below threshold
    state, _ = advance(net, params, initial_state(net, 1, 0), 0.0, 0.1, 5)
    g = state.g_e[0, :4000]
    lam = rate * n_src
    assert g.mean() == pytest.approx(lam * w * tau, rel=0.03)
    assert g.var() == pytest.approx(lam * w**2 * tau / 2, rel=0.1)


def test_ou_current_has_its_stationary_statistics():
    net = net_with(n=(4000, 1), drive={"ou": {"mean_pa": 30.0, "sd_pa": 12.0, "tau_ms": 3.0}})
    params = default_params(net, 1)
    params.bias_pa[:] = -1e4
    state, _ = advance(net, params, initial_state(net, 1, 0), 0.0, 0.05, 5)
    i = state.i_ou_pa[0, :4000]
    assert i.mean() == pytest.approx(30.0, abs=4 * 12.0 / np.sqrt(4000))
    assert i.std() == pytest.approx(12.0, rel=0.05)
