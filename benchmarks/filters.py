"""Filter validation tables and timings beside DAPPER, in one run.

1. Accuracy: every toy twin config (Lorenz-96 Sakov & Oke 2008, Lorenz-63 Sakov et al.
   2012, Lorenz-96 forcing estimation) at its published length, the time-averaged analysis
   RMSE beside the published value.
2. Speed: the three Lorenz-96 filters side by side with DAPPER (the `bench` extra) on the
   same setup and the same number of cycles, alternating ours and DAPPER's per seed;
   wall time per cycle (forecast + analysis + scores) and the ratio ours / DAPPER.
   DAPPER runs with its per-cycle diagnostics cut to the error (kinder to DAPPER than its
   default) and without progress bars; its truth simulation is outside its timer, while
   ours advances the truth inside the loop.

    python benchmarks/filters.py [--cycles 5000] [--seeds 1 2] [--no-dapper]

Writes benchmarks/results/filters.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from enkf import config, toy_twin  # noqa: E402

CONFIGS = ["l96_sakov2008.yaml", "l63_sakov2012.yaml", "l96_forcing.yaml"]
# Our experiment label in l96_sakov2008.yaml -> DAPPER method name in _dapper_peer.
PEERS = {"etkf": "etkf", "enkf_pertobs": "enkf_pertobs", "letkf": "letkf"}


def accuracy() -> list[dict]:
    rows = []
    for name in CONFIGS:
        cfg = config.load(ROOT / "configs" / name, config.ToyTwinConfig)
        text, table_rows = toy_twin.table(cfg, toy_twin.run(cfg))
        print(f"\n== {name}: {cfg.time.cycles} cycles, seeds {cfg.seeds}\n{text}")
        rows += [{"config": name, **r} for r in table_rows]
    return rows


def speed(cycles: int, seeds: list[int]) -> list[dict]:
    from _dapper_peer import run_dapper

    cfg = config.load(ROOT / "configs" / "l96_sakov2008.yaml", config.ToyTwinConfig)
    for exp in cfg.experiments:  # compile the numba kernels outside the timings
        toy_twin.run_experiment(cfg, exp, seed=0, cycles=int(cfg.time.burn_in / cfg.time.dt) + 2)
    rows = []
    for exp in cfg.experiments:
        ours, theirs = [], []
        for seed in seeds:
            ours.append(toy_twin.run_experiment(cfg, exp, seed, cycles))
            loc = exp.localization.radius if exp.localization else None
            theirs.append(
                run_dapper(PEERS[exp.filter], exp.members, exp.inflation, cycles, seed, loc)
            )
        ms_ours = statistics.median(1e3 * r.wall_s_per_cycle for r in ours)
        ms_dapper = statistics.median(1e3 * r["wall_s_per_cycle"] for r in theirs)
        rows.append(
            {
                "experiment": exp.label,
                "cycles": cycles,
                "seeds": seeds,
                "ms_per_cycle_ours": ms_ours,
                "ms_per_cycle_dapper": ms_dapper,
                "ratio_ours_over_dapper": ms_ours / ms_dapper,
                "rmse_a_ours": float(np.mean([r.rmse_a_mean for r in ours])),
                "rmse_a_dapper": float(np.mean([r["rmse_a"] for r in theirs])),
                "dapper_version": theirs[0]["dapper_version"],
            }
        )
    head = f"{'experiment':<28}{'ours ms':>9}{'DAPPER ms':>11}{'ratio':>7}{'RMSE ours':>11}{'RMSE DAPPER':>13}"
    print(
        f"\n== speed beside DAPPER {rows[0]['dapper_version']}: L96, {cycles} cycles, seeds {seeds}"
    )
    print(head + "\n" + "-" * len(head))
    for r in rows:
        print(
            f"{r['experiment']:<28}{r['ms_per_cycle_ours']:>9.3f}{r['ms_per_cycle_dapper']:>11.3f}"
            f"{r['ratio_ours_over_dapper']:>7.2f}{r['rmse_a_ours']:>11.3f}{r['rmse_a_dapper']:>13.3f}"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=5000, help="cycles of the speed comparison")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-dapper", action="store_true", help="skip the comparison with DAPPER")
    args = ap.parse_args()
    out = {
        "meta": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "accuracy": accuracy(),
    }
    if not args.no_dapper:
        try:
            import dapper  # noqa: F401
        except ImportError:
            sys.exit("DAPPER is not installed: pip install -e '.[bench]' (or pass --no-dapper)")
        out["speed"] = speed(args.cycles, args.seeds)
    path = HERE / "results" / "filters.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
