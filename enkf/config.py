"""Typed run configurations read from YAML.

Every config is a pydantic model that forbids unknown keys; :func:`load` turns a YAML file
into one and turns every validation problem into a :class:`ConfigError` whose message names
the file, the YAML path (``experiments[1].localization.radius``) and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from model.spec import Strict, describe_errors


class ConfigError(ValueError):
    """A config file that cannot be used; the message is meant for the user as it is."""


Positive = Annotated[float, Field(gt=0)]


class Lorenz96Spec(Strict):
    name: Literal["lorenz96"]
    n: Annotated[int, Field(ge=4)] = 40
    forcing: float = 8.0


class Lorenz63Spec(Strict):
    name: Literal["lorenz63"]
    sigma: float = 10.0
    rho: float = 28.0
    beta: float = 8.0 / 3.0


class TimeSpec(Strict):
    dt: Positive
    """Model time step (model time units)."""
    obs_every: Annotated[int, Field(ge=1)] = 1
    """Model steps between two observation times (one assimilation cycle)."""
    cycles: Annotated[int, Field(ge=1)]
    burn_in: Annotated[float, Field(ge=0)] = 0.0
    """Model time excluded from the time averages."""
    spin_up: Annotated[float, Field(ge=0)] = 10.0
    """Model time the truth runs before the first cycle, to land on the attractor."""


class ObservationSpec(Strict):
    every_variable: Annotated[int, Field(ge=1)] = 1
    """Observe variables 0, k, 2k, ... (1: all of them)."""
    error_var: Positive = 1.0
    """Observation-error variance (R = error_var · I)."""


class LocalizationSpec(Strict):
    radius: Positive
    taper: Literal["gaspari_cohn", "step"] = "gaspari_cohn"


class ForcingEstimationSpec(Strict):
    """Estimate the Lorenz-96 forcing F as part of an augmented state [x, F]."""

    truth: float
    prior_mean: float
    prior_sd: Positive
    transform: Literal["identity", "log"] = "identity"


class ExperimentSpec(Strict):
    label: str
    filter: Literal["etkf", "enkf_pertobs", "letkf"]
    members: Annotated[int, Field(ge=2)]
    inflation: Positive = 1.0
    """Multiplicative inflation of the analysis anomalies."""
    rtps: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Relaxation to prior spread (0: none)."""
    rotate: bool = False
    """Random mean-preserving rotation of the anomalies after each analysis (DAPPER's rot)."""
    localization: LocalizationSpec | None = None
    published_rmse: Positive | None = None
    """Time-averaged analysis RMSE reported in the literature, for the table."""
    tolerance: Positive = 0.02
    """Accepted |ours − published|."""
    reference: str | None = None

    @model_validator(mode="after")
    def _localized(self):
        if (self.filter == "letkf") != (self.localization is not None):
            raise ValueError("'localization' is required for filter letkf and only allowed there")
        return self


class ToyTwinConfig(Strict):
    """A twin experiment on a toy model: truth run, synthetic observations, assimilation."""

    model: Annotated[Lorenz96Spec | Lorenz63Spec, Field(discriminator="name")]
    time: TimeSpec
    observations: ObservationSpec = ObservationSpec()
    seeds: Annotated[list[int], Field(min_length=1)] = [1]
    initial_spread: Positive = 1.0
    """Standard deviation of the initial ensemble around the initial truth."""
    estimate_forcing: ForcingEstimationSpec | None = None
    experiments: Annotated[list[ExperimentSpec], Field(min_length=1)]

    @model_validator(mode="after")
    def _forcing_needs_l96(self):
        if self.estimate_forcing is not None:
            if self.model.name != "lorenz96":
                raise ValueError("estimate_forcing is only defined for model lorenz96")
            if any(e.filter == "letkf" for e in self.experiments):
                raise ValueError(
                    "estimate_forcing has no position for letkf; use etkf or enkf_pertobs"
                )
        return self


M = TypeVar("M", bound=BaseModel)
_UNION_TAGS = frozenset(
    get_args(m.model_fields["name"].annotation)[0] for m in (Lorenz96Spec, Lorenz63Spec)
)


def parse(data: dict, model: type[M], source: str = "<config>") -> M:
    """Validate a mapping into ``model``; raise :class:`ConfigError` naming each bad YAML path."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_errors(exc, _UNION_TAGS)}") from None


def load(path, model: type[M]) -> M:
    """Read the YAML file at ``path`` and validate it into ``model``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse(data, model, str(path))
