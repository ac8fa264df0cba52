"""The LETKF against a second, deliberately plain implementation of Hunt et al. (2007)."""

import numpy as np
import pytest
import scipy.linalg
from conftest import reference_distance, reference_gc

from enkf import DistanceLocalizer, letkf


def reference_letkf(E, HE, y, R, xs, xo, radius, period, taper):
    """Hunt et al. (2007) steps 1–8, one state entry at a time, with a matrix square root."""
    N, M = E.shape
    xb, yb = E.mean(0), HE.mean(0)
    A, Y = E - xb, HE - yb
    Rm = np.diag(R) if np.ndim(R) == 1 else np.asarray(R)
    Ea = np.empty_like(E)
    for j in range(M):
        d = reference_distance(xs[j], xo, period)
        if taper == "step":
            w = (d <= radius).astype(float)
        else:
            w = np.array([reference_gc(di / (1.82 * radius)) for di in d])
        sel = w > 0
        if not sel.any():
            Ea[:, j] = E[:, j]
            continue
        Dh = np.diag(np.sqrt(w[sel]))
        Rinv = Dh @ np.linalg.inv(Rm[np.ix_(sel, sel)]) @ Dh  # tapered R⁻¹
        Yl = Y[:, sel]
        C = Yl @ Rinv  # (N, p)
        Pt = np.linalg.inv((N - 1) * np.eye(N) + C @ Yl.T)
        Wa = np.real(scipy.linalg.sqrtm((N - 1) * Pt))
        wbar = Pt @ C @ (y[sel] - yb[sel])
        Ea[:, j] = xb[j] + (Wa + wbar[None, :]) @ A[:, j]
    return Ea


@pytest.fixture(params=["serial", "parallel"])
def kernel(request, monkeypatch):
    """Run the test through each of the two LETKF kernels, whatever the problem size."""
    from enkf import analysis

    monkeypatch.setattr(analysis, "_PARALLEL_WORK", 0 if request.param == "parallel" else np.inf)
    return request.param


@pytest.mark.parametrize("taper", ["gaspari_cohn", "step"])
@pytest.mark.parametrize("full_r", [False, True])
def test_letkf_matches_reference_on_periodic_line(taper, full_r, rng, kernel):
    """Lorenz-96-like geometry: 40 entries on a circle, every other one observed."""
    N, M = 12, 40
    E = rng.normal(size=(N, M)) + np.sin(np.arange(M) / 3)
    obs = np.arange(0, M, 2)
    HE = E[:, obs] + 0.05 * rng.normal(size=(N, obs.size))
    y = rng.normal(size=obs.size)
    if full_r:
        # Correlated errors between neighbouring observations.
        d = np.abs(obs[:, None] - obs[None, :])
        R = 0.8 * np.exp(-np.minimum(d, M - d) / 3.0)
    else:
        R = rng.uniform(0.5, 1.5, size=obs.size)
    loc = DistanceLocalizer(np.arange(M), obs, 3.0, period=M, taper=taper)
    ref = reference_letkf(E, HE, y, R, np.arange(M)[:, None], obs[:, None], 3.0, [M], taper)
    np.testing.assert_allclose(letkf(E, HE, y, R, loc), ref, rtol=1e-9, atol=1e-9)


def test_letkf_matches_reference_on_a_sheet(rng, kernel):
    """2-D positions, several state entries per domain, one periodic and one open axis, and
    domains that see no observation at all (they must be left unchanged)."""
    N = 15
    cells = rng.uniform(0, 10, size=(25, 2))
    xs = np.repeat(cells, 3, axis=0)  # 3 entries (e.g. V, g_e, g_i) per neuron
    xo = rng.uniform(0, 6, size=(30, 2))  # observations cover only part of the sheet
    E = rng.normal(size=(N, xs.shape[0]))
    HE = rng.normal(size=(N, 30)) + E[:, :30]
    y = rng.normal(size=30)
    R = np.full(30, 0.4)
    loc = DistanceLocalizer(xs, xo, 0.6, period=[10.0, None])
    got = letkf(E, HE, y, R, loc)
    ref = reference_letkf(E, HE, y, R, xs, xo, 0.6, [10.0, None], "gaspari_cohn")
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
    untouched = np.diff(loc.domains().obs_ptr) == 0
    assert untouched.any(), "the geometry should leave some domains without observations"


def test_letkf_parallel_equals_serial(rng, monkeypatch):
    """Results do not depend on how the domains are shared between threads."""
    from enkf import analysis

    N, M = 10, 500
    E = rng.normal(size=(N, M))
    obs = np.arange(0, M, 3)
    HE = E[:, obs] + 0.1
    y = rng.normal(size=obs.size)
    loc = DistanceLocalizer(np.arange(M), obs, 5.0, period=M)
    out = {}
    for name, work in (("parallel", 0), ("serial", np.inf)):
        monkeypatch.setattr(analysis, "_PARALLEL_WORK", work)
        out[name] = letkf(E, HE, y, np.ones(obs.size), loc)
    np.testing.assert_array_equal(out["parallel"], out["serial"])
