"""Spike trains in CSR layout: the type GLMCC, the triplet map and the stores share.

One sorted float64 array of spike times (s) per unit, concatenated, with ``offsets``
(n_units + 1) marking where each unit's spikes start: memory is 8 bytes per spike plus
8 per unit, and a unit's train is a slice, never a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse


class SpikeTrainError(ValueError):
    """Spike data that cannot be used; the message names the unit and the index."""


@dataclass(frozen=True, eq=False)
class SpikeTrains:
    """Spike trains of ``n_units`` units over [t_start_s, t_stop_s].

    Attributes
    ----------
    times_s : (n_spikes,) float64
        Spike times, sorted within each unit.
    offsets : (n_units + 1,) int64
        Unit k's spikes are ``times_s[offsets[k]:offsets[k+1]]``.
    unit_ids : (n_units,) int64
        Identifier of each unit (e.g. a model neuron index or a sorter's cluster id).
    t_start_s, t_stop_s : float
        The recording interval; every spike lies inside it.
    """

    times_s: np.ndarray
    offsets: np.ndarray
    unit_ids: np.ndarray
    t_start_s: float
    t_stop_s: float

    def __post_init__(self):
        validate(self.times_s, self.offsets, self.unit_ids, self.t_start_s, self.t_stop_s)

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def from_pairs(
        cls, times_s, ids, t_start_s: float, t_stop_s: float, unit_ids=None
    ) -> SpikeTrains:
        """From (time, unit id) pairs in any order. ``unit_ids`` fixes the units (and
        their order) — units without spikes included; by default the sorted distinct ids."""
        times_s = np.asarray(times_s, dtype=np.float64).reshape(-1)
        ids = np.asarray(ids).reshape(-1)
        if times_s.shape != ids.shape:
            raise SpikeTrainError(f"times_s has {times_s.size} entries but ids has {ids.size}")
        _check_times(times_s, t_start_s, t_stop_s, "times_s")
        units = np.unique(ids) if unit_ids is None else np.asarray(unit_ids).reshape(-1)
        if np.unique(units).size != units.size:
            raise SpikeTrainError("unit_ids must be distinct")
        order_units = np.argsort(units, kind="stable")
        pos = np.searchsorted(units, ids, sorter=order_units)
        pos = np.clip(pos, 0, units.size - 1)
        found = units[order_units[pos]] == ids if units.size else np.zeros(ids.size, bool)
        if not found.all():
            k = int(np.flatnonzero(~found)[0])
            raise SpikeTrainError(f"ids[{k}] = {ids[k]} is not among unit_ids")
        unit_index = order_units[pos]
        order = np.lexsort((times_s, unit_index))
        offsets = np.zeros(units.size + 1, np.int64)
        np.cumsum(np.bincount(unit_index, minlength=units.size), out=offsets[1:])
        return cls(
            times_s[order], offsets, units.astype(np.int64), float(t_start_s), float(t_stop_s)
        )

    @classmethod
    def from_lists(
        cls, trains_s, unit_ids=None, t_start_s: float | None = None, t_stop_s: float | None = None
    ) -> SpikeTrains:
        """From one array of spike times per unit (each must already be sorted).

        ``t_start_s``/``t_stop_s`` default to 0 and the last spike.
        """
        trains = [np.asarray(t, dtype=np.float64).reshape(-1) for t in trains_s]
        for k, t in enumerate(trains):
            if t.size > 1 and np.any(np.diff(t) < 0):
                i = int(np.flatnonzero(np.diff(t) < 0)[0])
                raise SpikeTrainError(
                    f"unit {k}: spike times are not sorted at index {i + 1} ({t[i + 1]} < {t[i]})"
                )
        times = np.concatenate(trains) if trains else np.empty(0)
        t0 = 0.0 if t_start_s is None else float(t_start_s)
        t1 = (float(times.max()) if times.size else t0) if t_stop_s is None else float(t_stop_s)
        offsets = np.zeros(len(trains) + 1, np.int64)
        np.cumsum([t.size for t in trains], out=offsets[1:])
        ids = np.arange(len(trains)) if unit_ids is None else np.asarray(unit_ids)
        return cls(times, offsets, ids.astype(np.int64), t0, t1)

    # -- views --------------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        return self.offsets.size - 1

    @property
    def n_spikes(self) -> int:
        return int(self.offsets[-1])

    @property
    def duration_s(self) -> float:
        return self.t_stop_s - self.t_start_s

    def train(self, k: int) -> np.ndarray:
        """Spike times (s) of the unit at position ``k``."""
        return self.times_s[self.offsets[k] : self.offsets[k + 1]]

    def counts(self) -> np.ndarray:
        """Number of spikes of each unit (n_units,)."""
        return np.diff(self.offsets)

    def rates_hz(self) -> np.ndarray:
        """Mean firing rate of each unit (n_units,)."""
        return self.counts() / self.duration_s

    def select(self, positions) -> SpikeTrains:
        """The units at ``positions`` (indices into 0..n_units−1), in that order."""
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        trains = [self.train(k) for k in positions]
        return SpikeTrains.from_lists(
            trains, self.unit_ids[positions], self.t_start_s, self.t_stop_s
        )

    def between(self, t0_s: float, t1_s: float) -> SpikeTrains:
        """The spikes in the window (t0_s, t1_s] — the convention of assimilation windows and
        of the model's spike stamps — with the window as the new bounds. A spike at exactly
        the recording's t_start_s stays in the first window."""
        if not (self.t_start_s <= t0_s <= t1_s <= self.t_stop_s):
            raise SpikeTrainError(f"[{t0_s}, {t1_s}] is not inside [{self.t_start_s}, {self.t_stop_s}]")
        side = "left" if t0_s == self.t_start_s else "right"
        trains = []
        for k in range(self.n_units):
            t = self.train(k)
            trains.append(t[np.searchsorted(t, t0_s, side) : np.searchsorted(t, t1_s, "right")])
        return SpikeTrains.from_lists(trains, self.unit_ids, t0_s, t1_s)

    def followed_by(self, later: SpikeTrains) -> SpikeTrains:
        """One SpikeTrains over these spikes and ``later``'s, which must start where these
        end, with the same units (consecutive stretches of one recording or simulation)."""
        if not np.isclose(later.t_start_s, self.t_stop_s):
            raise SpikeTrainError(
                f"the stretch starts at {later.t_start_s} s, not where the last one ended "
                f"({self.t_stop_s} s)"
            )
        if not np.array_equal(later.unit_ids, self.unit_ids):
            raise SpikeTrainError("the stretch's units differ from the previous stretch's")
        trains = [np.concatenate([self.train(k), later.train(k)]) for k in range(self.n_units)]
        return SpikeTrains.from_lists(trains, self.unit_ids, self.t_start_s, later.t_stop_s)

    def to_arrays(self, prefix: str = "") -> dict:
        """The trains as named arrays (``times_s``, ``offsets``, ``unit_ids``, ``bounds_s``,
        each name after ``prefix``), for files of plain arrays; :meth:`from_arrays` reads
        them back."""
        return {prefix + "times_s": self.times_s, prefix + "offsets": self.offsets,
                prefix + "unit_ids": self.unit_ids,
                prefix + "bounds_s": np.array([self.t_start_s, self.t_stop_s])}  # fmt: skip

    @classmethod
    def from_arrays(cls, arrays: dict, prefix: str = "") -> SpikeTrains:
        t0, t1 = arrays[prefix + "bounds_s"]
        return cls(arrays[prefix + "times_s"], arrays[prefix + "offsets"],
                   arrays[prefix + "unit_ids"], float(t0), float(t1))  # fmt: skip

    def binned(self, bin_s: float, sparse: bool = False):
        """Spike counts in bins of ``bin_s`` from t_start_s: (n_units, n_bins) int32, dense
        or as a scipy.sparse CSR matrix (for long, sparse recordings). The last bin may be
        shorter; a spike at exactly t_stop_s falls into it."""
        if not bin_s > 0:
            raise SpikeTrainError(f"bin_s must be > 0, got {bin_s}")
        n_bins = max(int(np.ceil(self.duration_s / bin_s - 1e-9)), 1)
        b = np.minimum(((self.times_s - self.t_start_s) / bin_s).astype(np.int64), n_bins - 1)
        rows = np.repeat(np.arange(self.n_units), self.counts())
        mat = scipy.sparse.csr_matrix(
            (np.ones(b.size, np.int32), (rows, b)), shape=(self.n_units, n_bins), dtype=np.int32
        )
        mat.sum_duplicates()
        return mat if sparse else mat.toarray()


def _check_times(times_s: np.ndarray, t_start_s: float, t_stop_s: float, name: str) -> None:
    if not (np.isfinite(t_start_s) and np.isfinite(t_stop_s) and t_start_s <= t_stop_s):
        raise SpikeTrainError(f"need finite t_start_s ≤ t_stop_s, got [{t_start_s}, {t_stop_s}]")
    bad = ~np.isfinite(times_s)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SpikeTrainError(f"{name}[{i}] is not finite ({times_s[i]})")
    if times_s.size and times_s.min() < 0 and t_start_s >= 0:
        i = int(np.argmin(times_s))
        raise SpikeTrainError(f"{name}[{i}] = {times_s[i]} is negative")
    out = (times_s < t_start_s) | (times_s > t_stop_s)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise SpikeTrainError(f"{name}[{i}] = {times_s[i]} s is outside [{t_start_s}, {t_stop_s}]")


def validate(times_s, offsets, unit_ids, t_start_s, t_stop_s) -> None:
    """Check a CSR spike-train layout; raise SpikeTrainError naming the unit and index."""
    times_s, offsets, unit_ids = np.asarray(times_s), np.asarray(offsets), np.asarray(unit_ids)
    if times_s.ndim != 1 or offsets.ndim != 1 or unit_ids.ndim != 1:
        raise SpikeTrainError("times_s, offsets and unit_ids must be 1-D")
    if offsets.size != unit_ids.size + 1:
        raise SpikeTrainError(
            f"offsets has {offsets.size} entries, expected n_units + 1 = {unit_ids.size + 1}"
        )
    if offsets.size and (offsets[0] != 0 or offsets[-1] != times_s.size):
        raise SpikeTrainError(
            f"offsets must run from 0 to {times_s.size}, got {offsets[0]} … {offsets[-1]}"
        )
    if np.any(np.diff(offsets) < 0):
        k = int(np.flatnonzero(np.diff(offsets) < 0)[0])
        raise SpikeTrainError(f"offsets decrease at unit {k} ({offsets[k]} > {offsets[k + 1]})")
    _check_times(times_s, t_start_s, t_stop_s, "times_s")
    d = np.diff(times_s)
    unit_starts = np.zeros(times_s.size, bool)
    unit_starts[offsets[1:-1][offsets[1:-1] < times_s.size]] = True
    unsorted = (d < 0) & ~unit_starts[1:]
    if unsorted.any():
        i = int(np.flatnonzero(unsorted)[0]) + 1
        k = int(np.searchsorted(offsets, i, side="right") - 1)
        raise SpikeTrainError(
            f"unit {unit_ids[k]} (position {k}): spike times are not sorted at spike {i - offsets[k]} "
            f"({times_s[i]} < {times_s[i - 1]})"
        )
    if np.unique(unit_ids).size != unit_ids.size:
        raise SpikeTrainError("unit_ids must be distinct")
