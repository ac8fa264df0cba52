"""Streaming check of the suite2p ingester at scale: wall time, throughput and peak memory
against the neuron block size.

Synthesises a suite2p plane folder — F.npy and Fneu.npy (cells × frames, float32) written
block by block through ``np.lib.format.open_memmap`` so that making 2 × 4 GB of traces
needs no more memory than one block, plus iscell.npy, ops.npy (fs) and stat.npy — then,
for each block size, ingests it in a fresh subprocess (so each peak RSS, read with
``resource.getrusage`` in the child, is that run's alone) and deletes the store. The first
store is checked before deletion: ``validate_store`` scans every frame, and a few neurons'
ΔF/F are compared with an exact float64 recomputation (scipy's percentile filter).

    python benchmarks/ingest.py                      # 10⁴ cells × 10⁵ frames (~8 GB in /tmp)
    python benchmarks/ingest.py --quick              # 600 cells × 6000 frames, a smoke run
    python benchmarks/ingest.py --cells 2000 --frames 20000 --blocks 256 512

Writes benchmarks/results/ingest.json (``--json``) and prints a table. The synthetic
folder is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FS = 30.0  # Hz, a typical resonant-scanner frame rate


def synthesise(folder: Path, cells: int, frames: int, seed: int = 0, block: int = 250) -> float:
    """Write a suite2p plane folder of ``cells`` × ``frames``; returns the seconds it took.

    F = baseline · drift · (1 + transients) · (1 + 5 % noise) + 0.7 · Fneu, with a per-cell
    baseline of 50–200, bleaching with τ = 20 min, calcium transients (0.2 Hz, decay 0.5 s)
    and a neuropil that follows the drift.
    """
    from scipy.signal import lfilter

    t0 = time.perf_counter()
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    fmt = np.lib.format
    F = fmt.open_memmap(folder / "F.npy", mode="w+", dtype=np.float32, shape=(cells, frames))
    Fneu = fmt.open_memmap(folder / "Fneu.npy", mode="w+", dtype=np.float32, shape=(cells, frames))
    drift = np.exp(-np.arange(frames, dtype=np.float32) / np.float32(20 * 60 * FS))
    decay = np.exp(-1 / (0.5 * FS))
    for a in range(0, cells, block):
        b = min(a + block, cells)
        base = rng.uniform(50, 200, (b - a, 1)).astype(np.float32) * drift
        events = (rng.random((b - a, frames), dtype=np.float32) < 0.2 / FS).astype(np.float32)
        transients = lfilter([1.0], [1.0, -decay], events, axis=1).astype(np.float32)
        neu = 0.3 * base * (1 + 0.02 * rng.standard_normal((b - a, frames), dtype=np.float32))
        noise = 1 + 0.05 * rng.standard_normal((b - a, frames), dtype=np.float32)
        F[a:b] = base * (1 + transients) * noise + 0.7 * neu
        Fneu[a:b] = neu
        F.flush()
        Fneu.flush()
    del F, Fneu
    np.save(folder / "iscell.npy", np.column_stack([np.ones(cells), rng.random(cells)]))
    np.save(folder / "ops.npy", {"fs": FS, "nplanes": 1}, allow_pickle=True)
    med = rng.integers(0, 512, (cells, 2))
    np.save(folder / "stat.npy", np.array([{"med": list(m)} for m in med], dtype=object))
    return time.perf_counter() - t0


def _vm_hwm_mb() -> float:
    """Peak resident set of this process image (Linux /proc VmHWM), MB; NaN elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def child_ingest(src: str, out: str, block: int) -> dict:
    """In a fresh interpreter: ingest, then report wall time and peak RSS."""
    from observations.ingest import ingest

    rss_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    summary = ingest("suite2p", src, out, block_neurons=block)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "wall_s": summary.wall_s,
        "peak_rss_mb": rss / 1024,
        "vm_hwm_mb": _vm_hwm_mb(),
        "rss_after_imports_mb": rss_imports / 1024,
        "n_neurons": summary.n_neurons,
        "n_frames": summary.n_frames,
    }


def spawn(*args) -> dict:
    """Run this script in a fresh interpreter (``--child MODE ARGS``); its last stdout line
    is JSON. Everything heavy runs in children: ru_maxrss is inherited from the process
    that forks, so a parent that had synthesised 8 GB would inflate every child's peak."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode:
        raise RuntimeError(f"child {args[0]} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def check(src: Path, out: Path, n_check: int = 4, seed: int = 1) -> dict:
    """Scan the store (validate_store) and compare a few neurons with an exact recomputation."""
    import scipy.ndimage as ndi
    import zarr

    from observations import validate_store

    t0 = time.perf_counter()
    store, qc = validate_store(out)
    scan_s = time.perf_counter() - t0
    dff = zarr.open_group(out, mode="r")["calcium/dff"]
    F = np.load(src / "F.npy", mmap_mode="r")
    Fneu = np.load(src / "Fneu.npy", mmap_mode="r")
    window = round(60.0 * FS)
    errors = []
    for k in np.random.default_rng(seed).choice(F.shape[0], n_check, replace=False):
        y = F[k].astype(np.float64) - 0.7 * Fneu[k].astype(np.float64)
        F0 = ndi.percentile_filter(y, 8.0, size=min(window, y.size), mode="reflect")
        implied = y / (1 + dff[:, int(k)].astype(np.float64))
        errors.append(float(np.max(np.abs(implied - F0) / F0)))
    return {
        "validate_store_s": scan_s,
        "qc": qc.line(),
        "neurons_checked": n_check,
        "max_rel_F0_error": max(errors),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cells", type=int, default=10_000)
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--blocks", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--dir", type=Path, default=Path("/tmp"), help="where the synthetic input goes")
    p.add_argument("--quick", action="store_true", help="600 cells × 6000 frames")
    p.add_argument("--keep", action="store_true", help="keep the synthetic suite2p folder")
    p.add_argument("--json", type=Path, default=HERE / "results" / "ingest.json")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        sys.path.insert(0, str(ROOT))
        mode, rest = args.child[0], args.child[1:]
        if mode == "synth":
            result = {"synthesis_s": synthesise(Path(rest[0]), int(rest[1]), int(rest[2]))}
        elif mode == "ingest":
            result = child_ingest(rest[0], rest[1], int(rest[2]))
        else:
            result = check(Path(rest[0]), Path(rest[1]))
        print(json.dumps(result))
        return 0
    if args.quick:
        args.cells, args.frames = 600, 6000
    work = args.dir / f"spikeda-ingest-bench-{os.getpid()}"
    need = 2 * 4 * args.cells * args.frames * 1.6  # inputs, plus a store of up to 60 % of one
    free = shutil.disk_usage(args.dir).free
    if free < need:
        print(
            f"need ~{need / 2**30:.1f} GiB in {args.dir}, {free / 2**30:.1f} GiB free",
            file=sys.stderr,
        )
        return 1
    src = work / "suite2p" / "plane0"
    try:
        print(f"synthesising {args.cells} cells × {args.frames} frames in {src} ...", flush=True)
        gen_s = spawn("synth", src, args.cells, args.frames)["synthesis_s"]
        print(f"  {gen_s:.1f} s", flush=True)
        runs, checked = [], None
        for block in args.blocks:
            out = work / f"obs-{block}.zarr"
            r = spawn("ingest", src, out, block)
            r.update(
                block_neurons=block,
                store_mb=du_mb(out),
                throughput_cell_frames_per_s=args.cells * args.frames / r["wall_s"],
            )
            runs.append(r)
            print(
                f"  block {block:5d}: {r['wall_s']:7.1f} s, "
                f"{r['throughput_cell_frames_per_s']:.3g} cell·frames/s, "
                f"peak RSS {r['peak_rss_mb']:.0f} MB",
                flush=True,
            )
            if checked is None:
                checked = spawn("check", src, out)
                print(f"  check: {checked}", flush=True)
            shutil.rmtree(out)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    import zarr

    result = {
        "benchmark": "suite2p ingestion, streaming in neuron blocks",
        "cells": args.cells,
        "frames": args.frames,
        "frame_rate_hz": FS,
        "input_gb": 2 * 4 * args.cells * args.frames / 1e9,
        "baseline": "running 8th percentile, 60 s window, grid step 6 s (default)",
        "synthesis_s": gen_s,
        "runs": runs,
        "check": checked,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "zarr": zarr.__version__,
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'block':>6} {'wall s':>8} {'cell·frames/s':>14} {'peak RSS MB':>12} {'store MB':>9}")
    for r in runs:
        print(
            f"{r['block_neurons']:>6} {r['wall_s']:>8.1f} {r['throughput_cell_frames_per_s']:>14.3g} "
            f"{r['peak_rss_mb']:>12.0f} {r['store_mb']:>9.0f}"
        )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
