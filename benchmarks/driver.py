"""The assimilation driver: its overhead beside the member forecasts, and the quickstart's
parameter recovery over seeds (issue 8).

overhead (default)
    The quickstart network (1000 COBA neurons, configs/quickstart_network.yaml), 1-s
    windows, calcium of 300 neurons, members 25/50/100/200 on a LocalCluster of 2 workers,
    and 100 members on 1 worker. Every cycle's wall time is split, from run.zarr's own
    diagnostics, into the member forecasts (time inside ``advance`` and the operator,
    summed over tasks / workers) and what is outside them: member-state I/O inside the
    tasks, scheduling + transfers + waiting for the slowest task, the analysis and the
    driver's I/O. Cycle 0 (spin-up, the first call compiling or loading numba's cache in
    each worker) is left out of the medians.

recovery
    The quickstart (configs/quickstart.yaml) for several seeds: the twin's truth seed and
    the ensemble's seed both change. Records truth, prior, posterior mean and 95 %
    interval, sd ratio and posterior correlations of every parameter, and the issue's
    criterion: every truth inside its 95 % interval; each parameter the data identify
    (``--identified``, by default w_EE and drive_pa of the quickstart: the ones its
    design identifies, named before the run) within 10 % of its truth and ≥ 3× narrower
    than the prior.

    python benchmarks/driver.py [overhead] [--members 25 50 100 200] [--cycles 6]
    python benchmarks/driver.py recovery [--seeds 1 2 3] [--config-seeds] [--config configs/quickstart.yaml]

Writes benchmarks/results/driver_overhead.json or driver_recovery.json.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from _results import report

from enkf import driver
from enkf.driver.report import directions, posterior
from enkf.run_config import load_run_config

HERE = Path(__file__).resolve().parent
QUICKSTART = HERE.parent / "configs" / "quickstart.yaml"
#: The quickstart's parameters that its observations identify one by one (docs/driver.md).
IDENTIFIED = ("w_EE", "drive_pa")


def _config(**asm):
    cfg, text = load_run_config(QUICKSTART)
    data = cfg.model_dump(mode="json")
    data["assimilation"].update(asm)
    from enkf.run_config import RunConfig

    cfg = RunConfig.model_validate(data)
    return cfg, yaml.safe_dump(data, sort_keys=False)


def overhead(members, cycles: int, workers, per_task="auto") -> dict:
    from distributed import Client, LocalCluster

    rows = []
    for W in workers:
        with LocalCluster(n_workers=W, threads_per_worker=1, processes=True,
                          dashboard_address=":0", silence_logs=logging.ERROR) as cl, Client(cl) as c:  # fmt: skip
            for M in members if W == max(workers) else [100]:
                cfg, text = _config(members=M, cycles=cycles, window_s=1.0, start_s=1.0,
                                    members_per_task=per_task)  # fmt: skip
                with tempfile.TemporaryDirectory() as tmp:
                    t0 = time.perf_counter()
                    driver.start((cfg, text), out=Path(tmp) / "run.zarr", client=c, progress=None)
                    total = time.perf_counter() - t0
                    ds = driver.open_run(Path(tmp) / "run.zarr").isel(cycle=slice(1, None)).load()
                rows.append(_breakdown(ds, M, W, total))
                r = rows[-1]
                print(f"members {M:4d} workers {W}: cycle {r['cycle_s']:.2f} s, forecasts "
                      f"{r['member_forecast_s']:.2f} s, outside {100 * r['overhead_fraction']:.1f} %",
                      file=sys.stderr)  # fmt: skip
    return {"window_s": 1.0, "neurons": 1000, "cycles_measured": cycles - 1, "rows": rows}


def _breakdown(ds, M: int, W: int, total_s: float) -> dict:
    """Medians over cycles of the wall-time pieces (s) and the share outside forecasts."""
    med = lambda v: float(np.median(ds[v].values))  # noqa: E731
    compute = ds["task_compute_s"].values / W
    task_io = ds["task_io_s"].values / W
    cycle = ds["cycle_s"].values
    forecast = ds["forecast_s"].values
    sched = forecast - compute - task_io  # scheduling, transfers, waiting for the last task
    return {
        "members": M,
        "workers": W,
        "cycle_s": med("cycle_s"),
        "member_forecast_s": float(np.median(compute)),
        "task_state_io_s": float(np.median(task_io)),
        "scheduling_transfer_wait_s": float(np.median(sched)),
        "analysis_s": med("analysis_s"),
        "driver_io_s": med("io_s"),
        "overhead_fraction": float(np.median(1.0 - compute / cycle)),
        "member_s_per_simulated_s": float(np.median(compute * W / M)),
        "run_total_s": total_s,
    }


def recovery(seeds, config: Path = QUICKSTART, identified=IDENTIFIED, own=False) -> dict:
    """Seed k runs the ensemble with seed k and the truth with seed 100 + k; ``own``: first
    the config's own seeds as written (what ``make demo`` prints), labelled seed 0."""
    runs = []
    for seed in ([0] if own else []) + list(seeds):
        cfg, _ = load_run_config(config)
        data = cfg.model_dump(mode="json")
        if seed:
            data["assimilation"]["seed"] = seed
            data["twin"]["seed"] = 100 + seed
        from enkf.run_config import RunConfig

        cfg = RunConfig.model_validate(data)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            driver.start((cfg, yaml.safe_dump(data)), out=Path(tmp) / "run.zarr", progress=None)
            wall = time.perf_counter() - t0
            ds = driver.open_run(Path(tmp) / "run.zarr").load()
        s = posterior(ds)
        print(driver.report(ds), file=sys.stderr)
        runs.append({
            "seed": data["assimilation"]["seed"], "twin_seed": data["twin"]["seed"],
            "config_seeds": not seed, "wall_s": wall,
            "params": [
                {"name": n, "truth": float(s["truth"][i]), "prior_mean": float(s["prior_mean"][i]),
                 "post_mean": float(s["post_mean"][i]), "post_lo": float(s["post_lo"][i]),
                 "post_hi": float(s["post_hi"][i]), "sd_ratio": float(s["prior_sd"][i] / s["post_sd"][i]),
                 "err_pct": float(100 * (s["post_mean"][i] - s["truth"][i]) / s["truth"][i]),
                 "inside_95": bool(s["post_lo"][i] <= s["truth"][i] <= s["post_hi"][i])}
                for i, n in enumerate(s["names"])
            ],
            "corr": s["corr"].round(3).tolist(),
            # The combinations the data identify, most constrained first (transformed space).
            "directions": [
                {"coef": d["coef"].round(3).tolist(), "sd_ratio": d["sd_ratio"],
                 "post_mean": d["post_mean"], "post_sd": d["post_sd"], "truth": d["truth"],
                 "factor_err_pct": float(100 * np.expm1(d["post_mean"] - d["truth"]))}
                for d in directions(s)
            ],
        })  # fmt: skip
        ident = [p for p in runs[-1]["params"] if p["name"] in identified]
        runs[-1]["criterion"] = {
            "all_inside_95": all(p["inside_95"] for p in runs[-1]["params"]),
            "identified_within_10pct": all(abs(p["err_pct"]) <= 10 for p in ident),
            "identified_sd_ratio_ge_3": all(p["sd_ratio"] >= 3 for p in ident),
        }
    config = Path(config).resolve()
    name = config.relative_to(HERE.parent) if config.is_relative_to(HERE.parent) else config
    met = all(all(r["criterion"].values()) for r in runs)
    return {"config": str(name), "identified": list(identified), "criterion_met": met, "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", nargs="?", choices=["overhead", "recovery"], default="overhead")
    ap.add_argument("--members", type=int, nargs="+", default=[25, 50, 100, 200])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cycles", type=int, default=6)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--per-task", default="auto", help="members per task (default auto)")
    ap.add_argument("--config", type=Path, default=QUICKSTART, help="recovery: the run config")
    ap.add_argument("--config-seeds", action="store_true",
                    help="recovery: also run the config's own seeds (what make demo prints)")
    ap.add_argument("--name", default="driver_recovery", help="recovery: the result file name")
    ap.add_argument("--identified", nargs="*", default=list(IDENTIFIED),
                    help="recovery: the parameters held to 10 %% and 3x")  # fmt: skip
    args = ap.parse_args()
    if args.mode == "overhead":
        per = args.per_task if args.per_task == "auto" else int(args.per_task)
        out = overhead(args.members, args.cycles, sorted(args.workers), per)
        head = f"{'members':>8}{'workers':>8}{'cycle s':>9}{'forecast':>10}{'state io':>10}{'sched+wait':>11}{'analysis':>10}{'drv io':>8}{'outside %':>10}"
        print(head)
        for r in out["rows"]:
            print(f"{r['members']:>8}{r['workers']:>8}{r['cycle_s']:>9.2f}{r['member_forecast_s']:>10.2f}"
                  f"{r['task_state_io_s']:>10.3f}{r['scheduling_transfer_wait_s']:>11.3f}"
                  f"{r['analysis_s']:>10.3f}{r['driver_io_s']:>8.3f}{100 * r['overhead_fraction']:>10.1f}")  # fmt: skip
        name = "driver_overhead" if per == "auto" else f"driver_overhead_per{per}"
        report(name, {"members_per_task": per, **out})
    else:
        out = recovery(args.seeds, args.config, args.identified, args.config_seeds)
        for run in out["runs"]:
            inside = sum(p["inside_95"] for p in run["params"])
            label = "config's seeds" if run["config_seeds"] else f"seed {run['seed']}"
            print(f"{label}: {inside}/{len(run['params'])} truths inside the 95 % interval, "
                  + ", ".join(f"{p['name']} {p['err_pct']:+.1f} % (sd ÷{p['sd_ratio']:.1f})" for p in run["params"])
                  + f"; criterion {'met' if all(run['criterion'].values()) else 'NOT met'}")  # fmt: skip
        report(args.name, out)


if __name__ == "__main__":
    main()
