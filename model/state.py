"""Member parameters and member state: what differs between ensemble members.

The two-level scheme of large brain data assimilation: the :class:`~model.network.Network`
(base weights, delays, neuron parameters) is drawn once; each member scales it with a few
hyperparameters (:class:`MemberParams`) and carries its own dynamical state
(:class:`MemberState`). Arrays have the members on their first axis.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from model.network import Network, draw_values


@dataclass(frozen=True)
class MemberParams:
    """Per-member scalings of the shared structure.

    Attributes
    ----------
    weight_scale : (M, n_pop, n_pop) float64
        Multiplies every synaptic weight from population ``a`` to population ``b``
        (``[pre, post]``).
    poisson_rate_hz : (M, n_pop) float64
        Rate of each Poisson source of a population's drive.
    bias_pa : (M, n) float64
        DC bias current of every neuron (input units for Izhikevich neurons).
    synapse_weight : (M, k) float64
        Magnitudes of the network's member synapses (``Network.msyn_*``, CSR order), in
        the units of ``syn_weight``; not scaled by ``weight_scale``. Default: zeros.
    source_rate_hz : (M, n_src) float64
        Rates of the network's hidden sources. Default: zeros (silent).
    source_weight : (M, n_src) float64
        Weight each hidden source's spike adds to its targets' excitatory synapses (units
        of ``syn_weight``). Default: zeros.
    """

    weight_scale: np.ndarray
    poisson_rate_hz: np.ndarray
    bias_pa: np.ndarray
    synapse_weight: np.ndarray | None = None
    source_rate_hz: np.ndarray | None = None
    source_weight: np.ndarray | None = None

    def __post_init__(self):
        M = self.weight_scale.shape[0]
        for name in ("synapse_weight", "source_rate_hz", "source_weight"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, np.zeros((M, 0)))

    @property
    def n_members(self) -> int:
        return self.weight_scale.shape[0]

    def select(self, members) -> MemberParams:
        """The parameters of some members (indices into the first axis)."""
        idx = np.atleast_1d(members)
        return MemberParams(*(getattr(self, f.name)[idx] for f in fields(self)))


def default_params(network: Network, n_members: int) -> MemberParams:
    """Parameters that reproduce the spec: unit weight scales, the spec's rates and biases
    (member synapses and hidden sources, if the network has any, at zero)."""
    M = int(n_members)
    return MemberParams(
        weight_scale=np.ones((M, network.n_pop, network.n_pop)),
        poisson_rate_hz=np.tile(network.poisson_rate_hz, (M, 1)),
        bias_pa=np.tile(network.bias_pa, (M, 1)),
        synapse_weight=np.zeros((M, network.n_member_synapses)),
        source_rate_hz=np.zeros((M, network.n_sources)),
        source_weight=np.zeros((M, network.n_sources)),
    )


@dataclass(frozen=True)
class MemberState:
    """Everything a restart needs, for a batch of M members of one network.

    Attributes
    ----------
    step : int
        Absolute time step of the state (time = step · dt).
    member_ids : (M,) int64
        Identity of each member; its random stream is keyed by it, so a member gives the
        same spikes whether it is advanced alone or in a batch.
    v_mv, u, g_e, g_i, i_ou_pa : (M, n) float64
        Membrane potential, Izhikevich recovery variable, excitatory and inhibitory
        synaptic variables (nS, pA or input units by model, magnitudes) and OU current.
    refractory : (M, n) int32
        Steps left in the refractory period.
    buf_e, buf_i : (M, D, n) float64
        Spikes in flight: weight arriving at each neuron at the start of step ``step + k``
        sits in slot ``(step + k) mod D``.
    fingerprint : str
        The network's fingerprint; a state advanced with another network is an error.
    """

    step: int
    member_ids: np.ndarray
    v_mv: np.ndarray
    u: np.ndarray
    g_e: np.ndarray
    g_i: np.ndarray
    i_ou_pa: np.ndarray
    refractory: np.ndarray
    buf_e: np.ndarray
    buf_i: np.ndarray
    fingerprint: str

    ARRAYS = ("member_ids", "v_mv", "u", "g_e", "g_i", "i_ou_pa", "refractory", "buf_e", "buf_i")

    @property
    def n_members(self) -> int:
        return self.member_ids.shape[0]

    def time_s(self, network: Network) -> float:
        return self.step * network.dt_s

    def copy(self) -> MemberState:
        return replace(self, **{k: getattr(self, k).copy() for k in self.ARRAYS})

    def select(self, members) -> MemberState:
        """The state of some members (indices into the first axis), as a new batch."""
        idx = np.atleast_1d(members)
        return replace(self, **{k: getattr(self, k)[idx].copy() for k in self.ARRAYS})

    @staticmethod
    def concat(states) -> MemberState:
        """One batch from several states of the same network at the same step."""
        states = list(states)
        first = states[0]
        for s in states[1:]:
            if s.fingerprint != first.fingerprint or s.step != first.step:
                raise ValueError("states to concatenate must share network and step")
        return replace(
            first,
            **{k: np.concatenate([getattr(s, k) for s in states]) for k in MemberState.ARRAYS},
        )


def initial_state(network: Network, n_members: int, seed: int) -> MemberState:
    """A batch of ``n_members`` members at step 0, with random initial membrane potentials.

    LIF: uniform in [V_reset, V_th] unless the spec sets ``initial_v_mv``; Izhikevich:
    v = −65 mV, u = b·v (Izhikevich 2003). Synapses empty, no spike in flight. Member m's
    draw comes from ``SeedSequence(seed).spawn(M)[m]``.
    """
    M, n = int(n_members), network.n
    if M < 1:
        raise ValueError(f"n_members must be ≥ 1, got {n_members}")
    spec = network.spec
    children = np.random.SeedSequence(seed).spawn(M)
    v = np.empty((M, n))
    u = np.zeros((M, n))
    for m, child in enumerate(children):
        rng = np.random.default_rng(child)
        if spec.initial_v_mv is not None:
            v[m] = draw_values(spec.initial_v_mv, n, rng, rng.random(n))
        elif network.model == "izhikevich":
            v[m] = -65.0
        else:
            lo, hi = network.neuron["v_reset_mv"], network.neuron["v_th_mv"]
            v[m] = lo + (hi - lo) * rng.random(n)
    if network.model == "izhikevich":
        u = network.neuron["b"] * v
    D = network.max_delay_steps + 2  # slots for steps now+1 … now+1+max_delay, and now
    zeros = np.zeros((M, n))
    return MemberState(
        step=0,
        member_ids=np.arange(M, dtype=np.int64),
        v_mv=v,
        u=u,
        g_e=zeros.copy(),
        g_i=zeros.copy(),
        i_ou_pa=np.tile(network.ou_mean_pa[network.pop_of], (M, 1)),
        refractory=np.zeros((M, n), np.int32),
        buf_e=np.zeros((M, D, n)),
        buf_i=np.zeros((M, D, n)),
        fingerprint=network.fingerprint,
    )
