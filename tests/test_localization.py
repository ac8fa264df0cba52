"""Localisation: the Gaspari–Cohn taper and the assignment of observations to domains."""

import numpy as np
import pytest
from conftest import reference_distance, reference_gc

from enkf import DistanceLocalizer
from enkf.localization import gaspari_cohn


def test_gaspari_cohn_values_and_smoothness():
    assert gaspari_cohn(0.0) == 1.0
    # Both branches give 5/24 at r = 1, and the outer one reaches 0 at r = 2.
    np.testing.assert_allclose(gaspari_cohn(1.0), 5 / 24, rtol=1e-14)
    np.testing.assert_allclose(gaspari_cohn([1 - 1e-9, 1 + 1e-9]), 5 / 24, atol=1e-8)
    np.testing.assert_allclose(gaspari_cohn([2 - 1e-6, 2.0, 3.0, 100.0]), 0.0, atol=1e-12)
    r = np.linspace(0, 2.5, 2501)
    g = gaspari_cohn(r)
    assert np.all(np.diff(g) <= 1e-15), "the taper decreases with distance"
    # C¹ at the joins: one-sided slopes agree.
    h = 1e-6
    for r0 in (1.0, 2.0):
        left = (gaspari_cohn(r0) - gaspari_cohn(r0 - h)) / h
        right = (gaspari_cohn(r0 + h) - gaspari_cohn(r0)) / h
        assert abs(left - right) < 1e-4


def test_gaspari_cohn_is_a_correlation_function():
    """GC is built as a self-convolution, so the matrix it makes on any grid is PSD."""
    n = 200
    d = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    d = np.minimum(d, n - d)  # periodic grid
    C = gaspari_cohn(d / 7.3)
    assert np.linalg.eigvalsh(C).min() > -1e-10


def test_radius_convention_matches_dapper():
    """DAPPER's radius: taper ≈ exp(−1/2) at the radius, support 2 × 1.82 × radius."""
    loc = DistanceLocalizer(np.arange(40), np.arange(40), 4.0, period=40)
    assert abs(loc.weight(4.0) - np.exp(-0.5)) < 0.03
    assert loc.cutoff == pytest.approx(2 * 1.82 * 4.0)
    idx, w = loc.domains().local_obs(0)
    # obs 0..14 and 26..39 lie within 14.56 of entry 0 on the circle of 40.
    assert set(idx) == set(range(15)) | set(range(26, 40))
    np.testing.assert_allclose(w, loc.weight(loc.distance([[0.0]], idx[:, None].astype(float))))


def _brute_pairs(xs, xo, radius, period, taper):
    """Every (domain, observation) pair by direct distance, no k-d tree."""
    pairs = {}
    for c in np.unique(xs, axis=0):
        d = reference_distance(c[None, :], xo, period or [None, None])
        if taper == "step":
            w = (d <= radius).astype(float)
        else:
            w = np.array([reference_gc(di / (1.82 * radius)) for di in d])
        pairs[tuple(c)] = {int(o): w[o] for o in np.flatnonzero(w > 0)}
    return pairs


@pytest.mark.parametrize("period", [None, [5.0, None], [5.0, 7.0]])
@pytest.mark.parametrize("taper", ["gaspari_cohn", "step"])
def test_domains_match_brute_force(period, taper, rng):
    xs = np.repeat(rng.uniform(0, 5, size=(30, 2)), 2, axis=0)
    xo = rng.uniform(0, 5, size=(60, 2))
    if period is not None and period[1] is not None:
        xo[:, 1] *= 7 / 5
    loc = DistanceLocalizer(xs, xo, 0.4, period=period, taper=taper)
    dom = loc.domains()
    ref = _brute_pairs(xs, xo, 0.4, period, taper)
    assert dom.n_domains == 30
    assert sorted(dom.state_idx) == list(range(60))
    for k in range(dom.n_domains):
        states = dom.local_state(k)
        assert len(states) == 2 and np.all(xs[states[0]] == xs[states[1]])
        idx, w = dom.local_obs(k)
        expected = ref[tuple(xs[states[0]])]
        assert dict(zip(idx.tolist(), w, strict=True)) == pytest.approx(expected)


def test_periodic_wraps_around():
    loc = DistanceLocalizer([0.5], [39.5, 20.0, 2.0], 1.2, period=40, taper="step")
    idx, _ = loc.domains().local_obs(0)
    assert idx.tolist() == [0]


def test_observation_at_the_same_place_is_kept():
    loc = DistanceLocalizer([[1.0, 1.0]], [[1.0, 1.0]], 1.0)
    idx, w = loc.domains().local_obs(0)
    assert idx.tolist() == [0] and w.tolist() == [1.0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"radius": 0.0}, "radius must be > 0"),
        ({"taper": "gauss"}, "taper must be one of"),
        ({"obs_coords": np.zeros((3, 3))}, "dimensions"),
        ({"state_coords": [[np.nan, 0.0]]}, "state_coords is not finite at index 0"),
        ({"period": [-1.0, None]}, "period must be > 0"),
    ],
)
def test_bad_localizer_arguments(kwargs, message):
    args = {"state_coords": np.zeros((2, 2)), "obs_coords": np.zeros((3, 2)), "radius": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        DistanceLocalizer(**args)


def test_localizer_size_mismatch_is_reported():
    from enkf import letkf

    loc = DistanceLocalizer(np.arange(4), np.arange(2), 1.0)
    E = np.random.default_rng(0).normal(size=(5, 6))
    with pytest.raises(ValueError, match="built for 4 state entries, E has 6"):
        letkf(E, E[:, :2], np.zeros(2), np.ones(2), loc)
