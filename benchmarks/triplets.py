"""The triplet map: speed on a large recording, theory against simulation, and the motif
classifier's confusion matrices against recording length, in one run.

1. Speed: every triplet of 200 independent Poisson neurons (2–5 Hz) over 1 h at 5-ms bins
   (1,313,400 triplets): θ's, delta-method SEs, Wald and LR tests; wall time and triplets/s
   on all cores (target ≤ 30 s on 2 cores).
2. Theory vs simulation: mean ISI and R̄(A, Δ = 5 ms) of the threshold-regime LIF neuron
   against Euler–Maruyama (dt = 0.01 ms) and the exact OU step with bridge correction
   (dt = 0.1 ms); writes docs/figures/triplet_theory_vs_sim.png.
3. End to end: LIF triplets with each motif (amplitudes 2–10 mV, source rates 2–20 Hz,
   spontaneous rates 2–8 Hz), classified from their first 10⁴, 10⁵ and 10⁶ bins.

    python benchmarks/triplets.py [--reps 8] [--max-bins 1000000] [--skip-speed] [--skip-theory]

Writes benchmarks/results/triplets.json (parts skipped keep their previous numbers); for
every simulated I-all / I-pairs triplet it also stores θ_123 ± SE, rates, the 8 counts, the
status and the label.
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
sys.path.insert(0, str(HERE.parent))

from _results import report  # noqa: E402

from inference import TripletMap  # noqa: E402
from inference.triplet_sim import first_passage_times, probe_rbar, simulate_motif  # noqa: E402
from inference.triplet_theory import ThresholdLIF  # noqa: E402
from observations import SpikeTrains  # noqa: E402

TRUTHS = ("independent", "E-all", "E-pairs", "E-pair", "I-all", "I-pairs")
LABELS = ("independent", "inhibitory or none", "E-all", "E-pairs", "E-pair", "I-all",
          "I-pairs", "I-pair", "undetermined", "silent unit")  # fmt: skip


def speed(n_neurons=200, hours=1.0, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    T = 3600.0 * hours
    rates = rng.uniform(2.0, 5.0, n_neurons)
    trains = [np.sort(rng.uniform(0, T, rng.poisson(r * T))) for r in rates]
    spikes = SpikeTrains.from_lists(trains, t_start_s=0.0, t_stop_s=T)
    est = TripletMap(bin_ms=5.0, classify=False)
    est.fit(spikes, triplets=[[0, 1, 2]])  # compile
    t0 = time.perf_counter()
    est.counts(spikes)
    t_counts = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = est.fit(spikes)
    wall = time.perf_counter() - t0
    n = ds.sizes["triplet"]
    ok = ds.status.values == "ok"
    return {"neurons": n_neurons, "hours": hours, "bins": int(ds.attrs["n_bins"]),
            "triplets": n, "spikes": spikes.n_spikes, "threads": numba.get_num_threads(),
            "counts_wall_s": t_counts, "fit_wall_s": wall, "triplets_per_s": n / wall,
            "lr_false_positive_rate_at_0.001": float(ds.significant.values[ok].mean())}  # fmt: skip


def theory_vs_simulation(figure: Path | None) -> dict:
    out = {}
    A = np.array([-6.0, -2.0, 0.0, 2.0, 4.0, 6.0, 10.0])
    curves = {}
    for rate in (40.0, 10.0, 3.0):
        n = ThresholdLIF.from_rate(rate)
        em = first_passage_times(n, 40000, dt_ms=0.01, method="euler", seed=1)
        ex = first_passage_times(n, 40000, dt_ms=0.1, method="exact", bridge=True, seed=2)
        r_th = n.rbar(A, 5.0)
        r_em = probe_rbar(n, A, 5.0, n_probes=20000, dt_ms=0.01, method="euler", seed=3)
        r_ex = probe_rbar(n, A, 5.0, n_probes=20000, dt_ms=0.1, method="exact", bridge=True,
                          seed=4)  # fmt: skip
        out[f"{rate:g}Hz"] = {
            "ell_mv": n.ell_mv, "mean_isi_theory_ms": n.mean_isi_ms(),
            "mean_isi_euler_ms": float(em.mean()), "mean_isi_exact_bridge_ms": float(ex.mean()),
            "mean_isi_se_ms": float(em.std() / np.sqrt(em.size)),
            "rbar_amplitudes_mv": A.tolist(), "rbar_theory": r_th.tolist(),
            "rbar_euler": r_em.tolist(), "rbar_exact_bridge": r_ex.tolist(),
            "rbar_max_abs_err_euler": float(np.abs(r_em - r_th).max()),
            "rbar_max_abs_err_exact_bridge": float(np.abs(r_ex - r_th).max()),
        }  # fmt: skip
        curves[rate] = (n, em, r_th, r_em, r_ex)
    if figure is not None:
        from enkf.plots import require_matplotlib

        plt = require_matplotlib()
        fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
        for col, (rate, (n, em, _r_th, r_em, r_ex)) in enumerate(curves.items()):
            ax = axes[0, col]
            hi = np.quantile(em, 0.995)
            ax.hist(em, bins=80, range=(0, hi), density=True, color="0.7", label="Euler–Maruyama")
            t = np.linspace(1e-3, hi, 400)
            ax.plot(t, n.isi_density(t), "r", label="f(t) = −dS/dt")
            ax.set_title(f"{rate:g} Hz: E[T] {n.mean_isi_ms():.1f} ms (sim {em.mean():.1f})",
                         fontsize=9)  # fmt: skip
            ax.set_xlabel("ISI (ms)")
            ax.legend(fontsize=7)
            ax = axes[1, col]
            AA = np.linspace(A.min(), A.max(), 200)
            ax.plot(AA, n.rbar(AA, 5.0), "r", label="R̄(A, 5 ms) theory")
            ax.plot(A, r_em, "ko", ms=4, label="Euler–Maruyama kicks")
            ax.plot(A, r_ex, "bx", ms=5, label="exact OU + bridge")
            ax.set_xlabel("input amplitude A (mV)")
            ax.legend(fontsize=7)
        fig.tight_layout()
        figure.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(figure, dpi=110)
        plt.close(fig)
    return out


def end_to_end(reps: int, max_bins: int, seed: int = 7, bin_ms: float = 5.0) -> dict:
    rng = np.random.default_rng(seed)
    lengths = [b for b in (10_000, 100_000, 1_000_000) if b <= max_bins]
    conf = {L: np.zeros((len(TRUTHS), len(LABELS)), int) for L in lengths}
    quadrant = {L: [] for L in lengths}
    inhib_triple = {L: [] for L in lengths}
    inhib_detail = {L: [] for L in lengths}  # every simulated I-all / I-pairs triplet
    e_pairs_triple = {L: [] for L in lengths}
    sim_s = fit_s = 0.0
    est = TripletMap(bin_ms=bin_ms, classify=True)
    for r in range(reps):
        for ti, motif in enumerate(TRUTHS):
            A, nu = rng.uniform(2, 10), rng.uniform(2, 20)
            base = rng.uniform(2, 8, 3)
            t0 = time.perf_counter()
            sp = simulate_motif(motif, A, nu, base, max(lengths) * bin_ms * 1e-3, dt_ms=0.25,
                                seed=int(rng.integers(2**31)))  # fmt: skip
            sim_s += time.perf_counter() - t0
            for L in lengths:
                t0 = time.perf_counter()
                ds = est.fit(sp.between(0.0, L * bin_ms * 1e-3))
                fit_s += time.perf_counter() - t0
                label = str(ds.motif.values[0]) or "silent unit"  # status "silent_unit"
                conf[L][ti, LABELS.index(label)] += 1
                pair, tri = float(ds.theta_pair_mean[0]), float(ds.theta_123[0])
                if motif in ("I-all", "I-pairs"):
                    inhib_detail[L].append({
                        "rep": r, "motif": motif, "amplitude_mv": A, "source_hz": nu,
                        "baseline_hz": base.tolist(), "rate_hz": ds.rate_hz.values.tolist(),
                        "counts": ds.pattern_count.values[0].tolist(),
                        "status": str(ds.status.values[0]), "theta_123": tri,
                        "se_theta_123": float(ds.se_theta_123[0]), "theta_pair_mean": pair,
                        "lr_p": float(ds.lr_p[0]), "label": label,
                        "release_p": float(ds.motif_release_p[0])})  # fmt: skip
                if label == "silent unit":
                    continue
                if motif == "E-pairs":
                    quadrant[L].append(pair > 0 and tri < 0 and bool(ds.significant[0]))
                    e_pairs_triple[L].append(tri)
                if motif in ("I-all", "I-pairs"):
                    inhib_triple[L].append(tri)
        print(f"rep {r + 1}/{reps} done ({sim_s:.0f} s simulating, {fit_s:.0f} s fitting)")
    out = {"truths": list(TRUTHS), "labels": list(LABELS), "reps": reps, "bin_ms": bin_ms,
           "simulate_s": sim_s, "fit_s": fit_s}  # fmt: skip
    exc = [TRUTHS.index(m) for m in ("independent", "E-all", "E-pairs")]
    for L in lengths:
        C = conf[L]
        correct = 0
        for ti in exc:
            hit = C[ti, LABELS.index(TRUTHS[ti])]
            if TRUTHS[ti] == "independent":  # "none" is the right answer, said honestly
                hit += C[ti, LABELS.index("inhibitory or none")]
            correct += hit
        I_rows = [TRUTHS.index("I-all"), TRUTHS.index("I-pairs")]
        quiet = [LABELS.index("inhibitory or none"), LABELS.index("independent"),
                 LABELS.index("I-all"), LABELS.index("I-pairs"), LABELS.index("I-pair")]  # fmt: skip
        out[f"bins_{L}"] = {
            "confusion": C.tolist(),
            "excitatory_accuracy": correct / C[exc].sum(),
            "e_pair_accuracy": C[3, LABELS.index("E-pair")] / C[3].sum(),
            "inhibitory_reported_quiet": C[np.ix_(I_rows, quiet)].sum() / C[I_rows].sum(),
            "e_pairs_lower_right_significant": float(np.mean(quadrant[L])),
            "inhibitory_theta_123_min": float(np.min(inhib_triple[L])),
            "inhibitory_theta_123_median": float(np.median(inhib_triple[L])),
            # the strongest negative θ_123 of shared inhibition that is significant (LR) on
            # counts without empty cells, against the weakest of E-pairs
            "inhibitory_theta_123_min_ok_significant": min(
                [d["theta_123"] for d in inhib_detail[L]
                 if d["status"] == "ok" and d["lr_p"] < est.alpha], default=None),
            "e_pairs_theta_123_max": float(np.max(e_pairs_triple[L])),
            "e_pairs_theta_123_median": float(np.median(e_pairs_triple[L])),
            "inhibitory_triplets": inhib_detail[L],
        }  # fmt: skip
        print(f"\n{L} bins (rows truth, columns label: {', '.join(LABELS)})")
        for ti, m in enumerate(TRUTHS):
            print(f"  {m:12s} {C[ti]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=8, help="triplets per motif (default 8)")
    ap.add_argument("--max-bins", type=int, default=1_000_000)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-theory", action="store_true")
    args = ap.parse_args()
    # parts skipped in this run keep their previous numbers
    old = HERE / "results" / "triplets.json"
    fields = json.loads(old.read_text()) if old.exists() else {}
    if not args.skip_speed:
        fields["speed"] = speed()
        print(fields["speed"])
    if not args.skip_theory:
        fig = HERE.parent / "docs" / "figures" / "triplet_theory_vs_sim.png"
        fields["theory_vs_simulation"] = theory_vs_simulation(fig)
        print({k: (v["mean_isi_theory_ms"], v["mean_isi_euler_ms"], v["rbar_max_abs_err_euler"])
               for k, v in fields["theory_vs_simulation"].items()})  # fmt: skip
    fields["end_to_end"] = end_to_end(args.reps, args.max_bins)
    report("triplets", fields)


if __name__ == "__main__":
    main()
