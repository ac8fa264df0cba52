"""Observations of a run: what the store holds, which model neurons it sees, and how a
member's spikes become the same quantities.

:class:`ObsModel` is the small, picklable part the forecast tasks use (the operator, the
observed model neurons, the reduction); :class:`ObservationPlan` is the driver's part:
windows, the observed values y and their error variances R, read from the store cycle by
cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import zarr

from enkf.config import ConfigError
from enkf.run_config import AssimilationSection, ObservationsSection
from model import Network
from model.network import csr_rows
from observations import SpikeTrains, StoreError, open_store
from observations.operators import CalciumOperator, SpikeCountOperator, noise_level_nu

# Frames read at once when scanning the store for NaN values (one time chunk × 4).
_SCAN_FRAMES = 4096
# Frames used to estimate the calcium noise level ν when the config says 'estimate'.
_NU_FRAMES = 3000


@dataclass(frozen=True)
class ObsModel:
    """What a forecast task needs to turn a member's spikes into predicted observations.

    Attributes
    ----------
    operator : CalciumOperator or SpikeCountOperator
    neurons : (n_obs_neurons,) int64
        Model neurons observed, in the order of the observations.
    position : (n_neurons,) int64
        position[j] = index of model neuron j among ``neurons``, −1 if not observed.
    reduce : "population_mean", "window_mean" or "none"
    group : (n_obs_neurons,) int64
        Population (group) of each observed neuron, for the population reductions.
    n_groups : int
    design : (n_obs_neurons, n_reg) float64
        Regressors of each neuron for population_mean ([1]) and indegree ([1, z_1, …]).
    trace : (n_trace,) int64
        Positions (into ``neurons``) of the neurons whose frames are returned as traces.
    """

    operator: CalciumOperator | SpikeCountOperator
    neurons: np.ndarray
    position: np.ndarray
    reduce: str
    group: np.ndarray
    n_groups: int
    design: np.ndarray
    trace: np.ndarray

    @property
    def kind(self) -> str:
        return "calcium" if isinstance(self.operator, CalciumOperator) else "spike_counts"

    def initial_state(self):
        return self.operator.initial_state(self.neurons.size)

    def spikes(self, times_s, neurons, t0_s: float, t1_s: float) -> SpikeTrains:
        """The observed neurons' spikes out of a member's recorded (times, neurons)."""
        pos = self.position[neurons]
        keep = pos >= 0
        return SpikeTrains.from_pairs(
            times_s[keep], pos[keep], t0_s, t1_s, unit_ids=np.arange(self.neurons.size)
        )

    def predict(self, spikes: SpikeTrains, state, frames_s: np.ndarray, valid=None):
        """Predicted observations over one window.

        Parameters
        ----------
        spikes : SpikeTrains
            The observed neurons' spikes in (t0, t1] (from :meth:`spikes`).
        state :
            The operator's state at t0.
        frames_s : (n_frames,) float64
            Frame times (calcium) or bin ends (counts) in the window that are observed.
        valid : (n_frames, n_obs_neurons) bool, optional
            Frames that are not NaN in the data; a window mean averages over these only.

        Returns
        -------
        hx : (n_obs,) float64
            population_mean: one value per population (the mean of its neurons' window
            means); window_mean: one value per neuron; none: frames × neurons, frame-major.
        frames : (n_frames, n_obs_neurons) float64
            The operator's values at every frame.
        state :
            The operator's state at t1.
        """
        if isinstance(self.operator, CalciumOperator):
            values, state = self.operator.predict(spikes, state, frames_s)
        else:
            values, state = self.operator.predict(spikes, state)
            ends = self.operator.bin_ends(spikes.t_start_s, spikes.t_stop_s)
            values = values[np.searchsorted(ends, frames_s - 1e-9)]
        return self.reduce_frames(values, valid), values, state

    def reduce_frames(self, values: np.ndarray, valid) -> np.ndarray:
        """(n_frames, n_obs_neurons) → the observation vector (see :meth:`predict`)."""
        if self.reduce == "none":
            return values.reshape(-1)
        per = _window_means(values, valid)
        if self.reduce == "window_mean":
            return per
        return self.regress(per)[0]

    def regress(self, per: np.ndarray, var=None):
        """Least-squares coefficients of the neurons' window means on the design, group by
        group (NaN neurons left out): population_mean gives each population's mean,
        indegree adds the slopes on the in-degree regressors.

        Returns (coef (n_groups · n_reg,), var_coef) where var_coef is the variance of each
        coefficient for independent neuron errors of variance ``var`` (or None).
        """
        n_reg = self.design.shape[1]
        coef = np.full(self.n_groups * n_reg, np.nan)
        vc = np.full(coef.size, np.nan) if var is not None else None
        ok = np.isfinite(per)
        for g in range(self.n_groups):
            rows = np.flatnonzero((self.group == g) & ok)
            if rows.size < n_reg:
                continue
            B = np.linalg.pinv(self.design[rows])  # (n_reg, rows)
            coef[g * n_reg : (g + 1) * n_reg] = B @ per[rows]
            if var is not None:
                vc[g * n_reg : (g + 1) * n_reg] = (B**2) @ var[rows]
        return coef, vc


@dataclass(frozen=True)
class Window:
    """One assimilation cycle: the members run over (t0_s, t1_s]; the observations are the
    frames (bin ends) in (obs_t0_s, t1_s] (obs_t0_s > t0_s only in cycle 0, after spin-up)."""

    cycle: int
    t0_s: float
    obs_t0_s: float
    t1_s: float
    frames: slice
    """Positions of the window's frames among all frames of the store (or bins)."""


class ObservationPlan:
    """The observations of a run, checked against the network and the assimilation settings.

    Every check runs here, before anything is written: the store's layout, the neuron map
    (inside the network, recorded by the spec), the windows (covered by the data, each with
    frames), NaN frames (by ``nan_policy``).

    Attributes
    ----------
    model : ObsModel
    windows : list of Window
    store_ids : (n_obs_neurons,) int64
        The store's neuron (unit) id of each observed neuron.
    frame_var : float
        Error variance of one frame (bin).
    nu : float or None
        The calcium noise level used (given or estimated).
    """

    def __init__(
        self, cfg: ObservationsSection, asm: AssimilationSection, network: Network, store_path
    ):
        self.cfg = cfg
        self.path = store_path
        try:
            self.store = open_store(store_path)
        except StoreError as exc:
            raise ConfigError(f"observations.store: {exc}") from None
        op = cfg.operator
        if op.kind == "calcium":
            if not self.store.has_calcium:
                raise ConfigError(
                    f"observations.store: {store_path} has no calcium/ for operator calcium"
                )
            root = zarr.open_group(self.store.path, mode="r")
            self._dff = root["calcium/dff"]
            self.times = root["calcium/time"][...]
            ids = root["calcium/neuron"][...]
            self.rate_hz = float(self.store.calcium_attrs["frame_rate_hz"])
        else:
            if self.store.spikes is None:
                raise ConfigError(
                    f"observations.store: {store_path} has no spikes/ for operator spike_counts"
                )
            ids = self.store.spikes.unit_ids
        store_cols, neurons = self._map(ids, network)
        self.store_ids = ids[store_cols]
        self._cols = store_cols
        self.windows = self._windows(asm, op)
        first = self.windows[0].frames.start
        last = self.windows[-1].frames.stop
        if op.kind == "calcium":
            self._nan = self._scan_nan(first, last)
            nu = op.noise_nu
            if nu == "estimate":
                block = self._read(first, min(last, first + _NU_FRAMES))
                nu = float(np.nanmedian(noise_level_nu(block, self.rate_hz)))
                if not (math.isfinite(nu) and nu > 0):
                    raise ConfigError(
                        f"observations.operator.noise_nu: cannot estimate ν from {store_path} "
                        f"(got {nu}); give it in the config"
                    )
            self.nu = nu
            kw = {
                k: v
                for k, v in op.model_dump().items()
                if k not in ("kind", "noise_nu") and v is not None
            }
            try:
                operator = CalciumOperator(frame_rate_hz=self.rate_hz, noise_nu=nu, **kw)
            except ValueError as exc:
                raise ConfigError(f"observations.operator: {exc}") from None
            self.frame_var = operator.noise_sd() ** 2
        else:
            self._nan = None
            self.nu = None
            operator = SpikeCountOperator(bin_s=op.bin_s, transform=op.transform)
            self.frame_var = float(operator.R())
            spikes = self.store.spikes.select(store_cols)
            t_end = self.windows[-1].t1_s
            values, _ = operator.predict(
                spikes.between(spikes.t_start_s, t_end), operator.initial_state(spikes.n_units)
            )
            self._counts = values
        if cfg.error_var != "auto":
            self.frame_var = float(cfg.error_var)
        n_obs = neurons.size
        k = min(cfg.trace_neurons, n_obs)
        trace = (
            np.unique(np.linspace(0, n_obs - 1, k).round().astype(np.int64))
            if k
            else np.empty(0, np.int64)
        )
        position = np.full(network.n, -1, np.int64)
        position[neurons] = np.arange(n_obs)
        pops = network.pop_of[neurons].astype(np.int64)
        self.groups = [network.pop_names[k] for k in np.unique(pops)]
        group = np.searchsorted(np.unique(pops), pops)
        design, regressors = _design(network, neurons, group, cfg.reduce)
        self.model = ObsModel(
            operator, neurons, position, cfg.reduce, group, len(self.groups), design, trace
        )
        if cfg.reduce in ("population_mean", "indegree"):
            self.obs_population = np.repeat(np.array(self.groups, dtype=object), len(regressors))
            self.obs_regressor = np.tile(np.array(regressors, dtype=object), len(self.groups))
        else:
            self.obs_population = np.asarray(network.pop_names, dtype=object)[pops]
            self.obs_regressor = np.full(neurons.size, "", dtype=object)
        frames_per = [w.frames.stop - w.frames.start for w in self.windows]
        if cfg.reduce == "none" and len(set(frames_per)) > 1:
            raise ConfigError(
                f"observations.reduce none needs the same number of frames in every window; "
                f"windows hold {min(frames_per)}–{max(frames_per)} (use window_mean, or a window_s "
                f"that is a multiple of the frame interval)"
            )
        self.max_frames = max(frames_per)
        self.n_obs = (
            n_obs * frames_per[0] if cfg.reduce == "none"
            else n_obs if cfg.reduce == "window_mean"
            else len(self.groups) * design.shape[1]
        )  # fmt: skip

    # -- checks ---------------------------------------------------------------------------------
    def _map(self, ids: np.ndarray, network: Network):
        """Store columns and model neurons of the observed neurons."""
        nm = self.cfg.neuron_map
        if nm == "identity":
            cols = np.arange(ids.size)
            neurons = ids.astype(np.int64)
            bad = np.flatnonzero((neurons < 0) | (neurons >= network.n))
            if bad.size:
                raise ConfigError(
                    f"observations.neuron_map: identity maps store neuron id {ids[bad[0]]} to model "
                    f"neuron {ids[bad[0]]}, but the network has neurons 0–{network.n - 1}"
                )
            where = lambda k: f"store neuron id {ids[k]}"  # noqa: E731
        else:
            index = {int(u): k for k, u in enumerate(ids)}
            cols, neurons = [], []
            for k, (sid, mid) in enumerate(zip(nm.store, nm.model, strict=True)):
                if sid not in index:
                    raise ConfigError(
                        f"observations.neuron_map.store[{k}]: id {sid} is not in {self.path}"
                    )
                if mid >= network.n:
                    raise ConfigError(
                        f"observations.neuron_map.model[{k}]: neuron {mid} is outside the network "
                        f"(neurons 0–{network.n - 1})"
                    )
                cols.append(index[sid])
                neurons.append(mid)
            cols, neurons = np.array(cols, np.int64), np.array(neurons, np.int64)
            where = lambda k: f"neuron_map.model[{k}]"  # noqa: E731
        recorded = np.zeros(network.n, bool)
        recorded[network.recorded] = True
        bad = np.flatnonzero(~recorded[neurons])
        if bad.size:
            raise ConfigError(
                f"observations.neuron_map: {where(bad[0])} is model neuron {neurons[bad[0]]}, which "
                f"the network spec does not record (populations[].record)"
            )
        return cols, neurons

    def _windows(self, asm: AssimilationSection, op) -> list[Window]:
        if op.kind == "calcium":
            times = self.times
        else:
            sp = self.store.spikes
            times = SpikeCountOperator(bin_s=op.bin_s).bin_ends(sp.t_start_s, sp.t_stop_s)
            self.times = times
        if times.size == 0:
            raise ConfigError(f"observations.store: {self.path} holds no frames (bins)")
        end = float(times[-1])
        w, start = asm.window_s, asm.start_s
        first = start - (asm.spinup_s if asm.spinup_s is not None else start)
        available = int(math.floor((end - start) / w + 1e-9))
        n = asm.cycles if asm.cycles is not None else available
        if n < 1 or n > available:
            need = start + max(n, 1) * w
            raise ConfigError(
                f"assimilation: {max(n, 1)} cycle(s) of {w} s from {start} s need observations until "
                f"{need:g} s, but {self.path} ends at {end:g} s"
            )
        out = []
        for k in range(n):
            t0 = start + k * w
            t1 = t0 + w
            a = int(np.searchsorted(times, t0 + 1e-9, "left"))
            b = int(np.searchsorted(times, t1 + 1e-9, "left"))
            if b == a:
                raise ConfigError(
                    f"assimilation.window_s: window {k} ({t0:g}, {t1:g}] s holds no frame of {self.path}"
                )
            out.append(Window(k, first if k == 0 else t0, t0, t1, slice(a, b)))
        return out

    def _read(self, a: int, b: int) -> np.ndarray:
        """ΔF/F of the observed neurons, frames a … b−1: (b − a, n_obs_neurons) float64."""
        block = self._dff[a:b]
        return np.asarray(block[:, self._cols], dtype=np.float64)

    def _scan_nan(self, first: int, last: int):
        """Frames with NaN among those the run uses: error or the mask, by nan_policy."""
        masks = []
        count = 0
        for a in range(first, last, _SCAN_FRAMES):
            b = min(last, a + _SCAN_FRAMES)
            nan = np.isnan(self._read(a, b))
            if nan.any() and self.cfg.nan_policy == "error":
                f, j = np.argwhere(nan)[0]
                n_bad = int(nan.any(axis=1).sum()) + count
                raise ConfigError(
                    f"observations.store: {self.path}: calcium/dff is NaN at frame {a + f} "
                    f"(t = {self.times[a + f]:g} s), neuron id {self.store_ids_at(j)}; at least {n_bad} "
                    f"frame(s) of the run have NaN (set observations.nan_policy: mask to leave them out)"
                )
            count += int(nan.any(axis=1).sum())
            masks.append(nan)
        self.nan_frames = count
        return np.concatenate(masks) if count else None

    def store_ids_at(self, j: int) -> int:
        return int(self.store_ids[j]) if hasattr(self, "store_ids") else j

    # -- per cycle ------------------------------------------------------------------------------
    def frames(self, w: Window) -> np.ndarray:
        return self.times[w.frames]

    def valid(self, w: Window):
        """(n_frames, n_obs_neurons) bool of non-NaN data, or None when all are valid."""
        if self._nan is None:
            return None
        first = self.windows[0].frames.start
        nan = self._nan[w.frames.start - first : w.frames.stop - first]
        return None if not nan.any() else ~nan

    def data(self, w: Window) -> np.ndarray:
        """The window's frames of the observed neurons: (n_frames, n_obs_neurons) float64."""
        if self.model.kind == "calcium":
            return self._read(w.frames.start, w.frames.stop)
        return self._counts[w.frames]

    def y(self, w: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Observations of a window: y (n_obs,) with NaN where masked, their error
        variances (n_obs,), and their times (n_obs,) in s (window means: mean frame time)."""
        frames = self.data(w)
        valid = self.valid(w)
        y = self.model.reduce_frames(frames, valid)
        t = self.frames(w)
        if self.cfg.reduce == "none":
            var = np.full(y.size, self.frame_var)
            times = np.repeat(t, self.model.neurons.size)
        else:
            n = np.full(self.model.neurons.size, t.size) if valid is None else valid.sum(axis=0)
            with np.errstate(divide="ignore"):
                var = np.where(n > 0, self.frame_var / np.maximum(n, 1), np.nan)
            if self.cfg.reduce in ("population_mean", "indegree"):
                per = _window_means(frames, valid)
                _, var = self.model.regress(per, var)
            times = np.full(y.size, t.mean())
        return y, var, times

    def fingerprint(self) -> dict:
        """What identifies the store's data for a resume: path, creation stamp, sizes."""
        return {
            "path": str(self.path),
            "created": self.store.attrs.get("created"),
            "frames": int(self.times.size),
            "neurons": int(self.store_ids.size),
        }


def _window_means(values: np.ndarray, valid) -> np.ndarray:
    """Mean of each neuron's valid frames, NaN where none is valid: (n_obs_neurons,)."""
    if valid is None:
        return values.mean(axis=0)
    n = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(valid, values, 0.0).sum(axis=0) / n, np.nan)


def _design(network: Network, neurons: np.ndarray, group: np.ndarray, how: str):
    """Regressors of each observed neuron for the population reductions, and their names.

    indegree: besides the intercept, one regressor per presynaptic population X: the
    neuron's summed base weight from X, relative to its group's mean, minus 1 (0 for a
    neuron with the group's mean input from X). A neuron's rate grows with its input from
    E and falls with its input from I, by amounts the weight scales set, so the slopes
    separate the scales that the population means confound.
    """
    ones = np.ones((neurons.size, 1))
    if how != "indegree":
        return ones, ["mean"]
    pre = csr_rows(network.syn_ptr)
    W = np.zeros((network.n, network.n_pop))
    np.add.at(W, (network.syn_post, network.pop_of[pre]), network.syn_weight.astype(np.float64))
    X = W[neurons]
    Z = np.empty_like(X)
    for g in np.unique(group):
        rows = group == g
        mean = X[rows].mean(axis=0)
        Z[rows] = np.where(mean > 0, X[rows] / np.where(mean > 0, mean, 1.0) - 1.0, 0.0)
    keep = [k for k in range(network.n_pop) if np.ptp(Z[:, k]) > 0]
    names = ["mean"] + [f"slope_{network.pop_names[k]}" for k in keep]
    return np.column_stack([ones, Z[:, keep]]), names
