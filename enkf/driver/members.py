"""The forecast task: what a Dask worker does for a group of members in one cycle.

A task reads its members' states from the run's checkpoint folder, advances them over the
window with their parameters, applies the forward operator at the observation times,
writes the new states, and returns only the predicted observations and small summaries.
It is a pure function of its inputs and the files it reads: a task that is run twice (a
retry, a worker lost mid-task, a resumed run) writes the same files and returns the same
numbers, bit for bit.

Member states live one file per member (``checkpoint/slot{0,1}/m00042.state``): the model
state (:class:`model.MemberState` of one member) and the operator's state. Cycle k reads
slot k mod 2 and writes slot (k+1) mod 2, so the input of a cycle is never touched while
it runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enkf.driver.observe import ObsModel
from model import MemberParams, MemberState, Network, advance, initial_state
from observations.operators import CalciumState


@dataclass(frozen=True)
class ForecastJob:
    """One task: a group of members over one window (everything small; the network and
    the ObsModel travel separately, once per worker).

    Attributes
    ----------
    cycle : int
    members : (m,) int64
        Member ids of the group.
    params : MemberParams
        Their parameters (first axis = ``members``).
    t0_s, t1_s : float
        The members run over (t0_s, t1_s].
    frames_s : (n_frames,) float64
        Observation times in the window.
    valid : (n_frames, n_obs_neurons) bool or None
        Non-NaN data frames (window means average over them only).
    rate_t0_s : float
        Population rates are averaged over (rate_t0_s, t1_s] (the observed part of the window).
    read_slot, write_slot : str or None
        Folders of the input and output states; read_slot None: the initial state.
    n_members : int
        Ensemble size (the initial state of member m is drawn from the ensemble's seed).
    init_seed, drive_seed : int
        Seeds of the initial membrane potentials and of the random drive (combined with
        the member id inside :func:`model.advance`).
    statistics : tuple
        The estimators' statistics each member accumulates over the windows from its
        observed neurons' spikes, in its state file (:mod:`enkf.driver.statistics`:
        ``LinkStatistic``, ``TripletStatistic``).
    return_statistics : tuple of str
        Names of the statistics whose accumulated sums the task returns (those that this
        cycle assimilates).
    """

    cycle: int
    members: np.ndarray
    params: MemberParams
    t0_s: float
    t1_s: float
    frames_s: np.ndarray
    valid: np.ndarray | None
    rate_t0_s: float
    read_slot: str | None
    write_slot: str
    n_members: int
    init_seed: int
    drive_seed: int
    statistics: tuple = ()
    return_statistics: tuple = ()


def member_path(slot: str | Path, member: int) -> Path:
    return Path(slot) / f"m{int(member):05d}.state"


_MAGIC = b"SPKDAMS1"
# The spike ring buffers are (D, n) per member and mostly empty: they are kept as their
# non-zero entries (flat index, value), which is exact and a quarter of the bytes.
_SPARSE = ("buf_e", "buf_i")


def save_member(path: Path, state: MemberState, op_state, stats: dict | None = None) -> None:
    """Write one member's model and operator state atomically (temporary file + rename),
    and the arrays of its accumulated statistics (``stats``: name → arrays, see
    :mod:`enkf.driver.statistics`), if any.

    The file is raw bytes: a magic number, a JSON header (name → dtype, shape, offset) and
    the arrays one after the other — no archive to parse (np.savez's zip costs ~1 ms a
    member to read, which 100 members a cycle notice).
    """
    arrays = {}
    for k in MemberState.ARRAYS:
        a = getattr(state, k)[0]
        if k in _SPARSE:
            flat = a.reshape(-1)
            nz = np.flatnonzero(flat)
            arrays[k + ".shape"] = np.array(a.shape, np.int64)
            arrays[k + ".index"] = nz.astype(np.int64)
            arrays[k + ".value"] = flat[nz]
        else:
            arrays[k] = a
    arrays["step"] = np.array(state.step, np.int64)
    arrays["fingerprint"] = np.frombuffer(state.fingerprint.encode(), np.uint8)
    if isinstance(op_state, CalciumState):
        for f in dataclasses.fields(CalciumState):
            arrays["ca_" + f.name] = np.asarray(getattr(op_state, f.name))
    elif op_state is not None:
        arrays["counts"] = np.asarray(op_state)
    for stat, named in (stats or {}).items():
        for name, a in named.items():
            arrays[f"{stat}.{name}"] = a
    header, offset = {}, 0
    for name, a in arrays.items():
        a = np.asarray(a)
        a = a if a.flags.c_contiguous else a.copy()  # (ascontiguousarray makes 0-d 1-d)
        arrays[name] = a
        header[name] = [a.dtype.str, list(a.shape), offset]
        offset += a.nbytes
    head = json.dumps(header).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as fh:
        fh.write(_MAGIC + len(head).to_bytes(8, "little") + head)
        for a in arrays.values():
            fh.write(a.data)
    os.replace(tmp, path)


def _read(path: Path) -> dict:
    raw = path.read_bytes()
    if raw[:8] != _MAGIC:
        raise ValueError(f"{path}: not a spikeda member state")
    n = int.from_bytes(raw[8:16], "little")
    header = json.loads(raw[16 : 16 + n])
    base = 16 + n
    out = {}
    for name, (dtype, shape, offset) in header.items():
        dt = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        out[name] = np.frombuffer(raw, dt, count, base + offset).reshape(shape).copy()
    return out


def load_member(path: Path, stats: bool = False) -> tuple:
    """The (1-member MemberState, operator state) that :func:`save_member` wrote; with
    ``stats``, also its accumulated statistics (name → arrays; empty if none were saved)."""
    z = _read(path)
    kw = {}
    for k in MemberState.ARRAYS:
        if k in _SPARSE:
            a = np.zeros(int(np.prod(z[k + ".shape"])), z[k + ".value"].dtype)
            a[z[k + ".index"]] = z[k + ".value"]
            kw[k] = a.reshape(z[k + ".shape"])[None]
        else:
            kw[k] = z[k][None]
    state = MemberState(step=int(z["step"]), fingerprint=z["fingerprint"].tobytes().decode(), **kw)
    if "ca_t_s" in z:
        op = CalciumState(**{
            f.name: float(z["ca_" + f.name]) if z["ca_" + f.name].ndim == 0 else z["ca_" + f.name]
            for f in dataclasses.fields(CalciumState)
        })  # fmt: skip
    elif "counts" in z:
        op = z["counts"]
    else:
        op = None
    if stats:
        named = {}
        for key, a in z.items():
            stat, dot, name = key.partition(".")
            if dot and stat not in _SPARSE:
                named.setdefault(stat, {})[name] = a
        return state, op, named
    return state, op


def forecast(job: ForecastJob, network: Network, obs: ObsModel | None) -> dict:
    """Run one task (see the module docstring).

    Returns
    -------
    dict with
        members (m,) int64; hx (m, n_obs) float64 predicted observations (empty without
        observations); trace (m, n_frames, n_trace) float64 the operator's frames of the
        trace neurons; rate_hz (m, n_pop) float64 mean population rates over
        (rate_t0_s, t1_s]; finite (m,) bool; v_obs (m, n_obs_neurons) membrane potentials
        of the observed neurons at t1 (mV); compute_s, io_s (wall time of advance and
        operator, and of reading/writing states, s); worker (host:pid).
    """
    import numba

    numba.set_num_threads(1)  # one worker process per core: no threads inside a task
    t_start = time.perf_counter()
    m = job.members.size
    if job.read_slot is None:
        state = initial_state(network, job.n_members, job.init_seed).select(job.members)
        # Members start at the first window's start (t = 0 unless the run has a spin-up).
        state = dataclasses.replace(state, step=int(round(job.t0_s / network.dt_s)))
        op_states = [obs.initial_state() if obs else None for _ in range(m)]
    else:
        loaded = [load_member(member_path(job.read_slot, i), stats=True) for i in job.members]
        state = MemberState.concat([s for s, _, _ in loaded])
        op_states = [o for _, o, _ in loaded]
    stat_arrays = [{} if job.read_slot is None else loaded[i][2] for i in range(m)]
    io_s = time.perf_counter() - t_start

    t_c = time.perf_counter()
    state, rec = advance(network, job.params, state, job.t0_s, job.t1_s, job.drive_seed)
    n_frames = job.frames_s.size
    n_trace = obs.trace.size if obs else 0
    hx, trace, new_ops = [], np.full((m, n_frames, n_trace), np.nan), []
    for i in range(m):
        if obs is None:
            new_ops.append(None)
            continue
        times, neurons = rec.member(i)
        spikes = obs.spikes(times, neurons, job.t0_s, job.t1_s)
        h, frames, op = obs.predict(spikes, op_states[i], job.frames_s, job.valid)
        hx.append(h)
        trace[i] = frames[:, obs.trace]
        new_ops.append(op)
        for stat in job.statistics:
            stat_arrays[i][stat.name] = stat.accumulate(stat_arrays[i].get(stat.name, {}), spikes)
    hx = np.array(hx) if hx else np.empty((m, 0))
    bin_s = rec.rate_bin_s
    first_bin = int(round((job.rate_t0_s - job.t0_s) / bin_s))
    rates = rec.rates_hz[:, first_bin:, :].mean(axis=1)
    finite = np.isfinite(state.v_mv).all(axis=1) & np.isfinite(hx).all(axis=1)
    v_obs = state.v_mv[:, obs.neurons] if obs else np.empty((m, 0))
    compute_s = time.perf_counter() - t_c

    t_w = time.perf_counter()
    Path(job.write_slot).mkdir(parents=True, exist_ok=True)
    for i, member in enumerate(job.members):
        save_member(member_path(job.write_slot, member), state.select([i]), new_ops[i], stat_arrays[i])
    io_s += time.perf_counter() - t_w
    # name → (m,) each member's accumulated sums of the statistics assimilated this cycle
    returned = {
        stat.name: [stat.summary(a[stat.name]) for a in stat_arrays]
        for stat in job.statistics if stat.name in job.return_statistics
    }  # fmt: skip
    return {
        "statistics": returned,
        "members": job.members,
        "hx": hx,
        "trace": trace,
        "rate_hz": rates,
        "finite": finite,
        "v_obs": v_obs,
        "compute_s": compute_s,
        "io_s": io_s,
        "worker": f"{os.uname().nodename}:{os.getpid()}",
    }


def clip_membrane(v_mv: np.ndarray, neurons: np.ndarray, network: Network) -> np.ndarray:
    """Membrane potentials (…, n_neurons) of ``neurons`` kept in [V_reset, V_th), the range
    the model's threshold logic assumes (an analysis can leave it)."""
    lo = network.neuron["v_reset_mv"][neurons]
    hi = np.nextafter(network.neuron["v_th_mv"][neurons], -np.inf)
    return np.clip(v_mv, lo, hi)


def set_membrane(slot: str, member: int, neurons: np.ndarray, v_mv: np.ndarray) -> None:
    """Replace the membrane potential of some neurons in a member's saved state (the
    analysis of per-neuron states, already clipped); refractory neurons keep theirs (the
    model holds them at V_reset until the refractory period ends)."""
    path = member_path(slot, member)
    state, op, stats = load_member(path, stats=True)
    v = state.v_mv.copy()
    free = state.refractory[0, neurons] == 0
    v[0, neurons[free]] = v_mv[free]
    save_member(path, dataclasses.replace(state, v_mv=v), op, stats)
