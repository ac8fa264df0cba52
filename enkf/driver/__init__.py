"""The assimilation driver: ensemble members as Dask tasks, run.zarr, restart.

``start(config, out)`` runs a config from the beginning, ``resume(run)`` continues a run
from its last complete cycle, ``open_run(run)`` opens the complete cycles as an xarray
Dataset, and ``report(ds)`` prints the table of truth, prior and posterior. See
docs/driver.md.
"""

from enkf.driver.report import report
from enkf.driver.run import RunError, RunSummary, resume, start
from enkf.driver.store import TIMING, open_run

__all__ = ["TIMING", "RunError", "RunSummary", "open_run", "report", "resume", "start"]
