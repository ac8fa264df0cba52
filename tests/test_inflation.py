"""Inflation keeps the mean and sets the spread as its formula says."""

import numpy as np
import pytest

from enkf import multiplicative, rtpp, rtps


@pytest.fixture
def pair(rng):
    E_f = rng.normal(size=(20, 6)) * [1, 2, 3, 0.5, 1, 4] + 10
    E_a = E_f.mean(0) + 0.4 * (E_f - E_f.mean(0)) @ np.diag([1, 0.5, 0.2, 1, 0.9, 0.1]) + 1
    E_a[:, 4] = E_a[:, 4].mean()  # an entry with no analysis spread
    return E_f, E_a


def test_multiplicative_scales_standard_deviation(pair):
    E, _ = pair
    out = multiplicative(E, 1.3)
    np.testing.assert_allclose(out.mean(0), E.mean(0), rtol=1e-13)
    np.testing.assert_allclose(out.std(0), 1.3 * E.std(0), rtol=1e-12)


def test_rtpp_limits_and_mean(pair):
    E_f, E_a = pair
    np.testing.assert_allclose(rtpp(E_f, E_a, 0.0), E_a, rtol=1e-13)
    full = rtpp(E_f, E_a, 1.0)
    np.testing.assert_allclose(full - full.mean(0), E_f - E_f.mean(0), atol=1e-12)
    np.testing.assert_allclose(rtpp(E_f, E_a, 0.7).mean(0), E_a.mean(0), rtol=1e-13)


def test_rtps_relaxes_spread(pair):
    E_f, E_a = pair
    alpha = 0.6
    out = rtps(E_f, E_a, alpha)
    sf, sa = E_f.std(0, ddof=1), E_a.std(0, ddof=1)
    expected = np.where(sa > 0, sa + alpha * (sf - sa), 0.0)
    np.testing.assert_allclose(out.std(0, ddof=1), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.mean(0), E_a.mean(0), rtol=1e-13)
    np.testing.assert_allclose(rtps(E_f, E_a, 0.0), E_a, rtol=1e-13)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda E: multiplicative(E, 0.0), "inflation factor must be finite and > 0"),
        (lambda E: multiplicative(E, np.nan), "inflation factor"),
        (lambda E: rtps(E, E, 1.5), "alpha must be in"),
        (lambda E: rtpp(E, E[:, :2], 0.5), "E_f has shape"),
    ],
)
def test_inflation_rejects_bad_arguments(call, message, pair):
    with pytest.raises(ValueError, match=message):
        call(pair[0])
