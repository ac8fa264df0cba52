"""Estimators on spike trains: GLMCC (and, to come, its baselines and the triplet map).

Estimators follow the scikit-learn habit: settings in the constructor, ``fit(spikes)``
returns an xarray Dataset that saves to Zarr as is.
"""

from inference.baselines import CrossCorrelogramTest, JitterTest
from inference.glmcc import GLMCC, psp_mv, required_recording_time_s
from inference.triplets import TripletMap

__all__ = ["GLMCC", "CrossCorrelogramTest", "JitterTest", "psp_mv", "required_recording_time_s",
           "TripletMap"]  # fmt: skip
