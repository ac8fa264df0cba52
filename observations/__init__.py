"""Observations: spike trains, calcium imaging, their Zarr stores and forward operators.

:class:`SpikeTrains` is the CSR spike-train type that the estimators in ``inference``
take; :func:`write_store`/:class:`StoreWriter` write the observation store of DESIGN.md,
:func:`open_store` and :func:`validate_store` read and check it.
"""

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
    "ObservationStore",
    "QCReport",
    "SpikeTrainError",
    "SpikeTrains",
    "StoreError",
    "StoreWriter",
    "open_store",
    "validate_store",
    "write_store",
]
