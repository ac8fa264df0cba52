"""Observations: spike trains, calcium imaging, their Zarr stores and forward operators.

:class:`SpikeTrains` is the CSR spike-train type that the estimators in ``inference``
take; :func:`write_store`/:class:`StoreWriter` write the observation store of DESIGN.md,
:func:`open_store` and :func:`validate_store` read and check it.
"""

from observations.deconvolve import AR1Result, deconvolve_ar1, events_from_calcium
from observations.spikes import SpikeTrainError, SpikeTrains
from observations.store import (
    ObservationStore,
    QCReport,
    StoreError,
    StoreWriter,
    open_store,
    validate_store,
    write_store,
)

__all__ = [
    "AR1Result",
    "ObservationStore",
    "QCReport",
    "SpikeTrainError",
    "SpikeTrains",
    "StoreError",
    "StoreWriter",
    "deconvolve_ar1",
    "events_from_calcium",
    "open_store",
    "validate_store",
    "write_store",
]
