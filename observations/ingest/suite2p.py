"""suite2p output folders → calcium ΔF/F in an observation store.

A suite2p plane folder holds ``F.npy`` and ``Fneu.npy`` (ROIs × frames, float32: the ROI
and neuropil fluorescence), ``iscell.npy`` (ROIs × 2: the cell label 0/1 and the
classifier's probability), ``stat.npy`` (one pickled dict per ROI; ``med`` is the ROI's
median pixel, (y, x)) and the frame rate ``fs`` (Hz, per plane) in

* ``ops.npy`` — suite2p 0.x: one pickled dict with every setting, ``ops["fs"]``;
* ``settings.npy`` — suite2p 1.x: a pickled dict of pipeline settings with ``fs`` at its
  top level (sub-dicts hold the per-stage settings, e.g. ``settings["extraction"]``), next
  to ``db.npy`` (recording settings). We read ``fs`` at the top level of the first of
  ops.npy, settings.npy, db.npy (plane folder first, then its parent) that has one, and
  otherwise search their nested dicts; ``frame_rate_hz=`` overrides all of them.

ΔF/F = (F − c·Fneu − F0)/F0, c = ``neuropil_coef``, F0 the running percentile of
F − c·Fneu (:mod:`._baseline`). The kept ROIs (``iscell[:, 0] == 1``) are processed in
blocks of ``block_neurons`` with every frame at once — a baseline runs along time — read
row by row from F.npy and Fneu.npy (opened read-only; shapes from a memory map), so
resident memory is about two copies of one block (4 · block_neurons · n_frames bytes
each: F − c·Fneu and its baseline), not the file.
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
    load_npy,
    positive_option,
    positive_rate,
    store_attrs,
)
from observations.ingest._baseline import delta_f_over_f
from observations.store import StoreWriter

_RATE_FILES = ("ops.npy", "settings.npy", "db.npy")


def ingest_suite2p(
    src: Path,
    out: Path,
    *,
    plane: int = 0,
    neuropil_coef: float = 0.7,
    baseline_window_s: float = 60.0,
    baseline_percentile: float = 8.0,
    baseline_step_s: float | None = None,
    frame_rate_hz: float | None = None,
    pixel_size_um=None,
    indicator: str = "unknown",
    bad_baseline: str = "error",
    block_neurons: int = 512,
) -> IngestSummary:
    """Ingest one plane of a suite2p output folder.

    Parameters
    ----------
    src : Path
        The plane folder (with F.npy) or a parent holding ``plane{plane}/``.
    out : Path
        The new store.
    plane : int
        Plane folder to read when ``src`` is a parent.
    neuropil_coef : float
        c in F − c·Fneu (suite2p's default 0.7).
    baseline_window_s, baseline_percentile : float
        Running-percentile baseline: window (s) and percentile (0–100).
    baseline_step_s : float, optional
        Spacing (s) of the exactly evaluated baseline points (default window/10); one
        frame period gives the exact running percentile.
    frame_rate_hz : float, optional
        Overrides ``fs`` of ops.npy / settings.npy / db.npy.
    pixel_size_um : float or (dy, dx), optional
        With it the ROI centroids are written as ``units/position_um`` (x, y, z = 0, µm);
        without it as ``units/centroid_px`` (x, y, pixels).
    indicator : str
        Calcium indicator name stored with the ΔF/F.
    bad_baseline : {"error", "nan"}
        What to do where F0 ≤ 0 (ΔF/F undefined, e.g. F − c·Fneu negative for a dim
        ROI): raise, naming the ROI and frame, or write NaN there.
    block_neurons : int
        ROIs per block (512 matches the store's neuron chunks).

    Store: ``calcium/dff`` (frames × kept ROIs) float32, ``calcium/time`` = arange(T)/fs,
    ``calcium/neuron`` = the suite2p ROI indices of the kept cells; ``units/iscell_prob``
    and the centroids when available.
    """
    check_choice("bad_baseline", bad_baseline, ("error", "nan"))
    check_baseline_options(neuropil_coef, baseline_window_s, baseline_percentile, baseline_step_s)
    block_neurons = positive_option("block_neurons", block_neurons, integer=True)
    folder = _plane_folder(src, plane)
    f_path, fneu_path = folder / "F.npy", folder / "Fneu.npy"
    n_rois, n_frames = _trace_shape(f_path)
    neu_shape = _trace_shape(fneu_path)
    if neu_shape != (n_rois, n_frames):
        raise IngestError(
            f"{fneu_path}: shape {neu_shape} differs from F.npy's {(n_rois, n_frames)}"
        )
    if n_frames == 0:
        raise IngestError(f"{f_path}: has no frames")
    iscell_path = folder / "iscell.npy"
    iscell = np.asarray(load_npy(iscell_path, mmap=False))
    if iscell.ndim == 1:
        iscell = iscell[:, None]
    if iscell.ndim != 2 or iscell.shape[0] != n_rois:
        raise IngestError(
            f"{iscell_path}: has {iscell.shape[0] if iscell.ndim else 0} rows (shape "
            f"{iscell.shape}) but F.npy has {n_rois} ROIs"
        )
    kept = np.flatnonzero(iscell[:, 0] == 1)
    if kept.size == 0:
        raise IngestError(f"{iscell_path}: no ROI has iscell[:, 0] == 1; nothing to ingest")

    notes = []
    if frame_rate_hz is not None:
        fs = positive_rate(frame_rate_hz, "option frame_rate_hz")
        notes.append(f"fs = {fs:g} Hz from the option frame_rate_hz")
    else:
        fs, where = _frame_rate(folder)
        notes.append(f"fs = {fs:g} Hz from {where}")
    window = max(1, round(baseline_window_s * fs))
    step = None if baseline_step_s is None else max(1, round(baseline_step_s * fs))
    units = _units(folder, kept, n_rois, iscell, pixel_size_um, notes)

    options = dict(
        plane=plane,
        neuropil_coef=neuropil_coef,
        baseline_window_s=baseline_window_s,
        baseline_percentile=baseline_percentile,
        baseline_step_s=baseline_step_s,
        frame_rate_hz=fs,
        pixel_size_um=pixel_size_um,
        indicator=indicator,
        bad_baseline=bad_baseline,
    )
    attrs = store_attrs("suite2p", folder, options)
    nan_rois = []
    with StoreWriter(out, source=f"suite2p:{folder.resolve()}", attrs=attrs) as w:
        w.start_calcium(
            kept,
            fs,
            indicator,
            times_s=np.arange(n_frames) / fs,
            attrs={
                "dff_definition": f"(F - {neuropil_coef}*Fneu - F0)/F0",
                "baseline": f"running {baseline_percentile}th percentile over "
                f"{window} frames ({baseline_window_s} s)",
            },
        )
        for first in range(0, kept.size, block_neurons):
            rows = kept[first : first + block_neurons]
            y = np.empty((rows.size, n_frames), np.float32)
            _read_rows(f_path, rows, y)
            # y ← F − c·Fneu one row at a time, so the block is one array; ΔF/F goes in place.
            _read_rows(fneu_path, rows, y, subtract=neuropil_coef)
            dff, first_bad = delta_f_over_f(y, window, baseline_percentile, step)
            for r in np.flatnonzero(first_bad >= 0):
                if bad_baseline == "error":
                    raise IngestError(
                        f"{f_path}: ROI {rows[r]}: baseline F0 ≤ 0 at frame {first_bad[r]} "
                        f"(F − {neuropil_coef}·Fneu is not positive there, so ΔF/F is "
                        "undefined); exclude the ROI, lower neuropil_coef, or pass "
                        "bad_baseline='nan'"
                    )
                nan_rois.append(int(rows[r]))
            w.write_neurons(first, dff.T)
            # Free the block before the next one is allocated, or two would coexist.
            del y, dff
        if units:
            for name, (values, arr_attrs) in units.items():
                w.array(
                    f"units/{name}",
                    values,
                    arr_attrs,
                    dims=("unit",) + tuple(f"{name}_{k}" for k in range(1, values.ndim)),
                )
        if nan_rois:
            notes.append(f"F0 ≤ 0 in {len(nan_rois)} ROIs (NaN there): {nan_rois[:10]}")
        w.attrs(notes=notes)
    return IngestSummary(
        "suite2p",
        src,
        out,
        n_neurons=int(kept.size),
        n_frames=int(n_frames),
        frame_rate_hz=fs,
        notes=tuple(notes),
    )


def _plane_folder(src: Path, plane: int) -> Path:
    if (src / "F.npy").exists():
        return src
    sub = src / f"plane{int(plane)}"
    if (sub / "F.npy").exists():
        return sub
    raise IngestError(f"{src}: no F.npy here nor in {sub.name}/ — not a suite2p output folder")


def _trace_shape(path: Path) -> tuple[int, int]:
    arr = load_npy(path)
    if arr.ndim != 2 or arr.dtype.kind not in "fiu":
        raise IngestError(
            f"{path}: expected a 2-D numeric array (ROIs × frames), got {arr.dtype} {arr.shape}"
        )
    return arr.shape


def _read_rows(path: Path, rows: np.ndarray, out: np.ndarray, subtract: float | None = None):
    """Read rows of a (ROIs × frames) .npy file into ``out`` (len(rows), T) float32, or
    with ``subtract=c`` subtract c × each row from ``out`` in place; ±inf is an error.

    A C-ordered float32 file (what suite2p writes) is read row by row with ``readinto``
    at the rows' offsets rather than through a memory map, whose touched file pages
    would count as resident memory of this process for as long as the map lives. Other
    layouts fall back to a read-only memory map.
    """
    m = np.load(path, mmap_mode="r")
    T, offset = m.shape[1], m.offset
    row = np.empty(T, np.float32)
    direct = m.flags.c_contiguous and m.dtype == np.dtype(np.float32)
    with open(path, "rb") as f:
        for i, r in enumerate(rows):
            dest = out[i] if subtract is None else row
            if direct:
                f.seek(offset + int(r) * T * 4)
                if f.readinto(memoryview(dest).cast("B")) != T * 4:
                    raise IngestError(f"{path}: truncated at ROI {r}")
            else:
                dest[:] = m[r]
            bad = first_inf(dest[None, :])
            if bad is not None:
                raise IngestError(f"{path}: value at ROI {r}, frame {bad[1]} is infinite")
            if subtract is not None:
                row *= np.float32(subtract)
                out[i] -= row
    del m


def _frame_rate(folder: Path) -> tuple[float, str]:
    """``fs`` (Hz) from the suite2p settings files, and where it came from: the top level
    of the first file that has it (plane folder first, then its parent), else the first
    nested dict that has it."""
    found = []
    for place in (folder, folder.parent):
        for name in _RATE_FILES:
            if (place / name).is_file():
                found.append((place / name, _pickled_dict(place / name)))
    for nested in (False, True):
        for path, settings in found:
            hit = _find_key(settings, "fs", nested)
            if hit is not None:
                where = f"{path} [{hit[1]}]"
                return positive_rate(hit[0], where), where
    looked = ", ".join(str(p) for p, _ in found) or f"{folder} (no {'/'.join(_RATE_FILES)})"
    raise IngestError(f"frame rate missing: no 'fs' in {looked}; pass frame_rate_hz=")


def _pickled_dict(path: Path) -> dict:
    obj = load_npy(path, pickled=True)
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.ndim == 0:
        obj = obj.item()
    if not isinstance(obj, dict):
        raise IngestError(f"{path}: expected a pickled dict of settings, got {type(obj).__name__}")
    return obj


def _find_key(d: dict, key: str, nested: bool):
    """(value, "a/b/key") of ``key`` at the top level of ``d`` or, with ``nested``, in its
    nested dicts (breadth first); None if absent."""
    if not nested:
        return (d[key], key) if key in d else None
    queue = [(v, f"{k}/") for k, v in d.items() if isinstance(v, dict)]
    while queue:
        node, prefix = queue.pop(0)
        if key in node:
            return node[key], prefix + key
        queue.extend((v, f"{prefix}{k}/") for k, v in node.items() if isinstance(v, dict))
    return None


def _units(folder, kept, n_rois, iscell, pixel_size_um, notes) -> dict:
    """Per-ROI metadata of the kept cells: name → (values, attrs)."""
    units = {}
    if iscell.shape[1] > 1:
        units["iscell_prob"] = (iscell[kept, 1].astype(np.float64), {"units": "probability"})
    stat_path = folder / "stat.npy"
    if not stat_path.is_file():
        notes.append("no stat.npy: no ROI centroids")
        return units
    stat = load_npy(stat_path, pickled=True)
    if not (isinstance(stat, np.ndarray) and stat.ndim == 1):
        raise IngestError(f"{stat_path}: expected one dict per ROI, got {type(stat).__name__}")
    if len(stat) != n_rois:
        raise IngestError(f"{stat_path}: has {len(stat)} ROIs but F.npy has {n_rois}")
    try:
        med = np.array([stat[i]["med"] for i in kept], dtype=np.float64).reshape(-1, 2)
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise IngestError(f"{stat_path}: ROI entries lack a 2-element 'med' ({exc})") from None
    xy = med[:, ::-1]  # suite2p's med is (y, x)
    if pixel_size_um is None:
        units["centroid_px"] = (
            xy,
            {
                "columns": ["x", "y"],
                "units": "pixel",
                "note": "suite2p stat['med']; pixel size unknown",
            },
        )
        return units
    try:
        size = np.asarray(pixel_size_um, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        size = np.array([np.nan])
    if size.size not in (1, 2) or not np.all((size > 0) & np.isfinite(size)):
        raise IngestError(f"option pixel_size_um must be one or two sizes > 0, got {pixel_size_um}")
    dy, dx = (size[0], size[0]) if size.size == 1 else size
    pos = np.column_stack([xy[:, 0] * dx, xy[:, 1] * dy, np.zeros(len(xy))])
    units["position_um"] = (
        pos,
        {
            "columns": ["x", "y", "z"],
            "units": "um",
            "note": "suite2p stat['med'] × pixel size; z = 0 in the plane",
        },
    )
    return units
