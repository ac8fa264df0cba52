"""GLMCC's coupling J in the model neuron's terms: a calibration by simulation.

GLMCC reports a connection's strength as J, the log of the factor by which one presynaptic
spike raises (or lowers) the postsynaptic firing rate after the delay. Kobayashi et al.
(2019) turned J into a PSP with factors fitted on their own simulated cortex (2.532 mV per
unit J for excitation, 0.612 for inhibition). How much a PSP of given size changes the
firing rate depends on the neuron and on where its membrane potential sits, so those
factors are not the model's: in our twin (docs/constraints.md) they put the inhibitory
links at about a third of their true size.

Here the model answers the question itself. Probe synapses of known PSP (a grid of sizes,
several pairs per size, E and I, with the spec's delays) are added between neurons of the
members' network that are not observed; the network is simulated at the spec's own parameters for as long as the
recording the estimate came from, and GLMCC, with the same settings, is fitted to every
probe pair. The mean J per size gives, per sign, a monotone curve J(PSP) through the origin;
an estimated J is converted by its inverse, piecewise linear, and its standard error by the
local slope. Because the probes see the same estimator on as much data, the curve also
carries GLMCC's shrinkage at that data length.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from model import advance, default_params, initial_state
from model.network import Network, csr_rows
from model.overlay import member_synapse_order, with_member_synapses
from model.psp import weight_for_psp
from observations.spikes import SpikeTrains

#: Probe PSP sizes (mV): excitatory, inhibitory.
E_LEVELS_MV = (0.5, 1.0, 2.0, 3.0, 4.5, 6.0)
I_LEVELS_MV = (-0.5, -1.0, -2.0, -3.0, -4.5)
#: Simulated before the probes' spikes are used (s).
SPINUP_S = 2.0


@dataclass(frozen=True)
class JCalibration:
    """J(PSP) of the model neuron, per sign, and its inverse.

    psp_mv : (L,) signed probe sizes (mV); j_mean, j_sd : (L,) mean and sd of the fitted J
    over the probes of each size; n : (L,) probes per size; duration_s : the simulated
    recording length; the curve of a sign runs through (0, 0) and its levels.
    """

    psp_mv: np.ndarray
    j_mean: np.ndarray
    j_sd: np.ndarray
    n: np.ndarray
    duration_s: float

    def _curve(self, excitatory: bool) -> tuple[np.ndarray, np.ndarray]:
        """(|J| knots, |PSP| knots) of one sign, from the origin; |J| is made
        non-decreasing (a mean J of the wrong sign counts as 0)."""
        sign = 1.0 if excitatory else -1.0
        sel = np.sign(self.psp_mv) == sign
        order = np.argsort(np.abs(self.psp_mv[sel]))
        psp = np.r_[0.0, np.abs(self.psp_mv[sel][order])]
        j = np.r_[0.0, np.maximum(sign * self.j_mean[sel][order], 0.0)]
        return np.maximum.accumulate(j), psp

    def psp(self, J, excitatory) -> tuple[np.ndarray, np.ndarray]:
        """PSP (mV, signed) of couplings ``J`` and the slope dPSP/dJ (mV per unit J, > 0)
        there. ``excitatory`` (bool, broadcast) picks the curve; beyond the largest probe
        the last segment is extended."""
        J, excitatory = np.broadcast_arrays(np.asarray(J, float), np.asarray(excitatory, bool))
        out = np.full(J.shape, np.nan)
        slope = np.full(J.shape, np.nan)
        for sign in (True, False):
            sel = excitatory == sign
            if not sel.any():
                continue
            j, p = self._curve(sign)
            # strictly increasing knots: drop the flat steps a non-monotone mean left
            keep = np.r_[True, np.diff(j) > 0]
            j, p = j[keep], p[keep]
            if j.size < 2:
                raise ValueError(f"the {'E' if sign else 'I'} probes gave no usable J curve")
            a = np.abs(J[sel])
            seg = np.clip(np.searchsorted(j, a, side="right") - 1, 0, j.size - 2)
            s = (p[seg + 1] - p[seg]) / (j[seg + 1] - j[seg])
            out[sel] = (1.0 if sign else -1.0) * (p[seg] + s * (a - j[seg]))
            slope[sel] = s
        return out, slope

    def as_dict(self) -> dict:
        return {"psp_mv": self.psp_mv.tolist(), "j_mean": self.j_mean.tolist(),
                "j_sd": self.j_sd.tolist(), "n": self.n.tolist(), "duration_s": self.duration_s}  # fmt: skip


def _probes(network: Network, exclude, per_level: int, rng) -> tuple[np.ndarray, ...]:
    """Probe synapses: (pre, post, psp_mv, excitatory), pre of the right type, none of
    them in ``exclude``, no autapse, no pair twice (in either direction)."""
    free = np.setdiff1d(np.arange(network.n), np.asarray(exclude, np.int64))
    exc_pre = free[network.excitatory[free]]
    inh_pre = free[~network.excitatory[free]]
    rows, used = [], set()
    for levels, pool in ((E_LEVELS_MV, exc_pre), (I_LEVELS_MV, inh_pre)):
        if pool.size == 0:
            raise ValueError("no unobserved neuron of a type the probes need")
        for psp in levels:
            for _ in range(per_level):
                for _try in range(1000):
                    a, b = int(rng.choice(pool)), int(rng.choice(free))
                    if a != b and (a, b) not in used and (b, a) not in used:
                        break
                else:
                    raise ValueError("too few unobserved neurons for the calibration probes")
                used.add((a, b))
                rows.append((a, b, psp))
    pre, post, psp = (np.array(c) for c in zip(*rows, strict=True))
    order = np.lexsort((post, pre))  # the network's order of member synapses
    pre, post, psp = pre[order].astype(np.int64), post[order].astype(np.int64), psp[order].astype(float)
    return pre, post, psp, psp > 0


def _spec_delays_ms(network: Network, excitatory) -> np.ndarray:
    """The probes' delays (ms): the median delay of the spec's synapses of the same sign.
    The recorded synapses' delays are unknown; GLMCC's own d is an assumption of the fit,
    and a probe whose delay matched it would show a larger J than a real synapse does."""
    pre_exc = network.excitatory[csr_rows(network.syn_ptr)]
    out = np.empty(len(excitatory))
    for sign in (True, False):
        d = network.syn_delay[pre_exc == sign]
        out[np.asarray(excitatory) == sign] = (np.median(d) if d.size else 0.0) * network.spec.dt_ms
    return out


def calibrate_j(network: Network, exclude, duration_s: float, glmcc_kwargs: dict,
                per_level: int = 16, seed: int = 0) -> JCalibration:  # fmt: skip
    """Simulate probe synapses in ``network`` (the members' network before constraints, at
    the spec's parameters) for ``duration_s`` and fit GLMCC (``glmcc_kwargs``: its delay
    and the like) to each; see the module docstring. ``exclude``: neurons not to use (the
    observed ones)."""
    from inference import GLMCC

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(23,)))
    pre, post, psp, exc = _probes(network, exclude, per_level, rng)
    probed = with_member_synapses(network, (), pre, post, _spec_delays_ms(network, exc), exc)
    neurons = np.unique(np.r_[pre, post])
    probed = dataclasses.replace(probed, recorded=neurons)
    if not np.array_equal(member_synapse_order(probed, pre, post), np.arange(pre.size)):
        raise RuntimeError("probe synapses are not in the network's order")
    params = default_params(probed, 1)
    params.synapse_weight[0] = weight_for_psp(probed, post, psp)[0]
    state = initial_state(probed, 1, seed)
    t1 = SPINUP_S + duration_s
    _, rec = advance(probed, params, state, 0.0, t1, seed)
    t, j = rec.member(0)
    keep = t > SPINUP_S
    spikes = SpikeTrains.from_pairs(t[keep], j[keep], SPINUP_S, t1, unit_ids=neurons)
    pos = {int(u): k for k, u in enumerate(neurons)}
    pairs = np.array([[pos[int(a)], pos[int(b)]] for a, b in zip(pre, post, strict=True)])
    ds = GLMCC(**glmcc_kwargs).fit(spikes, pairs=pairs)
    J = ds["J"].values[pairs[:, 0], pairs[:, 1]]
    levels = np.r_[E_LEVELS_MV, I_LEVELS_MV]
    j_mean = np.array([np.nanmean(J[psp == v]) for v in levels])
    j_sd = np.array([np.nanstd(J[psp == v], ddof=1) for v in levels])
    n = np.array([int(np.isfinite(J[psp == v]).sum()) for v in levels])
    return JCalibration(psp_mv=np.asarray(levels, float), j_mean=j_mean, j_sd=j_sd, n=n,
                        duration_s=float(duration_s))  # fmt: skip
