"""Small configs and stores for the driver tests (kept tiny: 200 neurons, 16–20 members)."""

from __future__ import annotations

import copy
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

from enkf.driver import TIMING

NETWORK = {
    "name": "test_coba",
    "synapses": {"kind": "coba", "tau_e_ms": 5.0, "tau_i_ms": 10.0, "e_e_mv": 0.0, "e_i_mv": -80.0},
    "populations": [
        {"name": "E", "n": 160, "type": "E", "neuron": {"model": "lif"},
         "drive": {"bias_pa": {"mean": 180.0, "sd": 20.0}}},
        {"name": "I", "n": 40, "type": "I", "neuron": {"model": "lif"},
         "drive": {"bias_pa": {"mean": 180.0, "sd": 20.0}}},
    ],
    "projections": [
        {"pre": "E", "post": ["E", "I"], "rule": {"kind": "fixed_probability", "p": 0.1},
         "weight": 3.0, "delay_ms": 1.0},
        {"pre": "I", "post": ["E", "I"], "rule": {"kind": "fixed_probability", "p": 0.1},
         "weight": 40.0, "delay_ms": 1.0},
    ],
}  # fmt: skip

TWIN = {
    "name": "test_twin",
    "network": {"spec": NETWORK, "seed": 2},
    "parameters": [
        {"name": "w_EE", "weight_scale": ["E", "E"], "prior": {"mean": 1.0, "sd": 0.2}},
        {"name": "w_IE", "weight_scale": ["I", "E"], "prior": {"mean": 1.0, "sd": 0.2}},
        {"name": "drive_pa", "bias_pa": ["E", "I"], "prior": {"mean": 180.0, "sd": 20.0}},
    ],
    "observations": {"operator": {"kind": "calcium", "indicator": "GCaMP6s"},
                     "reduce": "population_mean"},
    "assimilation": {"members": 16, "window_s": 0.5, "start_s": 0.5, "cycles": 4, "seed": 3},
    "twin": {"truth": {"w_EE": 1.1, "w_IE": 0.9, "drive_pa": 175.0}, "seed": 5,
             "observed_neurons": 60},
    "cluster": {"kind": "local", "workers": 2},
}  # fmt: skip


def config(base=TWIN, **changes) -> dict:
    """A deep copy of ``base`` with dotted-path changes, e.g. ``{"assimilation.cycles": 3}``."""
    cfg = copy.deepcopy(base)
    for dotted, value in changes.items():
        node = cfg
        *head, last = dotted.split(".")
        for key in head:
            node = node[key]
        if value is None and last in node and dotted.endswith("!"):
            del node[last]
        else:
            node[last] = value
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def spikeda(*args, cwd=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "enkf.cli", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def tree_digest(path: Path) -> str:
    """Hash of every file's name and bytes under ``path`` (to show data left untouched)."""
    h = hashlib.blake2b(digest_size=16)
    for p in sorted(Path(path).rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def results(path) -> xr.Dataset:
    """A run's Dataset without the wall-time diagnostics, loaded into memory."""
    ds = xr.open_zarr(path, consolidated=False)
    return ds.drop_vars([v for v in TIMING if v in ds]).load()


def assert_identical(a: xr.Dataset, b: xr.Dataset) -> None:
    """Every variable equal bit for bit (NaN where NaN)."""
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        x, y = a[name].values, b[name].values
        assert x.shape == y.shape, name
        assert np.array_equal(x, y, equal_nan=True), f"{name} differs"
