"""Estimated parameters: the map between a vector θ (physical units), its transformed
u = forward(θ) in which the filter works, and the :class:`model.MemberParams` a member runs.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from enkf.config import ConfigError
from enkf.run_config import ParameterSpec
from enkf.transforms import Identity, Log, Logit
from model import MemberParams, Network, default_params

#: 97.5 % quantile of the standard normal: a central 95 % interval is mean ± Z95·sd.
Z95 = 1.959963984540054


class ParameterSet:
    """The estimated parameters of a run, checked against the network.

    Parameters
    ----------
    specs : list of ParameterSpec
    network : Network

    Attributes
    ----------
    names, units : list of str
    transforms : list of Identity / Log / Logit
    mu_u, sd_u : (P,) float64
        The prior: u ~ Normal(mu_u, sd_u²) independently per parameter.
    """

    def __init__(self, specs: list[ParameterSpec], network: Network, constraints=None):
        self.specs = list(specs)
        self.network = network
        self.constraints = constraints
        self.names = [p.name for p in self.specs]
        self.units = [p.units for p in self.specs]
        self.transforms = []
        self._targets = []
        seen = {}
        for i, p in enumerate(self.specs):
            where = f"parameters[{i}] ({p.name})"
            pops = p.populations()
            for name in pops:
                if name not in network.pop_names:
                    raise ConfigError(
                        f"{where}: unknown population {name!r} (the network has {', '.join(network.pop_names)})"
                    )
            idx = [network.pop_names.index(n) for n in pops]
            if p.kind == "poisson_rate_hz":
                silent = [
                    n for n, k in zip(pops, idx, strict=True) if network.poisson_sources[k] == 0
                ]
                if silent:
                    raise ConfigError(
                        f"{where}: population {silent[0]} has no Poisson drive in the network spec"
                    )
            if p.kind == "source_scale":
                n_src = network.n_sources
                idx = list(range(n_src)) if p.source_scale == "all" else list(p.source_scale)
                if not n_src or any(k >= n_src for k in idx):
                    raise ConfigError(
                        f"{where}: source_scale names hidden source(s) the network does not have "
                        f"(it has {n_src}; they come from constraints.triplets)"
                    )
                self._targets.append((p.kind, idx))
            elif p.kind == "link_scale":
                exc = network.msyn_excitatory
                cols = np.flatnonzero(np.ones_like(exc) if p.link_scale == "all"
                                      else exc == (p.link_scale == "E"))  # fmt: skip
                if cols.size == 0:
                    raise ConfigError(
                        f"{where}: link_scale {p.link_scale} names no synapse: the network has no "
                        f"constrained {'' if p.link_scale == 'all' else p.link_scale + ' '}synapses "
                        f"(they come from constraints.glmcc)"
                    )
                self._targets.append((p.kind, cols))
            elif p.kind == "weight_factor":
                # factors multiply, so several parameters may name one pair; one may not
                # name it twice
                pairs = list(zip(idx[::2], idx[1::2], strict=True))
                if len(set(pairs)) < len(pairs):
                    raise ConfigError(f"{where}: names a population pair twice")
                self._targets.append((p.kind, pairs))
            else:
                keys = (
                    [(p.kind, tuple(idx))]
                    if p.kind == "weight_scale"
                    else [(p.kind, k) for k in idx]
                )
                for key in keys:
                    if key in seen:
                        raise ConfigError(f"{where}: sets the same target as {seen[key]}")
                    seen[key] = where
                self._targets.append((p.kind, idx))
            if p.transform == "log":
                self.transforms.append(Log())
            elif p.transform == "logit":
                self.transforms.append(Logit(*p.bounds))
            else:
                self.transforms.append(Identity())
        self.mu_u, self.sd_u = self._prior_moments()
        base = default_params(network, 1)
        self._base = base
        self._pop_bias = np.array(
            [base.bias_pa[0, network.population(n)].mean() for n in network.pop_names]
        )

    @property
    def n(self) -> int:
        return len(self.specs)

    def _prior_moments(self) -> tuple[np.ndarray, np.ndarray]:
        mu, sd = np.empty(self.n), np.empty(self.n)
        for i, p in enumerate(self.specs):
            m, s = p.prior.mean, p.prior.sd
            if p.transform == "log":
                var = math.log1p((s / m) ** 2)  # log-normal with mean m and sd s
                mu[i], sd[i] = math.log(m) - var / 2, math.sqrt(var)
            elif p.transform == "logit":
                low, high = p.bounds
                mu[i] = float(self.transforms[i].forward(m))
                sd[i] = s * (high - low) / ((m - low) * (high - m))
            else:
                mu[i], sd[i] = m, s
        return mu, sd

    # -- transforms --------------------------------------------------------------------------
    def to_u(self, theta) -> np.ndarray:
        """(N, P) physical → (N, P) transformed."""
        theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        return np.column_stack([t.forward(theta[:, i]) for i, t in enumerate(self.transforms)])

    def to_theta(self, u) -> np.ndarray:
        """(N, P) transformed → (N, P) physical."""
        u = np.atleast_2d(np.asarray(u, dtype=np.float64))
        return np.column_stack([t.inverse(u[:, i]) for i, t in enumerate(self.transforms)])

    def sample_prior(self, n_members: int, rng: np.random.Generator) -> np.ndarray:
        """(N, P) physical draws from the prior."""
        z = rng.standard_normal((n_members, self.n))
        return self.to_theta(self.mu_u + self.sd_u * z)

    def prior_interval(self) -> tuple[np.ndarray, np.ndarray]:
        """The prior's central 95 % interval per parameter (physical units), exact: the
        transforms are monotone, so the quantiles of u map to those of θ."""
        lo = self.to_theta(self.mu_u - Z95 * self.sd_u)[0]
        hi = self.to_theta(self.mu_u + Z95 * self.sd_u)[0]
        return lo, hi

    def check_truth(self, truth: dict) -> np.ndarray:
        """The twin's truth as a (P,) vector, checked against the transforms' domains."""
        theta = np.array([float(truth[n]) for n in self.names])
        for i, t in enumerate(self.transforms):
            try:
                t.forward(theta[i : i + 1])
            except ValueError:
                raise ConfigError(
                    f"twin.truth.{self.names[i]}: {theta[i]} is outside the domain of {t!r}"
                ) from None
        return theta

    # -- to the model -------------------------------------------------------------------------
    def member_params(self, theta, members=None) -> MemberParams:
        """MemberParams for the members whose physical parameters are the rows of ``theta``;
        everything not estimated stays as the network spec has it. Weight factors multiply
        the pair's scale after the weight scales are set. ``members`` (ids, one per row)
        selects each member's own draw of the constrained synapses' weights (required when
        the run has connectivity constraints)."""
        theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        M = theta.shape[0]
        net = self.network
        ws = np.repeat(self._base.weight_scale, M, axis=0)
        rate = np.repeat(self._base.poisson_rate_hz, M, axis=0)
        bias = np.repeat(self._base.bias_pa, M, axis=0)
        for i, (kind, idx) in enumerate(self._targets):
            if kind == "weight_scale":
                ws[:, idx[0], idx[1]] = theta[:, i]
            elif kind == "poisson_rate_hz":
                rate[:, idx] = theta[:, i : i + 1]
            elif kind == "bias_pa":
                for k in idx:
                    sl = net.population(net.pop_names[k])
                    bias[:, sl] += (theta[:, i] - self._pop_bias[k])[:, None]
        for i, (kind, pairs) in enumerate(self._targets):
            if kind == "weight_factor":
                for pre, post in pairs:
                    ws[:, pre, post] *= theta[:, i]
        out = MemberParams(ws, rate, bias)
        cs = self.constraints
        if cs is None:
            return out
        if members is None:
            raise ValueError("member_params of a constrained run needs the member ids")
        src_w = np.tile(cs.source_weight, (M, 1))
        syn_w = cs.synapse_weight[np.asarray(members)]
        for i, (kind, idx) in enumerate(self._targets):
            if kind == "source_scale":
                src_w[:, idx] *= theta[:, i : i + 1]
            elif kind == "link_scale":
                syn_w[:, idx] *= theta[:, i : i + 1]
        return dataclasses.replace(
            out,
            synapse_weight=syn_w,
            source_rate_hz=np.tile(cs.source_rate_hz, (M, 1)),
            source_weight=src_w,
        )
