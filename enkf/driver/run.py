"""The assimilation driver: start a run from a config, resume it, run its cycles on Dask.

One cycle (DESIGN.md, "Filters and the driver"):

1. ``client.map(forecast, jobs)``: one task per group of members, with deterministic keys
   and retries; each reads its members' states, advances them over the window, applies
   the forward operator, writes the new states and returns the predictions.
2. Gather (with a progress line); the analysis updates the parameters in their
   transformed space (and, where configured, the membrane potential of observed neurons).
3. Write the cycle to run.zarr and mark it complete, last.

Every random draw of the driver comes from ``SeedSequence(seed, spawn_key=(stream, cycle))``
(the spawn tree of the run's seed, indexed rather than drawn in call order), and a member's
drive from its id, so a run gives the same numbers however it is split into tasks, on
whatever cluster, and whether or not it was interrupted and resumed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from enkf import analysis, inflation
from enkf.config import ConfigError
from enkf.driver import members as mem
from enkf.driver import store as rs
from enkf.driver.cluster import cluster_from_cli, connect
from enkf.driver.observe import ObservationPlan, Window
from enkf.driver.params import ParameterSet
from enkf.driver.twin import STORE as TWIN_STORE
from enkf.driver.twin import simulate_truth
from enkf.run_config import RunConfig, load_run_config
from model import SpecError, build_network

# Streams of the run's seed (spawn_key[0]); the second index is the cycle where it applies.
PRIOR, INIT, DRIVE, RANDOM_WALK, ANALYSIS, REPLACE = range(6)


class RunError(RuntimeError):
    """A run that cannot go on (a failed task, non-finite members under policy error)."""


def rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def seed_int(seed: int, *key: int) -> int:
    """A 63-bit integer seed from the spawn tree (for functions that take an int)."""
    return int(np.random.SeedSequence(seed, spawn_key=key).generate_state(1, np.uint64)[0] >> 1)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("spikeda", "numpy", "numba", "dask", "distributed", "xarray", "zarr"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


@dataclass
class RunSummary:
    path: Path
    cycles: int
    wall_s: float
    resumed_from: int


class Driver:
    """A run's fixed parts (config, network, parameters, observations) and its cycles."""

    def __init__(self, cfg: RunConfig, path: Path, plan: ObservationPlan | None, network, params,
                 constraints=None):  # fmt: skip
        self.cfg = cfg
        self.constraints = constraints
        self.path = Path(path)
        self.plan = plan
        self.network = network
        self.params = params
        self.asm = cfg.assimilation
        self.store = None

    # -- set-up ---------------------------------------------------------------------------------
    @staticmethod
    def build(cfg: RunConfig, constraints=None):
        """The network and the parameter set of a config (spec errors become ConfigErrors);
        with a ConstraintSet, the members' network and the sources' strengths."""
        try:
            network = build_network(cfg.network.spec, cfg.network.seed)
        except (SpecError, ValueError) as exc:
            raise ConfigError(f"network.spec: {exc}") from None
        if constraints is None:
            return network, ParameterSet(cfg.parameters, network)
        network = constraints.network(network)
        specs = list(cfg.parameters) + constraints.parameter_specs(cfg.constraints)
        return network, ParameterSet(specs, network, constraints)

    def n_cycles(self) -> int:
        return len(self.plan.windows) if self.plan else self.asm.cycles

    def window(self, k: int) -> Window:
        if self.plan is not None:
            return self.plan.windows[k]
        t0 = self.asm.start_s + k * self.asm.window_s
        first = self.asm.start_s - (self.asm.spinup_s if self.asm.spinup_s is not None else self.asm.start_s)
        return Window(k, first if k == 0 else t0, t0, t0 + self.asm.window_s, slice(0, 0))

    def layout(self, twin: bool) -> rs.Layout:
        p, net = self.plan, self.network
        if p is not None:
            n_nrn = p.model.neurons.size
            if p.cfg.reduce in ("population_mean", "indegree"):
                obs_neuron = obs_unit = np.full(p.n_obs, -1)
                obs_frame = np.zeros(p.n_obs)
                obs_pop, obs_reg = p.obs_population, p.obs_regressor
            else:
                per = p.n_obs // n_nrn
                obs_neuron = np.tile(p.model.neurons, per)
                obs_unit = np.tile(p.store_ids, per)
                obs_frame = np.repeat(np.arange(per), n_nrn)
                obs_pop = np.tile(p.obs_population, per)
                obs_reg = np.tile(p.obs_regressor, per)
            units = "ΔF/F" if p.model.kind == "calcium" else f"{p.model.operator.transform} count"
            trace = p.model.neurons[p.model.trace]
            trace_unit = p.store_ids[p.model.trace]
            neurons, max_frames = p.model.neurons, p.max_frames
        else:
            obs_neuron = obs_unit = obs_frame = trace = trace_unit = neurons = np.empty(0, np.int64)
            units, max_frames = "", 0
            obs_pop = obs_reg = np.empty(0, object)
        return rs.Layout(
            n_cycles=self.n_cycles(),
            members=self.asm.members,
            params=self.params.names,
            param_units=self.params.units,
            populations=list(net.pop_names),
            obs_neuron=obs_neuron,
            obs_unit=obs_unit,
            obs_frame=obs_frame,
            obs_population=obs_pop,
            obs_regressor=obs_reg,
            obs_units=units,
            max_frames=max_frames,
            trace_neuron=trace,
            trace_unit=trace_unit,
            neurons=neurons,
            twin=twin,
            states=bool(self.asm.states),
            links=np.column_stack([cs.link_pre, cs.link_post]) if (cs := self.constraints) is not None
            else np.empty((0, 2), np.int64),
            triplets=cs.triplet_neurons if cs is not None else np.empty((0, 3), np.int64),
        )

    def static(self, truth) -> dict:
        """Arrays known before the first cycle: windows, the prior, the truth of a twin."""
        P = self.params
        lo, hi = P.prior_interval()
        prior = P.sample_prior(self.asm.members, rng(self.asm.seed, PRIOR))
        C = self.n_cycles()
        out = {
            "prior_mean": prior.mean(axis=0),
            "prior_low": lo,
            "prior_high": hi,
            "window_start_s": np.array([self.window(k).obs_t0_s for k in range(C)]),
            "window_end_s": np.array([self.window(k).t1_s for k in range(C)]),
        }
        if self.plan is not None:
            F = self.plan.max_frames
            tt = np.full((C, F), np.nan)
            for k in range(C):
                f = self.plan.frames(self.window(k))
                tt[k, : f.size] = f
            out["trace_time"] = tt
        if truth is not None:
            # Parameters the constraints add (source strengths) have no value in the truth.
            out["param_truth"] = np.concatenate([truth.theta, np.full(P.n - truth.theta.size, np.nan)])
            out["rate_truth_hz"] = np.array(
                [truth.window_rates(self.window(k).obs_t0_s, self.window(k).t1_s) for k in range(C)]
            )
            if self.plan is not None:
                out.update(self._truth_obs(truth))
        return out

    def _truth_obs(self, truth) -> dict:
        """The truth's noise-free predicted observations, window by window."""
        model = self.plan.model
        state = model.initial_state()
        C, F = self.n_cycles(), self.plan.max_frames
        hx = np.full((C, self.plan.n_obs), np.nan)
        tr = np.full((C, F, model.trace.size), np.nan)
        for k in range(C):
            w = self.window(k)
            frames = self.plan.frames(w)
            spikes = truth.spikes.between(w.t0_s, w.t1_s)
            spikes = type(spikes)(spikes.times_s, spikes.offsets, np.arange(spikes.n_units),
                                  spikes.t_start_s, spikes.t_stop_s)  # fmt: skip
            h, values, state = model.predict(spikes, state, frames, self.plan.valid(w))
            hx[k] = h
            tr[k, : frames.size] = values[:, model.trace]
        return {"hx_truth": hx, "trace_truth": tr}

    # -- cycles ---------------------------------------------------------------------------------
    def groups(self, n_workers: int) -> list[np.ndarray]:
        M = self.asm.members
        per = self.asm.members_per_task
        if per == "auto":
            per = math.ceil(M / (8 * max(n_workers, 1)))
        return [np.arange(a, min(a + per, M)) for a in range(0, M, per)]

    def forecast_params(self, k: int) -> np.ndarray:
        """(N, P) physical parameters the members run in cycle ``k``."""
        if k == 0:
            return self.params.sample_prior(self.asm.members, rng(self.asm.seed, PRIOR))
        theta_a = self.store.read("param", k - 1)[1]
        sd = np.array([p.random_walk_sd for p in self.params.specs])
        if not sd.any():
            return theta_a
        U = self.params.to_u(theta_a)
        U = U + sd * rng(self.asm.seed, RANDOM_WALK, k).standard_normal(U.shape)
        return self.params.to_theta(U)

    def run_cycles(self, client, n_workers: int, progress=sys.stderr) -> int:
        """Run every cycle not yet complete; returns the number run."""
        self.store = rs.RunStore(self.path)
        k0 = self.store.completed
        C = self.n_cycles()
        if k0 >= C:
            return 0
        net = self.network
        run_id = self.store.attrs["run_id"]
        if self.constraints is None:
            net_future = client.submit(
                build_network, net.spec, self.cfg.network.seed, key=f"network-{run_id}", pure=False
            )
        else:
            from enkf.constraints import member_network

            net_future = client.submit(member_network, net.spec, self.cfg.network.seed,
                                       self.constraints.structure(), key=f"network-{run_id}",
                                       pure=False)  # fmt: skip
        groups = self.groups(n_workers)
        obs_model = self.plan.model if self.plan else None
        for k in range(k0, C):
            self._cycle(k, client, net_future, obs_model, groups, run_id, progress)
        self.store.root.attrs["finished"] = rs.now()
        return C - k0

    def _cycle(self, k, client, net_future, obs_model, groups, run_id, progress):
        from distributed import as_completed

        t_cycle = time.perf_counter()
        asm, P, M = self.asm, self.params, self.asm.members
        w = self.window(k)
        theta_f = self.forecast_params(k)
        frames = self.plan.frames(w) if self.plan else np.empty(0)
        valid = self.plan.valid(w) if self.plan else None
        observed_stats = self._statistics
        assimilated = k < self.n_cycles() - asm.holdout_cycles
        fitted = [o for o in observed_stats if assimilated and k >= o["from_cycle"]]
        jobs = [
            mem.ForecastJob(
                cycle=k,
                members=g,
                params=P.member_params(theta_f[g], g),
                t0_s=w.t0_s,
                t1_s=w.t1_s,
                frames_s=frames,
                valid=valid,
                rate_t0_s=w.obs_t0_s,
                read_slot=None if k == 0 else str(self.store.slot(k)),
                write_slot=str(self.store.slot(k + 1)),
                n_members=M,
                init_seed=seed_int(asm.seed, INIT),
                drive_seed=seed_int(asm.seed, DRIVE),
                statistics=tuple(o["stat"] for o in observed_stats),
                return_statistics=tuple(o["stat"].name for o in fitted),
            )
            for g in groups
        ]
        keys = [f"forecast-{run_id}-c{k:05d}-g{i:04d}" for i in range(len(groups))]
        t_f = time.perf_counter()
        futures = client.map(mem.forecast, jobs, network=net_future, obs=obs_model, key=keys,
                             retries=2, pure=False)  # fmt: skip
        results = []
        done = 0
        try:
            for fut in as_completed(futures):
                try:
                    results.append(fut.result())
                except Exception as exc:
                    raise RunError(
                        f"cycle {k}: forecast task {fut.key} failed: {type(exc).__name__}: {exc}"
                    ) from None
                done += results[-1]["members"].size
                self._progress(progress, k, done, None)
        finally:
            for fut in futures:
                fut.release()
        forecast_s = time.perf_counter() - t_f

        order = np.argsort(np.concatenate([r["members"] for r in results]))
        cat = lambda name: np.concatenate([r[name] for r in results])[order]  # noqa: E731
        hx, trace, rates, finite, v_obs = (
            cat(n) for n in ("hx", "trace", "rate_hz", "finite", "v_obs")
        )
        n_replaced = 0
        if not finite.all():
            theta_f, hx, trace, rates, v_obs, n_replaced = self._nonfinite(
                k, finite, theta_f, hx, trace, rates, v_obs
            )

        t_io = time.perf_counter()
        if self.plan is not None:
            y, var, obs_time = self.plan.y(w)
            data = self.plan.data(w)
        io_s = time.perf_counter() - t_io

        t_a = time.perf_counter()
        U_f = P.to_u(theta_f)
        Z_f = np.column_stack([U_f, v_obs]) if asm.states else U_f
        stat_out, extra = {}, []
        for o in fitted:
            sums = [s for r in results for s in r["statistics"][o["stat"].name]]
            c = self._compare(k, o, [sums[i] for i in order])
            p = o["prefix"]
            stat_out.update({f"{p}_y": c["y"], f"{p}_hx_mean": c["hx"].mean(axis=0),
                             f"{p}_hx_sd": c["hx"].std(axis=0, ddof=1), f"{p}_error_var": c["error_var"]})  # fmt: skip
            extra.append(c)
        if k >= self.n_cycles() - self.asm.holdout_cycles:
            # A held-out window: forecast and scored, never assimilated.
            Z_a, factor = Z_f.copy(), np.nan
            used = np.isfinite(y) & np.isfinite(var) if self.plan else np.zeros(0, bool)
        elif extra:
            # the estimators' statistics beside the activity, in one analysis
            Z_a, used, factor = self._analysis(
                k, Z_f, np.column_stack([hx] + [c["hx"].reshape(M, -1) for c in extra]),
                np.concatenate([y] + [c["y"].ravel() for c in extra]),
                np.concatenate([var] + [c["error_var"].ravel() for c in extra]),
            )  # fmt: skip
            used = used[: y.size]
        else:
            Z_a, used, factor = self._analysis(
                k, Z_f, hx, y if self.plan else None, var if self.plan else None
            )
        theta_a = P.to_theta(Z_a[:, : P.n])
        analysis_s = time.perf_counter() - t_a

        out = {
            "param": np.stack([theta_f, theta_a]),
            "rate_hz": rates,
            "spread_f": _spread(U_f),
            "spread_a": _spread(Z_a[:, : P.n]),
            "inflation": factor,
            "n_replaced": n_replaced,
        }
        if self.plan is not None:
            hx_mean, hx_sd = hx.mean(axis=0), hx.std(axis=0, ddof=1)
            d = y - hx_mean
            ty = np.full((self.plan.max_frames, self.plan.model.trace.size), np.nan)
            ty[: data.shape[0]] = data[:, self.plan.model.trace]
            tm = np.full_like(ty, np.nan)
            ts = np.full_like(ty, np.nan)
            tm[: data.shape[0]] = trace.mean(axis=0)
            ts[: data.shape[0]] = trace.std(axis=0, ddof=1)
            out.update({
                "y": y, "hx_mean": hx_mean, "hx_sd": hx_sd, "innovation": d,
                "obs_error_var": var, "obs_time": obs_time,
                "trace_y": ty, "trace_hx_mean": tm, "trace_hx_sd": ts,
                "n_obs": int(used.sum()),
                "rmse_obs": float(np.sqrt(np.mean(d[used] ** 2))) if used.any() else np.nan,
                "obs_spread": float(np.sqrt(np.mean(hx_sd[used] ** 2))) if used.any() else np.nan,
                "innovation_ratio": float(np.mean(d[used] ** 2 / (hx_sd[used] ** 2 + var[used])))
                if used.any() else np.nan,
            })  # fmt: skip
        out.update(stat_out)
        if asm.states and k >= self.n_cycles() - asm.holdout_cycles:
            out["v_obs"] = np.stack([v_obs, v_obs])
        elif asm.states:
            v_a = mem.clip_membrane(Z_a[:, P.n :], self.plan.model.neurons, self.network)
            out["v_obs"] = np.stack([v_obs, v_a])
            for i in range(M):
                mem.set_membrane(str(self.store.slot(k + 1)), i, self.plan.model.neurons, v_a[i])
        t_w = time.perf_counter()
        self.store.write_cycle(k, out)
        io_s += time.perf_counter() - t_w
        cycle_s = time.perf_counter() - t_cycle
        self.store.write_cycle(k, {
            "forecast_s": forecast_s, "analysis_s": analysis_s, "io_s": io_s, "cycle_s": cycle_s,
            "task_compute_s": sum(r["compute_s"] for r in results),
            "task_io_s": sum(r["io_s"] for r in results),
        })  # fmt: skip
        self.store.mark_complete(k)
        self._progress(progress, k, M, out, end=True, wall=cycle_s)

    @functools.cached_property
    def _statistics(self) -> list[dict]:
        """The estimators' statistics that the run assimilates (``observe`` of
        ``constraints.glmcc`` and ``constraints.triplets``): for each, the statistic the
        forecast tasks accumulate (``stat``), ``from_cycle``, the store's variable prefix and
        the recording's spikes of the observed neurons in the observations' order."""
        cs, ccfg = self.constraints, self.cfg.constraints
        if cs is None or ccfg is None:
            return []
        from enkf.constraints.build import _glmcc_settings, estimator_spikes
        from enkf.driver.statistics import LinkStatistic, TripletStatistic
        from inference import GLMCC

        pos = self.plan.model.position
        out = []
        if ccfg.glmcc is not None and ccfg.glmcc.observe is not None and cs.link_pre.size:
            settings = _glmcc_settings(xr.Dataset(attrs=cs.info["glmcc"]["settings"]))
            stat = LinkStatistic(np.column_stack([pos[cs.link_pre], pos[cs.link_post]]), GLMCC(**settings))
            out.append({"stat": stat, "from_cycle": ccfg.glmcc.observe.from_cycle, "prefix": "link"})
        if ccfg.triplets is not None and ccfg.triplets.observe is not None and cs.triplet_neurons.size:
            t_info = cs.info["triplets"]
            stat = TripletStatistic(pos[cs.triplet_neurons], float(t_info["bin_ms"]), float(t_info["pseudo_count"]))
            out.append({"stat": stat, "from_cycle": ccfg.triplets.observe.from_cycle, "prefix": "triplet"})
        if out:
            sp, _ = estimator_spikes(self.plan, math.inf)
            at = {int(u): i for i, u in enumerate(sp.unit_ids)}
            recording = sp.select([at[int(u)] for u in self.plan.store_ids])
            for o in out:
                o["recording"] = recording
        return out

    def _compare(self, k, observed: dict, sums: list) -> dict:
        """A statistic on the recording and each member's (``sums``, in member order) over
        the same span: from the first window's start to the end of window ``k``
        (:func:`enkf.driver.statistics.compare`; its error variance is multiplied by the
        number of cycles that assimilate the statistic)."""
        from enkf.driver.statistics import compare

        span = observed["recording"].between(self.window(0).t0_s, self.window(k).t1_s)
        repeats = max(1, self.n_cycles() - self.asm.holdout_cycles - observed["from_cycle"])
        return compare(observed["stat"], span, sums, self.plan.model.neurons.size, repeats)

    def _analysis(self, k, Z_f, hx, y, var):
        """The filter and the inflation on the augmented ensemble Z_f (N, P [+ states])."""
        asm = self.asm
        if y is None:
            return Z_f.copy(), np.zeros(0, bool), np.nan
        used = np.isfinite(y) & np.isfinite(var)
        if not used.any():
            return Z_f.copy(), used, np.nan
        HE, yk, Rk = hx[:, used], y[used], var[used]
        # The augmented state is small (parameters, a few hundred membranes): one BLAS
        # thread. Waking OpenBLAS's pool after a cycle of sleep cost up to 0.15 s here.
        with analysis._blas().limit(limits=1, user_api="blas"):
            if asm.filter == "etkf":
                Z_a = analysis.etkf(Z_f, HE, yk, Rk)
            elif asm.filter == "enkf":
                Z_a = analysis.enkf_pertobs(Z_f, HE, yk, Rk, rng(asm.seed, ANALYSIS, k))
            else:
                Z_a = analysis.letkf(Z_f, HE, yk, Rk, self._localizer(used))
        inf = asm.inflation
        if inf.kind == "rtps":
            Z_a = inflation.rtps(Z_f, Z_a, inf.value)
        elif inf.kind == "rtpp":
            Z_a = inflation.rtpp(Z_f, Z_a, inf.value)
        elif inf.kind == "multiplicative":
            Z_a = inflation.multiplicative(Z_a, inf.value)
        return Z_a, used, (inf.value if inf.kind != "none" else np.nan)

    def _localizer(self, used):
        from enkf.driver.localize import NeuronLocalizer

        return NeuronLocalizer(self.network, self.params.n, self.plan.model.neurons,
                               self.layout(False).obs_neuron[used], self.asm.localization)  # fmt: skip

    def _nonfinite(self, k, finite, theta_f, hx, trace, rates, v_obs):
        bad = np.flatnonzero(~finite)
        good = np.flatnonzero(finite)
        if self.asm.nonfinite == "error" or good.size == 0:
            raise RunError(
                f"cycle {k}: member(s) {', '.join(map(str, bad[:10]))} went non-finite (state or "
                f"predictions); set assimilation.nonfinite: replace to carry on without them"
            )
        donors = rng(self.asm.seed, REPLACE, k).choice(good, size=bad.size)
        slot = self.store.slot(k + 1)
        for b, d in zip(bad, donors, strict=True):
            state, op = mem.load_member(mem.member_path(slot, d))
            state = dataclasses.replace(
                state, member_ids=np.array([b], np.int64)
            )  # keeps b's own drive
            mem.save_member(mem.member_path(slot, b), state, op)
            for arr in (theta_f, hx, trace, rates, v_obs):
                arr[b] = arr[d]
        print(f"spikeda: cycle {k}: replaced non-finite member(s) {bad.tolist()} by {donors.tolist()}",
              file=sys.stderr)  # fmt: skip
        return theta_f, hx, trace, rates, v_obs, int(bad.size)

    def _progress(self, stream, k, done, out, end=False, wall=None):
        if stream is None:
            return
        C, M = self.n_cycles(), self.asm.members
        width = 20
        bar = "#" * int(width * done / M) + "." * (width - int(width * done / M))
        line = f"cycle {k + 1}/{C} [{bar}] {done}/{M} members"
        if out is not None:
            line += f" | spread {out['spread_a']:.3g}"
            if "rmse_obs" in out:
                line += f" | rmse {out['rmse_obs']:.3g} (obs spread {out['obs_spread']:.3g})"
            line += f" | {wall:.1f} s"
        tty = getattr(stream, "isatty", lambda: False)()
        if tty:
            stream.write("\r" + line + ("\n" if end else ""))
            stream.flush()
        elif end:
            stream.write(line + "\n")
            stream.flush()


def _spread(U: np.ndarray) -> float:
    return float(np.sqrt(np.mean(U.var(axis=0, ddof=1))))


def _output(cfg: RunConfig, out) -> Path:
    if out is None and cfg.output is None:
        raise ConfigError("no output path: give --out RUN or 'output:' in the config")
    return Path(out if out is not None else cfg.output).expanduser().absolute()


def _check_output(path: Path, digest: str, overwrite: bool) -> None:
    if not path.exists():
        return
    if not rs.is_run(path):
        raise ConfigError(
            f"{path}: exists and is not a spikeda run; spikeda will not replace it (choose another --out)"
        )
    if not overwrite:
        same = rs.RunStore(path).attrs.get("config_digest") == digest
        hint = (
            "it is this config's run: continue it with `spikeda resume`"
            if same
            else "it holds a different run"
        )
        raise ConfigError(f"{path}: exists; {hint}, or pass --overwrite to replace it")


def start(config, out=None, cluster=None, workers=None, overwrite=False, progress=sys.stderr,
          client=None) -> RunSummary:  # fmt: skip
    """``spikeda run``: validate, create run.zarr, run every cycle.

    Parameters
    ----------
    config : path of a run config (or a (RunConfig, yaml_text) pair)
    out : path of the run (default: the config's ``output``)
    cluster, workers : the command line's --cluster / --workers
    overwrite : replace an existing run at ``out`` (never anything that is not a run)
    client : an existing distributed.Client to use instead of the config's cluster
    """
    t0 = time.perf_counter()
    cfg, text = load_run_config(config) if not isinstance(config, tuple) else config
    path = _output(cfg, out)
    digest = cfg.digest()
    _check_output(path, digest, overwrite)
    section = cluster_from_cli(cfg.cluster, cluster, workers)
    network, params = Driver.build(cfg)
    if cfg.twin is not None:
        if cfg.assimilation.cycles is None:
            raise ConfigError("assimilation.cycles: a twin needs the number of cycles")
        params.check_truth(cfg.twin.truth)
        plan = None
    else:
        plan = (
            ObservationPlan(cfg.observations, cfg.assimilation, network, cfg.observations.store)
            if cfg.observations is not None
            else None
        )
        if plan is None and cfg.assimilation.cycles is None:
            raise ConfigError(
                "assimilation.cycles: a run without observations needs the number of cycles"
            )
    if path.exists():
        rs.remove_run(path)  # a run, and --overwrite was given (checked above)
    path.mkdir(parents=True)
    try:
        truth = None
        if cfg.twin is not None:
            truth, store_path = simulate_truth(cfg, network, params, path, progress)
            if cfg.observations is not None:
                plan = ObservationPlan(cfg.observations, cfg.assimilation, network, store_path)
        constraints = None
        if cfg.constraints is not None:
            network, params, plan, constraints = _constrain(cfg, network, plan, path, progress)
        driver = Driver(cfg, path, plan, network, params, constraints)
        attrs = {
            "name": cfg.name,
            "config_yaml": text,
            "config_json": json.dumps(cfg.model_dump(mode="json")),
            "config_digest": digest,
            # Task keys: the same across a resume, distinct for two runs on one scheduler.
            "run_id": digest[:10] + "-" + _path_tag(path),
            "seed": cfg.assimilation.seed,
            "members": cfg.assimilation.members,
            "filter": cfg.assimilation.filter,
            "network": network.spec.name,
            "network_fingerprint": network.fingerprint,
            "observations": json.dumps(plan.fingerprint()) if plan else "",
            "observation_kind": plan.model.kind if plan else "none",
            "twin_store": TWIN_STORE if cfg.twin is not None else "",
            "noise_nu": plan.nu if plan is not None and plan.nu is not None else float("nan"),
            "obs_frame_var": plan.frame_var if plan else float("nan"),
            "versions": _versions(),
            "created": rs.now(),
            "constraints": json.dumps(constraints.info) if constraints is not None else "",
        }
        lay = driver.layout(twin=cfg.twin is not None)
        rs.create(path, rs.skeleton(lay, attrs), driver.static(truth))
    except BaseException:
        # Nothing of a run that never started is kept (the path did not exist before).
        shutil.rmtree(path, ignore_errors=True)
        raise
    n = _execute(driver, section, progress, client)
    return RunSummary(path, n, time.perf_counter() - t0, 0)


def _constrain(cfg: RunConfig, network, plan, path: Path, progress):
    """Run the estimators on the observations, build the members' network from them and
    keep everything in the run folder; returns (network, params, plan, ConstraintSet or
    None: nothing to constrain and ``if_empty: unconstrained``)."""
    from enkf.constraints import prepare
    from enkf.constraints.build import in_degree_summary

    asm = cfg.assimilation
    until = cfg.constraints.until_s
    if until is None:
        # the start of the first held-out window (constraints need observations: a plan)
        until = plan.windows[-asm.holdout_cycles].obs_t0_s if asm.holdout_cycles else math.inf
    cs = prepare(cfg.constraints, network, plan, asm.members, until, progress)
    if cs is None:
        return network, ParameterSet(cfg.parameters, network), plan, None
    member_net, params = Driver.build(cfg, cs)
    if cs.n_synapses:
        cs.info["in_degree"] = deg = in_degree_summary(network, member_net, cs.observed)
        deg["rule"] = "conserve" if cs.conserve_in_degree else "add"
        if progress is not None:
            print(f"spikeda: constraints: inputs of the {deg['n_observed']} observed neurons ({deg['rule']}): "
                  + ", ".join(f"{k} {deg[k]['spec']} in the spec, {deg[k]['members']} in the members"
                              for k in ("E", "I")), file=progress)  # fmt: skip
    network = member_net
    plan = ObservationPlan(cfg.observations, asm, network, plan.path)
    cs.save(path)
    return network, params, plan, cs


def _path_tag(path: Path) -> str:
    return hashlib.blake2b(str(path).encode(), digest_size=3).hexdigest()


def _execute(driver: Driver, section, progress, client) -> int:
    if client is not None:
        n_workers = max(len(client.scheduler_info()["workers"]), 1)
        return driver.run_cycles(client, n_workers, progress)
    with connect(section, progress) as (cl, n_workers):
        return driver.run_cycles(cl, n_workers, progress)


def load(path) -> Driver:
    """A Driver for an existing run (its config from the run's attrs)."""
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise ConfigError(f"{path}: no such run")
    store = rs.RunStore(path)
    attrs = store.attrs
    cfg = RunConfig.model_validate(json.loads(attrs["config_json"]))
    constraints = None
    if attrs.get("constraints"):
        from enkf.constraints import ConstraintSet

        constraints = ConstraintSet.load(path)
    network, params = Driver.build(cfg, constraints)
    if network.fingerprint != attrs["network_fingerprint"]:
        raise ConfigError(f"{path}: the network built from its config differs from the run's")
    plan = None
    if cfg.observations is not None:
        store_path = (
            path / attrs["twin_store"] if attrs.get("twin_store") else cfg.observations.store
        )
        plan = ObservationPlan(cfg.observations, cfg.assimilation, network, store_path)
        if attrs["twin_store"] == "" and json.dumps(plan.fingerprint()) != attrs["observations"]:
            raise ConfigError(
                f"{path}: the observation store {store_path} is not the one the run started with"
            )
    return Driver(cfg, path, plan, network, params, constraints)


def resume(path, cluster=None, workers=None, progress=sys.stderr, client=None) -> RunSummary:
    """``spikeda resume RUN``: continue from the last complete cycle."""
    t0 = time.perf_counter()
    driver = load(path)
    done = rs.RunStore(driver.path).completed
    section = cluster_from_cli(driver.cfg.cluster, cluster, workers)
    n = _execute(driver, section, progress, client)
    return RunSummary(driver.path, n, time.perf_counter() - t0, done)
