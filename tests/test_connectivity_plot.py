"""``spikeda plot`` of connectivity results: the curves it draws and the files it writes."""

import hashlib

import numpy as np
import pytest
import xarray as xr
from test_cli import spikeda
from test_glmcc import needs_data, sample  # noqa: F401  (fixture)

from inference import GLMCC, CrossCorrelogramTest
from inference.connectivity_plot import pair_curves


def _tree_sha(path):
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def fitted(sample):  # noqa: F811
    return GLMCC(delay_ms="scan").fit(sample, pairs=[(9, 4), (2, 5), (0, 1)])


@needs_data
def test_fitted_rate_integrates_to_the_lag_count(fitted):
    """At the MAP Σ_k ∫_bin c = Σ_k n_k (the prior's gradient sums to zero over a)."""
    for pre, post in [(9, 4), (4, 9), (2, 5)]:
        c = pair_curves(fitted, pre, post, n_points=200_001)
        integral = np.trapezoid(c["rate"], c["t"])
        assert integral == pytest.approx(c["counts"].sum(), rel=2e-3)


@needs_data
def test_a_pair_and_its_reverse_are_mirror_images(fitted):
    fwd, back = pair_curves(fitted, 9, 4), pair_curves(fitted, 4, 9)
    np.testing.assert_array_equal(fwd["counts"], back["counts"][::-1])
    np.testing.assert_array_equal(fwd["a"], back["a"][::-1])
    assert fwd["J"] == back["J"][::-1]
    # the known strong link 9 → 4 is a peak at positive lags t = t4 − t9
    W = fwd["counts"].size // 2
    assert fwd["counts"][W + 1 : W + 8].sum() > fwd["counts"][W - 8 : W - 1].sum()
    assert fwd["J"][0] > 1.0


@needs_data
def test_plot_from_the_command_line(tmp_path, fitted):
    store = tmp_path / "conn.zarr"
    fitted.to_zarr(store, consolidated=False)
    before = _tree_sha(store)
    res = spikeda("plot", store, "--pair", "9,4", "--pair", "4,9", "-o", tmp_path / "fig")
    assert res.returncode == 0, res.stderr
    written = res.stdout.split()
    assert [p.rsplit("/", 1)[1] for p in written] == [
        "connectivity.png", "pair_9_4.png", "pair_4_9.png"]  # fmt: skip
    for p in written:
        assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert _tree_sha(store) == before  # the result store is read, never changed
    bad = spikeda("plot", store, "--pair", "9,77")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "9,77" in bad.stderr and "Traceback" not in bad.stderr


@needs_data
def test_baseline_results_plot_their_matrix_but_have_no_correlograms(tmp_path, sample):  # noqa: F811
    store = tmp_path / "cc.zarr"
    CrossCorrelogramTest().fit(sample.select(np.arange(6))).to_zarr(store, consolidated=False)
    ok = spikeda("plot", store)
    assert ok.returncode == 0 and ok.stdout.strip().endswith("connectivity.png")
    assert (tmp_path / "cc.zarr.plots" / "connectivity.png").exists()
    res = spikeda("plot", store, "--pair", "0,1")
    assert res.returncode == 2 and "GLMCC result" in res.stderr


def test_plot_refuses_what_is_not_a_result_store(tmp_path):
    xr.Dataset({"x": ("t", np.arange(3))}).to_zarr(tmp_path / "x.zarr", consolidated=False)
    res = spikeda("plot", tmp_path / "x.zarr")
    assert res.returncode == 2 and "attrs['kind']" in res.stderr
    res = spikeda("plot", tmp_path / "missing.zarr")
    assert res.returncode == 2 and "no such store" in res.stderr
