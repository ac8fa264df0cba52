"""Scale check: the 10 % Potjans–Diesmann microcircuit (configs/microcircuit_10pct.yaml).

Builds the network, then advances 100 members for 0.1 s in one batch, and reports the
structure's memory per synapse, the state per member, the wall times and the peak
resident memory of the process (ru_maxrss).

    python benchmarks/microcircuit.py [--members 100] [--duration-s 0.1]

Writes benchmarks/results/microcircuit.json.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
from _results import report

from model import advance, build_network, default_params, initial_state

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=100)
    ap.add_argument("--duration-s", type=float, default=0.1)
    args = ap.parse_args()
    t0 = time.perf_counter()
    net = build_network(HERE.parent / "configs" / "microcircuit_10pct.yaml", 1)
    build_s = time.perf_counter() - t0
    state = initial_state(net, args.members, 1)
    params = default_params(net, args.members)
    advance(net, params.select(0), state.select(0), 0.0, net.dt_s, 1)  # compile
    t0 = time.perf_counter()
    state, rec = advance(net, params, state, 0.0, args.duration_s, 1)
    run_s = time.perf_counter() - t0
    out = {
        "neurons": net.n,
        "synapses": net.n_synapses,
        "bytes_per_synapse": net.synapse_bytes / net.n_synapses,
        "structure_mb": net.synapse_bytes / 1e6,
        "state_mb_per_member": sum(getattr(state, k).nbytes for k in state.ARRAYS)
        / args.members
        / 1e6,
        "ring_buffer_slots": int(state.buf_e.shape[1]),
        "members": args.members,
        "duration_s": args.duration_s,
        "build_s": build_s,
        "run_s": run_s,
        "run_s_per_member": run_s / args.members,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "rates_hz": {p: float(rec.mean_rate_hz(net, p).mean()) for p in net.pop_names},
        "finite": bool(np.isfinite(state.v_mv).all()),
    }
    report("microcircuit", out)


if __name__ == "__main__":
    main()
