"""Twin experiments on the toy models: the filters' validation against the literature.

A truth trajectory is run, observed with Gaussian noise, and assimilated by an ensemble
filter; the score is the time-averaged RMSE of the analysis mean against the truth, the
number that Sakov & Oke (2008), Sakov et al. (2012) and DAPPER report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from enkf import analysis, inflation
from enkf.config import ExperimentSpec, ToyTwinConfig
from enkf.localization import DistanceLocalizer
from enkf.transforms import Identity, Log
from model.lorenz63 import Lorenz63
from model.lorenz96 import Lorenz96

# An analysis RMSE above this, time-averaged, means the filter lost the truth (the
# climatological spread of Lorenz-96 at F = 8 is about 3.6, the observation error 1).
DIVERGENCE_RMSE = 1.0


@dataclass
class TwinResult:
    """Time series and summary of one twin run.

    Arrays have one entry per cycle (``cycles``,); ``forcing_*`` are empty unless the
    forcing is estimated.
    """

    label: str
    seed: int
    time: np.ndarray
    rmse_a: np.ndarray
    rmse_f: np.ndarray
    spread_a: np.ndarray
    forcing_mean: np.ndarray
    forcing_sd: np.ndarray
    burn_in_cycles: int
    wall_s: float
    """Wall time of cycles 1.. (cycle 0 compiles the numba kernels on a fresh install)."""

    @property
    def rmse_a_mean(self) -> float:
        """Analysis RMSE averaged over the cycles after burn-in."""
        return float(self.rmse_a[self.burn_in_cycles :].mean())

    @property
    def spread_a_mean(self) -> float:
        return float(self.spread_a[self.burn_in_cycles :].mean())

    @property
    def wall_s_per_cycle(self) -> float:
        return self.wall_s / max(self.rmse_a.size - 1, 1)

    @property
    def diverged(self) -> bool:
        return not self.rmse_a_mean <= DIVERGENCE_RMSE

    def summary(self) -> dict:
        out = {
            "label": self.label,
            "seed": self.seed,
            "rmse_a": self.rmse_a_mean,
            "spread_a": self.spread_a_mean,
            "diverged": self.diverged,
            "cycles": int(self.rmse_a.size),
            "wall_s": self.wall_s,
            "wall_s_per_cycle": self.wall_s_per_cycle,
        }
        if self.forcing_mean.size:
            out["forcing_a_mean"] = float(self.forcing_mean[self.burn_in_cycles :].mean())
        return out


def _toy_model(cfg: ToyTwinConfig):
    m = cfg.model
    return Lorenz96(m.n, m.forcing) if m.name == "lorenz96" else Lorenz63(m.sigma, m.rho, m.beta)


def _advance(model, E, dt: float, n_steps: int, forcing=None):
    """Advance ``E`` by ``n_steps``; ``forcing`` (scalar or per member) is Lorenz-96's F."""
    if isinstance(model, Lorenz96):
        return model.step(E, dt, forcing=forcing, n_steps=n_steps)
    return model.step(E, dt, n_steps=n_steps)


def run_experiment(
    cfg: ToyTwinConfig, exp: ExperimentSpec, seed: int, cycles: int | None = None
) -> TwinResult:
    """Run one filter of ``cfg`` on the twin of ``seed``.

    The truth and the observations depend on ``seed`` only, so that every experiment of a
    config is scored on the same data. ``cycles`` overrides ``cfg.time.cycles``.
    """
    model = _toy_model(cfg)
    n = model.n
    n_cycles = cycles or cfg.time.cycles
    truth_ss, obs_ss, ens_ss, filter_ss = np.random.SeedSequence(seed).spawn(4)
    truth_rng, obs_rng = np.random.default_rng(truth_ss), np.random.default_rng(obs_ss)
    ens_rng, filter_rng = np.random.default_rng(ens_ss), np.random.default_rng(filter_ss)

    est = cfg.estimate_forcing
    dt, every = cfg.time.dt, cfg.time.obs_every
    is_l96 = isinstance(model, Lorenz96)
    F_true = (est.truth if est else model.forcing) if is_l96 else None
    x = (F_true if is_l96 else 1.0) + truth_rng.standard_normal(n)
    x = _advance(model, x, dt, int(round(cfg.time.spin_up / dt)), F_true)

    obs_idx = np.arange(0, n, cfg.observations.every_variable)
    R = np.full(obs_idx.size, cfg.observations.error_var)
    E = x + cfg.initial_spread * ens_rng.standard_normal((exp.members, n))
    transform = (Log() if est.transform == "log" else Identity()) if est else None
    U = (
        transform.forward(est.prior_mean + est.prior_sd * ens_rng.standard_normal(exp.members))
        if est
        else None
    )

    localizer = None
    if exp.filter == "letkf":
        loc = exp.localization
        period = n if is_l96 else None
        localizer = DistanceLocalizer(
            np.arange(n), obs_idx, loc.radius, period=period, taper=loc.taper
        )

    rmse_a, rmse_f, spread_a = (np.empty(n_cycles) for _ in range(3))
    F_mean, F_sd = (np.empty(n_cycles if est else 0) for _ in range(2))
    t0 = time.perf_counter()
    for k in range(n_cycles):
        if k == 1:
            t0 = time.perf_counter()
        x = _advance(model, x, dt, every, F_true)
        E = _advance(model, E, dt, every, transform.inverse(U) if est else None)
        y = x[obs_idx] + np.sqrt(R) * obs_rng.standard_normal(obs_idx.size)
        Z = np.column_stack([E, U]) if est else E
        rmse_f[k] = np.sqrt(np.mean((E.mean(axis=0) - x) ** 2))
        HE = E[:, obs_idx]
        if exp.filter == "etkf":
            Za = analysis.etkf(Z, HE, y, R)
        elif exp.filter == "enkf_pertobs":
            Za = analysis.enkf_pertobs(Z, HE, y, R, filter_rng)
        else:
            Za = analysis.letkf(Z, HE, y, R, localizer)
        if exp.rtps:
            Za = inflation.rtps(Z, Za, exp.rtps)
        if exp.inflation != 1.0:
            Za = inflation.multiplicative(Za, exp.inflation)
        if exp.rotate:
            Za = analysis.random_rotation(Za, filter_rng)
        E = np.ascontiguousarray(Za[:, :n])
        xa = E.mean(axis=0)
        rmse_a[k] = np.sqrt(np.mean((xa - x) ** 2))
        spread_a[k] = np.sqrt(np.mean(E.var(axis=0, ddof=1)))
        if est:
            U = Za[:, n].copy()
            F = transform.inverse(U)
            F_mean[k], F_sd[k] = F.mean(), F.std(ddof=1)
    wall = time.perf_counter() - t0

    cycle_time = dt * every * np.arange(1, n_cycles + 1)
    burn = int(np.searchsorted(cycle_time, cfg.time.burn_in, side="right"))
    if burn >= n_cycles:
        raise ValueError(
            f"burn_in {cfg.time.burn_in} covers all {n_cycles} cycles; run more cycles"
        )
    return TwinResult(
        exp.label, seed, cycle_time, rmse_a, rmse_f, spread_a, F_mean, F_sd, burn, wall
    )


def run(cfg: ToyTwinConfig, seeds=None, cycles: int | None = None) -> list[TwinResult]:
    """Run every experiment of ``cfg`` over every seed (``seeds`` overrides ``cfg.seeds``)."""
    return [
        run_experiment(cfg, exp, seed, cycles)
        for exp in cfg.experiments
        for seed in (seeds or cfg.seeds)
    ]


def table(cfg: ToyTwinConfig, results: list[TwinResult]) -> tuple[str, list[dict]]:
    """Seed-averaged scores beside the published values: the text table and its rows."""
    rows = []
    for exp in cfg.experiments:
        mine = [r for r in results if r.label == exp.label]
        rmse = np.array([r.rmse_a_mean for r in mine])
        row = {
            "experiment": exp.label,
            "filter": exp.filter,
            "members": exp.members,
            "seeds": [r.seed for r in mine],
            "rmse_a_per_seed": rmse.tolist(),
            "rmse_a": float(rmse.mean()),
            "spread_a": float(np.mean([r.spread_a_mean for r in mine])),
            "published_rmse": exp.published_rmse,
            "reference": exp.reference,
            "diverged": any(r.diverged for r in mine),
            "ms_per_cycle": 1e3 * float(np.mean([r.wall_s_per_cycle for r in mine])),
        }
        if exp.published_rmse is not None:
            row["within_tolerance"] = bool(
                abs(row["rmse_a"] - exp.published_rmse) <= exp.tolerance and not row["diverged"]
            )
        if cfg.estimate_forcing is not None:
            row["forcing_a_mean"] = float(
                np.mean([r.forcing_mean[r.burn_in_cycles :].mean() for r in mine])
            )
            row["forcing_truth"] = cfg.estimate_forcing.truth
        rows.append(row)

    head = f"{'experiment':<28}{'N':>4}{'RMSE_a':>9}{'spread':>9}{'published':>11}{'ok':>5}{'ms/cycle':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        pub = "" if r["published_rmse"] is None else f"{r['published_rmse']:.2f}"
        ok = {True: "yes", False: "NO", None: ""}[r.get("within_tolerance")]
        if r["diverged"]:
            ok = "DIV"
        lines.append(
            f"{r['experiment']:<28}{r['members']:>4}{r['rmse_a']:>9.3f}{r['spread_a']:>9.3f}"
            f"{pub:>11}{ok:>5}{r['ms_per_cycle']:>10.3f}"
        )
        if "forcing_a_mean" in r:
            lines.append(
                f"{'':<4}forcing F: analysis mean {r['forcing_a_mean']:.3f}, truth {r['forcing_truth']}"
            )
    return "\n".join(lines), rows
