"""run.zarr: the results of an assimilation run, one cycle at a time.

The store is created whole at the start (every array at its final size, NaN where a
cycle has not run yet, one chunk per cycle), then each cycle writes its own chunks and
finally raises ``attrs["completed_cycles"]`` — the completion marker, written last, so a
crash never leaves a half-written cycle that counts as complete. Zarr writes every file
through a temporary and a rename, so the marker itself is never half-written either.
A notebook can open the store while the run goes on: ``open_run`` gives the complete
cycles only.

Layout (dims in brackets; physical units in each variable's ``units`` attr)::

    param           [cycle, stage, member, parameter]  stage = forecast | analysis
    param_truth     [parameter]                       twin only
    prior_mean, prior_low, prior_high [parameter]     the prior and its central 95 %
    y, hx_mean, hx_sd, innovation, obs_error_var, obs_time [cycle, obs]
    hx_truth        [cycle, obs]                     twin only (noise-free)
    trace_time      [cycle, frame]; trace_y, trace_hx_mean, trace_hx_sd, trace_truth
                    [cycle, frame, trace_neuron]     a few neurons frame by frame
    rate_hz         [cycle, member, population]      mean rate over the window
    rate_truth_hz   [cycle, population]              twin only
    v_obs           [cycle, stage, member, neuron]   membrane of observed neurons (states)
    spread_f, spread_a, rmse_obs, obs_spread, innovation_ratio, inflation, n_obs,
    n_replaced, forecast_s, analysis_s, io_s, cycle_s, task_compute_s, task_io_s [cycle]
    checkpoint/     member states for a restart (see enkf.driver.members)
"""

from __future__ import annotations

import datetime
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from enkf.config import ConfigError
from enkf.driver.statistics import TripletStatistic

SCHEMA = "spikeda.run/1"
KIND = "run"
#: Wall-time diagnostics: the only variables of a run that differ between two runs of one
#: config (everything else is bit-identical, whatever the cluster or interruptions).
TIMING = ("forecast_s", "analysis_s", "io_s", "cycle_s", "task_compute_s", "task_io_s")

DIAGNOSTICS = {
    "spread_f": (
        "1",
        "forecast spread: rms over parameters of the ensemble sd in the transformed space",
    ),
    "spread_a": ("1", "analysis spread, as spread_f"),
    "rmse_obs": ("obs", "RMS of y − hx_mean over the observations used"),
    "obs_spread": ("obs", "RMS of hx_sd over the observations used"),
    "innovation_ratio": (
        "1",
        "mean of (y − hx_mean)² / (hx_sd² + R): about 1 for a consistent filter",
    ),
    "inflation": ("1", "inflation applied (factor or alpha)"),
    "n_obs": ("1", "observations used (not NaN)"),
    "n_replaced": ("1", "members replaced by the nonfinite policy"),
    "forecast_s": ("s", "wall time from submitting the forecasts to the last result"),
    "analysis_s": ("s", "wall time of the analysis on the driver"),
    "io_s": ("s", "wall time of the driver's reads and writes (observations, run.zarr)"),
    "cycle_s": ("s", "wall time of the whole cycle"),
    "task_compute_s": ("s", "sum over tasks of the time in advance and the operator"),
    "task_io_s": ("s", "sum over tasks of the time reading and writing member states"),
}


@dataclass
class Layout:
    """Sizes and coordinates of a run's store."""

    n_cycles: int
    members: int
    params: list[str]
    param_units: list[str]
    populations: list[str]
    obs_neuron: np.ndarray  # (n_obs,) model neuron of each observation
    obs_unit: np.ndarray  # (n_obs,) store id
    obs_frame: np.ndarray  # (n_obs,) frame index within the window (0 for window means)
    obs_population: np.ndarray  # (n_obs,) population of the neuron (or group) observed
    obs_regressor: np.ndarray  # (n_obs,) mean / slope_E / ... for the population reductions
    obs_units: str
    max_frames: int
    trace_neuron: np.ndarray
    trace_unit: np.ndarray
    neurons: np.ndarray  # observed model neurons
    twin: bool
    states: bool
    extra: dict = field(default_factory=dict)
    links: np.ndarray = field(default_factory=lambda: np.empty((0, 2), np.int64))
    """(L, 2) model neurons (pre, post) of the links whose GLMCC J is assimilated."""
    triplets: np.ndarray = field(default_factory=lambda: np.empty((0, 3), np.int64))
    """(T, 3) model neurons of the triplets whose θ_ij and θ_123 are assimilated."""


def _strings(values) -> np.ndarray:
    return np.array(list(values), dtype=object)


def skeleton(lay: Layout, attrs: dict) -> xr.Dataset:
    """The Dataset of a run before its first cycle: NaN everywhere a cycle writes."""
    C, M, P = lay.n_cycles, lay.members, len(lay.params)
    O, F, T, K = lay.obs_frame.size, lay.max_frames, lay.trace_neuron.size, len(lay.populations)
    nan = lambda *shape: np.full(shape, np.nan)  # noqa: E731
    ou = lay.obs_units
    v = {
        "param": (
            ("cycle", "stage", "member", "parameter"),
            nan(C, 2, M, P),
            {"units": "see param_units"},
        ),
        "prior_mean": (("parameter",), nan(P), {"units": "see param_units"}),
        "prior_low": (
            ("parameter",),
            nan(P),
            {"units": "see param_units", "long_name": "prior 2.5 % quantile"},
        ),
        "prior_high": (
            ("parameter",),
            nan(P),
            {"units": "see param_units", "long_name": "prior 97.5 % quantile"},
        ),
        "y": (
            ("cycle", "obs"),
            nan(C, O),
            {"units": ou, "long_name": "observations (NaN: masked)"},
        ),
        "hx_mean": (
            ("cycle", "obs"),
            nan(C, O),
            {"units": ou, "long_name": "forecast ensemble mean of H(x)"},
        ),
        "hx_sd": (
            ("cycle", "obs"),
            nan(C, O),
            {"units": ou, "long_name": "forecast ensemble sd of H(x)"},
        ),
        "innovation": (("cycle", "obs"), nan(C, O), {"units": ou, "long_name": "y − hx_mean"}),
        "obs_error_var": (("cycle", "obs"), nan(C, O), {"units": f"({ou})²"}),
        "obs_time": (("cycle", "obs"), nan(C, O), {"units": "s"}),
        "trace_time": (("cycle", "frame"), nan(C, F), {"units": "s"}),
        "trace_y": (("cycle", "frame", "trace_neuron"), nan(C, F, T), {"units": ou}),
        "trace_hx_mean": (("cycle", "frame", "trace_neuron"), nan(C, F, T), {"units": ou}),
        "trace_hx_sd": (("cycle", "frame", "trace_neuron"), nan(C, F, T), {"units": ou}),
        "rate_hz": (("cycle", "member", "population"), nan(C, M, K), {"units": "Hz"}),
        "window_start_s": (("cycle",), nan(C), {"units": "s"}),
        "window_end_s": (("cycle",), nan(C), {"units": "s"}),
    }
    for name, (units, text) in DIAGNOSTICS.items():
        v[name] = (
            ("cycle",),
            nan(C),
            {"units": ou if units == "obs" else units, "long_name": text},
        )
    if lay.twin:
        v["param_truth"] = (("parameter",), nan(P), {"units": "see param_units"})
        v["hx_truth"] = (
            ("cycle", "obs"),
            nan(C, O),
            {"units": ou, "long_name": "the truth's H(x), noise-free"},
        )
        v["trace_truth"] = (("cycle", "frame", "trace_neuron"), nan(C, F, T), {"units": ou})
        v["rate_truth_hz"] = (("cycle", "population"), nan(C, K), {"units": "Hz"})
    # the estimators' statistics assimilated beside the activity (enkf.driver.statistics)
    for prefix, dims, shape, what in (
        ("link", ("link",), (len(lay.links),), "GLMCC J"),
        ("triplet", ("triplet", "interaction"), (len(lay.triplets), 4), "the triplet map's θ"),
    ):
        if not shape[0]:
            continue
        for name, text in (("y", f"{what} of the recording over the span the members simulated"),
                           ("hx_mean", f"ensemble mean of the members' {what}"),
                           ("hx_sd", f"ensemble sd of the members' {what}"),
                           ("error_var", "error variance: (the recording's SE² + the members' mean SE²) × the number of cycles that assimilate it")):  # fmt: skip
            v[f"{prefix}_{name}"] = (("cycle", *dims), nan(C, *shape), {"units": "1", "long_name": text})
    if lay.states:
        v["v_obs"] = (
            ("cycle", "stage", "member", "neuron"),
            nan(C, 2, M, lay.neurons.size),
            {"units": "mV"},
        )
    coords = {
        "cycle": np.arange(C),
        "stage": _strings(["forecast", "analysis"]),
        "member": np.arange(M),
        "parameter": _strings(lay.params),
        "param_units": ("parameter", _strings(lay.param_units)),
        "population": _strings(lay.populations),
        "obs_neuron": ("obs", lay.obs_neuron.astype(np.int64)),
        "obs_unit": ("obs", lay.obs_unit.astype(np.int64)),
        "obs_frame": ("obs", lay.obs_frame.astype(np.int64)),
        "obs_population": ("obs", _strings(lay.obs_population)),
        "obs_regressor": ("obs", _strings(lay.obs_regressor)),
        "trace_neuron": lay.trace_neuron.astype(np.int64),
        "trace_unit": ("trace_neuron", lay.trace_unit.astype(np.int64)),
        "neuron": lay.neurons.astype(np.int64),
    }
    if len(lay.links):
        coords["link_pre_neuron"] = ("link", np.asarray(lay.links)[:, 0].astype(np.int64))
        coords["link_post_neuron"] = ("link", np.asarray(lay.links)[:, 1].astype(np.int64))
    if len(lay.triplets):
        coords["triplet_neuron"] = (("triplet", "vertex"), np.asarray(lay.triplets, np.int64))
        coords["interaction"] = _strings(TripletStatistic.INTERACTIONS)
    ds = xr.Dataset({k: xr.Variable(d, a, at) for k, (d, a, at) in v.items()}, coords=coords)
    ds.attrs.update(attrs)
    ds.attrs.update({"kind": KIND, "schema": SCHEMA, "completed_cycles": 0, "n_cycles": C})
    return ds


def is_run(path: Path) -> bool:
    """Whether ``path`` is a spikeda run store (attrs kind = "run")."""
    try:
        return zarr.open_group(path, mode="r").attrs.get("kind") == KIND
    except Exception:  # anything that is not a readable Zarr group is not a run
        return False


def create(path: Path, ds: xr.Dataset, static: dict) -> RunStore:
    """Write the skeleton at ``path`` (a new folder, or one holding only a twin's store),
    then the ``static`` arrays known before the first cycle (name → full array)."""
    enc = {}
    for name, var in ds.data_vars.items():
        if var.dims and var.dims[0] == "cycle":
            enc[name] = {"chunks": (1,) + var.shape[1:]}
    if (path / "zarr.json").exists():
        raise ConfigError(f"{path}: holds a Zarr group already")
    ds.to_zarr(path, mode="a", zarr_format=3, consolidated=False, encoding=enc)
    (path / "checkpoint").mkdir()
    zarr.open_group(path / "checkpoint", mode="w", zarr_format=3).attrs["about"] = (
        "member states for a restart: slot{k mod 2}/m<member>.state hold the state at the "
        "start of cycle k"
    )
    store = RunStore(path)
    for name, value in static.items():
        store.root[name][...] = value
    return store


def remove_run(path: Path) -> None:
    """Delete a run store (only ever called on a path that :func:`is_run`)."""
    shutil.rmtree(path)


class RunStore:
    """A run.zarr opened for writing cycles."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not is_run(self.path):
            raise ConfigError(f"{self.path}: not a spikeda run (attrs kind != 'run')")
        self.root = zarr.open_group(self.path, mode="r+")

    @property
    def attrs(self) -> dict:
        return dict(self.root.attrs)

    @property
    def completed(self) -> int:
        return int(self.root.attrs.get("completed_cycles", 0))

    def slot(self, cycle: int) -> Path:
        """Folder of the member states at the start of ``cycle``."""
        return self.path / "checkpoint" / f"slot{cycle % 2}"

    def write_cycle(self, k: int, values: dict) -> None:
        """Write cycle ``k`` of each named array (name → value without the cycle axis)."""
        for name, value in values.items():
            self.root[name][k] = value

    def mark_complete(self, k: int, **attrs) -> None:
        """Cycle ``k`` is complete: its results and the member states it produced are written."""
        self.root.attrs.update({"completed_cycles": k + 1, **attrs})

    def read(self, name: str, k: int | None = None) -> np.ndarray:
        arr = self.root[name]
        return arr[...] if k is None else arr[k]


def open_run(path) -> xr.Dataset:
    """The complete cycles of a run as an xarray Dataset (safe while the run goes on)."""
    ds = xr.open_zarr(path, consolidated=False)
    n = int(ds.attrs.get("completed_cycles", 0))
    return ds.isel(cycle=slice(0, n))


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
