"""Connectivity constraints, with and without: the constrained twin over seeds.

Runs ``configs/twin_constrained.yaml`` as written (GLMCC + triplet-map constraints) and with
its ``constraints`` block removed, for each assimilation seed (the truth, its recording and
the members' network are the same in every run), on one LocalCluster, and reports for both:

- parameter recovery at the last assimilated cycle (truth, prior and posterior mean with
  95 % interval, sd ratio prior/posterior in the transformed space);
- connectivity among the 60 recorded neurons implied by the posterior ensemble (a directed
  synapse is present where more than half of the members have it, with its sign) against
  the truth's synapses: MCC of presence, and MCC of E and of I links;
- held-out prediction: the RMSE of the ensemble-mean prediction of each recorded neuron's
  window-mean (Anscombe) spike count over the held-out windows (never assimilated), and
  the RMSE of the predicted pairwise synchrony (coincidences within ±5 ms per second,
  minus chance) over all recorded pairs, predicted by the posterior ensemble simulated over
  the held-out interval, against the truth's held-out spikes;
- the run time of both.

    python benchmarks/constrained.py [--seeds 1 2 3] [--members 100] [--runs with without]
        [--undetected keep|remove] [--observe LINKS FROM_CYCLE]
        [--observe-triplets TRIPLETS FROM_CYCLE] [--keep FOLDER] [--out results/constrained.json]

``--structure RUN`` instead reports, for a constrained run kept with ``--keep``, how far each
way of building the members' network (``glmcc.undetected`` × ``glmcc.in_degree``) leaves the
recorded neurons' rates from the truth's at the truth's parameters (:func:`structure_errors`):

    python benchmarks/constrained.py --structure FOLDER/seed1_with.run.zarr
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from enkf.driver import open_run  # noqa: E402
from enkf.driver.run import load, start  # noqa: E402
from enkf.driver.twin import truth_network  # noqa: E402
from enkf.run_config import parse_run_config  # noqa: E402
from model import advance, initial_state  # noqa: E402
from model.network import csr_rows  # noqa: E402
from observations import open_store  # noqa: E402

CONFIG = ROOT / "configs" / "twin_constrained.yaml"
SYNC_MS = 5.0


def config_text(seed: int, constrained: bool, members: int, undetected: str | None = None,
                observe: tuple[int, int] | None = None,
                observe_triplets: tuple[int, int] | None = None) -> str:  # fmt: skip
    text = CONFIG.read_text()
    for block, what, counts in (("glmcc", "links", observe), ("triplets", "triplets", observe_triplets)):
        if counts is not None:  # (how many, from_cycle)
            observe_text = f", observe: {{{what}: {counts[0]}, from_cycle: {counts[1]}}}}}"
            text = re.sub(rf"(\n  {block}: \{{.*)\}}", lambda m, o=observe_text: m.group(1) + o, text)
    if undetected is not None:
        text = re.sub(r"(\n  glmcc: \{.*)undetected: \w+", rf"\g<1>undetected: {undetected}", text)
    text = re.sub(r"(\n  seed: )1\n(cluster)", rf"\g<1>{seed}\n\2", text)  # constraints.seed
    text = re.sub(r"(assimilation:(?:\n  .*)*?\n  seed: )\d+", rf"\g<1>{seed}", text)
    text = re.sub(r"members: \d+", f"members: {members}", text)
    if not constrained:
        text = re.sub(r"\nconstraints:\n(?:  .*\n)+", "\n", text)
    return text


def mcc(pred: np.ndarray, true: np.ndarray) -> float:
    tp = float((pred & true).sum())
    tn = float((~pred & ~true).sum())
    fp = float((pred & ~true).sum())
    fn = float((~pred & true).sum())
    den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / den if den > 0 else 0.0


def signed_matrix(pre, post, excitatory, index) -> np.ndarray:
    """(n, n) matrix among recorded neurons: +1 E link, −1 I link, 0 none."""
    n = len(index)
    W = np.zeros((n, n), np.int8)
    for a, b, e in zip(pre, post, excitatory, strict=True):
        if a in index and b in index:
            W[index[a], index[b]] = 1 if e else -1
    return W


def truth_links(cfg, network, observed) -> np.ndarray:
    return spec_links(truth_network(cfg, network), observed)


def spec_links(net, observed) -> np.ndarray:
    """The signed matrix of ``net``'s own (spec) synapses among ``observed``."""
    index = {int(u): i for i, u in enumerate(observed)}
    pre = csr_rows(net.syn_ptr)
    keep = np.isin(pre, observed) & np.isin(net.syn_post, observed)
    return signed_matrix(pre[keep], net.syn_post[keep], net.excitatory[pre[keep]], index)


def ensemble_links(driver, observed) -> np.ndarray:
    """Links the posterior ensemble implies (majority of members)."""
    index = {int(u): i for i, u in enumerate(observed)}
    W = spec_links(driver.network, observed)
    cs = driver.constraints
    if cs is not None:
        present = (cs.synapse_weight > 0).mean(axis=0) > 0.5
        W += signed_matrix(cs.syn_pre[present], cs.syn_post[present], cs.syn_excitatory[present], index)
    return W


def synchrony(times_by_unit, t0, t1) -> np.ndarray:
    """Excess coincidences (|Δt| ≤ SYNC_MS) per second of every pair, (n(n−1)/2,)."""
    T = t1 - t0
    w = SYNC_MS * 1e-3
    n = len(times_by_unit)
    out = []
    for i in range(n):
        a = times_by_unit[i]
        for j in range(i + 1, n):
            b = times_by_unit[j]
            lo = np.searchsorted(b, a - w, "left")
            hi = np.searchsorted(b, a + w, "right")
            c = (hi - lo).sum() / T
            out.append(c - (a.size / T) * (b.size / T) * 2 * w)
    return np.array(out)


def heldout_synchrony(driver, ds, observed, t0, t1, spin_s=2.0, n_members=20) -> np.ndarray:
    """Mean predicted synchrony of the posterior ensemble (the analysis parameters of the
    last assimilated cycle; ``n_members`` members, spun up for ``spin_s``) over (t0, t1]."""
    k_last = ds.sizes["cycle"] - driver.asm.holdout_cycles - 1
    theta = ds["param"].isel(cycle=k_last, stage=1).values[:n_members]
    members = np.arange(n_members)
    params = driver.params.member_params(theta, members)
    net = driver.network
    state = initial_state(net, n_members, 991)
    start_step = int(round((t0 - spin_s) / net.dt_s))
    state = dataclasses.replace(state, step=start_step)
    _, rec = advance(net, params, state, start_step * net.dt_s, t1, 4242)
    sync = []
    for m in range(n_members):
        t, j = rec.member(m)
        keep = t > t0
        sync.append(synchrony([np.sort(t[keep & (j == u)]) for u in observed], t0, t1))
    return np.mean(sync, axis=0)


def score(path: Path, cfg, wall_s: float) -> dict:
    ds = open_run(path)
    driver = load(path)
    C, H = ds.sizes["cycle"], driver.asm.holdout_cycles
    k_last = C - H - 1
    P = driver.params
    post = ds["param"].isel(cycle=k_last, stage=1).values
    U_post = P.to_u(post)
    params = []
    for i, name in enumerate(P.names):
        truth = float(ds["param_truth"].values[i])
        m = float(post[:, i].mean())
        lo, hi = np.percentile(post[:, i], [2.5, 97.5])
        params.append({
            "name": name, "truth": truth, "prior_mean": float(ds["prior_mean"].values[i]),
            "post_mean": m, "post_lo": float(lo), "post_hi": float(hi),
            "err_pct": 100 * (m - truth) / truth if np.isfinite(truth) else None,
            "inside_95": bool(lo <= truth <= hi) if np.isfinite(truth) else None,
            "sd_ratio": float(P.sd_u[i] / U_post[:, i].std(ddof=1)),
        })  # fmt: skip
    observed = np.sort(driver.plan.model.neurons)
    W_true = truth_links(cfg, driver.network, observed)
    W_ens = ensemble_links(driver, observed)
    off = ~np.eye(observed.size, dtype=bool)
    conn = {
        "true_links": int((W_true[off] != 0).sum()),
        "ensemble_links": int((W_ens[off] != 0).sum()),
        "mcc": mcc(W_ens[off] != 0, W_true[off] != 0),
        "mcc_E": mcc(W_ens[off] > 0, W_true[off] > 0),
        "mcc_I": mcc(W_ens[off] < 0, W_true[off] < 0),
    }
    hold = slice(C - H, C)
    d = ds["innovation"].isel(cycle=hold).values
    rate_rmse = float(np.sqrt(np.nanmean(d**2)))
    t0 = float(ds["window_start_s"].values[C - H])
    t1 = float(ds["window_end_s"].values[C - 1])
    sp = open_store(path / "twin_observations.zarr").spikes.between(t0, t1)
    truth_trains = [sp.train(int(np.flatnonzero(sp.unit_ids == u)[0])) for u in observed]
    s_true = synchrony(truth_trains, t0, t1)
    s_pred = heldout_synchrony(driver, ds, observed, t0, t1)
    return {
        "wall_s": wall_s,
        "params": params,
        "connectivity": conn,
        "heldout": {
            "t0_s": t0, "t1_s": t1,
            "rate_rmse_anscombe": rate_rmse,
            "sync_rmse_hz": float(np.sqrt(np.mean((s_pred - s_true) ** 2))),
            "sync_true_mean_hz": float(s_true.mean()),
        },
        "constraints": json.loads(ds.attrs.get("constraints") or "{}"),
        "statistics": statistic_fit(ds, k_last),
        "source_strength": {name: {"prior_mean": float(ds["prior_mean"].values[i]),
                                   "post_mean": float(post[:, i].mean())}
                            for i, name in enumerate(P.names) if name.startswith("source_")},
    }  # fmt: skip


def statistic_fit(ds, k_last: int) -> dict:
    """For each assimilated estimator statistic (link J, triplet θ): how far the members'
    forecast is from the recording's, in error sd (the RMS of (y − hx_mean)/sqrt(error
    var)), at the first cycle it is assimilated and at the last assimilated cycle, and how
    many of its values were assimilated there."""
    out = {}
    for p in ("link", "triplet"):
        if f"{p}_y" not in ds:
            continue
        y, m = ds[f"{p}_y"].values, ds[f"{p}_hx_mean"].values
        var = ds[f"{p}_error_var"].values
        z = ((y - m) / np.sqrt(var)).reshape(y.shape[0], -1)
        cycles = [k for k in range(k_last + 1) if np.isfinite(z[k]).any()]
        if not cycles:
            continue
        z2 = np.where(np.isfinite(z), z**2, 0.0)
        rms = np.sqrt(z2.sum(axis=1) / np.maximum(np.isfinite(z).sum(axis=1), 1))  # (cycle,)
        out[p] = {"first_cycle": cycles[0], "z_rms_first": float(rms[cycles[0]]),
                  "z_rms_last": float(rms[k_last]), "n_used_last": int(np.isfinite(z[k_last]).sum())}  # fmt: skip
    return out


def structure_errors(path: Path, n_members: int = 8, seconds: float = 30.0) -> dict:
    """How far each way of building the members' network leaves the recorded neurons' rates
    from the truth's, with every estimated parameter at its truth (the sources' strengths at
    the run's posterior mean): the members' mean rate per recorded neuron over ``seconds``
    (after 2 s), against the truth's over its whole recording. Reported: the RMSE (Hz), the
    RMSE after removing each population's mean error (what the drives cannot absorb), and
    the mean error of four groups of recorded neurons (those with a hidden input in a triplet
    or a pair, those with strong links among them, the I neurons)."""
    from enkf.driver.params import ParameterSet
    from model import build_network
    from model.overlay import with_member_synapses

    ds, driver = open_run(path), load(path)
    cfg, cs, P = driver.cfg, driver.constraints, driver.params
    observed = np.sort(driver.plan.model.neurons)
    sp = open_store(path / "twin_observations.zarr").spikes
    at = {int(u): i for i, u in enumerate(sp.unit_ids)}
    true_rate = sp.rates_hz()[[at[int(u)] for u in observed]]
    k_last = ds.sizes["cycle"] - driver.asm.holdout_cycles - 1
    theta = ds["param"].isel(cycle=k_last, stage=1).values.mean(axis=0)
    base = build_network(cfg.network.spec, cfg.network.seed)
    unconstrained = ParameterSet(cfg.parameters, base)
    theta[: len(cfg.parameters)] = unconstrained.check_truth(cfg.twin.truth)
    theta = np.tile(theta, (n_members, 1))
    members = np.arange(n_members)
    exc_rec = driver.network.excitatory[observed]
    groups = {"E_triplet_input": slice(0, 18), "E_pair_input": slice(18, 30),
              "E_strong_links": slice(30, 48), "I": slice(48, 60)}  # fmt: skip

    def rates(net, params) -> dict:
        _, rec = advance(net, params, initial_state(net, n_members, 991), 0.0, seconds + 2.0, 4242)
        r = np.zeros(observed.size)
        for m in range(n_members):
            t, j = rec.member(m)
            r += np.bincount(j[t > 2.0], minlength=net.n)[observed] / seconds / n_members
        d = r - true_rate
        dm = np.where(exc_rec, d - d[exc_rec].mean(), d - d[~exc_rec].mean())
        return {"rmse_hz": float(np.sqrt(np.mean(d**2))), "rmse_demeaned_hz": float(np.sqrt(np.mean(dm**2))),
                **{f"mean_error_{g}_hz": float(d[sl].mean()) for g, sl in groups.items()}}  # fmt: skip

    out = {}
    tnet = truth_network(cfg, base)
    tp = ParameterSet(cfg.parameters, tnet)
    out["truth's network"] = rates(tnet, tp.member_params(np.tile(tp.check_truth(cfg.twin.truth), (n_members, 1))))
    out["unconstrained"] = rates(base, unconstrained.member_params(theta[:, : len(cfg.parameters)]))
    params = P.member_params(theta, members)
    remove = {"replace_among": cs.observed, "replace_pairs": np.empty((0, 2), np.int64)}
    keep = {"replace_among": np.empty(0, np.int64), "replace_pairs": np.column_stack([cs.syn_pre, cs.syn_post])}
    for undetected, rule in (("keep", keep), ("remove", remove)):
        for in_degree in ("add", "conserve"):
            st = dict(cs.structure(), **rule, conserve_in_degree=in_degree == "conserve")
            out[f"undetected {undetected}, in_degree {in_degree}"] = rates(with_member_synapses(base, **st), params)
    for name, r in out.items():
        print(f"{name:40s} RMSE {r['rmse_hz']:.2f} Hz, without the population means {r['rmse_demeaned_hz']:.2f} Hz",
              flush=True)  # fmt: skip
    return {"run": str(path), "members": n_members, "seconds": seconds, "variants": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--members", type=int, default=100)
    ap.add_argument("--out", help="results file (default results/constrained.json, "
                                  "results/constrained_structure.json with --structure)")
    ap.add_argument("--runs", nargs="+", choices=("with", "without"), default=["with", "without"],
                    help="which of the two runs to make per seed (default both)")
    ap.add_argument("--undetected", choices=("keep", "remove"),
                    help="glmcc.undetected for the constrained run (default: the config's)")
    ap.add_argument("--observe", type=int, nargs=2, metavar=("LINKS", "FROM_CYCLE"),
                    help="also assimilate the GLMCC J of this many links from this cycle on "
                         "(constraints.glmcc.observe) in the constrained run")
    ap.add_argument("--observe-triplets", type=int, nargs=2, metavar=("TRIPLETS", "FROM_CYCLE"),
                    help="also assimilate the θ's of this many excitatory triplets from this cycle "
                         "on (constraints.triplets.observe) in the constrained run")
    ap.add_argument("--structure", metavar="RUN",
                    help="only report the structural error of the ways to build the members' "
                         "network, for this constrained run of the benchmark (see structure_errors)")
    ap.add_argument("--keep", help="folder to keep the runs in (default: a temporary one)")
    args = ap.parse_args()
    results = ROOT / "benchmarks" / "results"
    if args.out is None:
        args.out = str(results / ("constrained_structure.json" if args.structure else "constrained.json"))
    if args.structure:
        out = structure_errors(Path(args.structure))
        Path(args.out).write_text(json.dumps(out, indent=1))
        return
    from distributed import Client, LocalCluster

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="constrained-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as lc, Client(lc) as client:
        for seed in args.seeds:
            for constrained in [r == "with" for r in args.runs]:
                text = config_text(seed, constrained, args.members, args.undetected, args.observe,
                                   args.observe_triplets)
                cfg = parse_run_config(text, str(CONFIG), CONFIG.parent)
                path = work / f"seed{seed}_{'with' if constrained else 'without'}.run.zarr"
                t = time.perf_counter()
                start((cfg, text), out=path, overwrite=True, client=client)
                wall = time.perf_counter() - t
                r = score(path, cfg, wall)
                r.update({"seed": seed, "constrained": constrained})
                rows.append(r)
                h = r["heldout"]
                print(f"seed {seed} {'with   ' if constrained else 'without'}: MCC "
                      f"{r['connectivity']['mcc']:.3f} (E {r['connectivity']['mcc_E']:.3f}, I "
                      f"{r['connectivity']['mcc_I']:.3f}); held-out rate RMSE "
                      f"{h['rate_rmse_anscombe']:.4f}, synchrony RMSE {h['sync_rmse_hz']:.4f} Hz; "
                      f"{wall:.0f} s", flush=True)  # fmt: skip
    summary = {}
    for constrained in [r == "with" for r in args.runs]:
        sel = [r for r in rows if r["constrained"] == constrained]
        key = "with" if constrained else "without"
        summary[key] = {
            m: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0}
            for m, v in {
                "mcc": [r["connectivity"]["mcc"] for r in sel],
                "rate_rmse": [r["heldout"]["rate_rmse_anscombe"] for r in sel],
                "sync_rmse_hz": [r["heldout"]["sync_rmse_hz"] for r in sel],
                "wall_s": [r["wall_s"] for r in sel],
            }.items()
        }
    out = {"config": str(CONFIG.relative_to(ROOT)), "seeds": args.seeds, "members": args.members,
           "summary": summary, "runs": rows}  # fmt: skip
    Path(args.out).write_text(json.dumps(out, indent=1, default=float))
    print(json.dumps(summary, indent=1))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
