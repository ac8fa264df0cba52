"""Network specifications: the typed, validated form of a network YAML.

A spec says what to build — populations, neuron parameters, connectivity rules, delays,
drive — and :func:`model.build_network` turns it into arrays. Unknown keys are errors, and
every error names the path in the YAML (``projections[1].rule.p``) and what was expected.

Units are in the names: ``_ms``, ``_mv``, ``_pf``, ``_ns``, ``_pa``, ``_hz``, ``_um``.
Weights are magnitudes (> 0); their sign comes from the presynaptic population's type
(Dale's law): nS of conductance (``lif`` with ``coba`` synapses), pA of current (``cuba``),
or the input units of the Izhikevich model (``instantaneous``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class SpecError(ValueError):
    """A network spec that cannot be built; the message names the field."""


class Strict(BaseModel):
    """Base of every spec and config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def error_path(loc: tuple, skip=frozenset()) -> str:
    """``('projections', 1, 'rule', 'p')`` → ``projections[1].rule.p``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in skip:  # pydantic names the branch of a tagged union in the path
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "<top level>"


def error_message(err: dict) -> str:
    """What one pydantic error (an item of ``ValidationError.errors()``) says, for a user."""
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    return msg if err["type"] == "value_error" else f"{msg} (got {err.get('input')!r})"


def describe_errors(exc: ValidationError, skip=frozenset()) -> str:
    """One line that lists every problem of a pydantic ValidationError by YAML path."""
    return "; ".join(f"{error_path(e['loc'], skip)}: {error_message(e)}" for e in exc.errors())


Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class Varied(Strict):
    """A per-neuron value: ``mean`` (or uniform in [low, high]) + sd·N(0,1) + r_coef·r^r_power.

    ``r ~ U(0, 1)`` is drawn once per neuron and shared by all its parameters, which is how
    Izhikevich (2003) makes his populations heterogeneous (e.g. c = −65 + 15 r²).
    """

    mean: float = 0.0
    low: float | None = None
    high: float | None = None
    sd: NonNegative = 0.0
    r_coef: float = 0.0
    r_power: Positive = 1.0
    clip_low: float | None = None
    clip_high: float | None = None
    """Values outside [clip_low, clip_high] are set to the bound (e.g. delays ≥ dt)."""

    @model_validator(mode="after")
    def _bounds(self):
        if (self.low is None) != (self.high is None):
            raise ValueError("give both 'low' and 'high' for a uniform value")
        if self.low is not None and not self.low <= self.high:
            raise ValueError(f"'low' ({self.low}) must not exceed 'high' ({self.high})")
        return self


Value = float | Varied


class LIF(Strict):
    """Leaky integrate-and-fire neuron: C dV/dt = g_L (E_L − V) + I_syn + I_ext."""

    model: Literal["lif"]
    c_pf: Positive = 200.0
    g_l_ns: Positive = 10.0
    e_l_mv: Value = -60.0
    v_th_mv: Value = -50.0
    v_reset_mv: Value = -60.0
    t_ref_ms: NonNegative = 5.0


IZHIKEVICH_PRESETS = {
    # Izhikevich (2003), Fig. 2: a, b, c, d
    "RS": (0.02, 0.2, -65.0, 8.0),
    "IB": (0.02, 0.2, -55.0, 4.0),
    "CH": (0.02, 0.2, -50.0, 2.0),
    "FS": (0.1, 0.2, -65.0, 2.0),
    "LTS": (0.02, 0.25, -65.0, 2.0),
}


class Izhikevich(Strict):
    """Izhikevich (2003): v' = 0.04v² + 5v + 140 − u + I, u' = a(bv − u); v ≥ v_peak → v = c, u += d.

    Time in ms, v in mV, I in the model's input units. ``preset`` fills a, b, c, d.
    """

    model: Literal["izhikevich"]
    preset: Literal["RS", "IB", "CH", "FS", "LTS"] | None = None
    a: Value | None = None
    b: Value | None = None
    c: Value | None = None
    d: Value | None = None
    v_peak_mv: float = 30.0
    v_substeps: Annotated[int, Field(ge=1)] = 2
    """Euler sub-steps of v per time step (Izhikevich's code: 2 half-steps of 0.5 ms)."""

    def abcd(self) -> tuple[Value, Value, Value, Value]:
        base = IZHIKEVICH_PRESETS[self.preset] if self.preset else (None,) * 4
        vals = tuple(
            v if v is not None else b
            for v, b in zip((self.a, self.b, self.c, self.d), base, strict=True)
        )
        return vals

    @model_validator(mode="after")
    def _complete(self):
        missing = [k for k, v in zip("abcd", self.abcd(), strict=True) if v is None]
        if missing:
            raise ValueError(f"give a 'preset' or all of a, b, c, d (missing {', '.join(missing)})")
        return self


class Synapses(Strict):
    """Synaptic dynamics of the whole network, by presynaptic type (E or I).

    ``coba``: exponentially decaying conductances with reversal potentials;
    ``cuba``: exponentially decaying currents; ``instantaneous``: an arriving weight is
    input current for one time step (Izhikevich 2003).
    """

    kind: Literal["coba", "cuba", "instantaneous"]
    tau_e_ms: Positive = 5.0
    tau_i_ms: Positive = 10.0
    e_e_mv: float = 0.0
    e_i_mv: float = -80.0


class Poisson(Strict):
    """``n_sources`` independent Poisson trains of ``rate_hz`` each, into excitatory synapses."""

    rate_hz: NonNegative
    weight: Positive
    n_sources: Annotated[int, Field(ge=1)] = 1


class OU(Strict):
    """Ornstein–Uhlenbeck background current: mean, stationary sd, correlation time."""

    mean_pa: float = 0.0
    sd_pa: NonNegative
    tau_ms: Positive


class Drive(Strict):
    bias_pa: Value = 0.0
    poisson: Poisson | None = None
    ou: OU | None = None


class Population(Strict):
    name: Annotated[str, Field(min_length=1)]
    n: Annotated[int, Field(ge=1)]
    type: Literal["E", "I"]
    neuron: Annotated[LIF | Izhikevich, Field(discriminator="model")]
    drive: Drive = Drive()
    record: bool | Annotated[int, Field(ge=0)] = True
    """Record the spikes of all (True), none (False) or the first k neurons."""


class FixedProbability(Strict):
    kind: Literal["fixed_probability"]
    p: Annotated[float, Field(ge=0, le=1)]
    allow_autapses: bool = False


class FixedIndegree(Strict):
    kind: Literal["fixed_indegree"]
    k: Annotated[int, Field(ge=0)]
    allow_autapses: bool = False


class Gaussian(Strict):
    """Distance-dependent: p(d) = p0·exp(−d²/2σ²) on the sheet (periodic by default)."""

    kind: Literal["gaussian"]
    p0: Annotated[float, Field(ge=0, le=1)]
    sigma_um: Positive
    periodic: bool = True
    allow_autapses: bool = False


class AllToAll(Strict):
    kind: Literal["all_to_all"]
    allow_autapses: bool = False


Rule = Annotated[
    FixedProbability | FixedIndegree | Gaussian | AllToAll, Field(discriminator="kind")
]


class Projection(Strict):
    pre: str
    post: str | list[str]
    rule: Rule
    weight: Value
    delay_ms: Value = 0.1

    def posts(self) -> list[str]:
        return [self.post] if isinstance(self.post, str) else list(self.post)


class Table(Strict):
    """Cortical-microcircuit style block table, rows = presynaptic population (in the order
    of ``populations``), columns = postsynaptic: connection probability, weight, delay."""

    probability: list[list[Annotated[float, Field(ge=0, le=1)]]]
    weight: list[list[Value]] | list[Value]
    delay_ms: list[list[Value]] | list[Value] | Value = 0.1
    weight_sd_fraction: NonNegative = 0.0
    allow_autapses: bool = False


class ExplicitSynapses(Strict):
    """Synapses given one by one (e.g. estimated from data): global neuron indices, signed
    weights (the sign must agree with the presynaptic population's type), delays in ms."""

    pre: list[Annotated[int, Field(ge=0)]]
    post: list[Annotated[int, Field(ge=0)]]
    weight: list[float]
    delay_ms: list[float] | float = 0.1

    @model_validator(mode="after")
    def _lengths(self):
        n = len(self.pre)
        lens = {"post": len(self.post), "weight": len(self.weight)}
        if not isinstance(self.delay_ms, float):
            lens["delay_ms"] = len(self.delay_ms)
        bad = {k: v for k, v in lens.items() if v != n}
        if bad:
            raise ValueError(
                f"pre has {n} entries but " + ", ".join(f"{k} has {v}" for k, v in bad.items())
            )
        return self


class NetworkSpec(Strict):
    """A whole network: the YAML of configs/coba.yaml and friends."""

    name: str = "network"
    dt_ms: Positive = 0.1
    synapses: Synapses
    populations: Annotated[list[Population], Field(min_length=1)]
    projections: list[Projection] = []
    table: Table | None = None
    explicit: ExplicitSynapses | None = None
    sheet_um: tuple[Positive, Positive] = (1000.0, 1000.0)
    """Width and height of the 2-D sheet on which neurons are placed uniformly at random."""
    initial_v_mv: Value | None = None
    """Initial membrane potential; default uniform in [v_reset, v_th] (LIF) or c (Izhikevich)."""
    rate_bin_ms: Positive = 1.0

    @model_validator(mode="after")
    def _consistent(self):
        names = [p.name for p in self.populations]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"population names must be unique; repeated: {', '.join(sorted(dup))}")
        models = {p.neuron.model for p in self.populations}
        if len(models) > 1:
            raise ValueError(f"all populations must use one neuron model, got {sorted(models)}")
        model = models.pop()
        if (model == "izhikevich") != (self.synapses.kind == "instantaneous"):
            raise ValueError(
                "izhikevich neurons take synapses.kind 'instantaneous'; lif takes 'coba' or 'cuba'"
            )
        for i, proj in enumerate(self.projections):
            for field, pops in (("pre", [proj.pre]), ("post", proj.posts())):
                for name in pops:
                    if name not in names:
                        raise ValueError(
                            f"projections[{i}].{field}: unknown population {name!r} "
                            f"(have {', '.join(names)})"
                        )
        if self.table is not None:
            n = len(self.populations)
            rows = self.table.probability
            if len(rows) != n or any(len(r) != n for r in rows):
                raise ValueError(f"table.probability must be {n} × {n} (populations in order)")
        return self


_TAGS = frozenset(
    {"lif", "izhikevich", "fixed_probability", "fixed_indegree", "gaussian", "all_to_all"}
)


def parse_spec(data, source: str = "<spec>") -> NetworkSpec:
    """Validate a mapping (or return a NetworkSpec as it is); raise SpecError naming fields."""
    if isinstance(data, NetworkSpec):
        return data
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a network spec is a mapping, got {type(data).__name__}")
    try:
        return NetworkSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{source}: {describe_errors(exc, _TAGS)}") from None


def load_spec(path) -> NetworkSpec:
    """Read a network spec from YAML. A file with a top-level ``network:`` key (a run config)
    is accepted too: its ``network`` section is used."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"{path}: cannot read network spec ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(data, dict) and set(data) == {"network"}:
        data = data["network"]
    return parse_spec(data, str(path))
