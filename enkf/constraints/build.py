"""The connectivity constraints of a run: estimators on the observed spikes → the members'
synapses among the observed neurons and their hidden common inputs.

:func:`prepare` runs (or reads) GLMCC and the triplet map on the observed spikes before the
held-out part, turns their results into a :class:`ConstraintSet` in model-neuron terms and
draws each member's synapse weights; :meth:`ConstraintSet.network` is the members' network
(the spec's synapses among the observed neurons replaced); :meth:`ConstraintSet.save` keeps
everything in the run folder (``constraints/``), so a resumed run rebuilds the same members.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from enkf.config import ConfigError
from enkf.constraints.calibrate import calibrate_j
from enkf.constraints.connections import Connections, from_glmcc
from enkf.constraints.sources import EXCITATORY_MOTIFS, Sources, explained_pairs, from_triplets
from enkf.run_config import ConstraintsSection, ParameterSpec, Prior
from model import Network, build_network
from model.network import csr_rows
from model.overlay import member_synapse_order, with_member_synapses
from model.psp import weight_for_psp

#: Where a run keeps its constraints (inside the run folder).
FOLDER = "constraints"
#: A member's draw of a constrained synapse's PSP is clipped to this size (mV).
MAX_DRAW_MV = 10.0
#: GLMCC's lags are 1-ms bins: spike times coarser than this cannot support it.
GLMCC_RESOLUTION_S = 1e-3


@dataclass
class ConstraintSet:
    """Constraints in model-neuron terms, with each member's synapse weights.

    Attributes
    ----------
    observed : (n_r,) int64
        The observed model neurons.
    replace_all : bool
        True: the spec's synapses among the observed neurons are all replaced by the
        constrained ones (GLMCC decides on every pair: ``glmcc.undetected: remove``);
        False: only the pairs with a constrained synapse lose their spec synapse, the rest
        keep the population rules (``undetected: keep``, and runs without GLMCC).
    syn_pre, syn_post : (k,) int64
        Constrained synapses (model neurons), in the network's CSR order (pre, then post).
    syn_pre_unit, syn_post_unit : (k,) int64
        The same as unit ids of the recording.
    syn_psp_mv, syn_psp_se_mv, syn_delay_ms : (k,) float64
    syn_excitatory : (k,) bool
    synapse_weight : (M, k) float64
        Each member's weights (model units): its draw of the PSP ~ N(psp, se²), clipped at
        ±MAX_DRAW_MV and at 0 where the draw changes sign (then the member has no synapse).
    src_ptr : (n_src+1,) int64; src_post : (·,) int64
        Hidden sources' targets (model neurons).
    source_rate_hz, source_amplitude_mv, source_weight : (n_src,) float64
        Rate, amplitude (mV) and the weight (model units) of that amplitude, averaged over
        the source's targets; the members' weights are ``source_weight`` × their strength.
    conserve_in_degree : bool
        True: each observed neuron keeps, per sign, the in-degree its population rule drew
        (``glmcc.in_degree: conserve``): spec synapses from unobserved neurons make room for
        its constrained inputs, or removed spec synapses move to unobserved presynaptic
        neurons where it lost more than it got; False: the constrained synapses come on top.
    seed : int
        Seed of the choice of the spec synapses that make room.
    link_pre, link_post : (L,) int64
        Links whose GLMCC J is assimilated (``glmcc.observe``; model neurons), the most
        significant first; empty when none.
    link_j, link_j_se : (L,) float64
        Their J and J_se estimated on the recording.
    triplet_neurons : (T, 3) int64
        Triplets whose θ_12, θ_13, θ_23 and θ_123 are assimilated (``triplets.observe``;
        model neurons), the most coupled first; empty when none.
    triplet_theta, triplet_theta_se : (T, 4) float64
        Those θ's and their SEs estimated on the recording.
    info : dict
        What was done (estimator settings, counts, Dale conflicts, time resolution).
    results : dict of xarray.Dataset
        The estimators' results as used (written by :meth:`save`, not read back: the members
        need only the arrays above).
    """

    observed: np.ndarray
    syn_pre: np.ndarray
    syn_post: np.ndarray
    syn_pre_unit: np.ndarray
    syn_post_unit: np.ndarray
    syn_psp_mv: np.ndarray
    syn_psp_se_mv: np.ndarray
    syn_delay_ms: np.ndarray
    syn_excitatory: np.ndarray
    synapse_weight: np.ndarray
    src_ptr: np.ndarray
    src_post: np.ndarray
    source_rate_hz: np.ndarray
    source_amplitude_mv: np.ndarray
    source_weight: np.ndarray
    replace_all: bool = True
    conserve_in_degree: bool = False
    seed: int = 0
    link_pre: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    link_post: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    link_j: np.ndarray = field(default_factory=lambda: np.empty(0))
    link_j_se: np.ndarray = field(default_factory=lambda: np.empty(0))
    triplet_neurons: np.ndarray = field(default_factory=lambda: np.empty((0, 3), np.int64))
    triplet_theta: np.ndarray = field(default_factory=lambda: np.empty((0, 4)))
    triplet_theta_se: np.ndarray = field(default_factory=lambda: np.empty((0, 4)))
    info: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict, repr=False)

    @property
    def n_synapses(self) -> int:
        return int(self.syn_pre.size)

    @property
    def n_sources(self) -> int:
        return int(self.src_ptr.size - 1)

    def structure(self) -> dict:
        """The small arrays a worker needs to build the members' network."""
        return {
            "replace_among": self.observed if self.replace_all else np.empty(0, np.int64),
            "replace_pairs": np.empty((0, 2), np.int64) if self.replace_all
            else np.column_stack([self.syn_pre, self.syn_post]),
            "pre": self.syn_pre,
            "post": self.syn_post,
            "delay_ms": self.syn_delay_ms,
            "excitatory": self.syn_excitatory,
            "source_targets": [
                self.src_post[a:b] for a, b in zip(self.src_ptr[:-1], self.src_ptr[1:], strict=True)
            ],
            "conserve_in_degree": self.conserve_in_degree,
            "observed": self.observed,
            "seed": self.seed,
        }

    def network(self, base: Network) -> Network:
        net = with_member_synapses(base, **self.structure())
        # The draws are stored in this order; the network must agree.
        if self.n_synapses and not np.array_equal(
            member_synapse_order(net, self.syn_pre, self.syn_post), np.arange(self.n_synapses)
        ):
            raise RuntimeError("constrained synapses are not in the network's order")
        return net

    def parameter_specs(self, cfg: ConstraintsSection) -> list[ParameterSpec]:
        """The estimated strengths the constraints add: of the constrained E and I links
        (``glmcc.strength``, for each sign present) and of the hidden sources."""
        specs = []
        if cfg.glmcc is not None and cfg.glmcc.strength is not None:
            for sign, n in (("E", int(self.syn_excitatory.sum())), ("I", int((~self.syn_excitatory).sum()))):
                if n:
                    specs.append(ParameterSpec(name=f"link_{sign}_strength", link_scale=sign,
                                               prior=cfg.glmcc.strength))  # fmt: skip
        if not self.n_sources or cfg.triplets is None:
            return specs
        prior = Prior(mean=cfg.triplets.strength.mean, sd=cfg.triplets.strength.sd)
        if cfg.triplets.per_source:
            return specs + [
                ParameterSpec(name=f"source_{s}_strength", source_scale=[s], prior=prior)
                for s in range(self.n_sources)
            ]
        return specs + [ParameterSpec(name="source_strength", source_scale="all", prior=prior)]

    # -- persistence -------------------------------------------------------------------------
    def save(self, run_path: Path) -> None:
        """Write ``constraints/members.zarr`` and the estimators' results
        (``constraints/glmcc.zarr``, ``triplets.zarr``) in the run folder."""
        ds = xr.Dataset(
            {
                "observed_neuron": ("observed", self.observed),
                "pre_neuron": ("synapse", self.syn_pre),
                "post_neuron": ("synapse", self.syn_post),
                "pre_unit": ("synapse", self.syn_pre_unit),
                "post_unit": ("synapse", self.syn_post_unit),
                "psp_mv": ("synapse", self.syn_psp_mv, {"units": "mV"}),
                "psp_se_mv": ("synapse", self.syn_psp_se_mv, {"units": "mV"}),
                "delay_ms": ("synapse", self.syn_delay_ms, {"units": "ms"}),
                "excitatory": ("synapse", self.syn_excitatory),
                "synapse_weight": (("member", "synapse"), self.synapse_weight,
                                   {"units": "model synaptic units (nS for coba, pA for cuba)"}),
                "source_ptr": ("source_edge", self.src_ptr),
                "source_target": ("source_link", self.src_post),
                "source_rate_hz": ("source", self.source_rate_hz, {"units": "Hz"}),
                "source_amplitude_mv": ("source", self.source_amplitude_mv, {"units": "mV"}),
                "source_weight": ("source", self.source_weight),
                "link_pre_neuron": ("observed_link", self.link_pre),
                "link_post_neuron": ("observed_link", self.link_post),
                "link_j": ("observed_link", self.link_j),
                "link_j_se": ("observed_link", self.link_j_se),
                "triplet_neuron": (("observed_triplet", "vertex"), self.triplet_neurons),
                "triplet_theta": (("observed_triplet", "interaction"), self.triplet_theta),
                "triplet_theta_se": (("observed_triplet", "interaction"), self.triplet_theta_se),
            },
            attrs={"info": json.dumps(self.info), "replace_all": int(self.replace_all),
                   "conserve_in_degree": int(self.conserve_in_degree), "seed": self.seed},
        )  # fmt: skip
        folder = _folder(run_path)
        ds.to_zarr(folder / "members.zarr", mode="w")
        for name, result in self.results.items():
            result.to_zarr(folder / f"{name}.zarr", mode="w")

    @classmethod
    def load(cls, run_path: Path) -> ConstraintSet:
        path = Path(run_path) / FOLDER / "members.zarr"
        if not path.exists():
            raise ConfigError(f"{run_path}: the run has constraints but {path} is missing")
        ds = xr.open_zarr(path).load()
        v = lambda k: ds[k].values  # noqa: E731
        return cls(
            observed=v("observed_neuron"), syn_pre=v("pre_neuron"), syn_post=v("post_neuron"),
            syn_pre_unit=v("pre_unit"), syn_post_unit=v("post_unit"), syn_psp_mv=v("psp_mv"),
            syn_psp_se_mv=v("psp_se_mv"), syn_delay_ms=v("delay_ms"),
            syn_excitatory=v("excitatory").astype(bool), synapse_weight=v("synapse_weight"),
            src_ptr=v("source_ptr"), src_post=v("source_target"),
            source_rate_hz=v("source_rate_hz"), source_amplitude_mv=v("source_amplitude_mv"),
            source_weight=v("source_weight"), replace_all=bool(ds.attrs.get("replace_all", 1)),
            conserve_in_degree=bool(ds.attrs.get("conserve_in_degree", 0)),
            seed=int(ds.attrs.get("seed", 0)), info=json.loads(ds.attrs["info"]),
            **({} if "link_j" not in ds else dict(
                link_pre=v("link_pre_neuron"), link_post=v("link_post_neuron"),
                link_j=v("link_j"), link_j_se=v("link_j_se"))),
            **({} if "triplet_theta" not in ds else dict(
                triplet_neurons=v("triplet_neuron"), triplet_theta=v("triplet_theta"),
                triplet_theta_se=v("triplet_theta_se"))),
        )  # fmt: skip


def _folder(run_path) -> Path:
    """``constraints/`` as a Zarr group of the run, so that readers of run.zarr see a
    group of stores rather than a folder they do not know."""
    import zarr

    path = Path(run_path) / FOLDER
    zarr.open_group(path, mode="a")
    return path


def observed_links(ds: xr.Dataset, conns: Connections, n: int) -> dict:
    """The ``n`` most significant of the kept links (|J|/J_se) with a finite J_se: their
    units and GLMCC's J and J_se (lists, for the run's attrs)."""
    J = ds["J"].sel(pre=xr.DataArray(conns.pre), post=xr.DataArray(conns.post)).values
    se = ds["J_se"].sel(pre=xr.DataArray(conns.pre), post=xr.DataArray(conns.post)).values
    ok = np.flatnonzero(np.isfinite(J) & np.isfinite(se) & (se > 0))
    best = ok[np.argsort(-np.abs(J[ok]) / se[ok], kind="stable")][:n]
    return {"pre_unit": conns.pre[best].tolist(), "post_unit": conns.post[best].tolist(),
            "J": J[best].tolist(), "J_se": se[best].tolist()}  # fmt: skip


def observed_triplets(ds: xr.Dataset, n: int) -> dict:
    """The ``n`` triplets classified as excitatory common input with finite θ's, the most
    coupled first (the sum over their pairs of θ_ij / SE): their units, θ_12, θ_13, θ_23,
    θ_123 and SEs (lists, for the run's attrs)."""
    th = np.column_stack([ds["theta_ij"].values, ds["theta_123"].values])
    se = np.column_stack([ds["se_theta_ij"].values, ds["se_theta_123"].values])
    ok = np.isin(ds["motif"].values.astype(str), EXCITATORY_MOTIFS)
    ok &= np.isfinite(th).all(axis=1) & np.isfinite(se).all(axis=1) & (se > 0).all(axis=1)
    idx = np.flatnonzero(ok)
    coupling = (th[:, :3] / se[:, :3]).sum(axis=1)
    best = idx[np.argsort(-coupling[idx], kind="stable")][:n]
    return {"units": ds["triplet_units"].values[best].tolist(), "theta": th[best].tolist(),
            "theta_se": se[best].tolist()}  # fmt: skip


def in_degree_summary(base: Network, net: Network, observed) -> dict:
    """How many inputs the observed neurons have in the members' network ``net`` (spec and
    constrained synapses) against the spec's network ``base``, per sign: the totals, and
    the number of neurons whose own count is the spec's (all of them under
    ``in_degree: conserve``, unless a neuron had too few unobserved inputs to make room)."""
    observed = np.asarray(observed, dtype=np.int64)

    def counts(n: Network) -> np.ndarray:  # (n_observed, 2): inhibitory, excitatory inputs
        spec = n.syn_post.astype(np.int64) * 2 + n.excitatory[csr_rows(n.syn_ptr)]
        member = n.msyn_post.astype(np.int64) * 2 + n.msyn_excitatory
        c = np.bincount(spec, minlength=2 * n.n) + np.bincount(member, minlength=2 * n.n)
        return c.reshape(n.n, 2)[observed]

    c0, c1 = counts(base), counts(net)
    return {
        sign: {"spec": int(c0[:, k].sum()), "members": int(c1[:, k].sum()),
               "neurons_as_spec": int((c0[:, k] == c1[:, k]).sum())}
        for k, sign in ((1, "E"), (0, "I"))
    } | {"n_observed": int(observed.size)}  # fmt: skip


def member_network(spec, seed: int, structure: dict) -> Network:
    """The members' network on a worker: the spec's network with the constraints."""
    return with_member_synapses(build_network(spec, seed), **structure)


# -- building ----------------------------------------------------------------------------------
def _open_result(path: str, kind: str, where: str) -> xr.Dataset:
    try:
        ds = xr.open_zarr(path).load()
    except Exception as exc:  # noqa: BLE001 - any failure to read is the same message
        raise ConfigError(f"{where}.result: cannot read {path} as a Zarr result ({exc})") from None
    if ds.attrs.get("kind") != kind:
        raise ConfigError(f"{where}.result: {path} is not a {kind} result (kind {ds.attrs.get('kind')!r})")
    return ds


def _check_units(ids, observed_units, where: str, path) -> None:
    ids = np.asarray(ids)
    unknown = np.setdiff1d(ids, observed_units)
    if unknown.size:
        raise ConfigError(
            f"{where}.result: {path} is from a different recording: its unit ids "
            f"{unknown[:5].tolist()}{' …' if unknown.size > 5 else ''} are not among the "
            f"observed units of this run"
        )


def estimator_spikes(plan, until_s: float):
    """The observed spikes the estimators use (SpikeTrains of the observed units, before
    ``until_s``) and their time resolution (s): spike times of a spike store, or events
    deconvolved from calcium (frame resolution)."""
    store = plan.store
    observed = np.asarray(plan.store_ids)
    if store.spikes is not None:
        sp = store.spikes
        resolution = 0.0
    else:
        from observations.deconvolve import events_from_calcium

        sp, info = events_from_calcium(store.dff.sel(neuron=observed).load())
        resolution = float(info.attrs["time_resolution_s"])
    sp = sp.between(sp.t_start_s, min(until_s, sp.t_stop_s))
    return sp.select(np.flatnonzero(np.isin(sp.unit_ids, observed))), resolution


def prepare(cfg: ConstraintsSection, network: Network, plan, n_members: int, until_s: float,
            progress=None) -> ConstraintSet | None:  # fmt: skip
    """Run or read the estimators and build the constraints (None: nothing to constrain and
    ``if_empty: unconstrained``). ``plan`` is the run's ObservationPlan (its store and the
    map of store units to model neurons)."""
    from inference import GLMCC

    spikes, resolution = estimator_spikes(plan, until_s)
    units = np.asarray(plan.store_ids)
    neuron_of = dict(zip(units.tolist(), np.asarray(plan.model.neurons).tolist(), strict=True))
    duration = float(spikes.duration_s)
    info = {"until_s": float(spikes.t_stop_s), "time_resolution_s": resolution,
            "n_units": int(units.size)}  # fmt: skip

    def say(msg):
        if progress is not None:
            print(f"spikeda: constraints: {msg}", file=progress)

    results = {}
    conns = None
    explained = set()
    if cfg.glmcc is not None:
        where = "constraints.glmcc"
        if resolution > GLMCC_RESOLUTION_S:
            raise ConfigError(
                f"{where}: the spikes are deconvolved from calcium frames ({resolution * 1e3:.1f} ms "
                f"resolution); GLMCC needs millisecond lags, so these data cannot support it "
                f"(use spike observations, or constraints.triplets with bin_ms ≥ {resolution * 1e3:.0f})"
            )
        if cfg.glmcc.result is not None:
            ds = _open_result(cfg.glmcc.result, "connectivity", where)
            _check_units(ds["pre"].values, units, where, cfg.glmcc.result)
        else:
            kw = {"delay_ms": cfg.glmcc.delay_ms, "test": cfg.glmcc.test}
            if cfg.glmcc.alpha is not None:
                kw["alpha"] = cfg.glmcc.alpha
            say(f"GLMCC on {spikes.n_units} units, {duration:g} s")
            ds = GLMCC(**kw).fit(spikes)
        default = np.where(network.excitatory[[neuron_of[int(u)] for u in ds["pre"].values]], "E", "I")
        known = _cell_types(plan, ds["pre"].values) if cfg.glmcc.cell_types == "store" else None
        calibration = None
        if cfg.glmcc.psp == "model":
            say(f"J ↔ PSP of the model neuron: probe synapses, {duration:g} s simulated")
            calibration = calibrate_j(network, list(neuron_of.values()), duration,
                                      _glmcc_settings(ds), seed=cfg.seed)  # fmt: skip
        rate_of = dict(zip(spikes.unit_ids.tolist(), spikes.rates_hz().tolist(), strict=True))
        rates = np.array([rate_of.get(int(u), np.nan) for u in ds["pre"].values])
        conns = from_glmcc(ds, default, where, known, calibration, rates)
        # the links kept as synapses (after Dale's rule), not every significant pair: a
        # trough beside a common-input peak must not hide that common input
        explained = explained_pairs(conns.pre, conns.post, conns.excitatory)
        info["glmcc"] = {"significant": conns.n + conns.dropped, "dale_dropped": conns.dropped,
                         "settings": {k: str(v) for k, v in ds.attrs.items()},
                         "psp": cfg.glmcc.psp,
                         "calibration": None if calibration is None else calibration.as_dict()}  # fmt: skip
        info["glmcc"]["type_mismatch"] = [
            int(u) for u, t in zip(conns.units, conns.types, strict=True)
            if t and (t == "E") != bool(network.excitatory[neuron_of[int(u)]])
        ]  # fmt: skip
        if cfg.glmcc.observe is not None and conns.n:
            info["glmcc"]["observed_links"] = observed_links(ds, conns, cfg.glmcc.observe.links)
        if conns.n == 0:
            _nothing(cfg, where, f"no significant connection among the {units.size} observed units", say)
            conns = None
        else:
            say(f"{conns.n} connections ({int(conns.excitatory.sum())} E), {conns.dropped} dropped by Dale's rule")
        results["glmcc"] = ds

    sources = None
    if cfg.triplets is not None:
        where = "constraints.triplets"
        if resolution > cfg.triplets.bin_ms * 1e-3:
            raise ConfigError(
                f"{where}.bin_ms: {cfg.triplets.bin_ms} ms is finer than the spikes' "
                f"{resolution * 1e3:.1f}-ms resolution (frames); use bin_ms ≥ {resolution * 1e3:.0f}"
            )
        if cfg.triplets.result is not None:
            ds = _open_result(cfg.triplets.result, "triplets", where)
            _check_units(np.unique(ds["triplet_units"].values), units, where, cfg.triplets.result)
        else:
            say(f"triplet map on {spikes.n_units} units")
            ds = _classified_triplets(spikes, cfg.triplets)
        sources = from_triplets(ds, where, explained)
        info["triplets"] = {"sources": sources.n,
                            "excitatory_triplets": int(np.isin(ds["motif"].values.astype(str), EXCITATORY_MOTIFS).sum()),
                            "bin_ms": float(ds.attrs["bin_ms"]),
                            "pseudo_count": float(ds.attrs.get("pseudo_count", 0.5))}  # fmt: skip
        if cfg.triplets.observe is not None:
            info["triplets"]["observed_triplets"] = observed_triplets(ds, cfg.triplets.observe.triplets)
        if sources.n == 0:
            _nothing(cfg, where, "no triplet of the observed units is classified as excitatory common input", say)
            sources = None
        else:
            say(f"{sources.n} hidden sources from {info['triplets']['excitatory_triplets']} excitatory triplets")
        results["triplets"] = ds

    if conns is None and sources is None:
        return None
    cs = _assemble(cfg, network, conns, sources, neuron_of, units, n_members, info)
    cs.results = results
    return cs


def _classified_triplets(spikes, cfg) -> xr.Dataset:
    """The triplet map, with motifs for the triplets that can show excitatory common input.

    A pair is coupled when its θ_ij is significantly positive (one-sided, level ``alpha``
    over the number of pairs, in every triplet that holds it: the median z). Classified:
    every triplet whose three pairs are coupled (candidates for E-all and E-pairs), and for
    each coupled pair one triplet, with the third unit least coupled to both (candidates
    for E-pair). Classifying all triplets of 60 units (34 220) would take half an hour, and
    a triplet without a coupled pair cannot be labelled excitatory anyway.
    """
    from scipy.stats import norm

    from inference import TripletMap
    from inference.triplet_motifs import classify_dataset

    ds = TripletMap(bin_ms=cfg.bin_ms, alpha=cfg.alpha, classify=False).fit(spikes)
    units = ds["triplet_units"].values
    z = np.nan_to_num((ds["theta_ij"] / ds["se_theta_ij"]).values, nan=-np.inf)
    n = spikes.n_units
    pos = {int(u): i for i, u in enumerate(spikes.unit_ids)}
    idx = np.vectorize(pos.get)(units)
    Z = np.full((n, n), -np.inf)
    for k, (a, b) in enumerate(((0, 1), (0, 2), (1, 2))):
        # a pair's z is the same statistic in every triplet up to the third unit: the median
        pairs = np.column_stack([idx[:, a], idx[:, b]])
        order = np.lexsort((z[:, k], pairs[:, 1], pairs[:, 0]))
        p, zz = pairs[order], z[order, k]
        starts = np.flatnonzero(np.r_[True, (np.diff(p, axis=0) != 0).any(axis=1)])
        ends = np.r_[starts[1:], p.shape[0]]
        for s_, e_ in zip(starts, ends, strict=True):
            i, j = p[s_]
            Z[i, j] = Z[j, i] = max(Z[i, j], zz[(s_ + e_) // 2])
    coupled = Z > norm.isf(cfg.alpha / max(n * (n - 1) / 2, 1))
    c = coupled[idx[:, 0], idx[:, 1]], coupled[idx[:, 0], idx[:, 2]], coupled[idx[:, 1], idx[:, 2]]
    chosen = set(np.flatnonzero(c[0] & c[1] & c[2]).tolist())
    lookup = {tuple(sorted(t)): k for k, t in enumerate(idx.tolist())}
    for i, j in zip(*np.nonzero(np.triu(coupled, 1)), strict=True):
        others = [m for m in range(n) if m not in (i, j)]
        if others:
            m = min(others, key=lambda q: max(Z[i, q], Z[j, q]))
            chosen.add(lookup[tuple(sorted((i, j, m)))])
    candidates = np.array(sorted(chosen), dtype=np.int64)
    out = classify_dataset(ds.isel(triplet=candidates))
    out.attrs["classified"] = (
        f"{candidates.size} of {ds.sizes['triplet']} triplets "
        f"({int(np.triu(coupled, 1).sum())} coupled pairs at α = {cfg.alpha} over pairs)"
    )
    return out


def _glmcc_settings(ds: xr.Dataset) -> dict:
    """The GLMCC settings a result was made with (its attrs), as keyword arguments."""
    a = ds.attrs
    delay = a.get("delay_ms", 3.0)
    kw = {"delay_ms": delay if delay == "scan" else float(delay), "test": str(a.get("test", "wald"))}
    for key in ("tau_ms", "beta", "window_ms", "min_lag_ms"):
        if key in a:
            kw[key] = float(a[key])
    return kw


def _cell_types(plan, units) -> np.ndarray:
    """The store's cell type ("E", "I" or "unknown") of each unit id of ``units``."""
    store = plan.store
    types = store.units.get("cell_type")
    if types is None or store.spikes is None:
        return np.full(len(units), "unknown")
    pos = {int(u): k for k, u in enumerate(store.spikes.unit_ids)}
    return np.array([str(types[pos[int(u)]]) if int(u) in pos else "unknown" for u in units])


def _nothing(cfg: ConstraintsSection, where: str, what: str, say) -> None:
    """An estimator found nothing to constrain: an error, or (``if_empty: unconstrained``)
    a note that the run goes on without this constraint."""
    if cfg.if_empty == "error":
        raise ConfigError(
            f"{where}: {what}; set constraints.if_empty: unconstrained to run without this constraint"
        )
    say(f"{what}: this constraint is left out")


def _assemble(cfg, network, conns: Connections | None, sources: Sources | None, neuron_of,
              units, n_members, info) -> ConstraintSet:  # fmt: skip
    observed = np.sort(np.array([neuron_of[int(u)] for u in units], np.int64))
    if conns is not None:
        pre = np.array([neuron_of[int(u)] for u in conns.pre], np.int64)
        post = np.array([neuron_of[int(u)] for u in conns.post], np.int64)
        order = np.lexsort((post, pre))
        pre, post = pre[order], post[order]
        psp, se = conns.psp_mv[order], conns.psp_se_mv[order]
        exc = conns.excitatory[order]
        rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(17,)))
        draws = psp[None, :] + se[None, :] * rng.standard_normal((n_members, psp.size))
        sign = np.where(exc, 1.0, -1.0)
        # A draw of the other sign means no synapse in that member (never one of the other
        # sign: Dale's type is the estimate's, not the draw's).
        mag = np.clip(draws * sign, 0.0, MAX_DRAW_MV)
        weights = weight_for_psp(network, np.broadcast_to(post, mag.shape), sign * mag)[0]
        syn = dict(syn_pre=pre, syn_post=post, syn_pre_unit=conns.pre[order],
                   syn_post_unit=conns.post[order], syn_psp_mv=psp, syn_psp_se_mv=se,
                   syn_delay_ms=conns.delay_ms[order], syn_excitatory=exc, synapse_weight=weights)  # fmt: skip
    else:
        e = np.empty(0)
        syn = dict(syn_pre=e.astype(np.int64), syn_post=e.astype(np.int64),
                   syn_pre_unit=e.astype(np.int64), syn_post_unit=e.astype(np.int64),
                   syn_psp_mv=e, syn_psp_se_mv=e, syn_delay_ms=e, syn_excitatory=e.astype(bool),
                   synapse_weight=np.zeros((n_members, 0)))  # fmt: skip
    if sources is not None:
        targets = [np.array([neuron_of[int(u)] for u in t], np.int64) for t in sources.targets]
        amp = np.minimum(sources.amplitude_mv, MAX_DRAW_MV)
        src_w = np.array([
            weight_for_psp(network, t, np.full(t.size, a))[0].mean() for t, a in zip(targets, amp, strict=True)
        ])  # fmt: skip
        src = dict(src_ptr=np.concatenate([[0], np.cumsum([t.size for t in targets])]).astype(np.int64),
                   src_post=np.concatenate(targets), source_rate_hz=sources.rate_hz,
                   source_amplitude_mv=sources.amplitude_mv, source_weight=src_w)  # fmt: skip
    else:
        src = dict(src_ptr=np.zeros(1, np.int64), src_post=np.empty(0, np.int64),
                   source_rate_hz=np.empty(0), source_amplitude_mv=np.empty(0), source_weight=np.empty(0))  # fmt: skip
    glmcc = cfg.glmcc if conns is not None else None
    links = info.get("glmcc", {}).get("observed_links") if glmcc is not None else None
    if links:
        syn["link_pre"] = np.array([neuron_of[int(u)] for u in links["pre_unit"]], np.int64)
        syn["link_post"] = np.array([neuron_of[int(u)] for u in links["post_unit"]], np.int64)
        syn["link_j"], syn["link_j_se"] = np.array(links["J"]), np.array(links["J_se"])
    triplets = info.get("triplets", {}).get("observed_triplets") if sources is not None else None
    if triplets and triplets["units"]:
        syn["triplet_neurons"] = np.array([[neuron_of[int(u)] for u in t] for t in triplets["units"]], np.int64)
        syn["triplet_theta"] = np.array(triplets["theta"])
        syn["triplet_theta_se"] = np.array(triplets["theta_se"])
    return ConstraintSet(observed=observed, info=info, seed=cfg.seed,
                         replace_all=glmcc is not None and glmcc.undetected == "remove",
                         conserve_in_degree=glmcc is not None and glmcc.in_degree == "conserve",
                         **syn, **src)  # fmt: skip
