"""Run DAPPER's filters on Lorenz-96 (Sakov & Oke 2008 setup) as a peer for spikeda.

What it measures
----------------
One twin experiment with DAPPER's own HMM ``dapper.mods.Lorenz96.sakov2008``:
n = 40, F = 8, dt = 0.05, every variable observed at every step with R = I,
no model noise.  ``Ko`` here counts analysis cycles; DAPPER counts from 0
(its ``tseq.Ko`` is the index of the last observation), so DAPPER gets
``tseq.Ko = Ko - 1`` and performs exactly ``Ko`` analyses.  Burn-in is 20 model
time units (``BurnIn=20``: cycles with t > 20 are averaged).

Returned numbers
----------------
rmse_a           ``xp.avrgs.err.rms.a.val`` after ``xp.stats.average_in_time()``,
                 i.e. the mean over post-burn-in analysis times of the
                 RMS (over the 40 variables) of ensemble-mean minus truth
                 (DAPPER's ``rmse.a``).
wall_s           ``time.perf_counter`` around ``xp.assimilate`` only.  The truth and
                 observations (``HMM.simulate``) are made beforehand, untimed.
                 Liveplotting and progress bars are off.  Unless
                 ``full_stats=True``, DAPPER's per-cycle diagnostics are cut to the
                 error alone (``rc.comps["error_only"]``), so that the timing is
                 mostly the forecast + analysis, not DAPPER's CRPS/SVD/rank
                 histograms.
wall_s_per_cycle wall_s / Ko.

Seeding follows DAPPER's own ``seed_and_simulate``: the global DAPPER generator is
seeded once, then truth/obs are drawn, then the filter draws its initial ensemble
(and perturbations/rotations) from the same stream.

This file does not import spikeda.  Usage::

    python _dapper_peer.py --json                      # ETKF, N=24, infl=1.02
    python _dapper_peer.py --method letkf --json       # N=7, infl=1.04, loc_rad=4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time

# DAPPER prints a liveplotting warning on stdout at import (non-interactive
# backend); divert it to stderr so that ``--json`` output stays one clean object.
with contextlib.redirect_stdout(sys.stderr):
    import dapper
    import dapper.da_methods as da
    import dapper.mods as modelling
    import dapper.tools.progressbar as progressbar
    from dapper.dpr_config import rc
    from dapper.mods.Lorenz96 import sakov2008
    from dapper.tools.seeding import set_seed

progressbar.disable_progbar = True  # read at call time by dapper's progbar()
progressbar.disable_user_interaction = True  # no termios fiddling per cycle
rc.liveplotting = False

BURN_IN = 20.0  # model time units

# method -> (N, infl, loc_rad): the settings this adapter was written for.
DEFAULTS = {
    "etkf": (24, 1.02, None),
    "enkf_pertobs": (40, 1.06, None),
    "letkf": (7, 1.04, 4.0),
}


def _make_xp(method: str, N: int, infl: float, loc_rad: float | None, rot: bool):
    if method == "etkf":
        return da.EnKF("Sqrt", N=N, infl=infl, rot=rot)
    if method == "enkf_pertobs":
        return da.EnKF("PertObs", N=N, infl=infl, rot=rot)
    if method == "letkf":
        if loc_rad is None:
            raise ValueError("letkf needs loc_rad")
        # taper defaults to "GC" (Gaspari-Cohn, c = 1.82 * loc_rad).
        return da.LETKF(N=N, infl=infl, loc_rad=loc_rad, rot=rot)
    raise ValueError(f"unknown method {method!r}; expected one of {sorted(DEFAULTS)}")


def run_dapper(
    method: str,
    N: int,
    infl: float,
    Ko: int,
    seed: int,
    loc_rad: float | None = None,
    rot: bool = False,
    *,
    full_stats: bool = False,
) -> dict:
    """Run one DAPPER filter for ``Ko`` analysis cycles; return accuracy and timing."""
    xp = _make_xp(method, N, infl, loc_rad, rot)

    HMM = sakov2008.HMM.copy()
    HMM.tseq = modelling.Chronology(dt=0.05, dko=1, Ko=Ko - 1, BurnIn=BURN_IN)

    set_seed(seed)
    xx, yy = HMM.simulate()  # untimed

    saved = rc.comps["error_only"]
    rc.comps["error_only"] = not full_stats
    try:
        t0 = time.perf_counter()
        xp.assimilate(HMM, xx, yy, liveplots=False)
        wall_s = time.perf_counter() - t0
    finally:
        rc.comps["error_only"] = saved

    xp.stats.average_in_time()
    return {
        "rmse_a": float(xp.avrgs.err.rms.a.val),
        "wall_s": wall_s,
        "wall_s_per_cycle": wall_s / Ko,
        "dapper_version": dapper.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", choices=sorted(DEFAULTS), default="etkf")
    p.add_argument("--N", type=int, help="ensemble size (default: per method)")
    p.add_argument("--infl", type=float, help="multiplicative inflation (default: per method)")
    p.add_argument("--loc-rad", type=float, help="LETKF localisation radius (default: 4)")
    p.add_argument("--Ko", type=int, default=5000, help="number of analysis cycles")
    p.add_argument("--seed", type=int, default=3000)
    p.add_argument("--rot", action="store_true", help="random mean-preserving rotation")
    p.add_argument("--full-stats", action="store_true", help="keep all DAPPER diagnostics")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)

    N0, infl0, loc0 = DEFAULTS[a.method]
    out = run_dapper(
        a.method,
        N=a.N if a.N is not None else N0,
        infl=a.infl if a.infl is not None else infl0,
        Ko=a.Ko,
        seed=a.seed,
        loc_rad=a.loc_rad if a.loc_rad is not None else loc0,
        rot=a.rot,
        full_stats=a.full_stats,
    )
    if a.json:
        print(json.dumps(out))
    else:
        print(
            f"{a.method}: rmse_a={out['rmse_a']:.4f}  wall_s={out['wall_s']:.2f}"
            f"  per_cycle={1e3 * out['wall_s_per_cycle']:.3f} ms  (dapper {out['dapper_version']})"
        )


if __name__ == "__main__":
    main()
