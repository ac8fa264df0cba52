"""Forward operators beside the forecast that feeds them (issue 5, speed).

100 members of a 10⁴-neuron COBA network (configs/coba1000.yaml scaled to 8000 E / 2000 I,
same 80 inputs per neuron) are advanced for 1 s in one batch; then each member's spikes of
all 10⁴ neurons go through the calcium operator (GCaMP6f, 30 Hz imaging: 30 frames) and
the spike-count operator (50-ms bins). Reports wall times and the ratios operator /
forecast, and writes benchmarks/results/operators.json.

    python benchmarks/operators.py [--members 100]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _results import report

from model import advance, build_network, default_params, initial_state, load_spec
from observations import SpikeTrains
from observations.operators import CalciumOperator, SpikeCountOperator

HERE = Path(__file__).resolve().parent


def network_10k():
    spec = load_spec(HERE.parent / "configs" / "coba1000.yaml").model_dump()
    spec["name"] = "coba10k"
    spec["populations"][0]["n"] = 8000
    spec["populations"][1]["n"] = 2000
    return build_network(spec, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=100)
    args = ap.parse_args()
    M = args.members
    net = network_10k()
    state, params = initial_state(net, M, 1), default_params(net, M)
    advance(net, params.select(0), state.select(0), 0.0, net.dt_s, 1)  # compile
    t0 = time.perf_counter()
    state, rec = advance(net, params, state, 0.0, 1.0, 1)
    forecast_s = time.perf_counter() - t0

    trains = []
    for m in range(M):
        t, n = rec.member(m)
        trains.append(SpikeTrains.from_pairs(t, n, 0.0, 1.0, unit_ids=np.arange(net.n)))
    frames = np.arange(1, 31) / 30.0
    calcium = CalciumOperator(indicator="GCaMP6f", frame_rate_hz=30.0)
    counts = SpikeCountOperator(bin_s=0.05)
    calcium.predict(trains[0], calcium.initial_state(net.n), frames)  # compile
    out = {"members": M, "neurons": net.n, "forecast_s": forecast_s,
           "spikes_per_member": float(np.mean([s.n_spikes for s in trains]))}  # fmt: skip
    for name, op, times in (("calcium", calcium, frames), ("counts", counts, None)):
        t0 = time.perf_counter()
        for s in trains:
            op.predict(s, op.initial_state(net.n), times)
        out[f"{name}_s"] = time.perf_counter() - t0
        out[f"{name}_over_forecast"] = out[f"{name}_s"] / forecast_s
    report("operators", out)


if __name__ == "__main__":
    main()
