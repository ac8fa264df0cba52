"""Models that ensemble members run.

The spiking network (DESIGN.md, "Model"): :func:`build_network` turns a spec into the
shared structure, :func:`initial_state` makes a batch of members, and :func:`advance`
moves them forward in time, exactly restartably. The toy models that validate the filters
are :class:`model.lorenz96.Lorenz96` and :class:`model.lorenz63.Lorenz63`.
"""

from model.network import Network, build_network
from model.simulate import Recorded, advance
from model.spec import NetworkSpec, SpecError, load_spec
from model.state import MemberParams, MemberState, default_params, initial_state

__all__ = [
    "MemberParams",
    "MemberState",
    "Network",
    "NetworkSpec",
    "Recorded",
    "SpecError",
    "advance",
    "build_network",
    "default_params",
    "initial_state",
    "load_spec",
]
