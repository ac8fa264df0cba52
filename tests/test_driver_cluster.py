"""The driver on a real batch scheduler: `spikeda run --cluster slurm` submits its workers
as SLURM jobs; one job is cancelled in the middle of the run; the results must be those
of the LocalCluster run of the same config, bit for bit.

Marked ``cluster`` (left out of the default suite, ``pytest -m cluster`` runs them) and
skipped where ``sbatch`` is absent or no controller answers; ``.ci/run`` brings up a
single-node SLURM (../shared/ci/slurm) and runs them.
"""

import shutil
import subprocess
import sys
import time
import uuid

import pytest
from driver_helpers import TWIN, assert_identical, config, results, spikeda, write_config


def _slurm_up() -> bool:
    if shutil.which("sbatch") is None:
        return False
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    return ping.returncode == 0 and "UP" in ping.stdout


pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(not _slurm_up(), reason="needs a running SLURM (sbatch, scontrol ping UP)"),
]


def _jobs(name: str) -> dict:
    out = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i %T"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return dict(line.split() for line in out.strip().splitlines())


def _state(job: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True)
    for part in out.stdout.split():
        if part.startswith("JobState="):
            return part.split("=", 1)[1]
    return "GONE"  # forgotten by slurmctld after MinJobAge: it ended


def test_slurm_run_with_a_cancelled_worker_job_matches_local(tmp_path):
    import zarr

    name = f"spikeda-test-{uuid.uuid4().hex[:8]}"
    cfg = config(TWIN, **{
        "observations.reduce": "window_mean",
        "assimilation.cycles": 6,
        "assimilation.window_s": 1.0,
        "cluster.jobqueue": {"queue": "debug", "walltime": "00:15:00", "interface": "lo",
                             "job_name": name, "memory": "1GB",
                             "log_directory": str(tmp_path / "slurm-logs")},
    })  # fmt: skip
    path = write_config(tmp_path / "run.yaml", cfg)
    local = spikeda("run", path, "--out", tmp_path / "local.zarr", "--cluster", "local")
    assert local.returncode == 0, local.stderr

    out = tmp_path / "slurm.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "enkf.cli", "run", str(path), "--out", str(out), "--cluster", "slurm"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    cancelled = None
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            done = 0
            if (out / "zarr.json").exists():
                done = zarr.open_group(out, mode="r").attrs.get("completed_cycles", 0)
            running = [j for j, s in _jobs(name).items() if s == "RUNNING"]
            if done >= 1 and len(running) == 2 and cancelled is None:
                cancelled = (running[0], done)
                subprocess.run(["scancel", running[0]], check=True)
            time.sleep(0.1)
        stdout, stderr = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
        for job in _jobs(name):
            subprocess.run(["scancel", job])
    assert proc.returncode == 0, stderr
    assert cancelled is not None, "no moment with two running worker jobs after cycle 0"
    job, done_at_cancel = cancelled
    assert done_at_cancel < 6
    assert _state(job) in ("CANCELLED", "GONE")
    assert_identical(results(tmp_path / "local.zarr"), results(out))
