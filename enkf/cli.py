"""The ``spikeda`` command line.

Every subcommand turns a bad input into one line on stderr and a non-zero exit status:
2 for a bad config or argument, 1 for a run that fails its own checks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from enkf.config import ConfigError

EXIT_BAD_INPUT = 2
EXIT_CHECK_FAILED = 1


def _twin_toy(args) -> int:
    from enkf import config, toy_twin

    cfg = config.load(args.config, config.ToyTwinConfig)
    if args.cycles is not None and args.cycles < 1:
        raise ConfigError(f"--cycles must be ≥ 1, got {args.cycles}")
    results = toy_twin.run(cfg, seeds=args.seeds, cycles=args.cycles)
    text, rows = toy_twin.table(cfg, results)
    print(f"{cfg.model.name} twin, {args.config}: time-averaged analysis RMSE after burn-in")
    print(text)
    if args.json:
        out = {"config": str(args.config), "rows": rows, "runs": [r.summary() for r in results]}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    if any(r["diverged"] for r in rows):
        print("spikeda: a filter diverged (time-averaged RMSE > 1)", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return 0


def _simulate(args) -> int:
    from enkf.simulation import simulate

    summary = simulate(args.config, args.duration_s, args.out, args.members, args.seed)
    print(summary.line())
    return 0


def _run(args) -> int:
    from enkf import driver

    try:
        summary = driver.start(args.config, out=args.out, cluster=args.cluster,
                               workers=args.workers, overwrite=args.overwrite)  # fmt: skip
    except driver.RunError as exc:
        print(f"spikeda run: {exc}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    except KeyboardInterrupt:
        return _interrupted("run")
    return _finish(summary)


def _resume(args) -> int:
    from enkf import driver

    try:
        summary = driver.resume(args.run, cluster=args.cluster, workers=args.workers)
    except driver.RunError as exc:
        print(f"spikeda resume: {exc}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    except KeyboardInterrupt:
        return _interrupted("resume")
    return _finish(summary)


def _interrupted(command: str) -> int:
    print(f"\nspikeda {command}: interrupted; the complete cycles are kept, `spikeda resume RUN` "
          "continues from the last one", file=sys.stderr)  # fmt: skip
    return 130


def _finish(summary) -> int:
    from enkf import driver

    ds = driver.open_run(summary.path)
    print(driver.report(ds))
    done = ds.attrs["completed_cycles"]
    print(f"{summary.cycles} cycle(s) run in {summary.wall_s:.1f} s ({done}/{ds.attrs['n_cycles']} complete)"
          + (f", resumed after cycle {summary.resumed_from}" if summary.resumed_from else "")
          + f" -> {summary.path}")  # fmt: skip
    return 0


def _parse_options(items) -> dict:
    """``key=value`` pairs from the command line; values are YAML scalars (numbers, lists)."""
    import yaml

    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option takes key=value, got {item!r}")
        options[key.replace("-", "_")] = yaml.safe_load(value)
    return options


def _ingest(args) -> int:
    from observations import validate_store
    from observations.ingest import ingest

    summary = ingest(args.kind, args.src, args.out, **_parse_options(args.option))
    _, qc = validate_store(args.out)
    print(summary.line() + (f"; QC: {qc.line()}" if qc is not None else ""))
    return 0


def _estimator_input(obs: Path, out: Path, purpose: str):
    """The spike trains of observation store ``obs`` for an estimator whose result goes to
    the new path ``out`` (refused if it exists, before any work)."""
    from observations import open_store

    store = open_store(obs)
    if store.spikes is None:
        raise ConfigError(f"{obs}: has no spikes/ to {purpose}")
    if out.exists():
        raise ConfigError(f"{out}: exists already; choose a new output path")
    return store.spikes


def _write_result(ds, out: Path, source: Path) -> None:
    """Write a result Dataset to ``out`` atomically: a crash leaves no half-written store."""
    import os
    import shutil

    ds.attrs["source_store"] = str(source)
    tmp = out.with_name(f".{out.name}.incomplete-{os.getpid()}")
    try:
        ds.to_zarr(tmp, mode="w-", consolidated=False)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _unit_positions(items, spikes, n: int, flag: str, shape: str) -> list[list[int]]:
    """``--pairs``/``--triplets`` items of ``n`` comma-separated unit ids → positions."""
    index = {int(u): k for k, u in enumerate(spikes.unit_ids)}
    out = []
    for item in items:
        try:
            ids = [int(x) for x in item.split(",")]
            if len(ids) != n:
                raise ValueError
            out.append([index[u] for u in ids])
        except (ValueError, KeyError):
            raise ConfigError(f"{flag} {item!r}: expected {shape} of the store") from None
    return out


def _glmcc(args) -> int:
    import time

    import numpy as np

    from inference import GLMCC

    spikes = _estimator_input(args.obs, args.out, "estimate connections from")
    delay = "scan" if args.delay_ms == "scan" else float(args.delay_ms)
    est = GLMCC(delay_ms=delay, test=args.test)
    pairs = (
        _unit_positions(args.pairs, spikes, 2, "--pairs", "PRE,POST unit ids")
        if args.pairs
        else None
    )
    t0 = time.perf_counter()

    def progress(done, total):
        if time.perf_counter() - t0 > 2.0:
            print(f"\r{done}/{total} pairs", end="", file=sys.stderr, flush=True)

    ds = est.fit(spikes, pairs=pairs, progress=progress)
    wall = time.perf_counter() - t0
    _write_result(ds, args.out, args.obs)
    sig = ds.significant.values
    J = np.nan_to_num(ds.J.values)
    tested = int((ds.status.values == "ok").sum())
    print(
        f"glmcc ({args.test}, delay {args.delay_ms} ms): {spikes.n_units} units, {tested} directed pairs "
        f"tested in {wall:.2f} s; {int((sig & (J > 0)).sum())} excitatory and "
        f"{int((sig & (J < 0)).sum())} inhibitory connections -> {args.out}"
    )
    return 0


def _triplets(args) -> int:
    import time

    import numpy as np

    from inference import TripletMap

    spikes = _estimator_input(args.obs, args.out, "estimate triplet interactions from")
    classify = {"auto": "auto", "yes": True, "no": False}[args.classify]
    est = TripletMap(bin_ms=args.bin_ms, pseudo_count=args.pseudo_count, n_boot=args.n_boot,
                     classify=classify)  # fmt: skip
    triplets = None
    if args.triplets:
        triplets = _unit_positions(args.triplets, spikes, 3, "--triplets", "three unit ids (A,B,C)")
    t0 = time.perf_counter()
    ds = est.fit(spikes, triplets=triplets)
    wall = time.perf_counter() - t0
    _write_result(ds, args.out, args.obs)
    n = ds.sizes["triplet"]
    sig = int(ds.significant.values.sum())
    motifs = ""
    if "motif" in ds:
        labels, counts = np.unique(ds.motif.values, return_counts=True)
        pairs = zip(labels, counts, strict=True)
        motifs = "; motifs: " + ", ".join(f"{c} {lab}" for lab, c in pairs)
    print(
        f"triplets (bin {args.bin_ms:g} ms): {spikes.n_units} units, {n} triplets in {wall:.2f} s; "
        f"{sig} with θ_123 ≠ 0 (LR, α = {est.alpha:g}){motifs} -> {args.out}"
    )
    return 0


def _plot(args) -> int:
    from enkf.plots import plot_store

    options = _parse_options(args.option)
    if args.pair:
        options["pairs"] = [_id_pair(item, "--pair") for item in args.pair]
    paths = plot_store(args.store, args.out, **options)
    for path in paths:
        print(path)
    return 0


def _id_pair(item: str, flag: str) -> tuple[int, int]:
    """``PRE,POST`` → two integer unit ids."""
    try:
        a, b = (int(x) for x in item.split(","))
    except ValueError:
        raise ConfigError(f"{flag} {item!r}: expected PRE,POST unit ids") from None
    return a, b


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikeda",
        description="Ensemble data assimilation for spiking network models of the brain.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "twin-toy",
        help="run a twin experiment on a toy model (Lorenz-96/63) from a YAML config",
        description="Truth run, synthetic observations and assimilation on Lorenz-96 or "
        "Lorenz-63; prints the time-averaged analysis RMSE beside the published values.",
    )
    p.add_argument("config", type=Path, help="YAML config, e.g. configs/l96_sakov2008.yaml")
    p.add_argument("--seeds", type=int, nargs="+", help="override the config's seeds")
    p.add_argument("--cycles", type=int, help="override the number of assimilation cycles")
    p.add_argument("--json", type=Path, help="also write the table and per-run scores here")
    p.set_defaults(func=_twin_toy)

    p = sub.add_parser(
        "simulate",
        help="simulate a network spec and write its spikes as an observation store",
        description="Build the network of a spec (configs/coba.yaml, ...), simulate it and "
        "write the recorded spikes, population rates and wall time to a new Zarr store.",
    )
    p.add_argument("config", type=Path, help="network spec YAML, e.g. configs/coba.yaml")
    p.add_argument("--duration-s", type=float, required=True, help="simulated time (s)")
    p.add_argument("--members", type=int, default=1, help="members to simulate (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of structure, initial state and drive")
    p.add_argument("--out", type=Path, required=True, help="new observation store (*.zarr)")
    p.set_defaults(func=_simulate)

    p = sub.add_parser(
        "run",
        help="run an ensemble assimilation from a YAML config (members as Dask tasks)",
        description="Assimilate the observations of a config with an ensemble of network "
        "members run as Dask tasks; write run.zarr cycle by cycle and print the table of "
        "prior and posterior parameters.",
    )
    p.add_argument("config", type=Path, help="run config YAML, e.g. configs/quickstart.yaml")
    p.add_argument("--out", type=Path, help="the run's store (default: the config's output)")
    p.add_argument("--cluster", metavar="KIND|ADDRESS",
                   help="local, slurm, pbs, sge, lsf, or a scheduler address tcp://host:port")  # fmt: skip
    p.add_argument("--workers", type=int, help="worker processes (local) or jobs (jobqueue)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run at --out")
    p.set_defaults(func=_run)

    p = sub.add_parser(
        "resume",
        help="continue a run from its last complete cycle",
        description="Continue an interrupted run; the results are bit-identical to a run "
        "that was never interrupted.",
    )
    p.add_argument("run", type=Path, help="the run's store (*.zarr)")
    p.add_argument("--cluster", metavar="KIND|ADDRESS", help="as for spikeda run")
    p.add_argument("--workers", type=int, help="as for spikeda run")
    p.set_defaults(func=_resume)

    p = sub.add_parser(
        "ingest",
        help="convert a lab recording (suite2p, phy/Kilosort, NWB, npz, CSV) to an observation store",
        description="Read a recording in the format a lab has and write a new, validated "
        "observation store; the source is opened read-only and never changed.",
    )
    p.add_argument("kind", choices=["suite2p", "phy", "nwb", "npz", "csv"])
    p.add_argument("src", type=Path, help="the recording (folder or file)")
    p.add_argument("-o", "--out", type=Path, required=True, help="new observation store (*.zarr)")
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="format option, e.g. baseline_window_s=60 (repeatable)",
    )
    p.set_defaults(func=_ingest)

    p = sub.add_parser(
        "glmcc",
        help="estimate directed connections (GLMCC) from the spikes of an observation store",
        description="Fit GLMCC (Kobayashi et al. 2019) to every pair of units of a store and "
        "write the connectivity Dataset (J, significance, PSP in mV, status) to a new Zarr store.",
    )
    p.add_argument("obs", type=Path, help="observation store with spikes/")
    p.add_argument("-o", "--out", type=Path, required=True, help="new connectivity store (*.zarr)")
    p.add_argument("--delay-ms", default="3", help="synaptic delay in ms, or 'scan' (1-4 ms)")
    p.add_argument("--test", choices=["wald", "lr"], default="wald")
    p.add_argument("--pairs", nargs="+", metavar="PRE,POST", help="only these pairs (unit ids)")
    p.set_defaults(func=_glmcc)

    p = sub.add_parser(
        "triplets",
        help="pairwise and triple-wise interactions and hidden common-input motifs of triplets",
        description="Bin and binarise the spikes of a store, estimate the log-linear θ's of "
        "every triplet of units (or of --triplets) with standard errors and tests of θ_123, "
        "classify the hidden common-input motif (Shomali et al. 2023) and write the Dataset "
        "to a new Zarr store (spikeda plot draws the triplet map from it).",
    )
    p.add_argument("obs", type=Path, help="observation store with spikes/")
    p.add_argument("-o", "--out", type=Path, required=True, help="new triplet store (*.zarr)")
    p.add_argument("--bin-ms", type=float, default=5.0, help="bin width in ms (default 5)")
    p.add_argument("--pseudo-count", type=float, default=0.5, help="added to each pattern count")
    p.add_argument("--n-boot", type=int, default=0, help="block-bootstrap resamples (default 0)")
    p.add_argument("--classify", choices=["auto", "yes", "no"], default="auto",
                   help="motif classification (auto: up to 20000 triplets)")  # fmt: skip
    p.add_argument("--triplets", nargs="+", metavar="A,B,C", help="only these triplets (unit ids)")
    p.set_defaults(func=_triplets)

    p = sub.add_parser(
        "plot",
        help="write PNG figures of a result store (connectivity, triplet map, run)",
        description="Open a result store written by spikeda and write its figures as PNG "
        "files into OUT (default: a folder <store>.plots beside it); the store is not changed.",
    )
    p.add_argument("store", type=Path, help="result store (*.zarr)")
    p.add_argument("-o", "--out", type=Path, help="folder for the PNG files")
    p.add_argument("--pair", action="append", metavar="PRE,POST",
                   help="connectivity: also plot this pair's cross-correlogram (repeatable)")  # fmt: skip
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="a plot option of that kind of store (repeatable)")  # fmt: skip
    p.set_defaults(func=_plot)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ValueError, OSError) as exc:
        print(f"spikeda {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
