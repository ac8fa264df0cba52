"""The config of an assimilation run (``spikeda run CONFIG``), validated into typed models.

A run config has seven sections (see ``configs/quickstart.yaml`` and docs/driver.md):

``network``       the network spec (a path or an inline mapping) and its structure seed
``parameters``    what is estimated: a target in :class:`model.MemberParams`, a transform,
                  a prior and a random walk
``observations``  the observation store, which store neurons are which model neurons, the
                  forward operator, the error variance and the handling of NaN frames
``assimilation``  members, window, cycles, filter, inflation, localisation, seed, tasks
``cluster``       where the member forecasts run (local, slurm/pbs/... or an address)
``twin``          optional: hidden truth values from which the observations are synthesised
``constraints``   optional: GLMCC connections and triplet-map motifs that shape the members

Unknown keys are errors that name the YAML path (``observations.operator.indicatr``).
Relative paths in a config are relative to the config file's folder; the output path is
relative to the working directory.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from enkf.config import ConfigError
from model.spec import _TAGS as _SPEC_TAGS
from model.spec import NetworkSpec, Strict, error_message, error_path

Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]

#: The unit of each kind of parameter target, as it appears in run.zarr.
TARGET_UNITS = {
    "weight_scale": "1",
    "weight_factor": "1",
    "poisson_rate_hz": "Hz",
    "bias_pa": "pA",
    "source_scale": "1",
    "link_scale": "1",
}


class NetworkSection(Strict):
    spec: NetworkSpec
    """Path of a network spec YAML (relative to this config) or the spec inline; a path is
    read when the config is loaded, so the config kept with a run holds the spec itself."""
    seed: int = 0
    """Seed of the structure (synapses, neuron parameters): shared by truth and members."""


class Prior(Strict):
    """The prior of one parameter, in physical units.

    identity: Normal(mean, sd); log: the log-normal with this mean and sd (exact moments);
    logit: Normal in the logit space centred on logit(mean), with sd·dlogit/dθ at the mean
    (the first-order match of the sd).
    """

    mean: float
    sd: Positive


class ParameterSpec(Strict):
    """One estimated parameter: exactly one of the targets.

    ``weight_scale: [pre, post]`` scales every synapse from population pre to post;
    ``weight_factor: [[pre, post], ...]`` multiplies the weight scale of each pair listed;
    factors on the same pair multiply (with each other and with a ``weight_scale``), so
    parameters can be the coordinates neuroscientists use: an input gain per postsynaptic
    population (``[[E, E], [I, E]]``) times a relative inhibition (``[[I, E]]``) gives
    w_EE = gain and w_IE = gain · ratio;
    ``poisson_rate_hz: POP`` (or a list) is the rate of each Poisson source of the drive;
    ``bias_pa: POP`` (or a list) shifts the DC bias of every neuron of the population so
    that the population's mean bias equals the parameter (heterogeneity is kept);
    ``source_scale: all`` (or a list of source indices) multiplies the weights of the hidden
    sources that the triplet-map constraints add (their strength; see ``constraints``);
    ``link_scale: E`` (or ``I``, ``all``) multiplies the weights of the synapses that the
    GLMCC constraints set among the observed neurons, those of that sign.
    """

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    weight_scale: tuple[str, str] | None = None
    weight_factor: Annotated[list[tuple[str, str]], Field(min_length=1)] | None = None
    poisson_rate_hz: str | list[str] | None = None
    bias_pa: str | list[str] | None = None
    source_scale: Literal["all"] | list[Annotated[int, Field(ge=0)]] | None = None
    link_scale: Literal["E", "I", "all"] | None = None
    transform: Literal["identity", "log", "logit"] = "log"
    bounds: tuple[float, float] | None = None
    """(low, high) of a logit transform."""
    prior: Prior
    random_walk_sd: NonNegative = 0.0
    """Sd of a Gaussian random walk added in the transformed space before each forecast
    after the first (parameter model error); 0: static parameters."""

    @model_validator(mode="after")
    def _one_target(self):
        given = [k for k in TARGET_UNITS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one target of {', '.join(TARGET_UNITS)} (got {len(given)})"
            )
        if (self.transform == "logit") != (self.bounds is not None):
            raise ValueError("'bounds: [low, high]' is required for transform logit and only there")
        if self.bounds is not None:
            low, high = self.bounds
            if not low < self.prior.mean < high:
                raise ValueError(f"prior.mean {self.prior.mean} is not inside bounds {self.bounds}")
        if self.transform == "log" and self.prior.mean <= 0:
            raise ValueError(f"prior.mean must be > 0 for transform log, got {self.prior.mean}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in TARGET_UNITS if getattr(self, k) is not None)

    @property
    def units(self) -> str:
        return TARGET_UNITS[self.kind]

    def populations(self) -> list[str]:
        """The populations the target names (pre, post for a weight scale; pre, post of
        each pair in turn for a weight factor)."""
        value = getattr(self, self.kind)
        if self.kind in ("source_scale", "link_scale"):
            return []
        if self.kind == "weight_factor":
            return [name for pair in value for name in pair]
        return [value] if isinstance(value, str) else list(value)


class CalciumOperatorSpec(Strict):
    """ΔF/F from spikes (observations.operators.CalciumOperator); the frame rate comes from
    the store. Parameters left out come from the indicator preset."""

    kind: Literal["calcium"]
    indicator: Literal["GCaMP6f", "GCaMP6s"] | None = "GCaMP6s"
    tau_rise_s: Positive | None = None
    tau_decay_s: Positive | None = None
    hill_n: Positive | None = None
    c_rest: NonNegative | None = None
    k_sat: Positive | None = None
    amplitude: float | None = None
    baseline: float | None = None
    noise_nu: NonNegative | Literal["estimate"] = "estimate"
    """CASCADE noise level ν (ΔF/F per √Hz), or 'estimate' it from the store's ΔF/F."""


class SpikeCountOperatorSpec(Strict):
    """Binned spike counts (observations.operators.SpikeCountOperator)."""

    kind: Literal["spike_counts"]
    bin_s: Positive
    transform: Literal["anscombe", "sqrt"] = "anscombe"


class NeuronMap(Strict):
    """Store neuron (unit) ids and the model neurons they are, pair by pair."""

    store: Annotated[list[int], Field(min_length=1)]
    model: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]

    @model_validator(mode="after")
    def _same_length(self):
        if len(self.store) != len(self.model):
            raise ValueError(
                f"store has {len(self.store)} ids but model has {len(self.model)} neurons"
            )
        if len(set(self.store)) != len(self.store):
            raise ValueError("store ids must be distinct")
        if len(set(self.model)) != len(self.model):
            raise ValueError("model neurons must be distinct")
        return self


class ObservationsSection(Strict):
    store: str | None = None
    """Path of the observation store; left out in a twin config (the run synthesises it)."""
    operator: Annotated[CalciumOperatorSpec | SpikeCountOperatorSpec, Field(discriminator="kind")]
    neuron_map: Literal["identity"] | NeuronMap = "identity"
    """identity: store id k is model neuron k; or explicit pairs."""
    reduce: Literal["indegree", "population_mean", "window_mean", "none"] = "window_mean"
    """indegree: per population and window, the coefficients of a regression of the
    neurons' window means on their summed input weight from each population (intercept and
    slopes; see enkf.driver.observe); population_mean: per population and window, the mean
    over its observed neurons of their window means; window_mean: one per neuron and window, the
    mean of its frames (bins); none: every frame (bin) is an observation."""
    error_var: Positive | Literal["auto"] = "auto"
    """Error variance of one frame (bin): auto = the operator's (σ² of its noise level, 1
    for Anscombe counts); a window mean of n frames has error_var / n."""
    nan_policy: Literal["error", "mask"] = "error"
    """NaN values in the ΔF/F frames a run uses: error, or mask (leave them out of y)."""
    trace_neurons: Annotated[int, Field(ge=0)] = 4
    """Observed neurons whose frame-by-frame traces are kept in run.zarr for plots."""


class InflationSpec(Strict):
    kind: Literal["none", "multiplicative", "rtps", "rtpp"] = "none"
    value: NonNegative = 0.0
    """multiplicative: the factor (≥ 1 inflates); rtps/rtpp: α in [0, 1]."""

    @model_validator(mode="after")
    def _range(self):
        if self.kind == "multiplicative" and not self.value > 0:
            raise ValueError("a multiplicative inflation factor must be > 0")
        if self.kind in ("rtps", "rtpp") and not 0 <= self.value <= 1:
            raise ValueError(f"{self.kind} alpha must be in [0, 1], got {self.value}")
        return self


class LocalizationSpec(Strict):
    """Localisation of the per-neuron states: each neuron's state sees the observations of
    neurons within ``radius`` (µm on the sheet for distance, synaptic hops for graph)."""

    by: Literal["distance", "graph"] = "distance"
    radius: Positive
    taper: Literal["gaspari_cohn", "step"] = "gaspari_cohn"


class AssimilationSection(Strict):
    members: Annotated[int, Field(ge=2)]
    window_s: Positive
    start_s: NonNegative = 0.0
    """Time (s) at which the first window starts; the members run from 0 (spin-up) with
    their prior parameters until then."""
    cycles: Annotated[int, Field(ge=1)] | None = None
    """Number of windows; None: as many as the observations cover."""
    holdout_cycles: Annotated[int, Field(ge=0)] = 0
    """The last windows are forecasts only: predicted and scored against the data, never
    assimilated (held-out prediction). Connectivity constraints use no spike from them."""
    spinup_s: NonNegative | None = None
    """The members start this long before ``start_s`` (None: at t = 0)."""
    filter: Literal["enkf", "etkf", "letkf"] = "enkf"
    """enkf: stochastic EnKF with perturbed observations (the right spread for a stochastic
    model); etkf: deterministic square root; letkf: ETKF with localised per-neuron states."""
    inflation: InflationSpec = InflationSpec()
    states: list[Literal["v_mv"]] = []
    """Per-neuron state variables of the observed neurons updated with the parameters."""
    localization: LocalizationSpec | None = None
    seed: int = 0
    members_per_task: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    """auto: members / (8 · workers), rounded up: about eight tasks per worker, so that
    members of different cost even out across workers (benchmarks/driver.py: the idle
    tail of the last tasks fell from 7 % to 2 % of a cycle going from four to eight) while
    each task still runs for a good fraction of a second or more."""
    nonfinite: Literal["error", "replace"] = "error"
    """A member whose state or predictions are not finite: stop the run (error), or give it
    the state and parameters of a finite member drawn with the run's seed (replace)."""

    @model_validator(mode="after")
    def _holdout(self):
        if self.holdout_cycles and self.cycles is not None and self.holdout_cycles >= self.cycles:
            raise ValueError(
                f"holdout_cycles ({self.holdout_cycles}) must leave at least one of the "
                f"{self.cycles} cycles to assimilate"
            )
        if self.spinup_s is not None and self.spinup_s > self.start_s:
            raise ValueError(f"spinup_s ({self.spinup_s}) must not exceed start_s ({self.start_s})")
        return self

    @model_validator(mode="after")
    def _localized(self):
        if self.filter == "letkf" and (not self.states or self.localization is None):
            raise ValueError("filter letkf needs 'states' and 'localization'")
        if self.localization is not None and self.filter != "letkf":
            raise ValueError("'localization' is only used by filter letkf")
        return self


class AdaptSpec(Strict):
    minimum_jobs: Annotated[int, Field(ge=1)]
    maximum_jobs: Annotated[int, Field(ge=1)]


class ClusterSection(Strict):
    kind: Literal["local", "slurm", "pbs", "sge", "lsf", "address"] = "local"
    workers: Annotated[int, Field(ge=1)] = 2
    """local: worker processes (one thread each); jobqueue: jobs (one worker each)."""
    address: str | None = None
    """kind address: the scheduler to join, e.g. tcp://10.0.0.1:8786."""
    jobqueue: dict[str, Any] = {}
    """Keywords of the dask_jobqueue cluster class (queue, walltime, memory, ...)."""
    adapt: AdaptSpec | None = None

    @model_validator(mode="after")
    def _address(self):
        if (self.kind == "address") != (self.address is not None):
            raise ValueError("'address' is required for kind address and only there")
        return self


class TwinSection(Strict):
    """A twin experiment: the truth is the network with these parameter values, simulated
    with its own seed; its observations are written to a store inside the run."""

    truth: dict[str, float]
    """Value of every estimated parameter (physical units)."""
    seed: int = 1
    observed_neurons: Annotated[int, Field(ge=1)] = 300
    """How many neurons are imaged (drawn at random among the recorded ones)."""
    noise_nu: NonNegative = 0.03
    """Calcium noise level ν of the synthetic recording (ΔF/F per √Hz; 0.03 = 3 %·Hz^-½)."""
    frame_rate_hz: Positive = 30.0
    network: NetworkSection | None = None
    """The truth's own network (spec and seed), when the members' network is only a model
    of it (e.g. without the truth's specific synapses and hidden inputs); its populations
    must start with the members' populations, neuron for neuron (extra populations, e.g.
    hidden sources, come last). None: the members' network."""


class StatisticObservations(Strict):
    """An estimator's statistic as observations (see docs/constraints.md): each member's
    value from its own simulated spikes, accumulated from the first window, against the
    recording's over the same span (same data length), with the two SE² as the error
    variance (times the number of cycles that assimilate it)."""

    from_cycle: Annotated[int, Field(ge=0)] = 2
    """Assimilated from this cycle on (before it the members' statistics only accumulate)."""


class LinkObservations(StatisticObservations):
    """GLMCC's J of some of the constrained links."""

    links: Annotated[int, Field(ge=1)] = 20
    """How many of the constrained links, the most significant first (|J|/J_se)."""


class TripletObservations(StatisticObservations):
    """The triplet map's θ_12, θ_13, θ_23 and θ_123 of some triplets."""

    triplets: Annotated[int, Field(ge=1)] = 10
    """How many of the triplets classified as excitatory common input, the most coupled
    first (the sum of their pairs' θ_ij / SE)."""


class GlmccConstraint(Strict):
    """GLMCC (inference.GLMCC) on the observed spikes: its significant connections become
    the members' synapses among the observed neurons (see docs/constraints.md)."""

    result: str | None = None
    """A saved ``spikeda glmcc`` result to use; None: run GLMCC with the settings below."""
    delay_ms: Positive | Literal["scan"] = 3.0
    test: Literal["wald", "lr"] = "wald"
    alpha: Annotated[float, Field(gt=0, lt=1)] | None = None
    cell_types: Literal["store", "signs"] = "store"
    """store: a unit labelled E or I in the store's units/cell_type has that type, and its
    links of the other sign are dropped; signs: types from the signs alone (Dale's rule)."""
    undetected: Literal["remove", "keep"] = "remove"
    """The spec's synapses between observed neurons that GLMCC found no link for: remove
    them (the estimate decides on every pair), or keep them (a synapse may lie below
    GLMCC's detection limit; only the pairs with an estimated link are replaced)."""
    in_degree: Literal["conserve", "add"] = "conserve"
    """conserve: every observed neuron keeps, per sign, the in-degree its population rule
    drew (the estimate says which inputs come from observed neurons, the rule how many
    inputs there are): spec synapses of that sign from unobserved neurons make room for
    its estimated inputs, and where it lost more spec synapses than it got links, the
    surplus move to unobserved presynaptic neurons; add: the estimated links come on top
    of the spec's synapses."""
    psp: Literal["model", "authors"] = "model"
    """How J becomes a PSP: model: by the model neuron's own J(PSP) curve, simulated with
    probe synapses of known size in the members' network (enkf/constraints/calibrate.py);
    authors: by Kobayashi et al.'s factors (2.532 mV per unit J for E, 0.612 for I), fitted
    on their own model neurons."""
    observe: LinkObservations | None = None
    """Also assimilate the J of the most significant links (None: no)."""
    strength: Prior | None = None
    """Prior of two estimated factors on the constrained synapses' weights, one on the E
    links and one on the I links (log transform), so that the data may correct the J-to-PSP
    calibration (made on a model, not on the recorded neurons). None: the weights stay as
    the estimates give them."""


class TripletConstraint(Strict):
    """The triplet map (inference.TripletMap) on the observed spikes: triplets classified as
    excitatory common input get hidden sources, whose strengths are estimated."""

    result: str | None = None
    """A saved ``spikeda triplets`` result to use; None: run the triplet map."""
    bin_ms: Positive = 5.0
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.001
    strength: Prior = Prior(mean=1.0, sd=0.3)
    """Prior of the estimated factor on the sources' weights (log transform)."""
    per_source: bool = False
    """One strength parameter per source (True) or one for all sources (False)."""
    observe: TripletObservations | None = None
    """Also assimilate the θ's of the most coupled excitatory triplets (None: no)."""


class ConstraintsSection(Strict):
    glmcc: GlmccConstraint | None = None
    triplets: TripletConstraint | None = None
    if_empty: Literal["error", "unconstrained"] = "error"
    """An estimator that finds nothing to constrain (no significant connection, no
    excitatory motif): stop with an error, or go on without that constraint."""
    until_s: Positive | None = None
    """The estimators use the spikes before this time (s); None: all spikes before the
    first held-out cycle."""
    seed: int = 0
    """Seed of the members' draws of the constrained synapses' weights."""

    @model_validator(mode="after")
    def _some(self):
        if self.glmcc is None and self.triplets is None:
            raise ValueError("give 'glmcc' and/or 'triplets'")
        return self


class RunConfig(Strict):
    name: str = "run"
    network: NetworkSection
    parameters: Annotated[list[ParameterSpec], Field(min_length=1)]
    observations: ObservationsSection | None
    """None: a free run (forecasts only, no analysis)."""
    assimilation: AssimilationSection
    cluster: ClusterSection = ClusterSection()
    output: str | None = None
    twin: TwinSection | None = None
    constraints: ConstraintsSection | None = None

    @model_validator(mode="after")
    def _consistent(self):
        names = [p.name for p in self.parameters]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"parameter names must be unique; repeated: {', '.join(dup)}")
        if self.twin is not None:
            missing = [n for n in names if n not in self.twin.truth]
            extra = [n for n in self.twin.truth if n not in names]
            if missing or extra:
                raise ValueError(
                    "twin.truth must give every estimated parameter and nothing else"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; not estimated: {', '.join(extra)}" if extra else "")
                )
            if self.observations is not None and self.observations.store is not None:
                raise ValueError("a twin writes its own observations: leave out observations.store")
            if self.observations is not None and self.observations.neuron_map != "identity":
                raise ValueError("a twin observes model neurons by id: neuron_map must be identity")
        elif self.observations is not None and self.observations.store is None:
            raise ValueError("observations.store is required (or give a 'twin' section)")
        if self.constraints is not None and self.observations is None:
            raise ValueError("constraints need observations (the estimators run on them)")
        if self.assimilation.states and self.observations is None:
            raise ValueError("assimilation.states needs observations")
        for name in ("glmcc", "triplets"):
            block = getattr(self.constraints, name) if self.constraints is not None else None
            if block is None or block.observe is None:
                continue
            what = "links" if name == "glmcc" else "triplets"
            if self.assimilation.filter == "letkf":
                raise ValueError(f"constraints.{name}.observe: {what} are not localised; use filter enkf or etkf")
            asm = self.assimilation
            last = None if asm.cycles is None else asm.cycles - asm.holdout_cycles - 1
            if last is not None and block.observe.from_cycle > last:
                raise ValueError(
                    f"constraints.{name}.observe.from_cycle: {block.observe.from_cycle} is after the "
                    f"last assimilated cycle ({last})"
                )
        if self.assimilation.filter == "letkf" and self.observations.reduce == "population_mean":
            raise ValueError(
                "filter letkf localises by neuron: observations.reduce must not be population_mean"
            )
        return self

    def canonical(self) -> dict:
        """The settings that determine the results: everything but cluster and output."""
        return self.model_dump(mode="json", exclude={"cluster", "output"})

    def digest(self) -> str:
        """Hash of :meth:`canonical`: two configs with the same digest give the same run."""
        text = json.dumps(self.canonical(), sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _resolve(path: str, base: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def load_run_config(path) -> tuple[RunConfig, str]:
    """Read and validate a run config; returns the model (with paths made absolute) and the
    YAML text as written (kept in run.zarr's attrs)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    return parse_run_config(text, str(path), path.resolve().parent), text


def _inline_spec(data: dict, key: str, source: str, base: Path, where: str = "") -> dict:
    """``data[key].spec`` read from its file when it is a path: the spec goes in by value,
    so the config stored with a run is self-contained."""
    net = data.get(key)
    if not (isinstance(net, dict) and isinstance(net.get("spec"), str)):
        return data
    spec_path = _resolve(net["spec"], base)
    try:
        spec_data = yaml.safe_load(Path(spec_path).read_text())
    except OSError as exc:
        raise ConfigError(
            f"{source}: {where}{key}.spec: cannot read {spec_path} ({exc.strerror})"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{source}: {where}{key}.spec: {spec_path} is not valid YAML "
            f"({str(exc).splitlines()[0]})"
        ) from None
    return {**data, key: {**net, "spec": spec_data}}


def parse_run_config(text: str, source: str, base: Path) -> RunConfig:
    """Validate YAML ``text``; relative input paths are resolved against ``base``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(data, dict):
        data = _inline_spec(data, "network", source, base)
        twin = data.get("twin")
        if isinstance(twin, dict) and isinstance(twin.get("network"), dict):
            data = {**data, "twin": _inline_spec(twin, "network", source, base, "twin.")}
        cons = data.get("constraints")
        if isinstance(cons, dict):
            cons = dict(cons)
            for name in ("glmcc", "triplets"):
                block = cons.get(name)
                if isinstance(block, dict) and isinstance(block.get("result"), str):
                    cons[name] = {**block, "result": _resolve(block["result"], base)}
            data = {**data, "constraints": cons}
        obs = data.get("observations")
        if isinstance(obs, dict) and isinstance(obs.get("store"), str):
            data = {**data, "observations": {**obs, "store": _resolve(obs["store"], base)}}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    """describe_errors without the branch names that pydantic puts into the paths of
    unions; of a "value or 'auto'" union only the value's error is kept."""
    skip = set(_SPEC_TAGS) | {"calcium", "spike_counts"}
    items = []
    for err in exc.errors():
        parts = [p for p in err["loc"] if not isinstance(p, int)]
        branch = any(isinstance(p, str) and p.startswith("literal[") for p in parts)
        loc = tuple(
            part
            for part in err["loc"]
            if not (isinstance(part, str) and (part in skip or not _FIELD.match(part)))
        )
        items.append((loc, branch, err))
    locs = [loc for loc, _, _ in items]
    out = []
    for loc, branch, err in items:
        if branch and locs.count(loc) > 1:
            continue
        line = f"{error_path(loc)}: {error_message(err)}"
        if line not in out:
            out.append(line)
    return "; ".join(out)


_FIELD = re.compile(r"^[a-z_][a-z0-9_]*$")
