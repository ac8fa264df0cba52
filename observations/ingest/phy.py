"""phy / Kilosort output folders → spike trains in an observation store.

The folder holds ``spike_times.npy`` (n_spikes, integer samples, sorted),
``spike_clusters.npy`` (n_spikes, cluster id of each spike; phy's curated ids) — or, in a
Kilosort folder never opened in phy, only ``spike_templates.npy`` (template id of each
spike, which is then the cluster id) — ``params.py`` (``sample_rate = 30000.0``, the raw
data file ``dat_path``, ``n_channels_dat``, ``dtype``, ``offset``), and the cluster labels
``cluster_group.tsv`` (phy's curation: cluster_id, group) or ``cluster_KSLabel.tsv``
(Kilosort's automatic labels), optionally ``cluster_info.tsv`` (phy 2: ch, depth, ...).

params.py is Python; it is parsed (``ast``) and each ``name = literal`` assignment read
with ``ast.literal_eval``, never executed. The spike arrays are memory-mapped and
checked chunk by chunk; only the spikes of the kept clusters are gathered.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from observations.ingest import (
    IngestError,
    IngestSummary,
    load_npy,
    positive_option,
    positive_rate,
    store_attrs,
)
from observations.spikes import SpikeTrainError, SpikeTrains
from observations.store import StoreWriter

_LABEL_FILES = (("cluster_group.tsv", "group"), ("cluster_KSLabel.tsv", "KSLabel"))


def ingest_phy(
    src: Path,
    out: Path,
    *,
    groups=("good",),
    sample_rate_hz: float | None = None,
    n_samples: int | None = None,
    chunk_spikes: int = 1 << 20,
) -> IngestSummary:
    """Ingest the clusters of a phy/Kilosort folder whose label is in ``groups``.

    Parameters
    ----------
    src : Path
        The phy folder.
    out : Path
        The new store.
    groups : str, sequence of str, or None
        Labels to keep (phy: "good", "mua", "noise", "unsorted"); None keeps every
        cluster that has spikes, labelled or not.
    sample_rate_hz : float, optional
        Overrides ``sample_rate`` of params.py (Hz).
    n_samples : int, optional
        Recording length in samples; by default from the size of the raw data file of
        params.py when it is present, else the last spike's sample.
    chunk_spikes : int
        Spikes read per chunk.

    Store: ``spikes/`` with one unit per kept cluster (unit id = cluster id), times in s
    = samples / sample_rate over [0, n_samples / sample_rate]; ``units/group`` (label),
    and ``units/channel``, ``units/depth_um`` when cluster_info.tsv has ch / depth.
    """
    if isinstance(groups, str):
        groups = (groups,)
    elif groups is not None:
        groups = tuple(str(g) for g in groups)
    chunk_spikes = positive_option("chunk_spikes", chunk_spikes, integer=True)
    notes = []
    params_path = src / "params.py"
    params = read_params(params_path) if params_path.is_file() else {}
    if sample_rate_hz is not None:
        rate = positive_rate(sample_rate_hz, "option sample_rate_hz")
    elif "sample_rate" in params:
        rate = positive_rate(params["sample_rate"], f"{params_path}: sample_rate")
    elif params_path.is_file():
        raise IngestError(f"{params_path}: no 'sample_rate = ...' assignment; pass sample_rate_hz=")
    else:
        raise IngestError(f"{params_path}: missing (it gives sample_rate); pass sample_rate_hz=")

    times_path = src / "spike_times.npy"
    samples = _vector(times_path, "fiu")
    ids_path = src / "spike_clusters.npy"
    if not ids_path.is_file() and (src / "spike_templates.npy").is_file():
        ids_path = src / "spike_templates.npy"
        notes.append("no spike_clusters.npy: units are Kilosort templates (spike_templates.npy)")
    clusters = _vector(ids_path, "iu")
    if clusters.size != samples.size:
        raise IngestError(
            f"{ids_path}: has {clusters.size} entries but {times_path.name} has {samples.size}"
        )
    if samples.size == 0:
        raise IngestError(f"{times_path}: has no spikes")

    labels, label_file = _labels(src)
    if groups is not None:
        if labels is None:
            raise IngestError(
                f"{src}: no cluster_group.tsv, cluster_KSLabel.tsv or cluster_info.tsv 'group' "
                f"column to select groups {groups}; pass groups=None to keep every cluster"
            )
        kept = np.array(sorted(c for c, g in labels.items() if g in groups), dtype=np.int64)
        if kept.size == 0:
            raise IngestError(
                f"{label_file}: no cluster labelled {' or '.join(groups)}; no units to ingest"
            )
    else:
        kept = None

    times, ids, last = _gather(samples, clusters, kept, times_path, chunk_spikes)
    if kept is None:
        kept = np.unique(ids)
    present, counts = np.unique(ids, return_counts=True)
    empty = np.setdiff1d(kept, present[counts > 0])
    if empty.size:
        c = int(empty[0])
        raise IngestError(
            f"{ids_path}: empty spike train: cluster {c} (group {labels[c]!r} in {label_file}) "
            "has no spikes"
        )

    if n_samples is None:
        n_samples = _recording_samples(src, params, notes)
    else:
        n_samples = positive_option("n_samples", n_samples, integer=True)
    if n_samples is not None:
        n_samples = int(n_samples)
        if last >= n_samples:
            i = int(np.searchsorted(samples, n_samples))  # samples are sorted: checked above
            raise IngestError(
                f"{times_path}[{i}] = {samples[i]} is beyond the recording's {n_samples} samples"
            )
        t_stop = n_samples / rate
    else:
        t_stop = last / rate
        notes.append("recording length unknown: t_stop = the last spike")
    try:
        spikes = SpikeTrains.from_pairs(times / rate, ids, 0.0, t_stop, unit_ids=kept)
    except SpikeTrainError as exc:
        raise IngestError(f"{times_path}: {exc}") from None

    units = {
        "group": np.array([labels.get(int(c), "unsorted") if labels else "unsorted" for c in kept])
    }
    units.update(_cluster_info(src, kept))
    options = dict(groups=groups, sample_rate_hz=rate, n_samples=n_samples)
    attrs = store_attrs("phy", src, options)
    attrs["notes"] = notes
    with StoreWriter(out, source=f"phy:{src.resolve()}", attrs=attrs) as w:
        w.spikes(spikes)
        w.units(units)
    return IngestSummary(
        "phy", src, out, n_units=spikes.n_units, n_spikes=spikes.n_spikes, notes=tuple(notes)
    )


def read_params(path: Path) -> dict:
    """The ``name = literal`` assignments of a phy params.py, without executing it.

    Assignments whose value is not a Python literal (a call, a name) are skipped.
    """
    try:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise IngestError(f"{path}: line {exc.lineno}: not valid Python ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(f"{path}: cannot be read ({exc})") from None
    params = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    params[target.id] = ast.literal_eval(node.value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    continue
    return params


def _vector(path: Path, kinds: str) -> np.ndarray:
    """A memory-mapped (n,) or (n, 1) .npy array of one of the dtype ``kinds``, as (n,)."""
    arr = load_npy(path)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise IngestError(f"{path}: expected a vector (n,) or (n, 1), got shape {arr.shape}")
    if arr.dtype.kind not in kinds:
        raise IngestError(f"{path}: expected integer values, got dtype {arr.dtype}")
    return arr


def _gather(samples, clusters, kept, path: Path, chunk: int):
    """Check the spike samples chunk by chunk and gather those of the ``kept`` clusters.

    Returns (samples (k,) int64, cluster ids (k,) int64, the last sample of the file).
    """
    out_t, out_c = [], []
    prev = None
    for a in range(0, samples.size, chunk):
        t = np.asarray(samples[a : a + chunk])
        c = np.asarray(clusters[a : a + chunk]).astype(np.int64)
        if t.dtype.kind == "f":
            bad = ~np.isfinite(t) | (t != np.round(t))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise IngestError(f"{path}[{a + i}] = {t[i]} is not a whole number of samples")
        if t.dtype.kind in "fi" and (t < 0).any():
            i = int(np.flatnonzero(t < 0)[0])
            raise IngestError(f"{path}[{a + i}] = {t[i]} is negative")
        t = t.astype(np.int64)
        d = np.diff(t, prepend=t[0] if prev is None else prev)
        if (d < 0).any():
            i = int(np.flatnonzero(d < 0)[0])
            before = t[i - 1] if i > 0 else prev
            raise IngestError(
                f"{path}: spike times are not sorted at index {a + i} ({t[i]} after {before})"
            )
        prev = t[-1]
        keep = slice(None) if kept is None else np.isin(c, kept)
        out_t.append(t[keep])
        out_c.append(c[keep])
    return np.concatenate(out_t), np.concatenate(out_c), int(prev)


def read_tsv(path: Path, id_columns=("cluster_id", "id")) -> tuple[np.ndarray, dict]:
    """A phy .tsv table: (cluster ids (n,) int64, column name → list of str values)."""
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(f"{path}: cannot be read ({exc})") from None
    if not lines:
        raise IngestError(f"{path}: empty (expected a header line)")
    header = [h.strip() for h in lines[0].split("\t")]
    id_col = next((k for k, h in enumerate(header) if h in id_columns), None)
    if id_col is None or len(header) < 2:
        raise IngestError(
            f"{path}: header {header} needs a cluster id column ({' or '.join(id_columns)}) "
            "and at least one more, tab-separated"
        )
    ids, cols = [], {h: [] for k, h in enumerate(header) if k != id_col}
    for row, line in enumerate(lines[1:], start=1):
        fields = line.split("\t")
        if len(fields) != len(header):
            raise IngestError(
                f"{path}: row {row} has {len(fields)} fields, the header has {len(header)}"
            )
        try:
            ids.append(int(fields[id_col]))
        except ValueError:
            raise IngestError(
                f"{path}: row {row}: cluster id {fields[id_col]!r} is not an integer"
            ) from None
        for k, h in enumerate(header):
            if k != id_col:
                cols[h].append(fields[k].strip())
    ids = np.array(ids, dtype=np.int64)
    if np.unique(ids).size != ids.size:
        u, n = np.unique(ids, return_counts=True)
        raise IngestError(f"{path}: cluster {int(u[n > 1][0])} is listed twice")
    return ids, cols


def _labels(src: Path):
    """(cluster id → label, the file it came from), or (None, None) without a label file."""
    for name, column in _LABEL_FILES:
        path = src / name
        if path.is_file():
            ids, cols = read_tsv(path)
            values = cols.get(column) or next(iter(cols.values()))
            return dict(zip(ids.tolist(), values, strict=True)), path
    path = src / "cluster_info.tsv"
    if path.is_file():
        ids, cols = read_tsv(path)
        if "group" in cols:
            return {int(c): g or "unsorted" for c, g in zip(ids, cols["group"], strict=True)}, path
    return None, None


def _cluster_info(src: Path, kept: np.ndarray) -> dict:
    """``channel`` (int, −1 if unknown) and ``depth_um`` (NaN if unknown) of the kept
    clusters from cluster_info.tsv, when it has the ``ch`` and ``depth`` columns."""
    path = src / "cluster_info.tsv"
    if not path.is_file():
        return {}
    ids, cols = read_tsv(path)
    row_of = {int(c): r for r, c in enumerate(ids)}
    out = {}
    for column, name, dtype, missing in (
        ("ch", "channel", np.int64, -1),
        ("depth", "depth_um", np.float64, np.nan),
    ):
        if column not in cols:
            continue
        values = np.full(kept.size, missing, dtype=dtype)
        for k, c in enumerate(kept):
            r = row_of.get(int(c))
            if r is None or cols[column][r] == "":
                continue
            try:
                values[k] = dtype(float(cols[column][r]))
            except ValueError:
                raise IngestError(
                    f"{path}: row {r + 1}: {column} = {cols[column][r]!r} is not a number"
                ) from None
        out[name] = values
    return out


def _recording_samples(src: Path, params: dict, notes: list) -> int | None:
    """Samples in the raw data file(s) of params.py, or None when they cannot be found."""
    dat = params.get("dat_path")
    n_channels = params.get("n_channels_dat")
    if dat is None or n_channels is None:
        return None
    files = [dat] if isinstance(dat, str) else list(dat)
    try:
        itemsize = np.dtype(params.get("dtype", "int16")).itemsize
        offset = int(params.get("offset", 0))
        total = 0
        for f in files:
            path = Path(f) if Path(f).is_absolute() else src / f
            if not path.is_file():
                notes.append(f"raw data file {path} not found: recording length unknown")
                return None
            total += (path.stat().st_size - offset) // (int(n_channels) * itemsize)
    except (TypeError, ValueError) as exc:
        notes.append(f"params.py raw-data fields unusable ({exc}): recording length unknown")
        return None
    notes.append(f"recording length {total} samples from the raw data file size")
    return int(total) if total > 0 else None
