"""The estimators' statistics as observations: GLMCC's J of links, the triplet map's θ of
triplets (``constraints.glmcc.observe``, ``constraints.triplets.observe``).

A statistic needs many spikes, more than one window holds, so each member accumulates its
sufficient statistics from its own simulated spikes of the observed neurons, window after
window, in its state file beside the model state (:mod:`enkf.driver.members`); they add up
exactly across windows (:class:`inference.glmcc.PairAccumulator`,
:class:`inference.triplets.TripletAccumulator`). From a chosen cycle on, the driver fits
each member's statistic and the recording's over the same span (the first window's start
to the end of the cycle: the same data length, so the same estimator bias on both sides),
and they join the activity in the analysis, with the recording's SE² plus the members'
mean SE² as the error variance, times the number of cycles that assimilate the statistic.
A value waits (variance NaN) until the recording and every member give it with an SE.

Why the factor: the spans grow by one window a cycle, so the statistic of one cycle is
mostly the data of the cycle before. Assimilated every cycle with its plain variance, the
same spikes would count again and again, and the ensemble would shrink as if it had seen
many independent recordings. With the variance multiplied by the number of assimilations
N (the rule of the ensemble smoother with multiple data assimilation, Emerick & Reynolds
2013: Σ 1/α = 1 when the same data are assimilated N times with error α R), the run takes
in no more information than the longest span holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import xarray as xr

from inference.glmcc import GLMCC, PairAccumulator
from inference.triplets import TripletAccumulator, TripletMap, theta_estimates
from observations.spikes import SpikeTrains


@dataclass(frozen=True)
class LinkStatistic:
    """GLMCC's J of some links: one value per link.

    pairs : (L, 2) int64, positions (pre, post) among the observed neurons.
    estimator : GLMCC, with the settings of the constraints' fit.
    """

    pairs: np.ndarray
    estimator: GLMCC
    name: ClassVar[str] = "links"  # the prefix of its arrays in a member's state file

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.pairs.shape[0],)

    def accumulate(self, arrays: dict, spikes: SpikeTrains) -> dict:
        """The arrays of a member's accumulator (``{}``: none yet) after one more window."""
        acc = PairAccumulator.from_arrays(self.pairs, self.estimator, arrays)
        acc.add(spikes)
        return acc.to_arrays()

    @staticmethod
    def summary(arrays: dict) -> tuple:
        """What a task returns of a member's arrays to the driver: the sums GLMCC fits."""
        return tuple(arrays[k] for k in ("counts", "s_plus", "s_minus", "n_lags"))

    def _values(self, fit: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
        sel = {"pre": xr.DataArray(self.pairs[:, 0]), "post": xr.DataArray(self.pairs[:, 1])}
        return fit["J"].isel(sel).values, fit["J_se"].isel(sel).values

    def member(self, summary: tuple, n_units: int) -> tuple[np.ndarray, np.ndarray]:
        """J (L,) and J_se (L,) of one member's accumulated sums."""
        return self._values(self.estimator._fit_statistics(np.arange(n_units), self.pairs, *summary))

    def recording(self, spikes: SpikeTrains) -> tuple[np.ndarray, np.ndarray]:
        """J (L,) and J_se (L,) of the recording's spikes (observed neurons in order)."""
        return self._values(self.estimator.fit(spikes, self.pairs))


@dataclass(frozen=True)
class TripletStatistic:
    """The triplet map's θ_12, θ_13, θ_23 and θ_123 of some triplets: four values per
    triplet (the interactions; the single-unit θ_i are left to the activity).

    triplets : (T, 3) int64, positions among the observed neurons.
    bin_ms, pseudo_count : the triplet map's bin and pseudo-count.
    """

    triplets: np.ndarray
    bin_ms: float
    pseudo_count: float = 0.5
    name: ClassVar[str] = "triplets"
    INTERACTIONS: ClassVar[tuple[str, ...]] = ("12", "13", "23", "123")
    _ROWS: ClassVar[slice] = slice(3, 7)  # of the 7 θ's (inference.triplets.THETA_NAMES)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.triplets.shape[0], len(self.INTERACTIONS))

    def accumulate(self, arrays: dict, spikes: SpikeTrains) -> dict:
        acc = TripletAccumulator.from_arrays(self.triplets, self.bin_ms, arrays)
        acc.add(spikes)
        return acc.to_arrays()

    @staticmethod
    def summary(arrays: dict) -> np.ndarray:
        """The pattern counts (T, 8)."""
        return arrays["patterns"]

    def member(self, summary: np.ndarray, n_units: int) -> tuple[np.ndarray, np.ndarray]:
        """θ (T, 4) and their SE (T, 4) of one member's pattern counts."""
        th, se = theta_estimates(summary, self.pseudo_count)
        return th[:, self._ROWS], se[:, self._ROWS]

    def recording(self, spikes: SpikeTrains) -> tuple[np.ndarray, np.ndarray]:
        patterns = TripletMap(bin_ms=self.bin_ms).counts(spikes, self.triplets)[0]
        return self.member(patterns, spikes.n_units)


def compare(stat, recording: SpikeTrains, summaries: list, n_units: int, repeats: int = 1) -> dict:
    """The statistic on the recording's span and each member's accumulated one.

    Returns arrays of ``stat.shape``: ``y`` (the recording's), ``hx`` (M, …) (the members',
    0 where the value waits), ``error_var`` (``repeats`` × (the recording's SE² + the
    members' mean SE²), ``repeats`` being how many cycles assimilate the statistic; NaN:
    the value waits, because the recording or some member gives no finite value or SE).
    """
    y, se_y = stat.recording(recording)
    per_member = [stat.member(s, n_units) for s in summaries]
    hx = np.stack([v for v, _ in per_member])
    se = np.stack([s for _, s in per_member])
    ok = np.isfinite(y) & np.isfinite(se_y) & np.isfinite(hx).all(axis=0) & np.isfinite(se).all(axis=0)
    var = np.full(y.shape, np.nan)
    var[ok] = repeats * (se_y[ok] ** 2 + (se[:, ok] ** 2).mean(axis=0))
    return {"y": y, "hx": np.nan_to_num(hx), "error_var": var}
