"""GLMCC speed beside a plain reference implementation of the same equations, in one run.

1. Per-fit cost on the authors' sample data (20 cells, 190 unordered pairs, d = 3 ms,
   cross-correlogram included), CPU-s per pair fit, single-threaded, side by side:
   - benchmarks/_glmcc_pure_python.py: a pure-Python transcription in the structure of the
     authors' code (loops over spikes, lags and bins, Hessian filled entry by entry, a
     dense inverse per LM iteration), and the same with the Hessian's nonzeros only;
   - benchmarks/_glmcc_reference.py: a numpy-vectorised reference (dense Newton solves,
     scipy's Ei), with a vectorised and with a Python-loop correlogram;
   - inference.GLMCC on one thread;
   and the ratios. Every peer's fits are checked to agree with ours (|ΔJ| ≤ 2e-3, log
   posterior within 0.05).
2. Scale: all pairs of 200 neurons × 1 h of independent Poisson trains at 2–5 Hz on every
   core (Wald test, d = 3 ms), and the same at 1000 neurons (--big), wall time.

    OMP_NUM_THREADS=1 python benchmarks/glmcc.py [--big] [--per-fit-only]

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

import _glmcc_pure_python as pure  # noqa: E402
import _glmcc_reference as ref  # noqa: E402

from inference import GLMCC  # noqa: E402
from inference import _glmcc_kernels as K  # noqa: E402
from inference.glmcc import pair_statistics  # noqa: E402
from observations import SpikeTrains  # noqa: E402


def _cpu_per_pair(fn, pairs) -> tuple[float, dict]:
    t0 = time.process_time()
    out = {(i, j): fn(i, j) for i, j in pairs}
    return (time.process_time() - t0) / len(pairs), out


def per_fit(cells_ms) -> dict:
    n = len(cells_ms)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    # Peer 1, the pure-Python transcription in the authors' code's structure (loops over
    # spikes, lags and bins; the Hessian filled entry by entry; a dense inverse per LM step).
    py_cpu, py_fit = _cpu_per_pair(
        lambda i, j: pure.fit_pair(pure.cross_correlogram(cells_ms[i], cells_ms[j]), 3.0), pairs
    )
    # The same with the Hessian's nonzeros set by one loop over the bins: the cheapest
    # pure-Python assembly, a lower bound for that style.
    py_banded_cpu, py_banded_fit = _cpu_per_pair(
        lambda i, j: pure.fit_pair(pure.cross_correlogram(cells_ms[i], cells_ms[j]), 3.0,
                                   hessian="banded"), pairs)  # fmt: skip
    # Peer 2, the numpy-vectorised reference (dense Newton solves, vectorised correlogram).
    ref_cpu, ref_fit = _cpu_per_pair(
        lambda i, j: ref.fit_pair(ref.cross_correlogram(cells_ms[i], cells_ms[j]), 3.0), pairs
    )
    # ... and with its correlogram built by a Python loop over spikes.
    loop_cpu, _ = _cpu_per_pair(
        lambda i, j: ref.fit_pair(ref.cross_correlogram_loop(cells_ms[i], cells_ms[j]), 3.0), pairs
    )

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
        # Dataset, whose fixed cost (~1 ms) weighs on 190 pairs but not on 20 000.
        P = np.array(pairs)
        geo = est._geometry()
        t0 = time.process_time()
        for _ in range(repeats):
            stats = pair_statistics(spikes, P, 50.0, est.delays, 4.0, 0.0)
            fits = K.fit_pairs(stats[0], stats[1], stats[2], *geo, 4.0, 4000.0, 50.0,
                               np.zeros((len(P), 2), bool), -3.0, 5.0, 1e-4, 1000)  # fmt: skip
        kernel_cpu = (time.process_time() - t0) / repeats / len(pairs)
        # The cross-correlograms alone, per lag in (−W, W).
        t0 = time.process_time()
        for _ in range(repeats):
            pair_statistics(spikes, P, 50.0, est.delays, 4.0, 0.0)
        cc_cpu = (time.process_time() - t0) / repeats / len(pairs)
        lags_per_pair = float(stats[3].mean())
    finally:
        numba.set_num_threads(threads)
    ours_J = {pr: (float(ds.J.sel(pre=pr[0], post=pr[1])), float(ds.J.sel(pre=pr[1], post=pr[0])))
              for pr in pairs}  # fmt: skip
    ours_L = {pr: float(fits[3][p]) for p, pr in enumerate(pairs)}

    def max_dJ(fit):
        return max(max(abs(fit[pr]["J_plus"] - ours_J[pr][0]), abs(fit[pr]["J_minus"] - ours_J[pr][1]))
                   for pr in pairs)  # fmt: skip

    def max_dL(fit):
        return max(abs(fit[pr]["log_posterior"] - ours_L[pr]) for pr in pairs)

    agree = {name: {"max_abs_dJ": max_dJ(f), "max_abs_dlogpost": max_dL(f)}
             for name, f in (("pure_python", py_fit), ("pure_python_banded", py_banded_fit),
                             ("vectorised", ref_fit))}  # fmt: skip
    for name, a in agree.items():
        assert a["max_abs_dJ"] <= 2e-3 and a["max_abs_dlogpost"] <= 0.05, (name, a)
    return {
        "pairs": len(pairs), "delay_ms": 3.0, "threads": 1,
        "ours_cpu_s_per_fit": ours_cpu, "ours_kernels_cpu_s_per_fit": kernel_cpu,
        "ours_correlogram_cpu_s_per_pair": cc_cpu, "lags_per_pair": lags_per_pair,
        "ours_correlogram_ns_per_lag": cc_cpu / lags_per_pair * 1e9,
        "pure_python_cpu_s_per_fit": py_cpu,
        "pure_python_banded_hessian_cpu_s_per_fit": py_banded_cpu,
        "vectorised_reference_cpu_s_per_fit": ref_cpu,
        "vectorised_reference_python_loop_cc_cpu_s_per_fit": loop_cpu,
        "ratio_pure_python_over_ours": py_cpu / ours_cpu,
        "ratio_pure_python_banded_over_ours": py_banded_cpu / ours_cpu,
        "ratio_vectorised_reference_over_ours": ref_cpu / ours_cpu,
        "ratio_vectorised_reference_python_loop_cc_over_ours": loop_cpu / ours_cpu,
        "ratio_pure_python_over_ours_kernels": py_cpu / kernel_cpu,
        "ratio_vectorised_reference_over_ours_kernels": ref_cpu / kernel_cpu,
        "agreement_with_ours": agree,
        "peers": {
            "pure_python": "benchmarks/_glmcc_pure_python.py, hessian='dense': the authors' "
            "code's structure (Python loops over spikes, lags and bins; Hessian entry by entry; "
            "numpy.linalg.inv per LM iteration)",
            "pure_python_banded": "the same, the Hessian's nonzeros set by one loop over bins",
            "vectorised": "benchmarks/_glmcc_reference.py: numpy-vectorised, dense Newton "
            "solve per LM iteration, correlogram by searchsorted",
        },
    }  # fmt: skip


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
    ap.add_argument("--per-fit-only", action="store_true",
                    help="skip the scale runs (keep those already in the JSON)")  # fmt: skip
    args = ap.parse_args()
    path = HERE / "results" / "glmcc.json"
    out = {"per_fit": per_fit(ref.load_cells())}
    print(json.dumps(out["per_fit"], indent=1))
    if args.per_fit_only:
        out["scale"] = json.loads(path.read_text()).get("scale", []) if path.exists() else []
    else:
        out["scale"] = [scale(200)]
        if args.big:
            out["scale"].append(scale(1000))
    for r in out["scale"]:
        print(json.dumps(r))
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
