"""From a triplet map to hidden excitatory sources.

A triplet classified as excitatory common input gets sources: "E-all" one source to its
three units, "E-pair" one to the named pair, "E-pairs" one to each of its three pairs. A
source's rate is the motif's fitted source rate; its amplitude (mV) is the mean over its
targets of the motif's amplitude (``motif_amplitude_mv``). Pairs whose synchrony the
recorded neurons already explain are not given a source: a pair with a direct GLMCC
connection, and a pair that receives significant excitatory connections from the same
recorded neuron (a common input that is recorded, and modelled as two links, is not a
hidden one). Triplets overlap, so the same common input is seen more than once: sources
with the same targets are merged (rates and amplitudes averaged), and a pair source inside
the targets of a three-unit source is dropped (the three-unit source already gives that
pair its common input).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from enkf.constraints.connections import require

_PAIRS = {"12": (0, 1), "13": (0, 2), "23": (1, 2)}
#: The motif labels of excitatory common input (inference.triplet_motifs).
EXCITATORY_MOTIFS = ("E-all", "E-pair", "E-pairs")


@dataclass
class Sources:
    """Hidden sources on the observed units.

    targets : list of (k_s,) int64 unit ids; rate_hz, amplitude_mv : (n_src,);
    n_triplets : (n_src,) how many excitatory triplets gave each source.
    """

    targets: list
    rate_hz: np.ndarray
    amplitude_mv: np.ndarray
    n_triplets: np.ndarray

    @property
    def n(self) -> int:
        return len(self.targets)


def explained_pairs(pre, post, excitatory) -> set[tuple[int, int]]:
    """Unordered unit pairs whose synchrony the estimated links explain: the two ends of a
    link, and two units that receive excitatory links from the same presynaptic unit.

    pre, post : (k,) unit ids of the links; excitatory : (k,) bool.
    """
    pairs = {tuple(sorted((int(a), int(b)))) for a, b in zip(pre, post, strict=True)}
    pre, post = np.asarray(pre), np.asarray(post)
    e = np.asarray(excitatory, bool)
    for u in np.unique(pre[e]):
        targets = np.unique(post[e & (pre == u)]).tolist()
        pairs.update((a, b) for k, a in enumerate(targets) for b in targets[k + 1 :])
    return pairs


def from_triplets(ds: xr.Dataset, where: str = "constraints.triplets", explained=()) -> Sources:
    """The sources of a classified triplet map (``inference.TripletMap.fit`` Dataset).

    ``explained``: unordered unit pairs whose synchrony the estimated links explain
    (:func:`explained_pairs`). A direct link with a delay under the bin width makes two
    units fire in the same bin just as a common input does, and so does a recorded
    neuron's input to both; the triplet map cannot tell these from a hidden input at zero
    lag, so a source whose targets hold such a pair is left out.
    """
    explained = {tuple(sorted((int(a), int(b)))) for a, b in explained}
    require(ds, "triplets", ("motif", "motif_amplitude_mv"), where, "spikeda triplets")
    units = ds["triplet_units"].values
    motif = ds["motif"].values.astype(str)
    pair = ds["motif_pair"].values.astype(str)
    rate = ds["motif_source_rate_hz"].values
    amp = ds["motif_amplitude_mv"].values
    found: dict[tuple, list] = {}
    for t in np.flatnonzero(np.isin(motif, EXCITATORY_MOTIFS)):
        if motif[t] == "E-all":
            groups = [(0, 1, 2)]
        elif motif[t] == "E-pair":
            groups = [_PAIRS[pair[t]]]
        else:
            groups = list(_PAIRS.values())
        for g in groups:
            a = np.nanmean(amp[t, list(g)])
            if not (np.isfinite(a) and a > 0 and np.isfinite(rate[t]) and rate[t] > 0):
                continue
            key = tuple(sorted(int(u) for u in units[t, list(g)]))
            if any((a, b) in explained for k, a in enumerate(key) for b in key[k + 1 :]):
                continue
            found.setdefault(key, []).append((rate[t], a))
    triples = [k for k in found if len(k) == 3]
    keys = [k for k in found if len(k) == 3 or not any(set(k) <= set(tr) for tr in triples)]
    keys.sort(key=lambda k: (len(k), k))
    return Sources(
        targets=[np.array(k, np.int64) for k in keys],
        rate_hz=np.array([np.mean([r for r, _ in found[k]]) for k in keys]),
        amplitude_mv=np.array([np.mean([a for _, a in found[k]]) for k in keys]),
        n_triplets=np.array([len(found[k]) for k in keys], np.int64),
    )
