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
members' network that are not observed, each probe onto its own postsynaptic neuron with its
own DC offset; the network is simulated at the spec's parameters for as long as the
recording the estimate came from, and GLMCC, with the same settings, is fitted to every
probe pair. The same PSP moves a fast-firing neuron's rate by a smaller factor (in the twin,
true −2 mV inhibitory links show J ≈ −0.9 onto recorded neurons firing at 18 Hz and −1.6
onto ones at 11 Hz), so the curve is taken at the recorded postsynaptic neuron's own rate:
per PSP size, the probes' J regressed on log rate. An estimated J is converted by the
inverse of that monotone curve J(PSP) through the origin, piecewise linear, and its standard
error by the local slope. Because the probes see the same estimator on as much data, the
curve also carries GLMCC's shrinkage at that data length.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from model import advance, default_params, initial_state
from model.network import Network, csr_rows
from model.overlay import member_synapse_order, with_member_synapses
from model.psp import weight_for_psp
from observations.spikes import SpikeTrains

#: Probe PSP sizes (mV): excitatory, inhibitory.
E_LEVELS_MV = (0.5, 1.0, 2.0, 3.0, 4.5, 6.0)
I_LEVELS_MV = (-0.5, -1.0, -2.0, -3.0, -4.5)
#: Each probe's postsynaptic neuron gets its own DC offset from this range (pA), so that
#: the probes' postsynaptic rates span the range recorded neurons have.
BIAS_OFFSET_PA = (-30.0, 90.0)
#: Simulated before the probes' spikes are used (s).
SPINUP_S = 2.0


@dataclass(frozen=True)
class JCalibration:
    """J as a function of the PSP and of the postsynaptic rate, per sign, and its inverse.

    psp_mv, rate_hz, j : (K,) each probe's PSP (mV, signed), its postsynaptic neuron's rate
    in the simulation (Hz) and its fitted J (NaN where GLMCC had no estimate);
    duration_s : the simulated recording length.

    At a given postsynaptic rate r, the mean J of each PSP size is the least-squares line
    of the probes' J on log rate, evaluated at r (clipped to the probes' range of rates); the
    curve of a sign runs through (0, 0) and those means, made non-decreasing in |J|.
    """

    psp_mv: np.ndarray
    rate_hz: np.ndarray
    j: np.ndarray
    duration_s: float

    @cached_property
    def levels(self) -> np.ndarray:
        return np.unique(self.psp_mv)

    @cached_property
    def _fits(self) -> np.ndarray:
        """(L, 5) per level: mean J, intercept and slope of J on log rate (slope 0 where the
        probes cannot fit a line), and the range of log rate; NaN for a level without J."""
        out = np.full((self.levels.size, 5), np.nan)
        for k, level in enumerate(self.levels):
            sel = (self.psp_mv == level) & np.isfinite(self.j) & (self.rate_hz > 0)
            if not sel.any():
                continue
            j, x = self.j[sel], np.log(self.rate_hz[sel])
            b, a = np.polyfit(x, j, 1) if np.ptp(x) > 0 and sel.sum() >= 3 else (0.0, j.mean())
            out[k] = j.mean(), a, b, x.min(), x.max()
        return out

    def j_mean(self, rate_hz: float | None = None) -> np.ndarray:
        """Mean J of each level (``levels`` order) at postsynaptic rate ``rate_hz`` (None:
        over all the level's probes)."""
        mean, a, b, lo, hi = self._fits.T
        if rate_hz is None:
            return mean
        return a + b * np.clip(np.log(rate_hz), lo, hi)

    def _curve(self, excitatory: bool, rate_hz) -> tuple[np.ndarray, np.ndarray]:
        """(|J| knots, |PSP| knots) of one sign at one rate, from the origin, strictly
        increasing in |J| (a mean J of the wrong sign counts as 0; a level whose mean does
        not exceed the one before it is dropped)."""
        sign = 1.0 if excitatory else -1.0
        levels, means = self.levels, self.j_mean(rate_hz)
        sel = (np.sign(levels) == sign) & np.isfinite(means)
        order = np.argsort(np.abs(levels[sel]))
        psp = np.r_[0.0, np.abs(levels[sel][order])]
        j = np.maximum.accumulate(np.r_[0.0, np.maximum(sign * means[sel][order], 0.0)])
        keep = np.r_[True, np.diff(j) > 0]
        if keep.sum() < 2:
            raise ValueError(f"the {'E' if excitatory else 'I'} probes gave no usable J curve")
        return j[keep], psp[keep]

    def psp(self, J, excitatory, rate_hz=None) -> tuple[np.ndarray, np.ndarray]:
        """PSP (mV, signed) of couplings ``J`` onto neurons firing at ``rate_hz`` (None:
        the curve over all probes), and the slope dPSP/dJ (mV per unit J, > 0) there.
        ``excitatory`` (bool) picks the sign's curve; beyond the largest probe the last
        segment goes on. All three broadcast."""
        J, excitatory, rate = np.broadcast_arrays(
            np.asarray(J, float), np.asarray(excitatory, bool),
            np.asarray(np.nan if rate_hz is None else rate_hz, float),
        )  # fmt: skip
        out = np.full(J.shape, np.nan)
        slope = np.full(J.shape, np.nan)
        for idx in np.ndindex(J.shape):
            r = None if not np.isfinite(rate[idx]) else float(rate[idx])
            j, p = self._curve(bool(excitatory[idx]), r)
            a = abs(J[idx])
            seg = int(np.clip(np.searchsorted(j, a, side="right") - 1, 0, j.size - 2))
            s = (p[seg + 1] - p[seg]) / (j[seg + 1] - j[seg])
            out[idx] = (1.0 if excitatory[idx] else -1.0) * (p[seg] + s * (a - j[seg]))
            slope[idx] = s
        return out, slope

    def as_dict(self) -> dict:
        """For the run's attrs: the probes, and the mean J per level at 5, 10 and 20 Hz."""
        return {"psp_mv": self.psp_mv.tolist(), "rate_hz": np.round(self.rate_hz, 3).tolist(),
                "j": np.round(self.j, 4).tolist(), "duration_s": self.duration_s,
                "levels_mv": self.levels.tolist(),
                "j_mean_at": {f"{r} Hz": np.round(self.j_mean(r), 3).tolist() for r in (5, 10, 20)}}  # fmt: skip


def _probes(network: Network, exclude, per_level: int, rng) -> tuple[np.ndarray, ...]:
    """Probe synapses: (pre, post, psp_mv, excitatory), pre of the right type, none of
    them in ``exclude``, no autapse, no pair twice (in either direction); each probe has a
    postsynaptic neuron of its own while there are enough of them."""
    free = np.setdiff1d(np.arange(network.n), np.asarray(exclude, np.int64))
    pools = (free[network.excitatory[free]], free[~network.excitatory[free]])
    if min(p.size for p in pools) == 0:
        raise ValueError("no unobserved neuron of a type the probes need")
    levels = [v for v in E_LEVELS_MV for _ in range(per_level)] + [v for v in I_LEVELS_MV for _ in range(per_level)]
    posts = rng.permutation(free)
    rows, used = [], set()
    for k, psp in enumerate(levels):
        pool = pools[0] if psp > 0 else pools[1]
        for _try in range(1000):
            b = int(posts[k]) if k < posts.size and _try == 0 else int(rng.choice(free))
            a = int(rng.choice(pool))
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
    the spec's parameters, each probe's postsynaptic neuron with its own DC offset) for
    ``duration_s`` and fit GLMCC (``glmcc_kwargs``: its delay and the like) to each; see
    the module docstring. ``exclude``: neurons not to use (the observed ones)."""
    from inference import GLMCC

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(23,)))
    pre, post, psp, exc = _probes(network, exclude, per_level, rng)
    probed = with_member_synapses(network, pre=pre, post=post, delay_ms=_spec_delays_ms(network, exc),
                                  excitatory=exc)  # fmt: skip
    neurons = np.unique(np.r_[pre, post])
    probed = dataclasses.replace(probed, recorded=neurons)
    if not np.array_equal(member_synapse_order(probed, pre, post), np.arange(pre.size)):
        raise RuntimeError("probe synapses are not in the network's order")
    params = default_params(probed, 1)
    params.synapse_weight[0] = weight_for_psp(probed, post, psp)[0]
    targets = np.unique(post)
    params.bias_pa[0, targets] += rng.uniform(*BIAS_OFFSET_PA, targets.size)
    state = initial_state(probed, 1, seed)
    t1 = SPINUP_S + duration_s
    _, rec = advance(probed, params, state, 0.0, t1, seed)
    t, j = rec.member(0)
    keep = t > SPINUP_S
    spikes = SpikeTrains.from_pairs(t[keep], j[keep], SPINUP_S, t1, unit_ids=neurons)
    pos = {int(u): k for k, u in enumerate(neurons)}
    pairs = np.array([[pos[int(a)], pos[int(b)]] for a, b in zip(pre, post, strict=True)])
    ds = GLMCC(**glmcc_kwargs).fit(spikes, pairs=pairs)
    return JCalibration(psp_mv=psp, rate_hz=spikes.rates_hz()[pairs[:, 1]],
                        j=ds["J"].values[pairs[:, 0], pairs[:, 1]], duration_s=float(duration_s))  # fmt: skip
