"""Localisation for an augmented state of global parameters and per-neuron states.

The parameters are one domain that sees every observation at weight 1 (they act on the
whole network); the state of each observed neuron is its own domain and sees the
observations of neurons near it — on the sheet (µm, periodic like the network's sheet)
or in the synaptic graph (hops, either direction) — with the taper of
:class:`enkf.localization.DistanceLocalizer`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
from scipy.sparse.csgraph import dijkstra

from enkf.localization import DistanceLocalizer, Domains
from enkf.run_config import LocalizationSpec
from model import Network
from model.network import csr_rows


class NeuronLocalizer:
    """Domains for ``letkf`` on Z = [parameters (n_params), v of ``neurons`` (n_neurons)].

    Parameters
    ----------
    network : Network
    n_params : int
    neurons : (n_neurons,) int64
        Model neurons whose states are columns n_params … of Z.
    obs_neurons : (n_obs,) int64
        Model neuron of each observation.
    spec : LocalizationSpec
    """

    def __init__(
        self, network: Network, n_params: int, neurons, obs_neurons, spec: LocalizationSpec
    ):
        neurons = np.asarray(neurons, np.int64)
        obs_neurons = np.asarray(obs_neurons, np.int64)
        # A one-point localizer: only its periodic distance and its taper are used here.
        pos = network.positions_um
        period = tuple(network.spec.sheet_um) if spec.by == "distance" else None
        loc = DistanceLocalizer(
            pos[:1] * 0, pos[:1] * 0, spec.radius, period=period, taper=spec.taper
        )
        dist = None
        if spec.by == "graph":
            dist = self._hops(network, neurons, obs_neurons, loc.cutoff)
        n_nrn, n_obs = neurons.size, obs_neurons.size
        state_ptr = [0, n_params]
        state_idx = list(range(n_params))
        obs_ptr = [0, n_obs]
        obs_idx = [np.arange(n_obs)]
        obs_w = [np.ones(n_obs)]
        for j in range(n_nrn):
            if dist is None:
                d = loc.distance(
                    network.positions_um[neurons[j]], network.positions_um[obs_neurons]
                )
            else:
                d = dist[j]
            w = loc.weight(d)
            keep = np.flatnonzero(w > 0)
            state_idx.append(n_params + j)
            state_ptr.append(state_ptr[-1] + 1)
            obs_idx.append(keep)
            obs_w.append(w[keep])
            obs_ptr.append(obs_ptr[-1] + keep.size)
        self._domains = Domains(
            state_ptr=np.array(state_ptr, np.int64),
            state_idx=np.array(state_idx, np.int64),
            obs_ptr=np.array(obs_ptr, np.int64),
            obs_idx=np.concatenate(obs_idx).astype(np.int64),
            obs_weight=np.concatenate(obs_w),
        )
        self.n_state, self.n_obs = n_params + n_nrn, n_obs

    @staticmethod
    def _hops(network: Network, neurons, obs_neurons, cutoff) -> np.ndarray:
        """(n_neurons, n_obs) synaptic hops between neurons (inf beyond the cutoff)."""
        n = network.n
        pre = csr_rows(network.syn_ptr)
        adj = scipy.sparse.csr_matrix((np.ones(pre.size), (pre, network.syn_post)), shape=(n, n))
        adj = ((adj + adj.T) > 0).astype(float)
        d = dijkstra(adj, directed=False, indices=neurons, unweighted=True, limit=cutoff)
        return d[:, obs_neurons]

    def domains(self, n_state=None, n_obs=None) -> Domains:
        if n_state is not None and n_state != self.n_state:
            raise ValueError(
                f"localizer was built for {self.n_state} state entries, Z has {n_state}"
            )
        if n_obs is not None and n_obs != self.n_obs:
            raise ValueError(f"localizer was built for {self.n_obs} observations, got {n_obs}")
        return self._domains
