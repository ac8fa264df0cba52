"""Spiking-network speed beside Brian2 and NEST, in one run, one thread per simulator.

Cases (issue 4):
  (a) one COBA-4000 member (configs/coba.yaml: Brette et al. 2007 benchmark 1 with a
      200 pA bias) for 1 s and 10 s of simulated time;
  (b) 100 members of the 1000-neuron COBA network (configs/coba1000.yaml, 80 inputs per
      neuron) for 1 s in one batch, against the peers' single run of that network, over
      several seeds;
  (c) CUBA-4000 (configs/cuba.yaml) for 1 s, for the rates.
Network construction and compilation are timed apart from the simulation. The peers run
in their own environment (.venv-peers, benchmarks/requirements-peers.txt), each call in a
fresh subprocess of benchmarks/sim_peers.py; ours runs in this process.

    python benchmarks/simulate.py [--peers-python .venv-peers/bin/python] [--quick]

Writes benchmarks/results/simulate.json and prints a table with ratios ours / fastest peer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = ("brian2-cpp", "brian2-cython", "nest")
# Our config name -> the same network's name in sim_peers.py.
PEER_NET = {"coba": "coba4000", "cuba": "cuba4000", "coba1000": "coba1000"}


def events(net, rec) -> int:
    """Synaptic events delivered: Σ over spikes of the spiking neuron's out-degree."""
    outdeg = np.diff(net.syn_ptr)
    return int(outdeg[rec.neurons].sum())


def cv_isi(times, neurons, lo, hi) -> float:
    order = np.lexsort((times, neurons))
    t, n = times[order], neurons[order]
    edges = np.searchsorted(n, np.arange(lo, hi + 1))
    cvs = [
        np.std(np.diff(t[a:b])) / np.mean(np.diff(t[a:b]))
        for a, b in zip(edges[:-1], edges[1:], strict=True)
        if b - a >= 3
    ]
    return float(np.mean(cvs)) if cvs else float("nan")


def ours(config: str, duration_s: float, seed: int, members: int = 1) -> dict:
    import numba

    from model import advance, build_network, default_params, initial_state

    t0 = time.perf_counter()
    net = build_network(ROOT / "configs" / f"{config}.yaml", seed)
    build_s = time.perf_counter() - t0
    state = initial_state(net, members, seed)
    params = default_params(net, members)
    t0 = time.perf_counter()
    advance(net, params, state, 0.0, net.dt_s, seed)  # compiles (or loads the cache)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    state, rec = advance(net, params, state, 0.0, duration_s, seed)
    run_s = time.perf_counter() - t0
    e = net.population("E")
    t_m, n_m = rec.member(0)
    return {
        "sim": "spikeda",
        "net": config,
        "seed": seed,
        "members": members,
        "threads": numba.get_num_threads() if members > 1 else 1,
        "duration_s": duration_s,
        "n_neurons": net.n,
        "n_synapses": net.n_synapses,
        "build_s": build_s,
        "compile_s": compile_s,
        "run_s": run_s,
        "run_s_per_member": run_s / members,
        "rate_e_hz": float(rec.mean_rate_hz(net, "E").mean()),
        "rate_i_hz": float(rec.mean_rate_hz(net, "I").mean()),
        "cv_isi_e": cv_isi(t_m, n_m, e.start, e.stop),
        "events_per_s": events(net, rec) / duration_s / members,
        "bytes_per_synapse": net.synapse_bytes / net.n_synapses,
        "state_bytes_per_member": sum(getattr(state, k).nbytes for k in state.ARRAYS) / members,
    }


def peer(python: str, sim: str, net: str, duration_s: float, seed: int) -> dict | None:
    cmd = [python, str(HERE / "sim_peers.py"), "--sim", sim, "--net", PEER_NET[net],
           "--duration-s", str(duration_s), "--seed", str(seed), "--json"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if res.returncode != 0:
        print(f"  {sim} {net}: failed ({res.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers-python", default=str(ROOT / ".venv-peers" / "bin" / "python"))
    ap.add_argument("--quick", action="store_true", help="skip the 10-s runs and use one seed")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--from-json", action="store_true", help="re-summarise the last results only")
    args = ap.parse_args()
    if args.from_json:
        data = json.loads((HERE / "results" / "simulate.json").read_text())
        cases = sorted(
            {
                (r["net"], r["duration_s"], (), r["members"])
                for r in data["runs"]
                if r["sim"] == "spikeda"
            }
        )
        summarize_and_write(data["runs"], cases)
        return
    have_peers = not args.no_peers and Path(args.peers_python).exists()
    if not have_peers and not args.no_peers:
        sys.exit(
            f"no peer environment at {args.peers_python}: make bench-peers (or pass --no-peers)"
        )

    seeds = [1] if args.quick else [1, 2, 3]
    cases = [("coba", 1.0, [1], 1), ("cuba", 1.0, [1], 1), ("coba1000", 1.0, seeds, 100)]
    if not args.quick:
        cases.insert(1, ("coba", 10.0, [1], 1))
    rows = []
    for net, dur, case_seeds, members in cases:
        for seed in case_seeds:
            r = ours(net, dur, seed, members)
            rows.append(r)
            print(
                f"spikeda {net} {dur:g}s seed {seed} x{members}: run {r['run_s']:.3f}s "
                f"({r['run_s_per_member']:.4f} s/member), E {r['rate_e_hz']:.1f} Hz, I {r['rate_i_hz']:.1f} Hz"
            )
            if not have_peers:
                continue
            for sim in PEERS:
                p = peer(args.peers_python, sim, net, dur, seed)
                if p is None:
                    continue
                p["members"] = 1
                p["run_s_per_member"] = p["run_s"]
                rows.append(p)
                print(
                    f"  {sim}: run {p['run_s']:.3f}s, E {p['rate_e_hz']:.1f} Hz, I {p['rate_i_hz']:.1f} Hz"
                )

    summarize_and_write(rows, cases)


def summarize_and_write(rows: list[dict], cases: list) -> None:
    """Median wall times per case, the fastest peer and the ratio; print, write JSON."""
    summary = []
    for net, dur, _, members in cases:
        mine = [
            r for r in rows if r["sim"] == "spikeda" and r["net"] == net and r["duration_s"] == dur
        ]
        entry = {
            "net": net,
            "duration_s": dur,
            "members": members,
            "ours_s_per_member": statistics.median(r["run_s_per_member"] for r in mine),
            "ours_rate_e_hz": statistics.mean(r["rate_e_hz"] for r in mine),
            "ours_rate_i_hz": statistics.mean(r["rate_i_hz"] for r in mine),
            "ours_build_s": statistics.median(r["build_s"] for r in mine),
            "ours_events_per_s": statistics.mean(r["events_per_s"] for r in mine),
        }
        for sim in PEERS:
            theirs = [
                r
                for r in rows
                if r["sim"] == sim and r["net"] == PEER_NET[net] and r["duration_s"] == dur
            ]
            if theirs:
                entry[f"{sim}_s"] = statistics.median(r["run_s"] for r in theirs)
                entry[f"{sim}_rate_e_hz"] = statistics.mean(r["rate_e_hz"] for r in theirs)
                entry[f"{sim}_rate_i_hz"] = statistics.mean(r["rate_i_hz"] for r in theirs)
        peer_times = {s: entry[f"{s}_s"] for s in PEERS if f"{s}_s" in entry}
        if peer_times:
            fastest = min(peer_times, key=peer_times.get)
            entry["fastest_peer"] = fastest
            entry["ratio_ours_over_fastest"] = entry["ours_s_per_member"] / peer_times[fastest]
        summary.append(entry)

    print(
        f"\n{'network':<10}{'T s':>5}{'M':>5}{'ours s/member':>15}{'fastest peer':>15}{'peer s':>9}{'ratio':>7}"
        f"{'E Hz ours/peer':>18}"
    )
    for e in summary:
        fp = e.get("fastest_peer", "-")
        ps = e.get(f"{fp}_s", float("nan"))
        ratio = e.get("ratio_ours_over_fastest", float("nan"))
        rate_peer = e.get(f"{fp}_rate_e_hz", float("nan"))
        print(
            f"{e['net']:<10}{e['duration_s']:>5g}{e['members']:>5}{e['ours_s_per_member']:>15.4f}{fp:>15}"
            f"{ps:>9.3f}{ratio:>7.2f}{e['ours_rate_e_hz']:>9.1f}/{rate_peer:<8.1f}"
        )
    out = HERE / "results" / "simulate.json"
    out.parent.mkdir(exist_ok=True)
    meta = {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    out.write_text(json.dumps({"meta": meta, "summary": summary, "runs": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
