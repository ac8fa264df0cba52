"""From a GLMCC result to the synapses among the observed neurons.

Each significant directed connection of the result becomes one synapse: its PSP (mV, from
J by the model neuron's own calibration, :mod:`enkf.constraints.calibrate`, or by the
authors' factors) and the PSP's standard error (GLMCC's Laplace sd of J times the local
mV-per-J slope; for a J on its clip bound, the sd its test implies), its
delay (GLMCC's d), its sign. Dale's law (:mod:`enkf.constraints.dale`) then types the
presynaptic units and drops the links of the minority sign.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from scipy.stats import norm

from enkf.config import ConfigError
from enkf.constraints.dale import assign_types


@dataclass
class Connections:
    """Estimated connections among the observed units (unit ids of the recording).

    pre, post : (k,) int64 unit ids; psp_mv, psp_se_mv (mV, signed PSP and its sd);
    delay_ms (k,); excitatory (k,) bool; z (k,) |J|/se(J).
    units : (n,) the result's unit ids; types : (n,) "E", "I" or "" by Dale's rule.
    dropped : int, significant links dropped by Dale's rule.
    """

    pre: np.ndarray
    post: np.ndarray
    psp_mv: np.ndarray
    psp_se_mv: np.ndarray
    delay_ms: np.ndarray
    excitatory: np.ndarray
    z: np.ndarray
    units: np.ndarray
    types: np.ndarray
    dropped: int

    @property
    def n(self) -> int:
        return int(self.pre.size)


def require(ds: xr.Dataset, kind: str, variables, where: str, command: str) -> None:
    """An estimator result of ``kind`` holding ``variables``, or one clear error."""
    if ds.attrs.get("kind") != kind:
        raise ConfigError(f"{where}: not a {kind} result (kind {ds.attrs.get('kind')!r})")
    missing = [v for v in variables if v not in ds]
    if missing:
        raise ConfigError(
            f"{where}: the {kind} result has no {', '.join(missing)} (made by an older version "
            f"or without classification); re-run {command}"
        )


def _standard_errors(ds: xr.Dataset, i, j, J) -> np.ndarray:
    """se(J) of links (i, j): GLMCC's Laplace sd; for a J on its clip bound (no Laplace sd:
    the strongest inhibitions sit at J = −3) the sd the test implies: the Wald threshold
    over z_α, or |J|/√(LR statistic)."""
    se = ds["J_se"].values[i, j].astype(float)
    missing = ~np.isfinite(se)
    if missing.any():
        if "J_threshold" in ds:
            z_alpha = norm.isf(float(ds.attrs.get("alpha", 1e-3)) / 2)
            se[missing] = ds["J_threshold"].values[i, j][missing] / z_alpha
        elif "lr_stat" in ds:
            se[missing] = np.abs(J[missing]) / np.sqrt(ds["lr_stat"].values[i, j][missing])
    return se


def from_glmcc(ds: xr.Dataset, default_types, where: str = "constraints.glmcc",
               known_types=None, calibration=None, rates_hz=None) -> Connections:  # fmt: skip
    """The connections of a GLMCC result (``inference.GLMCC.fit`` Dataset).

    ``default_types`` (n_units,) "E"/"I": the mapped model neurons' types, in the order of
    ``ds.pre`` (used by Dale's rule on a tie); ``known_types`` (n_units,): the recording's
    cell types ("E", "I", "unknown"), which Dale's rule follows where given;
    ``calibration``: the model neuron's J ↔ PSP curves
    (:class:`enkf.constraints.calibrate.JCalibration`), or None for the result's own PSPs
    (the authors' factors); ``rates_hz`` (n_units,): each unit's firing rate in the
    recording, at which the calibration is read for the links onto it.
    """
    require(ds, "connectivity", ("significant", "J_se"), where, "spikeda glmcc")
    units = ds["pre"].values
    sig = ds["significant"].values.astype(bool)
    i, j = np.nonzero(sig)
    J = ds["J"].values[i, j]
    se = _standard_errors(ds, i, j, J)
    if calibration is None:
        psp = ds["psp_mv"].values[i, j]
        slope = np.abs(psp / np.where(J != 0, J, np.nan))  # the authors' PSP is linear in J
    else:
        psp, slope = calibration.psp(J, J > 0, None if rates_hz is None else np.asarray(rates_hz)[j])
    ok = np.isfinite(J) & np.isfinite(se) & (se > 0) & np.isfinite(psp) & (J != 0)
    i, j, J, se, psp, slope = i[ok], j[ok], J[ok], se[ok], psp[ok], slope[ok]
    excitatory = J > 0
    z = np.abs(J) / se
    types, keep = assign_types(units[i], excitatory, z, units, np.asarray(default_types), known_types)
    psp_se = slope * se  # to first order
    return Connections(
        pre=units[i][keep].astype(np.int64),
        post=units[j][keep].astype(np.int64),
        psp_mv=psp[keep],
        psp_se_mv=psp_se[keep],
        delay_ms=ds["delay_ms"].values[i, j][keep],
        excitatory=excitatory[keep],
        z=z[keep],
        units=units,
        types=types,
        dropped=int((~keep).sum()),
    )
