"""The observation store: recorded spikes (and, later, calcium) in a Zarr v3 group.

Layout (schema ``spikeda.observations/1``, DESIGN.md)::

    obs.zarr/            attrs: schema, source, created, and what the writer adds
      spikes/times       (n_spikes,) float64, seconds, sorted within each unit
      spikes/offsets     (n_units + 1,) int64 — unit k is times[offsets[k]:offsets[k+1]]
      spikes/unit        (n_units,) int64 unit ids;  attrs t_start_s, t_stop_s
      units/<name>       (n_units, ...) per-unit metadata: position_um (n_units, 3),
                         cell_type ("E", "I", "unknown"), and any others
      <group>/<name>     further arrays a writer adds (e.g. population rates)

A store is written to a temporary name beside its destination and renamed into place when
complete, so a crash never leaves a half-written store that looks finished, and an
existing store is never overwritten. Stores are opened read-only and validated; every
error names the store, the array and the index.
"""

from __future__ import annotations

import datetime
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from observations.spikes import SpikeTrainError, SpikeTrains, validate

SCHEMA = "spikeda.observations/1"
CELL_TYPES = ("E", "I", "unknown")


class StoreError(ValueError):
    """An observation store that cannot be read or written; the message names what and where."""


@dataclass(frozen=True)
class ObservationStore:
    """An opened, validated observation store (read-only)."""

    path: Path
    attrs: dict
    spikes: SpikeTrains | None
    units: dict

    def array(self, name: str) -> np.ndarray:
        """Any other array of the store, e.g. ``rates/rate_hz``."""
        group = zarr.open_group(self.path, mode="r")
        try:
            return group[name][...]
        except KeyError:
            raise StoreError(f"{self.path}: no array {name!r}") from None


def write_store(path, spikes: SpikeTrains | None = None, units: dict | None = None,
                arrays: dict | None = None, attrs: dict | None = None, source: str = "spikeda") -> Path:  # fmt: skip
    """Write a new observation store atomically.

    Parameters
    ----------
    path : str or Path
        Destination (``*.zarr``); must not exist.
    spikes : SpikeTrains, optional
    units : dict of name → (n_units, ...) array, optional
        Per-unit metadata; ``cell_type`` values must be "E", "I" or "unknown".
    arrays : dict of "group/name" → array, optional
        Further arrays (e.g. ``{"rates/rate_hz": ...}``); an array's attrs can be given as
        a ``(array, attrs)`` pair.
    attrs : dict, optional
        Root attributes (JSON-serialisable).
    source : str
        What produced the data.
    """
    path = Path(path)
    if path.exists():
        raise StoreError(f"{path}: exists already; spikeda never overwrites a store")
    n_units = spikes.n_units if spikes is not None else None
    for name, values in (units or {}).items():
        values = np.asarray(values)
        if n_units is not None and values.shape[0] != n_units:
            raise StoreError(
                f"units/{name} has {values.shape[0]} rows but there are {n_units} units"
            )
        if name == "cell_type":
            bad = ~np.isin(values, CELL_TYPES)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise StoreError(
                    f"units/cell_type[{i}] = '{values[i]}'; expected one of {CELL_TYPES}"
                )
    tmp = path.with_name(f".{path.name}.incomplete-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        root = zarr.open_group(tmp, mode="w-", zarr_format=3)
        root.attrs.update({
            "schema": SCHEMA,
            "source": source,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            **(attrs or {}),
        })  # fmt: skip
        if spikes is not None:
            g = root.create_group("spikes")
            g.attrs.update(
                {"t_start_s": spikes.t_start_s, "t_stop_s": spikes.t_stop_s, "units": "s"}
            )
            _put(g, "times", spikes.times_s)
            _put(g, "offsets", spikes.offsets)
            _put(g, "unit", spikes.unit_ids)
        if units:
            g = root.create_group("units")
            for name, values in units.items():
                _put(g, name, np.asarray(values))
        for name, value in (arrays or {}).items():
            values, arr_attrs = value if isinstance(value, tuple) else (value, {})
            group, _, leaf = name.rpartition("/")
            parent = root.require_group(group) if group else root
            arr = _put(parent, leaf, np.asarray(values))
            arr.attrs.update(arr_attrs)
        os.replace(tmp, path)  # the store appears complete or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _put(group, name: str, values: np.ndarray):
    if values.dtype.kind in "UO":
        arr = group.create_array(name, shape=values.shape, dtype=str)
        arr[...] = values.astype(object)
        return arr
    arr = group.create_array(name, shape=values.shape, dtype=values.dtype)
    if values.size:
        arr[...] = values
    return arr


def open_store(path) -> ObservationStore:
    """Open an observation store read-only and validate it.

    Raises
    ------
    StoreError
        Naming the store, the array and the first offending index (unsorted or negative
        spike times, offsets that do not match, a wrong schema, ...).
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
    units = {}
    if "units" in root:
        for name, arr in root["units"].arrays():
            values = arr[...]
            if spikes is not None and values.shape[0] != spikes.n_units:
                raise StoreError(
                    f"{path}: units/{name} has {values.shape[0]} rows, spikes has {spikes.n_units} units"
                )
            units[name] = values
    return ObservationStore(path, attrs, spikes, units)
