"""``spikeda triplets`` and ``spikeda plot`` on a triplet store, run as a user runs them."""

import subprocess
import sys

import numpy as np
import pytest

from inference.triplet_sim import simulate_sources
from inference.triplet_theory import ThresholdLIF
from observations import SpikeTrains, write_store


def spikeda(*args):
    return subprocess.run([sys.executable, "-m", "enkf.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def obs(tmp_path_factory):
    """Five neurons: 0, 1, 2 share an excitatory source to each pair; 3, 4 independent."""
    neurons = [ThresholdLIF.from_rate(r) for r in (4.0, 5.0, 6.0, 5.0, 3.0)]
    sources = [(8.0, [6.0, 6.0, 0, 0, 0]), (8.0, [6.0, 0, 6.0, 0, 0]), (8.0, [0, 6.0, 6.0, 0, 0])]
    sp = simulate_sources(neurons, sources, 150.0, dt_ms=0.25, seed=11)
    sp = SpikeTrains.from_lists([sp.train(k) for k in range(5)], unit_ids=[7, 8, 9, 20, 21],
                                t_start_s=sp.t_start_s, t_stop_s=sp.t_stop_s)  # fmt: skip
    path = tmp_path_factory.mktemp("tri") / "obs.zarr"
    write_store(path, spikes=sp)
    return path


def test_triplets_then_plot(obs, tmp_path):
    import xarray as xr

    out = tmp_path / "tri.zarr"
    res = spikeda("triplets", obs, "-o", out, "--bin-ms", "5")
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.strip().splitlines()) == 1 and "10 triplets" in res.stdout
    ds = xr.open_zarr(out, consolidated=False)
    assert ds.attrs["kind"] == "triplets" and ds.attrs["source_store"] == str(obs)
    row = int(np.flatnonzero((ds.triplet_units.values == [7, 8, 9]).all(1))[0])
    assert ds.motif.values[row] == "E-pairs"
    assert float(ds.theta_pair_mean[row]) > 0 and float(ds.theta_123[row]) < 0
    assert bool(ds.significant[row])
    # The same output path again is refused, and the store is not touched.
    again = spikeda("triplets", obs, "-o", out)
    assert again.returncode == 2 and "exists already" in again.stderr
    plots = tmp_path / "plots"
    res = spikeda("plot", out, "-o", plots)
    assert res.returncode == 0, res.stderr
    png = plots / "triplet_map.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000


@pytest.mark.parametrize(
    "args, message",
    [
        (["--triplets", "7,8,99"], "expected three unit ids"),
        (["--triplets", "7,8"], "expected three unit ids"),
        (["--bin-ms", "1e6"], "longer than the recording"),
        (["--triplets", "7,7,8"], "must differ"),
    ],
)
def test_triplets_bad_arguments(obs, tmp_path, args, message):
    res = spikeda("triplets", obs, "-o", tmp_path / "t.zarr", *args)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "t.zarr").exists()
