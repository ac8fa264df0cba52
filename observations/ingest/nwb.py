"""NWB files → calcium ΔF/F and/or spike trains in an observation store (needs pynwb).

Calcium: an ophys ``RoiResponseSeries`` (data (time, roi), ``rate`` + ``starting_time`` or
``timestamps``, values × ``conversion`` + ``offset``) inside a ``DfOverF`` container —
written as it is — or a ``Fluorescence`` container — turned into ΔF/F with the running
percentile baseline of :mod:`._baseline`, after subtracting c × a neuropil series when
one is named (suite2p's NWB export puts F, Fneu and the deconvolved traces into three
Fluorescence containers, "Fluorescence", "Neuropil" and "Deconvolved", each with a series
per plane). Series are named "container/series"; a bare series name is enough when it
is unique. Neuron ids are the ids of the PlaneSegmentation rows the series refers to.

Spikes: the ``units`` table's ragged ``spike_times`` column, read as its flat dataset
and index, chunk by chunk; other 1-D number or text columns go to ``units/``.

ΔF/F is streamed from the HDF5 dataset in time blocks (``block_frames``); a Fluorescence
series needs all frames of a neuron for its baseline, so it is read as neuron blocks,
each assembled from time blocks of the dataset — the whole array is never in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from observations.ingest import (
    IngestError,
    IngestSummary,
    check_baseline_options,
    check_choice,
    first_inf,
    positive_option,
    positive_rate,
    store_attrs,
)
from observations.ingest._baseline import delta_f_over_f
from observations.spikes import SpikeTrainError, SpikeTrains
from observations.store import CELL_TYPES, StoreError, StoreWriter

# Columns of the units table that are not one value per unit.
_RAGGED_UNITS = {
    "spike_times",
    "obs_intervals",
    "electrodes",
    "waveforms",
    "waveform_mean",
    "waveform_sd",
    "spike_amplitudes",
}


def ingest_nwb(
    src: Path,
    out: Path,
    *,
    series: str | None = None,
    neuropil_series: str | None = None,
    neuropil_coef: float = 0.7,
    baseline_window_s: float = 60.0,
    baseline_percentile: float = 8.0,
    baseline_step_s: float | None = None,
    bad_baseline: str = "error",
    indicator: str | None = None,
    calcium: bool = True,
    spikes: bool = True,
    block_frames: int = 4096,
    block_neurons: int = 512,
    chunk_spikes: int = 1 << 20,
) -> IngestSummary:
    """Ingest the ophys series and/or the units of an NWB file.

    Parameters
    ----------
    src : Path
        The .nwb file (HDF5), opened read-only.
    out : Path
        The new store.
    series : str, optional
        "container/series" (or a unique series name) of the RoiResponseSeries to ingest.
        By default the only series of a DfOverF container, else the only series of a
        Fluorescence container; several candidates without this option are an error
        that lists them.
    neuropil_series : str, optional
        A Fluorescence series of the same shape subtracted as c × neuropil before the
        baseline (only with a Fluorescence series).
    neuropil_coef : float
        c, the neuropil coefficient.
    baseline_window_s, baseline_percentile, baseline_step_s, bad_baseline
        The ΔF/F baseline of Fluorescence series, as for suite2p.
    indicator : str, optional
        Stored with the ΔF/F; default the imaging plane's ``indicator``.
    calcium, spikes : bool
        Ingest the ophys series, the units table (each when there is one).
    block_frames, block_neurons, chunk_spikes : int
        Frames, neurons and spikes read at a time.
    """
    try:
        from pynwb import NWBHDF5IO
    except ImportError:
        raise IngestError(
            "reading NWB needs pynwb: pip install 'spikeda[nwb]' (or pip install pynwb)"
        ) from None
    check_choice("bad_baseline", bad_baseline, ("error", "nan"))
    check_baseline_options(neuropil_coef, baseline_window_s, baseline_percentile, baseline_step_s)
    for name, value in (
        ("block_frames", block_frames),
        ("block_neurons", block_neurons),
        ("chunk_spikes", chunk_spikes),
    ):
        positive_option(name, value, integer=True)
    try:
        io = NWBHDF5IO(str(src), mode="r")
        nwbfile = io.read()
    except Exception as exc:  # h5py and hdmf raise many types for a file that is not NWB
        raise IngestError(f"{src}: not a readable NWB file ({type(exc).__name__}: {exc})") from None
    try:
        return _ingest(
            nwbfile,
            src,
            out,
            series=series,
            neuropil_series=neuropil_series,
            neuropil_coef=neuropil_coef,
            baseline_window_s=baseline_window_s,
            baseline_percentile=baseline_percentile,
            baseline_step_s=baseline_step_s,
            bad_baseline=bad_baseline,
            indicator=indicator,
            calcium=calcium,
            spikes=spikes,
            block_frames=int(block_frames),
            block_neurons=int(block_neurons),
            chunk_spikes=int(chunk_spikes),
        )
    finally:
        io.close()


def _ingest(nwbfile, src: Path, out: Path, **o) -> IngestSummary:
    from pynwb.ophys import DfOverF, Fluorescence

    candidates = {}  # "container/series" → (is ΔF/F, series)
    ophys = nwbfile.processing.get("ophys") if nwbfile.processing else None
    if ophys is not None:
        for cname, container in ophys.data_interfaces.items():
            if isinstance(container, (DfOverF, Fluorescence)):
                for sname, s in container.roi_response_series.items():
                    candidates[f"{cname}/{sname}"] = (isinstance(container, DfOverF), s)
    chosen = _choose(candidates, o["series"], src) if o["calcium"] else None
    units = nwbfile.units if o["spikes"] else None
    has_units = units is not None and "spike_times" in units.colnames and len(units.id) > 0
    if chosen is None and not has_units:
        raise IngestError(
            f"{src}: no RoiResponseSeries in processing['ophys'] DfOverF/Fluorescence and no "
            "units table with spike_times: nothing to ingest"
        )
    notes = []
    options = {k: v for k, v in o.items() if not k.startswith(("block", "chunk"))}
    attrs = store_attrs("nwb", src, options)
    summary = {}
    with StoreWriter(out, source=f"nwb:{src.resolve()}", attrs=attrs) as w:
        if chosen is not None:
            name, (is_dff, s) = chosen
            neuropil = None
            if o["neuropil_series"] is not None:
                if is_dff:
                    raise IngestError(
                        f"{src}: neuropil_series applies to a Fluorescence series, "
                        f"but {name} is ΔF/F"
                    )
                neuropil = _choose(candidates, o["neuropil_series"], src)[1][1]
            summary.update(_calcium(w, s, name, is_dff, neuropil, src, o, notes))
        if has_units:
            summary.update(_units(w, units, src, o["chunk_spikes"]))
        w.attrs(notes=notes)
    return IngestSummary("nwb", src, out, notes=tuple(notes), **summary)


def _choose(candidates: dict, wanted: str | None, src: Path):
    """(name, (is ΔF/F, series)) of the series to ingest, or None when there are none."""
    listing = ", ".join(candidates) or "none"
    if wanted is not None:
        if wanted in candidates:
            return wanted, candidates[wanted]
        matches = [k for k in candidates if k.rpartition("/")[2] == wanted]
        if len(matches) == 1:
            return matches[0], candidates[matches[0]]
        why = "is ambiguous" if matches else "is not there"
        raise IngestError(f"{src}: series {wanted!r} {why}; RoiResponseSeries: {listing}")
    if not candidates:
        return None
    dff = [k for k, (is_dff, _) in candidates.items() if is_dff]
    pick = dff if dff else list(candidates)
    if len(pick) == 1:
        return pick[0], candidates[pick[0]]
    raise IngestError(f"{src}: several RoiResponseSeries, choose one with series=: {listing}")


def _calcium(w, s, name, is_dff, neuropil, src, o, notes) -> dict:
    data = s.data
    if data.ndim not in (1, 2):
        raise IngestError(f"{src}: {name} data must be (time, roi), got shape {data.shape}")
    T = data.shape[0]
    n = 1 if data.ndim == 1 else data.shape[1]
    if T == 0 or n == 0:
        raise IngestError(f"{src}: {name} has no data ({data.shape})")
    times, rate = _frame_times(s, name, src, T)
    try:
        ids = np.asarray(s.rois.table.id[:], dtype=np.int64)[np.asarray(s.rois.data[:])]
    except Exception as exc:  # a missing or dangling rois region
        raise IngestError(f"{src}: {name}: cannot resolve its ROIs ({exc})") from None
    if ids.size != n:
        raise IngestError(f"{src}: {name} has {n} ROI columns but its rois region has {ids.size}")
    indicator = o["indicator"]
    if indicator is None:
        plane = getattr(s.rois.table, "imaging_plane", None)
        indicator = getattr(plane, "indicator", None) or "unknown"
    scale, offset = float(s.conversion), float(getattr(s, "offset", 0.0) or 0.0)

    def read(d, a, b, lo=0, hi=n):
        """Frames a..b−1, ROIs lo..hi−1 of dataset d in physical units, (b − a, hi − lo)."""
        block = np.asarray(d[a:b] if d.ndim == 1 else d[a:b, lo:hi], dtype=np.float32)
        block = block.reshape(b - a, hi - lo)
        if scale != 1.0 or offset != 0.0:
            block = block * np.float32(scale) + np.float32(offset)
        bad = first_inf(block)
        if bad is not None:
            raise IngestError(
                f"{src}: {name} data[{a + bad[0]}, {lo + bad[1]}] (ROI id {ids[lo + bad[1]]}) "
                "is infinite"
            )
        return block

    bf = o["block_frames"]
    try:
        if is_dff:
            w.start_calcium(ids, rate, indicator, attrs={"nwb_series": name})
            for a in range(0, T, bf):
                b = min(a + bf, T)
                w.append_frames(read(data, a, b), times[a:b])
        else:
            if neuropil is not None and neuropil.data.shape != data.shape:
                raise IngestError(
                    f"{src}: neuropil series is {neuropil.data.shape}, {name} is {data.shape}"
                )
            window = max(1, round(o["baseline_window_s"] * rate))
            step = (
                None if o["baseline_step_s"] is None else max(1, round(o["baseline_step_s"] * rate))
            )
            c = np.float32(o["neuropil_coef"])
            w.start_calcium(
                ids,
                rate,
                indicator,
                times_s=times,
                attrs={
                    "nwb_series": name,
                    "dff_definition": "(F - F0)/F0"
                    if neuropil is None
                    else f"(F - {o['neuropil_coef']}*Fneu - F0)/F0",
                    "baseline": f"running {o['baseline_percentile']}th percentile "
                    f"over {window} frames",
                },
            )
            bad_rois = []
            for lo in range(0, n, o["block_neurons"]):
                hi = min(lo + o["block_neurons"], n)
                y = np.empty((hi - lo, T), np.float32)
                for a in range(0, T, bf):
                    b = min(a + bf, T)
                    y[:, a:b] = read(data, a, b, lo, hi).T
                    if neuropil is not None:
                        y[:, a:b] -= c * read(neuropil.data, a, b, lo, hi).T
                dff, first_bad = delta_f_over_f(y, window, o["baseline_percentile"], step)
                for r in np.flatnonzero(first_bad >= 0):
                    if o["bad_baseline"] == "error":
                        raise IngestError(
                            f"{src}: {name}: ROI id {ids[lo + r]}: baseline F0 ≤ 0 at frame "
                            f"{first_bad[r]}, ΔF/F undefined; pass bad_baseline='nan' to "
                            "write NaN there"
                        )
                    bad_rois.append(int(ids[lo + r]))
                w.write_neurons(lo, dff.T)
                # Free the block before the next one is allocated, or two would coexist.
                del y, dff
            if bad_rois:
                notes.append(f"F0 ≤ 0 in {len(bad_rois)} ROIs (NaN there): {bad_rois[:10]}")
    except StoreError as exc:  # e.g. timestamps that do not increase
        raise IngestError(f"{src}: {name}: {exc}") from None
    notes.append(f"calcium from {name} ({'ΔF/F as stored' if is_dff else 'ΔF/F computed'})")
    return {"n_neurons": n, "n_frames": T, "frame_rate_hz": rate}


def _frame_times(s, name, src, T) -> tuple[np.ndarray, float]:
    """Frame times (T,) in s and the frame rate (Hz) of a series."""
    if s.timestamps is not None:
        times = np.asarray(s.timestamps[:], dtype=np.float64)
        if times.shape != (T,):
            raise IngestError(f"{src}: {name} has {T} frames but {times.size} timestamps")
        if s.rate is not None:
            return times, positive_rate(s.rate, f"{src}: {name}.rate")
        d = np.diff(times)
        if d.size == 0 or not np.median(d) > 0:
            raise IngestError(f"{src}: {name}: cannot infer a frame rate from its timestamps")
        return times, float(1.0 / np.median(d))
    if s.rate is None:
        raise IngestError(f"{src}: {name} has neither rate nor timestamps")
    rate = positive_rate(s.rate, f"{src}: {name}.rate")
    return float(s.starting_time or 0.0) + np.arange(T) / rate, rate


def _units(w, units, src: Path, chunk: int) -> dict:
    ids = np.asarray(units.id[:], dtype=np.int64)
    ends = np.asarray(units["spike_times"].data[:], dtype=np.int64)  # the VectorIndex
    flat = units["spike_times"].target.data  # all spike times, unit after unit
    if ends.shape != ids.shape or (ends.size and ends[-1] != flat.shape[0]):
        raise IngestError(
            f"{src}: units spike_times index does not match its {flat.shape[0]} times"
        )
    counts = np.diff(ends, prepend=0)
    if (counts == 0).any():
        k = int(np.flatnonzero(counts == 0)[0])
        raise IngestError(f"{src}: units: empty spike train: unit id {ids[k]} has no spikes")
    starts = ends - counts
    times = np.empty(flat.shape[0], np.float64)
    for a in range(0, times.size, chunk):
        t = np.asarray(flat[a : a + chunk], dtype=np.float64)
        bad = ~np.isfinite(t) | (t < 0)
        if bad.any():
            i = a + int(np.flatnonzero(bad)[0])
            k = int(np.searchsorted(ends, i, side="right"))
            raise IngestError(
                f"{src}: units: unit id {ids[k]}, spike {i - starts[k]}: time "
                f"{t[i - a]} s is negative or not finite"
            )
        times[a : a + t.size] = t
    d = np.diff(times)
    unsorted = d < 0
    unsorted[ends[:-1] - 1] = False  # a drop between two units is not an error
    if unsorted.any():
        i = int(np.flatnonzero(unsorted)[0]) + 1
        k = int(np.searchsorted(ends, i, side="right"))
        raise IngestError(
            f"{src}: units: unit id {ids[k]}: spike times are not sorted at spike {i - starts[k]} "
            f"({times[i]} after {times[i - 1]})"
        )
    t_stop = float(times.max())
    if "obs_intervals" in units.colnames:
        t_stop = max(t_stop, float(np.max(units["obs_intervals"].target.data[:])))
    try:
        trains = SpikeTrains(times, np.concatenate([[0], ends]), ids, 0.0, t_stop)
    except SpikeTrainError as exc:
        raise IngestError(f"{src}: units: {exc}") from None
    w.spikes(trains)
    w.units(_unit_columns(units, ids.size))
    return {"n_units": trains.n_units, "n_spikes": trains.n_spikes}


def _unit_columns(units, n: int) -> dict:
    """The units table's 1-D number, boolean or text columns (one value per unit)."""
    out = {}
    for col in units.colnames:
        if col in _RAGGED_UNITS or f"{col}_index" in units.colnames:
            continue
        try:
            values = np.asarray(units[col].data[:])
        except Exception:  # a reference column (e.g. to electrodes) has no plain values
            continue
        if values.ndim != 1 or values.shape[0] != n:
            continue
        if values.dtype.kind in "SO":
            values = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values])
        if values.dtype.kind not in "biufU":
            continue
        name = col
        if col == "cell_type" and not np.isin(values, CELL_TYPES).all():
            name = "nwb_cell_type"  # the store's cell_type takes only "E", "I", "unknown"
        out[name] = values
    return out
