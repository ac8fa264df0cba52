"""The calcium forward operator on real ground truth (Chen et al. 2013, GCaMP6f/6s in mouse V1).

For every recording in /work/shared/data/calcium_gt (simultaneous cell-attached spikes and
two-photon ΔF/F at 60 Hz), in one run:

  * R² of the preset kinetics with only amplitude and per-segment baselines fitted;
  * R² of the full fit (τ_rise, τ_decay, Hill n, c_rest as well), the fitted calcium
    kinetics, the observable ΔF/F rise and decay of the fitted model
    (CalciumOperator.dff_kinetics) and whether those lie in the published ranges
    (observations.operators.calcium.PUBLISHED_RANGES, which are ΔF/F kinetics);
  * R² of leave-one-out presets: kinetics fitted on the *other* cells of the same indicator,
    applied to this one (the presets themselves come from all cells, so this is the
    honest check of how they carry over);
  * the mean response to isolated spikes, in the data and in both fitted models.

Every fit uses the recording's exposure (GroundTruth.exposure_s = SOMA_SCAN_EXPOSURE_S,
1.5 ms: the time stamps mark the soma's scan time). Then the presets are derived again
(fit_preset, n = 2 and c_rest = 1 held) and compared
with INDICATORS, and ``predict`` is timed for 10⁴ units × 1 s of imaging at 30 Hz with
~5 Hz Poisson spikes per unit (one ensemble member).

    python benchmarks/calcium_gt.py [--data DIR] [--repeats 20]

Writes benchmarks/results/calcium_gt.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from observations import SpikeTrains  # noqa: E402
from observations.operators.calcium import (  # noqa: E402
    INDICATORS,
    PUBLISHED_RANGES,
    SOMA_SCAN_EXPOSURE_S,
    CalciumOperator,
    fit_kinetics,
    fit_preset,
    load_ground_truth,
)

DATA = Path("/work/shared/data/calcium_gt")
# Isolated spike: no other spike within this many seconds on either side (≈ 2 τ_decay).
ISOLATION_S = {"GCaMP6f": 1.0, "GCaMP6s": 2.0}


def isolated_response(gt, traces, isolation_s: float, pre_s: float = 0.3):
    """Mean ΔF/F after isolated spikes, minus the mean over ``pre_s`` before each spike.

    Returns (number of isolated spikes, peak of the mean response, its time after the spike
    in s). The same spikes and frames are used for data and model traces, so the peaks
    compare like with like.
    """
    fr = gt.frame_rate_hz
    n_pre, n_post = round(pre_s * fr), round(isolation_s * fr)
    rows = []
    for seg, y in zip(gt.segments, traces, strict=True):
        s = seg.spike_times_s
        for i, x in enumerate(s):
            if (i > 0 and x - s[i - 1] < isolation_s) or (
                i + 1 < s.size and s[i + 1] - x < isolation_s
            ):
                continue
            f = int(np.searchsorted(seg.frame_times_s, x))
            if f - n_pre < 0 or f + n_post > y.size:
                continue
            rows.append(y[f : f + n_post] - np.nanmean(y[f - n_pre : f]))
    if not rows:
        return 0, float("nan"), float("nan")
    mean = np.nanmean(np.array(rows), axis=0)
    k = int(np.argmax(mean))
    return len(rows), float(mean[k]), float(k / fr)


def in_range(indicator: str, name: str, value: float) -> bool:
    lo, hi = PUBLISHED_RANGES[indicator][name]
    return bool(lo <= value <= hi)


def start_operator(gt) -> CalciumOperator:
    """The preset operator at the recording's frame rate and exposure."""
    return CalciumOperator(gt.indicator, frame_rate_hz=gt.frame_rate_hz, exposure_s=gt.exposure_s)


def held_presets(gt) -> CalciumOperator:
    """The operator whose kinetics are fitted like the presets: n = 2 and c_rest = 1 held."""
    return start_operator(gt).replace(hill_n=2.0, c_rest=1.0)


def recording_row(gt, others) -> dict:
    args = (gt.spike_times_s, gt.frame_times_s, gt.dff, None)
    lin = fit_kinetics(*args, fit=("amplitude", "baseline"), start=start_operator(gt))
    full = fit_kinetics(*args, fit="all", start=start_operator(gt))
    row = {
        "recording": gt.name,
        "indicator": gt.indicator,
        "segments": len(gt.segments),
        "frames": int(sum(s.dff.size for s in gt.segments)),
        "spikes": gt.n_spikes,
        "noise_nu": full.params["noise_nu"],
        "r2_preset": lin.r2,
        "r2_all": full.r2,
        "r2_all_per_segment": [float(v) for v in full.r2_per_segment],
    }
    for p in (
        "tau_rise_s",
        "tau_decay_s",
        "hill_n",
        "c_rest",
        "dff_rise_s",
        "dff_decay_s",
        "amplitude",
        "single_spike_dff",
    ):
        row[p] = full.params[p]
    row["at_bounds"] = list(full.at_bounds)
    row["dff_rise_in_range"] = in_range(gt.indicator, "rise_s", full.params["dff_rise_s"])
    row["dff_decay_in_range"] = in_range(gt.indicator, "decay_s", full.params["dff_decay_s"])
    row["nfev"] = full.nfev

    if others:
        start = held_presets(gt)
        loo = fit_preset(others, gt.indicator, start=start)
        op = start.replace(tau_rise_s=loo["tau_rise_s"], tau_decay_s=loo["tau_decay_s"])
        held = fit_kinetics(
            gt.spike_times_s, gt.frame_times_s, gt.dff, None, ("amplitude", "baseline"), start=op
        )
        row["r2_preset_leave_one_out"] = held.r2
        row["leave_one_out_kinetics"] = {
            "tau_rise_s": loo["tau_rise_s"],
            "tau_decay_s": loo["tau_decay_s"],
        }

    iso = ISOLATION_S[gt.indicator]
    n_iso, data_peak, data_t = isolated_response(gt, gt.dff, iso)
    _, full_peak, _ = isolated_response(gt, full.predicted, iso)
    _, lin_peak, _ = isolated_response(gt, lin.predicted, iso)
    row["isolated_spikes"] = {
        "n": n_iso,
        "data_peak_dff": data_peak,
        "data_peak_time_s": data_t,
        "model_all_peak_dff": full_peak,
        "model_preset_peak_dff": lin_peak,
    }
    return row


def derive_presets(recordings) -> dict:
    out = {}
    for indicator in INDICATORS:
        cells = [g for g in recordings if g.indicator == indicator]
        if not cells:
            continue
        held = fit_preset(cells, indicator, start=held_presets(cells[0]))
        free = fit_preset(cells, indicator, fit=("tau_rise_s", "tau_decay_s", "hill_n", "c_rest"))
        rise, decay = start_operator(cells[0]).dff_kinetics()
        out[indicator] = {
            "preset": dict(INDICATORS[indicator]),
            "preset_dff_kinetics": {"rise_s": rise, "decay_s": decay},
            "pooled_fit_n2_crest1": held,
            "pooled_fit_all": free,
        }
    return out


def time_predict(repeats: int, seed: int = 20261123) -> dict:
    """Wall time of one predict call: 10⁴ units, 1 s at 30 Hz, Poisson 5 Hz per unit."""
    rng = np.random.default_rng(seed)
    n_units, rate_hz, fr = 10_000, 5.0, 30.0
    counts = rng.poisson(rate_hz, n_units)
    ids = np.repeat(np.arange(n_units), counts)
    spikes = SpikeTrains.from_pairs(
        rng.uniform(0.0, 1.0, ids.size), ids, 0.0, 1.0, unit_ids=np.arange(n_units)
    )
    frames = np.arange(1, 31) / fr
    op = CalciumOperator("GCaMP6f", frame_rate_hz=fr)
    state = op.initial_state(n_units)
    t0 = time.perf_counter()
    _, after = op.predict(spikes, state, frames)  # compiles, or loads numba's cache
    first = time.perf_counter() - t0
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        op.predict(spikes, state, frames)
        walls.append(time.perf_counter() - t0)
    # A second window starts from a state with spikes in flight (the restart path).
    nxt = SpikeTrains.from_pairs(
        rng.uniform(1.0, 2.0, ids.size), ids, 1.0, 2.0, unit_ids=np.arange(n_units)
    )
    walls2 = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        op.predict(nxt, after, frames + 1.0)
        walls2.append(time.perf_counter() - t0)
    med = float(np.median(walls))
    return {
        "n_units": n_units,
        "imaging_s": 1.0,
        "frame_rate_hz": fr,
        "rate_hz": rate_hz,
        "n_spikes": int(ids.size),
        "first_call_s": first,
        "median_s": med,
        "min_s": float(np.min(walls)),
        "median_from_state_s": float(np.median(walls2)),
        "ns_per_unit_frame": med / (n_units * frames.size) * 1e9,
        "real_time_factor": 1.0 / med,
        "repeats": repeats,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "calcium_gt.json")
    args = ap.parse_args(argv)

    files = sorted(args.data.glob("*.npz"))
    if not files:
        print(f"no .npz recordings in {args.data}", file=sys.stderr)
        return 1
    recordings = [load_ground_truth(f) for f in files]
    t0 = time.perf_counter()
    rows = []
    for gt in recordings:
        others = [g for g in recordings if g.indicator == gt.indicator and g is not gt]
        rows.append(recording_row(gt, others))
    fit_wall = time.perf_counter() - t0
    presets = derive_presets(recordings)
    timing = time_predict(args.repeats)

    import numba
    import scipy

    result = {
        "benchmark": "calcium_gt",
        "data": str(args.data),
        "published_ranges": PUBLISHED_RANGES,
        "exposure_s": SOMA_SCAN_EXPOSURE_S,
        "recordings": rows,
        "presets": presets,
        "fit_wall_s": fit_wall,
        "predict_timing": timing,
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "numba": numba.__version__,
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


def render(result: dict) -> str:
    lines = [
        "Real data: Chen et al. 2013 via CASCADE (60 Hz), exposure "
        f"{result['exposure_s'] * 1e3:g} ms ending at each time stamp. "
        "R² = 1 − SS_res / SS around segment means.",
        "",
        f"{'recording':<34} {'ind.':<8} {'seg':>3} {'spk':>4} {'R² pre':>6} {'R² LOO':>6} "
        f"{'R² all':>6} {'τ_r ms':>6} {'τ_d s':>6} {'n':>5} {'c_rest':>7} {'rise ms':>7} "
        f"{'decay s':>7} {'ranges':>6} {'1-AP data/all/preset':>20}",
    ]
    for r in result["recordings"]:
        ok = ("r" if r["dff_rise_in_range"] else "R") + ("d" if r["dff_decay_in_range"] else "D")
        iso = r["isolated_spikes"]
        loo = r.get("r2_preset_leave_one_out", float("nan"))
        bound = "*" if r["at_bounds"] else " "
        lines.append(
            f"{r['recording'][:34]:<34} {r['indicator']:<8} {r['segments']:>3} {r['spikes']:>4} "
            f"{r['r2_preset']:>6.3f} {loo:>6.3f} {r['r2_all']:>6.3f} "
            f"{r['tau_rise_s'] * 1e3:>6.1f} {r['tau_decay_s']:>6.3f} {r['hill_n']:>5.2f} "
            f"{r['c_rest']:>6.3f}{bound} {r['dff_rise_s'] * 1e3:>7.1f} {r['dff_decay_s']:>7.3f} "
            f"{ok:>6} {iso['data_peak_dff']:>7.3f}/{iso['model_all_peak_dff']:.3f}/"
            f"{iso['model_preset_peak_dff']:.3f}"
        )
    lines += [
        "τ_r, τ_d, n, c_rest: calcium kinetics of fit='all'; rise, decay: the observable ΔF/F "
        "kinetics of that model (dff_kinetics)",
        "ranges: r/d in range, R/D out of range (ΔF/F rise/decay vs PUBLISHED_RANGES); * a "
        "kinetic parameter ended on a bound of the fit",
        "1-AP: peak of the mean ΔF/F response to isolated spikes: data / fit='all' model / "
        "preset kinetics",
        "",
        "Presets (INDICATORS) and the pooled fits they come from:",
    ]
    for ind, p in result["presets"].items():
        pre, held, free = p["preset"], p["pooled_fit_n2_crest1"], p["pooled_fit_all"]
        dk = p["preset_dff_kinetics"]
        lines.append(
            f"  {ind}: preset τ_r {pre['tau_rise_s'] * 1e3:.0f} ms, τ_d {pre['tau_decay_s']:.2f} s, "
            f"n {pre['hill_n']:g}, c_rest {pre['c_rest']:g}, amplitude {pre['amplitude']:g}, "
            f"ν {pre['noise_nu']:g}; ΔF/F rise {dk['rise_s'] * 1e3:.1f} ms, "
            f"decay {dk['decay_s']:.3f} s"
        )
        lines.append(
            f"      pooled (n=2, c_rest=1): τ_r {held['tau_rise_s'] * 1e3:.1f} ms, "
            f"τ_d {held['tau_decay_s']:.3f} s, amplitude {held['amplitude']:.4f}, "
            f"ν {held['noise_nu']:.4f}, ΔF/F rise {held['dff_rise_s'] * 1e3:.1f} ms, "
            f"decay {held['dff_decay_s']:.3f} s, R² {np.round(held['r2'], 3).tolist()}"
        )
        lines.append(
            f"      pooled (all four):      τ_r {free['tau_rise_s'] * 1e3:.1f} ms, "
            f"τ_d {free['tau_decay_s']:.3f} s, n {free['hill_n']:.2f}, c_rest {free['c_rest']:.3f}, "
            f"ΔF/F rise {free['dff_rise_s'] * 1e3:.1f} ms, decay {free['dff_decay_s']:.3f} s, "
            f"R² {np.round(free['r2'], 3).tolist()}"
        )
    t = result["predict_timing"]
    lines += [
        "",
        f"predict: {t['n_units']} units × {t['imaging_s']:g} s at {t['frame_rate_hz']:g} Hz, "
        f"{t['n_spikes']} spikes (~{t['rate_hz']:g} Hz/unit), one member",
        f"  median {t['median_s'] * 1e3:.1f} ms (min {t['min_s'] * 1e3:.1f} ms; from a carried "
        f"state {t['median_from_state_s'] * 1e3:.1f} ms) = {t['ns_per_unit_frame']:.0f} ns per "
        f"unit·frame, {t['real_time_factor']:.0f}× real time; first call "
        f"{t['first_call_s']:.2f} s",
        f"  all fits: {result['fit_wall_s']:.1f} s",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
