"""Dale's law for estimated connections: a neuron's type from the signs of its outgoing links.

Rule (documented in docs/constraints.md): for each presynaptic unit, add up the evidence of
its significant excitatory links and of its significant inhibitory links (the evidence of
a link is its |z| = |J| / se(J)). The larger sum gives the unit's type, and the links of the
other sign are dropped as violations of Dale's law (each is reported). A unit with equal
sums keeps the type of the model neuron it is mapped to; a unit without significant
outgoing links has no type from the data ("").

Conflict with the lab: where the recording labels a unit's cell type ("E" or "I" in the
store's ``units/cell_type``: optotagging, waveform), the label is the type and the links
of the other sign are dropped. GLMCC's signs are weaker evidence than such a label: a sharp
common-input peak makes the smooth a(t) overshoot beside it and the trough next to it
passes the test as inhibition, and a strong E link a → b shows as an I-like asymmetry b → a.
"""

from __future__ import annotations

import numpy as np


def assign_types(pre, excitatory, evidence, units, default_types, known_types=None):
    """Types of ``units`` and which links agree with them.

    Parameters
    ----------
    pre : (k,) int
        Presynaptic unit id of each significant link.
    excitatory : (k,) bool
        Sign of each link.
    evidence : (k,) float ≥ 0
        Weight of each link in the vote (|z|).
    units : (n,) int
        Unit ids to type.
    default_types : (n,) str
        "E" or "I": the mapped model neuron's type, used on a tie.
    known_types : (n,) str, optional
        The recording's cell types ("E", "I", or anything else for unknown): a label wins.

    Returns
    -------
    types : (n,) str
        "E", "I" or "" (no significant outgoing link).
    keep : (k,) bool
        The links whose sign agrees with their presynaptic unit's type.
    """
    pre = np.asarray(pre)
    excitatory = np.asarray(excitatory, dtype=bool)
    evidence = np.asarray(evidence, dtype=float)
    if np.any(~np.isfinite(evidence)) or np.any(evidence < 0):
        raise ValueError("link evidence must be finite and ≥ 0")
    units = np.asarray(units)
    types = np.full(units.size, "", dtype="<U1")
    keep = np.ones(pre.size, bool)
    known = np.full(units.size, "") if known_types is None else np.asarray(known_types).astype(str)
    for i, u in enumerate(units):
        mine = pre == u
        if not mine.any():
            continue
        e = evidence[mine & excitatory].sum()
        n = evidence[mine & ~excitatory].sum()
        if known[i] in ("E", "I"):
            types[i] = known[i]
        elif e > n:
            types[i] = "E"
        elif n > e:
            types[i] = "I"
        else:
            types[i] = default_types[i]
        keep[mine] = excitatory[mine] == (types[i] == "E")
    return types, keep
