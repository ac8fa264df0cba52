"""Ingesters: real inputs of each format built in tmp_path, round trips number for number,
and one test per bad input (clear error, no partial store, source bytes unchanged).

ΔF/F is checked against an independent float64 computation of the same formula whose
baseline is ``scipy.ndimage.percentile_filter``; with ``baseline_step_s`` = one frame the
ingester's baseline is the exact running percentile, so the match is to float32 rounding,
and with the default coarse grid the F0 error is held to the bounds documented in
observations/ingest/_baseline.py.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi

from observations import StoreError, open_store, validate_store
from observations.ingest import KINDS, IngestError, ingest, options_of
from observations.ingest._baseline import running_percentile

FS = 10.0  # Hz, the suite2p recordings below
WINDOW_S = 60.0


# -- helpers --------------------------------------------------------------------------------


def digest(src: Path) -> dict:
    """sha256 of every file under src (or of src itself)."""
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@contextlib.contextmanager
def untouched(src: Path):
    before = digest(src)
    yield
    assert digest(src) == before, "the source changed"


def fails(kind, src, out, match, exc=IngestError, **options):
    """ingest must raise ``exc`` matching ``match``, leave no store and not touch src."""
    with untouched(src), pytest.raises(exc, match=match) as info:
        ingest(kind, src, out, **options)
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.incomplete*"))
    return str(info.value)


def fluorescence(rng, n, T, fs, base=100.0):
    """Realistic F and Fneu (n, T) float32: bleaching, slow drift, transients, noise."""
    t = np.arange(T) / fs
    drift = base * (1 + 0.1 * np.sin(2 * np.pi * t / 300 + rng.uniform(0, 6, (n, 1))))
    drift *= np.exp(-t / 600)
    events = (rng.random((n, T)) < 0.3 / fs).astype(float)
    kernel = np.exp(-np.arange(int(3 * fs)) / (0.5 * fs))
    transients = np.array([np.convolve(e, kernel)[:T] for e in events])
    noise = 1 + 0.05 * rng.standard_normal((n, T))
    neuropil = 0.3 * drift * (1 + 0.02 * rng.standard_normal((n, T)))
    F = drift * (1 + transients) * noise + 0.7 * neuropil
    return F.astype(np.float32), neuropil.astype(np.float32)


def reference_dff(F, Fneu, coef, fs, window_s=WINDOW_S, percentile=8.0):
    """(F − c·Fneu − F0)/F0 in float64, F0 by scipy's running percentile filter."""
    y = F.astype(np.float64) - coef * Fneu.astype(np.float64)
    w = min(max(1, round(window_s * fs)), y.shape[1])
    F0 = ndi.percentile_filter(y, percentile, size=(1, w), mode="reflect")
    return (y - F0) / F0, y, F0


def make_suite2p(folder, F, Fneu, iscell, fs=FS, version=0, med=None):
    """A suite2p plane folder: v0 with ops.npy, v1 with settings.npy + db.npy."""
    folder.mkdir(parents=True)
    np.save(folder / "F.npy", F)
    np.save(folder / "Fneu.npy", Fneu)
    np.save(folder / "iscell.npy", iscell)
    if version == 0:
        ops = {"nplanes": 1, "neucoeff": 0.7, "tau": 1.0}
        if fs is not None:
            ops["fs"] = fs
        np.save(folder / "ops.npy", ops, allow_pickle=True)
    else:
        settings = {"tau": 1.0, "extraction": {"neuropil_coefficient": 0.7}}
        if fs is not None:
            settings["fs"] = fs
        np.save(folder / "settings.npy", settings, allow_pickle=True)
        np.save(folder / "db.npy", {"nplanes": 1, "data_path": ["raw"]}, allow_pickle=True)
    if med is not None:
        stat = np.array([{"med": list(m), "npix": 40} for m in med], dtype=object)
        np.save(folder / "stat.npy", stat, allow_pickle=True)
    return folder


@pytest.fixture
def s2p(tmp_path, rng):
    """A v0.x plane folder: 40 ROIs, 6000 frames at 10 Hz, 30 of them cells."""
    F, Fneu = fluorescence(rng, 40, 6000, FS)
    iscell = np.column_stack([np.ones(40), rng.random(40)])
    iscell[rng.choice(40, 10, replace=False), 0] = 0
    med = rng.integers(0, 512, (40, 2))
    return make_suite2p(tmp_path / "s2p", F, Fneu, iscell, med=med), F, Fneu, iscell, med


# -- the running percentile -----------------------------------------------------------------


@pytest.mark.parametrize("window", [1, 2, 7, 50, 51, 400, 1000])
@pytest.mark.parametrize("percentile", [0.0, 8.0, 50.0, 100.0])
def test_running_percentile_step1_is_scipy(rng, window, percentile):
    y = rng.standard_normal((3, 400)).astype(np.float32).cumsum(axis=1)
    w = min(window, 400)
    expected = ndi.percentile_filter(y, percentile, size=(1, w), mode="reflect")
    np.testing.assert_array_equal(running_percentile(y, window, percentile, step=1), expected)


def test_running_percentile_grid_accuracy():
    """The coarse grid (step = window/10) against the exact filter, on the signal model
    of _baseline.py's docstring: 30 Hz, 60 s window, 8th percentile."""
    rng = np.random.default_rng(3)
    F, _ = fluorescence(rng, 16, 12000, 30.0)
    exact = ndi.percentile_filter(F, 8, size=(1, 1800), mode="reflect")
    rel = np.abs(running_percentile(F, 1800, 8) - exact) / exact
    assert rel.max() < 0.02
    assert np.quantile(rel, 0.99) < 0.01
    # and finer steps converge to the exact filter
    rel20 = np.abs(running_percentile(F, 1800, 8, step=90) - exact) / exact
    assert np.quantile(rel20, 0.99) < np.quantile(rel, 0.99)


def test_running_percentile_ignores_nan(rng):
    y = rng.standard_normal((2, 300)).astype(np.float32) + 5
    y[0, 100:110] = np.nan
    y[1, :] = np.nan
    got = running_percentile(y, 41, 20.0, step=1)
    for t in range(300):  # rank among the finite values of the mirrored window
        idx = np.arange(t - 20, t + 21)
        idx = np.where(idx < 0, -idx - 1, np.where(idx >= 300, 599 - idx, idx))
        v = y[0, idx][np.isfinite(y[0, idx])]
        assert got[0, t] == np.partition(v, int(v.size * 0.2))[int(v.size * 0.2)]
    assert np.isnan(got[1]).all()


# -- suite2p --------------------------------------------------------------------------------


def test_suite2p_v0_exact_baseline_round_trip(s2p, tmp_path):
    folder, F, Fneu, iscell, med = s2p
    out = tmp_path / "obs.zarr"
    with untouched(folder):
        summary = ingest("suite2p", folder, out, baseline_step_s=1 / FS, block_neurons=16)
    kept = np.flatnonzero(iscell[:, 0] == 1)
    assert (summary.n_neurons, summary.n_frames, summary.frame_rate_hz) == (30, 6000, FS)
    assert "ops.npy" in summary.line() or "ops.npy" in " ".join(summary.notes)
    store, qc = validate_store(out)
    assert qc.nan_frames == 0
    dff = store.dff
    np.testing.assert_array_equal(dff["neuron"].values, kept)
    np.testing.assert_allclose(dff["time"].values, np.arange(6000) / FS, rtol=0, atol=0)
    assert store.calcium_attrs["frame_rate_hz"] == FS
    expected, _, _ = reference_dff(F[kept], Fneu[kept], 0.7, FS)
    got = dff.values.T.astype(np.float64)
    # float32 arithmetic in the ingester: |error| ≤ a few ulp of F relative to F0
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
    # units: classifier probability and centroids in pixels (x, y) without a pixel size
    np.testing.assert_array_equal(store.units["iscell_prob"], iscell[kept, 1])
    np.testing.assert_array_equal(store.units["centroid_px"], med[kept][:, ::-1])


def test_suite2p_default_grid_within_documented_error(s2p, tmp_path):
    folder, F, Fneu, iscell, _ = s2p
    out = tmp_path / "obs.zarr"
    ingest("suite2p", folder, out)  # block of 512 > 30 cells: one block
    kept = np.flatnonzero(iscell[:, 0] == 1)
    got = open_store(out).dff.values.T.astype(np.float64)
    _, y, F0 = reference_dff(F[kept], Fneu[kept], 0.7, FS)
    implied_F0 = y / (1 + got)  # y/F0 = 1 + ΔF/F
    rel = np.abs(implied_F0 - F0) / F0
    assert rel.max() < 0.02 and np.quantile(rel, 0.99) < 0.01


def test_suite2p_v1_parent_folder_settings(tmp_path, rng):
    F, Fneu = fluorescence(rng, 6, 1200, 15.0)
    iscell = np.column_stack([[1, 1, 0, 1, 1, 1], np.linspace(0, 1, 6)])
    med = rng.integers(0, 256, (6, 2))
    make_suite2p(tmp_path / "suite2p" / "plane0", F, Fneu, iscell, fs=15.0, version=1, med=med)
    out = tmp_path / "obs.zarr"
    summary = ingest(
        "suite2p",
        tmp_path / "suite2p",
        out,
        pixel_size_um=[1.5, 2.0],
        baseline_window_s=20.0,
        baseline_step_s=1 / 15.0,
        neuropil_coef=0.5,
    )
    assert summary.frame_rate_hz == 15.0
    assert any("settings.npy [fs]" in n for n in summary.notes)
    store = open_store(out)
    kept = np.array([0, 1, 3, 4, 5])
    expected, _, _ = reference_dff(F[kept], Fneu[kept], 0.5, 15.0, window_s=20.0)
    np.testing.assert_allclose(store.dff.values.T, expected, rtol=2e-5, atol=2e-5)
    pos = store.units["position_um"]
    np.testing.assert_array_equal(pos[:, 0], med[kept, 1] * 2.0)  # x = column × dx
    np.testing.assert_array_equal(pos[:, 1], med[kept, 0] * 1.5)  # y = row × dy
    np.testing.assert_array_equal(pos[:, 2], 0.0)


def test_suite2p_nested_fs_and_override(tmp_path, rng):
    F, Fneu = fluorescence(rng, 2, 500, 5.0)
    folder = make_suite2p(tmp_path / "p", F, Fneu, np.ones((2, 2)), fs=None, version=1)
    np.save(folder / "settings.npy", {"general": {"fs": 5.0}}, allow_pickle=True)
    assert ingest("suite2p", folder, tmp_path / "a.zarr").frame_rate_hz == 5.0
    assert ingest("suite2p", folder, tmp_path / "b.zarr", frame_rate_hz=4.0).frame_rate_hz == 4.0


def test_suite2p_nan_frames_allowed_and_counted(tmp_path, rng):
    F, Fneu = fluorescence(rng, 3, 2000, FS)
    F[:, 500:503] = np.nan  # three dropped frames
    folder = make_suite2p(tmp_path / "p", F, Fneu, np.ones((3, 2)))
    out = tmp_path / "obs.zarr"
    with untouched(folder):
        ingest("suite2p", folder, out, baseline_step_s=1 / FS)
    _, qc = validate_store(out)
    assert qc.nan_frames == 3
    np.testing.assert_array_equal(qc.nan_values_per_neuron, [3, 3, 3])
    dff = open_store(out).dff.values
    assert np.isfinite(np.delete(dff, [500, 501, 502], axis=0)).all()


# -- suite2p bad inputs ---------------------------------------------------------------------


def test_suite2p_malformed_F(s2p, tmp_path):
    folder = s2p[0]
    (folder / "F.npy").write_bytes(b"not a numpy file at all")
    fails("suite2p", folder, tmp_path / "o.zarr", r"F\.npy: not a readable \.npy file")


def test_suite2p_missing_Fneu(s2p, tmp_path):
    folder = s2p[0]
    (folder / "Fneu.npy").unlink()
    fails("suite2p", folder, tmp_path / "o.zarr", r"Fneu\.npy: missing")


def test_suite2p_not_a_suite2p_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    fails("suite2p", tmp_path / "empty", tmp_path / "o.zarr", "no F.npy")


def test_suite2p_F_Fneu_shape_mismatch(s2p, tmp_path):
    folder, _, Fneu, _, _ = s2p
    np.save(folder / "Fneu.npy", Fneu[:, :-1])
    fails("suite2p", folder, tmp_path / "o.zarr", r"Fneu\.npy: shape \(40, 5999\) differs")


def test_suite2p_iscell_length_mismatch(s2p, tmp_path):
    folder, _, _, iscell, _ = s2p
    np.save(folder / "iscell.npy", iscell[:39])
    fails("suite2p", folder, tmp_path / "o.zarr", r"iscell\.npy: has 39 rows .* 40 ROIs")


def test_suite2p_frame_rate_missing(s2p, tmp_path):
    folder = s2p[0]
    np.save(folder / "ops.npy", {"nplanes": 1}, allow_pickle=True)
    fails("suite2p", folder, tmp_path / "o.zarr", r"frame rate missing: no 'fs' in .*ops\.npy")


@pytest.mark.parametrize("fs", [0.0, -30.0, float("nan")])
def test_suite2p_frame_rate_not_positive(s2p, tmp_path, fs):
    folder = s2p[0]
    np.save(folder / "ops.npy", {"fs": fs}, allow_pickle=True)
    fails("suite2p", folder, tmp_path / "o.zarr", r"ops\.npy \[fs\]: rate must be finite and > 0")


def test_suite2p_inf_value(s2p, tmp_path):
    folder, F, _, iscell, _ = s2p
    roi = int(np.flatnonzero(iscell[:, 0] == 1)[-1])  # in the second block of 16
    F = F.copy()
    F[roi, 1234] = -np.inf
    np.save(folder / "F.npy", F)
    msg = fails("suite2p", folder, tmp_path / "o.zarr", "is infinite", block_neurons=16)
    assert f"F.npy: value at ROI {roi}, frame 1234" in msg


def test_suite2p_nonpositive_baseline(tmp_path, rng):
    F, Fneu = fluorescence(rng, 3, 1000, FS)
    Fneu[1] *= 10  # F − 0.7·Fneu < 0 everywhere for ROI 1
    folder = make_suite2p(tmp_path / "p", F, Fneu, np.ones((3, 2)))
    fails("suite2p", folder, tmp_path / "o.zarr", r"ROI 1: baseline F0 ≤ 0 at frame 0")
    out = tmp_path / "nan.zarr"
    summary = ingest("suite2p", folder, out, bad_baseline="nan")
    assert any("F0 ≤ 0 in 1 ROIs" in n for n in summary.notes)
    _, qc = validate_store(out)
    np.testing.assert_array_equal(qc.nan_values_per_neuron, [0, 1000, 0])


# -- phy ------------------------------------------------------------------------------------

SR = 30000.0
LABELS = {0: "good", 1: "mua", 2: "good", 5: "noise", 7: "good"}


def make_phy(folder, rng, n_spikes=5000, n_samples=20 * 30000, labels=LABELS, dat=True):
    """A phy folder: sorted uint64 samples (n, 1), int32 clusters, params.py, labels, info."""
    folder.mkdir(parents=True)
    samples = np.sort(rng.integers(0, n_samples, n_spikes)).astype(np.uint64)
    clusters = rng.choice(list(labels), n_spikes).astype(np.int32)
    np.save(folder / "spike_times.npy", samples[:, None])
    np.save(folder / "spike_clusters.npy", clusters)
    (folder / "params.py").write_text(
        "dat_path = 'recording.dat'\nn_channels_dat = 4\ndtype = 'int16'\noffset = 0\n"
        f"sample_rate = {SR}\nhp_filtered = False\n"
    )
    if dat:  # a sparse raw file: only its size matters
        with open(folder / "recording.dat", "wb") as f:
            f.truncate(n_samples * 4 * 2)
    rows = "".join(f"{c}\t{g}\n" for c, g in labels.items())
    (folder / "cluster_group.tsv").write_text("cluster_id\tgroup\n" + rows)
    info = "".join(f"{c}\t{c % 4}\t{20.0 * c}\t{g}\n" for c, g in labels.items() if c != 7)
    (folder / "cluster_info.tsv").write_text("cluster_id\tch\tdepth\tgroup\n" + info)
    return folder, samples, clusters


@pytest.fixture
def phy(tmp_path, rng):
    return make_phy(tmp_path / "phy", rng)


def test_phy_round_trip(phy, tmp_path):
    folder, samples, clusters = phy
    out = tmp_path / "obs.zarr"
    with untouched(folder):
        summary = ingest("phy", folder, out)
    good = [0, 2, 7]
    store, qc = validate_store(out)
    assert qc is None
    sp = store.spikes
    np.testing.assert_array_equal(sp.unit_ids, good)
    assert (sp.t_start_s, sp.t_stop_s) == (0.0, 20.0)  # from the raw file's size
    for k, c in enumerate(good):
        np.testing.assert_array_equal(sp.train(k), samples[clusters == c] / SR)
    assert summary.n_units == 3 and summary.n_spikes == int(np.isin(clusters, good).sum())
    np.testing.assert_array_equal(store.units["group"], ["good"] * 3)
    np.testing.assert_array_equal(store.units["channel"], [0, 2, -1])  # 7 lacks an info row
    np.testing.assert_array_equal(store.units["depth_um"], [0.0, 40.0, np.nan])


def test_phy_groups_and_templates_without_raw_file(tmp_path, rng):
    folder, samples, templates = make_phy(tmp_path / "ks", rng, dat=False)
    (folder / "spike_clusters.npy").rename(folder / "spike_templates.npy")
    (folder / "cluster_group.tsv").rename(folder / "cluster_KSLabel.tsv")
    out = tmp_path / "obs.zarr"
    summary = ingest("phy", folder, out, groups=["good", "mua"])
    sp = open_store(out).spikes
    np.testing.assert_array_equal(sp.unit_ids, [0, 1, 2, 7])
    assert sp.t_stop_s == float(samples[-1]) / SR  # no raw file: the last spike
    assert any("spike_templates" in n for n in summary.notes)
    every = ingest("phy", folder, tmp_path / "all.zarr", groups=None, n_samples=10**7)
    assert every.n_units == 5 and every.n_spikes == samples.size
    assert open_store(tmp_path / "all.zarr").spikes.t_stop_s == 10**7 / SR


def test_phy_params_are_parsed_not_executed(phy, tmp_path):
    folder = phy[0]
    trap = tmp_path / "executed"
    (folder / "params.py").write_text(
        f"import os\nopen({str(trap)!r}, 'w').write('x')\n"
        f"sample_rate = 25000.0\nn_channels_dat = os.cpu_count()\n"
    )
    ingest("phy", folder, tmp_path / "obs.zarr")
    assert not trap.exists()
    assert open_store(tmp_path / "obs.zarr").spikes.t_stop_s == float(phy[1][-1]) / 25000.0


# -- phy bad inputs -------------------------------------------------------------------------


def test_phy_length_mismatch(phy, tmp_path):
    folder, _, clusters = phy
    np.save(folder / "spike_clusters.npy", clusters[:-1])
    fails("phy", folder, tmp_path / "o.zarr", r"has 4999 entries but spike_times\.npy has 5000")


def test_phy_unsorted(phy, tmp_path):
    folder, samples, _ = phy
    s = samples.copy()
    s[1000], s[1001] = s[1001] + 5, s[1000]
    np.save(folder / "spike_times.npy", s)
    fails("phy", folder, tmp_path / "o.zarr", r"not sorted at index 1001", chunk_spikes=1001)


def test_phy_negative_samples(phy, tmp_path):
    folder, samples, _ = phy
    s = samples.astype(np.int64)
    s[:8] = np.arange(-8, 0)
    np.save(folder / "spike_times.npy", s)
    fails("phy", folder, tmp_path / "o.zarr", r"spike_times\.npy\[0\] = -8 is negative")


def test_phy_non_integer_samples(phy, tmp_path):
    folder, samples, _ = phy
    s = samples.astype(np.float64)
    s[5] += 0.5
    np.save(folder / "spike_times.npy", s)
    fails(
        "phy", folder, tmp_path / "o.zarr", r"spike_times\.npy\[5\] = .*\.5 is not a whole number"
    )


def test_phy_float_cluster_ids(phy, tmp_path):
    folder, _, clusters = phy
    np.save(folder / "spike_clusters.npy", clusters.astype(np.float32))
    fails("phy", folder, tmp_path / "o.zarr", r"spike_clusters\.npy: expected integer values")


def test_phy_empty_kept_cluster(phy, tmp_path):
    folder = phy[0]
    with open(folder / "cluster_group.tsv", "a") as f:
        f.write("9\tgood\n")
    fails("phy", folder, tmp_path / "o.zarr", r"empty spike train: cluster 9 \(group 'good'")


def test_phy_no_kept_units(phy, tmp_path):
    folder = phy[0]
    (folder / "cluster_group.tsv").write_text("cluster_id\tgroup\n0\tmua\n1\tnoise\n")
    fails("phy", folder, tmp_path / "o.zarr", r"cluster_group\.tsv: no cluster labelled good")


def test_phy_malformed_label_row(phy, tmp_path):
    folder = phy[0]
    (folder / "cluster_group.tsv").write_text("cluster_id\tgroup\n0\tgood\nx\tgood\n")
    fails("phy", folder, tmp_path / "o.zarr", r"cluster_group\.tsv: row 2: cluster id 'x'")


def test_phy_params_without_sample_rate(phy, tmp_path):
    folder = phy[0]
    (folder / "params.py").write_text("n_channels_dat = 4\n")
    fails("phy", folder, tmp_path / "o.zarr", r"params\.py: no 'sample_rate = \.\.\.'")
    (folder / "params.py").write_text("sample_rate = 30000.\nn_channels = (\n")
    fails("phy", folder, tmp_path / "o.zarr", r"params\.py: line \d+: not valid Python")


def test_phy_spike_beyond_recording(phy, tmp_path):
    folder, samples, _ = phy
    n = int(samples[2500])  # spikes 2500… lie beyond a recording of n samples
    i = int(np.searchsorted(samples, n))
    match = rf"spike_times\.npy\[{i}\] = {samples[i]} is beyond the recording's {n} samples"
    fails("phy", folder, tmp_path / "o.zarr", match, n_samples=n)


# -- NWB ------------------------------------------------------------------------------------


def make_nwb(path, F, Fneu, dff, rate, spike_trains, timestamps=False):
    """An NWB file: 6 ROIs (ids 10…15), DfOverF/dff, Fluorescence/plane0, Neuropil/plane0
    (suite2p's export layout), and a units table with a text column."""
    pynwb = pytest.importorskip("pynwb")
    from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, OpticalChannel

    nwb = pynwb.NWBFile(
        session_description="ingest test",
        identifier="t",
        session_start_time=datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC),
    )
    device = nwb.create_device(name="scope")
    channel = OpticalChannel(name="green", description="gcamp", emission_lambda=510.0)
    plane = nwb.create_imaging_plane(
        name="plane",
        optical_channel=channel,
        imaging_rate=rate,
        description="L2/3",
        device=device,
        excitation_lambda=920.0,
        indicator="GCaMP6s",
        location="V1",
    )
    segmentation = ImageSegmentation()
    ps = segmentation.create_plane_segmentation(name="cells", description="d", imaging_plane=plane)
    for k in range(F.shape[1]):
        ps.add_roi(pixel_mask=[(k, k, 1.0)], id=10 + k)
    ophys = nwb.create_processing_module(name="ophys", description="processed")
    ophys.add(segmentation)
    rois = ps.create_roi_table_region(region=list(range(F.shape[1])), description="all")
    timing = {"timestamps": np.arange(len(F)) / rate + 2.0} if timestamps else {"rate": rate}
    # Containers go into the file before their series, so that each series' ROI region
    # shares an ancestor with the PlaneSegmentation it points to.
    for container, series, data in (
        (DfOverF(name="DfOverF"), "dff", dff),
        (Fluorescence(name="Fluorescence"), "plane0", F),
        (Fluorescence(name="Neuropil"), "plane0", Fneu),
    ):
        ophys.add(container)
        container.create_roi_response_series(
            name=series, data=data, rois=rois, unit="n.a.", **timing
        )
    nwb.add_unit_column(name="quality", description="curation label")
    for k, train in enumerate(spike_trains):
        nwb.add_unit(spike_times=train, quality=["good", "mua", "good"][k], id=100 + k)
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


@pytest.fixture
def nwb_file(tmp_path, rng):
    pytest.importorskip("pynwb")
    rate = 10.0
    F, Fneu = (a.T.copy() for a in fluorescence(rng, 6, 3000, rate))  # NWB is (time, roi)
    dff = rng.standard_normal((3000, 6)).astype(np.float32)
    dff[100] = np.nan  # a dropped frame
    trains = [np.sort(rng.uniform(0, 290, m)) for m in (50, 7, 120)]
    path = make_nwb(tmp_path / "session.nwb", F, Fneu, dff, rate, trains)
    return path, F, Fneu, dff, trains


def test_nwb_dff_and_units_round_trip(nwb_file, tmp_path):
    path, _, _, dff, trains = nwb_file
    out = tmp_path / "obs.zarr"
    with untouched(path):
        summary = ingest("nwb", path, out, block_frames=700)  # DfOverF is chosen by default
    assert (summary.n_neurons, summary.n_frames, summary.n_units) == (6, 3000, 3)
    store, qc = validate_store(out)
    assert qc.nan_frames == 1
    got = store.dff
    np.testing.assert_array_equal(got.values, dff)  # stored as is
    np.testing.assert_array_equal(got["neuron"].values, np.arange(10, 16))
    np.testing.assert_allclose(got["time"].values, np.arange(3000) / 10.0, rtol=1e-15)
    assert store.calcium_attrs["indicator"] == "GCaMP6s"
    np.testing.assert_array_equal(store.spikes.unit_ids, [100, 101, 102])
    for k, train in enumerate(trains):
        np.testing.assert_array_equal(store.spikes.train(k), train)
    np.testing.assert_array_equal(store.units["quality"], ["good", "mua", "good"])
    only = ingest("nwb", path, tmp_path / "spikes.zarr", calcium=False)
    assert (only.n_neurons, only.n_units) == (0, 3)
    assert not open_store(tmp_path / "spikes.zarr").has_calcium


def test_nwb_fluorescence_with_neuropil(nwb_file, tmp_path):
    path, F, Fneu, _, _ = nwb_file
    out = tmp_path / "obs.zarr"
    ingest(
        "nwb",
        path,
        out,
        series="Fluorescence/plane0",
        neuropil_series="Neuropil/plane0",
        baseline_step_s=0.1,
        block_frames=512,
        block_neurons=4,
        spikes=False,
    )
    store = open_store(out)
    assert store.spikes is None
    expected, _, _ = reference_dff(F.T, Fneu.T, 0.7, 10.0)
    np.testing.assert_allclose(store.dff.values.T, expected, rtol=2e-5, atol=2e-5)


def test_nwb_timestamps(tmp_path, rng):
    pytest.importorskip("pynwb")
    F, Fneu = (a.T.copy() for a in fluorescence(rng, 6, 300, 10.0))
    dff = rng.standard_normal((300, 6)).astype(np.float32)
    path = make_nwb(tmp_path / "ts.nwb", F, Fneu, dff, 10.0, [[0.5], [1.0], [2.0]], True)
    summary = ingest("nwb", path, tmp_path / "obs.zarr", series="dff")
    assert summary.frame_rate_hz == pytest.approx(10.0)
    t = open_store(tmp_path / "obs.zarr").dff["time"].values
    np.testing.assert_allclose(t, np.arange(300) / 10.0 + 2.0)


def test_nwb_ambiguous_series(nwb_file, tmp_path):
    path = nwb_file[0]
    fails(
        "nwb",
        path,
        tmp_path / "o.zarr",
        r"series 'plane0' is ambiguous; .*Neuropil/plane0",
        series="plane0",
    )


def test_nwb_inf_value(tmp_path, rng):
    pytest.importorskip("pynwb")
    F, Fneu = (a.T.copy() for a in fluorescence(rng, 6, 300, 10.0))
    dff = rng.standard_normal((300, 6)).astype(np.float32)
    dff[250, 4] = np.inf
    path = make_nwb(tmp_path / "inf.nwb", F, Fneu, dff, 10.0, [[0.5], [1.0], [2.0]])
    fails(
        "nwb",
        path,
        tmp_path / "o.zarr",
        r"DfOverF/dff data\[250, 4\] \(ROI id 14\) is infinite",
        block_frames=100,
    )


def test_nwb_unsorted_unit(tmp_path, rng):
    pytest.importorskip("pynwb")
    F, Fneu = (a.T.copy() for a in fluorescence(rng, 6, 300, 10.0))
    dff = rng.standard_normal((300, 6)).astype(np.float32)
    path = make_nwb(tmp_path / "u.nwb", F, Fneu, dff, 10.0, [[0.5, 0.7], [1.0, 3.0, 2.0], [2.0]])
    fails("nwb", path, tmp_path / "o.zarr", r"unit id 101: spike times are not sorted at spike 2")


def test_nwb_not_an_nwb_file(tmp_path):
    pytest.importorskip("pynwb")
    bad = tmp_path / "x.nwb"
    bad.write_bytes(b"\x89HDF garbage")
    fails("nwb", bad, tmp_path / "o.zarr", r"x\.nwb: not a readable NWB file")


# -- npz and CSV ----------------------------------------------------------------------------


def test_npz_spikes_and_calcium_round_trip(tmp_path, rng):
    times = rng.uniform(0, 50, 4000)
    units = rng.choice([3, 8, 21], 4000)
    dff = rng.standard_normal((2500, 5)).astype(np.float32)
    dff[[7, 2048], :] = np.nan
    dff[9, 2] = np.nan
    src = tmp_path / "rec.npz"
    np.savez_compressed(
        src,
        spike_times=times,
        spike_units=units,
        t_stop_s=60.0,
        dff=dff,
        frame_rate_hz=20.0,
        neuron_ids=np.array([4, 5, 9, 11, 12]),
        indicator=np.array("GCaMP6f"),
    )
    out = tmp_path / "obs.zarr"
    with untouched(src):
        summary = ingest("npz", src, out, block_frames=1000, chunk_spikes=999)
    assert (summary.n_units, summary.n_spikes, summary.n_neurons) == (3, 4000, 5)
    store, qc = validate_store(out)
    assert qc.nan_frames == 3
    np.testing.assert_array_equal(qc.nan_values_per_neuron, [2, 2, 3, 2, 2])
    np.testing.assert_array_equal(store.dff.values, dff)
    np.testing.assert_array_equal(store.dff["neuron"].values, [4, 5, 9, 11, 12])
    assert store.calcium_attrs["indicator"] == "GCaMP6f"
    sp = store.spikes
    assert (sp.t_start_s, sp.t_stop_s) == (0.0, 60.0)
    for k, u in enumerate([3, 8, 21]):
        np.testing.assert_array_equal(sp.train(k), np.sort(times[units == u]))


def test_npz_fortran_ordered_dff(tmp_path, rng):
    neuron_major = rng.standard_normal((7, 900)).astype(np.float32)
    src = tmp_path / "f.npz"
    np.savez(src, dff=neuron_major.T, time_s=np.arange(900) * 0.05 + 1.0)
    assert np.load(src)["dff"].flags.f_contiguous
    summary = ingest("npz", src, tmp_path / "obs.zarr", frame_rate_hz=20.0, block_neurons=3)
    assert summary.n_frames == 900
    got = open_store(tmp_path / "obs.zarr").dff
    np.testing.assert_array_equal(got.values, neuron_major.T)
    np.testing.assert_allclose(got["time"].values, np.arange(900) * 0.05 + 1.0)


def test_csv_folder_spikes_and_traces(tmp_path, rng):
    folder = tmp_path / "csv"
    folder.mkdir()
    times = np.round(rng.uniform(0, 10, 300), 6)
    units = rng.choice([1, 2, 5], 300)
    (folder / "spikes.csv").write_text(
        "time_s,unit\n" + "".join(f"{float(t)!r},{u}\n" for t, u in zip(times, units, strict=True))
    )
    values = np.round(rng.standard_normal((50, 3)), 4)
    rows = [f"{k / 30!r}," + ",".join(repr(float(v)) for v in row) for k, row in enumerate(values)]
    rows[10] = f"{10 / 30!r},,nan,{float(values[10, 2])!r}"  # a missing value and a NaN
    values[10, :2] = np.nan
    (folder / "dff.csv").write_text("time_s,4,7,9\n" + "\n".join(rows) + "\n")
    out = tmp_path / "obs.zarr"
    with untouched(folder):
        summary = ingest("csv", folder, out, block_frames=16)
    assert summary.frame_rate_hz == pytest.approx(30.0)
    store, qc = validate_store(out)
    assert qc.nan_frames == 1
    np.testing.assert_array_equal(store.dff.values, values.astype(np.float32))
    np.testing.assert_array_equal(store.dff["neuron"].values, [4, 7, 9])
    for k, u in enumerate([1, 2, 5]):
        np.testing.assert_array_equal(store.spikes.train(k), np.sort(times[units == u]))


def test_npz_negative_spike_time(tmp_path):
    src = tmp_path / "s.npz"
    np.savez(src, spike_times=np.array([0.1, 0.2, 0.3, -0.5]), spike_units=np.array([1, 1, 2, 2]))
    fails("npz", src, tmp_path / "o.zarr", r"spike_times\[3\] = -0.5 is negative")


def test_npz_inf_value(tmp_path, rng):
    dff = rng.standard_normal((40, 3)).astype(np.float32)
    dff[12, 1] = -np.inf
    src = tmp_path / "d.npz"
    np.savez(src, dff=dff, frame_rate_hz=10.0, neuron_ids=np.array([10, 11, 12]))
    fails("npz", src, tmp_path / "o.zarr", r"dff\[12, 1\] \(neuron id 11\) is -inf", block_frames=8)


def test_npz_frame_rate_missing_and_bad(tmp_path):
    src = tmp_path / "d.npz"
    np.savez(src, dff=np.zeros((10, 2), np.float32))
    fails("npz", src, tmp_path / "o.zarr", "frame rate missing")
    np.savez(src, dff=np.zeros((10, 2), np.float32), frame_rate_hz=-1.0)
    fails("npz", src, tmp_path / "o.zarr", r"frame_rate_hz: rate must be finite and > 0")


def test_npz_pickled_member_refused(tmp_path):
    src = tmp_path / "p.npz"
    np.savez(src, spike_times=np.array([0.1]), spike_units=np.array([{"a": 1}], dtype=object))
    fails("npz", src, tmp_path / "o.zarr", r"spike_units: holds Python objects")


def test_csv_malformed_row(tmp_path):
    src = tmp_path / "d.csv"
    src.write_text("time_s,1,2\n0.0,1,2\n0.1,1,2\n0.2,1\n")
    fails("csv", src, tmp_path / "o.zarr", r"d\.csv: line 4: expected 3 fields, got 2")


def test_csv_inf_value(tmp_path):
    src = tmp_path / "d.csv"
    src.write_text("time_s,1,2\n0.0,1,2\n0.1,1,2\n0.2,1,2\n0.3,1,2\n0.4,inf,2\n")
    fails("csv", src, tmp_path / "o.zarr", r"line 6: neuron 1 is inf", block_frames=2)


def test_csv_bad_header_and_times(tmp_path):
    src = tmp_path / "d.csv"
    src.write_text("t,unit\n0.1,1\n")
    fails("csv", src, tmp_path / "o.zarr", r"line 1: header must be 'time_s,unit'")
    src.write_text("time_s,unit\n0.1,1\n-0.2,1\n")
    fails("csv", src, tmp_path / "o.zarr", r"line 3: time_s = -0.2 is negative")
    src.write_text("time_s,unit\n0.1,1\n5.0,2\n")
    fails("csv", src, tmp_path / "o.zarr", r"line 3: time_s = 5.0 is outside", t_stop_s=2.0)
    src.write_text("time_s,1\n0.0,1\n0.2,1\n0.1,1\n")
    fails("csv", src, tmp_path / "o.zarr", r"line 4: time_s = 0.1 is not after")


# -- the front door -------------------------------------------------------------------------


def test_unknown_option_and_kind(s2p, tmp_path):
    folder = s2p[0]
    msg = fails(
        "suite2p",
        folder,
        tmp_path / "o.zarr",
        r"unknown option 'baseline_windw_s'",
        baseline_windw_s=30,
    )
    assert "baseline_window_s" in msg  # the valid options are listed
    fails("tiff", folder, tmp_path / "o.zarr", r"unknown kind 'tiff'")
    assert set(KINDS) == {"suite2p", "phy", "nwb", "npz", "csv"}
    assert options_of("phy")["groups"] == ("good",)


def test_existing_store_is_not_overwritten(phy, tmp_path):
    folder = phy[0]
    out = tmp_path / "obs.zarr"
    ingest("phy", folder, out)
    before = digest(out)
    with untouched(folder), pytest.raises(StoreError, match="exists already"):
        ingest("phy", folder, out)
    assert digest(out) == before


def test_missing_source(tmp_path):
    fails("npz", tmp_path / "nope.npz", tmp_path / "o.zarr", r"nope\.npz: no such file")
