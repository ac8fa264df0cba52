"""Plain npz and CSV files → spikes and/or calcium in an observation store.

npz (``np.savez`` / ``np.savez_compressed``, no pickled members):

* spikes: ``spike_times`` (n,) s and ``spike_units`` (n,) integer ids, in any order,
  optionally ``t_start_s`` and ``t_stop_s`` (default 0 and the last spike);
* calcium: ``dff`` (time, neuron) ΔF/F as a fraction and ``frame_rate_hz``, optionally
  ``neuron_ids`` (neuron,), ``time_s`` (time,) (default arange(T)/frame_rate_hz) and
  ``indicator`` (a string).

A file may hold both. ``dff`` is streamed from the archive member (inflating it as it
goes when compressed): a C-ordered array arrives frame after frame and is written in time
blocks, a Fortran-ordered one (``np.savez(f, dff=x.T)`` of a neuron-major array) neuron
after neuron and is written in neuron blocks — either way one block in memory.

CSV (comma-separated, one header line):

* spikes: header ``time_s,unit``, one spike per row, in any order;
* calcium: header ``time_s,<id1>,<id2>,...`` (integer neuron ids), one frame per row,
  times increasing; an empty or ``nan`` cell is a missing value (NaN). The frame rate is
  ``frame_rate_hz=`` or 1/median frame interval of the first block of rows.

``src`` may be one .csv file or a folder whose .csv files (at most one of each kind) are
recognised by their header.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from observations.ingest import (
    IngestError,
    IngestSummary,
    first_inf,
    positive_option,
    positive_rate,
    store_attrs,
)
from observations.spikes import SpikeTrainError, SpikeTrains
from observations.store import StoreError, StoreWriter

# -- npz ------------------------------------------------------------------------------------


def ingest_npz(
    src: Path,
    out: Path,
    *,
    frame_rate_hz: float | None = None,
    indicator: str | None = None,
    t_start_s: float | None = None,
    t_stop_s: float | None = None,
    block_frames: int = 4096,
    block_neurons: int = 512,
    chunk_spikes: int = 1 << 20,
) -> IngestSummary:
    """Ingest an npz file of spikes and/or ΔF/F (layout in the module docstring).

    ``frame_rate_hz``, ``indicator``, ``t_start_s``, ``t_stop_s`` supply what the file
    lacks (a value given both ways must agree); ``block_frames``, ``block_neurons`` and
    ``chunk_spikes`` set how much is read at a time.
    """
    _positive_ints(
        block_frames=block_frames, block_neurons=block_neurons, chunk_spikes=chunk_spikes
    )
    try:
        zf = zipfile.ZipFile(src, "r")
    except (zipfile.BadZipFile, OSError) as exc:
        raise IngestError(f"{src}: not an npz archive ({exc})") from None
    with zf:
        members = {n.removesuffix(".npy") for n in zf.namelist()}
        has_spikes, has_dff = "spike_times" in members, "dff" in members
        if not (has_spikes or has_dff):
            raise IngestError(
                f"{src}: has neither spike_times nor dff (members: {sorted(members)})"
            )
        if has_spikes and "spike_units" not in members:
            raise IngestError(f"{src}: has spike_times but no spike_units")

        def small(name):
            return _small(zf, name, src) if name in members else None

        options = dict(
            frame_rate_hz=frame_rate_hz, indicator=indicator, t_start_s=t_start_s, t_stop_s=t_stop_s
        )
        summary = {}
        with StoreWriter(
            out, source=f"npz:{src.resolve()}", attrs=store_attrs("npz", src, options)
        ) as w:
            if has_spikes:
                t0 = _agree("t_start_s", small("t_start_s"), t_start_s, src)
                t1 = _agree("t_stop_s", small("t_stop_s"), t_stop_s, src)
                times = _NpyMember(zf, "spike_times", src)
                units = _NpyMember(zf, "spike_units", src)
                spikes = _npz_spikes(times, units, t0, t1, src, int(chunk_spikes))
                w.spikes(spikes)
                summary.update(n_units=spikes.n_units, n_spikes=spikes.n_spikes)
            if has_dff:
                rate = _agree("frame_rate_hz", small("frame_rate_hz"), frame_rate_hz, src)
                if rate is None:
                    raise IngestError(
                        f"{src}: frame rate missing: no frame_rate_hz member; pass frame_rate_hz="
                    )
                rate = positive_rate(rate, f"{src}: frame_rate_hz")
                ind = _agree("indicator", small("indicator"), indicator, src) or "unknown"
                dff = _NpyMember(zf, "dff", src)
                summary.update(
                    _npz_calcium(
                        w,
                        dff,
                        rate,
                        str(ind),
                        small("neuron_ids"),
                        small("time_s"),
                        src,
                        int(block_frames),
                        int(block_neurons),
                    )
                )
    return IngestSummary("npz", src, out, **summary)


class _NpyMember:
    """A .npy member of a zip archive, read front to back in pieces (stored or deflated)."""

    def __init__(self, zf: zipfile.ZipFile, name: str, src: Path):
        self.where = f"{src}: {name}"
        member = name if name in zf.namelist() else f"{name}.npy"
        self.fp = zf.open(member)
        fmt = np.lib.format
        try:
            version = fmt.read_magic(self.fp)
            if version == (1, 0):
                shape, self.fortran, dtype = fmt.read_array_header_1_0(self.fp)
            elif version == (2, 0):
                shape, self.fortran, dtype = fmt.read_array_header_2_0(self.fp)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except ValueError as exc:
            raise IngestError(f"{self.where}: not a readable .npy member ({exc})") from None
        if dtype.hasobject:
            raise IngestError(f"{self.where}: holds Python objects (pickled); not read")
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)

    def read(self, count: int) -> np.ndarray:
        """The next ``count`` elements in storage order."""
        nbytes = count * self.dtype.itemsize
        buf = self.fp.read(nbytes)
        if len(buf) != nbytes:
            raise IngestError(f"{self.where}: truncated ({len(buf)} of {nbytes} bytes left)")
        return np.frombuffer(buf, dtype=self.dtype, count=count)


def _small(zf, name: str, src: Path):
    """A small member (a scalar, a string, ids or times), read whole."""
    member = _NpyMember(zf, name, src)
    n = int(np.prod(member.shape))
    values = member.read(n).reshape(member.shape, order="F" if member.fortran else "C")
    return values.item() if values.ndim == 0 else values


def _agree(name: str, in_file, option, src: Path):
    """The file's value or the option's; both given must be the same."""
    if in_file is not None and option is not None and in_file != option:
        raise IngestError(f"{src}: {name} is {in_file!r} in the file but {option!r} as an option")
    return in_file if in_file is not None else option


def _npz_spikes(times, units, t0, t1, src: Path, chunk: int) -> SpikeTrains:
    if len(times.shape) != 1 or units.shape != times.shape:
        raise IngestError(
            f"{src}: spike_times {times.shape} and spike_units {units.shape} "
            "must be vectors of one length"
        )
    if times.dtype.kind not in "fiu" or units.dtype.kind not in "iu":
        raise IngestError(
            f"{src}: spike_times must be numbers and spike_units integers, got "
            f"{times.dtype} and {units.dtype}"
        )
    t0 = 0.0 if t0 is None else float(t0)
    n = times.shape[0]
    all_t, all_u = np.empty(n, np.float64), np.empty(n, np.int64)
    for a in range(0, n, chunk):
        k = min(chunk, n - a)
        t = times.read(k).astype(np.float64)
        bad = ~np.isfinite(t) | (t < t0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            what = (
                "not finite"
                if not np.isfinite(t[i])
                else ("negative" if t[i] < 0 else f"before t_start_s = {t0}")
            )
            raise IngestError(f"{src}: spike_times[{a + i}] = {t[i]} is {what}")
        all_t[a : a + k] = t
        all_u[a : a + k] = units.read(k)
    if n == 0:
        raise IngestError(f"{src}: spike_times is empty")
    t1 = float(all_t.max()) if t1 is None else float(t1)
    try:
        return SpikeTrains.from_pairs(all_t, all_u, t0, t1)
    except SpikeTrainError as exc:
        raise IngestError(f"{src}: spike_times: {exc}") from None


def _npz_calcium(w, dff, rate, indicator, ids, times, src, block_frames, block_neurons) -> dict:
    if len(dff.shape) != 2 or dff.dtype.kind not in "fiu":
        raise IngestError(
            f"{src}: dff must be a 2-D numeric array (time, neuron), got {dff.dtype} {dff.shape}"
        )
    T, n = dff.shape
    if T == 0 or n == 0:
        raise IngestError(f"{src}: dff has no data ({dff.shape})")
    ids = np.arange(n) if ids is None else np.asarray(ids).reshape(-1)
    if ids.size != n or ids.dtype.kind not in "iu":
        raise IngestError(
            f"{src}: neuron_ids must be {n} integers (one per dff column), got "
            f"{ids.size} of {ids.dtype}"
        )
    times = np.arange(T) / rate if times is None else np.asarray(times, np.float64).reshape(-1)
    if times.size != T:
        raise IngestError(f"{src}: time_s has {times.size} entries but dff has {T} frames")
    try:
        if not dff.fortran:  # frame after frame: time blocks
            w.start_calcium(ids, rate, indicator)
            for a in range(0, T, block_frames):
                b = min(a + block_frames, T)
                block = dff.read((b - a) * n).reshape(b - a, n).astype(np.float32)
                _check_inf(block, a, 0, ids, src)
                w.append_frames(block, times[a:b])
        else:  # neuron after neuron: neuron blocks
            w.start_calcium(ids, rate, indicator, times_s=times)
            for lo in range(0, n, block_neurons):
                hi = min(lo + block_neurons, n)
                block = dff.read((hi - lo) * T).reshape(hi - lo, T).T.astype(np.float32)
                _check_inf(block, 0, lo, ids, src)
                w.write_neurons(lo, block)
    except StoreError as exc:  # time_s not increasing, neuron ids not distinct
        raise IngestError(f"{src}: {exc}") from None
    return {"n_neurons": n, "n_frames": T, "frame_rate_hz": rate}


def _check_inf(block, frame0, neuron0, ids, src) -> None:
    bad = first_inf(block)
    if bad is not None:
        f, j = bad
        raise IngestError(
            f"{src}: dff[{frame0 + f}, {neuron0 + j}] (neuron id {ids[neuron0 + j]}) "
            f"is {block[f, j]}"
        )


def _positive_ints(**values) -> None:
    for name, v in values.items():
        positive_option(name, v, integer=True)


# -- CSV ------------------------------------------------------------------------------------


def ingest_csv(
    src: Path,
    out: Path,
    *,
    frame_rate_hz: float | None = None,
    indicator: str = "unknown",
    t_start_s: float = 0.0,
    t_stop_s: float | None = None,
    block_frames: int = 4096,
) -> IngestSummary:
    """Ingest a CSV table of spikes or of ΔF/F, or a folder with one of each.

    ``frame_rate_hz`` (Hz) for the traces (default inferred from the time column),
    ``t_start_s``/``t_stop_s`` (s) for the spikes (default 0 and the last spike),
    ``block_frames`` rows of traces per block.
    """
    _positive_ints(block_frames=block_frames)
    files = sorted(src.glob("*.csv")) if src.is_dir() else [src]
    tables = {"spikes": [], "traces": []}
    for path in files:
        header = _header(path)
        if [h.strip() for h in header] == ["time_s", "unit"]:
            tables["spikes"].append((path, header))
        elif header and header[0].strip() == "time_s" and len(header) > 1:
            tables["traces"].append((path, header))
        else:
            raise IngestError(
                f"{path}: line 1: header must be 'time_s,unit' (spikes) or "
                f"'time_s,<id1>,<id2>,...' (traces), got {','.join(header)!r}"
            )
    for kind, found in tables.items():
        if len(found) > 1:
            raise IngestError(f"{src}: several {kind} tables: {[str(p) for p, _ in found]}")
    if not files:
        raise IngestError(f"{src}: no .csv files")
    options = dict(
        frame_rate_hz=frame_rate_hz, indicator=indicator, t_start_s=t_start_s, t_stop_s=t_stop_s
    )
    summary, notes = {}, []
    with StoreWriter(
        out, source=f"csv:{src.resolve()}", attrs=store_attrs("csv", src, options)
    ) as w:
        if tables["spikes"]:
            spikes = _csv_spikes(tables["spikes"][0][0], t_start_s, t_stop_s)
            w.spikes(spikes)
            summary.update(n_units=spikes.n_units, n_spikes=spikes.n_spikes)
        if tables["traces"]:
            path, header = tables["traces"][0]
            summary.update(
                _csv_traces(w, path, header, frame_rate_hz, indicator, int(block_frames), notes)
            )
        w.attrs(notes=notes)
    return IngestSummary("csv", src, out, notes=tuple(notes), **summary)


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise IngestError(f"{path}: cannot be read as CSV ({exc})") from None


def _rows(path: Path):
    """(line number, fields) of the data rows, blank lines skipped."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader, None)
        try:
            for fields in reader:
                if fields and any(x.strip() for x in fields):
                    yield reader.line_num, fields
        except (csv.Error, UnicodeDecodeError) as exc:
            raise IngestError(f"{path}: line {reader.line_num + 1}: {exc}") from None


def _csv_spikes(path: Path, t_start_s, t_stop_s) -> SpikeTrains:
    """Spike trains from a ``time_s,unit`` table; errors name the line."""
    times, units = [], []
    t0 = float(t_start_s)
    t1 = np.inf if t_stop_s is None else float(t_stop_s)
    for line, fields in _rows(path):
        if len(fields) != 2:
            raise IngestError(
                f"{path}: line {line}: expected 2 fields (time_s,unit), got {len(fields)}"
            )
        t = _number(fields[0], path, line, "time_s")
        if not (np.isfinite(t) and t0 <= t <= t1):
            if not np.isfinite(t):
                what = "not finite"
            elif t < 0:
                what = "negative"
            else:
                what = f"outside [t_start_s, t_stop_s] = [{t0}, {t1}]"
            raise IngestError(f"{path}: line {line}: time_s = {fields[0]} is {what}")
        u = _number(fields[1], path, line, "unit")
        if not (np.isfinite(u) and u == int(u)):
            raise IngestError(f"{path}: line {line}: unit {fields[1]!r} is not an integer")
        times.append(t)
        units.append(int(u))
    if not times:
        raise IngestError(f"{path}: has no spikes")
    t1 = max(times) if t_stop_s is None else t1
    try:
        return SpikeTrains.from_pairs(np.array(times), np.array(units, np.int64), t0, t1)
    except SpikeTrainError as exc:  # not expected after the checks above
        raise IngestError(f"{path}: {exc}") from None


def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise IngestError(f"{path}: line {line}: {column} = {text!r} is not a number") from None


def _csv_traces(w, path, header, rate, indicator, block_frames, notes) -> dict:
    try:
        ids = np.array([int(h) for h in header[1:]], dtype=np.int64)
    except ValueError:
        raise IngestError(
            f"{path}: line 1: neuron ids must be integers, got {header[1:]}"
        ) from None
    n = ids.size
    started, T, prev_t = False, 0, -np.inf
    block_t, block_v, lines = [], [], []

    def flush():
        nonlocal started, rate, T
        if not block_t:
            return
        t = np.array(block_t)
        v = np.array(block_v, dtype=np.float32)
        if not started:
            if rate is None:
                if t.size < 2:
                    raise IngestError(f"{path}: one frame only; pass frame_rate_hz=")
                rate = 1.0 / float(np.median(np.diff(t)))
                notes.append(f"frame rate {rate:g} Hz from the median frame interval")
            rate = positive_rate(rate, f"{path}: frame rate")
            w.start_calcium(ids, rate, indicator)
            started = True
        bad = first_inf(v)
        if bad is not None:
            raise IngestError(f"{path}: line {lines[bad[0]]}: neuron {ids[bad[1]]} is {v[bad]}")
        w.append_frames(v, t)
        T += t.size
        block_t.clear(), block_v.clear(), lines.clear()

    for line, fields in _rows(path):
        if len(fields) != n + 1:
            raise IngestError(f"{path}: line {line}: expected {n + 1} fields, got {len(fields)}")
        t = _number(fields[0], path, line, "time_s")
        if not (np.isfinite(t) and t > prev_t):
            raise IngestError(
                f"{path}: line {line}: time_s = {fields[0]} is not after the "
                f"previous frame ({prev_t})"
            )
        prev_t = t
        values = []
        for k, x in enumerate(fields[1:]):
            x = x.strip()
            values.append(np.nan if x == "" else _number(x, path, line, f"neuron {ids[k]}"))
        block_t.append(t)
        block_v.append(values)
        lines.append(line)
        if len(block_t) == block_frames:
            flush()
    flush()
    if T == 0:
        raise IngestError(f"{path}: has no frames")
    return {"n_neurons": int(n), "n_frames": T, "frame_rate_hz": rate}
