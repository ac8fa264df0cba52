"""Run configs, parameters and observation plans: checked before anything is written.

Bad input ends in one line on stderr naming what and where, exit status 2, and leaves the
user's files as they were (the store, the config, whatever sits at the output path).
"""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from driver_helpers import NETWORK, TWIN, config, spikeda, tree_digest, write_config

from enkf.config import ConfigError
from enkf.driver.observe import ObservationPlan
from enkf.driver.params import Z95, ParameterSet
from enkf.run_config import ParameterSpec, RunConfig, parse_run_config
from model import build_network
from observations import write_store


@pytest.fixture(scope="module")
def network():
    return build_network(NETWORK, seed=2)


def _store(path, n_neurons=50, seconds=4.0, rate=30.0, nan_frame=None, first_id=0):
    t = np.arange(1, int(seconds * rate) + 1) / rate
    rng = np.random.default_rng(0)
    values = (0.1 + 0.05 * rng.standard_normal((t.size, n_neurons))).astype(np.float32)
    if nan_frame is not None:
        values[nan_frame, 3] = np.nan
    dff = xr.DataArray(
        values,
        dims=("time", "neuron"),
        coords={"time": t, "neuron": np.arange(first_id, first_id + n_neurons)},
        attrs={"frame_rate_hz": rate, "indicator": "GCaMP6s"},
    )
    write_store(path, dff=dff)
    return path


def _real(store, **changes):
    """A config that assimilates an existing store (no twin)."""
    cfg = config(TWIN, **changes)
    del cfg["twin"]
    cfg["observations"]["store"] = str(store)
    cfg["observations"]["reduce"] = "window_mean"
    return cfg


def _refused(tmp_path, cfg, *extra, out=None):
    path = write_config(tmp_path / "run.yaml", cfg)
    before = path.read_bytes()
    out = out or tmp_path / "run.zarr"
    res = spikeda("run", path, "--out", out, *extra)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spikeda run: "), res.stderr
    assert path.read_bytes() == before
    return lines[0]


def test_typo_key_names_its_yaml_path(tmp_path):
    cfg = config(TWIN)
    cfg["assimilation"]["membrs"] = cfg["assimilation"].pop("members")
    line = _refused(tmp_path, cfg)
    assert "assimilation.membrs: unknown key" in line
    assert "assimilation.members: required key is missing" in line
    assert not (tmp_path / "run.zarr").exists()


def test_typo_inside_the_operator_and_the_network(tmp_path):
    cfg = config(TWIN)
    cfg["observations"]["operator"]["indicatr"] = "GCaMP6f"
    cfg["network"]["spec"]["populations"][1]["neuron"]["c_pff"] = 1.0
    line = _refused(tmp_path, cfg)
    assert "observations.operator.indicatr: unknown key" in line
    assert "network.spec.populations[1].neuron.c_pff: unknown key" in line


def test_nan_frames_are_refused_by_default_and_the_store_is_untouched(tmp_path):
    store = _store(tmp_path / "obs.zarr", nan_frame=40)
    before = tree_digest(store)
    line = _refused(tmp_path, _real(store))
    assert "calcium/dff is NaN at frame 40" in line and "nan_policy: mask" in line
    assert tree_digest(store) == before
    assert not (tmp_path / "run.zarr").exists()


def test_neuron_map_outside_the_network(tmp_path):
    store = _store(tmp_path / "obs.zarr", n_neurons=3)
    cfg = _real(store)
    cfg["observations"]["neuron_map"] = {"store": [0, 1, 2], "model": [5, 7, 5000]}
    line = _refused(tmp_path, cfg)
    assert "observations.neuron_map.model[2]: neuron 5000 is outside the network" in line
    assert "0–199" in line


def test_identity_map_of_ids_beyond_the_network(tmp_path):
    store = _store(tmp_path / "obs.zarr", n_neurons=10, first_id=195)
    line = _refused(tmp_path, _real(store))
    assert "identity maps store neuron id 200 to model neuron 200" in line


def test_windows_beyond_the_data(tmp_path):
    store = _store(tmp_path / "obs.zarr", seconds=2.0)
    line = _refused(tmp_path, _real(store, **{"assimilation.cycles": 9}))
    assert "need observations until 5 s" in line and "ends at 2 s" in line


def test_output_holding_something_else_is_never_replaced(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "data.txt").write_text("mine")
    for extra in ((), ("--overwrite",)):
        line = _refused(tmp_path, config(TWIN), *extra, out=out)
        assert "is not a spikeda run" in line
    assert (out / "data.txt").read_text() == "mine"


def test_config_errors_list_every_problem():
    text = """
network: {spec: {name: x, synapses: {kind: coba}, populations: [{name: E, n: 2, type: E, neuron: {model: lif}}]}}
parameters:
  - {name: a, weight_scale: [E, E], transform: logit, prior: {mean: 2.0, sd: 0.1}}
  - {name: a, bias_pa: E, poisson_rate_hz: E, prior: {mean: 1.0, sd: 0.1}}
observations: {operator: {kind: spike_counts, bin_s: 0.1}}
assimilation: {members: 10, window_s: 1.0, members_per_task: 0}
"""
    with pytest.raises(ConfigError) as err:
        parse_run_config(text, "cfg.yaml", base=Path("."))
    msg = str(err.value)
    assert msg.startswith("cfg.yaml: ")
    assert "parameters[0]: 'bounds: [low, high]' is required for transform logit" in msg
    assert "parameters[1]: give exactly one target" in msg
    assert "assimilation.members_per_task: Input should be greater than or equal to 1" in msg
    assert "literal" not in msg


def test_parameters_check_targets(network):
    def ps(**spec):
        base = {"name": "p", "prior": {"mean": 1.0, "sd": 0.1}}
        return ParameterSet([ParameterSpec(**base, **spec)], network)

    with pytest.raises(ConfigError, match="unknown population 'X'"):
        ps(weight_scale=["E", "X"])
    with pytest.raises(ConfigError, match="population E has no Poisson drive"):
        ps(poisson_rate_hz="E")


def test_prior_moments_and_interval(network):
    """log: the log-normal with the given mean and sd (checked by sampling); the 95 %
    interval is the exact quantiles of the transformed Normal."""
    cfg = RunConfig.model_validate(TWIN)
    P = ParameterSet(cfg.parameters, network)
    theta = P.sample_prior(200_000, np.random.default_rng(1))
    means = np.array([p.prior.mean for p in cfg.parameters])
    sds = np.array([p.prior.sd for p in cfg.parameters])
    assert np.allclose(theta.mean(0), means, rtol=3e-3)
    assert np.allclose(theta.std(0), sds, rtol=1e-2)
    lo, hi = P.prior_interval()
    inside = ((theta >= lo) & (theta <= hi)).mean(0)
    assert np.allclose(inside, 0.95, atol=3e-3)
    assert Z95 == pytest.approx(1.959964, abs=1e-6)


def test_member_params_set_their_targets_only(network):
    cfg = RunConfig.model_validate(TWIN)
    P = ParameterSet(cfg.parameters, network)
    theta = np.array([[1.2, 0.8, 190.0], [1.0, 1.0, 180.0]])
    mp = P.member_params(theta)
    E, I = network.pop_names.index("E"), network.pop_names.index("I")
    assert mp.weight_scale[0, E, E] == 1.2 and mp.weight_scale[0, I, E] == 0.8
    assert mp.weight_scale[0, E, I] == 1.0 and mp.weight_scale[0, I, I] == 1.0
    # The drive moves each population's mean bias to the value and keeps the spread.
    for name in ("E", "I"):
        sl = network.population(name)
        assert mp.bias_pa[0, sl].mean() == pytest.approx(190.0)
        assert mp.bias_pa[1, sl].mean() == pytest.approx(180.0)
        assert np.allclose(np.diff(mp.bias_pa[0, sl] - network.bias_pa[sl]), 0.0)


def test_plan_reads_window_means_as_the_store_holds_them(tmp_path, network):
    """y of a window is the mean of its frames, checked against xarray on the store; with
    NaN frames masked, the mean leaves them out and R grows by the frames lost."""
    store = _store(tmp_path / "obs.zarr", nan_frame=20)
    cfg = RunConfig.model_validate(_real(store, **{"observations.nan_policy": "mask"}))
    plan = ObservationPlan(cfg.observations, cfg.assimilation, network, store)
    da = xr.open_zarr(store, group="calcium", consolidated=False)["dff"].astype("float64")
    for w in plan.windows:
        y, var, _ = plan.y(w)
        ref = da.sel(time=slice(w.obs_t0_s + 1e-9, w.t1_s + 1e-9)).mean("time", skipna=True)
        assert np.allclose(y, ref.values, rtol=0, atol=1e-12)
        n = da.sel(time=slice(w.obs_t0_s + 1e-9, w.t1_s + 1e-9)).notnull().sum("time").values
        assert np.allclose(var, plan.frame_var / n)
    assert plan.windows[0].t0_s == 0.0 and plan.windows[1].t0_s == 1.0


def test_member_state_files_round_trip_exactly(tmp_path, network):
    """A member saved mid-run (spikes in flight, calcium sums and recent spikes) and read
    back continues exactly as the member that was never saved."""
    from enkf.driver.members import load_member, save_member
    from model import advance, default_params, initial_state
    from observations import SpikeTrains
    from observations.operators import CalciumOperator

    params = default_params(network, 1)
    state, rec = advance(network, params, initial_state(network, 1, 3), 0.0, 0.3, 5)
    assert np.count_nonzero(state.buf_e) > 0  # something in flight
    op = CalciumOperator("GCaMP6s", 30.0)
    neurons = np.arange(20)
    t, n = rec.member(0)
    keep = n < 20
    spikes = SpikeTrains.from_pairs(t[keep], n[keep], 0.0, 0.3, unit_ids=neurons)
    _, ca = op.predict(spikes, op.initial_state(20), np.arange(1, 10) / 30.0)
    save_member(tmp_path / "m.state", state, ca)
    state2, ca2 = load_member(tmp_path / "m.state")
    for k in state.ARRAYS:
        a, b = getattr(state, k), getattr(state2, k)
        assert a.dtype == b.dtype and np.array_equal(a, b), k
    assert (state2.step, state2.fingerprint) == (state.step, state.fingerprint)
    for f in ("t_s", "ref_t_s"):
        assert getattr(ca2, f) == getattr(ca, f)
    for f in ("ref_ab", "recent_times_s", "recent_offsets"):
        assert np.array_equal(getattr(ca2, f), getattr(ca, f))
    a1, r1 = advance(network, params, state, 0.3, 0.5, 5)
    a2, r2 = advance(network, params, state2, 0.3, 0.5, 5)
    assert np.array_equal(r1.times_s, r2.times_s) and np.array_equal(a1.v_mv, a2.v_mv)


def test_poisson_rate_targets_set_each_population_rate():
    """A poisson_rate_hz parameter sets the source rate of the named population only; the
    other population and the weight scales stay as the spec has them."""
    spec = {**NETWORK, "populations": [
        {**NETWORK["populations"][0], "drive": {"poisson": {"rate_hz": 5.0, "weight": 1.0, "n_sources": 50}}},
        {**NETWORK["populations"][1], "drive": {"poisson": {"rate_hz": 5.0, "weight": 1.0, "n_sources": 50}}},
    ]}  # fmt: skip
    net = build_network(spec, seed=2)
    P = ParameterSet(
        [ParameterSpec(name="nu_E", poisson_rate_hz="E", prior={"mean": 5.0, "sd": 1.0})], net
    )
    mp = P.member_params(np.array([[8.0], [2.0]]))
    E, I = net.pop_names.index("E"), net.pop_names.index("I")
    assert np.array_equal(mp.poisson_rate_hz[:, E], [8.0, 2.0])
    assert np.array_equal(mp.poisson_rate_hz[:, I], [5.0, 5.0])
    assert np.array_equal(mp.weight_scale, np.ones_like(mp.weight_scale))


def test_weight_factors_equal_the_equivalent_weight_scales(network):
    """Gains and E/I ratios per postsynaptic population (weight_factor; factors on one pair
    multiply) give members the same MemberParams as the weight scales they stand for:
    w_EE = g_E, w_IE = g_E·r_E, w_EI = g_I, w_II = g_I·r_I."""
    prior = {"mean": 1.0, "sd": 0.2}
    by_factor = ParameterSet([
        ParameterSpec(name="g_E", weight_factor=[["E", "E"], ["I", "E"]], prior=prior),
        ParameterSpec(name="r_E", weight_factor=[["I", "E"]], prior=prior),
        ParameterSpec(name="g_I", weight_factor=[["E", "I"], ["I", "I"]], prior=prior),
        ParameterSpec(name="r_I", weight_factor=[["I", "I"]], prior=prior),
        ParameterSpec(name="drive_pa", bias_pa=["E", "I"], prior={"mean": 180.0, "sd": 30.0}),
    ], network)  # fmt: skip
    by_scale = ParameterSet([
        ParameterSpec(name=f"w_{a}{b}", weight_scale=[a, b], prior=prior)
        for a, b in (("E", "E"), ("I", "E"), ("E", "I"), ("I", "I"))
    ] + [ParameterSpec(name="drive_pa", bias_pa=["E", "I"], prior={"mean": 180.0, "sd": 30.0})],
        network)  # fmt: skip
    theta = by_factor.sample_prior(7, np.random.default_rng(3))
    g_E, r_E, g_I, r_I, drive = theta.T
    mp1 = by_factor.member_params(theta)
    mp2 = by_scale.member_params(np.column_stack([g_E, g_E * r_E, g_I, g_I * r_I, drive]))
    assert np.allclose(mp1.weight_scale, mp2.weight_scale, rtol=1e-15, atol=0)
    assert np.array_equal(mp1.bias_pa, mp2.bias_pa)
    assert np.array_equal(mp1.poisson_rate_hz, mp2.poisson_rate_hz)
    E, I = network.pop_names.index("E"), network.pop_names.index("I")
    assert np.allclose(mp1.weight_scale[:, I, E] / mp1.weight_scale[:, E, E], r_E)
    # A factor on a pair that a weight scale also sets multiplies it (order does not matter).
    both = ParameterSet([
        ParameterSpec(name="J", weight_factor=[["E", "E"]], prior=prior),
        ParameterSpec(name="w_EE", weight_scale=["E", "E"], prior=prior),
    ], network)  # fmt: skip
    assert both.member_params(np.array([[1.5, 0.8]])).weight_scale[0, E, E] == pytest.approx(1.2)
    with pytest.raises(ConfigError, match="names a population pair twice"):
        ParameterSet([ParameterSpec(name="g", weight_factor=[["E", "E"], ["E", "E"]], prior=prior)],
                     network)  # fmt: skip
    with pytest.raises(ConfigError, match="unknown population 'X'"):
        ParameterSet([ParameterSpec(name="g", weight_factor=[["E", "X"]], prior=prior)], network)


@pytest.mark.parametrize(
    "kind, directives",
    [
        ("pbs", ["#PBS -q short", "#PBS -l walltime=00:30:00", "#PBS -A lab42"]),
        ("sge", ["#$ -q short", "#$ -l h_rt=00:30:00"]),
        ("lsf", ["#BSUB -q short", "#BSUB -W 00:30", "#BSUB -P \"lab42\""]),
        ("slurm", ["#SBATCH -p short", "#SBATCH -t 00:30:00", "#SBATCH -A lab42"]),
    ],
)
def test_jobqueue_backends_write_the_configs_job_script(kind, directives):
    # Without a scheduler to submit to, the batch script each backend would submit is what
    # can be checked: the config's queue, walltime and account as the scheduler's
    # directives, one single-threaded worker per job, started by this Python.
    import sys

    from enkf.driver.cluster import _jobqueue
    from enkf.run_config import ClusterSection

    kw = {"queue": "short", "walltime": "00:30:00"}
    if kind in ("pbs", "slurm"):
        kw["account"] = "lab42"
    elif kind == "lsf":
        kw["project"] = "lab42"  # LSF's name for the account
    section = ClusterSection.model_validate({"kind": kind, "workers": 2, "jobqueue": kw})
    cluster = _jobqueue(section)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for d in directives:
        assert d in script, (d, script)
    assert sys.executable in script and "--nthreads 1" in script
