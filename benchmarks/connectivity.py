"""Ground truth for the connectivity estimators: a simulated network whose synapses we know.

A 1000-neuron LIF network (800 E / 200 I, current synapses) with sparse random connections
(p = 0.1), log-normal excitatory and normal inhibitory PSC amplitudes, delays of 1–3 ms,
and Poisson background drive, is simulated with ``model``; the spikes of 100 neurons
(80 E, 20 I) are given to GLMCC (Wald and LR), the cross-correlogram test and the jitter
test, and each method's calls on the directed recorded pairs are scored against the true
synapses: accuracy and Matthews correlation (MCC) for excitatory and inhibitory links.

    python benchmarks/connectivity.py [--minutes 60] [--jitter-pairs 400]

Writes benchmarks/results/connectivity.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from inference import GLMCC, CrossCorrelogramTest, JitterTest
from model import advance, build_network, default_params, initial_state
from observations import SpikeTrains

HERE = Path(__file__).resolve().parent
N_E, N_I, P_CONN = 800, 200, 0.1
LIF = {"model": "lif", "c_pf": 250.0, "g_l_ns": 25.0, "e_l_mv": -65.0, "v_th_mv": -50.0,
       "v_reset_mv": -65.0, "t_ref_ms": 2.0}  # fmt: skip


def network_spec(seed: int) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = N_E + N_I
    pre, post = np.nonzero(rng.random((n, n)) < P_CONN)
    keep = pre != post
    pre, post = pre[keep], post[keep]
    exc = pre < N_E
    w = np.where(
        exc, rng.lognormal(np.log(20.0), 0.8, pre.size), -np.abs(rng.normal(160.0, 40.0, pre.size))
    )
    delay = rng.uniform(1.0, 3.0, pre.size)
    spec = {
        "name": "ground_truth",
        "dt_ms": 0.1,
        "synapses": {"kind": "cuba", "tau_e_ms": 2.0, "tau_i_ms": 4.0},
        "populations": [
            {"name": "E", "n": N_E, "type": "E", "neuron": LIF, "record": 80,
             "drive": {"poisson": {"rate_hz": 8.0, "weight": 23.0, "n_sources": 1000}}},
            {"name": "I", "n": N_I, "type": "I", "neuron": LIF, "record": 20,
             "drive": {"poisson": {"rate_hz": 8.0, "weight": 23.0, "n_sources": 1000}}},
        ],
        "explicit": {"pre": pre.tolist(), "post": post.tolist(), "weight": w.tolist(), "delay_ms": delay.tolist()},
    }  # fmt: skip
    return spec, pre, post, w


def simulate(spec, minutes: float, seed: int):
    net = build_network(spec, seed)
    state, params = initial_state(net, 1, seed), default_params(net, 1)
    times, ids = [], []
    t, chunk = 0.0, 60.0
    while t < minutes * 60 - 1e-9:
        t1 = min(t + chunk, minutes * 60)
        state, rec = advance(net, params, state, t, t1, seed)
        tt, nn = rec.member(0)
        times.append(tt)
        ids.append(nn)
        t = t1
    rec_ids = net.recorded
    spikes = SpikeTrains.from_pairs(np.concatenate(times), np.concatenate(ids), 0.0, minutes * 60,
                                    unit_ids=rec_ids)  # fmt: skip
    return net, spikes


def score(ds, truth_sign: np.ndarray) -> dict:
    """MCC and accuracy for E and I calls on the directed pairs (off-diagonal)."""
    off = ~np.eye(truth_sign.shape[0], dtype=bool)
    sig = ds.significant.values & (ds.status.values == "ok")
    J = np.nan_to_num(ds.J.values)
    out = {}
    for name, true, called in (
        ("E", truth_sign > 0, sig & (J > 0)),
        ("I", truth_sign < 0, sig & (J < 0)),
    ):
        t, c = true[off], called[off]
        tp, tn = int((t & c).sum()), int((~t & ~c).sum())
        fp, fn = int((~t & c).sum()), int((t & ~c).sum())
        den = np.sqrt(float((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
        out[name] = {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "accuracy": (tp + tn) / t.size,
                     "mcc": (tp * tn - fp * fn) / den if den else 0.0}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jitter-surrogates", type=int, default=200)
    args = ap.parse_args()
    spec, pre, post, w = network_spec(args.seed)
    t0 = time.perf_counter()
    net, spikes = simulate(spec, args.minutes, args.seed)
    sim_s = time.perf_counter() - t0
    rec = net.recorded
    pos = {int(u): k for k, u in enumerate(rec)}
    truth = np.zeros((rec.size, rec.size))
    for a, b, wv in zip(pre, post, w, strict=True):
        if a in pos and b in pos:
            truth[pos[a], pos[b]] += wv
    rates = spikes.rates_hz()
    out = {"minutes": args.minutes, "neurons": int(net.n), "recorded": int(rec.size),
           "simulate_s": sim_s, "rate_hz_median": float(np.median(rates)),
           "rate_hz_range": [float(rates.min()), float(rates.max())],
           "true_E_links": int((truth > 0).sum()), "true_I_links": int((truth < 0).sum()), "methods": {}}  # fmt: skip
    methods = {"GLMCC wald": GLMCC(delay_ms="scan"), "GLMCC lr": GLMCC(delay_ms="scan", test="lr"),
               "CC test": CrossCorrelogramTest(alpha=1e-3),
               "jitter": JitterTest(n_surrogates=args.jitter_surrogates, alpha=1e-2)}  # fmt: skip
    for name, m in methods.items():
        t0 = time.perf_counter()
        ds = m.fit(spikes)
        out["methods"][name] = {"fit_s": time.perf_counter() - t0, **score(ds, truth)}
        r = out["methods"][name]
        print(
            f"{name:<12} E: acc {r['E']['accuracy']:.3f} MCC {r['E']['mcc']:.3f} | "
            f"I: acc {r['I']['accuracy']:.3f} MCC {r['I']['mcc']:.3f} | {r['fit_s']:.1f} s",
            flush=True,
        )
    print(json.dumps({k: v for k, v in out.items() if k != "methods"}))
    path = HERE / "results" / "connectivity.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
