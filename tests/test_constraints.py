"""Connectivity constraints: Dale's rule, GLMCC → synapses, motifs → hidden sources, and a
small constrained twin run end to end (with its bad inputs)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
import yaml

from enkf.config import ConfigError
from enkf.constraints import assign_types, explained_pairs, from_glmcc, from_triplets
from enkf.constraints.build import ConstraintSet, _assemble, in_degree_summary
from enkf.constraints.connections import Connections
from enkf.constraints.sources import Sources
from enkf.driver.params import ParameterSet
from enkf.run_config import ConstraintsSection, ParameterSpec
from model import build_network
from model.overlay import with_member_synapses
from model.psp import psp_mv

# -- Dale's rule -------------------------------------------------------------------------------


def test_dale_types_from_signs_and_conflicts():
    units = np.array([10, 11, 12, 13, 14])
    default = np.array(["E", "E", "I", "I", "E"])
    # 10: two E links → E. 11: E (z 3) vs I (z 5) → I, its E link dropped. 12: tie (4 vs 4)
    # → its model neuron's type (I), the E link dropped. 13: no outgoing link → "".
    # 14: one I link → I although its model neuron is E (reported by the caller).
    pre = np.array([10, 10, 11, 11, 12, 12, 14])
    exc = np.array([True, True, True, False, True, False, False])
    z = np.array([4.0, 6.0, 3.0, 5.0, 4.0, 4.0, 7.0])
    types, keep = assign_types(pre, exc, z, units, default)
    assert types.tolist() == ["E", "I", "I", "", "I"]
    assert keep.tolist() == [True, True, False, True, False, True, True]
    with pytest.raises(ValueError, match="evidence"):
        assign_types(pre, exc, -z, units, default)
    # the lab's labels win: 11 labelled E keeps its E link and loses its I link; 12 labelled
    # E (its model neuron is I) keeps the E link; 10 unknown follows the signs
    types, keep = assign_types(pre, exc, z, units, default, ["unknown", "E", "E", "I", ""])
    assert types.tolist() == ["E", "E", "E", "", "I"]
    assert keep.tolist() == [True, True, True, False, True, False, True]


def _glmcc_like(J, se, significant, ids):
    n = len(ids)
    psp = np.where(J > 0, 2.532 * J, 0.612 * J)
    return xr.Dataset(
        {
            "J": (("pre", "post"), J),
            "J_se": (("pre", "post"), se),
            "significant": (("pre", "post"), significant),
            "psp_mv": (("pre", "post"), psp),
            "delay_ms": (("pre", "post"), np.full((n, n), 3.0)),
        },
        coords={"pre": ids, "post": ids},
        attrs={"kind": "connectivity"},
    )


def test_glmcc_result_to_connections():
    ids = np.array([3, 5, 8])
    J = np.array([[0.0, 0.8, -1.0], [0.5, 0.0, 0.1], [-2.0, -0.6, 0.0]])
    se = np.full((3, 3), 0.2)
    sig = np.array([[False, True, True], [True, False, False], [True, True, False]])
    c = from_glmcc(_glmcc_like(J, se, sig, ids), ["E", "E", "I"])
    # unit 3: E (z 4) vs I (z 5) → I; its E link 3→5 dropped
    assert c.dropped == 1
    assert sorted(zip(c.pre.tolist(), c.post.tolist(), strict=True)) == [(3, 8), (5, 3), (8, 3), (8, 5)]
    assert c.types.tolist() == ["I", "E", "I"]
    k = np.flatnonzero((c.pre == 8) & (c.post == 3))[0]
    assert c.psp_mv[k] == pytest.approx(0.612 * -2.0)
    assert c.psp_se_mv[k] == pytest.approx(0.612 * 0.2)  # the same mV-per-J factor
    with pytest.raises(ConfigError, match="J_se"):
        from_glmcc(_glmcc_like(J, se, sig, ids).drop_vars("J_se"), ["E"] * 3)


# -- motifs → sources --------------------------------------------------------------------------


def _triplets_like(rows):
    units = np.array([r[0] for r in rows])
    return xr.Dataset(
        {
            "triplet_units": (("triplet", "member"), units),
            "motif": ("triplet", [r[1] for r in rows]),
            "motif_pair": ("triplet", [r[2] for r in rows]),
            "motif_source_rate_hz": ("triplet", [r[3] for r in rows]),
            "motif_amplitude_mv": (("triplet", "member"), np.array([r[4] for r in rows], float)),
        },
        attrs={"kind": "triplets"},
    )


def test_hidden_sources_from_motif_labels():
    nan = np.nan
    ds = _triplets_like([
        ((1, 2, 3), "E-all", "", 8.0, (4.0, 5.0, 6.0)),
        ((1, 2, 7), "E-pair", "12", 6.0, (3.0, 5.0, nan)),   # inside the E-all source: dropped
        ((4, 5, 6), "E-pair", "13", 10.0, (2.0, nan, 4.0)),  # pair (4, 6)
        ((6, 4, 9), "E-pair", "12", 12.0, (4.0, 6.0, nan)),  # the same pair again: merged
        ((7, 8, 9), "E-pairs", "", 5.0, (1.0, 2.0, 3.0)),    # three pair sources
        ((1, 5, 9), "I-all", "", 9.0, (nan, nan, nan)),      # inhibitory: no source
        ((2, 5, 9), "undetermined", "", 9.0, (nan, nan, nan)),
    ])  # fmt: skip
    src = from_triplets(ds)
    targets = [t.tolist() for t in src.targets]
    assert targets == [[4, 6], [7, 8], [7, 9], [8, 9], [1, 2, 3]]
    assert src.rate_hz.tolist() == [11.0, 5.0, 5.0, 5.0, 8.0]
    assert src.amplitude_mv.tolist() == [4.0, 1.5, 2.0, 2.5, 5.0]
    assert src.n_triplets.tolist() == [2, 1, 1, 1, 1]
    # a pair GLMCC finds directly connected gets no source: its link explains the synchrony
    src = from_triplets(ds, explained=[(9, 7), (3, 8)])
    assert [t.tolist() for t in src.targets] == [[4, 6], [7, 8], [8, 9], [1, 2, 3]]
    # nor does a pair with a recorded excitatory input in common (unit 5 → 4 and 5 → 6);
    # a shared inhibitory input (11 → 7, 11 → 8) explains no excess synchrony
    links = ([9, 5, 5, 11, 11], [7, 4, 6, 7, 8], [True, True, True, False, False])
    explained = explained_pairs(*links)
    assert explained == {(7, 9), (4, 5), (5, 6), (4, 6), (7, 11), (8, 11)}
    src = from_triplets(ds, explained=explained)
    assert [t.tolist() for t in src.targets] == [[7, 8], [8, 9], [1, 2, 3]]
    with pytest.raises(ConfigError, match="motif_amplitude_mv"):
        from_triplets(ds.drop_vars("motif_amplitude_mv"))


# Weakly coupled neurons, each with its own noise (irregular, ~10 Hz).
_DRIVE = {"bias_pa": 80.0, "ou": {"mean_pa": 0.0, "sd_pa": 70.0, "tau_ms": 10.0}}
_LIF = {"model": "lif", "v_th_mv": -50.0, "v_reset_mv": -60.0}
SPEC = {
    "name": "small",
    "dt_ms": 0.1,
    "synapses": {"kind": "coba", "tau_e_ms": 5.0, "tau_i_ms": 10.0, "e_e_mv": 0.0, "e_i_mv": -80.0},
    "populations": [
        {"name": "E", "n": 40, "type": "E", "record": 8, "neuron": _LIF, "drive": _DRIVE},
        {"name": "I", "n": 10, "type": "I", "record": 2, "neuron": _LIF, "drive": _DRIVE},
    ],
    "projections": [
        {"pre": "E", "post": ["E", "I"], "rule": {"kind": "fixed_indegree", "k": 4}, "weight": 0.5, "delay_ms": 1.0},
        {"pre": "I", "post": ["E", "I"], "rule": {"kind": "fixed_indegree", "k": 2}, "weight": 3.0, "delay_ms": 1.0},
    ],
}  # fmt: skip


def test_wiring_into_the_members_network():
    # Units 100.. are mapped to model neurons 0..; the constrained network holds exactly the
    # estimated synapses among the observed neurons, with member weights that reproduce
    # the drawn PSPs, and the sources on the mapped targets.
    net = build_network(SPEC, 0)
    units = np.arange(100, 110)
    neuron_of = {int(u): int(n) for u, n in zip(units, net.recorded, strict=True)}
    conns = Connections(
        pre=np.array([100, 103, 108]), post=np.array([101, 100, 102]),
        psp_mv=np.array([1.5, 0.8, -2.0]), psp_se_mv=np.array([0.3, 0.1, 0.0]),
        delay_ms=np.array([3.0, 3.0, 2.0]), excitatory=np.array([True, True, False]),
        z=np.array([5.0, 8.0, 9.0]), units=units, types=np.array([""] * 10), dropped=0,
    )  # fmt: skip
    sources = Sources(targets=[np.array([101, 102, 104])], rate_hz=np.array([7.0]),
                      amplitude_mv=np.array([3.0]), n_triplets=np.array([1]))  # fmt: skip
    cfg = ConstraintsSection.model_validate({"glmcc": {}, "triplets": {}, "seed": 3})
    cs = _assemble(cfg, net, conns, sources, neuron_of, units, 50, {})
    member_net = cs.network(net)
    obs = net.recorded
    W = member_net.weight_matrix()[np.ix_(obs, obs)]
    assert (W == 0).all()  # the spec's synapses among the observed neurons are gone
    pre = np.repeat(np.arange(member_net.n), np.diff(member_net.msyn_ptr))
    assert sorted(zip(pre.tolist(), member_net.msyn_post.tolist(), strict=True)) == [(0, 1), (3, 0), (40, 2)]
    # the I link's sd is 0: every member has exactly its PSP
    k = int(np.flatnonzero(cs.syn_pre == 40)[0])
    got = psp_mv(net, np.full(50, 2), cs.synapse_weight[:, k], False)
    np.testing.assert_allclose(got, -2.0, rtol=1e-5)
    # E links: members' PSPs spread like the estimate (mean 1.5, sd 0.3)
    k = int(np.flatnonzero(cs.syn_pre == 0)[0])
    draws = psp_mv(net, np.full(50, 1), cs.synapse_weight[:, k], True)
    assert abs(draws.mean() - 1.5) < 4 * 0.3 / np.sqrt(50) and 0.2 < draws.std() < 0.4
    assert member_net.n_sources == 1 and member_net.src_post.tolist() == [1, 2, 4]
    assert cs.source_rate_hz.tolist() == [7.0]
    np.testing.assert_allclose(psp_mv(net, [1], cs.source_weight, True), [3.0], rtol=1e-3)
    assert [p.name for p in cs.parameter_specs(cfg)] == ["source_strength"]

    # glmcc.undetected: keep — only the pairs with an estimated link lose their spec
    # synapse; the others among the observed neurons keep the population rules. Without
    # GLMCC (sources only) no spec synapse is touched.
    W0 = net.weight_matrix()
    a, b = np.argwhere(W0[np.ix_(obs, obs)] != 0)[0]  # a spec synapse among observed neurons
    a, b = int(obs[a]), int(obs[b])
    unit = {n: u for u, n in neuron_of.items()}
    e = bool(net.excitatory[a])
    on_spec = Connections(
        pre=np.array([unit[a], 103]), post=np.array([unit[b], 100]), psp_mv=np.array([1.0 if e else -1.0, 0.8]),
        psp_se_mv=np.array([0.1, 0.1]), delay_ms=np.array([3.0, 3.0]), excitatory=np.array([e, True]),
        z=np.array([5.0, 8.0]), units=units, types=np.array([""] * 10), dropped=0,
    )  # fmt: skip
    for cfg_keep, pairs in (({"glmcc": {"undetected": "keep", "in_degree": "add"}, "seed": 3}, [(a, b), (3, 0)]),
                            ({"triplets": {}, "seed": 3}, [])):  # fmt: skip
        keep_cfg = ConstraintsSection.model_validate(cfg_keep)
        c = _assemble(keep_cfg, net, on_spec if "glmcc" in cfg_keep else None, sources, neuron_of, units, 50, {})
        W = c.network(net).weight_matrix()
        gone = np.zeros_like(W0, dtype=bool)
        for p, q in pairs:
            gone[p, q] = True
        assert (W[gone] == 0).all() and (W0[gone] != 0).sum() == (1 if pairs else 0)
        np.testing.assert_array_equal(W[~gone], W0[~gone])
        assert (W0[np.ix_(obs, obs)] != 0).sum() > len(pairs)  # there were others to keep
    # glmcc.in_degree: conserve (the default): the link 103 → 100 (not a spec synapse) takes
    # the place of one spec E synapse onto neuron 0 from an unobserved neuron, so that every
    # neuron keeps its spec in-degree of each sign; the spec synapses among observed neurons
    # are kept as with `add`
    cfg_c = ConstraintsSection.model_validate({"glmcc": {"undetected": "keep"}, "seed": 3})
    c = _assemble(cfg_c, net, on_spec, None, neuron_of, units, 50, {})
    assert c.conserve_in_degree and c.seed == 3
    net_c = c.network(net)
    W_c = net_c.weight_matrix()
    W_add = with_member_synapses(net, **dict(c.structure(), conserve_in_degree=False)).weight_matrix()
    made_room = (W_add != 0) & (W_c == 0)
    assert made_room.sum() == (0 if W0[3, 0] else 1)
    if made_room.any():
        p_room, q_room = map(int, np.argwhere(made_room)[0])
        assert q_room == 0 and net.excitatory[p_room] and p_room not in obs
    np.testing.assert_array_equal(W_c[np.ix_(obs, obs)], W_add[np.ix_(obs, obs)])
    in_e = lambda n, W: (W[n.excitatory] != 0).sum(axis=0) + np.bincount(  # noqa: E731
        n.msyn_post[n.msyn_excitatory], minlength=n.n)
    np.testing.assert_array_equal(in_e(net_c, W_c), in_e(net, W0))
    deg = in_degree_summary(net, net_c, c.observed)
    assert deg["n_observed"] == obs.size and deg["E"]["neurons_as_spec"] == deg["I"]["neurons_as_spec"] == obs.size
    assert deg["E"]["members"] == deg["E"]["spec"] == int((W0[np.ix_(net.excitatory, obs)] != 0).sum())
    deg_add = in_degree_summary(net, with_member_synapses(net, **dict(c.structure(), conserve_in_degree=False)), obs)
    assert deg_add["E"]["members"] == deg["E"]["spec"] + (0 if W0[3, 0] else 1)

    # With glmcc.strength, the E and the I links each get an estimated factor: a member's
    # weights are its own draws times its factors, the sources' weights times theirs.
    cfg = ConstraintsSection.model_validate({"glmcc": {"strength": {"mean": 1.0, "sd": 0.5}},
                                             "triplets": {}, "seed": 3})  # fmt: skip
    specs = cs.parameter_specs(cfg)
    assert [p.name for p in specs] == ["link_E_strength", "link_I_strength", "source_strength"]
    P = ParameterSet(specs, member_net, cs)
    theta = np.array([[2.0, 0.5, 1.5], [1.0, 3.0, 0.25]])
    mp = P.member_params(theta, members=[4, 7])
    exc = cs.syn_excitatory
    np.testing.assert_array_equal(mp.synapse_weight[:, exc], cs.synapse_weight[[4, 7]][:, exc] * [[2.0], [1.0]])
    np.testing.assert_array_equal(mp.synapse_weight[:, ~exc], cs.synapse_weight[[4, 7]][:, ~exc] * [[0.5], [3.0]])
    np.testing.assert_array_equal(mp.source_weight, cs.source_weight * [[1.5], [0.25]])
    # a link factor on a network without constrained links of that sign is refused
    with pytest.raises(ConfigError, match=r"parameters\[0\] \(g\): link_scale I names no synapse"):
        ParameterSet([ParameterSpec(name="g", link_scale="I", prior={"mean": 1.0, "sd": 0.5})], net)


# -- end to end --------------------------------------------------------------------------------

TRUTH = dict(SPEC, name="small_truth", explicit={
    "pre": [0, 2, 4, 40], "post": [1, 3, 5, 0], "weight": [10.0, 10.0, 10.0, -30.0],
    "delay_ms": [1.0, 1.0, 1.0, 1.0]})  # fmt: skip


def _config(tmp_path, constraints):
    cfg = {
        "name": "constrained_small",
        "network": {"spec": SPEC, "seed": 1},
        "parameters": [{"name": "drive_pa", "bias_pa": ["E", "I"], "prior": {"mean": 80.0, "sd": 10.0}}],
        "observations": {"operator": {"kind": "spike_counts", "bin_s": 0.5, "transform": "anscombe"},
                         "reduce": "window_mean"},
        "assimilation": {"members": 6, "window_s": 1.0, "start_s": 120.0, "spinup_s": 1.0,
                         "cycles": 3, "holdout_cycles": 1, "seed": 1},
        "twin": {"truth": {"drive_pa": 85.0}, "seed": 3, "observed_neurons": 10,
                 "network": {"spec": TRUTH, "seed": 2}},
        "cluster": {"kind": "local", "workers": 1},
    }  # fmt: skip
    if constraints is not None:
        cfg["constraints"] = constraints
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _spikeda(*args):
    return subprocess.run([sys.executable, "-m", "enkf.cli", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def constrained_run(tmp_path_factory):
    from enkf.driver.run import start

    tmp = tmp_path_factory.mktemp("constrained")
    cfg = _config(tmp, {"glmcc": {}, "triplets": {}, "if_empty": "unconstrained"})
    out = tmp / "run.zarr"
    start(cfg, out=out, progress=None, client=_client())
    return out


_CLIENT = []


def _client():
    if not _CLIENT:
        from distributed import Client, LocalCluster

        lc = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
        _CLIENT.extend([lc, Client(lc)])
    return _CLIENT[1]


def teardown_module():
    for obj in reversed(_CLIENT):
        obj.close()


def test_constrained_twin_run_records_its_constraints(constrained_run):
    from enkf.driver import open_run

    ds = open_run(constrained_run)
    info = json.loads(ds.attrs["constraints"])
    assert info["glmcc"]["significant"] >= 3  # the truth's three strong E links at least
    g = xr.open_zarr(constrained_run / "constraints" / "glmcc.zarr")
    assert g.attrs["kind"] == "connectivity"
    cs = ConstraintSet.load(constrained_run)
    found = set(zip(cs.syn_pre.tolist(), cs.syn_post.tolist(), strict=True))
    assert {(0, 1), (2, 3), (4, 5)} <= found
    # in_degree: conserve (the default): every observed neuron keeps the spec's count of
    # inputs of each sign, and the run says so
    deg = info["in_degree"]
    assert deg["rule"] == "conserve" and cs.conserve_in_degree
    for sign in ("E", "I"):
        assert deg[sign]["members"] == deg[sign]["spec"] and deg[sign]["neurons_as_spec"] == deg["n_observed"]
    # the estimators saw no spike of the held-out window
    assert info["until_s"] == pytest.approx(float(ds["window_start_s"].values[-1]))
    # held out: the last cycle's analysis is its forecast
    p = ds["param"].isel(cycle=-1)
    np.testing.assert_array_equal(p.sel(stage="forecast").values, p.sel(stage="analysis").values)
    assert not np.array_equal(*ds["param"].isel(cycle=0).values)


def test_resume_rebuilds_the_same_constrained_members(constrained_run, tmp_path):
    from enkf.driver.run import load

    d = load(constrained_run)
    assert d.constraints is not None
    assert d.network.fingerprint == json.loads(json.dumps(
        xr.open_zarr(constrained_run).attrs["network_fingerprint"]))  # fmt: skip


def test_results_from_another_recording_are_refused(constrained_run, tmp_path):
    g = xr.open_zarr(constrained_run / "constraints" / "glmcc.zarr").load()
    other = g.assign_coords(pre=g.pre.values + 1000, post=g.post.values + 1000)
    other.to_zarr(tmp_path / "other.zarr")
    cfg = _config(tmp_path, {"glmcc": {"result": str(tmp_path / "other.zarr")}})
    before = sorted(p.name for p in tmp_path.iterdir())
    r = _spikeda("run", str(cfg), "--out", str(tmp_path / "bad.run.zarr"))
    assert r.returncode == 2
    assert "different recording" in r.stderr and "constraints.glmcc.result" in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("spikeda run:")]
    assert len(errors) == 1 and r.stderr.strip().splitlines()[-1] == errors[0]
    assert not (tmp_path / "bad.run.zarr").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_no_significant_connection_stops_unless_the_config_allows(constrained_run, tmp_path):
    g = xr.open_zarr(constrained_run / "constraints" / "glmcc.zarr").load()
    g["significant"] = g["significant"] & False
    g.to_zarr(tmp_path / "none.zarr")
    cfg = _config(tmp_path, {"glmcc": {"result": str(tmp_path / "none.zarr")}})
    r = _spikeda("run", str(cfg), "--out", str(tmp_path / "a.run.zarr"))
    assert r.returncode == 2 and "no significant connection" in r.stderr
    assert "if_empty: unconstrained" in r.stderr
    from enkf.driver import open_run
    from enkf.driver.run import start

    cfg = _config(tmp_path, {"glmcc": {"result": str(tmp_path / "none.zarr")}, "if_empty": "unconstrained"})
    start(cfg, out=tmp_path / "b.run.zarr", progress=None, client=_client())
    ds = open_run(tmp_path / "b.run.zarr")
    assert ds.attrs["constraints"] == "" and ds.sizes["cycle"] == 3


def test_calcium_data_cannot_feed_glmcc(tmp_path):
    # A calcium-only store: events come from AR(1) deconvolution at frame resolution
    # (33 ms), which cannot support GLMCC's millisecond lags: refused, nothing written.
    from observations import SpikeTrains
    from observations.operators import CalciumOperator
    from observations.synthetic import write_synthetic_calcium

    rng = np.random.default_rng(0)
    ids = np.array([0, 1, 2, 3, 4, 5, 6, 7, 40, 41])
    trains = [np.sort(rng.uniform(0, 60, 300)) for _ in ids]
    spikes = SpikeTrains.from_lists(trains, unit_ids=ids, t_start_s=0.0, t_stop_s=60.0)
    store = tmp_path / "ca.zarr"
    write_synthetic_calcium(store, spikes, CalciumOperator(indicator="GCaMP6s", frame_rate_hz=30.0),
                            seed=1, include_spikes=False)  # fmt: skip
    cfg = yaml.safe_load(_config(tmp_path, {"glmcc": {}}).read_text())
    del cfg["twin"]
    cfg["observations"] = {"store": str(store), "operator": {"kind": "calcium", "indicator": "GCaMP6s"},
                           "reduce": "window_mean"}  # fmt: skip
    cfg["assimilation"].update(start_s=20.0, spinup_s=1.0)
    path = tmp_path / "ca.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = _spikeda("run", str(path), "--out", str(tmp_path / "ca.run.zarr"))
    assert r.returncode == 2, r.stderr
    assert "GLMCC needs millisecond lags" in r.stderr and "33.3 ms" in r.stderr
    assert not (tmp_path / "ca.run.zarr").exists()
    # the triplet map at a bin finer than the frames is refused too
    cfg["constraints"] = {"triplets": {"bin_ms": 5.0}}
    path.write_text(yaml.safe_dump(cfg))
    r = _spikeda("run", str(path), "--out", str(tmp_path / "ca.run.zarr"))
    assert r.returncode == 2 and "constraints.triplets.bin_ms" in r.stderr


def test_clipped_couplings_get_the_sd_their_test_implies():
    # The strongest inhibitions sit on GLMCC's clip bound J = −3, where the Laplace sd is
    # NaN: their sd is the Wald threshold over z_α (3.29 at α = 0.001).
    ids = np.array([1, 2])
    J = np.array([[0.0, -3.0], [0.9, 0.0]])
    se = np.array([[np.nan, np.nan], [0.2, np.nan]])
    sig = np.array([[False, True], [True, False]])
    ds = _glmcc_like(J, se, sig, ids)
    ds["J_threshold"] = (("pre", "post"), np.full((2, 2), 0.658))
    ds.attrs["alpha"] = 0.001
    c = from_glmcc(ds, ["I", "E"])
    k = int(np.flatnonzero(c.pre == 1)[0])
    assert c.psp_se_mv[k] == pytest.approx(0.612 * 0.658 / 3.2905, rel=1e-4)
    assert c.n == 2


# -- J ↔ PSP calibration ---------------------------------------------------------------------


def test_j_calibration_inverts_its_curve_and_transfers_to_new_data():
    from enkf.constraints.calibrate import JCalibration, calibrate_j

    # Probes whose J is exactly m(PSP)·(1 − 0.2·ln(rate / 10 Hz)): the curve at a rate is
    # the per-level line in log rate, the inverse is piecewise linear through the origin and
    # the level means; a level whose mean J falls below the one before it (noise) is
    # dropped, never inverted backwards; past the last level the last segment goes on.
    levels, m = [1.0, 2.0, 4.0, -1.0, -3.0], [0.5, 0.4, 2.0, -1.0, -2.5]
    rates = np.array([5.0, 10.0, 20.0, 40.0])
    psp = np.repeat(levels, rates.size)
    rate = np.tile(rates, len(levels))
    cal = JCalibration(psp_mv=psp, rate_hz=rate, duration_s=60.0,
                       j=np.repeat(m, rates.size) * (1 - 0.2 * np.log(rate / 10.0)))  # fmt: skip
    J = np.array([0.25, 0.5, 1.0, 3.0, -0.5, -1.75, -3.0])
    exc = J > 0
    want = [0.5, 1.0, 2.0, 6.0, -0.5, -2.0, -3.0 - 2 / 3]
    got, slope = cal.psp(J, exc, 10.0)
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(slope, [2.0, 2.0, 2.0, 2.0, 1.0, 4 / 3, 4 / 3])
    # at 10·e Hz every mean J is 0.8× as large: the same PSP for 0.8× the J
    np.testing.assert_allclose(cal.psp(0.8 * J, exc, 10.0 * np.e)[0], want)
    np.testing.assert_allclose(cal.j_mean(10.0 * np.e), 0.8 * np.array(sorted(zip(levels, m, strict=True)))[:, 1])
    # beyond the probes' rates the nearest end holds
    np.testing.assert_allclose(cal.psp(J, exc, 80.0)[0], cal.psp(J, exc, 40.0)[0])

    # Simulated: J grows with the PSP and falls with the postsynaptic rate, and the curve of
    # one realisation turns the mean J of probes in an independent realisation (other
    # neurons, other offsets, other noise) back into their PSP within the spread that the
    # probes' J has at this data length.
    net = build_network(dict(SPEC, populations=[dict(SPEC["populations"][0], n=240),
                                                dict(SPEC["populations"][1], n=60)]), 0)  # fmt: skip
    kw = {"delay_ms": 3.0}
    a = calibrate_j(net, net.recorded, 120.0, kw, per_level=10, seed=1)
    b = calibrate_j(net, net.recorded, 120.0, kw, per_level=10, seed=2)
    e = a.levels > 0
    assert np.all(np.diff(a.j_mean()[e]) > 0) and np.all(np.diff(a.j_mean()[~e][-3:]) > 0)
    assert np.all(a.j_mean(30.0)[e] < a.j_mean(5.0)[e])
    for level in b.levels:
        if abs(level) > 2.5:  # the J of strong inhibition sits on GLMCC's clip bound
            continue
        sel = (b.psp_mv == level) & np.isfinite(b.j)
        got, slope = a.psp([b.j[sel].mean()], [level > 0])
        tol = 4 * slope[0] * b.j[sel].std(ddof=1) / np.sqrt(sel.sum()) + 0.1 * abs(level)
        assert abs(got[0] - level) < tol, (level, got)


def test_link_observations_are_assimilated_from_their_cycle(tmp_path):
    """glmcc.observe: the J of the most significant links, each member's from its own
    spikes accumulated since the first window, joins the activity in the analysis."""
    from enkf.driver import open_run
    from enkf.driver.members import load_member, member_path
    from enkf.driver.run import start

    runs = {}
    for name, glmcc in (("with", {"observe": {"links": 3, "from_cycle": 1}}), ("without", {})):
        d = tmp_path / name
        d.mkdir()
        runs[name] = d / "run.zarr"
        path = _config(d, {"glmcc": glmcc, "if_empty": "unconstrained"})
        cfg = yaml.safe_load(path.read_text())
        cfg["assimilation"]["window_s"] = 15.0  # GLMCC gives a J_se from ~25 s of these spikes
        path.write_text(yaml.safe_dump(cfg))
        start(path, out=runs[name], progress=None, client=_client())
    ds, ref = open_run(runs["with"]), open_run(runs["without"])
    cs = ConstraintSet.load(runs["with"])
    assert cs.link_j.size == 3 and ds.sizes["link"] == 3
    z = np.abs(cs.link_j) / cs.link_j_se
    assert (np.diff(z) <= 0).all()  # the most significant first
    found = set(zip(cs.link_pre.tolist(), cs.link_post.tolist(), strict=True))
    assert found <= set(zip(cs.syn_pre.tolist(), cs.syn_post.tolist(), strict=True))
    # cycle 0 only accumulates, cycle 1 assimilates, the held-out cycle 2 does not
    assert np.isnan(ds["link_y"].values[[0, 2]]).all()
    # y: GLMCC on the recording over the span the members have simulated (first window's
    # start, with its spin-up, to the end of cycle 1), the same data length as theirs
    from inference import GLMCC
    from observations import open_store

    rec = open_store(runs["with"] / "twin_observations.zarr").spikes
    t0 = float(ds["window_start_s"].values[0]) - 1.0  # the spin-up
    span = rec.between(t0, float(ds["window_end_s"].values[1]))
    at = {int(u): i for i, u in enumerate(span.unit_ids)}
    pairs = np.array([[at[a], at[b]] for a, b in zip(cs.link_pre, cs.link_post, strict=True)])
    fit = GLMCC(delay_ms=3.0).fit(span, pairs)
    want = [float(fit["J"].sel(pre=a, post=b)) for a, b in zip(cs.link_pre, cs.link_post, strict=True)]
    np.testing.assert_allclose(ds["link_y"].values[1], want, rtol=1e-9)
    assert np.isfinite(ds["link_hx_mean"].values[1]).all() and (ds["link_hx_sd"].values[1] > 0).all()
    # the error variance: the recording's J_se² + the members' own; NaN for a link that some
    # member cannot give a J_se yet (too few lags), which then waits
    var = ds["link_error_var"].values[1]
    used = np.isfinite(var)
    assert used.sum() >= 2 and (var[used] > cs.link_j_se[used] ** 2).all()
    # the same run without them: identical up to cycle 1's analysis, which the links change
    np.testing.assert_array_equal(ds["param"].values[0], ref["param"].values[0])
    np.testing.assert_array_equal(ds["param"].values[1, 0], ref["param"].values[1, 0])
    assert not np.array_equal(ds["param"].values[1, 1], ref["param"].values[1, 1])
    # the members' statistics live in their state files: every window since the first
    links = load_member(member_path(runs["with"] / "checkpoint" / "slot1", 0), stats=True)[2]["links"]
    span = float(ds["window_end_s"].values[2] - ds["window_start_s"].values[0]) + 1.0  # + spin-up
    assert float(links["duration_s"]) == pytest.approx(span, rel=1e-9)
    assert links["counts"].shape[0] == 3 and links["counts"].sum() > 0


@pytest.mark.parametrize("block", ["glmcc", "triplets"])
def test_statistic_observations_config_checks(tmp_path, block):
    from enkf.run_config import load_run_config

    base = yaml.safe_load(_config(tmp_path, {block: {"observe": {"from_cycle": 2}}}).read_text())
    (tmp_path / "late.yaml").write_text(yaml.safe_dump(base))
    with pytest.raises(ConfigError, match=rf"constraints.{block}.observe.from_cycle: 2 is after the last assimilated cycle \(1\)"):
        load_run_config(tmp_path / "late.yaml")
    base["constraints"][block]["observe"]["from_cycle"] = 1
    base["assimilation"]["filter"] = "letkf"
    base["assimilation"].update(localization={"by": "distance", "radius": 100.0}, states=["v_mv"])
    (tmp_path / "letkf.yaml").write_text(yaml.safe_dump(base))
    with pytest.raises(ConfigError, match=rf"constraints.{block}.observe: .* are not localised; use filter enkf or etkf"):
        load_run_config(tmp_path / "letkf.yaml")


# A truth with two hidden excitatory neurons (50, 51: unrecorded) giving common input to
# recorded neurons 5, 6, 7 and 2, 3 (10 nS, ≈ 8 mV): "E-all" and "E-pair" triplets.
TRUTH_HIDDEN = dict(SPEC, name="small_truth_hidden",
                    populations=SPEC["populations"] + [{"name": "H", "n": 2, "type": "E", "record": 0,
                                                        "neuron": _LIF, "drive": _DRIVE}],
                    explicit={"pre": [50, 50, 50, 51, 51], "post": [5, 6, 7, 2, 3],
                              "weight": [10.0] * 5, "delay_ms": [1.0] * 5})  # fmt: skip


class _Crash(Exception):
    pass


class _CrashAfter:
    """A progress stream that kills the driver (an exception out of the cycle loop) just
    after it reports the end of cycle ``n`` (1-based): as a crash between two cycles."""

    def __init__(self, n: int):
        self.n = n

    def write(self, text: str) -> None:
        if text.startswith(f"cycle {self.n}/"):
            raise _Crash(text)

    def flush(self) -> None:
        pass


def test_triplet_observations_are_assimilated_from_their_cycle(tmp_path):
    """triplets.observe: θ_12, θ_13, θ_23 and θ_123 of the most coupled excitatory triplets,
    each member's from its own spikes accumulated since the first window, join the
    activity in the analysis; a crash after a cycle loses none of the counts."""
    from driver_helpers import assert_identical, results

    from enkf.driver import open_run
    from enkf.driver.members import load_member, member_path
    from enkf.driver.run import resume, start
    from inference import TripletMap
    from inference.triplets import delta_se, thetas
    from observations import open_store

    runs = {}
    for name, observe in (("with", {"observe": {"triplets": 3, "from_cycle": 1}}), ("without", {}),
                          ("crashed", {"observe": {"triplets": 3, "from_cycle": 1}})):  # fmt: skip
        d = tmp_path / name
        d.mkdir()
        runs[name] = d / "run.zarr"
        path = _config(d, {"triplets": {"strength": {"mean": 1.0, "sd": 0.5}, **observe}})
        cfg = yaml.safe_load(path.read_text())
        cfg["twin"]["network"]["spec"] = TRUTH_HIDDEN
        cfg["assimilation"].update(window_s=2.0, cycles=4)
        path.write_text(yaml.safe_dump(cfg))
        if name == "crashed":
            with pytest.raises(_Crash):
                start(path, out=runs[name], progress=_CrashAfter(2), client=_client())
            assert xr.open_zarr(runs[name]).attrs["completed_cycles"] == 2
            resume(runs[name], progress=None, client=_client())
        else:
            start(path, out=runs[name], progress=None, client=_client())
    ds, ref = open_run(runs["with"]), open_run(runs["without"])
    # resumed after cycle 2 (index 1, the first with the θ's): the members' counts came back
    # from their state files, and every result is the undisturbed run's, bit for bit
    assert_identical(results(runs["with"]), results(runs["crashed"]))
    cs = ConstraintSet.load(runs["with"])
    T = cs.triplet_neurons.shape[0]
    assert 1 <= T <= 3 and ds.sizes["triplet"] == T and list(ds["interaction"].values) == ["12", "13", "23", "123"]
    np.testing.assert_array_equal(ds["triplet_neuron"].values, cs.triplet_neurons)
    # the hidden neurons' targets are the most coupled triplets
    assert {tuple(sorted(t)) for t in cs.triplet_neurons.tolist()} & {(5, 6, 7)}
    # cycle 0 only accumulates, cycles 1 and 2 assimilate, the held-out cycle 3 does not
    y = ds["triplet_y"].values
    assert np.isnan(y[[0, 3]]).all() and np.isfinite(y[[1, 2]]).all()
    # y: the triplet map on the recording over the span the members have simulated
    rec = open_store(runs["with"] / "twin_observations.zarr").spikes
    t0 = float(ds["window_start_s"].values[0]) - 1.0  # the spin-up
    span = rec.between(t0, float(ds["window_end_s"].values[2]))
    at = {int(u): i for i, u in enumerate(span.unit_ids)}
    fit = TripletMap(bin_ms=5.0).fit(span, [[at[int(n)] for n in t] for t in cs.triplet_neurons])
    want = np.column_stack([fit["theta_ij"].values, fit["theta_123"].values])
    np.testing.assert_allclose(y[2], want, rtol=1e-12)
    se2 = np.column_stack([fit["se_theta_ij"].values, fit["se_theta_123"].values]) ** 2
    # hx: each member's θ of its own pattern counts, accumulated in its state file over the
    # spin-up and windows 0 to 2 (cycle 2 wrote slot 1, which the last cycle only read)
    member_theta, member_se = [], []
    for m in range(ds.sizes["member"]):
        stats = load_member(member_path(runs["with"] / "checkpoint" / "slot1", m), stats=True)[2]
        pats = stats["triplets"]["patterns"]
        assert int(stats["triplets"]["n_bins"]) == fit.attrs["n_bins"] == round(span.duration_s / 5e-3)
        np.testing.assert_array_equal(pats.sum(axis=1), fit.attrs["n_bins"])  # every bin, once
        member_theta.append(thetas(pats)[:, 3:7])
        member_se.append(delta_se(pats)[:, 3:7])
    member_theta = np.array(member_theta)
    np.testing.assert_allclose(ds["triplet_hx_mean"].values[2], member_theta.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(ds["triplet_hx_sd"].values[2], member_theta.std(axis=0, ddof=1), rtol=1e-12)
    # the error variance: the recording's SE² + the members' mean SE², times the 2 cycles
    # (1 and 2) that assimilate the θ's, so that the spikes they share count once
    want = 2 * (se2 + (np.array(member_se) ** 2).mean(axis=0))
    np.testing.assert_allclose(ds["triplet_error_var"].values[2], want, rtol=1e-12)
    # the same run without them: identical up to cycle 1's analysis, which the θ's change
    np.testing.assert_array_equal(ds["param"].values[0], ref["param"].values[0])
    np.testing.assert_array_equal(ds["param"].values[1, 0], ref["param"].values[1, 0])
    assert not np.array_equal(ds["param"].values[1, 1], ref["param"].values[1, 1])
