"""Ensemble Kalman filters, inflation, localisation, parameter transforms and the drivers.

The filter functions work on plain arrays in the notation of the data-assimilation
literature: ``E`` ensemble (members, state), ``A`` anomalies, ``HE`` predicted observations
(members, obs), ``Y`` their anomalies, ``y`` observations, ``R`` observation-error covariance.
"""

from enkf.analysis import enkf_pertobs, etkf, letkf
from enkf.inflation import multiplicative, rtpp, rtps
from enkf.localization import DistanceLocalizer
from enkf.transforms import Identity, Log, Logit

__all__ = [
    "DistanceLocalizer",
    "Identity",
    "Log",
    "Logit",
    "enkf_pertobs",
    "etkf",
    "letkf",
    "multiplicative",
    "rtpp",
    "rtps",
]
