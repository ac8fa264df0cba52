"""Observations: spike trains, their Zarr stores and (to come) calcium and forward operators.

:class:`SpikeTrains` is the CSR spike-train type that the estimators in ``inference``
take; :func:`write_store` and :func:`open_store` write and read the observation store
of DESIGN.md.
"""

from observations.spikes import SpikeTrainError, SpikeTrains
from observations.store import ObservationStore, StoreError, open_store, write_store

__all__ = [
    "ObservationStore",
    "SpikeTrainError",
    "SpikeTrains",
    "StoreError",
    "open_store",
    "write_store",
]
