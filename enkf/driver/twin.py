"""The truth of a twin experiment: the network with the hidden parameter values, simulated
once, and what a lab would have recorded of it, written as an ordinary observation store
(so the assimilation reads a twin's data exactly as it reads a real recording)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enkf.config import ConfigError
from enkf.driver.params import ParameterSet
from enkf.run_config import RunConfig
from enkf.simulation import record
from model import Network, build_network, initial_state
from observations import SpikeTrains, write_store
from observations.operators import CalciumOperator
from observations.synthetic import write_synthetic_calcium

#: Where a twin's observation store lives inside its run.
STORE = "twin_observations.zarr"


@dataclass
class Truth:
    """The simulated truth.

    theta : (P,) hidden parameter values; spikes : SpikeTrains of the observed neurons
    (unit id = model neuron); rates_hz : (n_bins, n_pop) population rates in bins of
    bin_s from t = 0.
    """

    theta: np.ndarray
    spikes: SpikeTrains
    rates_hz: np.ndarray
    bin_s: float

    def window_rates(self, t0_s: float, t1_s: float) -> np.ndarray:
        """Mean population rates over (t0_s, t1_s], (n_pop,)."""
        a, b = int(round(t0_s / self.bin_s)), int(round(t1_s / self.bin_s))
        return self.rates_hz[a:b].mean(axis=0)


def simulate_truth(cfg: RunConfig, network: Network, params: ParameterSet, out: Path,
                   progress=sys.stderr) -> tuple[Truth, Path]:  # fmt: skip
    """Simulate the truth and write its observation store at ``out / STORE``.

    The truth runs from t = 0 to the end of the last window with its own seed
    (``twin.seed``) for the initial state and the drive; the imaged neurons are drawn at
    random (same seed) among the recorded ones. Calcium: the assimilation's operator
    settings with the twin's noise level and frame rate; spike counts: the spikes
    themselves are the recording.
    """
    tw, asm, obs = cfg.twin, cfg.assimilation, cfg.observations
    theta = params.check_truth(tw.truth)
    truth_net = truth_network(cfg, network)
    if truth_net is not network:
        params = ParameterSet(cfg.parameters, truth_net)
    duration = asm.start_s + asm.cycles * asm.window_s
    n_steps = int(round(duration / network.dt_s))
    rng = np.random.default_rng(np.random.SeedSequence(tw.seed, spawn_key=(1,)))
    k = min(tw.observed_neurons, network.recorded.size)
    imaged = np.sort(rng.choice(network.recorded, size=k, replace=False))
    state = initial_state(truth_net, 1, tw.seed)
    truth_params = params.member_params(theta[None, :])
    if progress is not None:
        print(f"spikeda: simulating the truth for {duration:g} s", file=progress)
    _, times, neurons, rates, _ = record(truth_net, truth_params, state, n_steps, tw.seed)
    rates = rates[..., : network.n_pop]  # the members' populations (a truth may have more)
    keep = np.isin(neurons[0], imaged)
    spikes = SpikeTrains.from_pairs(
        times[0][keep], neurons[0][keep], 0.0, n_steps * network.dt_s, unit_ids=imaged
    )
    xy = truth_net.positions_um[imaged]
    units = {
        "cell_type": np.where(truth_net.excitatory[imaged], "E", "I"),
        "position_um": np.column_stack([xy, np.zeros(len(xy))]),
    }
    path = out / STORE
    if obs is not None and obs.operator.kind == "calcium":
        kw = {
            k: v
            for k, v in obs.operator.model_dump().items()
            if k not in ("kind", "noise_nu") and v is not None
        }
        op = CalciumOperator(frame_rate_hz=tw.frame_rate_hz, noise_nu=tw.noise_nu, **kw)
        write_synthetic_calcium(path, spikes, op, seed=tw.seed, include_spikes=True, units=units)
    else:
        write_store(path, spikes=spikes, units=units, source="spikeda twin (truth spikes)",
                    attrs={"synthetic": True})  # fmt: skip
    bin_s = network.spec.rate_bin_ms * 1e-3
    return Truth(theta, spikes, rates[0], bin_s), path


def truth_network(cfg: RunConfig, network: Network) -> Network:
    """The truth's network: ``twin.network`` when given (checked to start with the members'
    populations, neuron for neuron, and to record the same neurons), else ``network``."""
    tn = cfg.twin.network
    if tn is None:
        return network
    try:
        truth = build_network(tn.spec, tn.seed)
    except ValueError as exc:
        raise ConfigError(f"twin.network.spec: {exc}") from None
    k = network.n_pop
    same = truth.pop_names[:k] == network.pop_names and np.array_equal(
        truth.pop_ptr[: k + 1], network.pop_ptr
    )
    if not same or not np.array_equal(truth.excitatory[: network.n], network.excitatory):
        raise ConfigError(
            "twin.network: its populations must start with the members' "
            f"({', '.join(network.pop_names)}), same sizes and types"
        )
    if not np.isin(network.recorded, truth.recorded).all():
        raise ConfigError("twin.network: it must record every neuron the members' network records")
    return truth
