"""``spikeda simulate``: run a network spec and write its recorded spikes as an observation store.

This is where a model meets the observation store (``model`` and ``observations`` do not
import each other), e.g. to make the synthetic recording of a twin experiment.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from model import advance, build_network, default_params, initial_state, load_spec
from observations import SpikeTrains, write_store

# Simulated time per call of advance: long enough to amortise the call, short enough for
# the progress bar to move. advance is exactly restartable, so chunking changes nothing.
CHUNK_S = 0.5
PROGRESS_AFTER_S = 2.0


@dataclass
class SimulationSummary:
    name: str
    n_neurons: int
    n_synapses: int
    members: int
    duration_s: float
    build_s: float
    run_s: float
    rates_hz: dict
    n_spikes: int
    n_units: int
    out: Path

    def line(self) -> str:
        rates = ", ".join(f"{k} {v:.2f} Hz" for k, v in self.rates_hz.items())
        return (
            f"simulated {self.name}: {self.n_neurons} neurons, {self.n_synapses} synapses, "
            f"{self.members} member(s) x {self.duration_s:g} s in {self.run_s:.2f} s "
            f"(build {self.build_s:.2f} s); {rates}; {self.n_spikes} spikes of {self.n_units} "
            f"units -> {self.out}"
        )


def _progress(done_s: float, total_s: float, elapsed: float, stream) -> None:
    width = 30
    filled = int(width * done_s / total_s)
    stream.write(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {100 * done_s / total_s:5.1f}% "
        f"{done_s:g}/{total_s:g} s simulated, {elapsed:.1f} s elapsed"
    )
    stream.flush()


def record(network, params, state, n_steps: int, seed, progress=None):
    """Advance ``state`` by ``n_steps`` steps in chunks of about CHUNK_S, keeping every
    recorded spike.

    Returns
    -------
    state : MemberState
        At the end.
    times_s, neurons : list of (n_spikes_m,) arrays, one per member
        Spike times (s) and neuron indices of the recorded neurons.
    rates_hz : (M, n_bins, n_pop) float64
        Population rates in bins of the spec's rate_bin_ms.
    run_s : float
        Wall time (s).
    """
    net = network
    spec = net.spec
    members = state.n_members
    bin_steps = max(int(round(spec.rate_bin_ms / spec.dt_ms)), 1)
    chunk_steps = max(int(round(CHUNK_S / net.dt_s)) // bin_steps, 1) * bin_steps
    times = [[] for _ in range(members)]
    neurons = [[] for _ in range(members)]
    rates = []
    start = time.perf_counter()
    shown = False
    done = 0
    step0 = state.step
    duration_s = n_steps * net.dt_s
    while done < n_steps:
        steps = min(chunk_steps, n_steps - done)
        t_a, t_b = (step0 + done) * net.dt_s, (step0 + done + steps) * net.dt_s
        state, rec = advance(net, params, state, t_a, t_b, seed)
        for m in range(members):
            t, n = rec.member(m)
            times[m].append(t)
            neurons[m].append(n)
        rates.append(rec.rates_hz)
        done += steps
        elapsed = time.perf_counter() - start
        if progress is not None and (shown or elapsed > PROGRESS_AFTER_S) and done < n_steps:
            _progress(done * net.dt_s, duration_s, elapsed, progress)
            shown = True
    run_s = time.perf_counter() - start
    if shown:
        _progress(duration_s, duration_s, run_s, progress)
        progress.write("\n")
    times = [np.concatenate(t) if t else np.empty(0) for t in times]
    neurons = [np.concatenate(n) if n else np.empty(0, np.int64) for n in neurons]
    rate = np.concatenate(rates, axis=1) if rates else np.empty((members, 0, net.n_pop))
    return state, times, neurons, rate, run_s


def simulate(
    spec_path, duration_s: float, out, members: int = 1, seed: int = 0, progress=sys.stderr
) -> SimulationSummary:
    """Simulate ``members`` members of the network in ``spec_path`` for ``duration_s``.

    Writes an observation store at ``out`` whose units are the recorded neurons of every
    member (unit id = member · n_neurons + neuron, with ``units/member`` and
    ``units/neuron``), the population rates in ``rates/rate_hz`` (member, time, population)
    and, in its attrs, the spec, the seed, the wall times and the mean rates.
    """
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out}: exists already; choose a new output path")
    if not duration_s > 0:
        raise ValueError(f"--duration-s must be > 0, got {duration_s}")
    if members < 1:
        raise ValueError(f"--members must be ≥ 1, got {members}")
    spec = load_spec(spec_path)
    t0 = time.perf_counter()
    net = build_network(spec, seed)
    build_s = time.perf_counter() - t0
    n_steps = int(round(duration_s / net.dt_s))
    if abs(n_steps * net.dt_s - duration_s) > 1e-9:
        raise ValueError(
            f"--duration-s {duration_s} is not a whole number of steps of {net.dt_s} s"
        )
    state = initial_state(net, members, seed)
    params = default_params(net, members)
    _, times, neurons, rate, run_s = record(net, params, state, n_steps, seed, progress)
    bin_steps = max(int(round(spec.rate_bin_ms / spec.dt_ms)), 1)

    rec_neurons = net.recorded
    unit_ids = (np.arange(members)[:, None] * net.n + rec_neurons[None, :]).reshape(-1)
    all_t = np.concatenate(times)
    all_ids = np.concatenate([m * net.n + n for m, n in enumerate(neurons)])
    spikes = SpikeTrains.from_pairs(all_t, all_ids, 0.0, n_steps * net.dt_s, unit_ids=unit_ids)
    mean = {name: float(rate[:, :, k].mean()) for k, name in enumerate(net.pop_names)}
    pop = np.asarray(net.pop_names)[net.pop_of[rec_neurons]]
    xy = net.positions_um[rec_neurons]
    units = {
        "member": np.repeat(np.arange(members), rec_neurons.size),
        "neuron": np.tile(rec_neurons, members),
        "population": np.tile(pop, members),
        "cell_type": np.tile(np.where(net.excitatory[rec_neurons], "E", "I"), members),
        "position_um": np.tile(np.column_stack([xy, np.zeros(len(xy))]), (members, 1)),
    }
    write_store(
        out,
        spikes=spikes,
        units=units,
        arrays={"rates/rate_hz": (rate, {"dims": ["member", "time", "population"],
                                         "populations": list(net.pop_names), "bin_s": bin_steps * net.dt_s})},
        attrs={
            "network": net.spec.name,
            "spec_yaml": yaml.safe_dump(net.spec.model_dump(mode="json"), sort_keys=False),
            "network_fingerprint": net.fingerprint,
            "seed": int(seed),
            "members": int(members),
            "duration_s": n_steps * net.dt_s,
            "dt_s": net.dt_s,
            "wall_s": run_s,
            "build_s": build_s,
            "mean_rate_hz": mean,
        },
        source=f"spikeda simulate {spec_path}",
    )  # fmt: skip
    return SimulationSummary(net.spec.name, net.n, net.n_synapses, members, n_steps * net.dt_s,
                             build_s, run_s, mean, spikes.n_spikes, spikes.n_units, out)  # fmt: skip
