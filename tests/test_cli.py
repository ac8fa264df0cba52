"""The spikeda command line, run as a user runs it: a real process, real files."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SMALL = textwrap.dedent(
    """\
    model: {name: lorenz96, n: 40, forcing: 8.0}
    time: {dt: 0.05, obs_every: 1, cycles: 400, burn_in: 5.0}
    seeds: [3]
    experiments:
      - label: ETKF N=20
        filter: etkf
        members: 20
        inflation: 1.02
        published_rmse: 0.18
        tolerance: 0.1
    """
)


def spikeda(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "enkf.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_help_lists_existing_subcommands():
    out = spikeda("--help")
    assert out.returncode == 0
    assert "twin-toy" in out.stdout


def test_console_script_is_installed():
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "spikeda"]
    assert ep.value == "enkf.cli:main"


def test_twin_toy_runs_and_writes_json(tmp_path):
    cfg = tmp_path / "small.yaml"
    cfg.write_text(SMALL)
    before = cfg.read_bytes()
    out = spikeda("twin-toy", cfg, "--json", tmp_path / "out.json")
    assert out.returncode == 0, out.stderr
    assert "ETKF N=20" in out.stdout and "RMSE_a" in out.stdout
    data = json.loads((tmp_path / "out.json").read_text())
    (row,) = data["rows"]
    assert row["rmse_a"] < 0.3 and not row["diverged"]
    assert cfg.read_bytes() == before


def test_divergence_is_a_failure(tmp_path):
    """Five members without inflation cannot track 13 unstable directions."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        SMALL.replace("members: 20", "members: 5").replace("inflation: 1.02", "inflation: 1.0")
    )
    out = spikeda("twin-toy", cfg)
    assert out.returncode == 1
    assert "diverged" in out.stderr


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.replace("members: 20", "membrs: 20"), "experiments[0].membrs: unknown key"),
        (
            lambda s: s.replace("members: 20", "members: 1"),
            "experiments[0].members: Input should be greater than or equal to 2",
        ),
        (
            lambda s: s.replace("filter: etkf", "filter: letkf"),
            "'localization' is required for filter letkf",
        ),
        (lambda s: s.replace("dt: 0.05", "dt: -1"), "time.dt: Input should be greater than 0"),
        (lambda s: s.replace("name: lorenz96", "name: lorenz97"), "model"),
        (lambda s: s + "extra_section: 1\n", "extra_section: unknown key"),
        (lambda s: s.replace("seeds: [3]", "seeds: [3"), "not valid YAML"),
        (lambda s: "- just\n- a list\n", "expected a mapping at the top level"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, edit, message):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(edit(SMALL))
    before = cfg.read_bytes()
    out = spikeda("twin-toy", cfg)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert message in out.stderr and str(cfg) in out.stderr
    assert cfg.read_bytes() == before


def test_missing_config_file(tmp_path):
    out = spikeda("twin-toy", tmp_path / "nope.yaml")
    assert out.returncode == 2
    assert "cannot read config" in out.stderr and "Traceback" not in out.stderr


def test_burn_in_longer_than_run(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(SMALL)
    out = spikeda("twin-toy", cfg, "--cycles", "50")
    assert out.returncode == 2
    assert "burn_in 5.0 covers all 50 cycles" in out.stderr


SMALL_NET = textwrap.dedent(
    """\
    name: tiny
    dt_ms: 0.1
    synapses: {kind: coba}
    populations:
      - {name: E, n: 80, type: E, neuron: {model: lif}, drive: {bias_pa: 220.0}, record: 20}
      - {name: I, n: 20, type: I, neuron: {model: lif}, drive: {bias_pa: 220.0}}
    projections:
      - {pre: E, post: [E, I], rule: {kind: fixed_probability, p: 0.1}, weight: 3.0}
      - {pre: I, post: [E, I], rule: {kind: fixed_probability, p: 0.1}, weight: 30.0}
    """
)


def test_simulate_writes_a_store_that_observations_reads(tmp_path):
    from model import advance, build_network, default_params, initial_state
    from observations import open_store

    spec = tmp_path / "tiny.yaml"
    spec.write_text(SMALL_NET)
    out = tmp_path / "sim.zarr"
    res = spikeda(
        "simulate", spec, "--duration-s", "0.6", "--members", "2", "--seed", "4", "--out", out
    )
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.strip().splitlines()) == 1 and "simulated tiny" in res.stdout
    store = open_store(out)
    assert store.spikes.n_units == 2 * (20 + 20)  # 20 recorded E + all 20 I, per member
    assert store.attrs["members"] == 2 and store.attrs["wall_s"] > 0
    assert store.array("rates/rate_hz").shape == (2, 600, 2)
    # The store holds exactly what advance gives in one call (it ran in 0.5-s chunks).
    net = build_network(spec, 4)
    _, rec = advance(net, default_params(net, 2), initial_state(net, 2, 4), 0.0, 0.6, 4)
    t1, n1 = rec.member(1)
    unit = store.units["neuron"][store.units["member"] == 1]
    got = np.concatenate([store.spikes.train(k) for k in range(40, 80)])
    ids = np.repeat(unit, store.spikes.counts()[40:80])
    order = np.lexsort((ids, got))
    np.testing.assert_allclose(got[order], t1, atol=1e-12)
    np.testing.assert_array_equal(ids[order], n1)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--duration-s", "0"], "--duration-s must be > 0"),
        (["--duration-s", "0.00015"], "not a whole number of steps"),
        (["--duration-s", "0.1", "--members", "0"], "--members must be ≥ 1"),
    ],
)
def test_simulate_bad_arguments(tmp_path, args, message):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SMALL_NET)
    res = spikeda("simulate", spec, *args, "--out", tmp_path / "o.zarr")
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o.zarr").exists()


def test_simulate_bad_spec_names_the_field(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SMALL_NET.replace("post: [E, I], rule: {kind: fixed_probability, p: 0.1}, weight: 3.0",
                                      "post: [E, X], rule: {kind: fixed_probability, p: 0.1}, weight: 3.0"))  # fmt: skip
    res = spikeda("simulate", spec, "--duration-s", "0.1", "--out", tmp_path / "o.zarr")
    assert res.returncode == 2
    assert "projections[0].post: unknown population 'X' (have E, I)" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_simulate_refuses_to_overwrite(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SMALL_NET)
    out = tmp_path / "o.zarr"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    res = spikeda("simulate", spec, "--duration-s", "0.1", "--out", out)
    assert res.returncode == 2 and "exists already" in res.stderr
    assert (out / "keep.txt").read_text() == "user data"


def _sha(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_ingest_npz_from_the_command_line(tmp_path, rng):
    src = tmp_path / "rec.npz"
    dff = rng.normal(0.05, 0.01, size=(300, 4)).astype(np.float32)
    dff[10] = np.nan  # a dropped frame: allowed, counted
    np.savez(src, spike_times=np.sort(rng.uniform(0, 10, 50)), spike_units=rng.integers(0, 3, 50),
             t_stop_s=10.0, dff=dff, frame_rate_hz=30.0)  # fmt: skip
    before = _sha(src)
    out = tmp_path / "obs.zarr"
    res = spikeda("ingest", "npz", src, "-o", out, "--option", "indicator=GCaMP6f")
    assert res.returncode == 0, res.stderr
    assert "1 frames with NaN" in res.stdout and len(res.stdout.strip().splitlines()) == 1
    from observations import open_store

    store = open_store(out)
    np.testing.assert_array_equal(store.dff.values, dff)
    assert store.spikes.n_spikes == 50 and store.dff.attrs["indicator"] == "GCaMP6f"
    assert _sha(src) == before


@pytest.mark.parametrize(
    "write, args, message",
    [
        (lambda p: np.savez(p, spike_times=[0.5, -1.0], spike_units=[1, 1]), [], "is negative"),
        (
            lambda p: np.savez(p, spike_times=[0.5], spike_units=[1]),
            ["--option", "colour=red"],
            "colour",
        ),
        (lambda p: p.write_bytes(b"not a zip file"), [], "rec.npz"),
    ],
)
def test_ingest_bad_input_is_one_line_and_leaves_the_source(tmp_path, write, args, message):
    src = tmp_path / "rec.npz"
    write(src)
    before = _sha(src)
    res = spikeda("ingest", "npz", src, "-o", tmp_path / "obs.zarr", *args)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and message in res.stderr
    assert not (tmp_path / "obs.zarr").exists() and _sha(src) == before


def test_glmcc_from_the_command_line(tmp_path):
    """A simulated network's store in, a connectivity store out, readable with xarray."""
    import xarray as xr

    spec = tmp_path / "tiny.yaml"
    spec.write_text(SMALL_NET)
    obs = tmp_path / "sim.zarr"
    assert spikeda("simulate", spec, "--duration-s", "2", "--out", obs).returncode == 0
    out = tmp_path / "conn.zarr"
    res = spikeda("glmcc", obs, "-o", out, "--delay-ms", "scan", "--pairs", "0,1", "2,80")
    assert res.returncode == 0, res.stderr
    assert "glmcc (wald" in res.stdout and len(res.stdout.strip().splitlines()) == 1
    ds = xr.open_zarr(out, consolidated=False)
    assert set(ds.data_vars) >= {"J", "significant", "psp_mv", "status", "J_threshold"}
    assert ds.attrs["source_store"] == str(obs)
    assert str(ds.status.sel(pre=0, post=1).values) in ("ok", "insufficient_data")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--pairs", "0,999"], "expected PRE,POST unit ids"),
        (["--delay-ms", "soon"], "could not convert"),
    ],
)
def test_glmcc_bad_arguments(tmp_path, args, message):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SMALL_NET)
    obs = tmp_path / "sim.zarr"
    assert spikeda("simulate", spec, "--duration-s", "0.5", "--out", obs).returncode == 0
    res = spikeda("glmcc", obs, "-o", tmp_path / "c.zarr", *args)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "c.zarr").exists()
