"""Ingestion of the formats labs produce, each into a new observation store.

    >>> from observations.ingest import ingest
    >>> ingest("suite2p", "session1/suite2p", "session1.zarr", baseline_window_s=60).line()

One module per format — :mod:`.suite2p` (suite2p output folders), :mod:`.phy`
(phy/Kilosort folders), :mod:`.nwb` (NWB files through pynwb, an optional extra),
:mod:`.plain` (npz and CSV). Every ingester

* opens the source read-only (``np.load(..., mmap_mode="r")`` wherever the format allows)
  and never writes to it, error paths included;
* works block by block, so memory is bounded by a block of neurons or frames (spike
  times are the exception: a store's spike trains are built in memory, 16 bytes a spike);
* writes through :class:`observations.store.StoreWriter`, so a failure leaves no store;
* reports bad input as one :class:`IngestError` (a ``ValueError``) naming the file and the
  index, row or cluster, or as the store's own :class:`~observations.store.StoreError`.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KINDS = ("suite2p", "phy", "nwb", "npz", "csv")

# kind → (module, function); modules are imported on use so that the optional pynwb is
# only needed for NWB, and so that the submodules can import the helpers below.
_ENTRY = {
    "suite2p": ("suite2p", "ingest_suite2p"),
    "phy": ("phy", "ingest_phy"),
    "nwb": ("nwb", "ingest_nwb"),
    "npz": ("plain", "ingest_npz"),
    "csv": ("plain", "ingest_csv"),
}


class IngestError(ValueError):
    """A source that cannot be ingested; the message names the file and the index or row."""


@dataclass(frozen=True)
class IngestSummary:
    """What an ingester wrote.

    Attributes
    ----------
    kind, src, out
        The format, the source read and the store written.
    n_units, n_spikes : int
        Spike trains written (``spikes/``); 0 when the source has none.
    n_neurons, n_frames : int
        Calcium written (``calcium/dff`` is n_frames × n_neurons); 0 when none.
    frame_rate_hz : float or None
        Frame rate of the calcium.
    wall_s : float
        Wall-clock time of the ingestion, s.
    notes : tuple of str
        What the ingester inferred or assumed (where the frame rate came from, ...).
    """

    kind: str
    src: Path
    out: Path
    n_units: int = 0
    n_spikes: int = 0
    n_neurons: int = 0
    n_frames: int = 0
    frame_rate_hz: float | None = None
    wall_s: float = 0.0
    notes: tuple[str, ...] = ()

    def line(self) -> str:
        """One line for a terminal."""
        parts = []
        if self.n_neurons:
            parts.append(
                f"{self.n_neurons} neurons × {self.n_frames} frames at {self.frame_rate_hz:g} Hz"
            )
        if self.n_units:
            parts.append(f"{self.n_units} units, {self.n_spikes} spikes")
        return f"{self.kind} {self.src} → {self.out}: {'; '.join(parts)} in {self.wall_s:.2f} s"


def options_of(kind: str) -> dict:
    """The options of an ingester and their defaults: name → default."""
    func = _function(kind)
    return {
        name: p.default
        for name, p in inspect.signature(func).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def ingest(kind: str, src, out, **options) -> IngestSummary:
    """Read a recording in the format ``kind`` from ``src`` and write a new store at ``out``.

    Parameters
    ----------
    kind : {"suite2p", "phy", "nwb", "npz", "csv"}
    src : str or Path
        The recording: a folder (suite2p, phy; csv may be a folder of .csv files) or a file.
    out : str or Path
        The new observation store (``*.zarr``); must not exist.
    **options
        Format options, see the ``ingest_*`` function of each module (:func:`options_of`
        lists them); an unknown option is an error.

    Returns
    -------
    IngestSummary

    Raises
    ------
    IngestError
        Bad input, naming the file and the index, row or cluster.
    observations.store.StoreError
        A store that cannot be written (e.g. ``out`` exists).
    """
    func = _function(kind)
    allowed = options_of(kind)
    for name in options:
        if name not in allowed:
            raise IngestError(
                f"unknown option {name!r} for {kind}; expected one of: {', '.join(allowed)}"
            )
    src, out = Path(src), Path(out)
    if not src.exists():
        raise IngestError(f"{src}: no such file or folder")
    t0 = time.perf_counter()
    summary = func(src, out, **options)
    return dataclasses.replace(summary, wall_s=time.perf_counter() - t0)


def _function(kind: str):
    if kind not in _ENTRY:
        raise IngestError(f"unknown kind {kind!r}; expected one of: {', '.join(KINDS)}")
    module, name = _ENTRY[kind]
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


# -- helpers shared by the ingesters --------------------------------------------------------


def load_npy(path: Path, mmap: bool = True, pickled: bool = False):
    """``np.load`` a .npy file read-only (memory-mapped when possible), or raise IngestError.

    ``pickled`` allows object arrays (suite2p's ops.npy, stat.npy): unpickling runs code
    from the file, which is what reading those formats entails — only for files one trusts.
    """
    if not path.is_file():
        raise IngestError(f"{path}: missing")
    try:
        if pickled:
            return np.load(path, allow_pickle=True)
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError, OSError, EOFError, UnpicklingError...
        raise IngestError(
            f"{path}: not a readable .npy file ({type(exc).__name__}: {exc})"
        ) from None


def positive_rate(value, where: str) -> float:
    """A frame or sample rate as a float > 0, or IngestError naming where it came from."""
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise IngestError(f"{where}: rate {value!r} is not a number") from None
    if not (np.isfinite(rate) and rate > 0):
        raise IngestError(f"{where}: rate must be finite and > 0, got {rate}")
    return rate


def positive_option(name: str, value, integer: bool = False):
    """An option that must be a number > 0 (an int ≥ 1 with ``integer``), or IngestError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (np.isfinite(number) and number > 0) or (integer and number != int(number)):
        kind = "an integer ≥ 1" if integer else "a number > 0"
        raise IngestError(f"option {name} must be {kind}, got {value!r}")
    return int(number) if integer else number


def check_baseline_options(neuropil_coef, window_s, percentile, step_s) -> None:
    """The ΔF/F options shared by suite2p and NWB Fluorescence series."""
    try:
        ok = 0 <= float(neuropil_coef) < np.inf
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise IngestError(f"option neuropil_coef must be a number ≥ 0, got {neuropil_coef!r}")
    positive_option("baseline_window_s", window_s)
    try:
        ok = 0 <= float(percentile) <= 100
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise IngestError(f"option baseline_percentile must be in [0, 100], got {percentile!r}")
    if step_s is not None:
        positive_option("baseline_step_s", step_s)


def check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise IngestError(f"option {name}={value!r}; expected one of {choices}")


def first_inf(block: np.ndarray):
    """(row, column) of the first ±inf of a 2-D block, or None. NaN is not an error."""
    # fmax/fmin skip NaN and allocate nothing; the mask is only built when there is an inf.
    if (
        block.size == 0
        or np.isfinite(np.fmax.reduce(block, axis=None))
        and np.isfinite(np.fmin.reduce(block, axis=None))
    ):
        return None
    inf = np.isinf(block)
    if not inf.any():  # all NaN
        return None
    r, c = np.argwhere(inf)[0]
    return int(r), int(c)


def store_attrs(kind: str, src: Path, options: dict) -> dict:
    """Root attributes recording how a store was ingested (JSON-serialisable)."""
    return {
        "ingest": {
            "kind": kind,
            "src": str(src.resolve()),
            "options": {k: _jsonable(v) for k, v in options.items()},
        }
    }


def _jsonable(v):
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


__all__ = ["KINDS", "IngestError", "IngestSummary", "ingest", "options_of"]
