"""Where the member forecasts run: a Dask client on a LocalCluster, a dask-jobqueue
cluster (SLURM, PBS, SGE, LSF) or an existing scheduler."""

from __future__ import annotations

import contextlib
import logging
import sys

from enkf.config import ConfigError
from enkf.run_config import ClusterSection

JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}

# Defaults for a jobqueue worker: one process with one thread per job, as the local
# workers. Everything else (queue, walltime, account, interface, ...) comes from the
# config's cluster.jobqueue mapping, with dask-jobqueue's own config as the fallback.
JOB_DEFAULTS = {"cores": 1, "processes": 1, "memory": "2GB"}


def cluster_from_cli(
    section: ClusterSection, value: str | None, workers: int | None
) -> ClusterSection:
    """The config's cluster section with the command line's ``--cluster`` / ``--workers``."""
    data = section.model_dump()
    if value is not None:
        if "://" in value:
            data.update(kind="address", address=value)
        elif value in ("local", *JOBQUEUE):
            if value != data["kind"]:
                data.update(kind=value, jobqueue={} if value == "local" else data["jobqueue"])
            data["address"] = None
        else:
            raise ConfigError(
                f"--cluster {value!r}: expected local, {', '.join(JOBQUEUE)} or a scheduler address "
                "(tcp://host:port)"
            )
    if workers is not None:
        data["workers"] = workers
    return ClusterSection.model_validate(data)


@contextlib.contextmanager
def connect(section: ClusterSection, log=sys.stderr):
    """A ``distributed.Client`` for the section; the cluster it started is closed on exit.

    Yields (client, n_workers): n_workers is what the cluster is sized for (members per
    task are chosen from it).
    """
    from distributed import Client, LocalCluster

    if section.kind == "address":
        try:
            client = Client(section.address, timeout="30s")
        except OSError as exc:
            raise ConfigError(f"cluster.address: cannot reach {section.address} ({exc})") from None
        try:
            n = max(len(client.scheduler_info()["workers"]), 1)
            _say(log, f"joined scheduler {section.address} ({n} workers)", client)
            yield client, n
        finally:
            client.close()
        return
    if section.kind == "local":
        cluster = LocalCluster(
            n_workers=section.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
    else:
        cluster = _jobqueue(section)
    try:
        client = Client(cluster)
        try:
            if section.kind != "local":
                if section.adapt is not None:
                    cluster.adapt(
                        minimum_jobs=section.adapt.minimum_jobs,
                        maximum_jobs=section.adapt.maximum_jobs,
                    )
                else:
                    cluster.scale(jobs=section.workers)
            _say(log, f"{section.kind} cluster with {section.workers} workers", client)
            yield client, section.workers
        finally:
            client.close()
    finally:
        cluster.close()


def _jobqueue(section: ClusterSection):
    try:
        import dask_jobqueue
    except ImportError:
        raise ConfigError(
            f"cluster kind {section.kind} needs dask-jobqueue: pip install dask-jobqueue"
        ) from None
    cls = getattr(dask_jobqueue, JOBQUEUE[section.kind])
    kw = {**JOB_DEFAULTS, **section.jobqueue}
    # Workers must run this Python (the one with spikeda installed).
    kw.setdefault("python", sys.executable)
    try:
        return cls(**kw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cluster.jobqueue: {exc}") from None


def _say(log, what: str, client) -> None:
    if log is None:
        return
    link = None
    with contextlib.suppress(Exception):  # the dashboard needs bokeh; without it there is none
        if "dashboard" in client.scheduler_info().get("services", {}):
            link = client.dashboard_link
    print(f"spikeda: {what}" + (f"; dashboard {link}" if link else ""), file=log)
