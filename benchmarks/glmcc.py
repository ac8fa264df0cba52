"""GLMCC speed beside a plain reference implementation of the same equations, in one run.

1. Per-fit cost on the authors' sample data (20 cells, 190 unordered pairs, d = 3 ms,
   cross-correlogram included): CPU-s per pair fit of benchmarks/_glmcc_reference.py (dense
   Newton solves, scipy's Ei; single-threaded BLAS; its correlogram vectorised with
   searchsorted, and again built by a plain Python loop over spikes as the authors' code
   builds it) and of inference.GLMCC on one thread; the ratios. All fits are checked to agree.
2. Scale: all pairs of 200 neurons × 1 h of independent Poisson trains at 2–5 Hz on every
   core (Wald test, d = 3 ms), and the same at 1000 neurons (--big), wall time.

    OMP_NUM_THREADS=1 python benchmarks/glmcc.py [--big]

Writes benchmarks/results/glmcc.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numba
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _glmcc_reference as ref  # noqa: E402

from inference import GLMCC  # noqa: E402
from inference import _glmcc_kernels as K  # noqa: E402
from inference.glmcc import pair_statistics  # noqa: E402
from observations import SpikeTrains  # noqa: E402


def per_fit(cells_ms) -> dict:
    n = len(cells_ms)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    t0 = time.process_time()
    ref_J = {}
    for i, j in pairs:
        lags = ref.cross_correlogram(cells_ms[i], cells_ms[j])
        fit = ref.fit_pair(lags, 3.0)
        ref_J[i, j] = (fit["J_plus"], fit["J_minus"])
    ref_cpu = (time.process_time() - t0) / len(pairs)
    # The same fits with the correlogram built by a plain Python loop over spikes, as the
    # authors' pure-Python code builds it (quoted at 0.07–0.1 CPU-s per fit on this machine).
    t0 = time.process_time()
    for i, j in pairs:
        lags = ref.cross_correlogram_loop(cells_ms[i], cells_ms[j])
        fit = ref.fit_pair(lags, 3.0)
        assert abs(fit["J_plus"] - ref_J[i, j][0]) < 1e-9
    loop_cpu = (time.process_time() - t0) / len(pairs)

    spikes = SpikeTrains.from_lists([c / 1e3 for c in cells_ms], t_start_s=0.0, t_stop_s=5400.0)
    est = GLMCC(delay_ms=3.0)
    est.fit(spikes, pairs=[[0, 1]])  # compile
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        repeats = 20
        t0 = time.process_time()
        for _ in range(repeats):
            ds = est.fit(spikes)
        ours_cpu = (time.process_time() - t0) / repeats / len(pairs)
        # The numerical work alone (cross-correlograms + fits), without assembling the
        # Dataset, whose fixed cost (~10 ms) weighs on 190 pairs but not on 20 000.
        P = np.array(pairs)
        geo = est._geometry()
        t0 = time.process_time()
        for _ in range(repeats):
            stats = pair_statistics(spikes, P, 50.0, est.delays, 4.0, 0.0)
            K.fit_pairs(stats[0], stats[1], stats[2], *geo, 4.0, 4000.0, 50.0,
                        np.zeros((len(P), 2), bool), -3.0, 5.0, 1e-4, 1000)  # fmt: skip
        kernel_cpu = (time.process_time() - t0) / repeats / len(pairs)
    finally:
        numba.set_num_threads(threads)
    dJ = max(
        max(abs(float(ds.J.sel(pre=i, post=j)) - jp), abs(float(ds.J.sel(pre=j, post=i)) - jm))
        for (i, j), (jp, jm) in ref_J.items()
    )
    return {"pairs": len(pairs), "reference_cpu_s_per_fit": ref_cpu,
            "reference_python_loop_cc_cpu_s_per_fit": loop_cpu, "ours_cpu_s_per_fit": ours_cpu,
            "ours_kernels_cpu_s_per_fit": kernel_cpu,
            "ratio_reference_over_ours": ref_cpu / ours_cpu,
            "ratio_reference_over_ours_kernels": ref_cpu / kernel_cpu,
            "ratio_python_loop_reference_over_ours": loop_cpu / ours_cpu,
            "max_abs_dJ_vs_reference": dJ}  # fmt: skip


def scale(n_neurons: int, hours: float = 1.0, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    T = 3600.0 * hours
    rates = rng.uniform(2.0, 5.0, n_neurons)
    trains = [np.sort(rng.uniform(0, T, rng.poisson(r * T))) for r in rates]
    spikes = SpikeTrains.from_lists(trains, t_start_s=0.0, t_stop_s=T)
    est = GLMCC(delay_ms=3.0)
    t0 = time.perf_counter()
    ds = est.fit(spikes)
    wall = time.perf_counter() - t0
    ok = ds.status.values == "ok"
    false_pos = float(ds.significant.values[ok].mean())
    return {"neurons": n_neurons, "hours": hours, "pairs": n_neurons * (n_neurons - 1) // 2,
            "spikes": spikes.n_spikes, "wall_s": wall, "threads": numba.get_num_threads(),
            "false_positive_rate_independent": false_pos}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", action="store_true", help="also 1000 neurons × 1 h")
    args = ap.parse_args()
    out = {"per_fit": per_fit(ref.load_cells())}
    print(json.dumps(out["per_fit"], indent=1))
    out["scale"] = [scale(200)]
    if args.big:
        out["scale"].append(scale(1000))
    for r in out["scale"]:
        print(json.dumps(r))
    path = HERE / "results" / "glmcc.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
