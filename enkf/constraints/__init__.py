"""Connectivity constraints: GLMCC connections and triplet-map motifs shape the members.

- :mod:`enkf.constraints.dale` — a unit's type from the signs of its significant links;
- :mod:`enkf.constraints.connections` — a GLMCC result → synapses among observed units;
- :mod:`enkf.constraints.sources` — a triplet map → hidden excitatory sources;
- :mod:`enkf.constraints.build` — both in model-neuron terms, member draws, persistence.
"""

from enkf.constraints.build import ConstraintSet, member_network, prepare
from enkf.constraints.connections import Connections, from_glmcc
from enkf.constraints.dale import assign_types
from enkf.constraints.sources import Sources, explained_pairs, from_triplets

__all__ = [
    "ConstraintSet",
    "Connections",
    "Sources",
    "assign_types",
    "explained_pairs",
    "from_glmcc",
    "from_triplets",
    "member_network",
    "prepare",
]
