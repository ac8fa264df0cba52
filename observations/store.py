"""The observation store: recorded spikes and calcium imaging in a Zarr v3 group.

Layout (schema ``spikeda.observations/1``, DESIGN.md)::

    obs.zarr/            attrs: schema, source, created, and what the writer adds
      calcium/dff        (time, neuron) float32 ΔF/F as a fraction, chunked (1024, 512);
                         attrs frame_rate_hz, indicator
      calcium/time       (time,) float64, s, strictly increasing
      calcium/neuron     (neuron,) int64 ids
      spikes/times       (n_spikes,) float64, s, sorted within each unit
      spikes/offsets     (n_units + 1,) int64 — unit k is times[offsets[k]:offsets[k+1]]
      spikes/unit        (n_units,) int64 unit ids;  attrs t_start_s, t_stop_s
      units/<name>       (n_units, ...) per-unit metadata: position_um (n_units, 3),
                         cell_type ("E", "I", "unknown"), and any others
      <group>/<name>     further arrays a writer adds (e.g. population rates)

Arrays carry Zarr v3 dimension names, so ``xarray.open_zarr(path, group="calcium")``
gives the ΔF/F as a Dataset with its coordinates.

A store is written to a temporary name beside its destination (:class:`StoreWriter`)
and renamed into place when complete, so a crash never leaves a half-written store that
looks finished, and an existing store is never overwritten. Stores are opened read-only
and validated; every error names the store, the array and the index. NaN frames in the
calcium are allowed (a dropped frame, a motion artefact): they are counted in the QC
report of :func:`validate_store`, and the operators and filters skip them.
"""

from __future__ import annotations

import datetime
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from observations.spikes import SpikeTrainError, SpikeTrains, validate

SCHEMA = "spikeda.observations/1"
CELL_TYPES = ("E", "I", "unknown")
CALCIUM_CHUNKS = (1024, 512)


class StoreError(ValueError):
    """An observation store that cannot be read or written; the message names what and where."""


def _has_inf(block: np.ndarray) -> bool:
    """Whether ``block`` holds ±inf (NaN ignored), without a mask as large as the block."""
    if block.size == 0:
        return False
    return bool(
        np.isinf(np.fmax.reduce(block, axis=None)) or np.isinf(np.fmin.reduce(block, axis=None))
    )


def _put(group, name: str, values: np.ndarray, dims=None):
    values = np.asarray(values)
    kw = {"dimension_names": tuple(dims)} if dims else {}
    if values.dtype.kind in "UO":
        arr = group.create_array(name, shape=values.shape, dtype=str, **kw)
        arr[...] = values.astype(object)
        return arr
    arr = group.create_array(name, shape=values.shape, dtype=values.dtype, **kw)
    if values.size:
        arr[...] = values
    return arr


class StoreWriter:
    """Write a new observation store piece by piece; it appears at ``path`` on :meth:`commit`.

    Use it as a context manager: the store is committed when the block ends normally and
    the temporary is removed if it raises. Calcium can be appended block by block
    (:meth:`start_calcium`, :meth:`append_frames`), so an ingester's memory is bounded by
    its block, not by the recording.
    """

    def __init__(self, path, source: str = "spikeda", attrs: dict | None = None):
        self.path = Path(path)
        if self.path.exists():
            raise StoreError(f"{self.path}: exists already; spikeda never overwrites a store")
        self.tmp = self.path.with_name(f".{self.path.name}.incomplete-{os.getpid()}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.root = zarr.open_group(self.tmp, mode="w-", zarr_format=3)
        self.root.attrs.update({
            "schema": SCHEMA,
            "source": source,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            **(attrs or {}),
        })  # fmt: skip
        self._n_units = None
        self._calcium = None
        self._last_time = -np.inf

    # -- context management -------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False

    def commit(self) -> Path:
        """Make the store visible under its name (an atomic rename)."""
        if self.path.exists():
            self.abort()
            raise StoreError(f"{self.path}: appeared while writing; not overwritten")
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- content ------------------------------------------------------------------------
    def attrs(self, **values) -> None:
        self.root.attrs.update(values)

    def spikes(self, spikes: SpikeTrains) -> None:
        g = self.root.create_group("spikes")
        g.attrs.update({"t_start_s": spikes.t_start_s, "t_stop_s": spikes.t_stop_s, "units": "s"})
        _put(g, "times", spikes.times_s, ("spike",))
        _put(g, "offsets", spikes.offsets, ("unit_edge",))
        _put(g, "unit", spikes.unit_ids, ("unit",))
        self._n_units = spikes.n_units

    def units(self, values: dict) -> None:
        """Per-unit metadata, one row per unit of the spikes (or per calcium neuron)."""
        g = self.root.require_group("units")
        for name, v in values.items():
            v = np.asarray(v)
            n = self._n_units
            if n is not None and v.shape[0] != n:
                raise StoreError(f"units/{name} has {v.shape[0]} rows but there are {n} units")
            if name == "cell_type":
                bad = ~np.isin(v, CELL_TYPES)
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise StoreError(
                        f"units/cell_type[{i}] = '{v[i]}'; expected one of {CELL_TYPES}"
                    )
            _put(g, name, v, ("unit",) + tuple(f"{name}_{k}" for k in range(1, v.ndim)))

    def array(self, name: str, values, attrs: dict | None = None, dims=None) -> None:
        """Any further array, ``group/name``."""
        group, _, leaf = name.rpartition("/")
        parent = self.root.require_group(group) if group else self.root
        arr = _put(parent, leaf, np.asarray(values), dims)
        arr.attrs.update(attrs or {})

    def start_calcium(self, neuron_ids, frame_rate_hz: float, indicator: str = "unknown",
                      chunks=CALCIUM_CHUNKS, attrs: dict | None = None, times_s=None) -> None:  # fmt: skip
        """Create ``calcium/`` for ``len(neuron_ids)`` neurons.

        Without ``times_s`` the frames follow by :meth:`append_frames` (time blocks). With
        ``times_s`` (all frame times, s) the array is allocated at its full size and filled
        by :meth:`write_neurons` (neuron blocks) — for ingesters whose processing runs along
        time, neuron by neuron (baselines).
        """
        ids = np.asarray(neuron_ids, dtype=np.int64).reshape(-1)
        if np.unique(ids).size != ids.size:
            raise StoreError("calcium neuron ids must be distinct")
        if not (np.isfinite(frame_rate_hz) and frame_rate_hz > 0):
            raise StoreError(f"frame_rate_hz must be > 0, got {frame_rate_hz}")
        g = self.root.create_group("calcium")
        g.attrs.update(
            {"frame_rate_hz": float(frame_rate_hz), "indicator": indicator, **(attrs or {})}
        )
        ct, cn = chunks[0], min(chunks[1], max(ids.size, 1))
        n_frames = 0 if times_s is None else len(times_s)
        dff = g.create_array("dff", shape=(n_frames, ids.size), chunks=(ct, cn), dtype="float32",
                             dimension_names=("time", "neuron"), fill_value=np.nan)  # fmt: skip
        dff.attrs.update(
            {
                "units": "fraction (0.1 = 10 %)",
                "frame_rate_hz": float(frame_rate_hz),
                "indicator": indicator,
            }
        )
        tarr = g.create_array(
            "time", shape=(0,), chunks=(ct,), dtype="float64", dimension_names=("time",)
        )
        tarr.attrs["units"] = "s"
        _put(g, "neuron", ids, ("neuron",))
        self._calcium = g
        if times_s is not None:
            self._append_times(np.asarray(times_s, dtype=np.float64).reshape(-1))

    def _append_times(self, times_s: np.ndarray) -> None:
        prev = np.concatenate([[self._last_time], times_s])
        bad = ~(np.isfinite(times_s) & (np.diff(prev) > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            k = self._calcium["time"].shape[0] + i
            raise StoreError(
                f"calcium/time[{k}] = {times_s[i]} is not after the previous frame ({prev[i]})"
            )
        self._calcium["time"].append(times_s)
        if times_s.size:
            self._last_time = times_s[-1]

    def write_neurons(self, first: int, dff) -> None:
        """Write ΔF/F of neurons ``first … first + k − 1`` for every frame: ``dff`` (n_frames, k).

        Only after :meth:`start_calcium` with ``times_s``. Blocks of 512 neurons match the
        chunks and write fastest.
        """
        if self._calcium is None or self._calcium["time"].shape[0] != self._calcium["dff"].shape[0]:
            raise StoreError("call start_calcium(..., times_s=...) before write_neurons")
        arr = self._calcium["dff"]
        dff = np.asarray(dff, dtype=np.float32)
        T, N = arr.shape
        if dff.ndim != 2 or dff.shape[0] != T or not 0 <= first <= first + dff.shape[1] <= N:
            raise StoreError(
                f"a block of neurons must be ({T}, k) within {N} neurons, got {dff.shape} at {first}"
            )
        if _has_inf(dff):
            f, j = np.argwhere(np.isinf(dff))[0]
            raise StoreError(f"calcium/dff is infinite at frame {f}, neuron {first + j}")
        arr[:, first : first + dff.shape[1]] = dff

    def append_frames(self, dff, times_s) -> None:
        """Append frames: ``dff`` (k, n_neurons) ΔF/F, ``times_s`` (k,) after every earlier frame.

        NaN values are allowed (missing frames); ±inf and non-increasing times are errors.
        Append in multiples of the time chunk (1024 frames) for the fastest writes.
        """
        if self._calcium is None:
            raise StoreError("call start_calcium before append_frames")
        dff = np.asarray(dff, dtype=np.float32)
        times_s = np.asarray(times_s, dtype=np.float64).reshape(-1)
        n = self._calcium["neuron"].shape[0]
        if dff.ndim != 2 or dff.shape != (times_s.size, n):
            raise StoreError(f"a block of frames must be ({times_s.size}, {n}), got {dff.shape}")
        if _has_inf(dff):
            f, j = np.argwhere(np.isinf(dff))[0]
            raise StoreError(
                f"calcium/dff is infinite at frame {self._calcium['time'].shape[0] + f}, neuron {j}"
            )
        self._append_times(times_s)
        self._calcium["dff"].append(dff, axis=0)


def write_store(path, spikes: SpikeTrains | None = None, units: dict | None = None,
                arrays: dict | None = None, attrs: dict | None = None, source: str = "spikeda",
                dff=None) -> Path:  # fmt: skip
    """Write a new observation store atomically, in one call.

    Parameters
    ----------
    path : str or Path
        Destination (``*.zarr``); must not exist.
    spikes : SpikeTrains, optional
    units : dict of name → (n_units, ...) array, optional
        Per-unit metadata; ``cell_type`` values must be "E", "I" or "unknown".
    arrays : dict of "group/name" → array or (array, attrs), optional
    attrs : dict, optional
        Root attributes (JSON-serialisable).
    source : str
        What produced the data.
    dff : xarray.DataArray, optional
        Calcium ΔF/F with dims (time, neuron), coords time (s) and neuron, attrs
        frame_rate_hz and indicator; written in chunks of 1024 frames.
    """
    with StoreWriter(path, source, attrs) as w:
        if spikes is not None:
            w.spikes(spikes)
        if units:
            w.units(units)
        for name, value in (arrays or {}).items():
            values, arr_attrs = value if isinstance(value, tuple) else (value, {})
            w.array(name, values, arr_attrs)
        if dff is not None:
            if tuple(dff.dims) != ("time", "neuron"):
                raise StoreError(f"dff must have dims ('time', 'neuron'), got {tuple(dff.dims)}")
            w.start_calcium(dff["neuron"].values, dff.attrs.get("frame_rate_hz", np.nan),
                            dff.attrs.get("indicator", "unknown"))  # fmt: skip
            step = CALCIUM_CHUNKS[0]
            for a in range(0, dff.sizes["time"], step):
                block = dff.isel(time=slice(a, a + step))
                w.append_frames(block.values, block["time"].values)
    return Path(path)


@dataclass(frozen=True)
class ObservationStore:
    """An opened, validated observation store (read-only)."""

    path: Path
    attrs: dict
    spikes: SpikeTrains | None
    units: dict
    has_calcium: bool = False
    calcium_attrs: dict = field(default_factory=dict)

    @property
    def dff(self):
        """Calcium ΔF/F as a lazy (dask-backed) xarray.DataArray (time, neuron)."""
        if not self.has_calcium:
            raise StoreError(f"{self.path}: has no calcium/")
        import xarray as xr

        ds = xr.open_zarr(self.path, group="calcium", consolidated=False)
        da = ds["dff"]
        da.attrs.update(self.calcium_attrs)
        return da

    def array(self, name: str) -> np.ndarray:
        """Any other array of the store, e.g. ``rates/rate_hz``."""
        group = zarr.open_group(self.path, mode="r")
        try:
            return group[name][...]
        except KeyError:
            raise StoreError(f"{self.path}: no array {name!r}") from None


def _check_calcium(path: Path, g) -> dict:
    for name in ("dff", "time", "neuron"):
        if name not in g:
            raise StoreError(f"{path}: calcium/ lacks the array {name!r}")
    dff, time, neuron = g["dff"], g["time"], g["neuron"]
    dims = tuple(dff.metadata.dimension_names or ())
    if dff.ndim != 2 or dims != ("time", "neuron"):
        raise StoreError(
            f"{path}: calcium/dff must have dims ('time', 'neuron'), got {dims or dff.shape}"
        )
    if time.shape != (dff.shape[0],) or neuron.shape != (dff.shape[1],):
        raise StoreError(
            f"{path}: calcium/dff is {dff.shape} but calcium/time has {time.shape[0]} frames "
            f"and calcium/neuron {neuron.shape[0]} neurons"
        )
    t = time[...]
    bad = ~np.isfinite(t)
    if bad.any():
        raise StoreError(f"{path}: calcium/time[{int(np.flatnonzero(bad)[0])}] is not finite")
    if t.size > 1 and np.any(np.diff(t) <= 0):
        i = int(np.flatnonzero(np.diff(t) <= 0)[0]) + 1
        raise StoreError(
            f"{path}: calcium/time is not increasing at frame {i} ({t[i]} after {t[i - 1]})"
        )
    ids = neuron[...]
    if np.unique(ids).size != ids.size:
        raise StoreError(f"{path}: calcium/neuron ids are not distinct")
    rate = g.attrs.get("frame_rate_hz")
    if rate is None or not rate > 0:
        raise StoreError(f"{path}: calcium attrs need frame_rate_hz > 0, got {rate}")
    return dict(g.attrs)


def open_store(path) -> ObservationStore:
    """Open an observation store read-only and validate its structure.

    Checks the schema, the spike trains (sorted, non-negative, inside [t_start, t_stop],
    offsets consistent), the calcium layout (dims, increasing time, distinct ids) and the
    unit metadata. The frame-by-frame scan of ΔF/F (NaN and ±inf) is :func:`validate_store`.

    Raises
    ------
    StoreError
        Naming the store, the array and the first offending index.
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(f"{path}: no such store")
    try:
        root = zarr.open_group(path, mode="r")
    except Exception as exc:  # zarr raises several types for a folder that is not a group
        raise StoreError(f"{path}: not a Zarr group ({type(exc).__name__}: {exc})") from None
    attrs = dict(root.attrs)
    if attrs.get("schema") != SCHEMA:
        raise StoreError(f"{path}: attrs.schema is {attrs.get('schema')!r}, expected {SCHEMA!r}")
    spikes = None
    if "spikes" in root:
        g = root["spikes"]
        try:
            times, offsets, unit = g["times"][...], g["offsets"][...], g["unit"][...]
        except KeyError as exc:
            raise StoreError(f"{path}: spikes/ lacks the array {exc}") from None
        t0, t1 = g.attrs.get("t_start_s"), g.attrs.get("t_stop_s")
        if t0 is None or t1 is None:
            raise StoreError(f"{path}: spikes/ attrs need t_start_s and t_stop_s")
        try:
            validate(times, offsets, unit, t0, t1)
        except SpikeTrainError as exc:
            raise StoreError(f"{path}: spikes: {exc}") from None
        spikes = SpikeTrains(
            times.astype(np.float64),
            offsets.astype(np.int64),
            unit.astype(np.int64),
            float(t0),
            float(t1),
        )
    calcium_attrs = _check_calcium(path, root["calcium"]) if "calcium" in root else {}
    units = {}
    if "units" in root:
        for name, arr in root["units"].arrays():
            values = arr[...]
            if spikes is not None and values.shape[0] != spikes.n_units:
                raise StoreError(
                    f"{path}: units/{name} has {values.shape[0]} rows, spikes has {spikes.n_units} units"
                )
            units[name] = values
    return ObservationStore(path, attrs, spikes, units, "calcium" in root, calcium_attrs)


@dataclass(frozen=True)
class QCReport:
    """Frame-level quality of the calcium of a store."""

    n_frames: int
    n_neurons: int
    nan_frames: int
    """Frames with at least one NaN value."""
    nan_values_per_neuron: np.ndarray
    """(n_neurons,) NaN count of each neuron."""

    def line(self) -> str:
        worst = int(self.nan_values_per_neuron.max()) if self.n_neurons else 0
        return (
            f"{self.n_frames} frames × {self.n_neurons} neurons; {self.nan_frames} frames with NaN "
            f"(masked), at most {worst} NaN values in one neuron"
        )


def validate_store(
    path, block_frames: int = CALCIUM_CHUNKS[0] * 4
) -> tuple[ObservationStore, QCReport | None]:
    """:func:`open_store` plus a block-by-block scan of ΔF/F: ±inf is an error naming the
    frame and neuron; NaN is counted in the QC report. Memory is bounded by the block."""
    store = open_store(path)
    if not store.has_calcium:
        return store, None
    arr = zarr.open_group(store.path, mode="r")["calcium/dff"]
    T, N = arr.shape
    nan_frames = 0
    per_neuron = np.zeros(N, np.int64)
    for a in range(0, T, block_frames):
        block = arr[a : a + block_frames]
        if _has_inf(block):
            f, j = np.argwhere(np.isinf(block))[0]
            raise StoreError(f"{store.path}: calcium/dff is infinite at frame {a + f}, neuron {j}")
        isnan = np.isnan(block)
        nan_frames += int(isnan.any(axis=1).sum())
        per_neuron += isnan.sum(axis=0)
    return store, QCReport(T, N, nan_frames, per_neuron)
